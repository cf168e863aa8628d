/*
 * promcheck: a strict checker of the Prometheus text exposition format
 * (version 0.0.4), for the tests of GET /metrics. Reads FILE (or stdin)
 * and exits 0 if every line is valid, else prints "promcheck: line N:
 * reason" and exits 1.
 *
 * Stricter than Prometheus itself where fotad should be: every family has
 * exactly one HELP and one TYPE line, both before its samples; a family's
 * lines are contiguous; no empty lines, no duplicate series; counters are
 * named *_total and never negative; histograms have increasing "le"
 * bounds, cumulative bucket counts, a +Inf bucket equal to _count, and a
 * _sum.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 512
#define MAX_SERIES 8192
#define MAX_LABELS 16
#define NAME_MAX_LEN 200

struct family {
  char name[NAME_MAX_LEN];
  char type[16];
  bool help, typed, samples, closed;
  /* Histogram state, per label set other than le. */
  bool hist_started;
  char hist_key[1024];
  double last_le;
  double last_bucket;
  double inf_bucket;
  bool have_inf, have_sum, have_count;
};

static struct family fams[MAX_FAMILIES];
static size_t nfams;
static char *series[MAX_SERIES];
static size_t nseries;
static struct family *current;
static int lineno;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, "promcheck: line %d: ", lineno);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return -1;
}

static bool name_char(int c, bool first)
{
  return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* Reads a metric name at *p; returns its length or 0. */
static size_t metric_name(const char *p)
{
  size_t n = 0;

  while (p[n] && name_char((unsigned char)p[n], n == 0))
    n++;
  return n;
}

static struct family *find(const char *name)
{
  for (size_t i = 0; i < nfams; i++)
    if (strcmp(fams[i].name, name) == 0)
      return &fams[i];
  return NULL;
}

/* The family a line talks about becomes current; returning to an earlier
 * family is an error. */
static int enter(struct family *f)
{
  if (current == f)
    return 0;
  if (f->closed)
    return fail("family %s continues after other families", f->name);
  if (current)
    current->closed = true;
  current = f;
  return 0;
}

static struct family *family_new(const char *name)
{
  struct family *f;

  if (nfams == MAX_FAMILIES)
    return NULL;
  f = &fams[nfams++];
  memset(f, 0, sizeof(*f));
  snprintf(f->name, sizeof(f->name), "%s", name);
  return f;
}

static int comment(const char *line)
{
  const char *p = line + 1;
  char kw[8], name[NAME_MAX_LEN];
  struct family *f;
  size_t n;

  if (*p != ' ')
    return 0; /* "#foo": a plain comment */
  p++;
  if (strncmp(p, "HELP ", 5) != 0 && strncmp(p, "TYPE ", 5) != 0)
    return 0;
  memcpy(kw, p, 4);
  kw[4] = '\0';
  p += 5;
  n = metric_name(p);
  if (n == 0 || n >= sizeof(name))
    return fail("%s: bad metric name", kw);
  memcpy(name, p, n);
  name[n] = '\0';
  p += n;
  f = find(name);
  if (!f) {
    f = family_new(name);
    if (!f)
      return fail("too many families");
  }
  if (enter(f) < 0)
    return -1;
  if (f->samples)
    return fail("%s %s after its samples", kw, name);
  if (strcmp(kw, "HELP") == 0) {
    if (f->help)
      return fail("second HELP for %s", name);
    f->help = true;
    if (*p != ' ' || p[1] == '\0')
      return fail("HELP %s: no text", name);
    /* Only \\ and \n escapes are defined in HELP text. */
    for (p++; *p; p++) {
      if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
        return fail("HELP %s: bad escape \\%c", name, p[1]);
      if (*p == '\\')
        p++;
    }
    return 0;
  }
  if (f->typed)
    return fail("second TYPE for %s", name);
  if (*p != ' ')
    return fail("TYPE %s: no type", name);
  p++;
  if (strcmp(p, "counter") != 0 && strcmp(p, "gauge") != 0 &&
      strcmp(p, "histogram") != 0 && strcmp(p, "summary") != 0 &&
      strcmp(p, "untyped") != 0)
    return fail("TYPE %s: unknown type '%s'", name, p);
  snprintf(f->type, sizeof(f->type), "%s", p);
  f->typed = true;
  if (strcmp(p, "counter") == 0 &&
      (n < 6 || strcmp(name + n - 6, "_total") != 0))
    return fail("counter %s is not named *_total", name);
  return 0;
}

/* A float as Go's ParseFloat takes it, and Prometheus writes it. */
static int parse_value(const char *s, double *out)
{
  char *end;

  if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
    *out = INFINITY;
    return 0;
  }
  if (strcmp(s, "-Inf") == 0) {
    *out = -INFINITY;
    return 0;
  }
  if (strcmp(s, "NaN") == 0) {
    *out = NAN;
    return 0;
  }
  if (!*s || strspn(s, "0123456789.eE+-") != strlen(s))
    return -1;
  errno = 0;
  *out = strtod(s, &end);
  if (*end || errno == ERANGE)
    return -1;
  return 0;
}

