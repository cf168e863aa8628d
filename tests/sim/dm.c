/*
 * The device's CoAP server side: every request the LwM2M server sends to a
 * device arrives here, through the catch-all resource of the device's
 * shard; the session's app data says which device it is for.
 *
 * libcoap's block-wise mode is off in the shards, so Block1 (push of a
 * package to resource 0) and Block2 (large reads) are handled here, which
 * lets a push start the state machine at its first block and keeps every
 * body bounded.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "dm"

/* A request, decoded once. */
struct req {
  struct sim_dev *d;
  const coap_pdu_t *pdu;
  coap_pdu_t *resp;
  coap_pdu_code_t code;
  struct lwm2m_path path;
  int ct;      /* Content-Format, -1 if absent */
  int accept;  /* -1 if absent */
  int observe; /* -1 if absent */
  bool has_query;
  bool has_block1;
  coap_block_t block1;
  const uint8_t *data;
  size_t len;
  char err[160];
};

static void set_code(struct req *r, unsigned code)
{
  coap_pdu_set_code(r->resp, COAP_RESPONSE_CODE(code));
}

/* An error code, with the reason as diagnostic payload (RFC 7252 5.5.2). */
static void fail(struct req *r, unsigned code, const char *why)
{
  set_code(r, code);
  if (why && *why) {
    coap_add_data(r->resp, strlen(why), (const uint8_t *)why);
    log_debug("%s: %u.%02u %s", r->d->ep, code / 100, code % 100, why);
  }
}

/* Maps the negative errno of objects.c and afu.c to a CoAP error. */
static void fail_rc(struct req *r, int rc)
{
  switch (rc) {
  case -ENOENT:
    fail(r, 404, r->err[0] ? r->err : "not found");
    break;
  case -EPERM:
    fail(r, 405, r->err[0] ? r->err : "method not allowed");
    break;
  case -EFBIG:
    fail(r, 413, r->err);
    break;
  case -ENOTSUP:
    fail(r, 415, r->err);
    break;
  default:
    fail(r, 400, r->err[0] ? r->err : "bad request");
    break;
  }
}

static int opt_uint(const coap_pdu_t *pdu, coap_option_num_t num)
{
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(pdu, num, &it);

  if (!opt)
    return -1;
  if (coap_opt_length(opt) > 3)
    return -2;
  return (int)coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
}

/* Uri-Path to an LwM2M path; false if it is not one of /O/I/R/RI. */
static bool parse_path(const coap_pdu_t *pdu, struct lwm2m_path *p)
{
  coap_opt_iterator_t it;
  coap_opt_filter_t f;
  coap_opt_t *opt;

  memset(p, 0, sizeof(*p));
  coap_option_filter_clear(&f);
  coap_option_filter_set(&f, COAP_OPTION_URI_PATH);
  coap_option_iterator_init(pdu, &it, &f);
  for (opt = coap_option_next(&it); opt; opt = coap_option_next(&it)) {
    size_t n = coap_opt_length(opt);
    const uint8_t *v = coap_opt_value(opt);
    char seg[8];
    int64_t id;

    if (n == 0)
      continue; /* a trailing slash */
    if (p->len == 4 || n >= sizeof(seg))
      return false;
    memcpy(seg, v, n);
    seg[n] = '\0';
    if (parse_int64(seg, 0, LWM2M_ID_MAX, &id) < 0)
      return false;
    p->id[p->len++] = (uint16_t)id;
  }
  return true;
}

static unsigned block_szx_for(size_t max_pdu)
{
  unsigned szx = 6;

  /* Leave room for the header, token and options. */
  while (szx > 0 && (size_t)(16u << szx) + 96 > max_pdu)
    szx--;
  return szx;
}

