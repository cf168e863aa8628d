/*
 * OMA LwM2M JSON (11543), the LwM2M 1.0 format: one object with a base
 * name, a base time and an "e" array of entries keyed n, v, sv, bv, ov, t.
 * Opaque values travel in sv as standard base64 (as Anjay writes them).
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "LwM2M JSON"

static int entry_bad(struct lwm2m_senml_ctx *c, const char *key,
                     const char *what)
{
  lwm2m_errf(c->err, c->errlen, PREFIX ": entry %zu: \"%s\" %s", c->index, key,
             what);
  return -EINVAL;
}

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

static int omajson_entry(struct lwm2m_senml_ctx *c, json_t *o,
                         struct lwm2m_senml_rec *r)
{
  const char *key;
  json_t *j;

  if (!json_is_object(o)) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": entry %zu is not an object",
               c->index);
    return -EINVAL;
  }
  json_object_foreach(o, key, j)
  {
    if (strcmp(key, "n") == 0) {
      if (!json_is_string(j))
        return entry_bad(c, key, "must be a string");
      r->n = json_bytes(j, &r->nlen);
    } else if (strcmp(key, "t") == 0) {
      if (!json_is_number(j))
        return entry_bad(c, key, "must be a number");
      r->has_t = true;
      r->t = json_number_value(j);
    } else if (strcmp(key, "v") == 0) {
      if (!json_is_number(j))
        return entry_bad(c, key, "must be a number");
      r->kind = LWM2M_SV_NUM;
      r->nvalues++;
      memset(&r->num, 0, sizeof(r->num));
      if (json_is_integer(j)) {
        r->num.kind = LWM2M_NUM_INT;
        r->num.i = json_integer_value(j);
      } else {
        r->num.kind = LWM2M_NUM_FLOAT;
        r->num.f = json_real_value(j);
      }
    } else if (strcmp(key, "bv") == 0) {
      if (!json_is_boolean(j))
        return entry_bad(c, key, "must be a boolean");
      r->kind = LWM2M_SV_BOOL;
      r->nvalues++;
      r->b = json_is_true(j);
    } else if (strcmp(key, "sv") == 0 || strcmp(key, "ov") == 0) {
      if (!json_is_string(j))
        return entry_bad(c, key, "must be a string");
      free(r->data);
      r->data = (uint8_t *)json_bytes(j, &r->dlen);
      r->kind = key[0] == 's' ? LWM2M_SV_STR : LWM2M_SV_LNK;
      r->nvalues++;
    }
  }
  return 0;
}

static int omajson_walk(struct lwm2m_senml_ctx *c, const uint8_t *buf,
                        size_t len)
{
  json_error_t je;
  json_t *top, *bn, *bt, *e;
  int rc = 0;

  top = json_loadb((const char *)buf, len,
                   JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if (!top) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": %s at offset %d", je.text,
               je.position);
    return -EINVAL;
  }
  bn = json_object_get(top, "bn");
  bt = json_object_get(top, "bt");
  e = json_object_get(top, "e");
  if (!json_is_object(top)) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": top level is not an object");
    rc = -EINVAL;
  } else if (!json_is_array(e)) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": \"e\" array missing");
    rc = -EINVAL;
  } else if (bn && !json_is_string(bn)) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": \"bn\" must be a string");
    rc = -EINVAL;
  } else if (bt && !json_is_number(bt)) {
    lwm2m_errf(c->err, c->errlen, PREFIX ": \"bt\" must be a number");
    rc = -EINVAL;
  }
  for (size_t i = 0; rc == 0 && i < json_array_size(e); i++) {
    struct lwm2m_senml_rec r;

    memset(&r, 0, sizeof(r));
    /* The base name and time are the first entry's, then carried on. */
    if (i == 0 && bn)
      r.bn = json_bytes(bn, &r.bnlen);
    if (i == 0 && bt) {
      r.has_bt = true;
      r.bt = json_number_value(bt);
    }
    c->index = i + 1;
    rc = omajson_entry(c, json_array_get(e, i), &r);
    if (rc == 0)
      rc = lwm2m_senml_apply(c, &r);
    lwm2m_senml_rec_clear(&r);
  }
  json_decref(top);
  return rc;
}

