/*
 * Device-management requests: building them, matching answers by token,
 * time-outs, observations and their notifications, and the queue of
 * requests that wait for a sleeping device.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "dm"

static const char *const op_names[] = {
    [SRV_OP_READ] = "read",
    [SRV_OP_DISCOVER] = "discover",
    [SRV_OP_WRITE] = "write",
    [SRV_OP_WRITE_PARTIAL] = "write-partial",
    [SRV_OP_WRITE_ATTRS] = "write-attributes",
    [SRV_OP_EXECUTE] = "execute",
    [SRV_OP_CREATE] = "create",
    [SRV_OP_DELETE] = "delete",
    [SRV_OP_OBSERVE] = "observe",
    [SRV_OP_CANCEL_OBSERVE] = "cancel-observe",
    [SRV_OP_READ_COMPOSITE] = "read-composite",
    [SRV_OP_OBSERVE_COMPOSITE] = "observe-composite",
    [SRV_OP_CANCEL_OBSERVE_COMPOSITE] = "cancel-observe-composite",
    [SRV_OP_WRITE_COMPOSITE] = "write-composite",
};

const char *srv_op_name(enum srv_op op)
{
  if ((size_t)op >= ARRAY_SIZE(op_names))
    return "?";
  return op_names[op];
}

int srv_op_parse(const char *name, enum srv_op *op)
{
  for (size_t i = 0; i < ARRAY_SIZE(op_names); i++) {
    if (strcmp(name, op_names[i]) == 0) {
      *op = (enum srv_op)i;
      return 0;
    }
  }
  return -EINVAL;
}

static bool is_composite(enum srv_op op)
{
  return op == SRV_OP_READ_COMPOSITE || op == SRV_OP_OBSERVE_COMPOSITE ||
         op == SRV_OP_CANCEL_OBSERVE_COMPOSITE || op == SRV_OP_WRITE_COMPOSITE;
}

void srv_requests_init(struct srv *srv)
{
  hmap_init(&srv->reqs_by_token);
  hmap_init(&srv->reqs_by_handle);
  hmap_init(&srv->obs_by_token);
}

void srv_requests_free(struct srv *srv)
{
  /* Registrations own the requests and observations; see
   * srv_reg_drop_requests(), called for each by the registry. */
  for (size_t i = 0; i < srv->by_ep.nbuckets; i++)
    for (struct hmap_node *n = srv->by_ep.buckets[i]; n; n = n->next)
      srv_reg_drop_requests(container_of(n, struct srv_reg, by_ep), -ENOTCONN,
                            "server stopping");
  hmap_destroy(&srv->reqs_by_token);
  hmap_destroy(&srv->reqs_by_handle);
  hmap_destroy(&srv->obs_by_token);
}

static uint64_t token_hash(const uint8_t *t, size_t len)
{
  return hash_bytes(t, len);
}

static struct srv_req *find_req(struct srv *srv, const uint8_t *t, size_t len)
{
  uint64_t h = token_hash(t, len);

  if (len != SRV_TOKEN_LEN)
    return NULL;
  for (struct hmap_node *n = hmap_first(&srv->reqs_by_token, h); n;
       n = n->next) {
    struct srv_req *r = container_of(n, struct srv_req, by_token);

    if (n->hash == h && memcmp(r->token, t, len) == 0)
      return r;
  }
  return NULL;
}

static struct srv_obs *find_obs(struct srv *srv, const uint8_t *t, size_t len)
{
  uint64_t h = token_hash(t, len);

  if (len != SRV_TOKEN_LEN)
    return NULL;
  for (struct hmap_node *n = hmap_first(&srv->obs_by_token, h); n;
       n = n->next) {
    struct srv_obs *o = container_of(n, struct srv_obs, by_token);

    if (n->hash == h && memcmp(o->token, t, len) == 0)
      return o;
  }
  return NULL;
}

static void result_clear(struct srv_result *res)
{
  lwm2m_records_free(&res->values);
  free(res->links);
  free(res->error);
}

/* Unlinks r from everything and frees it; does not call its callback. */
static void req_free(struct srv_req *r)
{
  struct srv *srv = r->srv;
  struct srv_req **pp;

  loop_timer_disarm(srv->loop, &r->timeout);
  hmap_remove(&srv->reqs_by_token, &r->by_token);
  if (r->handle)
    hmap_remove(&srv->reqs_by_handle, &r->by_handle);
  for (pp = &r->reg->reqs; *pp; pp = &(*pp)->reg_next) {
    if (*pp == r) {
      *pp = r->reg_next;
      break;
    }
  }
  free(r);
}

