/*
 * The single-value formats: text/plain (0), opaque (42) and plain CBOR
 * (60). Each carries one resource or resource instance value, the one the
 * request path names, so the type comes from the model.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The request path must name a resource or resource instance. */
static int single_path(const char *prefix, const struct lwm2m_path *base,
                       char *err, size_t errlen)
{
  char bs[LWM2M_PATH_STRLEN];

  if (base->len >= 3)
    return 0;
  lwm2m_path_format(base, bs, sizeof(bs));
  lwm2m_errf(err, errlen,
             "%s: carries one resource value; %s is not a resource path",
             prefix, bs);
  return -EINVAL;
}

static int single_record(const char *prefix, const struct lwm2m_path *base,
                         const struct lwm2m_records *in, char *err,
                         size_t errlen)
{
  int rc = lwm2m_encode_check(prefix, base, in, err, errlen);

  if (rc < 0)
    return rc;
  if (in->len != 1) {
    lwm2m_errf(err, errlen, "%s: needs exactly one record, got %zu", prefix,
               in->len);
    return -EINVAL;
  }
  return 0;
}

static enum lwm2m_type model_type(const struct lwm2m_model *m,
                                  const struct lwm2m_path *p)
{
  const struct lwm2m_res_def *rd = lwm2m_res_for(m, p);

  return rd ? rd->type : LWM2M_T_NONE;
}

int lwm2m_text_decode(const uint8_t *buf, size_t len,
                      const struct lwm2m_path *base,
                      const struct lwm2m_model *m, struct lwm2m_records *out,
                      char *err, size_t errlen)
{
  const char *s = (const char *)buf;
  struct lwm2m_value v = {.type = LWM2M_T_NONE};
  enum lwm2m_type t;
  char ps[LWM2M_PATH_STRLEN];
  int rc = single_path("text", base, err, errlen);

  if (rc < 0)
    return rc;
  lwm2m_path_format(base, ps, sizeof(ps));
  t = model_type(m, base);
  switch (t) {
  case LWM2M_T_NONE:
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    /* Without a model, text is what the value is. */
    lwm2m_value_set_bytes(&v, t == LWM2M_T_CORELNK ? t : LWM2M_T_STRING, buf,
                          len);
    break;
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    v.type = t;
    rc = lwm2m_parse_i64(s, len, &v.u.i);
    break;
  case LWM2M_T_UNSIGNED:
    v.type = t;
    rc = lwm2m_parse_u64(s, len, &v.u.u);
    break;
  case LWM2M_T_FLOAT:
    v.type = t;
    rc = lwm2m_parse_double(s, len, &v.u.f);
    break;
  case LWM2M_T_BOOLEAN:
    v.type = t;
    if (len == 1 && (s[0] == '0' || s[0] == '1'))
      v.u.b = s[0] == '1';
    else
      rc = -EINVAL;
    break;
  case LWM2M_T_OBJLNK:
    v.type = t;
    rc = lwm2m_parse_objlnk(s, len, &v.u.lnk.oid, &v.u.lnk.iid);
    break;
  case LWM2M_T_OPAQUE:
    lwm2m_errf(err, errlen,
               "text: %s is Opaque, which text/plain cannot carry (use 42)",
               ps);
    return -EINVAL;
  }
  if (rc < 0) {
    char q[48];

    lwm2m_snippet(buf, len, q, sizeof(q));
    lwm2m_errf(err, errlen, "text: \"%s\" is not a valid %s for %s", q,
               lwm2m_type_name(t), ps);
    return -EINVAL;
  }
  lwm2m_records_add(out, base, &v);
  return 0;
}