int lwm2m_omajson_decode(const uint8_t *buf, size_t len,
                         const struct lwm2m_path *base,
                         const struct lwm2m_model *m,
                         struct lwm2m_records *out, char *err, size_t errlen)
{
  struct lwm2m_senml_ctx c = {.prefix = PREFIX,
                              .base = base,
                              .m = m,
                              .out = out,
                              .sv_base64 = true,
                              .err = err,
                              .errlen = errlen};
  int rc = omajson_walk(&c, buf, len);

  lwm2m_senml_ctx_clear(&c);
  return rc;
}

static int entry_value(json_t *o, const struct lwm2m_record *r, char *err,
                       size_t errlen)
{
  const struct lwm2m_value *v = &r->v;
  char lnk[16], ps[LWM2M_PATH_STRLEN], *b64;
  const char *key, *why = "out of memory";
  json_t *j;

  switch (v->type) {
  case LWM2M_T_STRING:
  case LWM2M_T_CORELNK:
    key = "sv";
    j = lwm2m_json_string(v->u.bytes.data, v->u.bytes.len);
    if (!j)
      why = "string is not valid UTF-8";
    break;
  case LWM2M_T_OPAQUE:
    key = "sv";
    b64 = lwm2m_base64_encode(v->u.bytes.data, v->u.bytes.len, false);
    j = json_string(b64);
    free(b64);
    break;
  case LWM2M_T_BOOLEAN:
    key = "bv";
    j = json_boolean(v->u.b);
    break;
  case LWM2M_T_OBJLNK:
    key = "ov";
    snprintf(lnk, sizeof(lnk), "%u:%u", (unsigned)v->u.lnk.oid,
             (unsigned)v->u.lnk.iid);
    j = json_string(lnk);
    break;
  default:
    key = "v";
    /* As in SenML JSON: no inexact real for a big Unsigned. */
    if (v->type == LWM2M_T_UNSIGNED && v->u.u > INT64_MAX) {
      j = NULL;
      why = "Unsigned above 2^63-1 cannot be written in JSON";
      break;
    }
    j = lwm2m_json_number(v);
    if (!j)
      why = "NaN or infinity cannot be encoded";
    break;
  }
  if (j && json_object_set_new(o, key, j) == 0)
    return 0;
  lwm2m_path_format(&r->path, ps, sizeof(ps));
  lwm2m_errf(err, errlen, PREFIX ": %s: %s", ps, why);
  return -EINVAL;
}

int lwm2m_omajson_encode(const struct lwm2m_path *base,
                         const struct lwm2m_records *in,
                         const struct lwm2m_model *m, struct lwm2m_buf *out,
                         char *err, size_t errlen)
{
  struct lwm2m_names nm;
  json_t *top = NULL, *e;
  char *s = NULL;
  int rc;

  rc = lwm2m_encode_check(PREFIX, base, in, err, errlen);
  if (rc < 0)
    return rc;
  lwm2m_names_init(&nm, base, in);
  top = json_object();
  e = json_array();
  if (!top || !e ||
      (nm.has_bn && json_object_set_new(top, "bn", json_string(nm.bn)) < 0)) {
    json_decref(e);
    rc = -ENOMEM;
    goto out;
  }
  /* json_object_set_new() steals e even when it fails. */
  if (json_object_set_new(top, "e", e) < 0) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; rc == 0 && i < in->len; i++) {
    const struct lwm2m_record *r = &in->v[i];
    char n[LWM2M_PATH_STRLEN];
    json_t *o = json_object();

    if (json_array_append_new(e, o) < 0) {
      rc = -ENOMEM;
      break;
    }
    if (lwm2m_names_n(&nm, &r->path, n, sizeof(n)) &&
        json_object_set_new(o, "n", json_string(n)) < 0)
      rc = -ENOMEM;
    if (rc == 0)
      rc = entry_value(o, r, err, errlen);
    if (rc == 0 && r->time != 0 &&
        json_object_set_new(o, "t",
                            r->time % 1000 == 0
                                ? json_integer(r->time / 1000)
                                : json_real((double)r->time / 1000.0)) < 0)
      rc = -ENOMEM;
  }
  if (rc == 0) {
    s = json_dumps(top, JSON_COMPACT);
    rc = s ? lwm2m_buf_put(out, s, strlen(s)) : -ENOMEM;
  }
out:
  if (rc == -ENOMEM)
    lwm2m_errf(err, errlen, PREFIX ": out of memory");
  else if (rc == -EMSGSIZE)
    lwm2m_errf(err, errlen, PREFIX ": output larger than %u bytes",
               LWM2M_PAYLOAD_MAX);
  free(s);
  json_decref(top);
  return rc;
}
