/*
 * Paths, values and record lists: the shape every codec converts to and
 * from.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lwm2m_path_parse(const char *s, struct lwm2m_path *p)
{
  struct lwm2m_path tmp = {.len = 0};

  if (!s)
    return -EINVAL;
  if (*s == '\0') {
    *p = tmp;
    return 0;
  }
  if (*s != '/')
    return -EINVAL;
  s++;
  while (*s != '\0') {
    uint32_t v = 0;
    size_t nd = 0;

    if (tmp.len == 4)
      return -EINVAL;
    /* Leading zeros are refused so that each path has one spelling, which
     * the JSON views use as a map key. */
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
      return -EINVAL;
    while (*s >= '0' && *s <= '9') {
      v = v * 10 + (uint32_t)(*s - '0');
      if (++nd > 5 || v > LWM2M_ID_MAX)
        return -EINVAL;
      s++;
    }
    if (nd == 0)
      return -EINVAL;
    tmp.id[tmp.len++] = (uint16_t)v;
    if (*s == '/')
      s++;
    else if (*s != '\0')
      return -EINVAL;
  }
  *p = tmp;
  return 0;
}

void lwm2m_path_format(const struct lwm2m_path *p, char *buf, size_t len)
{
  size_t off = 0;

  if (len == 0)
    return;
  if (p->len == 0) {
    snprintf(buf, len, "/");
    return;
  }
  buf[0] = '\0';
  for (uint8_t i = 0; i < p->len && i < 4 && off < len; i++) {
    int n = snprintf(buf + off, len - off, "/%u", (unsigned)p->id[i]);

    if (n < 0)
      return;
    off += (size_t)n;
  }
}

bool lwm2m_path_under(const struct lwm2m_path *p,
                      const struct lwm2m_path *prefix)
{
  if (p->len < prefix->len)
    return false;
  for (uint8_t i = 0; i < prefix->len; i++)
    if (p->id[i] != prefix->id[i])
      return false;
  return true;
}

/* A parent sorts before its children, siblings by id. */
int lwm2m_path_cmp(const struct lwm2m_path *a, const struct lwm2m_path *b)
{
  uint8_t n = a->len < b->len ? a->len : b->len;

  for (uint8_t i = 0; i < n; i++)
    if (a->id[i] != b->id[i])
      return a->id[i] < b->id[i] ? -1 : 1;
  if (a->len != b->len)
    return a->len < b->len ? -1 : 1;
  return 0;
}

void lwm2m_records_init(struct lwm2m_records *r)
{
  r->v = NULL;
  r->len = 0;
  r->cap = 0;
}

void lwm2m_records_free(struct lwm2m_records *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->len; i++)
    lwm2m_value_clear(&r->v[i].v);
  free(r->v);
  lwm2m_records_init(r);
}

static void records_reserve(struct lwm2m_records *r, size_t extra)
{
  size_t cap = r->cap ? r->cap : 8;

  if (r->len + extra <= r->cap)
    return;
  while (cap < r->len + extra)
    cap *= 2;
  r->v = xrealloc(r->v, cap * sizeof(*r->v));
  r->cap = cap;
}

struct lwm2m_record *lwm2m_records_add(struct lwm2m_records *r,
                                       const struct lwm2m_path *p,
                                       const struct lwm2m_value *v)
{
  struct lwm2m_record *rec;

  records_reserve(r, 1);
  rec = &r->v[r->len++];
  memset(rec, 0, sizeof(*rec));
  rec->path = *p;
  rec->v = *v;
  return rec;
}

void lwm2m_records_move(struct lwm2m_records *dst, struct lwm2m_records *src)
{
  if (src->len > 0) {
    records_reserve(dst, src->len);
    memcpy(dst->v + dst->len, src->v, src->len * sizeof(*src->v));
    dst->len += src->len;
  }
  free(src->v);
  lwm2m_records_init(src);
}

static bool has_bytes(enum lwm2m_type t)
{
  return t == LWM2M_T_STRING || t == LWM2M_T_OPAQUE || t == LWM2M_T_CORELNK;
}

void lwm2m_value_copy(struct lwm2m_value *dst, const struct lwm2m_value *src)
{
  *dst = *src;
  if (has_bytes(src->type))
    lwm2m_value_set_bytes(dst, src->type, src->u.bytes.data, src->u.bytes.len);
}