/* Delivers the outcome (once) and frees the request. */
static void req_finish(struct srv_req *r, struct srv_result *res)
{
  srv_result_cb *cb = r->cb;
  void *arg = r->cb_arg;

  req_free(r);
  if (cb)
    cb(arg, res);
}

static void req_fail(struct srv_req *r, int status, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static void req_fail(struct srv_req *r, int status, const char *fmt, ...)
{
  struct srv_result res = {.status = status, .format = 0xffff};
  char msg[256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  res.error = xstrdup(msg);
  lwm2m_records_init(&res.values);
  log_info("%s: %s %s failed: %s", r->reg->ep, srv_op_name(r->op), "request",
           msg);
  req_finish(r, &res);
  result_clear(&res);
}

static void obs_free(struct srv *srv, struct srv_obs *o)
{
  hmap_remove(&srv->obs_by_token, &o->by_token);
  free(o->paths);
  free(o);
}

void srv_reg_drop_requests(struct srv_reg *reg, int status, const char *why)
{
  struct srv *srv = reg->srv;

  while (reg->reqs)
    req_fail(reg->reqs, status, "device %s", why);
  while (reg->obs) {
    struct srv_obs *o = reg->obs;

    reg->obs = o->next;
    obs_free(srv, o);
  }
}

void srv_forget(struct srv *srv, uint64_t handle)
{
  uint64_t h = hash_bytes(&handle, sizeof(handle));

  for (struct hmap_node *n = hmap_first(&srv->reqs_by_handle, h); n;
       n = n->next) {
    struct srv_req *r = container_of(n, struct srv_req, by_handle);

    if (r->handle == handle) {
      /* The request stays in flight (its answer may still come), but
       * nobody is told about it any more. */
      r->cb = NULL;
      r->cb_arg = NULL;
      return;
    }
  }
}

static void on_timeout(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct srv_req *r = arg;
  struct srv_reg *reg = r->reg;

  /* A queue-mode device that does not answer has gone back to sleep. */
  if (reg->queue_mode)
    reg->awake_until = 0;
  req_fail(r, -ETIMEDOUT, "no answer from the device in time");
}

/* Adds the path (below the alternate path) as Uri-Path options. */
static void add_path(coap_pdu_t *pdu, const struct srv_reg *reg,
                     const struct lwm2m_path *path)
{
  if (reg->alt_path) {
    const char *p = reg->alt_path;

    while (*p) {
      const char *seg;
      size_t len;

      while (*p == '/')
        p++;
      seg = p;
      len = strcspn(p, "/");
      if (len > 0)
        coap_add_option(pdu, COAP_OPTION_URI_PATH, len, (const uint8_t *)seg);
      p += len;
    }
  }
  for (int i = 0; i < path->len; i++) {
    char seg[8];
    int len = snprintf(seg, sizeof(seg), "%u", path->id[i]);

    coap_add_option(pdu, COAP_OPTION_URI_PATH, (size_t)len,
                    (const uint8_t *)seg);
  }
}

static void add_uint_option(coap_pdu_t *pdu, uint16_t num, unsigned v)
{
  uint8_t buf[4];

  coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof(buf), v), buf);
}

/* Adds each "k=v" of a '&'-separated attribute string as Uri-Query. */
static void add_attrs(coap_pdu_t *pdu, const char *attrs)
{
  const char *p = attrs;

  while (p && *p) {
    size_t len = strcspn(p, "&");

    if (len > 0)
      coap_add_option(pdu, COAP_OPTION_URI_QUERY, len, (const uint8_t *)p);
    p += len;
    if (*p == '&')
      p++;
  }
}

static void release_payload(coap_session_t *session, void *app_ptr)
{
  free(app_ptr);
}

/*
 * Builds and sends the CoAP request for r. Options go in ascending number
 * order: Observe 6, Uri-Path 11, Content-Format 12, Uri-Query 15,
 * Accept 17.
 */