struct label {
  char name[64];
  char value[512];
};

/* Parses {a="x",b="y"} at *pp into labels; advances *pp. */
static int parse_labels(const char **pp, struct label *l, size_t *nl)
{
  const char *p = *pp + 1;

  *nl = 0;
  while (*p != '}') {
    size_t n = 0, v = 0;

    if (*nl == MAX_LABELS)
      return fail("too many labels");
    while (p[n] && (isalpha((unsigned char)p[n]) || p[n] == '_' ||
                    (n > 0 && isdigit((unsigned char)p[n]))))
      n++;
    if (n == 0 || n >= sizeof(l[0].name))
      return fail("bad label name at '%.10s'", p);
    if (n >= 2 && p[0] == '_' && p[1] == '_')
      return fail("label names starting with __ are reserved");
    memcpy(l[*nl].name, p, n);
    l[*nl].name[n] = '\0';
    for (size_t i = 0; i < *nl; i++)
      if (strcmp(l[i].name, l[*nl].name) == 0)
        return fail("label %s twice", l[i].name);
    p += n;
    if (p[0] != '=' || p[1] != '"')
      return fail("label %s: expected =\"", l[*nl].name);
    p += 2;
    while (*p != '"') {
      if (!*p)
        return fail("unterminated label value");
      if (*p == '\\') {
        if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
          return fail("label %s: bad escape", l[*nl].name);
        p++;
      }
      if (v + 1 >= sizeof(l[0].value))
        return fail("label value too long");
      l[*nl].value[v++] = *p++;
    }
    l[*nl].value[v] = '\0';
    p++;
    (*nl)++;
    if (*p == ',')
      p++;
    else if (*p != '}')
      return fail("expected , or } after a label");
  }
  *pp = p + 1;
  return 0;
}

static int add_series(const char *name, const struct label *l, size_t nl)
{
  char key[2048];
  size_t off = (size_t)snprintf(key, sizeof(key), "%s", name);

  for (size_t i = 0; i < nl && off < sizeof(key); i++)
    off += (size_t)snprintf(key + off, sizeof(key) - off, "|%s=%s", l[i].name,
                            l[i].value);
  for (size_t i = 0; i < nseries; i++)
    if (strcmp(series[i], key) == 0)
      return fail("duplicate series %s", key);
  if (nseries == MAX_SERIES)
    return fail("too many series");
  series[nseries] = strdup(key);
  if (!series[nseries])
    return fail("out of memory");
  nseries++;
  return 0;
}

/* The histogram key: the labels but le. */
static void hist_key(const struct label *l, size_t nl, char *key, size_t len)
{
  size_t off = 0;

  key[0] = '\0';
  for (size_t i = 0; i < nl && off < len; i++)
    if (strcmp(l[i].name, "le") != 0)
      off += (size_t)snprintf(key + off, len - off, "|%s=%s", l[i].name,
                              l[i].value);
}

static int hist_end(struct family *f)
{
  if (!f->hist_started)
    return 0;
  if (!f->have_inf || !f->have_sum || !f->have_count)
    return fail("histogram %s%s lacks its +Inf bucket, _sum or _count",
                f->name, f->hist_key);
  return 0;
}

static int histogram_sample(struct family *f, const char *suffix,
                            const struct label *l, size_t nl, double v)
{
  char key[1024];

  hist_key(l, nl, key, sizeof(key));
  if (!f->hist_started || strcmp(key, f->hist_key) != 0) {
    if (hist_end(f) < 0)
      return -1;
    f->hist_started = true;
    snprintf(f->hist_key, sizeof(f->hist_key), "%s", key);
    f->last_le = -INFINITY;
    f->last_bucket = 0;
    f->have_inf = f->have_sum = f->have_count = false;
  }
  if (strcmp(suffix, "_bucket") == 0) {
    const char *le = NULL;
    double bound;

    for (size_t i = 0; i < nl; i++)
      if (strcmp(l[i].name, "le") == 0)
        le = l[i].value;
    if (!le || parse_value(le, &bound) < 0)
      return fail("%s_bucket without a numeric le label", f->name);
    if (bound <= f->last_le)
      return fail("%s_bucket: le %s is not increasing", f->name, le);
    if (v < f->last_bucket)
      return fail("%s_bucket: counts are not cumulative", f->name);
    f->last_le = bound;
    f->last_bucket = v;
    if (isinf(bound)) {
      f->have_inf = true;
      f->inf_bucket = v;
    }
    return 0;
  }
  if (strcmp(suffix, "_sum") == 0) {
    f->have_sum = true;
    return 0;
  }
  if (!f->have_inf)
    return fail("%s_count before the +Inf bucket", f->name);
  if (v != f->inf_bucket)
    return fail("%s_count differs from the +Inf bucket", f->name);
  f->have_count = true;
  return 0;
}

