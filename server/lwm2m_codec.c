/*
 * The codec front door: dispatch by Content-Format, the all-or-nothing
 * rule for decoding, and the JSON views the REST API shows.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int decode_fn(const uint8_t *buf, size_t len,
                      const struct lwm2m_path *base,
                      const struct lwm2m_model *m, struct lwm2m_records *out,
                      char *err, size_t errlen);
typedef int encode_fn(const struct lwm2m_path *base,
                      const struct lwm2m_records *in,
                      const struct lwm2m_model *m, struct lwm2m_buf *out,
                      char *err, size_t errlen);

/* max_in: the payload limit, smaller for the formats parsed as a tree. */
static const struct codec {
  uint16_t ct;
  const char *name;
  decode_fn *decode;
  encode_fn *encode;
  size_t max_in;
} codecs[] = {
    {LWM2M_CT_TEXT, "text/plain", lwm2m_text_decode, lwm2m_text_encode,
     LWM2M_PAYLOAD_MAX},
    {LWM2M_CT_LINK, "application/link-format", NULL, NULL, 0},
    {LWM2M_CT_OPAQUE, "application/octet-stream", lwm2m_opaque_decode,
     lwm2m_opaque_encode, LWM2M_PAYLOAD_MAX},
    {LWM2M_CT_CBOR, "application/cbor", lwm2m_cbor1_decode, lwm2m_cbor1_encode,
     LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_SENML_JSON, "application/senml+json", lwm2m_senml_json_decode,
     lwm2m_senml_json_encode, LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_SENML_CBOR, "application/senml+cbor", lwm2m_senml_cbor_decode,
     lwm2m_senml_cbor_encode, LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_TLV, "application/vnd.oma.lwm2m+tlv", lwm2m_tlv_decode,
     lwm2m_tlv_encode, LWM2M_PAYLOAD_MAX},
    {LWM2M_CT_OMA_JSON, "application/vnd.oma.lwm2m+json", lwm2m_omajson_decode,
     lwm2m_omajson_encode, LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_LWM2M_CBOR, "application/vnd.oma.lwm2m+cbor",
     lwm2m_lwcbor_decode, lwm2m_lwcbor_encode, LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_OLD_TEXT, "application/vnd.oma.lwm2m+text", lwm2m_text_decode,
     lwm2m_text_encode, LWM2M_PAYLOAD_MAX},
    {LWM2M_CT_OLD_TLV, "application/vnd.oma.lwm2m+tlv", lwm2m_tlv_decode,
     lwm2m_tlv_encode, LWM2M_PAYLOAD_MAX},
    {LWM2M_CT_OLD_JSON, "application/vnd.oma.lwm2m+json", lwm2m_omajson_decode,
     lwm2m_omajson_encode, LWM2M_TREE_PAYLOAD_MAX},
    {LWM2M_CT_OLD_OPAQUE, "application/vnd.oma.lwm2m+opaque",
     lwm2m_opaque_decode, lwm2m_opaque_encode, LWM2M_PAYLOAD_MAX},
};

static const struct codec *codec_find(uint16_t ct)
{
  for (size_t i = 0; i < ARRAY_SIZE(codecs); i++)
    if (codecs[i].ct == ct)
      return &codecs[i];
  return NULL;
}

bool lwm2m_ct_supported(uint16_t ct)
{
  const struct codec *c = codec_find(ct);

  return c && c->decode && c->encode;
}

const char *lwm2m_ct_name(uint16_t ct)
{
  const struct codec *c = codec_find(ct);

  return c ? c->name : "?";
}

static int unsupported(uint16_t ct, char *err, size_t errlen)
{
  if (ct == LWM2M_CT_LINK)
    lwm2m_errf(err, errlen, "link format is read with lwm2m_links_parse()");
  else
    lwm2m_errf(err, errlen, "content format %u is not supported",
               (unsigned)ct);
  return -ENOTSUP;
}