static int send_pdu(struct srv_reg *reg, struct srv_req *r,
                    const struct srv_request *req, char *err, size_t errlen)
{
  struct srv *srv = reg->srv;
  uint16_t fmt = req->has_format ? req->format : reg->format;
  coap_pdu_code_t code = COAP_REQUEST_CODE_GET;
  int observe = -1;
  int ct = -1, accept = -1;
  uint8_t *payload = NULL;
  size_t plen = 0;
  coap_pdu_t *pdu;
  const struct lwm2m_path root = {.len = 0};
  int rc;

  if (is_composite(req->op) && fmt != LWM2M_CT_SENML_CBOR &&
      fmt != LWM2M_CT_SENML_JSON)
    fmt = LWM2M_CT_SENML_CBOR;

  switch (req->op) {
  case SRV_OP_READ:
    accept = fmt;
    break;
  case SRV_OP_OBSERVE:
    accept = fmt;
    observe = 0;
    break;
  case SRV_OP_CANCEL_OBSERVE:
  case SRV_OP_CANCEL_OBSERVE_COMPOSITE:
    observe = 1;
    if (req->op == SRV_OP_CANCEL_OBSERVE_COMPOSITE)
      code = COAP_REQUEST_CODE_FETCH;
    break;
  case SRV_OP_DISCOVER:
    accept = LWM2M_CT_LINK;
    break;
  case SRV_OP_WRITE:
  case SRV_OP_WRITE_PARTIAL:
  case SRV_OP_CREATE:
  case SRV_OP_WRITE_COMPOSITE:
    code = req->op == SRV_OP_WRITE             ? COAP_REQUEST_CODE_PUT
           : req->op == SRV_OP_WRITE_COMPOSITE ? COAP_REQUEST_CODE_IPATCH
                                               : COAP_REQUEST_CODE_POST;
    if (!req->values) {
      snprintf(err, errlen, "%s needs values", srv_op_name(req->op));
      return -EINVAL;
    }
    rc = lwm2m_encode(fmt,
                      req->op == SRV_OP_WRITE_COMPOSITE ? &root : &req->path,
                      req->values, srv->model, &payload, &plen, err, errlen);
    if (rc < 0)
      return rc;
    ct = fmt;
    break;
  case SRV_OP_WRITE_ATTRS:
    code = COAP_REQUEST_CODE_PUT;
    break;
  case SRV_OP_EXECUTE:
    code = COAP_REQUEST_CODE_POST;
    if (req->args && req->args[0]) {
      payload = (uint8_t *)xstrdup(req->args);
      plen = strlen(req->args);
      ct = LWM2M_CT_TEXT;
    }
    break;
  case SRV_OP_DELETE:
    code = COAP_REQUEST_CODE_DELETE;
    break;
  case SRV_OP_READ_COMPOSITE:
  case SRV_OP_OBSERVE_COMPOSITE:
    code = COAP_REQUEST_CODE_FETCH;
    if (req->op == SRV_OP_OBSERVE_COMPOSITE)
      observe = 0;
    rc = lwm2m_encode_paths(fmt, req->paths, req->npaths, &payload, &plen);
    if (rc < 0) {
      snprintf(err, errlen, "cannot encode the composite paths");
      return rc;
    }
    ct = fmt;
    accept = fmt;
    break;
  }
  if (req->op == SRV_OP_CANCEL_OBSERVE_COMPOSITE) {
    rc = lwm2m_encode_paths(fmt, req->paths, req->npaths, &payload, &plen);
    if (rc < 0) {
      snprintf(err, errlen, "cannot encode the composite paths");
      return rc;
    }
    ct = fmt;
  }

  pdu =
      coap_pdu_init(COAP_MESSAGE_CON, code, coap_new_message_id(reg->session),
                    coap_session_max_pdu_size(reg->session));
  if (!pdu) {
    free(payload);
    snprintf(err, errlen, "cannot allocate the request");
    return -ENOMEM;
  }
  coap_add_token(pdu, SRV_TOKEN_LEN, r->token);
  if (observe >= 0)
    add_uint_option(pdu, COAP_OPTION_OBSERVE, (unsigned)observe);
  add_path(pdu, reg, is_composite(req->op) ? &root : &req->path);
  if (ct >= 0)
    add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, (unsigned)ct);
  if (req->op == SRV_OP_WRITE_ATTRS)
    add_attrs(pdu, req->attrs);
  if (accept >= 0)
    add_uint_option(pdu, COAP_OPTION_ACCEPT, (unsigned)accept);
  if (payload) {
    /* libcoap splits a large body into Block1 transfers; it frees the
     * payload through release_payload when done. */
    if (!coap_add_data_large_request(reg->session, pdu, plen, payload,
                                     release_payload, payload)) {
      coap_delete_pdu(pdu);
      snprintf(err, errlen, "cannot attach the payload");
      return -ENOMEM;
    }
  }
  if (coap_send(reg->session, pdu) == COAP_INVALID_MID) {
    snprintf(err, errlen, "cannot send to %s", reg->peer);
    return -EIO;
  }
  return 0;
}