int dm_add_payload(coap_pdu_t *pdu, const coap_pdu_t *req, int64_t observe,
                   uint16_t ct, const uint8_t *data, size_t len,
                   size_t max_pdu)
{
  coap_block_t want = {0};
  unsigned szx = block_szx_for(max_pdu);
  uint8_t buf[8];
  size_t bs, off, chunk;
  bool blocked;

  if (req && coap_get_block(req, COAP_OPTION_BLOCK2, &want)) {
    if (want.szx < szx)
      szx = want.szx;
  }
  bs = (size_t)16 << szx;
  blocked = len > bs || want.num > 0;
  if (!blocked) {
    if (observe >= 0)
      coap_add_option(
          pdu, COAP_OPTION_OBSERVE,
          coap_encode_var_safe(buf, sizeof(buf), (unsigned)observe), buf);
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(buf, sizeof(buf), ct), buf);
    if (len > 0)
      coap_add_data(pdu, len, data);
    return 0;
  }
  /* The block size can change between requests, so the offset is what
   * counts: NUM of the asked size. */
  off = (size_t)want.num << (szx + 4);
  if (want.num > 0 && want.szx > szx)
    off = (size_t)want.num << (want.szx + 4);
  if (off >= len) {
    coap_pdu_set_code(pdu, COAP_RESPONSE_CODE(400));
    return -ERANGE;
  }
  chunk = len - off < bs ? len - off : bs;
  {
    /* Every block carries the same ETag: a hash of the whole body. */
    uint64_t h = hash_bytes(data, len);

    memcpy(buf, &h, 4);
    coap_add_option(pdu, COAP_OPTION_ETAG, 4, buf);
  }
  if (observe >= 0)
    coap_add_option(pdu, COAP_OPTION_OBSERVE,
                    coap_encode_var_safe(buf, sizeof(buf), (unsigned)observe),
                    buf);
  coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                  coap_encode_var_safe(buf, sizeof(buf), ct), buf);
  coap_add_option(pdu, COAP_OPTION_BLOCK2,
                  coap_encode_var_safe(buf, sizeof(buf),
                                       (unsigned)((off >> (szx + 4)) << 4) |
                                           (off + chunk < len ? 8u : 0u) |
                                           szx),
                  buf);
  if (off == 0)
    coap_add_option(pdu, COAP_OPTION_SIZE2,
                    coap_encode_var_safe(buf, sizeof(buf), (unsigned)len),
                    buf);
  coap_add_data(pdu, chunk, data + off);
  return 0;
}

/* Can a Read answer p in format ct? */
static bool ct_fits(struct sim_dev *d, const struct lwm2m_path *p, int ct)
{
  const struct sim_res *res;
  bool single;

  if (ct == LWM2M_CT_LINK || !lwm2m_ct_supported((uint16_t)ct))
    return false;
  res = p->len >= 3 ? obj_res(d, p->id[0], p->id[2]) : NULL;
  single = res && (p->len == 4 || !res->multi);
  switch (ct) {
  case LWM2M_CT_TEXT:
  case LWM2M_CT_OLD_TEXT:
  case LWM2M_CT_CBOR:
    return single && res->type != LWM2M_T_OPAQUE;
  case LWM2M_CT_OPAQUE:
  case LWM2M_CT_OLD_OPAQUE:
    return single && res->type == LWM2M_T_OPAQUE;
  default:
    return true;
  }
}

/* Reads paths and answers 2.05, registering an observation if asked. */
static void answer_read(struct req *r, const struct lwm2m_path *paths,
                        size_t npaths, bool composite, uint16_t ct)
{
  struct sim_dev *d = r->d;
  uint8_t *payload = NULL;
  size_t len = 0;
  int64_t observe = -1;
  coap_bin_const_t token = coap_pdu_get_token(r->pdu);
  int rc;

  if (!composite) {
    struct lwm2m_records probe;

    /* Read first for the right error (4.04, 4.05) before encoding. */
    lwm2m_records_init(&probe);
    rc = obj_read(d, &paths[0], &probe);
    lwm2m_records_free(&probe);
    if (rc < 0) {
      fail_rc(r, rc);
      return;
    }
  }
  rc = obs_encode(d, paths, npaths, composite, ct, &payload, &len);
  if (rc < 0) {
    snprintf(r->err, sizeof(r->err), "cannot encode in format %u", ct);
    fail(r, rc == -ENOTSUP ? 406 : 500, r->err);
    return;
  }
  if (r->observe == COAP_OBSERVE_ESTABLISH && paths[0].len > 0) {
    int seq = obs_add(d, token.s, token.length, paths, npaths, composite, ct);

    if (seq >= 0)
      observe = seq;
    else
      log_debug("%s: observation refused (%d), plain read", d->ep, seq);
  } else if (r->observe == COAP_OBSERVE_CANCEL) {
    obs_cancel(d, token.s, token.length);
  }
  set_code(r, 205);
  if (dm_add_payload(r->resp, r->pdu, observe, ct, payload, len,
                     coap_session_max_pdu_size(d->session)) < 0) {
    if (observe >= 0)
      obs_cancel(d, token.s, token.length);
    coap_add_data(r->resp, 23, (const uint8_t *)"block number out of range");
  }
  free(payload);
}

