/*
 * CBOR through libcbor: a guarded loader for untrusted input, value
 * conversion shared by the CBOR formats, the output helpers, and LwM2M
 * CBOR (11544) itself.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The pre-flight pass. libcbor's streaming decoder reports one head at a
 * time without allocating; a stack of counters tells when containers end.
 * A tag counts as a container of one item, so a chain of tags is bounded
 * by the depth limit too.
 */
struct cbor_check {
  size_t remaining; /* bytes from the current head to the end */
  size_t items;     /* data items seen so far */
  size_t depth;
  struct {
    uint64_t left; /* items still expected (definite containers) */
    bool indef;
  } st[LWM2M_CBOR_DEPTH_MAX];
  bool done;
  const char *why;
  uint64_t bad_count;
};

static void check_item(struct cbor_check *c)
{
  if (++c->items > LWM2M_CBOR_ITEMS_MAX && !c->why) {
    c->why = "too many data items";
    c->bad_count = c->items;
  }
  if (c->depth > 0 && !c->st[c->depth - 1].indef)
    c->st[c->depth - 1].left--;
}

static void check_pop(struct cbor_check *c)
{
  while (c->depth > 0 && !c->st[c->depth - 1].indef &&
         c->st[c->depth - 1].left == 0)
    c->depth--;
  if (c->depth == 0)
    c->done = true;
}

/*
 * A container head: items is what it holds (2n for a map of n pairs),
 * claimed the count its head states, checked against the bytes left since
 * every element takes at least one byte.
 */
static void check_push(struct cbor_check *c, uint64_t claimed, uint64_t items,
                       bool indef)
{
  if (c->why)
    return;
  check_item(c);
  if (c->depth == LWM2M_CBOR_DEPTH_MAX) {
    c->why = "nesting too deep";
    return;
  }
  if (!indef && claimed > c->remaining) {
    c->why = "container claims more elements than bytes remain";
    c->bad_count = claimed;
    return;
  }
  c->st[c->depth].left = items;
  c->st[c->depth].indef = indef;
  c->depth++;
  check_pop(c);
}

static void check_scalar(struct cbor_check *c)
{
  if (c->why)
    return;
  check_item(c);
  check_pop(c);
}

static void cb_u8(void *ctx, uint8_t v)
{
  check_scalar(ctx);
}

static void cb_u16(void *ctx, uint16_t v)
{
  check_scalar(ctx);
}

static void cb_u32(void *ctx, uint32_t v)
{
  check_scalar(ctx);
}

static void cb_u64(void *ctx, uint64_t v)
{
  check_scalar(ctx);
}

static void cb_bytes(void *ctx, cbor_data d, size_t n)
{
  check_scalar(ctx);
}

/* libcbor refuses text that is not UTF-8 without saying so; say it here. */
static void cb_text(void *ctx, cbor_data d, size_t n)
{
  struct cbor_check *c = ctx;

  if (!c->why && !lwm2m_utf8_valid(d, n)) {
    c->why = "text string is not valid UTF-8";
    return;
  }
  check_scalar(ctx);
}

static void cb_simple(void *ctx)
{
  check_scalar(ctx);
}

static void cb_f4(void *ctx, float f)
{
  check_scalar(ctx);
}

static void cb_f8(void *ctx, double f)
{
  check_scalar(ctx);
}

static void cb_bool(void *ctx, bool b)
{
  check_scalar(ctx);
}

static void cb_indef(void *ctx)
{
  check_push(ctx, 0, 0, true);
}

static void cb_array(void *ctx, size_t n)
{
  check_push(ctx, n, n, false);
}

static void cb_map(void *ctx, size_t n)
{
  /* 2n cannot overflow: check_push() refuses any n above the payload
   * size before the count is used. */
  check_push(ctx, n, n <= LWM2M_PAYLOAD_MAX ? 2 * (uint64_t)n : 0, false);
}

static void cb_tag(void *ctx, uint64_t v)
{
  check_push(ctx, 1, 1, false);
}

static void cb_break(void *ctx)
{
  struct cbor_check *c = ctx;

  if (c->why)
    return;
  if (c->depth == 0 || !c->st[c->depth - 1].indef) {
    c->why = "unexpected break";
    return;
  }
  c->depth--;
  check_pop(c);
}

