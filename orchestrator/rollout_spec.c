/*
 * Rollout specifications: parsing and checking what an operator asked
 * for, normalising it (every default filled in, durations in seconds) so
 * that the stored spec says exactly what runs, and the pure functions
 * the engine decides with: version order, targets, cohort sizes and
 * maintenance windows. docs/rollouts.md describes the format.
 */
#include "orchestrator/rollout.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LOG_TAG "rollout"

#define ZONEINFO_DIR "/usr/share/zoneinfo/"

static const char *const day_names[7] = {"sun", "mon", "tue", "wed",
                                         "thu", "fri", "sat"};

const char *const rollout_gate_class_names[GATE_CLASS_COUNT] = {
    [GATE_DOWNLOAD] = "download", [GATE_INTEGRITY] = "integrity",
    [GATE_INSTALL] = "install",   [GATE_TIMEOUT] = "timeout",
    [GATE_ROLLBACK] = "rollback", [GATE_OTHER] = "other",
};

/* The job failure classes (jobs.c) and the gate class each counts as. */
static const struct {
  const char *name;
  enum gate_class gate;
  bool retryable;
} failure_classes[] = {
    {"connection_lost", GATE_DOWNLOAD, true},
    {"no_flash", GATE_DOWNLOAD, false},
    {"no_ram", GATE_DOWNLOAD, true},
    {"invalid_uri", GATE_DOWNLOAD, false},
    {"unsupported_scheme", GATE_DOWNLOAD, false},
    {"integrity", GATE_INTEGRITY, false},
    {"unsupported_package", GATE_INTEGRITY, false},
    {"install_failed", GATE_INSTALL, true},
    {"conflict", GATE_INSTALL, true},
    {"dependency", GATE_INSTALL, false},
    {"update_failed", GATE_INSTALL, true},
    {"cancelled_on_device", GATE_INSTALL, true},
    {"download_timeout", GATE_TIMEOUT, true},
    {"update_timeout", GATE_TIMEOUT, true},
    {"never_came_back", GATE_TIMEOUT, false},
    {"unverified", GATE_TIMEOUT, false},
    {"rollback", GATE_ROLLBACK, false},
    {"wrong_version", GATE_ROLLBACK, false},
    {"reboot_loop", GATE_ROLLBACK, false},
    {"stuck_updating", GATE_ROLLBACK, false},
};

/* Never retried whatever the spec says: the same package fails again. */
static bool never_retried(const char *cls)
{
  return strcmp(cls, "integrity") == 0 ||
         strcmp(cls, "unsupported_package") == 0;
}

enum gate_class rollout_gate_class(const char *failure_class)
{
  for (size_t i = 0; failure_class && i < ARRAY_SIZE(failure_classes); i++)
    if (strcmp(failure_classes[i].name, failure_class) == 0)
      return failure_classes[i].gate;
  return GATE_OTHER;
}

bool rollout_retries(const struct rollout_spec *sp, const char *failure_class)
{
  for (size_t i = 0; failure_class && i < sp->nretry_on; i++)
    if (strcmp(sp->retry_on[i], failure_class) == 0)
      return true;
  return false;
}

int64_t rollout_backoff_ms(const struct rollout_spec *sp, int64_t attempts)
{
  int64_t b = sp->backoff_s;

  for (int64_t i = 1; i < attempts && b < sp->backoff_max_s; i++)
    b *= 2;
  if (b > sp->backoff_max_s)
    b = sp->backoff_max_s;
  return b * 1000;
}

/* Version order. */

int rollout_version_cmp(const char *a, const char *b)
{
  while (*a || *b) {
    if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      char *ea, *eb;
      unsigned long long na = strtoull(a, &ea, 10);
      unsigned long long nb = strtoull(b, &eb, 10);

      if (na != nb)
        return na < nb ? -1 : 1;
      a = ea;
      b = eb;
      continue;
    }
    if (!*a || !*b) {
      /* "3.0" == "3.0.0": what is left must be zeros and separators. */
      const char *rest = *a ? a : b;

      for (; *rest; rest++)
        if (*rest != '0' && *rest != '.')
          return *a ? 1 : -1;
      return 0;
    }
    if (*a != *b) {
      /* A separator ranks below anything else: 3.0 < 3.0a. */
      bool sa = *a == '.' || *a == '-' || *a == '+' || *a == '_';
      bool sb = *b == '.' || *b == '-' || *b == '+' || *b == '_';

      if (sa != sb)
        return sa ? -1 : 1;
      return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    }
    a++;
    b++;
  }
  return 0;
}

