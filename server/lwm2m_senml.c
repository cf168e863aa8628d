/*
 * SenML JSON (110, through jansson) and SenML CBOR (112, through libcbor),
 * plus the record logic OMA LwM2M JSON shares: base name and base time
 * carried across records, names resolved to paths, values typed from the
 * model.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer than any base name plus name that can spell a LwM2M path. */
#define NAME_MAX_LEN 64

/* SenML CBOR labels (RFC 8428 section 6). */
enum {
  SENML_BVER = -1,
  SENML_BN = -2,
  SENML_BT = -3,
  SENML_BU = -4,
  SENML_BV = -5,
  SENML_BS = -6,
  SENML_N = 0,
  SENML_U = 1,
  SENML_V = 2,
  SENML_VS = 3,
  SENML_VB = 4,
  SENML_S = 5,
  SENML_T = 6,
  SENML_UT = 7,
  SENML_VD = 8,
};

void lwm2m_senml_rec_clear(struct lwm2m_senml_rec *r)
{
  free(r->bn);
  free(r->n);
  free(r->data);
  memset(r, 0, sizeof(*r));
}

void lwm2m_senml_ctx_clear(struct lwm2m_senml_ctx *c)
{
  free(c->bn);
  c->bn = NULL;
  c->bnlen = 0;
}

/*
 * SenML times: bt + t in seconds. RFC 8428 makes values below 2^28
 * relative to the time of reading; a decoder has no "now", so those (and
 * a missing time) are stored as 0, "no time".
 */
static int senml_time(struct lwm2m_senml_ctx *c, double t, int64_t *ms)
{
  double v = t * 1000.0;

  *ms = 0;
  if (!isfinite(t)) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu: time is not finite",
               c->prefix, c->index);
    return -EINVAL;
  }
  if (t < 268435456.0)
    return 0;
  if (!(v < 9223372036854775807.0)) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu: time %g out of range",
               c->prefix, c->index, t);
    return -EINVAL;
  }
  *ms = llround(v);
  return 0;
}

static const char *kind_name(enum lwm2m_senml_kind k)
{
  switch (k) {
  case LWM2M_SV_NUM:
    return "a numeric value";
  case LWM2M_SV_STR:
    return "a string value";
  case LWM2M_SV_BOOL:
    return "a boolean value";
  case LWM2M_SV_DATA:
    return "a data value";
  case LWM2M_SV_LNK:
    return "an object link value";
  case LWM2M_SV_NONE:
    break;
  }
  return "no value";
}

/* Turns the record's value into the model's type want. */
static int senml_value(struct lwm2m_senml_ctx *c, struct lwm2m_senml_rec *r,
                       enum lwm2m_type want, const char *ps,
                       struct lwm2m_value *v)
{
  char where[96];
  bool ok;

  snprintf(where, sizeof(where), "%s: %s", c->prefix, ps);
  memset(v, 0, sizeof(*v));
  switch (r->kind) {
  case LWM2M_SV_NUM:
    return lwm2m_num_to_value(&r->num, want, v, where, c->err, c->errlen);
  case LWM2M_SV_STR:
    if (want == LWM2M_T_OPAQUE && c->sv_base64) {
      size_t bad, n;
      uint8_t *p;

      if (lwm2m_base64_decode((const char *)r->data, r->dlen, false, &p, &n,
                              &bad) < 0) {
        lwm2m_errf(c->err, c->errlen,
                   "%s: bad base64 at character %zu of the Opaque value",
                   where, bad);
        return -EINVAL;
      }
      v->type = LWM2M_T_OPAQUE;
      v->u.bytes.data = p;
      v->u.bytes.len = n;
      return 0;
    }
    ok = want == LWM2M_T_NONE || want == LWM2M_T_STRING ||
         want == LWM2M_T_CORELNK;
    if (ok) {
      v->type = want == LWM2M_T_CORELNK ? want : LWM2M_T_STRING;
      break;
    }
    goto mismatch;
  case LWM2M_SV_BOOL:
    if (want != LWM2M_T_NONE && want != LWM2M_T_BOOLEAN)
      goto mismatch;
    v->type = LWM2M_T_BOOLEAN;
    v->u.b = r->b;
    return 0;
  case LWM2M_SV_DATA:
    if (want != LWM2M_T_NONE && want != LWM2M_T_OPAQUE)
      goto mismatch;
    v->type = LWM2M_T_OPAQUE;
    break;
  case LWM2M_SV_LNK:
    if (want != LWM2M_T_NONE && want != LWM2M_T_OBJLNK)
      goto mismatch;
    v->type = LWM2M_T_OBJLNK;
    if (lwm2m_parse_objlnk((const char *)r->data, r->dlen, &v->u.lnk.oid,
                           &v->u.lnk.iid) < 0) {
      char q[32];

      lwm2m_snippet(r->data, r->dlen, q, sizeof(q));
      lwm2m_errf(c->err, c->errlen,
                 "%s: object link \"%s\" is not \"OID:IID\"", where, q);
      return -EINVAL;
    }
    return 0;
  case LWM2M_SV_NONE:
    lwm2m_errf(c->err, c->errlen, "%s: record %zu has no value", where,
               c->index);
    return -EINVAL;
  }
  /* Byte values: the record's buffer moves into the value. */
  v->u.bytes.data = r->data;
  v->u.bytes.len = r->dlen;
  r->data = NULL;
  r->dlen = 0;
  return 0;

mismatch:
  lwm2m_errf(c->err, c->errlen, "%s: %s where %s was expected", where,
             kind_name(r->kind), lwm2m_type_name(want));
  return -EINVAL;
}