static const struct cbor_callbacks check_callbacks = {
    .uint8 = cb_u8,
    .uint16 = cb_u16,
    .uint32 = cb_u32,
    .uint64 = cb_u64,
    .negint8 = cb_u8,
    .negint16 = cb_u16,
    .negint32 = cb_u32,
    .negint64 = cb_u64,
    .byte_string_start = cb_indef,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_indef,
    .indef_array_start = cb_indef,
    .array_start = cb_array,
    .indef_map_start = cb_indef,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_f4,
    .float4 = cb_f4,
    .float8 = cb_f8,
    .undefined = cb_simple,
    .null = cb_simple,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

cbor_item_t *lwm2m_cbor_load(const char *prefix, const uint8_t *buf,
                             size_t len, char *err, size_t errlen)
{
  struct cbor_check c = {.depth = 0};
  struct cbor_load_result res;
  cbor_item_t *it;
  size_t off = 0;

  if (len == 0) {
    lwm2m_errf(err, errlen, "%s: empty payload", prefix);
    return NULL;
  }
  while (!c.done) {
    struct cbor_decoder_result r;

    if (off >= len) {
      lwm2m_errf(err, errlen, "%s: truncated: data ends at offset %zu", prefix,
                 off);
      return NULL;
    }
    c.remaining = len - off;
    r = cbor_stream_decode(buf + off, len - off, &check_callbacks, &c);
    if (r.status == CBOR_DECODER_NEDATA) {
      lwm2m_errf(err, errlen,
                 "%s: truncated: the item at offset %zu needs %zu bytes, "
                 "%zu remain",
                 prefix, off, r.required, len - off);
      return NULL;
    }
    if (r.status != CBOR_DECODER_FINISHED || r.read == 0) {
      lwm2m_errf(err, errlen,
                 "%s: malformed item (initial byte 0x%02x) at "
                 "offset %zu",
                 prefix, buf[off], off);
      return NULL;
    }
    if (c.why) {
      if (c.bad_count)
        lwm2m_errf(err, errlen, "%s: %s (%llu) at offset %zu", prefix, c.why,
                   (unsigned long long)c.bad_count, off);
      else
        lwm2m_errf(err, errlen, "%s: %s at offset %zu", prefix, c.why, off);
      return NULL;
    }
    off += r.read;
  }
  if (off != len) {
    lwm2m_errf(err, errlen,
               "%s: %zu trailing bytes after the item at "
               "offset %zu",
               prefix, len - off, off);
    return NULL;
  }
  it = cbor_load(buf, len, &res);
  if (!it) {
    lwm2m_errf(err, errlen, "%s: %s at offset %zu", prefix,
               res.error.code == CBOR_ERR_MEMERROR ? "out of memory"
                                                   : "malformed data",
               res.error.position);
    return NULL;
  }
  return it;
}

uint8_t *lwm2m_cbor_string(const cbor_item_t *it, size_t *len)
{
  bool text = cbor_isa_string(it);
  bool indef =
      text ? cbor_string_is_indefinite(it) : cbor_bytestring_is_indefinite(it);
  struct lwm2m_buf b = {.data = NULL};
  uint8_t nul = 0;

  if (!indef) {
    size_t n = text ? cbor_string_length(it) : cbor_bytestring_length(it);
    const uint8_t *p =
        text ? cbor_string_handle(it) : cbor_bytestring_handle(it);

    (void)lwm2m_buf_put(&b, p, n);
  } else {
    size_t nc =
        text ? cbor_string_chunk_count(it) : cbor_bytestring_chunk_count(it);
    cbor_item_t **ch = text ? cbor_string_chunks_handle(it)
                            : cbor_bytestring_chunks_handle(it);

    /* The chunks lie inside a payload already under LWM2M_PAYLOAD_MAX, so
     * the buffer cannot overflow its limit. */
    for (size_t i = 0; i < nc; i++)
      (void)lwm2m_buf_put(
          &b, text ? cbor_string_handle(ch[i]) : cbor_bytestring_handle(ch[i]),
          text ? cbor_string_length(ch[i]) : cbor_bytestring_length(ch[i]));
  }
  *len = b.len;
  (void)lwm2m_buf_put(&b, &nul, 1);
  return b.data;
}

int lwm2m_cbor_num(const cbor_item_t *it, struct lwm2m_num *n)
{
  memset(n, 0, sizeof(*n));
  if (cbor_isa_uint(it)) {
    uint64_t u = cbor_get_int(it);

    if (u <= INT64_MAX) {
      n->kind = LWM2M_NUM_INT;
      n->i = (int64_t)u;
    } else {
      n->kind = LWM2M_NUM_UINT;
      n->u = u;
    }
    return 0;
  }
  if (cbor_isa_negint(it)) {
    uint64_t u = cbor_get_int(it);

    if (u > INT64_MAX)
      return -ERANGE;
    n->kind = LWM2M_NUM_INT;
    n->i = -1 - (int64_t)u;
    return 0;
  }
  if (cbor_isa_float_ctrl(it) && !cbor_float_ctrl_is_ctrl(it)) {
    n->kind = LWM2M_NUM_FLOAT;
    n->f = cbor_float_get_float(it);
    return 0;
  }
  return -EINVAL;
}

/*
 * cbor_is_bool() and cbor_is_null() assert (abort) when given a float, so
 * every caller goes through these.
 */
bool lwm2m_cbor_is_bool(const cbor_item_t *it)
{
  return cbor_isa_float_ctrl(it) && cbor_float_ctrl_is_ctrl(it) &&
         cbor_is_bool(it);
}

static bool is_null(const cbor_item_t *it)
{
  return cbor_isa_float_ctrl(it) && cbor_float_ctrl_is_ctrl(it) &&
         cbor_is_null(it);
}

static const char *item_kind(const cbor_item_t *it)
{
  switch (cbor_typeof(it)) {
  case CBOR_TYPE_UINT:
  case CBOR_TYPE_NEGINT:
    return "an integer";
  case CBOR_TYPE_BYTESTRING:
    return "a byte string";
  case CBOR_TYPE_STRING:
    return "a text string";
  case CBOR_TYPE_ARRAY:
    return "an array";
  case CBOR_TYPE_MAP:
    return "a map";
  case CBOR_TYPE_TAG:
    return "a tagged item";
  case CBOR_TYPE_FLOAT_CTRL:
    if (!cbor_float_ctrl_is_ctrl(it))
      return "a float";
    if (lwm2m_cbor_is_bool(it))
      return "a boolean";
    if (is_null(it))
      return "null";
    return "a simple value";
  }
  return "an unknown item";
}

static int mismatch(const cbor_item_t *it, enum lwm2m_type want,
                    const char *where, char *err, size_t errlen)
{
  lwm2m_errf(err, errlen, "%s: %s where %s was expected", where, item_kind(it),
             lwm2m_type_name(want));
  return -EINVAL;
}

int lwm2m_cbor_to_value(const cbor_item_t *it, enum lwm2m_type want,
                        struct lwm2m_value *v, const char *where, char *err,
                        size_t errlen)
{
  struct lwm2m_num num;
  int rc;

  if (cbor_isa_tag(it)) {
    cbor_item_t *in;

    /* RFC 8949 tag 1 (epoch seconds) is how a Time may be marked. */
    if (cbor_tag_value(it) != 1 ||
        !(want == LWM2M_T_TIME || want == LWM2M_T_NONE)) {
      lwm2m_errf(err, errlen, "%s: unexpected CBOR tag %llu", where,
                 (unsigned long long)cbor_tag_value(it));
      return -EINVAL;
    }
    in = cbor_tag_item(it);
    if (lwm2m_cbor_num(in, &num) < 0)
      rc = mismatch(in, LWM2M_T_TIME, where, err, errlen);
    else
      rc = lwm2m_num_to_value(&num, LWM2M_T_TIME, v, where, err, errlen);
    cbor_decref(&in);
    return rc;
  }
  rc = lwm2m_cbor_num(it, &num);
  if (rc == -ERANGE) {
    lwm2m_errf(err, errlen, "%s: negative integer out of range", where);
    return -EINVAL;
  }
  if (rc == 0)
    return lwm2m_num_to_value(&num, want, v, where, err, errlen);
  if (lwm2m_cbor_is_bool(it)) {
    if (want != LWM2M_T_BOOLEAN && want != LWM2M_T_NONE)
      return mismatch(it, want, where, err, errlen);
    memset(v, 0, sizeof(*v));
    v->type = LWM2M_T_BOOLEAN;
    v->u.b = cbor_get_bool(it);
    return 0;
  }
  if (cbor_isa_string(it)) {
    size_t n;
    uint8_t *s;

    if (want == LWM2M_T_OBJLNK) {
      uint16_t oid, iid;

      s = lwm2m_cbor_string(it, &n);
      rc = lwm2m_parse_objlnk((const char *)s, n, &oid, &iid);
      free(s);
      if (rc < 0) {
        lwm2m_errf(err, errlen, "%s: Objlnk is not \"OID:IID\"", where);
        return -EINVAL;
      }
      memset(v, 0, sizeof(*v));
      v->type = LWM2M_T_OBJLNK;
      v->u.lnk.oid = oid;
      v->u.lnk.iid = iid;
      return 0;
    }
    if (want != LWM2M_T_STRING && want != LWM2M_T_CORELNK &&
        want != LWM2M_T_NONE)
      return mismatch(it, want, where, err, errlen);
    s = lwm2m_cbor_string(it, &n);
    memset(v, 0, sizeof(*v));
    v->type = want == LWM2M_T_CORELNK ? LWM2M_T_CORELNK : LWM2M_T_STRING;
    v->u.bytes.data = s;
    v->u.bytes.len = n;
    return 0;
  }
  if (cbor_isa_bytestring(it)) {
    size_t n;

    if (want != LWM2M_T_OPAQUE && want != LWM2M_T_NONE)
      return mismatch(it, want, where, err, errlen);
    memset(v, 0, sizeof(*v));
    v->type = LWM2M_T_OPAQUE;
    v->u.bytes.data = lwm2m_cbor_string(it, &n);
    v->u.bytes.len = n;
    return 0;
  }
  lwm2m_errf(err, errlen, "%s: %s is not a resource value", where,
             item_kind(it));
  return -EINVAL;
}

static int put_head(struct lwm2m_buf *b, const unsigned char *tmp, size_t n)
{
  return n == 0 ? -EINVAL : lwm2m_buf_put(b, tmp, n);
}

int lwm2m_buf_cbor_uint(struct lwm2m_buf *b, uint64_t v)
{
  unsigned char tmp[16];

  return put_head(b, tmp, cbor_encode_uint(v, tmp, sizeof(tmp)));
}

int lwm2m_buf_cbor_int(struct lwm2m_buf *b, int64_t v)
{
  unsigned char tmp[16];

  if (v >= 0)
    return lwm2m_buf_cbor_uint(b, (uint64_t)v);
  /* CBOR stores -1 - n; -1 - INT64_MIN is INT64_MAX, no overflow. */
  return put_head(b, tmp,
                  cbor_encode_negint((uint64_t)(-1 - v), tmp, sizeof(tmp)));
}

int lwm2m_buf_cbor_text(struct lwm2m_buf *b, const void *p, size_t n)
{
  unsigned char tmp[16];
  int rc = put_head(b, tmp, cbor_encode_string_start(n, tmp, sizeof(tmp)));

  return rc < 0 ? rc : lwm2m_buf_put(b, p, n);
}

int lwm2m_buf_cbor_bytes(struct lwm2m_buf *b, const void *p, size_t n)
{
  unsigned char tmp[16];
  int rc = put_head(b, tmp, cbor_encode_bytestring_start(n, tmp, sizeof(tmp)));

  return rc < 0 ? rc : lwm2m_buf_put(b, p, n);
}

bool lwm2m_float_fits_single(double f)
{
  /* The range test must come first: converting a double outside float's
   * range to float is undefined behaviour. */
  if (isnan(f) || isinf(f))
    return true;
  return fabs(f) <= FLT_MAX && (double)(float)f == f;
}

int lwm2m_buf_cbor_float(struct lwm2m_buf *b, double f)
{
  unsigned char tmp[16];

  if (lwm2m_float_fits_single(f))
    return put_head(b, tmp, cbor_encode_single((float)f, tmp, sizeof(tmp)));
  return put_head(b, tmp, cbor_encode_double(f, tmp, sizeof(tmp)));
}

int lwm2m_buf_cbor_bool(struct lwm2m_buf *b, bool v)
{
  unsigned char tmp[4];

  return put_head(b, tmp, cbor_encode_bool(v, tmp, sizeof(tmp)));
}

int lwm2m_buf_cbor_array(struct lwm2m_buf *b, size_t n)
{
  unsigned char tmp[16];

  return put_head(b, tmp, cbor_encode_array_start(n, tmp, sizeof(tmp)));
}

int lwm2m_buf_cbor_map(struct lwm2m_buf *b, size_t n)
{
  unsigned char tmp[16];

  return put_head(b, tmp, cbor_encode_map_start(n, tmp, sizeof(tmp)));
}

int lwm2m_cbor_put_value(struct lwm2m_buf *b, const struct lwm2m_value *v)
{
  char lnk[16];

  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    return lwm2m_buf_cbor_int(b, v->u.i);
  case LWM2M_T_UNSIGNED:
    return lwm2m_buf_cbor_uint(b, v->u.u);
  case LWM2M_T_FLOAT:
    return lwm2m_buf_cbor_float(b, v->u.f);
  case LWM2M_T_BOOLEAN:
    return lwm2m_buf_cbor_bool(b, v->u.b);
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    /* CBOR text must be UTF-8 (libcbor would refuse to read it back). */
    if (!lwm2m_utf8_valid(v->u.bytes.data, v->u.bytes.len))
      return -EILSEQ;
    return lwm2m_buf_cbor_text(b, v->u.bytes.data, v->u.bytes.len);
  case LWM2M_T_OPAQUE:
    return lwm2m_buf_cbor_bytes(b, v->u.bytes.data, v->u.bytes.len);
  case LWM2M_T_OBJLNK:
    snprintf(lnk, sizeof(lnk), "%u:%u", (unsigned)v->u.lnk.oid,
             (unsigned)v->u.lnk.iid);
    return lwm2m_buf_cbor_text(b, lnk, strlen(lnk));
  case LWM2M_T_NONE:
    break;
  }
  return -EINVAL;
}