static const char *const op_names[] = {"<", "<=", "=", "!=", ">=", ">"};

bool rollout_filter_match(const struct rollout_filter *f, const char *version)
{
  int c;

  if (!version)
    return false;
  c = rollout_version_cmp(version, f->version);
  switch (f->op) {
  case FILTER_LT:
    return c < 0;
  case FILTER_LE:
    return c <= 0;
  case FILTER_EQ:
    return c == 0;
  case FILTER_NE:
    return c != 0;
  case FILTER_GE:
    return c >= 0;
  case FILTER_GT:
    return c > 0;
  }
  return false;
}

/* Parsing. */

struct perr {
  char *buf;
  size_t len;
  bool set;
};

static int fail(struct perr *e, const char *fmt, ...) PRINTF_LIKE(2, 3);

static int fail(struct perr *e, const char *fmt, ...)
{
  va_list ap;

  if (!e->set) {
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
    e->set = true;
  }
  return -EINVAL;
}

/* Refuses members of obj not in allowed (NULL-terminated). */
static int only_keys(struct perr *e, const char *where, json_t *obj,
                     const char *const *allowed)
{
  const char *key;
  json_t *v;

  if (!json_is_object(obj))
    return fail(e, "%s: expected an object", where);
  json_object_foreach(obj, key, v)
  {
    size_t i;

    for (i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], key) == 0)
        break;
    if (!allowed[i] && strcmp(where, "rollout") == 0)
      return fail(e, "%s: unknown field", key);
    if (!allowed[i])
      return fail(e, "%s.%s: unknown field", where, key);
  }
  return 0;
}

/* A duration: whole seconds, or a string such as "90s", "10m", "2h". */
static int get_duration(struct perr *e, json_t *obj, const char *key,
                        const char *where, int64_t min, int64_t max,
                        int64_t *out)
{
  json_t *v = json_object_get(obj, key);

  if (!v || json_is_null(v))
    return 0;
  if (json_is_integer(v) && json_integer_value(v) >= min &&
      json_integer_value(v) <= max) {
    *out = json_integer_value(v);
    return 0;
  }
  if (json_is_string(v) &&
      parse_duration(json_string_value(v), min, max, out) == 0)
    return 0;
  return fail(e,
              "%s.%s: expected a duration from %llds to %llds (\"30s\", "
              "\"10m\", \"2h\" or seconds)",
              where, key, (long long)min, (long long)max);
}

static int get_int(struct perr *e, json_t *obj, const char *key,
                   const char *where, int64_t min, int64_t max, int64_t *out)
{
  json_t *v = json_object_get(obj, key);

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v) || json_integer_value(v) < min ||
      json_integer_value(v) > max)
    return fail(e, "%s.%s: expected an integer from %lld to %lld", where, key,
                (long long)min, (long long)max);
  *out = json_integer_value(v);
  return 0;
}

static int get_ratio(struct perr *e, json_t *obj, const char *key,
                     const char *where, double *out)
{
  json_t *v = json_object_get(obj, key);

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_number(v) || json_number_value(v) < 0 ||
      json_number_value(v) > 1)
    return fail(e, "%s.%s: expected a number from 0 to 1", where, key);
  *out = json_number_value(v);
  return 0;
}

static int get_bool(struct perr *e, json_t *obj, const char *key, bool *out)
{
  json_t *v = json_object_get(obj, key);

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_boolean(v))
    return fail(e, "%s: expected true or false", key);
  *out = json_is_true(v);
  return 0;
}

/* "2026-11-26T10:00:00Z" (seconds and Z required; fractions allowed, and
 * kept to the millisecond so that format_iso8601() output reads back). */
int rollout_parse_time(const char *s, int64_t *out_ms)
{
  struct tm tm = {0}, back;
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  int mday, mon, year;
  int64_t ms = 0, scale = 100;
  time_t t;

  if (!end)
    return -EINVAL;
  if (*end == '.') {
    if (!isdigit((unsigned char)end[1]))
      return -EINVAL;
    for (end++; isdigit((unsigned char)*end); end++, scale /= 10)
      ms += (*end - '0') * scale;
  }
  if (strcmp(end, "Z") != 0)
    return -EINVAL;
  /* timegm() normalises: February 30 would quietly be March 2. */
  mday = tm.tm_mday;
  mon = tm.tm_mon;
  year = tm.tm_year;
  t = timegm(&tm);
  if (!gmtime_r(&t, &back) || back.tm_mday != mday || back.tm_mon != mon ||
      back.tm_year != year)
    return -EINVAL;
  *out_ms = (int64_t)t * 1000 + ms;
  return 0;
}