int lwm2m_senml_apply(struct lwm2m_senml_ctx *c, struct lwm2m_senml_rec *r)
{
  char name[2 * NAME_MAX_LEN + LWM2M_PATH_STRLEN + 2];
  char ps[LWM2M_PATH_STRLEN];
  const struct lwm2m_res_def *rd;
  struct lwm2m_path p;
  struct lwm2m_value v;
  size_t off = 0;
  int64_t ms = 0;
  int rc;

  if (r->bn) {
    free(c->bn);
    c->bn = r->bn;
    c->bnlen = r->bnlen;
    r->bn = NULL;
  }
  if (r->has_bt)
    c->bt = r->bt;
  if (c->bnlen > NAME_MAX_LEN || r->nlen > NAME_MAX_LEN) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu: name too long", c->prefix,
               c->index);
    return -EINVAL;
  }
  /* A name that is not absolute is taken relative to the request path,
   * which is how some clients write responses without a base name. */
  if (!(c->bnlen > 0 ? c->bn[0] == '/' : r->nlen > 0 && r->n[0] == '/')) {
    if (c->base->len > 0)
      lwm2m_path_format(c->base, name, LWM2M_PATH_STRLEN);
    off = c->base->len > 0 ? strlen(name) : 0;
    name[off++] = '/';
  }
  if (c->bnlen > 0)
    memcpy(name + off, c->bn, c->bnlen);
  off += c->bnlen;
  if (r->nlen > 0)
    memcpy(name + off, r->n, r->nlen);
  off += r->nlen;
  name[off] = '\0';
  if (strlen(name) != off || lwm2m_path_parse(name, &p) < 0) {
    char q[80];

    lwm2m_snippet(name, off, q, sizeof(q));
    lwm2m_errf(c->err, c->errlen,
               "%s: record %zu: name \"%s\" is not a LwM2M path", c->prefix,
               c->index, q);
    return -EINVAL;
  }
  if (c->paths) {
    if (*c->npaths >= LWM2M_RECORDS_MAX) {
      lwm2m_errf(c->err, c->errlen, "%s: more than %d paths", c->prefix,
                 LWM2M_RECORDS_MAX);
      return -EMSGSIZE;
    }
    if (*c->npaths == c->pcap) {
      c->pcap = c->pcap ? 2 * c->pcap : 8;
      *c->paths = xrealloc(*c->paths, c->pcap * sizeof(**c->paths));
    }
    (*c->paths)[(*c->npaths)++] = p;
    return 0;
  }
  lwm2m_path_format(&p, ps, sizeof(ps));
  if (p.len < 3) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu: %s is not a resource",
               c->prefix, c->index, ps);
    return -EINVAL;
  }
  if (!lwm2m_path_under(&p, c->base)) {
    char bs[LWM2M_PATH_STRLEN];

    lwm2m_path_format(c->base, bs, sizeof(bs));
    lwm2m_errf(c->err, c->errlen,
               "%s: record %zu: %s is outside the requested %s", c->prefix,
               c->index, ps, bs);
    return -EINVAL;
  }
  if (c->out->len >= LWM2M_RECORDS_MAX) {
    lwm2m_errf(c->err, c->errlen, "%s: more than %d records", c->prefix,
               LWM2M_RECORDS_MAX);
    return -EMSGSIZE;
  }
  if (r->nvalues > 1) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu (%s) has %d values",
               c->prefix, c->index, ps, r->nvalues);
    return -EINVAL;
  }
  if (r->has_t || c->bt != 0) {
    rc = senml_time(c, c->bt + (r->has_t ? r->t : 0), &ms);
    if (rc < 0)
      return rc;
  }
  rd = lwm2m_res_for(c->m, &p);
  rc = senml_value(c, r, rd ? rd->type : LWM2M_T_NONE, ps, &v);
  if (rc < 0)
    return rc;
  lwm2m_records_add(c->out, &p, &v)->time = ms;
  return 0;
}