static int sample(const char *line)
{
  char name[NAME_MAX_LEN], base[NAME_MAX_LEN], value[64];
  struct label l[MAX_LABELS];
  const char *p = line, *suffix = "";
  struct family *f;
  size_t n = metric_name(p), nl = 0;
  double v;

  if (n == 0 || n >= sizeof(name))
    return fail("bad metric name");
  memcpy(name, p, n);
  name[n] = '\0';
  p += n;
  if (*p == '{' && parse_labels(&p, l, &nl) < 0)
    return -1;
  if (*p != ' ')
    return fail("%s: expected a space before the value", name);
  while (*p == ' ')
    p++;
  n = strcspn(p, " ");
  if (n == 0 || n >= sizeof(value))
    return fail("%s: missing value", name);
  memcpy(value, p, n);
  value[n] = '\0';
  p += n;
  if (parse_value(value, &v) < 0)
    return fail("%s: '%s' is not a float", name, value);
  if (*p) {
    int64_t ts;
    char *end;

    p++;
    errno = 0;
    ts = strtoll(p, &end, 10);
    if (*p == '\0' || *end || errno || ts == 0)
      return fail("%s: bad timestamp '%s'", name, p);
  }

  /* Which family: histogram and summary samples carry suffixes. */
  snprintf(base, sizeof(base), "%s", name);
  f = find(name);
  if (!f || !f->typed) {
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};

    for (size_t i = 0; i < 3; i++) {
      size_t bl = strlen(name), sl = strlen(sfx[i]);

      if (bl > sl && strcmp(name + bl - sl, sfx[i]) == 0) {
        memcpy(base, name, bl - sl);
        base[bl - sl] = '\0';
        f = find(base);
        if (f && (strcmp(f->type, "histogram") == 0 ||
                  (strcmp(f->type, "summary") == 0 && i > 0))) {
          suffix = sfx[i];
          break;
        }
        f = NULL;
      }
    }
  }
  if (!f)
    return fail("sample %s has no TYPE and HELP before it", name);
  if (enter(f) < 0)
    return -1;
  if (!f->help || !f->typed)
    return fail("sample %s: its family lacks %s", name,
                f->help ? "TYPE" : "HELP");
  f->samples = true;
  if (add_series(name, l, nl) < 0)
    return -1;
  if (strcmp(f->type, "counter") == 0 && !(v >= 0))
    return fail("counter %s is negative or NaN", name);
  if (strcmp(f->type, "histogram") == 0) {
    if (!suffix[0])
      return fail("histogram sample %s without _bucket/_sum/_count", name);
    return histogram_sample(f, suffix, l, nl, v);
  }
  return 0;
}

int main(int argc, char **argv)
{
  FILE *in = argc > 1 ? fopen(argv[1], "r") : stdin;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long samples = 0;
  int rc = 0;

  if (!in) {
    perror(argv[1]);
    return 2;
  }
  while ((len = getline(&line, &cap, in)) > 0) {
    lineno++;
    if (line[len - 1] != '\n') {
      rc = fail("no line feed at the end of the input");
      break;
    }
    line[--len] = '\0';
    if (len == 0) {
      rc = fail("empty line");
      break;
    }
    if (strchr(line, '\r') || strchr(line, '\t')) {
      rc = fail("carriage return or tab");
      break;
    }
    if (line[len - 1] == ' ') {
      rc = fail("trailing space");
      break;
    }
    if (line[0] == '#') {
      rc = comment(line);
    } else {
      rc = sample(line);
      samples++;
    }
    if (rc < 0)
      break;
  }
  for (size_t i = 0; rc == 0 && i < nfams; i++) {
    if (!fams[i].help || !fams[i].typed)
      rc = fail("family %s lacks %s", fams[i].name,
                fams[i].help ? "TYPE" : "HELP");
    else if (strcmp(fams[i].type, "histogram") == 0)
      rc = hist_end(&fams[i]);
  }
  if (rc == 0 && lineno == 0)
    rc = fail("empty input");
  free(line);
  for (size_t i = 0; i < nseries; i++)
    free(series[i]);
  if (in != stdin)
    fclose(in);
  if (rc < 0)
    return 1;
  printf("promcheck: %zu families, %ld samples: valid\n", nfams, samples);
  return 0;
}