static void do_get(struct req *r)
{
  struct sim_dev *d = r->d;
  int ct;

  if (r->accept == LWM2M_CT_LINK) {
    char *links = obj_discover(d, &r->path);

    if (!links) {
      fail(r, r->path.len == 0 ? 405 : 404,
           r->path.len == 0 ? "Discover on / is for bootstrap" : NULL);
      return;
    }
    set_code(r, 205);
    if (dm_add_payload(r->resp, r->pdu, -1, LWM2M_CT_LINK,
                       (const uint8_t *)links, strlen(links),
                       coap_session_max_pdu_size(d->session)) < 0)
      coap_add_data(r->resp, 23, (const uint8_t *)"block number out of range");
    free(links);
    return;
  }
  if (r->path.len == 0) {
    fail(r, 405, "Read on / is for bootstrap");
    return;
  }
  if (!obj_exists(d, &r->path)) {
    fail(r, 404, NULL);
    return;
  }
  ct = r->accept >= 0 ? r->accept : dev_default_ct(d);
  if (!ct_fits(d, &r->path, ct)) {
    /* Without Accept, a format the path cannot take falls back. */
    if (r->accept >= 0) {
      snprintf(r->err, sizeof(r->err), "format %d not available here", ct);
      fail(r, 406, r->err);
      return;
    }
    ct = d->sim->cfg->minor >= 1 ? LWM2M_CT_SENML_CBOR : LWM2M_CT_TLV;
  }
  answer_read(r, &r->path, 1, false, (uint16_t)ct);
}

/* Decodes the body and writes it; replace is PUT. */
static void write_body(struct req *r, const uint8_t *data, size_t len,
                       bool replace)
{
  struct lwm2m_records recs;
  int rc;

  if (r->ct < 0) {
    fail(r, 400, "Content-Format missing");
    return;
  }
  if (r->ct == LWM2M_CT_LINK || !lwm2m_ct_supported((uint16_t)r->ct)) {
    snprintf(r->err, sizeof(r->err), "format %d not supported", r->ct);
    fail(r, 415, r->err);
    return;
  }
  lwm2m_records_init(&recs);
  rc = lwm2m_decode((uint16_t)r->ct, data, len, &r->path, r->d->sim->model,
                    &recs, r->err, sizeof(r->err));
  if (rc < 0) {
    lwm2m_records_free(&recs);
    fail(r, rc == -ENOTSUP ? 415 : 400, r->err);
    return;
  }
  r->err[0] = '\0';
  rc = obj_write(r->d, &r->path, &recs, replace, r->err, sizeof(r->err));
  lwm2m_records_free(&recs);
  if (rc < 0)
    fail_rc(r, rc);
  else
    set_code(r, 204);
}

/* Is the request path the Package resource of /5/0 or /33629/x? */
static struct afu_inst *package_target(struct req *r)
{
  const struct lwm2m_path *p = &r->path;

  if (p->len != 3 || p->id[2] != AFU_RES_PACKAGE)
    return NULL;
  if (p->id[0] != FW_OID && p->id[0] != AFU_OID)
    return NULL;
  if (!obj_exists(r->d, p))
    return NULL;
  return afu_get(&r->d->afu, p->id[0], p->id[1]);
}

static bool opaque_ct(int ct)
{
  return ct == LWM2M_CT_OPAQUE || ct == LWM2M_CT_OLD_OPAQUE;
}

