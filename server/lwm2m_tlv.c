/*
 * OMA TLV (11542). A TLV's type byte says what it holds (object instance,
 * resource, multiple resource, resource instance); values carry no type,
 * so the model supplies it and a resource it does not know stays Opaque.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tlv_kind {
  TLV_INSTANCE = 0,
  TLV_RES_INSTANCE = 1,
  TLV_MULTI_RES = 2,
  TLV_RESOURCE = 3,
};

static const char *const kind_names[] = {
    "object instance",
    "resource instance",
    "multiple resource",
    "resource",
};

/* The largest value the 24-bit length field can describe. */
#define TLV_LEN_MAX 0xffffffu

struct tlv {
  enum tlv_kind kind;
  uint16_t id;
  size_t start; /* offset of the type byte */
  size_t off;   /* offset of the value */
  size_t len;
};

struct tlv_dec {
  const uint8_t *buf;
  const struct lwm2m_path *base;
  const struct lwm2m_model *m;
  struct lwm2m_records *out;
  char *err;
  size_t errlen;
};

/* Reads the TLV header at pos, within a parent that ends at end. */
static int tlv_header(struct tlv_dec *d, size_t pos, size_t end, struct tlv *t)
{
  const uint8_t *b = d->buf;
  size_t idw, lenw, need, len = 0;

  idw = (b[pos] & 0x20) ? 2 : 1;
  lenw = (b[pos] >> 3) & 3;
  need = 1 + idw + lenw;
  if (need > end - pos) {
    lwm2m_errf(d->err, d->errlen,
               "TLV: header at offset %zu needs %zu bytes, %zu remain", pos,
               need, end - pos);
    return -EINVAL;
  }
  t->start = pos;
  t->kind = (enum tlv_kind)(b[pos] >> 6);
  t->id = idw == 2 ? (uint16_t)(b[pos + 1] << 8 | b[pos + 2]) : b[pos + 1];
  if (lenw == 0)
    len = b[pos] & 7;
  for (size_t i = 0; i < lenw; i++)
    len = len << 8 | b[pos + 1 + idw + i];
  t->off = pos + need;
  t->len = len;
  if (t->id > LWM2M_ID_MAX) {
    lwm2m_errf(d->err, d->errlen,
               "TLV: identifier %u at offset %zu is reserved", (unsigned)t->id,
               pos);
    return -EINVAL;
  }
  if (len > end - t->off) {
    lwm2m_errf(d->err, d->errlen,
               "TLV: length %zu overruns the %zu remaining bytes at offset "
               "%zu",
               len, end - t->off, t->off);
    return -EINVAL;
  }
  return 0;
}