static int get_time(struct perr *e, json_t *obj, const char *key,
                    const char *where, int64_t *out)
{
  json_t *v = json_object_get(obj, key);

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v) || rollout_parse_time(json_string_value(v), out) < 0)
    return fail(e, "%s.%s: expected a UTC time like 2026-11-26T02:00:00Z",
                where, key);
  return 0;
}

/* A time zone name of the system's zoneinfo, or "UTC". */
static bool tz_valid(const char *tz)
{
  char path[192];
  struct stat sb;

  if (strcmp(tz, "UTC") == 0)
    return true;
  if (!tz[0] || strlen(tz) > 64 || strstr(tz, "..") || tz[0] == '/')
    return false;
  for (const char *p = tz; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p))
      return false;
  snprintf(path, sizeof(path), ZONEINFO_DIR "%s", tz);
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* "HH:MM" -> minutes after midnight. */
static int parse_hhmm(const char *s, int *out)
{
  int h, m;
  char tail;

  if (sscanf(s, "%2d:%2d%c", &h, &m, &tail) != 2 || h < 0 || h > 23 || m < 0 ||
      m > 59 || strlen(s) != 5)
    return -EINVAL;
  *out = h * 60 + m;
  return 0;
}

static int parse_window(struct perr *e, json_t *w, size_t ix,
                        struct rollout_window *out, json_t *norm)
{
  static const char *const keys[] = {"days", "start", "duration", "time_zone",
                                     NULL};
  char where[48];
  json_t *days = json_object_get(w, "days");
  json_t *start = json_object_get(w, "start");
  json_t *tz = json_object_get(w, "time_zone");
  json_t *ndays = json_array();
  int64_t dur = 0;
  size_t i;
  json_t *d;

  snprintf(where, sizeof(where), "schedule.windows[%zu]", ix);
  json_object_set_new(norm, "days", ndays);
  if (only_keys(e, where, w, keys) < 0)
    return -EINVAL;
  if (!json_is_string(start) ||
      parse_hhmm(json_string_value(start), &out->start_min) < 0)
    return fail(e, "%s.start: expected \"HH:MM\"", where);
  if (!json_object_get(w, "duration"))
    return fail(e, "%s.duration: required", where);
  if (get_duration(e, w, "duration", where, 60, 7 * 86400, &dur) < 0)
    return -EINVAL;
  out->duration_min = (int)(dur / 60);
  snprintf(out->tz, sizeof(out->tz), "UTC");
  if (tz && (!json_is_string(tz) || !tz_valid(json_string_value(tz))))
    return fail(e,
                "%s.time_zone: expected \"UTC\" or a zone such as "
                "\"Europe/Berlin\" known to the system",
                where);
  if (tz)
    snprintf(out->tz, sizeof(out->tz), "%s", json_string_value(tz));
  out->days = 0;
  if (days && !json_is_array(days))
    return fail(e, "%s.days: expected an array of \"mon\"...\"sun\"", where);
  json_array_foreach(days, i, d)
  {
    size_t k;

    for (k = 0; k < 7; k++)
      if (json_is_string(d) && strcmp(json_string_value(d), day_names[k]) == 0)
        break;
    if (k == 7)
      return fail(e,
                  "%s.days[%zu]: expected one of mon, tue, wed, thu, fri, "
                  "sat, sun",
                  where, i);
    out->days |= 1u << k;
  }
  if (out->days == 0)
    out->days = 0x7f;
  for (size_t k = 1; k <= 7; k++)
    if (out->days & (1u << (k % 7)))
      json_array_append_new(ndays, json_string(day_names[k % 7]));
  json_object_set_new(norm, "start", json_string(json_string_value(start)));
  json_object_set_new(norm, "duration", json_integer(dur));
  json_object_set_new(norm, "time_zone", json_string(out->tz));
  return 0;
}

static int parse_filter(struct perr *e, const char *s, size_t ix,
                        struct rollout_filter *f)
{
  char comp[80], op[4], ver[80];
  int used = -1;
  size_t k;