/* Records the observation an Observe request asked for, under its token. */
static void obs_add(struct srv_reg *reg, const struct srv_req *r,
                    const struct srv_request *req)
{
  struct srv *srv = reg->srv;
  struct srv_obs *o = xcalloc(1, sizeof(*o));

  o->reg = reg;
  memcpy(o->token, r->token, SRV_TOKEN_LEN);
  o->path = req->path;
  if (req->npaths > 0) {
    o->paths = xcalloc(req->npaths, sizeof(*o->paths));
    memcpy(o->paths, req->paths, req->npaths * sizeof(*o->paths));
    o->npaths = req->npaths;
  }
  o->next = reg->obs;
  reg->obs = o;
  hmap_insert(&srv->obs_by_token, &o->by_token,
              token_hash(o->token, SRV_TOKEN_LEN));
}

static bool same_paths(const struct srv_obs *o, const struct srv_request *req)
{
  if (o->npaths != req->npaths)
    return false;
  if (o->npaths == 0)
    return lwm2m_path_cmp(&o->path, &req->path) == 0;
  for (size_t i = 0; i < o->npaths; i++)
    if (lwm2m_path_cmp(&o->paths[i], &req->paths[i]) != 0)
      return false;
  return true;
}

/* The observation a cancel refers to; removed from the registration. */
static struct srv_obs *obs_take(struct srv_reg *reg,
                                const struct srv_request *req)
{
  for (struct srv_obs **pp = &reg->obs; *pp; pp = &(*pp)->next) {
    struct srv_obs *o = *pp;

    if (same_paths(o, req)) {
      *pp = o->next;
      return o;
    }
  }
  return NULL;
}

static void immediate_fail(srv_result_cb *cb, void *arg, int status,
                           const char *msg)
{
  struct srv_result res = {.status = status, .format = 0xffff};

  lwm2m_records_init(&res.values);
  res.error = xstrdup(msg);
  if (cb)
    cb(arg, &res);
  result_clear(&res);
}

static char *request_body_json(const struct srv_request *req);

/* Persists a request for a sleeping device; returns its id or < 0. */
static int64_t enqueue(struct srv_reg *reg, const struct srv_request *req)
{
  struct srv *srv = reg->srv;
  char path[64];
  char *body = request_body_json(req);
  struct db_request dr = {
      .device_id = reg->device_id,
      .op = srv_op_name(req->op),
      .path = path,
      .body = body,
      .created_at = loop_wall(srv->loop),
      .expires_at =
          loop_wall(srv->loop) + srv->cfg.queue_request_expiry * 1000,
  };
  int rc;

  lwm2m_path_format(&req->path, path, sizeof(path));
  rc = srv_txn(srv);
  if (rc == 0)
    rc = db_request_add(srv->db, &dr);
  free(body);
  if (rc < 0)
    return rc;
  log_info("%s: %s %s queued as request %lld until the device wakes", reg->ep,
           srv_op_name(req->op), path, (long long)dr.id);
  return dr.id;
}