/*
 * LwM2M CBOR (11544): nested maps whose keys are one id or an array of ids
 * (a path fragment), starting at the root whatever the request path, with
 * resource values at the leaves.
 */
#define LWCBOR "LwM2M CBOR"

static int key_ids(const cbor_item_t *k, struct lwm2m_path *p, char *err,
                   size_t errlen)
{
  bool arr = cbor_isa_array(k);
  size_t n = arr ? cbor_array_size(k) : 1;

  if (n == 0) {
    lwm2m_errf(err, errlen, LWCBOR ": empty path fragment");
    return -EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    const cbor_item_t *it = arr ? cbor_array_handle(k)[i] : k;
    uint64_t id;

    if (!cbor_isa_uint(it)) {
      lwm2m_errf(err, errlen, LWCBOR ": map key is %s, not an id",
                 item_kind(it));
      return -EINVAL;
    }
    id = cbor_get_int(it);
    if (id > LWM2M_ID_MAX) {
      lwm2m_errf(err, errlen, LWCBOR ": id %llu out of range",
                 (unsigned long long)id);
      return -EINVAL;
    }
    if (p->len == 4) {
      lwm2m_errf(err, errlen, LWCBOR ": path longer than 4 levels");
      return -EINVAL;
    }
    p->id[p->len++] = (uint16_t)id;
  }
  return 0;
}