  /* %n: anything after the version is refused, not quietly dropped. */
  if (sscanf(s, " %79[A-Za-z0-9._+~-] %3[<>=!] %79[A-Za-z0-9._+~-] %n", comp,
             op, ver, &used) != 3 ||
      used < 0 || s[used])
    return fail(e,
                "targets.filter[%zu]: expected \"COMPONENT OP VERSION\" "
                "such as \"application < 3.0\" (OP: < <= = != >= >)",
                ix);
  for (k = 0; k < ARRAY_SIZE(op_names); k++)
    if (strcmp(op, op_names[k]) == 0 || (k == FILTER_EQ && !strcmp(op, "==")))
      break;
  if (k == ARRAY_SIZE(op_names))
    return fail(e, "targets.filter[%zu]: unknown operator '%s'", ix, op);
  if (strlen(comp) > 64 || strlen(ver) > 64)
    return fail(e, "targets.filter[%zu]: names are at most 64 characters", ix);
  f->op = (enum filter_op)k;
  snprintf(f->component, sizeof(f->component), "%s", comp);
  snprintf(f->version, sizeof(f->version), "%s", ver);
  return 0;
}

static int string_array(struct perr *e, json_t *v, const char *where,
                        size_t max, json_t **out)
{
  size_t i;
  json_t *s;

  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v) || json_array_size(v) > max)
    return fail(e, "%s: expected an array of at most %zu strings", where, max);
  json_array_foreach(v, i, s)
  {
    if (!json_is_string(s) || json_string_length(s) == 0 ||
        json_string_length(s) > 255)
      return fail(e, "%s[%zu]: expected a non-empty string", where, i);
  }
  *out = json_incref(v);
  return 0;
}

static int parse_targets(struct perr *e, json_t *t, struct rollout_spec *sp,
                         json_t *norm)
{
  static const char *const keys[] = {"endpoints", "tags", "filter", NULL};
  json_t *f, *nf = json_array(), *x;
  size_t i;

  json_object_set_new(norm, "filter", nf);
  if (!t || json_is_null(t))
    return 0;
  if (only_keys(e, "targets", t, keys) < 0 ||
      string_array(e, json_object_get(t, "endpoints"), "targets.endpoints",
                   ROLLOUT_ENDPOINTS_MAX, &sp->endpoints) < 0 ||
      string_array(e, json_object_get(t, "tags"), "targets.tags", 64,
                   &sp->tags) < 0)
    return -EINVAL;
  if (sp->endpoints)
    json_object_set(norm, "endpoints", sp->endpoints);
  if (sp->tags)
    json_object_set(norm, "tags", sp->tags);
  f = json_object_get(t, "filter");
  if (json_is_string(f)) {
    x = json_array();
    json_array_append(x, f);
    f = x;
  } else {
    json_incref(f);
  }
  if (f && !json_is_array(f)) {
    json_decref(f);
    return fail(e, "targets.filter: expected a string or an array of them");
  }
  json_array_foreach(f, i, x)
  {
    if (sp->nfilters == ROLLOUT_FILTERS_MAX) {
      json_decref(f);
      return fail(e,
                  "targets.filter: at most %d conditions like "
                  "\"application < 3.0\"",
                  ROLLOUT_FILTERS_MAX);
    }
    /* parse_filter() has said what is wrong; this is for non-strings. */
    if (!json_is_string(x) || parse_filter(e, json_string_value(x), i,
                                           &sp->filters[sp->nfilters]) < 0) {
      json_decref(f);
      return fail(e,
                  "targets.filter[%zu]: expected a string such as "
                  "\"application < 3.0\"",
                  i);
    }
    json_array_append_new(
        nf, json_sprintf("%s %s %s", sp->filters[sp->nfilters].component,
                         op_names[sp->filters[sp->nfilters].op],
                         sp->filters[sp->nfilters].version));
    sp->nfilters++;
  }
  json_decref(f);
  return 0;
}

static int parse_stages(struct perr *e, json_t *st, struct rollout_spec *sp,
                        json_t *norm)
{
  json_t *v, *ns = json_array();
  size_t i;

  json_object_set_new(norm, "stages", ns);
  if (!st || json_is_null(st)) {
    sp->stages[0] = (struct rollout_stage){.percent = true, .value = 100};
    sp->nstages = 1;
    json_array_append_new(ns, json_string("100%"));
    return 0;
  }
  if (!json_is_array(st) || json_array_size(st) == 0 ||
      json_array_size(st) > ROLLOUT_STAGES_MAX)
    return fail(e,
                "stages: expected 1 to %d stages (\"10%%\" or a device "
                "count)",
                ROLLOUT_STAGES_MAX);
  json_array_foreach(st, i, v)
  {
    struct rollout_stage *s = &sp->stages[i];

    if (json_is_integer(v) && json_integer_value(v) >= 1 &&
        json_integer_value(v) <= 100000000) {
      s->percent = false;
      s->value = (double)json_integer_value(v);
      json_array_append_new(ns, json_integer(json_integer_value(v)));
    } else if (json_is_string(v)) {
      char *end;
      double p = strtod(json_string_value(v), &end);

      /* Written so that NaN ("nan%") fails too. */
      if (end == json_string_value(v) || strcmp(end, "%") != 0 ||
          !(p > 0 && p <= 100))
        return fail(e,
                    "stages[%zu]: expected a percentage such as \"10%%\" "
                    "(0 < p <= 100) or a device count",
                    i);
      s->percent = true;
      s->value = p;
      json_array_append_new(ns, json_sprintf("%g%%", p));
    } else {
      return fail(e,
                  "stages[%zu]: expected a percentage such as \"10%%\" or "
                  "a device count",
                  i);
    }
    if (i > 0 && s->percent == sp->stages[i - 1].percent &&
        s->value <= sp->stages[i - 1].value)
      return fail(e, "stages[%zu]: stages are cumulative and must grow", i);
  }
  sp->nstages = json_array_size(st);
  return 0;
}