void lwm2m_value_clear(struct lwm2m_value *v)
{
  if (!v)
    return;
  if (has_bytes(v->type))
    free(v->u.bytes.data);
  memset(v, 0, sizeof(*v));
}

void lwm2m_value_set_bytes(struct lwm2m_value *v, enum lwm2m_type type,
                           const void *data, size_t len)
{
  uint8_t *p = xmalloc(len + 1);

  if (len > 0)
    memcpy(p, data, len);
  p[len] = '\0';
  memset(v, 0, sizeof(*v));
  v->type = type;
  v->u.bytes.data = p;
  v->u.bytes.len = len;
}

const char *lwm2m_type_name(enum lwm2m_type t)
{
  switch (t) {
  case LWM2M_T_NONE:
    return "none";
  case LWM2M_T_STRING:
    return "String";
  case LWM2M_T_INTEGER:
    return "Integer";
  case LWM2M_T_UNSIGNED:
    return "Unsigned Integer";
  case LWM2M_T_FLOAT:
    return "Float";
  case LWM2M_T_BOOLEAN:
    return "Boolean";
  case LWM2M_T_OPAQUE:
    return "Opaque";
  case LWM2M_T_TIME:
    return "Time";
  case LWM2M_T_OBJLNK:
    return "Objlnk";
  case LWM2M_T_CORELNK:
    return "Corelnk";
  }
  return "?";
}

/*
 * A bottom-up merge sort: qsort is not stable, and a record list may
 * legitimately hold the same path twice (a Send with several timestamps).
 */
static void sort_ptrs(const struct lwm2m_record **a, size_t n)
{
  const struct lwm2m_record **tmp, **src, **dst;

  if (n < 2)
    return;
  tmp = xmalloc(n * sizeof(*tmp));
  src = a;
  dst = tmp;
  for (size_t w = 1; w < n; w *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n;
      size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
      size_t i = lo, j = mid, k = lo;

      while (i < mid && j < hi)
        dst[k++] = lwm2m_path_cmp(&src[j]->path, &src[i]->path) < 0 ? src[j++]
                                                                    : src[i++];
      while (i < mid)
        dst[k++] = src[i++];
      while (j < hi)
        dst[k++] = src[j++];
    }
    const struct lwm2m_record **t = src;
    src = dst;
    dst = t;
  }
  if (src != a)
    memcpy(a, src, n * sizeof(*a));
  free(tmp);
}

const struct lwm2m_record **
lwm2m_records_sorted(const struct lwm2m_records *in)
{
  const struct lwm2m_record **a = xmalloc((in->len + 1) * sizeof(*a));

  for (size_t i = 0; i < in->len; i++)
    a[i] = &in->v[i];
  sort_ptrs(a, in->len);
  return a;
}

void lwm2m_records_sort(struct lwm2m_records *r)
{
  const struct lwm2m_record **a;
  struct lwm2m_record *v;

  if (r->len < 2)
    return;
  a = lwm2m_records_sorted(r);
  v = xmalloc(r->cap * sizeof(*v));
  for (size_t i = 0; i < r->len; i++)
    v[i] = *a[i];
  free(a);
  free(r->v);
  r->v = v;
}

const struct lwm2m_res_def *lwm2m_res_for(const struct lwm2m_model *m,
                                          const struct lwm2m_path *p)
{
  if (!m || p->len < 3)
    return NULL;
  return lwm2m_model_res(m, p->id[0], p->id[2]);
}

int lwm2m_encode_check(const char *prefix, const struct lwm2m_path *base,
                       const struct lwm2m_records *in, char *err,
                       size_t errlen)
{
  char ps[LWM2M_PATH_STRLEN], bs[LWM2M_PATH_STRLEN];

  for (size_t i = 0; i < in->len; i++) {
    const struct lwm2m_record *r = &in->v[i];

    lwm2m_path_format(&r->path, ps, sizeof(ps));
    if (r->path.len < 3 || r->path.len > 4) {
      lwm2m_errf(err, errlen, "%s: record %s is not a resource", prefix, ps);
      return -EINVAL;
    }
    if (!lwm2m_path_under(&r->path, base)) {
      lwm2m_path_format(base, bs, sizeof(bs));
      lwm2m_errf(err, errlen, "%s: record %s is not under %s", prefix, ps, bs);
      return -EINVAL;
    }
    if (r->v.type == LWM2M_T_NONE) {
      lwm2m_errf(err, errlen, "%s: record %s has no value", prefix, ps);
      return -EINVAL;
    }
  }
  return 0;
}