void lwm2m_names_init(struct lwm2m_names *nm, const struct lwm2m_path *base,
                      const struct lwm2m_records *in)
{
  bool whole = in->len > 0;

  memset(nm, 0, sizeof(*nm));
  nm->base = base;
  if (base->len == 0)
    return;
  for (size_t i = 0; i < in->len; i++)
    if (in->v[i].path.len != base->len)
      whole = false;
  nm->has_bn = true;
  lwm2m_path_format(base, nm->bn, sizeof(nm->bn));
  if (!whole) {
    size_t l = strlen(nm->bn);

    nm->bn[l] = '/';
    nm->bn[l + 1] = '\0';
  }
}

bool lwm2m_names_n(const struct lwm2m_names *nm, const struct lwm2m_path *p,
                   char *buf, size_t len)
{
  size_t off = 0;

  if (nm->base->len == 0) {
    lwm2m_path_format(p, buf, len);
    return true;
  }
  if (p->len == nm->base->len)
    return false;
  buf[0] = '\0';
  for (uint8_t i = nm->base->len; i < p->len; i++) {
    int n = snprintf(buf + off, len - off, i > nm->base->len ? "/%u" : "%u",
                     (unsigned)p->id[i]);

    if (n < 0 || (size_t)n >= len - off)
      break;
    off += (size_t)n;
  }
  return true;
}

json_t *lwm2m_json_number(const struct lwm2m_value *v)
{
  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    return json_integer(v->u.i);
  case LWM2M_T_UNSIGNED:
    /* jansson integers are signed 64-bit: above that, a real. */
    if (v->u.u <= INT64_MAX)
      return json_integer((json_int_t)v->u.u);
    return json_real((double)v->u.u);
  case LWM2M_T_FLOAT:
    return json_real(v->u.f);
  default:
    break;
  }
  return NULL;
}

json_t *lwm2m_json_string(const uint8_t *p, size_t n)
{
  return json_stringn((const char *)p, n);
}

/* Seconds from Unix ms: an integer when whole, else a real. */
static json_t *json_time(int64_t ms)
{
  if (ms % 1000 == 0)
    return json_integer(ms / 1000);
  return json_real((double)ms / 1000.0);
}

static int senml_json_fail(const char *what, const struct lwm2m_record *r,
                           char *err, size_t errlen)
{
  char ps[LWM2M_PATH_STRLEN];

  lwm2m_path_format(&r->path, ps, sizeof(ps));
  lwm2m_errf(err, errlen, "SenML JSON: %s: %s", ps, what);
  return -EINVAL;
}