static int parse_gates(struct perr *e, json_t *g, struct rollout_spec *sp,
                       json_t *norm)
{
  static const char *const keys[] = {
      "success_ratio", "soak",       "failure_count",   "failure_ratio",
      "min_sample",    "on_failure", "failure_classes", NULL};
  json_t *fc = g ? json_object_get(g, "failure_classes") : NULL;
  json_t *on = g ? json_object_get(g, "on_failure") : NULL;
  json_t *ncls = json_array(), *v;
  size_t i;

  sp->success_ratio = 1.0;
  sp->min_sample = 10;
  sp->fail_classes = (1u << GATE_CLASS_COUNT) - 1;
  if (g && !json_is_null(g) &&
      (only_keys(e, "gates", g, keys) < 0 ||
       get_ratio(e, g, "success_ratio", "gates", &sp->success_ratio) < 0 ||
       get_duration(e, g, "soak", "gates", 0, 30 * 86400, &sp->soak_s) < 0 ||
       get_int(e, g, "failure_count", "gates", 0, 100000000, &sp->fail_count) <
           0 ||
       get_ratio(e, g, "failure_ratio", "gates", &sp->fail_ratio) < 0 ||
       get_int(e, g, "min_sample", "gates", 1, 100000000, &sp->min_sample) <
           0)) {
    json_decref(ncls);
    return -EINVAL;
  }
  if (on &&
      !(json_is_string(on) && (strcmp(json_string_value(on), "pause") == 0 ||
                               strcmp(json_string_value(on), "abort") == 0))) {
    json_decref(ncls);
    return fail(e, "gates.on_failure: expected \"pause\" or \"abort\"");
  }
  sp->fail_abort = on && strcmp(json_string_value(on), "abort") == 0;
  if (fc && !json_is_null(fc)) {
    if (!json_is_array(fc)) {
      json_decref(ncls);
      return fail(e, "gates.failure_classes: expected an array");
    }
    sp->fail_classes = 0;
    json_array_foreach(fc, i, v)
    {
      size_t k;

      for (k = 0; k < GATE_CLASS_COUNT; k++)
        if (json_is_string(v) &&
            strcmp(json_string_value(v), rollout_gate_class_names[k]) == 0)
          break;
      if (k == GATE_CLASS_COUNT) {
        json_decref(ncls);
        return fail(e,
                    "gates.failure_classes[%zu]: expected one of "
                    "download, integrity, install, timeout, rollback, "
                    "other",
                    i);
      }
      sp->fail_classes |= 1u << k;
    }
  }
  for (size_t k = 0; k < GATE_CLASS_COUNT; k++)
    if (sp->fail_classes & (1u << k))
      json_array_append_new(ncls, json_string(rollout_gate_class_names[k]));
  json_object_set_new(
      norm, "gates",
      json_pack("{s:f, s:I, s:I, s:f, s:I, s:s, s:o}", "success_ratio",
                sp->success_ratio, "soak", (json_int_t)sp->soak_s,
                "failure_count", (json_int_t)sp->fail_count, "failure_ratio",
                sp->fail_ratio, "min_sample", (json_int_t)sp->min_sample,
                "on_failure", sp->fail_abort ? "abort" : "pause",
                "failure_classes", ncls));
  return 0;
}