static void b1_timeout(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;

  log_info("%s: block-wise write abandoned by the server", d->ep);
  if (d->b1 && d->b1->package) {
    struct afu_inst *in = afu_by_index(&d->afu, d->b1->afu_index);

    dm_block1_free(d);
    if (in)
      dev_download_finished(d, dev_inst_slot(in), AFU_R_CONN_LOST, NULL,
                            "push stalled");
    return;
  }
  dm_block1_free(d);
}

void dm_block1_free(struct sim_dev *d)
{
  struct sim_block1 *b = d->b1;

  if (!b)
    return;
  loop_timer_disarm(d->sim->loop, &b->timer);
  if (b->package)
    pkg_stream_free(&b->pkg);
  free(b->buf);
  free(b);
  d->b1 = NULL;
}

static void add_block1(struct req *r, uint32_t num, bool more, unsigned szx)
{
  uint8_t buf[4];

  coap_add_option(r->resp, COAP_OPTION_BLOCK1,
                  coap_encode_var_safe(buf, sizeof(buf),
                                       (num << 4) | (more ? 8u : 0u) | szx),
                  buf);
}

/* Block 0 of a push: start the state machine, or refuse. */
static int push_begin(struct req *r, struct afu_inst *in, struct sim_block1 *b)
{
  struct sim_dev *d = r->d;
  struct pkg_policy pol;
  int size1 = opt_uint(r->pdu, COAP_OPTION_SIZE1);
  uint8_t buf[4];
  int rc;

  dev_pkg_policy(d, dev_inst_slot(in), &pol);
  if (size1 > 0 && (size_t)size1 > pol.max_size) {
    /* 4.13 with the largest size accepted (RFC 7959 2.9.3). */
    set_code(r, 413);
    coap_add_option(
        r->resp, COAP_OPTION_SIZE1,
        coap_encode_var_safe(buf, sizeof(buf), (unsigned)pol.max_size), buf);
    return -EFBIG;
  }
  rc = afu_push_begin(&d->afu, in, sim_wall_s(d->sim), r->err, sizeof(r->err));
  if (rc < 0)
    return rc;
  b->package = true;
  b->afu_index = in->index;
  pkg_stream_init(&b->pkg, pkg_needs_sha256(NULL, &pol));
  if (dev_loses_download(d))
    b->lose_at = size1 > 0 ? (size_t)size1 / 2 : 4u * (16u << r->block1.szx);
  dev_afu_changed(d);
  return 0;
}

