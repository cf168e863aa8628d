#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "config"

/* Longest accepted line; a longer one is an error, never truncated. */
#define CONF_LINE_MAX 4096

/*
 * Error messages show at most this many bytes of a key. Every real key is
 * shorter; the bound keeps each message within its buffer, which gcc -O2
 * checks with -Wformat-truncation (an error under --enable-werror).
 */
#define KEY_SHOWN 64

static void *field(void *dst, const struct conf_desc *d)
{
  return (char *)dst + d->offset;
}

static const void *cfield(const void *dst, const struct conf_desc *d)
{
  return (const char *)dst + d->offset;
}

static const struct conf_desc *find(const struct conf_desc *table, size_t n,
                                    const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(table[i].name, key) == 0)
      return &table[i];
  return NULL;
}

static const char *range_text(const struct conf_desc *d, char *buf, size_t len)
{
  if (d->max > d->min)
    snprintf(buf, len, " from %lld to %lld", (long long)d->min,
             (long long)d->max);
  else
    snprintf(buf, len, " of at least %lld", (long long)d->min);
  return buf;
}

/* Converts and stores one value; fills err (without position) on failure. */
static int set_value(const struct conf_desc *d, void *dst, const char *value,
                     char *err, size_t errlen)
{
  char range[64];
  int64_t v = 0;
  bool b;
  int rc = 0;

  switch (d->type) {
  case CONF_STRING: {
    char **sp = field(dst, d);

    free(*sp);
    *sp = xstrdup(value);
    return 0;
  }
  case CONF_INT:
    rc = parse_int64(value, d->min, d->max, &v);
    if (rc < 0)
      snprintf(err, errlen, "%s: '%s' is not a whole number%s", d->name, value,
               range_text(d, range, sizeof(range)));
    break;
  case CONF_DURATION:
    rc = parse_duration(value, d->min, d->max, &v);
    if (rc < 0)
      snprintf(err, errlen,
               "%s: '%s' is not a duration (a number with an optional "
               "unit s, m, h or d)%s seconds",
               d->name, value, range_text(d, range, sizeof(range)));
    break;
  case CONF_SIZE:
    rc = parse_size(value, d->min, d->max, &v);
    if (rc < 0)
      snprintf(err, errlen,
               "%s: '%s' is not a size (a number with an optional unit k, "
               "M or G)%s bytes",
               d->name, value, range_text(d, range, sizeof(range)));
    break;
  case CONF_BOOL:
    rc = parse_bool(value, &b);
    if (rc < 0) {
      snprintf(err, errlen, "%s: '%s' is not yes or no", d->name, value);
      return rc;
    }
    *(bool *)field(dst, d) = b;
    return 0;
  case CONF_ENUM:
    for (int i = 0; d->names[i]; i++) {
      if (strcmp(value, d->names[i]) == 0) {
        *(int *)field(dst, d) = i;
        return 0;
      }
    }
    {
      size_t off = (size_t)snprintf(err, errlen, "%s: '%s' is not one of",
                                    d->name, value);

      for (int i = 0; d->names[i] && off < errlen; i++)
        off += (size_t)snprintf(err + off, errlen - off, "%s %s", i ? "," : "",
                                d->names[i]);
    }
    return -EINVAL;
  }
  if (rc < 0)
    return rc;
  *(int64_t *)field(dst, d) = v;
  return 0;
}

void conf_defaults(const struct conf_desc *table, size_t n, void *dst)
{
  char err[256];

  for (size_t i = 0; i < n; i++) {
    const char *def = table[i].def;
    char unquoted[256];
    size_t len = strlen(def);

    /* Defaults are written as in the file: "" is the empty string. */
    if (len >= 2 && def[0] == '"' && def[len - 1] == '"' &&
        len - 2 < sizeof(unquoted)) {
      memcpy(unquoted, def + 1, len - 2);
      unquoted[len - 2] = '\0';
      def = unquoted;
    }
    /* A bad default is a programming error the unit tests catch. */
    if (set_value(&table[i], dst, def, err, sizeof(err)) < 0) {
      log_err("bad built-in default: %s", err);
      abort();
    }
  }
}

int conf_set(const struct conf_desc *table, size_t n, void *dst,
             const char *key, const char *value, char *err, size_t errlen)
{
  const struct conf_desc *d = find(table, n, key);

  if (!d) {
    snprintf(err, errlen, "unknown key '%s'", key);
    return -EINVAL;
  }
  return set_value(d, dst, value, err, errlen);
}

static bool is_blank(char c)
{
  return c == ' ' || c == '\t';
}

/*
 * Splits a line in place into key and value. The value is the rest of the
 * line after the blanks following the key, without trailing blanks; it may
 * be wrapped in double quotes to keep leading or trailing blanks or a '#'.
 * A '#' after a blank starts a comment.
 */
static int split_line(char *line, char **key, char **value, char *err,
                      size_t errlen)
{
  char *p = line;
  char *end;

  while (is_blank(*p))
    p++;
  if (*p == '\0' || *p == '#') {
    *key = NULL;
    return 0;
  }
  *key = p;
  while (*p && !is_blank(*p))
    p++;
  if (*p == '\0') {
    snprintf(err, errlen, "%.*s: missing value", KEY_SHOWN, *key);
    return -EINVAL;
  }
  *p++ = '\0';
  while (is_blank(*p))
    p++;
  if (*p == '"') {
    char *close = strchr(p + 1, '"');

    if (!close) {
      snprintf(err, errlen, "%.*s: unterminated quoted value", KEY_SHOWN,
               *key);
      return -EINVAL;
    }
    *close = '\0';
    *value = p + 1;
    p = close + 1;
    while (is_blank(*p))
      p++;
    if (*p != '\0' && *p != '#') {
      snprintf(err, errlen, "%.*s: text after the quoted value", KEY_SHOWN,
               *key);
      return -EINVAL;
    }
    return 0;
  }
  *value = p;
  for (char *c = p; *c; c++) {
    if (*c == '#' && is_blank(c[-1])) {
      *c = '\0';
      break;
    }
  }
  end = p + strlen(p);
  while (end > p && is_blank(end[-1]))
    *--end = '\0';
  if (*p == '\0' || *p == '#') {
    snprintf(err, errlen, "%.*s: missing value", KEY_SHOWN, *key);
    return -EINVAL;
  }
  return 0;
}

