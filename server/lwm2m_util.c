/*
 * Small helpers every codec uses: error text, the bounded output buffer,
 * base64, strict number parsing and the model-typed number conversion.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lwm2m_errf(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (!err || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int lwm2m_buf_put(struct lwm2m_buf *b, const void *p, size_t n)
{
  if (n > LWM2M_PAYLOAD_MAX || b->len > LWM2M_PAYLOAD_MAX - n)
    return -EMSGSIZE;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;

    while (cap < b->len + n)
      cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
  }
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int lwm2m_buf_putc(struct lwm2m_buf *b, uint8_t c)
{
  return lwm2m_buf_put(b, &c, 1);
}

void lwm2m_buf_free(struct lwm2m_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *lwm2m_base64_encode(const uint8_t *p, size_t n, bool url)
{
  const char *abc = url ? b64_url : b64_std;
  char *out = xmalloc((n + 2) / 3 * 4 + 1);
  size_t o = 0, i = 0;

  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;

    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    if (!url) {
      out[o++] = '=';
      out[o++] = '=';
    }
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    if (!url)
      out[o++] = '=';
  }
  out[o] = '\0';
  return out;
}

static int b64_val(char c, bool url)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == (url ? '-' : '+'))
    return 62;
  if (c == (url ? '_' : '/'))
    return 63;
  return -1;
}

int lwm2m_base64_decode(const char *s, size_t n, bool url, uint8_t **out,
                        size_t *outlen, size_t *bad)
{
  size_t data = n, pad = 0, o = 0;
  uint32_t acc = 0;
  uint8_t *p;

  /* Padding: only in the standard alphabet, at most two '=' at the end,
   * and then the whole text comes in groups of four. */
  while (data > 0 && s[data - 1] == '=' && pad < 2) {
    data--;
    pad++;
  }
  if (pad > 0 && (url || n % 4 != 0)) {
    *bad = data;
    return -EINVAL;
  }
  if (data % 4 == 1) {
    *bad = data - 1;
    return -EINVAL;
  }
  p = xmalloc(data / 4 * 3 + 3);
  for (size_t i = 0; i < data; i++) {
    int v = b64_val(s[i], url);

    if (v < 0) {
      free(p);
      *bad = i;
      return -EINVAL;
    }
    acc = acc << 6 | (uint32_t)v;
    if (i % 4 == 3) {
      p[o++] = (uint8_t)(acc >> 16);
      p[o++] = (uint8_t)(acc >> 8);
      p[o++] = (uint8_t)acc;
      acc = 0;
    }
  }
  if (data % 4 == 2) {
    p[o++] = (uint8_t)(acc >> 4);
  } else if (data % 4 == 3) {
    p[o++] = (uint8_t)(acc >> 10);
    p[o++] = (uint8_t)(acc >> 2);
  }
  /* NUL-terminated like every byte value, though Opaque need not be. */
  p[o] = '\0';
  *out = p;
  *outlen = o;
  return 0;
}

int lwm2m_parse_u64(const char *s, size_t n, uint64_t *out)
{
  uint64_t v = 0;

  if (n == 0 || n > 20)
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned d;

    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -ERANGE;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int lwm2m_parse_i64(const char *s, size_t n, int64_t *out)
{
  char tmp[32];

  /* parse_int64() wants a C string; a longer text cannot be in range. */
  if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n))
    return -EINVAL;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  return parse_int64(tmp, INT64_MIN, INT64_MAX, out);
}

int lwm2m_parse_double(const char *s, size_t n, double *out)
{
  char tmp[128];
  char *end = NULL;
  double f;

  if (n == 0 || n >= sizeof(tmp))
    return -EINVAL;
  /* strtod() also takes blanks, "+", hex, "inf" and "nan"; the LwM2M
   * text form is a plain decimal, so check the alphabet first. */
  for (size_t i = 0; i < n; i++) {
    char c = s[i];

    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' ||
          c == '-' || c == '+'))
      return -EINVAL;
  }
  if (!(s[0] >= '0' && s[0] <= '9') &&
      !(s[0] == '-' && n > 1 && s[1] >= '0' && s[1] <= '9'))
    return -EINVAL;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  errno = 0;
  f = strtod(tmp, &end);
  if (end != tmp + n || !isfinite(f))
    return -EINVAL;
  *out = f;
  return 0;
}