static uint64_t be_uint(const uint8_t *p, size_t n)
{
  uint64_t v = 0;

  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static int tlv_value(struct tlv_dec *d, const struct tlv *t,
                     const struct lwm2m_path *p)
{
  const struct lwm2m_res_def *rd = lwm2m_res_for(d->m, p);
  enum lwm2m_type type = rd ? rd->type : LWM2M_T_NONE;
  const uint8_t *b = d->buf + t->off;
  struct lwm2m_value v = {.type = type};
  const char *want = NULL;
  char ps[LWM2M_PATH_STRLEN];
  size_t n = t->len;

  switch (type) {
  case LWM2M_T_NONE:
    /* Unknown (or executable) resource: keep the raw bytes. */
    lwm2m_value_set_bytes(&v, LWM2M_T_OPAQUE, b, n);
    break;
  case LWM2M_T_STRING:
  case LWM2M_T_OPAQUE:
  case LWM2M_T_CORELNK:
    lwm2m_value_set_bytes(&v, type, b, n);
    break;
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    if (n != 1 && n != 2 && n != 4 && n != 8) {
      want = "1, 2, 4 or 8";
      break;
    }
    /* Sign-extend from the top bit of the first byte. */
    v.u.i = (int64_t)be_uint(b, n);
    if (n < 8 && (b[0] & 0x80))
      v.u.i = (int64_t)(be_uint(b, n) | (UINT64_MAX << (8 * n)));
    break;
  case LWM2M_T_UNSIGNED:
    if (n != 1 && n != 2 && n != 4 && n != 8) {
      want = "1, 2, 4 or 8";
      break;
    }
    v.u.u = be_uint(b, n);
    break;
  case LWM2M_T_FLOAT:
    if (n == 4) {
      uint32_t bits = (uint32_t)be_uint(b, 4);
      float f;

      memcpy(&f, &bits, sizeof(f));
      v.u.f = f;
    } else if (n == 8) {
      uint64_t bits = be_uint(b, 8);

      memcpy(&v.u.f, &bits, sizeof(v.u.f));
    } else {
      want = "4 or 8";
    }
    break;
  case LWM2M_T_BOOLEAN:
    if (n != 1 || b[0] > 1)
      want = "1 (0 or 1)";
    else
      v.u.b = b[0] == 1;
    break;
  case LWM2M_T_OBJLNK:
    if (n != 4) {
      want = "4";
      break;
    }
    v.u.lnk.oid = (uint16_t)be_uint(b, 2);
    v.u.lnk.iid = (uint16_t)be_uint(b + 2, 2);
    break;
  }
  if (want) {
    lwm2m_path_format(p, ps, sizeof(ps));
    if (type == LWM2M_T_BOOLEAN && n == 1)
      lwm2m_errf(d->err, d->errlen,
                 "TLV: %s is Boolean but holds %u at offset %zu", ps,
                 (unsigned)b[0], t->off);
    else
      lwm2m_errf(d->err, d->errlen,
                 "TLV: %s is %s but has %zu bytes at offset %zu (%s "
                 "expected)",
                 ps, lwm2m_type_name(type), n, t->off, want);
    return -EINVAL;
  }
  if (d->out->len >= LWM2M_RECORDS_MAX) {
    lwm2m_value_clear(&v);
    lwm2m_errf(d->err, d->errlen, "TLV: more than %d records",
               LWM2M_RECORDS_MAX);
    return -EMSGSIZE;
  }
  lwm2m_records_add(d->out, p, &v);
  return 0;
}

/* A TLV's path must agree with the request path where both have ids. */
static int tlv_in_base(struct tlv_dec *d, const struct tlv *t,
                       const struct lwm2m_path *p)
{
  char ps[LWM2M_PATH_STRLEN], bs[LWM2M_PATH_STRLEN];

  for (uint8_t k = 0; k < p->len && k < d->base->len; k++) {
    if (p->id[k] != d->base->id[k]) {
      lwm2m_path_format(p, ps, sizeof(ps));
      lwm2m_path_format(d->base, bs, sizeof(bs));
      lwm2m_errf(d->err, d->errlen,
                 "TLV: %s %s at offset %zu is outside the requested %s",
                 kind_names[t->kind], ps, t->start, bs);
      return -EINVAL;
    }
  }
  return 0;
}

/* The path length a TLV's parent has: the kind fixes the level. */
static uint8_t parent_len(enum tlv_kind k)
{
  switch (k) {
  case TLV_INSTANCE:
    return 1;
  case TLV_RESOURCE:
  case TLV_MULTI_RES:
    return 2;
  case TLV_RES_INSTANCE:
    break;
  }
  return 3;
}

/*
 * Decodes the TLVs in [start, end) under parent path at. Nesting follows
 * the kinds (instance > resource > resource instance), so the recursion is
 * at most three deep whatever the input says.
 */
static int tlv_list(struct tlv_dec *d, size_t start, size_t end,
                    const struct lwm2m_path *at)
{
  size_t pos = start;

  while (pos < end) {
    struct tlv t;
    struct lwm2m_path p;
    int rc = tlv_header(d, pos, end, &t);

    if (rc < 0)
      return rc;
    if (at) {
      p = *at;
    } else {
      /* Top level: the parent comes from the request path. A resource
       * straight under an object path means instance 0, as single-instance
       * objects are sometimes sent. */
      uint8_t need = parent_len(t.kind);

      p = *d->base;
      if (need == 2 && p.len == 1) {
        p.id[1] = 0;
        p.len = 2;
      } else if (p.len < need) {
        char bs[LWM2M_PATH_STRLEN];

        lwm2m_path_format(d->base, bs, sizeof(bs));
        lwm2m_errf(d->err, d->errlen,
                   "TLV: %s at offset %zu cannot be at the top of a "
                   "payload for %s",
                   kind_names[t.kind], pos, bs);
        return -EINVAL;
      }
      p.len = need;
    }
    if (p.len != parent_len(t.kind)) {
      char ps[LWM2M_PATH_STRLEN];

      lwm2m_path_format(&p, ps, sizeof(ps));
      lwm2m_errf(d->err, d->errlen,
                 "TLV: %s at offset %zu cannot be inside %s",
                 kind_names[t.kind], pos, ps);
      return -EINVAL;
    }
    p.id[p.len++] = t.id;
    rc = tlv_in_base(d, &t, &p);
    if (rc < 0)
      return rc;
    if (t.kind == TLV_INSTANCE || t.kind == TLV_MULTI_RES)
      rc = tlv_list(d, t.off, t.off + t.len, &p);
    else
      rc = tlv_value(d, &t, &p);
    if (rc < 0)
      return rc;
    pos = t.off + t.len;
  }
  return 0;
}

int lwm2m_tlv_decode(const uint8_t *buf, size_t len,
                     const struct lwm2m_path *base,
                     const struct lwm2m_model *m, struct lwm2m_records *out,
                     char *err, size_t errlen)
{
  struct tlv_dec d = {buf, base, m, out, err, errlen};

  if (base->len == 0) {
    lwm2m_errf(err, errlen, "TLV: needs an object path, not /");
    return -EINVAL;
  }
  return tlv_list(&d, 0, len, NULL);
}

static int put_tlv(struct lwm2m_buf *b, enum tlv_kind kind, uint16_t id,
                   const void *val, size_t len)
{
  uint8_t h[6];
  size_t n = 0;

  if (len > TLV_LEN_MAX)
    return -EMSGSIZE;
  h[n++] = (uint8_t)(kind << 6 | (id > 0xff ? 0x20 : 0));
  if (id > 0xff)
    h[n++] = (uint8_t)(id >> 8);
  h[n++] = (uint8_t)id;
  if (len <= 7) {
    h[0] |= (uint8_t)len;
  } else if (len <= 0xff) {
    h[0] |= 1 << 3;
    h[n++] = (uint8_t)len;
  } else if (len <= 0xffff) {
    h[0] |= 2 << 3;
    h[n++] = (uint8_t)(len >> 8);
    h[n++] = (uint8_t)len;
  } else {
    h[0] |= 3 << 3;
    h[n++] = (uint8_t)(len >> 16);
    h[n++] = (uint8_t)(len >> 8);
    h[n++] = (uint8_t)len;
  }
  if (lwm2m_buf_put(b, h, n) < 0)
    return -EMSGSIZE;
  return lwm2m_buf_put(b, val, len);
}

static size_t put_be(uint8_t *p, uint64_t v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  return n;
}

/* Fills tmp with a value's TLV bytes, or points *data at its bytes. */
static size_t value_bytes(const struct lwm2m_value *v, uint8_t *tmp,
                          const uint8_t **data)
{
  *data = tmp;
  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    if (v->u.i >= INT8_MIN && v->u.i <= INT8_MAX)
      return put_be(tmp, (uint64_t)v->u.i, 1);
    if (v->u.i >= INT16_MIN && v->u.i <= INT16_MAX)
      return put_be(tmp, (uint64_t)v->u.i, 2);
    if (v->u.i >= INT32_MIN && v->u.i <= INT32_MAX)
      return put_be(tmp, (uint64_t)v->u.i, 4);
    return put_be(tmp, (uint64_t)v->u.i, 8);
  case LWM2M_T_UNSIGNED:
    /* Unsigned in the fewest of 1, 2, 4, 8 bytes: 200 is C8 (Anjay). */
    if (v->u.u <= UINT8_MAX)
      return put_be(tmp, v->u.u, 1);
    if (v->u.u <= UINT16_MAX)
      return put_be(tmp, v->u.u, 2);
    if (v->u.u <= UINT32_MAX)
      return put_be(tmp, v->u.u, 4);
    return put_be(tmp, v->u.u, 8);
  case LWM2M_T_FLOAT:
    if (lwm2m_float_fits_single(v->u.f)) {
      float f = (float)v->u.f;
      uint32_t bits;

      memcpy(&bits, &f, sizeof(bits));
      return put_be(tmp, bits, 4);
    } else {
      uint64_t bits;

      memcpy(&bits, &v->u.f, sizeof(bits));
      return put_be(tmp, bits, 8);
    }
  case LWM2M_T_BOOLEAN:
    tmp[0] = v->u.b ? 1 : 0;
    return 1;
  case LWM2M_T_OBJLNK:
    put_be(tmp, v->u.lnk.oid, 2);
    put_be(tmp + 2, v->u.lnk.iid, 2);
    return 4;
  case LWM2M_T_STRING:
  case LWM2M_T_OPAQUE:
  case LWM2M_T_CORELNK:
    *data = v->u.bytes.data;
    return v->u.bytes.len;
  case LWM2M_T_NONE:
    break;
  }
  return 0;
}