static int parse_schedule(struct perr *e, json_t *s, struct rollout_spec *sp,
                          json_t *norm)
{
  static const char *const keys[] = {"start_at", "end_at", "windows", NULL};
  json_t *ns = json_object(), *nw = json_array();
  json_t *ws = s ? json_object_get(s, "windows") : NULL, *w;
  char buf[32];
  size_t i;

  json_object_set_new(norm, "schedule", ns);
  json_object_set_new(ns, "windows", nw);
  if (!s || json_is_null(s))
    return 0;
  if (only_keys(e, "schedule", s, keys) < 0 ||
      get_time(e, s, "start_at", "schedule", &sp->start_at) < 0 ||
      get_time(e, s, "end_at", "schedule", &sp->end_at) < 0)
    return -EINVAL;
  if (sp->start_at && sp->end_at && sp->end_at <= sp->start_at)
    return fail(e, "schedule.end_at: must come after start_at");
  if (sp->start_at) {
    format_iso8601(sp->start_at, buf, sizeof(buf));
    json_object_set_new(ns, "start_at", json_string(buf));
  }
  if (sp->end_at) {
    format_iso8601(sp->end_at, buf, sizeof(buf));
    json_object_set_new(ns, "end_at", json_string(buf));
  }
  if (ws && (!json_is_array(ws) || json_array_size(ws) > ROLLOUT_WINDOWS_MAX))
    return fail(e, "schedule.windows: expected an array of at most %d windows",
                ROLLOUT_WINDOWS_MAX);
  json_array_foreach(ws, i, w)
  {
    json_t *n = json_object();

    json_array_append_new(nw, n);
    if (parse_window(e, w, i, &sp->windows[i], n) < 0)
      return -EINVAL;
    sp->nwindows++;
  }
  return 0;
}

static int parse_retries(struct perr *e, json_t *r, struct rollout_spec *sp,
                         json_t *norm)
{
  static const char *const keys[] = {"max", "backoff", "backoff_max", "on",
                                     NULL};
  static const char *const defaults[] = {"connection_lost", "no_ram",
                                         "download_timeout"};
  json_t *on = r ? json_object_get(r, "on") : NULL, *v, *non = json_array();
  size_t i;

  sp->retry_max = 2;
  sp->backoff_s = 30;
  sp->backoff_max_s = 600;
  json_object_set_new(norm, "retries",
                      json_pack("{s:o}", "on", non)); /* filled below */
  if (r && !json_is_null(r) &&
      (only_keys(e, "retries", r, keys) < 0 ||
       get_int(e, r, "max", "retries", 0, 100, &sp->retry_max) < 0 ||
       get_duration(e, r, "backoff", "retries", 1, 86400, &sp->backoff_s) <
           0 ||
       get_duration(e, r, "backoff_max", "retries", 1, 7 * 86400,
                    &sp->backoff_max_s) < 0))
    return -EINVAL;
  if (sp->backoff_max_s < sp->backoff_s)
    sp->backoff_max_s = sp->backoff_s;
  if (on && !json_is_null(on)) {
    if (!json_is_array(on) || json_array_size(on) > ROLLOUT_RETRY_ON_MAX)
      return fail(e, "retries.on: expected an array of failure classes");
    json_array_foreach(on, i, v)
    {
      size_t k;

      for (k = 0; k < ARRAY_SIZE(failure_classes); k++)
        if (json_is_string(v) &&
            strcmp(json_string_value(v), failure_classes[k].name) == 0)
          break;
      if (k == ARRAY_SIZE(failure_classes))
        return fail(e, "retries.on[%zu]: unknown failure class", i);
      if (never_retried(failure_classes[k].name))
        return fail(e,
                    "retries.on[%zu]: %s failures are never retried: the "
                    "same package would fail the same way",
                    i, failure_classes[k].name);
      sp->retry_on[sp->nretry_on++] = failure_classes[k].name;
    }
  } else {
    for (i = 0; i < ARRAY_SIZE(defaults); i++)
      sp->retry_on[sp->nretry_on++] = defaults[i];
  }
  for (i = 0; i < sp->nretry_on; i++)
    json_array_append_new(non, json_string(sp->retry_on[i]));
  json_object_update_new(json_object_get(norm, "retries"),
                         json_pack("{s:I, s:I, s:I}", "max",
                                   (json_int_t)sp->retry_max, "backoff",
                                   (json_int_t)sp->backoff_s, "backoff_max",
                                   (json_int_t)sp->backoff_max_s));
  return 0;
}