static int lwcbor_walk(const cbor_item_t *map, const struct lwm2m_path *at,
                       const struct lwm2m_path *base,
                       const struct lwm2m_model *m, struct lwm2m_records *out,
                       char *err, size_t errlen)
{
  struct cbor_pair *pairs = cbor_map_handle(map);
  size_t n = cbor_map_size(map);

  for (size_t i = 0; i < n; i++) {
    struct lwm2m_path p = *at;
    char ps[LWM2M_PATH_STRLEN], where[64];
    const struct lwm2m_res_def *rd;
    struct lwm2m_value v;
    int rc;

    rc = key_ids(pairs[i].key, &p, err, errlen);
    if (rc < 0)
      return rc;
    /* Each level adds at least one id to a path of at most four, so the
     * recursion is at most four deep. */
    if (cbor_isa_map(pairs[i].value)) {
      rc = lwcbor_walk(pairs[i].value, &p, base, m, out, err, errlen);
      if (rc < 0)
        return rc;
      continue;
    }
    lwm2m_path_format(&p, ps, sizeof(ps));
    if (p.len < 3) {
      lwm2m_errf(err, errlen, LWCBOR ": value at %s, not at a resource", ps);
      return -EINVAL;
    }
    if (!lwm2m_path_under(&p, base)) {
      char bs[LWM2M_PATH_STRLEN];

      lwm2m_path_format(base, bs, sizeof(bs));
      lwm2m_errf(err, errlen, LWCBOR ": record %s is outside %s", ps, bs);
      return -EINVAL;
    }
    if (out->len >= LWM2M_RECORDS_MAX) {
      lwm2m_errf(err, errlen, LWCBOR ": more than %d records",
                 LWM2M_RECORDS_MAX);
      return -EMSGSIZE;
    }
    rd = lwm2m_res_for(m, &p);
    snprintf(where, sizeof(where), LWCBOR ": %s", ps);
    rc = lwm2m_cbor_to_value(pairs[i].value, rd ? rd->type : LWM2M_T_NONE, &v,
                             where, err, errlen);
    if (rc < 0)
      return rc;
    lwm2m_records_add(out, &p, &v);
  }
  return 0;
}