static int put_value(struct lwm2m_buf *b, enum tlv_kind kind, uint16_t id,
                     const struct lwm2m_value *v)
{
  uint8_t tmp[8];
  const uint8_t *data;
  size_t n = value_bytes(v, tmp, &data);

  return put_tlv(b, kind, id, data, n);
}

struct tlv_enc {
  const struct lwm2m_record **r;
  char *err;
  size_t errlen;
};

static int dup_path(struct tlv_enc *e, const struct lwm2m_record *r)
{
  char ps[LWM2M_PATH_STRLEN];

  lwm2m_path_format(&r->path, ps, sizeof(ps));
  lwm2m_errf(e->err, e->errlen,
             "TLV: %s appears more than once, or both with and without "
             "instances",
             ps);
  return -EINVAL;
}

/* Resource TLVs for sorted records [lo, hi) of one object instance. */
static int put_resources(struct tlv_enc *e, struct lwm2m_buf *b, size_t lo,
                         size_t hi)
{
  for (size_t i = lo; i < hi;) {
    const struct lwm2m_record *first = e->r[i];
    uint16_t rid = first->path.id[2];
    size_t j = i + 1;
    int rc;

    while (j < hi && e->r[j]->path.id[2] == rid)
      j++;
    if (first->path.len == 3) {
      if (j - i > 1)
        return dup_path(e, e->r[i + 1]);
      rc = put_value(b, TLV_RESOURCE, rid, &first->v);
    } else {
      struct lwm2m_buf inner = {.data = NULL};

      rc = 0;
      for (size_t k = i; rc == 0 && k < j; k++) {
        if (k > i && e->r[k]->path.id[3] == e->r[k - 1]->path.id[3])
          rc = dup_path(e, e->r[k]);
        else
          rc = put_value(&inner, TLV_RES_INSTANCE, e->r[k]->path.id[3],
                         &e->r[k]->v);
      }
      if (rc == 0)
        rc = put_tlv(b, TLV_MULTI_RES, rid, inner.data, inner.len);
      lwm2m_buf_free(&inner);
    }
    if (rc < 0)
      return rc;
    i = j;
  }
  return 0;
}