int lwm2m_parse_objlnk(const char *s, size_t n, uint16_t *oid, uint16_t *iid)
{
  const char *colon = memchr(s, ':', n);
  uint64_t a, b;

  if (!colon)
    return -EINVAL;
  if (lwm2m_parse_u64(s, (size_t)(colon - s), &a) < 0 ||
      lwm2m_parse_u64(colon + 1, n - (size_t)(colon - s) - 1, &b) < 0 ||
      a > 65535 || b > 65535)
    return -EINVAL;
  *oid = (uint16_t)a;
  *iid = (uint16_t)b;
  return 0;
}

void lwm2m_format_double(double f, char *buf, size_t len)
{
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, f);
    if (strtod(buf, NULL) == f)
      return;
  }
}

size_t lwm2m_utf8_seq(const uint8_t *p, size_t n)
{
  uint8_t c = p[0];
  size_t k;
  uint32_t cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    k = 1;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    k = 2;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 3;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n <= k)
    return 0;
  for (size_t j = 1; j <= k; j++) {
    if ((p[j] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[j] & 0x3f);
  }
  /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
  if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return k + 1;
}

bool lwm2m_utf8_valid(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n;) {
    size_t k = lwm2m_utf8_seq(p + i, n - i);

    if (k == 0)
      return false;
    i += k;
  }
  return true;
}

void lwm2m_snippet(const void *p, size_t n, char *buf, size_t len)
{
  const uint8_t *s = p;
  size_t keep = n, o = 0;

  if (len < 4) {
    if (len > 0)
      buf[0] = '\0';
    return;
  }
  if (n > len - 1)
    keep = len - 4;
  for (size_t i = 0; i < keep; i++)
    buf[o++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
  if (keep < n) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
}

static int num_not_integer(const struct lwm2m_num *n, enum lwm2m_type want,
                           const char *where, char *err, size_t errlen)
{
  char fs[40];

  lwm2m_format_double(n->f, fs, sizeof(fs));
  lwm2m_errf(err, errlen, "%s: %s is not a valid %s", where, fs,
             lwm2m_type_name(want));
  return -EINVAL;
}

int lwm2m_num_to_value(const struct lwm2m_num *n, enum lwm2m_type want,
                       struct lwm2m_value *v, const char *where, char *err,
                       size_t errlen)
{
  struct lwm2m_value tmp = {.type = want};

  switch (want) {
  case LWM2M_T_NONE:
    if (n->kind == LWM2M_NUM_INT) {
      tmp.type = LWM2M_T_INTEGER;
      tmp.u.i = n->i;
    } else if (n->kind == LWM2M_NUM_UINT) {
      tmp.type = LWM2M_T_UNSIGNED;
      tmp.u.u = n->u;
    } else {
      tmp.type = LWM2M_T_FLOAT;
      tmp.u.f = n->f;
    }
    break;
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    if (n->kind == LWM2M_NUM_INT) {
      tmp.u.i = n->i;
    } else if (n->kind == LWM2M_NUM_UINT) {
      lwm2m_errf(err, errlen, "%s: %llu is out of range for %s", where,
                 (unsigned long long)n->u, lwm2m_type_name(want));
      return -EINVAL;
    } else {
      /* The range test comes first: converting an out-of-range double to
       * an integer is undefined. */
      if (!(n->f >= -9223372036854775808.0 && n->f < 9223372036854775808.0) ||
          (double)(int64_t)n->f != n->f)
        return num_not_integer(n, want, where, err, errlen);
      tmp.u.i = (int64_t)n->f;
    }
    break;
  case LWM2M_T_UNSIGNED:
    if (n->kind == LWM2M_NUM_INT) {
      if (n->i < 0) {
        lwm2m_errf(err, errlen, "%s: %lld is out of range for %s", where,
                   (long long)n->i, lwm2m_type_name(want));
        return -EINVAL;
      }
      tmp.u.u = (uint64_t)n->i;
    } else if (n->kind == LWM2M_NUM_UINT) {
      tmp.u.u = n->u;
    } else {
      if (!(n->f >= 0 && n->f < 18446744073709551616.0) ||
          (double)(uint64_t)n->f != n->f)
        return num_not_integer(n, want, where, err, errlen);
      tmp.u.u = (uint64_t)n->f;
    }
    break;
  case LWM2M_T_FLOAT:
    if (n->kind == LWM2M_NUM_INT)
      tmp.u.f = (double)n->i;
    else if (n->kind == LWM2M_NUM_UINT)
      tmp.u.f = (double)n->u;
    else
      tmp.u.f = n->f;
    break;
  default:
    lwm2m_errf(err, errlen, "%s: a number where %s was expected", where,
               lwm2m_type_name(want));
    return -EINVAL;
  }
  *v = tmp;
  return 0;
}