/* Adds the value under its SenML key; NULL-safe for json_object_set_new. */
static int senml_json_value(json_t *o, const struct lwm2m_record *r, char *err,
                            size_t errlen)
{
  const struct lwm2m_value *v = &r->v;
  char lnk[16], *b64;
  const char *key;
  json_t *j;

  switch (v->type) {
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    key = "vs";
    j = lwm2m_json_string(v->u.bytes.data, v->u.bytes.len);
    if (!j)
      return senml_json_fail("string is not valid UTF-8", r, err, errlen);
    break;
  case LWM2M_T_BOOLEAN:
    key = "vb";
    j = json_boolean(v->u.b);
    break;
  case LWM2M_T_OPAQUE:
    key = "vd";
    b64 = lwm2m_base64_encode(v->u.bytes.data, v->u.bytes.len, true);
    j = json_string(b64);
    free(b64);
    break;
  case LWM2M_T_OBJLNK:
    key = "vlo";
    snprintf(lnk, sizeof(lnk), "%u:%u", (unsigned)v->u.lnk.oid,
             (unsigned)v->u.lnk.iid);
    j = json_string(lnk);
    break;
  default:
    key = "v";
    /* jansson integers are signed: a bigger Unsigned would turn into an
     * inexact real, and a Write must not change the value on the way. */
    if (v->type == LWM2M_T_UNSIGNED && v->u.u > INT64_MAX)
      return senml_json_fail("Unsigned above 2^63-1 cannot be written in "
                             "JSON",
                             r, err, errlen);
    j = lwm2m_json_number(v);
    if (!j)
      return senml_json_fail("NaN or infinity cannot be encoded", r, err,
                             errlen);
    break;
  }
  if (!j || json_object_set_new(o, key, j) < 0)
    return senml_json_fail("out of memory", r, err, errlen);
  return 0;
}

static int json_out(json_t *j, struct lwm2m_buf *out, const char *prefix,
                    char *err, size_t errlen)
{
  char *s = json_dumps(j, JSON_COMPACT);
  int rc;

  if (!s) {
    lwm2m_errf(err, errlen, "%s: cannot serialise", prefix);
    return -EINVAL;
  }
  rc = lwm2m_buf_put(out, s, strlen(s));
  free(s);
  if (rc < 0)
    lwm2m_errf(err, errlen, "%s: output larger than %u bytes", prefix,
               LWM2M_PAYLOAD_MAX);
  return rc;
}