int conf_load_buf(const struct conf_desc *table, size_t n, void *dst,
                  const char *name, const char *text, char *err, size_t errlen)
{
  bool *seen = xcalloc(n, sizeof(*seen));
  char reason[512];
  char line[CONF_LINE_MAX + 1];
  const char *p = text;
  int lineno = 0;
  int rc = 0;

  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    const struct conf_desc *d;
    char *key, *value;

    lineno++;
    if (len > CONF_LINE_MAX) {
      snprintf(reason, sizeof(reason), "line longer than %d bytes",
               CONF_LINE_MAX);
      rc = -EINVAL;
      goto out;
    }
    memcpy(line, p, len);
    line[len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
      line[len - 1] = '\0';
    p += len + (nl ? 1 : 0);

    rc = split_line(line, &key, &value, reason, sizeof(reason));
    if (rc < 0)
      goto out;
    if (!key)
      continue;
    d = find(table, n, key);
    if (!d) {
      snprintf(reason, sizeof(reason), "unknown key '%.*s'", KEY_SHOWN, key);
      rc = -EINVAL;
      goto out;
    }
    if (seen[d - table]) {
      snprintf(reason, sizeof(reason), "%.*s: set twice", KEY_SHOWN, key);
      rc = -EINVAL;
      goto out;
    }
    seen[d - table] = true;
    rc = set_value(d, dst, value, reason, sizeof(reason));
    if (rc < 0)
      goto out;
  }
out:
  if (rc < 0)
    snprintf(err, errlen, "%s:%d: %s", name, lineno, reason);
  free(seen);
  return rc;
}

int conf_load_file(const struct conf_desc *table, size_t n, void *dst,
                   const char *path, char *err, size_t errlen)
{
  /* A config file is small; a huge one is a mistake, not a config. */
  const size_t max = 1024 * 1024;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = NULL;
  int rc = 0;

  f = fopen(path, "re");
  if (!f) {
    rc = -errno;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    goto out;
  }
  buf = xmalloc(max + 1);
  len = fread(buf, 1, max + 1, f);
  if (ferror(f)) {
    rc = -EIO;
    snprintf(err, errlen, "%s: read error", path);
    goto out;
  }
  if (len > max) {
    rc = -EFBIG;
    snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
    goto out;
  }
  if (memchr(buf, '\0', len)) {
    rc = -EINVAL;
    snprintf(err, errlen, "%s: contains a NUL byte (not a text file)", path);
    goto out;
  }
  buf[len] = '\0';
  rc = conf_load_buf(table, n, dst, path, buf, err, errlen);
out:
  if (f)
    fclose(f);
  free(buf);
  return rc;
}

void conf_free(const struct conf_desc *table, size_t n, void *dst)
{
  for (size_t i = 0; i < n; i++) {
    if (table[i].type == CONF_STRING) {
      char **sp = field(dst, &table[i]);

      free(*sp);
      *sp = NULL;
    }
  }
}

static bool same(const struct conf_desc *d, const void *a, const void *b)
{
  switch (d->type) {
  case CONF_STRING: {
    const char *sa = *(char *const *)cfield(a, d);
    const char *sb = *(char *const *)cfield(b, d);

    return sa && sb ? strcmp(sa, sb) == 0 : sa == sb;
  }
  case CONF_BOOL:
    return *(const bool *)cfield(a, d) == *(const bool *)cfield(b, d);
  case CONF_ENUM:
    return *(const int *)cfield(a, d) == *(const int *)cfield(b, d);
  case CONF_INT:
  case CONF_DURATION:
  case CONF_SIZE:
    break;
  }
  return *(const int64_t *)cfield(a, d) == *(const int64_t *)cfield(b, d);
}

void conf_apply_reloadable(const struct conf_desc *table, size_t n, void *dst,
                           const void *src)
{
  for (size_t i = 0; i < n; i++) {
    const struct conf_desc *d = &table[i];

    if (!d->reloadable || same(d, dst, src))
      continue;
    log_info("reload: %s changed", d->name);
    switch (d->type) {
    case CONF_STRING: {
      char **sp = field(dst, d);

      free(*sp);
      *sp = xstrdup(*(char *const *)cfield(src, d));
      break;
    }
    case CONF_BOOL:
      *(bool *)field(dst, d) = *(const bool *)cfield(src, d);
      break;
    case CONF_ENUM:
      *(int *)field(dst, d) = *(const int *)cfield(src, d);
      break;
    case CONF_INT:
    case CONF_DURATION:
    case CONF_SIZE:
      *(int64_t *)field(dst, d) = *(const int64_t *)cfield(src, d);
      break;
    }
  }
}

bool conf_static_changed(const struct conf_desc *table, size_t n,
                         const void *a, const void *b, const char **key)
{
  for (size_t i = 0; i < n; i++) {
    if (!table[i].reloadable && !same(&table[i], a, b)) {
      *key = table[i].name;
      return true;
    }
  }
  return false;
}