int lwm2m_decode(uint16_t ct, const uint8_t *buf, size_t len,
                 const struct lwm2m_path *base, const struct lwm2m_model *m,
                 struct lwm2m_records *out, char *err, size_t errlen)
{
  static const uint8_t empty[1];
  const struct codec *c = codec_find(ct);
  struct lwm2m_records tmp;
  int rc;

  if (!c || !c->decode)
    return unsupported(ct, err, errlen);
  if (len > c->max_in) {
    lwm2m_errf(err, errlen, "%s: payload of %zu bytes is over the %zu limit",
               c->name, len, c->max_in);
    return -EMSGSIZE;
  }
  if (base->len > 4) {
    lwm2m_errf(err, errlen, "invalid request path");
    return -EINVAL;
  }
  if (!buf)
    buf = empty;
  /* Decode on the side so a failure half way leaves out untouched. */
  lwm2m_records_init(&tmp);
  rc = c->decode(buf, len, base, m, &tmp, err, errlen);
  if (rc < 0) {
    lwm2m_records_free(&tmp);
    return rc;
  }
  lwm2m_records_move(out, &tmp);
  return 0;
}

int lwm2m_encode(uint16_t ct, const struct lwm2m_path *base,
                 const struct lwm2m_records *in, const struct lwm2m_model *m,
                 uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
  const struct codec *c = codec_find(ct);
  struct lwm2m_buf b = {.data = NULL};
  int rc;

  if (!c || !c->encode)
    return unsupported(ct, err, errlen);
  if (base->len > 4) {
    lwm2m_errf(err, errlen, "invalid request path");
    return -EINVAL;
  }
  rc = c->encode(base, in, m, &b, err, errlen);
  if (rc < 0) {
    lwm2m_buf_free(&b);
    return rc;
  }
  /* An empty payload still gets a buffer, so callers always free(). */
  if (!b.data)
    b.data = xmalloc(1);
  *out = b.data;
  *outlen = b.len;
  return 0;
}

int lwm2m_encode_paths(uint16_t ct, const struct lwm2m_path *paths, size_t n,
                       uint8_t **out, size_t *outlen)
{
  struct lwm2m_buf b = {.data = NULL};
  int rc;

  if (ct != LWM2M_CT_SENML_JSON && ct != LWM2M_CT_SENML_CBOR)
    return -ENOTSUP;
  rc = lwm2m_senml_encode_paths(ct == LWM2M_CT_SENML_CBOR, paths, n, &b);
  if (rc < 0) {
    lwm2m_buf_free(&b);
    return rc;
  }
  if (!b.data)
    b.data = xmalloc(1);
  *out = b.data;
  *outlen = b.len;
  return 0;
}

int lwm2m_decode_paths(uint16_t ct, const uint8_t *buf, size_t len,
                       struct lwm2m_path **paths, size_t *n, char *err,
                       size_t errlen)
{
  if (ct != LWM2M_CT_SENML_JSON && ct != LWM2M_CT_SENML_CBOR)
    return unsupported(ct, err, errlen);
  if (len > LWM2M_TREE_PAYLOAD_MAX) {
    lwm2m_errf(err, errlen, "%s: payload of %zu bytes is over the %d limit",
               lwm2m_ct_name(ct), len, LWM2M_TREE_PAYLOAD_MAX);
    return -EMSGSIZE;
  }
  return lwm2m_senml_decode_paths(ct == LWM2M_CT_SENML_CBOR,
                                  buf ? buf : (const uint8_t *)"", len, paths,
                                  n, err, errlen);
}

/* A JSON string for bytes that may not be UTF-8: bad bytes become U+FFFD. */
static json_t *json_text(const uint8_t *p, size_t n)
{
  struct lwm2m_buf b = {.data = NULL};
  json_t *j;

  if (lwm2m_utf8_valid(p, n))
    return json_stringn((const char *)p, n);
  for (size_t i = 0; i < n;) {
    size_t k = lwm2m_utf8_seq(p + i, n - i);

    if (k == 0) {
      (void)lwm2m_buf_put(&b, "\xef\xbf\xbd", 3);
      i++;
    } else {
      (void)lwm2m_buf_put(&b, p + i, k);
      i += k;
    }
  }
  j = json_stringn(b.data ? (const char *)b.data : "", b.len);
  lwm2m_buf_free(&b);
  return j;
}