int lwm2m_lwcbor_decode(const uint8_t *buf, size_t len,
                        const struct lwm2m_path *base,
                        const struct lwm2m_model *m, struct lwm2m_records *out,
                        char *err, size_t errlen)
{
  struct lwm2m_path root = {.len = 0};
  cbor_item_t *it = lwm2m_cbor_load(LWCBOR, buf, len, err, errlen);
  int rc;

  if (!it)
    return -EINVAL;
  if (!cbor_isa_map(it)) {
    lwm2m_errf(err, errlen, LWCBOR ": top level is %s, not a map",
               item_kind(it));
    rc = -EINVAL;
  } else {
    rc = lwcbor_walk(it, &root, base, m, out, err, errlen);
  }
  cbor_decref(&it);
  return rc;
}

/* Number of distinct ids at level lv among sorted records [lo, hi). */
static size_t count_groups(const struct lwm2m_record **r, size_t lo, size_t hi,
                           int lv)
{
  size_t n = 0;

  for (size_t i = lo; i < hi; i++)
    if (i == lo || r[i]->path.id[lv] != r[i - 1]->path.id[lv])
      n++;
  return n;
}

static int lwcbor_emit(struct lwm2m_buf *b, const struct lwm2m_record **r,
                       size_t lo, size_t hi, int lv, char *err, size_t errlen)
{
  int rc = lwm2m_buf_cbor_map(b, count_groups(r, lo, hi, lv));

  for (size_t i = lo; rc == 0 && i < hi;) {
    size_t j = i + 1;

    while (j < hi && r[j]->path.id[lv] == r[i]->path.id[lv])
      j++;
    rc = lwm2m_buf_cbor_uint(b, r[i]->path.id[lv]);
    if (rc < 0)
      break;
    if (r[i]->path.len == lv + 1) {
      /* A value here and more records below the same id: the list holds
       * both a resource value and its instances, or a duplicate. */
      if (j - i > 1) {
        char ps[LWM2M_PATH_STRLEN];

        lwm2m_path_format(&r[i]->path, ps, sizeof(ps));
        lwm2m_errf(err, errlen, LWCBOR ": %s appears more than once", ps);
        return -EINVAL;
      }
      rc = lwm2m_cbor_put_value(b, &r[i]->v);
      if (rc == -EILSEQ) {
        char ps[LWM2M_PATH_STRLEN];

        lwm2m_path_format(&r[i]->path, ps, sizeof(ps));
        lwm2m_errf(err, errlen, LWCBOR ": %s: string is not valid UTF-8", ps);
        return -EINVAL;
      }
    } else {
      rc = lwcbor_emit(b, r, i, j, lv + 1, err, errlen);
    }
    i = j;
  }
  return rc;
}

int lwm2m_lwcbor_encode(const struct lwm2m_path *base,
                        const struct lwm2m_records *in,
                        const struct lwm2m_model *m, struct lwm2m_buf *out,
                        char *err, size_t errlen)
{
  const struct lwm2m_record **r;
  int rc;

  rc = lwm2m_encode_check(LWCBOR, base, in, err, errlen);
  if (rc < 0)
    return rc;
  r = lwm2m_records_sorted(in);
  rc = lwcbor_emit(out, r, 0, in->len, 0, err, errlen);
  free(r);
  if (rc == -EMSGSIZE)
    lwm2m_errf(err, errlen, LWCBOR ": output larger than %u bytes",
               LWM2M_PAYLOAD_MAX);
  return rc;
}
