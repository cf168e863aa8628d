/*
 * CoRE Link Format (RFC 6690) as LwM2M uses it in Register, Update and
 * Discover payloads, and the Execute argument grammar.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what one payload may make us allocate. */
#define LINKS_MAX 10000
#define ATTRS_MAX 64

#define PREFIX "link format"

struct link_parser {
  const char *s;
  size_t len, pos;
  char *err;
  size_t errlen;
};

static void skip_ws(struct link_parser *p)
{
  while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                             p->s[p->pos] == '\r' || p->s[p->pos] == '\n'))
    p->pos++;
}

static int fail(struct link_parser *p, const char *what)
{
  if (p->pos < p->len) {
    unsigned char c = (unsigned char)p->s[p->pos];

    if (c >= 0x20 && c < 0x7f)
      lwm2m_errf(p->err, p->errlen, PREFIX ": %s at offset %zu (found '%c')",
                 what, p->pos, c);
    else
      lwm2m_errf(p->err, p->errlen,
                 PREFIX ": %s at offset %zu (found byte 0x%02x)", what, p->pos,
                 c);
  } else {
    lwm2m_errf(p->err, p->errlen, PREFIX ": %s at the end (offset %zu)", what,
               p->pos);
  }
  return -EINVAL;
}

/* RFC 5987 attr-char, plus '*' for extended parameter names. */
static bool name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$&+-.^_`|~*", c));
}

/* RFC 6690 ptoken characters: printable ASCII but for these four. */
static bool ptoken_char(char c)
{
  return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}

static int parse_attr(struct link_parser *p, struct lwm2m_link_attr *a)
{
  size_t start = p->pos;

  while (p->pos < p->len && name_char(p->s[p->pos]))
    p->pos++;
  if (p->pos == start)
    return fail(p, "expected an attribute name");
  a->name = xstrndup(p->s + start, p->pos - start);
  skip_ws(p);
  if (p->pos >= p->len || p->s[p->pos] != '=')
    return 0; /* bare attribute */
  p->pos++;
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == '"') {
    size_t open = p->pos++;
    char *v = xmalloc(p->len - p->pos + 1);
    size_t n = 0;

    /* Quoted-string: anything up to an unescaped '"'; a backslash takes
     * the next character literally. */
    while (p->pos < p->len && p->s[p->pos] != '"') {
      if (p->s[p->pos] == '\\' && p->pos + 1 < p->len)
        p->pos++;
      v[n++] = p->s[p->pos++];
    }
    v[n] = '\0';
    a->value = v;
    if (p->pos >= p->len) {
      p->pos = open;
      return fail(p, "unterminated quoted value");
    }
    p->pos++;
    return 0;
  }
  start = p->pos;
  while (p->pos < p->len && ptoken_char(p->s[p->pos]))
    p->pos++;
  if (p->pos == start)
    return fail(p, "expected a value after '='");
  a->value = xstrndup(p->s + start, p->pos - start);
  return 0;
}

static int parse_link(struct link_parser *p, struct lwm2m_link *l)
{
  size_t start, cap = 0;

  if (p->pos >= p->len || p->s[p->pos] != '<')
    return fail(p, "expected '<'");
  start = ++p->pos;
  while (p->pos < p->len && p->s[p->pos] != '>') {
    unsigned char c = (unsigned char)p->s[p->pos];

    if (c <= 0x20 || c >= 0x7f || c == '<')
      return fail(p, "bad character in URI");
    p->pos++;
  }
  if (p->pos >= p->len) {
    p->pos = start - 1;
    return fail(p, "missing '>' for the link");
  }
  if (p->pos == start)
    return fail(p, "empty URI");
  l->uri = xstrndup(p->s + start, p->pos - start);
  l->is_path = lwm2m_path_parse(l->uri, &l->path) == 0;
  if (!l->is_path)
    memset(&l->path, 0, sizeof(l->path));
  p->pos++;
  for (;;) {
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ';')
      return 0;
    p->pos++;
    skip_ws(p);
    if (l->nattrs == ATTRS_MAX)
      return fail(p, "too many attributes");
    if (l->nattrs == cap) {
      cap = cap ? 2 * cap : 4;
      l->attrs = xrealloc(l->attrs, cap * sizeof(*l->attrs));
    }
    memset(&l->attrs[l->nattrs], 0, sizeof(*l->attrs));
    /* Counted before parsing, so a half-parsed attribute is freed too. */
    l->nattrs++;
    if (parse_attr(p, &l->attrs[l->nattrs - 1]) < 0)
      return -EINVAL;
  }
}

static void link_free(struct lwm2m_link *l)
{
  for (size_t i = 0; i < l->nattrs; i++) {
    free(l->attrs[i].name);
    free(l->attrs[i].value);
  }
  free(l->attrs);
  free(l->uri);
}

void lwm2m_links_free(struct lwm2m_links *l)
{
  if (!l)
    return;
  for (size_t i = 0; i < l->len; i++)
    link_free(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->len = 0;
}

int lwm2m_links_parse(const char *buf, size_t len, struct lwm2m_links *out,
                      char *err, size_t errlen)
{
  struct link_parser p = {buf, len, 0, err, errlen};
  struct lwm2m_links l = {NULL, 0};
  size_t cap = 0;
  int rc = 0;

  out->v = NULL;
  out->len = 0;
  if (memchr(buf, '\0', len)) {
    p.pos = (size_t)((const char *)memchr(buf, '\0', len) - buf);
    return fail(&p, "NUL byte");
  }
  skip_ws(&p);
  while (p.pos < p.len) {
    if (l.len == LINKS_MAX) {
      rc = fail(&p, "too many links");
      break;
    }
    if (l.len == cap) {
      cap = cap ? 2 * cap : 16;
      l.v = xrealloc(l.v, cap * sizeof(*l.v));
    }
    memset(&l.v[l.len], 0, sizeof(*l.v));
    l.len++;
    rc = parse_link(&p, &l.v[l.len - 1]);
    if (rc < 0)
      break;
    skip_ws(&p);
    if (p.pos >= p.len)
      break;
    if (p.s[p.pos] != ',') {
      rc = fail(&p, "expected ',' or ';'");
      break;
    }
    p.pos++;
    skip_ws(&p);
    if (p.pos >= p.len) {
      rc = fail(&p, "trailing ','");
      break;
    }
  }
  if (rc < 0) {
    lwm2m_links_free(&l);
    return rc;
  }
  *out = l;
  return 0;
}

const char *lwm2m_link_attr(const struct lwm2m_link *l, const char *name,
                            bool *present)
{
  for (size_t i = 0; i < l->nattrs; i++) {
    if (strcmp(l->attrs[i].name, name) == 0) {
      if (present)
        *present = true;
      return l->attrs[i].value;
    }
  }
  if (present)
    *present = false;
  return NULL;
}

/* RFC 6690 writes rt and if values as quoted strings; so does Leshan. */
static bool needs_quotes(const char *name, const char *v)
{
  if (*v == '\0' || strcmp(name, "rt") == 0 || strcmp(name, "if") == 0)
    return true;
  for (; *v; v++)
    if (!ptoken_char(*v))
      return true;
  return false;
}

char *lwm2m_links_format(const struct lwm2m_links *l)
{
  struct lwm2m_buf b = {.data = NULL};
  int rc = 0;

  /* Each put fails only past LWM2M_PAYLOAD_MAX; rc keeps the first. */
  for (size_t i = 0; i < l->len; i++) {
    const struct lwm2m_link *k = &l->v[i];

    if (i > 0)
      rc |= lwm2m_buf_putc(&b, ',');
    rc |= lwm2m_buf_putc(&b, '<');
    rc |= lwm2m_buf_put(&b, k->uri, strlen(k->uri));
    rc |= lwm2m_buf_putc(&b, '>');
    for (size_t j = 0; j < k->nattrs; j++) {
      const char *v = k->attrs[j].value;

      rc |= lwm2m_buf_putc(&b, ';');
      rc |= lwm2m_buf_put(&b, k->attrs[j].name, strlen(k->attrs[j].name));
      if (!v)
        continue;
      rc |= lwm2m_buf_putc(&b, '=');
      if (!needs_quotes(k->attrs[j].name, v)) {
        rc |= lwm2m_buf_put(&b, v, strlen(v));
        continue;
      }
      rc |= lwm2m_buf_putc(&b, '"');
      for (; *v; v++) {
        if (*v == '"' || *v == '\\')
          rc |= lwm2m_buf_putc(&b, '\\');
        rc |= lwm2m_buf_putc(&b, (uint8_t)*v);
      }
      rc |= lwm2m_buf_putc(&b, '"');
    }
  }
  rc |= lwm2m_buf_putc(&b, '\0');
  if (rc != 0) {
    lwm2m_buf_free(&b);
    return NULL;
  }
  return (char *)b.data;
}

int lwm2m_exec_args_check(const char *s, size_t len, char *err, size_t errlen)
{
  size_t pos = 0;

  if (len == 0)
    return 0;
  for (;;) {
    if (pos >= len || s[pos] < '0' || s[pos] > '9') {
      lwm2m_errf(err, errlen, "exec args: expected a digit 0-9 at offset %zu",
                 pos);
      return -EINVAL;
    }
    pos++;
    if (pos < len && s[pos] == '=') {
      size_t open;

      pos++;
      if (pos >= len || s[pos] != '\'') {
        lwm2m_errf(err, errlen, "exec args: expected ' after = at offset %zu",
                   pos);
        return -EINVAL;
      }
      open = pos++;
      while (pos < len && s[pos] != '\'') {
        unsigned char c = (unsigned char)s[pos];

        /* Printable ASCII but space, '"' and '\\': no escapes exist. */
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
          lwm2m_errf(err, errlen,
                     "exec args: byte 0x%02x not allowed in a value at "
                     "offset %zu",
                     c, pos);
          return -EINVAL;
        }
        pos++;
      }
      if (pos >= len) {
        lwm2m_errf(err, errlen,
                   "exec args: value opened at offset %zu is not closed",
                   open);
        return -EINVAL;
      }
      pos++;
    }
    if (pos == len)
      return 0;
    if (s[pos] != ',') {
      lwm2m_errf(err, errlen,
                 "exec args: expected ',' or '=' at offset %zu (arguments "
                 "are single digits)",
                 pos);
      return -EINVAL;
    }
    pos++;
    if (pos == len) {
      lwm2m_errf(err, errlen, "exec args: trailing ',' at offset %zu",
                 pos - 1);
      return -EINVAL;
    }
  }
}