static uint64_t send_now(struct srv_reg *reg, const struct srv_request *req,
                         srv_result_cb *cb, void *arg, int64_t queued_id)
{
  struct srv *srv = reg->srv;
  struct srv_req *r;
  struct srv_obs *cancelled = NULL;
  char err[256];
  int rc;

  r = xcalloc(1, sizeof(*r));
  r->srv = srv;
  r->reg = reg;
  r->op = req->op;
  r->path = req->path;
  r->queued_id = queued_id;
  r->cb = cb;
  r->cb_arg = arg;
  loop_timer_init(&r->timeout, on_timeout, r);

  if (req->op == SRV_OP_CANCEL_OBSERVE ||
      req->op == SRV_OP_CANCEL_OBSERVE_COMPOSITE) {
    /* A cancel reuses the token of the observation it ends. */
    cancelled = obs_take(reg, req);
    if (!cancelled) {
      free(r);
      immediate_fail(cb, arg, -ENOENT, "no such observation");
      return 0;
    }
    memcpy(r->token, cancelled->token, SRV_TOKEN_LEN);
    obs_free(srv, cancelled);
    if (req->cancel_by_rst) {
      struct srv_result res = {.status = 0, .code = 0x44, .format = 0xffff};

      free(r);
      lwm2m_records_init(&res.values);
      log_info("%s: observation dropped; its next notification gets RST",
               reg->ep);
      if (cb)
        cb(arg, &res);
      return 0;
    }
  } else {
    srv_fill_token(srv, r->token);
  }

  rc = send_pdu(reg, r, req, err, sizeof(err));
  if (rc < 0) {
    free(r);
    immediate_fail(cb, arg, rc == -EIO ? -ENOTCONN : -EINVAL, err);
    return 0;
  }
  if (req->op == SRV_OP_OBSERVE || req->op == SRV_OP_OBSERVE_COMPOSITE)
    obs_add(reg, r, req);
  r->handle = srv->next_handle++;
  hmap_insert(&srv->reqs_by_token, &r->by_token,
              token_hash(r->token, SRV_TOKEN_LEN));
  hmap_insert(&srv->reqs_by_handle, &r->by_handle,
              hash_bytes(&r->handle, sizeof(r->handle)));
  r->reg_next = reg->reqs;
  reg->reqs = r;
  loop_timer_arm(srv->loop, &r->timeout,
                 req->timeout_ms > 0 ? req->timeout_ms
                                     : srv->cfg.request_timeout_ms);
  log_debug("%s: %s sent", reg->ep, srv_op_name(req->op));
  return r->handle;
}

uint64_t srv_send(struct srv *srv, const char *ep,
                  const struct srv_request *req, srv_result_cb *cb, void *arg)
{
  struct srv_reg *reg = srv_reg_find(srv, ep);
  int64_t id;

  if (!reg) {
    immediate_fail(cb, arg, -ENOENT, "device not registered");
    return 0;
  }
  if (srv_reg_awake(reg) && !reg->flushing)
    return send_now(reg, req, cb, arg, 0);
  /* Not heard since a restart: make it reachable for the next try. */
  srv_reg_reach(reg);
  if (!req->allow_queue) {
    immediate_fail(cb, arg, -EAGAIN,
                   reg->queue_mode ? "device is asleep (queue mode)"
                                   : "device not reachable yet");
    return 0;
  }
  id = enqueue(reg, req);
  if (id < 0) {
    immediate_fail(cb, arg, -EIO, "cannot store the queued request");
    return 0;
  }
  {
    struct srv_result res = {.status = 0, .format = 0xffff, .queued_id = id};

    lwm2m_records_init(&res.values);
    if (cb)
      cb(arg, &res);
  }
  return 0;
}

/* Decodes an answer's payload into res according to the operation. */
static void decode_answer(struct srv *srv, const struct srv_req *r,
                          const coap_pdu_t *pdu, struct srv_result *res)
{
  coap_opt_iterator_t oi;
  coap_opt_t *opt;
  const uint8_t *data = NULL;
  size_t len = 0, offset, total;
  const struct lwm2m_path root = {.len = 0};
  char err[256];

  opt = coap_check_option(pdu, COAP_OPTION_CONTENT_FORMAT, &oi);
  res->format = opt ? (uint16_t)coap_decode_var_bytes(coap_opt_value(opt),
                                                      coap_opt_length(opt))
                    : 0xffff;
  if (!coap_get_data_large(pdu, &len, &data, &offset, &total))
    return;
  if (r->op == SRV_OP_DISCOVER) {
    res->links = xstrndup((const char *)data, len);
    return;
  }
  if (r->op != SRV_OP_READ && r->op != SRV_OP_OBSERVE &&
      r->op != SRV_OP_READ_COMPOSITE && r->op != SRV_OP_OBSERVE_COMPOSITE)
    return;
  if (res->format == 0xffff)
    res->format = LWM2M_CT_TEXT;
  if (lwm2m_decode(res->format, data, len,
                   is_composite(r->op) ? &root : &r->path, srv->model,
                   &res->values, err, sizeof(err)) < 0) {
    res->status = -EPROTO;
    res->error = xasprintf("cannot decode the answer (%s): %s",
                           lwm2m_ct_name(res->format), err);
  }
}