static void do_block1(struct req *r)
{
  struct sim_dev *d = r->d;
  coap_block_t *blk = &r->block1;
  size_t bs = (size_t)16 << blk->szx;
  struct sim_block1 *b = d->b1;
  struct afu_inst *in = package_target(r);
  int rc;

  if (blk->num == 0) {
    if (b && b->package) {
      struct afu_inst *old = afu_by_index(&d->afu, b->afu_index);

      dm_block1_free(d);
      if (old)
        dev_download_finished(d, dev_inst_slot(old), AFU_R_CONN_LOST, NULL,
                              "push restarted");
    }
    dm_block1_free(d);
    if (in && !blk->m && r->len == 1 && r->data[0] == 0) {
      /* A one-byte NUL package is the reset Write. */
      rc = afu_reset(&d->afu, in, sim_wall_s(d->sim), r->err, sizeof(r->err));
      dev_afu_changed(d);
      if (rc < 0)
        fail_rc(r, rc);
      else
        set_code(r, 204);
      add_block1(r, 0, false, blk->szx);
      return;
    }
    b = xcalloc(1, sizeof(*b));
    loop_timer_init(&b->timer, b1_timeout, d);
    b->path = r->path;
    b->code = (uint8_t)r->code;
    b->ct = (uint16_t)(r->ct >= 0 ? r->ct : 0);
    if (in && r->code == COAP_REQUEST_CODE_PUT &&
        (r->ct < 0 || opaque_ct(r->ct))) {
      rc = push_begin(r, in, b);
      if (rc < 0) {
        free(b);
        if (rc != -EFBIG)
          fail_rc(r, rc);
        return;
      }
    } else {
      b->buf = xmalloc(SIM_BODY_MAX);
    }
    d->b1 = b;
  } else if (!b || lwm2m_path_cmp(&b->path, &r->path) != 0 ||
             b->code != r->code || (size_t)blk->num * bs != b->offset) {
    fail(r, 408, "block out of sequence");
    return;
  }

  if (b->package) {
    if (b->lose_at && b->offset + r->len >= b->lose_at && blk->m) {
      struct afu_inst *pin = afu_by_index(&d->afu, b->afu_index);

      dm_block1_free(d);
      if (pin)
        dev_download_finished(d, dev_inst_slot(pin), AFU_R_CONN_LOST, NULL,
                              "lost-download fault");
      fail(r, 408, "transfer lost");
      return;
    }
    if (pkg_stream_feed(&b->pkg, r->data, r->len, d->sim->cfg->pkg.max_size) !=
        0) {
      struct afu_inst *pin = afu_by_index(&d->afu, b->afu_index);

      dm_block1_free(d);
      if (pin)
        dev_download_finished(d, dev_inst_slot(pin), AFU_R_NO_FLASH, NULL,
                              "package too large");
      fail(r, 413, "package too large");
      return;
    }
  } else {
    if (b->offset + r->len > SIM_BODY_MAX) {
      dm_block1_free(d);
      fail(r, 413, "body too large");
      return;
    }
    memcpy(b->buf + b->offset, r->data, r->len);
  }
  b->offset += r->len;

  if (blk->m) {
    loop_timer_arm(d->sim->loop, &b->timer, d->sim->cfg->download_timeout_ms);
    set_code(r, 231);
    add_block1(r, blk->num, true, blk->szx);
    return;
  }
  if (b->package) {
    struct afu_inst *pin = afu_by_index(&d->afu, b->afu_index);

    d->b1 = NULL;
    loop_timer_disarm(d->sim->loop, &b->timer);
    if (pin)
      obj_push_finish(d, pin, &b->pkg, r->err, sizeof(r->err));
    pkg_stream_free(&b->pkg);
    free(b);
    set_code(r, 204);
  } else {
    int saved_ct = r->ct;

    r->ct = b->ct;
    write_body(r, b->buf, b->offset, b->code == COAP_REQUEST_CODE_PUT);
    r->ct = saved_ct;
    dm_block1_free(d);
  }
  add_block1(r, blk->num, false, blk->szx);
}

static void do_put(struct req *r)
{
  struct afu_inst *in;
  int rc;

  if (r->has_block1) {
    do_block1(r);
    return;
  }
  if (r->len == 0 && r->ct < 0 && r->has_query) {
    rc = obs_write_attrs(r->d, &r->path, r->pdu, r->err, sizeof(r->err));
    if (rc < 0)
      fail_rc(r, rc);
    else
      set_code(r, 204);
    return;
  }
  if (r->path.len < 2) {
    fail(r, 405, "Write needs an instance or resource path");
    return;
  }
  if (!obj_exists(r->d, &r->path)) {
    fail(r, 404, NULL);
    return;
  }
  in = package_target(r);
  if (in && opaque_ct(r->ct)) {
    rc = obj_push_whole(r->d, in, r->data, r->len, r->err, sizeof(r->err));
    if (rc < 0)
      fail_rc(r, rc);
    else
      set_code(r, 204);
    return;
  }
  write_body(r, r->data, r->len, true);
}

static void do_post(struct req *r)
{
  struct sim_dev *d = r->d;
  const struct sim_res *res;
  int rc;

  if (r->path.len == 0 || r->path.len == 4) {
    fail(r, 405, NULL);
    return;
  }
  if (!obj_exists(d, &r->path)) {
    fail(r, 404, NULL);
    return;
  }
  if (r->path.len == 1) {
    fail(r, 405, "instances are static: Create is not allowed");
    return;
  }
  if (r->has_block1) {
    do_block1(r);
    return;
  }
  if (r->path.len == 2) {
    write_body(r, r->data, r->len, false);
    return;
  }
  res = obj_res(d, r->path.id[0], r->path.id[2]);
  if (!(res->ops & LWM2M_OP_E)) {
    if (res->multi && (res->ops & LWM2M_OP_W))
      write_body(r, r->data, r->len, false);
    else
      fail(r, 405, "not executable");
    return;
  }
  if (r->ct >= 0 && r->ct != LWM2M_CT_TEXT && r->ct != LWM2M_CT_OLD_TEXT) {
    fail(r, 415, "Execute arguments are text/plain");
    return;
  }
  rc = obj_execute(d, &r->path, (const char *)r->data, r->len, r->err,
                   sizeof(r->err));
  if (rc < 0)
    fail_rc(r, rc);
  else
    set_code(r, 204);
}