int lwm2m_senml_json_encode(const struct lwm2m_path *base,
                            const struct lwm2m_records *in,
                            const struct lwm2m_model *m, struct lwm2m_buf *out,
                            char *err, size_t errlen)
{
  struct lwm2m_names nm;
  json_t *arr = NULL;
  int rc;

  rc = lwm2m_encode_check("SenML JSON", base, in, err, errlen);
  if (rc < 0)
    return rc;
  lwm2m_names_init(&nm, base, in);
  arr = json_array();
  if (!arr) {
    lwm2m_errf(err, errlen, "SenML JSON: out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; i < in->len; i++) {
    const struct lwm2m_record *r = &in->v[i];
    char n[LWM2M_PATH_STRLEN];
    json_t *o = json_object();

    if (!o || json_array_append_new(arr, o) < 0) {
      rc = senml_json_fail("out of memory", r, err, errlen);
      goto out;
    }
    if (i == 0 && nm.has_bn &&
        json_object_set_new(o, "bn", json_string(nm.bn)))
      rc = -ENOMEM;
    if (lwm2m_names_n(&nm, &r->path, n, sizeof(n)) &&
        json_object_set_new(o, "n", json_string(n)) < 0)
      rc = -ENOMEM;
    if (rc == 0)
      rc = senml_json_value(o, r, err, errlen);
    if (rc == 0 && r->time != 0 &&
        json_object_set_new(o, "t", json_time(r->time)) < 0)
      rc = -ENOMEM;
    if (rc == -ENOMEM)
      rc = senml_json_fail("out of memory", r, err, errlen);
    if (rc < 0)
      goto out;
  }
  rc = json_out(arr, out, "SenML JSON", err, errlen);
out:
  json_decref(arr);
  return rc;
}

/* Copies a JSON string's bytes (NULs included) into a new buffer. */
static char *json_bytes(const json_t *j, size_t *len)
{
  char *s;

  /* Not xstrndup(): the string may hold NUL bytes. */
  *len = json_string_length(j);
  s = xmalloc(*len + 1);
  memcpy(s, json_string_value(j), *len);
  s[*len] = '\0';
  return s;
}

static void json_num(const json_t *j, struct lwm2m_num *n)
{
  memset(n, 0, sizeof(*n));
  if (json_is_integer(j)) {
    n->kind = LWM2M_NUM_INT;
    n->i = json_integer_value(j);
  } else {
    n->kind = LWM2M_NUM_FLOAT;
    n->f = json_real_value(j);
  }
}

static int bad_key(struct lwm2m_senml_ctx *c, const char *key,
                   const char *what)
{
  char q[32];

  lwm2m_snippet(key, strlen(key), q, sizeof(q));
  lwm2m_errf(c->err, c->errlen, "%s: record %zu: \"%s\" %s", c->prefix,
             c->index, q, what);
  return -EINVAL;
}

/* Reads one SenML JSON record object into r. */
static int senml_json_rec(struct lwm2m_senml_ctx *c, json_t *o,
                          struct lwm2m_senml_rec *r)
{
  const char *key;
  json_t *j;

  if (!json_is_object(o)) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu is not an object", c->prefix,
               c->index);
    return -EINVAL;
  }
  json_object_foreach(o, key, j)
  {
    size_t kl = strlen(key);

    if (strcmp(key, "bn") == 0 || strcmp(key, "n") == 0) {
      if (!json_is_string(j))
        return bad_key(c, key, "must be a string");
      if (key[0] == 'b')
        r->bn = json_bytes(j, &r->bnlen);
      else
        r->n = json_bytes(j, &r->nlen);
    } else if (strcmp(key, "bt") == 0 || strcmp(key, "t") == 0) {
      if (!json_is_number(j))
        return bad_key(c, key, "must be a number");
      if (key[0] == 'b') {
        r->has_bt = true;
        r->bt = json_number_value(j);
      } else {
        r->has_t = true;
        r->t = json_number_value(j);
      }
    } else if (strcmp(key, "v") == 0) {
      if (!json_is_number(j))
        return bad_key(c, key, "must be a number");
      r->kind = LWM2M_SV_NUM;
      r->nvalues++;
      json_num(j, &r->num);
    } else if (strcmp(key, "vb") == 0) {
      if (!json_is_boolean(j))
        return bad_key(c, key, "must be a boolean");
      r->kind = LWM2M_SV_BOOL;
      r->nvalues++;
      r->b = json_is_true(j);
    } else if (strcmp(key, "vs") == 0 || strcmp(key, "vlo") == 0 ||
               strcmp(key, "vd") == 0) {
      size_t n, bad;
      char *s;

      if (!json_is_string(j))
        return bad_key(c, key, "must be a string");
      r->nvalues++;
      free(r->data);
      r->data = NULL;
      s = json_bytes(j, &n);
      if (key[1] == 'd') {
        int rc = lwm2m_base64_decode(s, n, true, &r->data, &r->dlen, &bad);

        free(s);
        if (rc < 0) {
          lwm2m_errf(c->err, c->errlen,
                     "%s: record %zu: \"vd\" is not base64url (character "
                     "%zu)",
                     c->prefix, c->index, bad);
          return -EINVAL;
        }
        r->kind = LWM2M_SV_DATA;
      } else {
        r->data = (uint8_t *)s;
        r->dlen = n;
        r->kind = key[1] == 's' ? LWM2M_SV_STR : LWM2M_SV_LNK;
      }
    } else if (strcmp(key, "bv") == 0 || strcmp(key, "bs") == 0) {
      return bad_key(c, key, "(base value or sum) is not supported");
    } else if (kl > 0 && key[kl - 1] == '_') {
      return bad_key(c, key, "must be understood and is not");
    }
    /* Anything else (bver, u, bu, s, ut, extensions) does not change the
     * value and is ignored. */
  }
  return 0;
}

static json_t *load_json(const char *prefix, const uint8_t *buf, size_t len,
                         char *err, size_t errlen)
{
  json_error_t je;
  json_t *j;

  /* NUL is allowed in strings: a String value may hold one and must
   * survive a round trip. */
  j = json_loadb((const char *)buf, len,
                 JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (!j)
    lwm2m_errf(err, errlen, "%s: %s at offset %d", prefix, je.text,
               je.position);
  return j;
}

static int senml_json_walk(struct lwm2m_senml_ctx *c, const uint8_t *buf,
                           size_t len)
{
  json_t *arr = load_json(c->prefix, buf, len, c->err, c->errlen);
  int rc = 0;

  if (!arr)
    return -EINVAL;
  if (!json_is_array(arr)) {
    lwm2m_errf(c->err, c->errlen, "%s: top level is not an array", c->prefix);
    rc = -EINVAL;
  }
  for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
    struct lwm2m_senml_rec r;

    memset(&r, 0, sizeof(r));
    c->index = i + 1;
    rc = senml_json_rec(c, json_array_get(arr, i), &r);
    if (rc == 0)
      rc = lwm2m_senml_apply(c, &r);
    lwm2m_senml_rec_clear(&r);
  }
  json_decref(arr);
  return rc;
}