static coap_response_t on_notification(struct srv *srv, struct srv_obs *o,
                                       const coap_pdu_t *pdu)
{
  struct srv_reg *reg = o->reg;
  struct srv_req fake = {.op = o->npaths ? SRV_OP_OBSERVE_COMPOSITE
                                         : SRV_OP_OBSERVE,
                         .path = o->path};
  struct srv_result res = {.format = 0xffff};
  char *ep;

  lwm2m_records_init(&res.values);
  if (COAP_RESPONSE_CLASS(coap_pdu_get_code(pdu)) != 2) {
    /* An error notification ends the observation. */
    log_info("%s: observation ended by the device", reg->ep);
    for (struct srv_obs **pp = &reg->obs; *pp; pp = &(*pp)->next) {
      if (*pp == o) {
        *pp = o->next;
        break;
      }
    }
    obs_free(srv, o);
    return COAP_RESPONSE_OK;
  }
  decode_answer(srv, &fake, pdu, &res);
  ep = xstrdup(reg->ep);
  if (res.status < 0) {
    log_info("%s: bad notification: %s", ep, res.error);
  } else {
    SRV_EMIT(srv, notify, ep, &o->path, &res.values);
  }
  result_clear(&res);
  /* A notification shows a queue-mode device is awake. */
  reg = srv_reg_find(srv, ep);
  if (reg && reg->queue_mode)
    srv_reg_seen(reg, NULL);
  free(ep);
  return COAP_RESPONSE_OK;
}

coap_response_t srv_on_response(coap_session_t *session,
                                const coap_pdu_t *sent,
                                const coap_pdu_t *received,
                                const coap_mid_t mid)
{
  struct srv *srv = coap_get_app_data(coap_session_get_context(session));
  coap_bin_const_t tok = coap_pdu_get_token(received);
  struct srv_req *r = find_req(srv, tok.s, tok.length);
  struct srv_obs *o;
  struct srv_result res = {.format = 0xffff};
  coap_opt_iterator_t oi;

  srv->rx_count++;
  if (!r) {
    o = find_obs(srv, tok.s, tok.length);
    if (o)
      return on_notification(srv, o, received);
    /* Unknown token: libcoap answers with RST, which also ends a
     * stale observation on the device. */
    log_debug("answer with an unknown token dropped");
    return COAP_RESPONSE_FAIL;
  }
  lwm2m_records_init(&res.values);
  res.code = (uint8_t)coap_pdu_get_code(received);
  decode_answer(srv, r, received, &res);
  if ((r->op == SRV_OP_OBSERVE || r->op == SRV_OP_OBSERVE_COMPOSITE)) {
    struct srv_obs *ob = find_obs(srv, r->token, SRV_TOKEN_LEN);

    /* Without an Observe option the device declined to observe. */
    if (ob && (COAP_RESPONSE_CLASS(res.code) != 2 ||
               !coap_check_option(received, COAP_OPTION_OBSERVE, &oi))) {
      for (struct srv_obs **pp = &r->reg->obs; *pp; pp = &(*pp)->next) {
        if (*pp == ob) {
          *pp = ob->next;
          break;
        }
      }
      obs_free(srv, ob);
    } else if (ob) {
      ob->established = true;
    }
  }
  log_debug("%s: %s answered %d.%02d", r->reg->ep, srv_op_name(r->op),
            res.code >> 5, res.code & 0x1f);
  req_finish(r, &res);
  result_clear(&res);
  return COAP_RESPONSE_OK;
}

void srv_on_nack(coap_session_t *session, const coap_pdu_t *sent,
                 const coap_nack_reason_t reason, const coap_mid_t mid)
{
  struct srv *srv = coap_get_app_data(coap_session_get_context(session));
  coap_bin_const_t tok;
  struct srv_req *r;

  if (!sent)
    return;
  tok = coap_pdu_get_token(sent);
  r = find_req(srv, tok.s, tok.length);
  if (!r)
    return;
  switch (reason) {
  case COAP_NACK_RST:
    req_fail(r, -ENOTCONN, "the device reset the request");
    break;
  case COAP_NACK_TOO_MANY_RETRIES:
    if (r->reg->queue_mode)
      r->reg->awake_until = 0;
    req_fail(r, -ETIMEDOUT, "no answer after all retransmissions");
    break;
  default:
    req_fail(r, -ENOTCONN, "the request could not be delivered (%d)",
             (int)reason);
    break;
  }
}