static int parse_rest(struct perr *e, json_t *in, struct rollout_spec *sp,
                      json_t *norm)
{
  static const char *const pace_keys[] = {"max_concurrent",
                                          "max_starts_per_minute", NULL};
  static const char *const to_keys[] = {"download", "update", "reboot", NULL};
  static const char *const ver_keys[] = {"window", "max_reboots", NULL};
  json_t *pace = json_object_get(in, "pace");
  json_t *to = json_object_get(in, "timeouts");
  json_t *ver = json_object_get(in, "verification");

  sp->max_concurrent = 100;
  sp->limits.verify_window = 60;
  sp->limits.max_reboots = 1;
  if (pace && !json_is_null(pace) &&
      (only_keys(e, "pace", pace, pace_keys) < 0 ||
       get_int(e, pace, "max_concurrent", "pace", 1, 1000000,
               &sp->max_concurrent) < 0 ||
       get_int(e, pace, "max_starts_per_minute", "pace", 0, 10000000,
               &sp->max_per_minute) < 0))
    return -EINVAL;
  if (to && !json_is_null(to) &&
      (only_keys(e, "timeouts", to, to_keys) < 0 ||
       get_duration(e, to, "download", "timeouts", 1, 30 * 86400,
                    &sp->limits.download_timeout) < 0 ||
       get_duration(e, to, "update", "timeouts", 1, 30 * 86400,
                    &sp->limits.update_timeout) < 0 ||
       get_duration(e, to, "reboot", "timeouts", 1, 30 * 86400,
                    &sp->limits.reboot_timeout) < 0))
    return -EINVAL;
  if (ver && !json_is_null(ver) &&
      (only_keys(e, "verification", ver, ver_keys) < 0 ||
       get_duration(e, ver, "window", "verification", 0, 86400,
                    &sp->limits.verify_window) < 0 ||
       get_int(e, ver, "max_reboots", "verification", 0, 100,
               &sp->limits.max_reboots) < 0))
    return -EINVAL;
  json_object_set_new(
      norm, "pace",
      json_pack("{s:I, s:I}", "max_concurrent", (json_int_t)sp->max_concurrent,
                "max_starts_per_minute", (json_int_t)sp->max_per_minute));
  json_object_set_new(norm, "timeouts",
                      json_pack("{s:o, s:o, s:o}", "download",
                                sp->limits.download_timeout
                                    ? json_integer(sp->limits.download_timeout)
                                    : json_null(),
                                "update",
                                sp->limits.update_timeout
                                    ? json_integer(sp->limits.update_timeout)
                                    : json_null(),
                                "reboot",
                                sp->limits.reboot_timeout
                                    ? json_integer(sp->limits.reboot_timeout)
                                    : json_null()));
  json_object_set_new(
      norm, "verification",
      json_pack("{s:I, s:I}", "window", (json_int_t)sp->limits.verify_window,
                "max_reboots", (json_int_t)sp->limits.max_reboots));
  return 0;
}

int rollout_spec_parse(json_t *in, struct rollout_spec *sp, char *err,
                       size_t errlen)
{
  static const char *const keys[] = {
      "name",     "packages", "targets",      "stages", "canaries",
      "dynamic",  "force",    "gates",        "pace",   "schedule",
      "timeouts", "retries",  "verification", "seed",   NULL};
  struct perr e = {.buf = err, .len = errlen};
  json_t *name, *pk, *v, *seed;
  json_t *norm = json_object();
  size_t i;

  memset(sp, 0, sizeof(*sp));
  sp->norm = norm;
  if (only_keys(&e, "rollout", in, keys) < 0)
    goto bad;
  name = json_object_get(in, "name");
  if (name && !json_is_null(name)) {
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) > 200) {
      fail(&e, "name: expected a string of 1 to 200 characters");
      goto bad;
    }
    json_object_set(norm, "name", name);
  }
  pk = json_object_get(in, "packages");
  if (!json_is_array(pk) || json_array_size(pk) == 0 ||
      json_array_size(pk) > ROLLOUT_PACKAGES_MAX) {
    fail(&e, "packages: expected an array of 1 to %d package ids",
         ROLLOUT_PACKAGES_MAX);
    goto bad;
  }
  json_array_foreach(pk, i, v)
  {
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
      fail(&e, "packages[%zu]: expected a package id", i);
      goto bad;
    }
    for (size_t k = 0; k < i; k++)
      if (sp->packages[k] == json_integer_value(v)) {
        fail(&e, "packages[%zu]: package %lld is listed twice", i,
             (long long)json_integer_value(v));
        goto bad;
      }
    sp->packages[i] = json_integer_value(v);
  }
  sp->npackages = json_array_size(pk);
  json_object_set(norm, "packages", pk);
  json_object_set_new(norm, "targets", json_object());
  if (parse_targets(&e, json_object_get(in, "targets"), sp,
                    json_object_get(norm, "targets")) < 0 ||
      parse_stages(&e, json_object_get(in, "stages"), sp, norm) < 0 ||
      string_array(&e, json_object_get(in, "canaries"), "canaries",
                   ROLLOUT_ENDPOINTS_MAX, &sp->canaries) < 0 ||
      get_bool(&e, in, "dynamic", &sp->dynamic) < 0 ||
      get_bool(&e, in, "force", &sp->force) < 0 ||
      parse_gates(&e, json_object_get(in, "gates"), sp, norm) < 0 ||
      parse_schedule(&e, json_object_get(in, "schedule"), sp, norm) < 0 ||
      parse_retries(&e, json_object_get(in, "retries"), sp, norm) < 0 ||
      parse_rest(&e, in, sp, norm) < 0)
    goto bad;
  json_object_set_new(norm, "canaries",
                      sp->canaries ? json_incref(sp->canaries) : json_array());
  json_object_set_new(norm, "dynamic", json_boolean(sp->dynamic));
  json_object_set_new(norm, "force", json_boolean(sp->force));
  seed = json_object_get(in, "seed");
  if (seed && !json_is_null(seed)) {
    if (!json_is_integer(seed) || json_integer_value(seed) < 0) {
      fail(&e, "seed: expected a non-negative integer");
      goto bad;
    }
    sp->seed = json_integer_value(seed);
  } else {
    uint32_t r = 0;

    crypto_random(&r, sizeof(r));
    sp->seed = r;
  }
  json_object_set_new(norm, "seed", json_integer(sp->seed));
  return 0;