int lwm2m_senml_json_decode(const uint8_t *buf, size_t len,
                            const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen)
{
  struct lwm2m_senml_ctx c = {.prefix = "SenML JSON",
                              .base = base,
                              .m = m,
                              .out = out,
                              .err = err,
                              .errlen = errlen};
  int rc = senml_json_walk(&c, buf, len);

  lwm2m_senml_ctx_clear(&c);
  return rc;
}

static int cbor_key_text(const cbor_item_t *k, char *buf, size_t len)
{
  size_t n;
  uint8_t *s;

  if (!cbor_isa_string(k))
    return -EINVAL;
  s = lwm2m_cbor_string(k, &n);
  if (n >= len) {
    free(s);
    return -ENAMETOOLONG;
  }
  memcpy(buf, s, n + 1);
  free(s);
  return 0;
}

static int cbor_bad(struct lwm2m_senml_ctx *c, int key, const char *what)
{
  lwm2m_errf(c->err, c->errlen, "%s: record %zu: label %d %s", c->prefix,
             c->index, key, what);
  return -EINVAL;
}

static int cbor_string_field(struct lwm2m_senml_ctx *c, const cbor_item_t *v,
                             int key, char **out, size_t *len)
{
  if (!cbor_isa_string(v))
    return cbor_bad(c, key, "must be a text string");
  free(*out);
  *out = (char *)lwm2m_cbor_string(v, len);
  return 0;
}

static int cbor_time_field(struct lwm2m_senml_ctx *c, const cbor_item_t *v,
                           int key, double *out)
{
  struct lwm2m_num n;

  if (lwm2m_cbor_num(v, &n) < 0)
    return cbor_bad(c, key, "must be a number");
  *out = n.kind == LWM2M_NUM_INT    ? (double)n.i
         : n.kind == LWM2M_NUM_UINT ? (double)n.u
                                    : n.f;
  return 0;
}

/* Reads one SenML CBOR record map into r. */
static int senml_cbor_rec(struct lwm2m_senml_ctx *c, const cbor_item_t *map,
                          struct lwm2m_senml_rec *r)
{
  struct cbor_pair *pairs;
  size_t n;