static json_t *value_to_json(const struct lwm2m_value *v)
{
  char lnk[16], *b64;
  json_t *j;

  switch (v->type) {
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    return json_text(v->u.bytes.data, v->u.bytes.len);
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
  case LWM2M_T_UNSIGNED:
  case LWM2M_T_FLOAT:
    j = lwm2m_json_number(v);
    return j ? j : json_null();
  case LWM2M_T_BOOLEAN:
    return json_boolean(v->u.b);
  case LWM2M_T_OPAQUE:
    b64 = lwm2m_base64_encode(v->u.bytes.data, v->u.bytes.len, false);
    j = json_string(b64);
    free(b64);
    return j;
  case LWM2M_T_OBJLNK:
    snprintf(lnk, sizeof(lnk), "%u:%u", (unsigned)v->u.lnk.oid,
             (unsigned)v->u.lnk.iid);
    return json_string(lnk);
  case LWM2M_T_NONE:
    break;
  }
  return json_null();
}

json_t *lwm2m_records_to_json(const struct lwm2m_records *r)
{
  json_t *o = json_object();

  if (!o)
    return NULL;
  for (size_t i = 0; i < r->len; i++) {
    char ps[LWM2M_PATH_STRLEN];

    lwm2m_path_format(&r->v[i].path, ps, sizeof(ps));
    if (json_object_set_new(o, ps, value_to_json(&r->v[i].v)) < 0) {
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

/* Resolves a key of the JSON view to a path under base. */
static int json_key_path(const char *key, const struct lwm2m_path *base,
                         struct lwm2m_path *p)
{
  char buf[LWM2M_PATH_STRLEN + 32];

  if (key[0] == '/')
    return lwm2m_path_parse(key, p) == 0 && lwm2m_path_under(p, base)
               ? 0
               : -EINVAL;
  lwm2m_path_format(base, buf, LWM2M_PATH_STRLEN);
  if (base->len == 0)
    buf[0] = '\0';
  if (strlen(key) > 30)
    return -EINVAL;
  snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%s", key);
  return lwm2m_path_parse(buf, p);
}

static int json_to_value(const json_t *j, enum lwm2m_type want,
                         struct lwm2m_value *v, const char *where, char *err,
                         size_t errlen)
{
  memset(v, 0, sizeof(*v));
  if (json_is_number(j)) {
    struct lwm2m_num n = {.kind = LWM2M_NUM_INT};

    if (json_is_integer(j)) {
      n.i = json_integer_value(j);
    } else {
      n.kind = LWM2M_NUM_FLOAT;
      n.f = json_real_value(j);
    }
    return lwm2m_num_to_value(&n, want, v, where, err, errlen);
  }
  if (json_is_boolean(j)) {
    if (want != LWM2M_T_NONE && want != LWM2M_T_BOOLEAN)
      goto mismatch;
    v->type = LWM2M_T_BOOLEAN;
    v->u.b = json_is_true(j);
    return 0;
  }
  if (json_is_string(j)) {
    const char *s = json_string_value(j);
    size_t n = json_string_length(j), bad;
    uint8_t *data;
    size_t dlen;

    switch (want) {
    case LWM2M_T_NONE:
    case LWM2M_T_STRING:
    case LWM2M_T_CORELNK:
      lwm2m_value_set_bytes(v, want == LWM2M_T_NONE ? LWM2M_T_STRING : want, s,
                            n);
      return 0;
    case LWM2M_T_OPAQUE:
      if (lwm2m_base64_decode(s, n, false, &data, &dlen, &bad) < 0) {
        lwm2m_errf(err, errlen,
                   "%s: Opaque value is not base64 (character %zu)", where,
                   bad);
        return -EINVAL;
      }
      v->type = LWM2M_T_OPAQUE;
      v->u.bytes.data = data;
      v->u.bytes.len = dlen;
      return 0;
    case LWM2M_T_OBJLNK:
      v->type = LWM2M_T_OBJLNK;
      if (lwm2m_parse_objlnk(s, n, &v->u.lnk.oid, &v->u.lnk.iid) == 0)
        return 0;
      lwm2m_errf(err, errlen, "%s: Objlnk must be \"OID:IID\"", where);
      return -EINVAL;
    default:
      goto mismatch;
    }
  }
  lwm2m_errf(err, errlen, "%s: value must be a string, number or boolean",
             where);
  return -EINVAL;

mismatch:
  lwm2m_errf(err, errlen, "%s: %s where %s was expected", where,
             json_is_boolean(j) ? "a boolean" : "a string",
             lwm2m_type_name(want));
  return -EINVAL;
}

static int json_record(const char *key, const json_t *val,
                       const struct lwm2m_path *base,
                       const struct lwm2m_model *m, struct lwm2m_records *out,
                       char *err, size_t errlen)
{
  const struct lwm2m_res_def *rd;
  char q[48], ps[LWM2M_PATH_STRLEN], where[80];
  struct lwm2m_path p;
  struct lwm2m_value v;
  int rc;

  lwm2m_snippet(key, strlen(key), q, sizeof(q));
  if (json_key_path(key, base, &p) < 0) {
    lwm2m_path_format(base, ps, sizeof(ps));
    lwm2m_errf(err, errlen, "\"%s\": not a path under %s", q, ps);
    return -EINVAL;
  }
  lwm2m_path_format(&p, ps, sizeof(ps));
  if (p.len < 3) {
    lwm2m_errf(err, errlen, "\"%s\": %s is not a resource", q, ps);
    return -EINVAL;
  }
  rd = lwm2m_res_for(m, &p);
  if (rd && rd->ops == LWM2M_OP_E) {
    lwm2m_errf(err, errlen, "\"%s\": %s (%s) is executable and has no value",
               q, ps, rd->name);
    return -EINVAL;
  }
  if (rd && rd->multiple && p.len == 3) {
    lwm2m_errf(err, errlen,
               "\"%s\": %s (%s) has multiple instances; write them as "
               "%s/0, %s/1...",
               q, ps, rd->name, ps, ps);
    return -EINVAL;
  }
  if (rd && !rd->multiple && p.len == 4) {
    lwm2m_errf(err, errlen, "\"%s\": %s (%s) has no instances", q, ps,
               rd->name);
    return -EINVAL;
  }
  if (out->len >= LWM2M_RECORDS_MAX) {
    lwm2m_errf(err, errlen, "more than %d values", LWM2M_RECORDS_MAX);
    return -EINVAL;
  }
  snprintf(where, sizeof(where), "\"%s\"", q);
  rc =
      json_to_value(val, rd ? rd->type : LWM2M_T_NONE, &v, where, err, errlen);
  if (rc < 0)
    return rc;
  lwm2m_records_add(out, &p, &v);
  return 0;
}

int lwm2m_records_from_json(const json_t *j, const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen)
{
  struct lwm2m_records tmp;
  const char *key;
  json_t *val;
  int rc = 0;

  if (!json_is_object(j)) {
    lwm2m_errf(err, errlen,
               "expected an object of path: value, like {\"/3/0/13\": 0}");
    return -EINVAL;
  }
  lwm2m_records_init(&tmp);
  json_object_foreach((json_t *)j, key, val)
  {
    rc = json_record(key, val, base, m, &tmp, err, errlen);
    if (rc < 0)
      break;
  }
  if (rc < 0) {
    lwm2m_records_free(&tmp);
    return rc;
  }
  lwm2m_records_move(out, &tmp);
  return 0;
}