bad:
  rollout_spec_clear(sp);
  return -EINVAL;
}

void rollout_spec_clear(struct rollout_spec *sp)
{
  json_decref(sp->endpoints);
  json_decref(sp->tags);
  json_decref(sp->canaries);
  json_decref(sp->norm);
  memset(sp, 0, sizeof(*sp));
}

/* Cohorts. */

uint64_t rollout_rank(int64_t seed, const char *endpoint)
{
  char buf[320];
  uint8_t h[32];
  uint64_t r = 0;
  int n = snprintf(buf, sizeof(buf), "%lld:%s", (long long)seed, endpoint);

  crypto_sha256(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, h);
  for (int i = 0; i < 7; i++)
    r = r << 8 | h[i];
  return r; /* 56 bits: fits a signed SQLite integer */
}

void rollout_stage_sizes(const struct rollout_spec *sp, size_t n,
                         size_t canaries, size_t *sizes)
{
  size_t prev = 0;

  for (size_t i = 0; i < sp->nstages; i++) {
    const struct rollout_stage *s = &sp->stages[i];
    double want = s->percent ? (double)n * s->value / 100.0 : s->value;
    size_t sz = (size_t)want;

    /* Round up, but not for the rounding error of a decimal percentage:
     * 3000 * 1.1 / 100 is 33.000000000000004, and must give 33. A share
     * with at most 3 decimals is never closer than 1e-5 above a whole. */
    if ((double)sz < want - 1e-6)
      sz++;
    if (sz > n || i + 1 == sp->nstages)
      sz = n;
    if (i == 0 && sz < canaries)
      sz = canaries;
    if (sz < prev)
      sz = prev;
    sizes[i] = prev = sz;
  }
}

/* Maintenance windows. */

/* Broken-down local time of t (s) in zone tz. One thread: TZ is swapped
 * and put back. */
static void local_time(time_t t, const char *tz, struct tm *out)
{
  const char *old;
  char *saved;

  if (strcmp(tz, "UTC") == 0) {
    gmtime_r(&t, out);
    return;
  }
  old = getenv("TZ");
  saved = old ? xstrdup(old) : NULL;
  setenv("TZ", tz, 1);
  tzset();
  localtime_r(&t, out);
  if (saved)
    setenv("TZ", saved, 1);
  else
    unsetenv("TZ");
  tzset();
  free(saved);
}

bool rollout_window_open(const struct rollout_spec *sp, int64_t now_ms)
{
  if (sp->nwindows == 0)
    return true;
  for (size_t i = 0; i < sp->nwindows; i++) {
    const struct rollout_window *w = &sp->windows[i];
    struct tm tm;
    int minute;

    local_time((time_t)(now_ms / 1000), w->tz, &tm);
    minute = tm.tm_hour * 60 + tm.tm_min;
    /* An occurrence that began k days ago and is still open. */
    for (int k = 0; k <= 7; k++) {
      int day = ((tm.tm_wday - k) % 7 + 7) % 7;
      int since = k * 1440 + minute - w->start_min;

      if ((w->days & (1u << day)) && since >= 0 && since < w->duration_min)
        return true;
    }
  }
  return false;
}