  if (!cbor_isa_map(map)) {
    lwm2m_errf(c->err, c->errlen, "%s: record %zu is not a map", c->prefix,
               c->index);
    return -EINVAL;
  }
  pairs = cbor_map_handle(map);
  n = cbor_map_size(map);
  for (size_t i = 0; i < n; i++) {
    const cbor_item_t *k = pairs[i].key, *v = pairs[i].value;
    struct lwm2m_num num;
    int key, rc = 0;

    if (cbor_isa_string(k)) {
      char name[16];

      if (cbor_key_text(k, name, sizeof(name)) == 0 &&
          strcmp(name, "vlo") == 0) {
        if (!cbor_isa_string(v))
          return bad_key(c, "vlo", "must be a text string");
        free(r->data);
        r->data = lwm2m_cbor_string(v, &r->dlen);
        r->kind = LWM2M_SV_LNK;
        r->nvalues++;
      } else {
        size_t kl;
        uint8_t *s = lwm2m_cbor_string(k, &kl);
        bool must = kl > 0 && s[kl - 1] == '_';

        free(s);
        if (must) {
          lwm2m_errf(c->err, c->errlen,
                     "%s: record %zu: a must-understand label is not "
                     "understood",
                     c->prefix, c->index);
          return -EINVAL;
        }
      }
      continue;
    }
    if (lwm2m_cbor_num(k, &num) < 0 || num.kind != LWM2M_NUM_INT) {
      lwm2m_errf(c->err, c->errlen,
                 "%s: record %zu: label is not an integer "
                 "or text",
                 c->prefix, c->index);
      return -EINVAL;
    }
    if (num.i < -100 || num.i > 100)
      continue; /* not a SenML label we know: ignored like any extension */
    key = (int)num.i;
    switch (key) {
    case SENML_BN:
      rc = cbor_string_field(c, v, key, &r->bn, &r->bnlen);
      break;
    case SENML_N:
      rc = cbor_string_field(c, v, key, &r->n, &r->nlen);
      break;
    case SENML_BT:
      r->has_bt = true;
      rc = cbor_time_field(c, v, key, &r->bt);
      break;
    case SENML_T:
      r->has_t = true;
      rc = cbor_time_field(c, v, key, &r->t);
      break;
    case SENML_V:
      rc = lwm2m_cbor_num(v, &r->num);
      if (rc < 0)
        return cbor_bad(
            c, key, rc == -ERANGE ? "is out of range" : "must be a number");
      r->kind = LWM2M_SV_NUM;
      r->nvalues++;
      break;
    case SENML_VS:
      rc = cbor_string_field(c, v, key, (char **)&r->data, &r->dlen);
      r->kind = LWM2M_SV_STR;
      r->nvalues++;
      break;
    case SENML_VB:
      if (!lwm2m_cbor_is_bool(v))
        return cbor_bad(c, key, "must be a boolean");
      r->b = cbor_get_bool(v);
      r->kind = LWM2M_SV_BOOL;
      r->nvalues++;
      break;
    case SENML_VD:
      if (!cbor_isa_bytestring(v))
        return cbor_bad(c, key, "must be a byte string");
      free(r->data);
      r->data = lwm2m_cbor_string(v, &r->dlen);
      r->kind = LWM2M_SV_DATA;
      r->nvalues++;
      break;
    case SENML_BV:
    case SENML_BS:
      return cbor_bad(c, key, "(base value or sum) is not supported");
    default:
      break; /* bver, bu, u, s, ut */
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int senml_cbor_walk(struct lwm2m_senml_ctx *c, const uint8_t *buf,
                           size_t len)
{
  cbor_item_t *arr = lwm2m_cbor_load(c->prefix, buf, len, c->err, c->errlen);
  int rc = 0;

  if (!arr)
    return -EINVAL;
  if (!cbor_isa_array(arr)) {
    lwm2m_errf(c->err, c->errlen, "%s: top level is not an array", c->prefix);
    rc = -EINVAL;
  } else {
    cbor_item_t **items = cbor_array_handle(arr);
    size_t n = cbor_array_size(arr);

    for (size_t i = 0; rc == 0 && i < n; i++) {
      struct lwm2m_senml_rec r;

      memset(&r, 0, sizeof(r));
      c->index = i + 1;
      rc = senml_cbor_rec(c, items[i], &r);
      if (rc == 0)
        rc = lwm2m_senml_apply(c, &r);
      lwm2m_senml_rec_clear(&r);
    }
  }
  cbor_decref(&arr);
  return rc;
}

int lwm2m_senml_cbor_decode(const uint8_t *buf, size_t len,
                            const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen)
{
  struct lwm2m_senml_ctx c = {.prefix = "SenML CBOR",
                              .base = base,
                              .m = m,
                              .out = out,
                              .err = err,
                              .errlen = errlen};
  int rc = senml_cbor_walk(&c, buf, len);

  lwm2m_senml_ctx_clear(&c);
  return rc;
}

static int cbor_time(struct lwm2m_buf *b, int64_t ms)
{
  if (ms % 1000 == 0)
    return lwm2m_buf_cbor_int(b, ms / 1000);
  return lwm2m_buf_cbor_float(b, (double)ms / 1000.0);
}

static int senml_cbor_value(struct lwm2m_buf *b, const struct lwm2m_value *v)
{
  int rc;

  switch (v->type) {
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    rc = lwm2m_buf_cbor_int(b, SENML_VS);
    break;
  case LWM2M_T_BOOLEAN:
    rc = lwm2m_buf_cbor_int(b, SENML_VB);
    break;
  case LWM2M_T_OPAQUE:
    rc = lwm2m_buf_cbor_int(b, SENML_VD);
    break;
  case LWM2M_T_OBJLNK:
    /* vlo has no integer label; LwM2M uses the text key. */
    rc = lwm2m_buf_cbor_text(b, "vlo", 3);
    break;
  default:
    rc = lwm2m_buf_cbor_int(b, SENML_V);
    break;
  }
  return rc < 0 ? rc : lwm2m_cbor_put_value(b, v);
}

int lwm2m_senml_cbor_encode(const struct lwm2m_path *base,
                            const struct lwm2m_records *in,
                            const struct lwm2m_model *m, struct lwm2m_buf *out,
                            char *err, size_t errlen)
{
  struct lwm2m_names nm;
  int rc;

  rc = lwm2m_encode_check("SenML CBOR", base, in, err, errlen);
  if (rc < 0)
    return rc;
  lwm2m_names_init(&nm, base, in);
  rc = lwm2m_buf_cbor_array(out, in->len);
  for (size_t i = 0; rc == 0 && i < in->len; i++) {
    const struct lwm2m_record *r = &in->v[i];
    char n[LWM2M_PATH_STRLEN];
    bool has_bn = i == 0 && nm.has_bn;
    bool has_n = lwm2m_names_n(&nm, &r->path, n, sizeof(n));

    rc = lwm2m_buf_cbor_map(out, 1 + has_bn + has_n + (r->time != 0));
    if (rc == 0 && has_bn) {
      rc = lwm2m_buf_cbor_int(out, SENML_BN);
      if (rc == 0)
        rc = lwm2m_buf_cbor_text(out, nm.bn, strlen(nm.bn));
    }
    if (rc == 0 && has_n) {
      rc = lwm2m_buf_cbor_int(out, SENML_N);
      if (rc == 0)
        rc = lwm2m_buf_cbor_text(out, n, strlen(n));
    }
    if (rc == 0)
      rc = senml_cbor_value(out, &r->v);
    if (rc == -EILSEQ) {
      lwm2m_path_format(&r->path, n, sizeof(n));
      lwm2m_errf(err, errlen, "SenML CBOR: %s: string is not valid UTF-8", n);
      return -EINVAL;
    }
    if (rc == 0 && r->time != 0) {
      rc = lwm2m_buf_cbor_int(out, SENML_T);
      if (rc == 0)
        rc = cbor_time(out, r->time);
    }
  }
  if (rc < 0)
    lwm2m_errf(err, errlen, "SenML CBOR: output larger than %u bytes",
               LWM2M_PAYLOAD_MAX);
  return rc;
}

int lwm2m_senml_encode_paths(bool cbor, const struct lwm2m_path *paths,
                             size_t n, struct lwm2m_buf *out)
{
  char ps[LWM2M_PATH_STRLEN];
  json_t *arr;
  char *s;
  int rc = 0;

  if (cbor) {
    rc = lwm2m_buf_cbor_array(out, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      lwm2m_path_format(&paths[i], ps, sizeof(ps));
      rc = lwm2m_buf_cbor_map(out, 1);
      if (rc == 0)
        rc = lwm2m_buf_cbor_int(out, SENML_N);
      if (rc == 0)
        rc = lwm2m_buf_cbor_text(out, ps, strlen(ps));
    }
    return rc;
  }
  arr = json_array();
  if (!arr)
    return -ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    lwm2m_path_format(&paths[i], ps, sizeof(ps));
    if (json_array_append_new(arr, json_pack("{s:s}", "n", ps)) < 0)
      rc = -ENOMEM;
  }
  s = rc == 0 ? json_dumps(arr, JSON_COMPACT) : NULL;
  if (rc == 0 && !s)
    rc = -ENOMEM;
  if (rc == 0)
    rc = lwm2m_buf_put(out, s, strlen(s));
  free(s);
  json_decref(arr);
  return rc;
}

int lwm2m_senml_decode_paths(bool cbor, const uint8_t *buf, size_t len,
                             struct lwm2m_path **paths, size_t *n, char *err,
                             size_t errlen)
{
  struct lwm2m_path root = {.len = 0};
  struct lwm2m_path *tmp = NULL;
  size_t ntmp = 0;
  struct lwm2m_senml_ctx c = {.prefix = cbor ? "SenML CBOR" : "SenML JSON",
                              .base = &root,
                              .paths = &tmp,
                              .npaths = &ntmp,
                              .err = err,
                              .errlen = errlen};
  int rc =
      cbor ? senml_cbor_walk(&c, buf, len) : senml_json_walk(&c, buf, len);

  lwm2m_senml_ctx_clear(&c);
  if (rc < 0) {
    free(tmp);
    return rc;
  }
  *paths = tmp;
  *n = ntmp;
  return 0;
}