int lwm2m_text_encode(const struct lwm2m_path *base,
                      const struct lwm2m_records *in,
                      const struct lwm2m_model *m, struct lwm2m_buf *out,
                      char *err, size_t errlen)
{
  const struct lwm2m_value *v;
  char tmp[64];
  int rc = single_record("text", base, in, err, errlen);

  if (rc < 0)
    return rc;
  v = &in->v[0].v;
  switch (v->type) {
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    return lwm2m_buf_put(out, v->u.bytes.data, v->u.bytes.len);
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    snprintf(tmp, sizeof(tmp), "%" PRId64, v->u.i);
    break;
  case LWM2M_T_UNSIGNED:
    snprintf(tmp, sizeof(tmp), "%" PRIu64, v->u.u);
    break;
  case LWM2M_T_FLOAT:
    if (!isfinite(v->u.f)) {
      lwm2m_errf(err, errlen, "text: cannot write NaN or infinity");
      return -EINVAL;
    }
    lwm2m_format_double(v->u.f, tmp, sizeof(tmp));
    break;
  case LWM2M_T_BOOLEAN:
    snprintf(tmp, sizeof(tmp), "%d", v->u.b ? 1 : 0);
    break;
  case LWM2M_T_OBJLNK:
    snprintf(tmp, sizeof(tmp), "%u:%u", (unsigned)v->u.lnk.oid,
             (unsigned)v->u.lnk.iid);
    break;
  default:
    lwm2m_errf(err, errlen, "text: cannot carry %s (use 42)",
               lwm2m_type_name(v->type));
    return -EINVAL;
  }
  return lwm2m_buf_put(out, tmp, strlen(tmp));
}

int lwm2m_opaque_decode(const uint8_t *buf, size_t len,
                        const struct lwm2m_path *base,
                        const struct lwm2m_model *m, struct lwm2m_records *out,
                        char *err, size_t errlen)
{
  struct lwm2m_value v;
  enum lwm2m_type t;
  int rc = single_path("opaque", base, err, errlen);

  if (rc < 0)
    return rc;
  t = model_type(m, base);
  /* Raw bytes fit the byte-string types; some clients send a String this
   * way, so keep it a String rather than fail. */
  if (t != LWM2M_T_NONE && t != LWM2M_T_OPAQUE && t != LWM2M_T_STRING &&
      t != LWM2M_T_CORELNK) {
    char ps[LWM2M_PATH_STRLEN];

    lwm2m_path_format(base, ps, sizeof(ps));
    lwm2m_errf(err, errlen, "opaque: %s is %s, not Opaque", ps,
               lwm2m_type_name(t));
    return -EINVAL;
  }
  lwm2m_value_set_bytes(&v, t == LWM2M_T_NONE ? LWM2M_T_OPAQUE : t, buf, len);
  lwm2m_records_add(out, base, &v);
  return 0;
}

int lwm2m_opaque_encode(const struct lwm2m_path *base,
                        const struct lwm2m_records *in,
                        const struct lwm2m_model *m, struct lwm2m_buf *out,
                        char *err, size_t errlen)
{
  const struct lwm2m_value *v;
  int rc = single_record("opaque", base, in, err, errlen);

  if (rc < 0)
    return rc;
  v = &in->v[0].v;
  if (v->type != LWM2M_T_OPAQUE && v->type != LWM2M_T_STRING &&
      v->type != LWM2M_T_CORELNK) {
    lwm2m_errf(err, errlen, "opaque: cannot carry %s",
               lwm2m_type_name(v->type));
    return -EINVAL;
  }
  return lwm2m_buf_put(out, v->u.bytes.data, v->u.bytes.len);
}

int lwm2m_cbor1_decode(const uint8_t *buf, size_t len,
                       const struct lwm2m_path *base,
                       const struct lwm2m_model *m, struct lwm2m_records *out,
                       char *err, size_t errlen)
{
  char ps[LWM2M_PATH_STRLEN], where[48];
  struct lwm2m_value v;
  cbor_item_t *it;
  int rc = single_path("CBOR", base, err, errlen);

  if (rc < 0)
    return rc;
  it = lwm2m_cbor_load("CBOR", buf, len, err, errlen);
  if (!it)
    return -EINVAL;
  lwm2m_path_format(base, ps, sizeof(ps));
  snprintf(where, sizeof(where), "CBOR: %s", ps);
  rc = lwm2m_cbor_to_value(it, model_type(m, base), &v, where, err, errlen);
  cbor_decref(&it);
  if (rc < 0)
    return rc;
  lwm2m_records_add(out, base, &v);
  return 0;
}

int lwm2m_cbor1_encode(const struct lwm2m_path *base,
                       const struct lwm2m_records *in,
                       const struct lwm2m_model *m, struct lwm2m_buf *out,
                       char *err, size_t errlen)
{
  int rc = single_record("CBOR", base, in, err, errlen);

  if (rc < 0)
    return rc;
  rc = lwm2m_cbor_put_value(out, &in->v[0].v);
  if (rc == -EILSEQ) {
    lwm2m_errf(err, errlen, "CBOR: string is not valid UTF-8");
    return -EINVAL;
  }
  return rc;
}