/* Queue persistence: the request as JSON, and back. */
static char *request_body_json(const struct srv_request *req)
{
  json_t *j = json_object();
  char *s;

  if (req->values)
    json_object_set_new(j, "values", lwm2m_records_to_json(req->values));
  if (req->args)
    json_object_set_new(j, "args", json_string(req->args));
  if (req->attrs)
    json_object_set_new(j, "attributes", json_string(req->attrs));
  if (req->npaths > 0) {
    json_t *a = json_array();

    for (size_t i = 0; i < req->npaths; i++) {
      char p[64];

      lwm2m_path_format(&req->paths[i], p, sizeof(p));
      json_array_append_new(a, json_string(p));
    }
    json_object_set_new(j, "paths", a);
  }
  if (req->has_format)
    json_object_set_new(j, "format", json_integer(req->format));
  if (req->timeout_ms)
    json_object_set_new(j, "timeout_ms", json_integer(req->timeout_ms));
  s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

char *srv_result_json(const struct srv_result *res)
{
  json_t *j = json_object();
  char code[8];
  char *s;

  if (res->status == 0) {
    srv_code_format(res->code, code, sizeof(code));
    json_object_set_new(j, "code", json_string(code));
  }
  if (res->values.len > 0)
    json_object_set_new(j, "values", lwm2m_records_to_json(&res->values));
  if (res->links)
    json_object_set_new(j, "links", json_string(res->links));
  if (res->error)
    json_object_set_new(j, "error", json_string(res->error));
  s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

/* The outcome of a request sent from the queue, written to its row. */
static void queued_done(void *arg, const struct srv_result *res)
{
  struct srv *srv = ((void **)arg)[0];
  int64_t id = (int64_t)(intptr_t)((void **)arg)[1];
  char code[8] = "";
  char *json = srv_result_json(res);
  const char *state = res->status == 0 && COAP_RESPONSE_CLASS(res->code) == 2
                          ? "done"
                          : "failed";

  if (res->status == 0)
    srv_code_format(res->code, code, sizeof(code));
  if (srv_txn(srv) < 0 ||
      db_request_finish(srv->db, id, state, loop_wall(srv->loop),
                        res->status == 0 ? code : NULL, json, res->error) < 0)
    log_err("request %lld: outcome not stored", (long long)id);
  else
    log_info("request %lld: %s%s%s", (long long)id, state, code[0] ? " " : "",
             code);
  free(json);
  free(arg);
}

struct flush_ctx {
  struct srv_reg *reg;
  int sent;
};

static int parse_paths(const json_t *a, struct lwm2m_path **paths, size_t *n)
{
  size_t i;
  json_t *v;

  *n = json_array_size(a);
  *paths = *n ? xcalloc(*n, sizeof(**paths)) : NULL;
  json_array_foreach(a, i, v)
  {
    if (!json_is_string(v) ||
        lwm2m_path_parse(json_string_value(v), &(*paths)[i]) < 0)
      return -EINVAL;
  }
  return 0;
}

static void flush_one(void *arg, const struct db_request *dr)
{
  struct flush_ctx *fc = arg;
  struct srv_reg *reg = fc->reg;
  struct srv *srv = reg->srv;
  struct srv_request req = {0};
  struct lwm2m_records values;
  struct lwm2m_path *paths = NULL;
  json_t *body = NULL;
  char err[200] = "";
  void **cbarg;
  int rc = 0;

  lwm2m_records_init(&values);
  if (srv_op_parse(dr->op, &req.op) < 0 ||
      lwm2m_path_parse(dr->path, &req.path) < 0) {
    snprintf(err, sizeof(err), "stored request is not valid");
    rc = -EINVAL;
    goto out;
  }
  body = dr->body ? json_loads(dr->body, 0, NULL) : NULL;
  if (body) {
    json_t *v = json_object_get(body, "values");

    if (v && lwm2m_records_from_json(v, &req.path, srv->model, &values, err,
                                     sizeof(err)) < 0) {
      rc = -EINVAL;
      goto out;
    }
    if (v)
      req.values = &values;
    req.args = json_string_value(json_object_get(body, "args"));
    req.attrs = json_string_value(json_object_get(body, "attributes"));
    if (json_object_get(body, "paths") &&
        parse_paths(json_object_get(body, "paths"), &paths, &req.npaths) < 0) {
      snprintf(err, sizeof(err), "stored paths are not valid");
      rc = -EINVAL;
      goto out;
    }
    req.paths = paths;
    if (json_is_integer(json_object_get(body, "format"))) {
      req.format =
          (uint16_t)json_integer_value(json_object_get(body, "format"));
      req.has_format = true;
    }
    req.timeout_ms = json_integer_value(json_object_get(body, "timeout_ms"));
  }
  if (srv_txn(srv) < 0 ||
      db_request_sent(srv->db, dr->id, loop_wall(srv->loop)) < 0) {
    rc = -EIO;
    snprintf(err, sizeof(err), "cannot mark the request sent");
    goto out;
  }
  cbarg = xcalloc(2, sizeof(void *));
  cbarg[0] = srv;
  cbarg[1] = (void *)(intptr_t)dr->id;
  send_now(reg, &req, queued_done, cbarg, dr->id);
  fc->sent++;
out:
  if (rc < 0 && (srv_txn(srv) < 0 ||
                 db_request_finish(srv->db, dr->id, "failed",
                                   loop_wall(srv->loop), NULL, NULL, err) < 0))
    log_err("request %lld: failure not stored", (long long)dr->id);
  json_decref(body);
  free(paths);
  lwm2m_records_free(&values);
}

void srv_queue_flush(struct srv_reg *reg)
{
  struct flush_ctx fc = {.reg = reg};

  if (!srv_reg_awake(reg) || reg->flushing)
    return;
  /* Requests queued in the meantime wait for the next wake-up instead of
   * overtaking the ones being flushed. */
  reg->flushing = true;
  if (db_requests_queued(reg->srv->db, reg->device_id, flush_one, &fc) < 0)
    log_err("%s: cannot read its queued requests", reg->ep);
  reg->flushing = false;
  if (fc.sent > 0)
    log_info("%s: awake, sent %d queued requests", reg->ep, fc.sent);
}

void srv_queue_sweep(struct srv *srv)
{
  int64_t n = 0;

  if (srv_txn(srv) == 0 &&
      db_requests_expire(srv->db, loop_wall(srv->loop), &n) == 0 && n > 0)
    log_info("%lld queued requests expired", (long long)n);
}

struct queue_json_ctx {
  json_t *arr;
};

static void request_to_json(void *arg, const struct db_request *r)
{
  json_t *arr = arg;
  json_t *o = json_object();
  char t[32];

  json_object_set_new(o, "id", json_integer(r->id));
  json_object_set_new(o, "endpoint", json_string(r->endpoint));
  json_object_set_new(o, "op", json_string(r->op));
  json_object_set_new(o, "path", json_string(r->path));
  json_object_set_new(o, "state", json_string(r->state));
  format_iso8601(r->created_at, t, sizeof(t));
  json_object_set_new(o, "created_at", json_string(t));
  format_iso8601(r->expires_at, t, sizeof(t));
  json_object_set_new(o, "expires_at", json_string(t));
  if (r->sent_at) {
    format_iso8601(r->sent_at, t, sizeof(t));
    json_object_set_new(o, "sent_at", json_string(t));
  }
  if (r->finished_at) {
    format_iso8601(r->finished_at, t, sizeof(t));
    json_object_set_new(o, "finished_at", json_string(t));
  }
  if (r->body)
    json_object_set_new(o, "request", json_loads(r->body, 0, NULL));
  if (r->code)
    json_object_set_new(o, "code", json_string(r->code));
  if (r->result)
    json_object_set_new(o, "result", json_loads(r->result, 0, NULL));
  if (r->error)
    json_object_set_new(o, "error", json_string(r->error));
  json_array_append_new(arr, o);
}

json_t *srv_queue_json(struct srv *srv, const char *ep, int64_t after_id,
                       int limit)
{
  struct srv_reg *reg = srv_reg_find(srv, ep);
  int64_t device_id;
  json_t *arr;

  if (reg)
    device_id = reg->device_id;
  else if (db_device_id(srv->db, ep, &device_id) < 0)
    return NULL;
  arr = json_array();
  if (db_requests_list(srv->db, device_id, after_id, limit, request_to_json,
                       arr) < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

json_t *srv_request_json(struct srv *srv, int64_t id)
{
  json_t *arr = json_array();
  json_t *one;

  if (db_request_get(srv->db, id, request_to_json, arr) < 0) {
    json_decref(arr);
    return NULL;
  }
  one = json_incref(json_array_get(arr, 0));
  json_decref(arr);
  return one;
}