static void do_delete(struct req *r)
{
  if (r->path.len >= 1 && !obj_exists(r->d, &r->path))
    fail(r, 404, NULL);
  else
    fail(r, 405, "instances are static: Delete is not allowed");
}

static bool senml_ct(int ct)
{
  return ct == LWM2M_CT_SENML_JSON || ct == LWM2M_CT_SENML_CBOR;
}

static void do_fetch(struct req *r)
{
  struct lwm2m_path *paths = NULL;
  size_t n = 0;
  int accept = r->accept >= 0 ? r->accept : r->ct;

  if (r->path.len != 0) {
    fail(r, 405, "composite operations use /");
    return;
  }
  if (!senml_ct(r->ct)) {
    fail(r, 415, "Read-Composite takes a SenML path list");
    return;
  }
  if (!senml_ct(accept)) {
    fail(r, 406, "Read-Composite answers in SenML");
    return;
  }
  if (lwm2m_decode_paths((uint16_t)r->ct, r->data, r->len, &paths, &n, r->err,
                         sizeof(r->err)) < 0 ||
      n == 0 || n > 64) {
    free(paths);
    fail(r, 400, r->err[0] ? r->err : "1 to 64 paths expected");
    return;
  }
  answer_read(r, paths, n, true, (uint16_t)accept);
  free(paths);
}

static void do_ipatch(struct req *r)
{
  if (r->path.len != 0) {
    fail(r, 405, "Write-Composite uses /");
    return;
  }
  if (!senml_ct(r->ct)) {
    fail(r, 415, "Write-Composite takes SenML");
    return;
  }
  write_body(r, r->data, r->len, false);
}

void dm_handle(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *pdu,
               const coap_string_t *query, coap_pdu_t *resp)
{
  struct sim_peer *peer = coap_session_get_app_data(s);
  struct req r;
  coap_opt_iterator_t it;

  if (!peer || peer->kind != PEER_DEV) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE(404));
    return;
  }
  memset(&r, 0, sizeof(r));
  r.d = peer->owner;
  r.pdu = pdu;
  r.resp = resp;
  r.code = coap_pdu_get_code(pdu);
  r.d->requests++;
  if (!parse_path(pdu, &r.path)) {
    fail(&r, 404, "not an LwM2M path");
    return;
  }
  r.ct = opt_uint(pdu, COAP_OPTION_CONTENT_FORMAT);
  r.accept = opt_uint(pdu, COAP_OPTION_ACCEPT);
  r.observe = opt_uint(pdu, COAP_OPTION_OBSERVE);
  if (r.ct == -2 || r.accept == -2 || r.observe == -2) {
    fail(&r, 400, "malformed option");
    return;
  }
  r.has_query = coap_check_option(pdu, COAP_OPTION_URI_QUERY, &it) != NULL;
  r.has_block1 = coap_get_block(pdu, COAP_OPTION_BLOCK1, &r.block1) != 0;
  if (!coap_get_data(pdu, &r.len, &r.data)) {
    r.len = 0;
    r.data = NULL;
  }
  if (r.has_block1 && r.block1.szx > 6) {
    fail(&r, 400, "bad Block1 size");
    return;
  }

  switch (r.code) {
  case COAP_REQUEST_CODE_GET:
    do_get(&r);
    break;
  case COAP_REQUEST_CODE_PUT:
    do_put(&r);
    break;
  case COAP_REQUEST_CODE_POST:
    do_post(&r);
    break;
  case COAP_REQUEST_CODE_DELETE:
    do_delete(&r);
    break;
  case COAP_REQUEST_CODE_FETCH:
    do_fetch(&r);
    break;
  case COAP_REQUEST_CODE_IPATCH:
    do_ipatch(&r);
    break;
  default:
    fail(&r, 405, NULL);
    break;
  }
  /* Talking to the server keeps a queue-mode device awake. */
  dev_uplink(r.d);
  obs_flush(r.d, false);
}