int lwm2m_tlv_encode(const struct lwm2m_path *base,
                     const struct lwm2m_records *in,
                     const struct lwm2m_model *m, struct lwm2m_buf *out,
                     char *err, size_t errlen)
{
  struct tlv_enc e = {NULL, err, errlen};
  int rc;

  if (base->len == 0) {
    lwm2m_errf(err, errlen, "TLV: needs an object path, not /");
    return -EINVAL;
  }
  rc = lwm2m_encode_check("TLV", base, in, err, errlen);
  if (rc < 0)
    return rc;
  e.r = lwm2m_records_sorted(in);
  if (base->len == 4) {
    /* A resource instance on its own. */
    if (in->len != 1)
      rc = in->len == 0 ? 0 : dup_path(&e, e.r[1]);
    else
      rc = put_value(out, TLV_RES_INSTANCE, base->id[3], &e.r[0]->v);
  } else if (base->len >= 2) {
    rc = put_resources(&e, out, 0, in->len);
  } else {
    /* Object level: one object-instance TLV around each instance. */
    for (size_t i = 0; rc == 0 && i < in->len;) {
      uint16_t iid = e.r[i]->path.id[1];
      struct lwm2m_buf inner = {.data = NULL};
      size_t j = i + 1;

      while (j < in->len && e.r[j]->path.id[1] == iid)
        j++;
      rc = put_resources(&e, &inner, i, j);
      if (rc == 0)
        rc = put_tlv(out, TLV_INSTANCE, iid, inner.data, inner.len);
      lwm2m_buf_free(&inner);
      i = j;
    }
  }
  free(e.r);
  if (rc == -EMSGSIZE)
    lwm2m_errf(err, errlen,
               "TLV: a value or the payload exceeds the %u-byte limit",
               TLV_LEN_MAX);
  return rc;
}
