#include "tests/sim/sim.h"

#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool all_digits(const char *s, size_t n)
{
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      return false;
  return true;
}

/* Compares two runs of digits as numbers of any length. */
static int numcmp(const char *a, size_t an, const char *b, size_t bn)
{
  int c;

  while (an > 1 && *a == '0') {
    a++;
    an--;
  }
  while (bn > 1 && *b == '0') {
    b++;
    bn--;
  }
  if (an != bn)
    return an < bn ? -1 : 1;
  c = memcmp(a, b, an);
  return c < 0 ? -1 : c > 0;
}

int sim_version_cmp(const char *a, const char *b)
{
  while (*a || *b) {
    size_t an = strcspn(a, ".");
    size_t bn = strcspn(b, ".");
    int c;

    if (an == 0 && !*a)
      c = all_digits(b, bn) ? numcmp("0", 1, b, bn) : -1;
    else if (bn == 0 && !*b)
      c = all_digits(a, an) ? numcmp(a, an, "0", 1) : 1;
    else if (all_digits(a, an) && all_digits(b, bn))
      c = numcmp(a, an, b, bn);
    else {
      size_t n = an < bn ? an : bn;

      c = memcmp(a, b, n);
      if (c == 0)
        c = an < bn ? -1 : an > bn;
      else
        c = c < 0 ? -1 : 1;
    }
    if (c != 0)
      return c;
    a += an;
    b += bn;
    if (*a == '.')
      a++;
    if (*b == '.')
      b++;
  }
  return 0;
}

/*
 * One integer conversion: '%', optional '0', optional width of one or two
 * digits, then d, u, x or X. Returns its length or -EINVAL.
 */
static int conversion(const char *p, bool *zero, int *width, char *conv)
{
  const char *q = p + 1;

  *zero = false;
  *width = 0;
  if (*q == '0') {
    *zero = true;
    q++;
  }
  for (int i = 0; i < 2 && isdigit((unsigned char)*q); i++, q++)
    *width = *width * 10 + (*q - '0');
  if (*q != 'd' && *q != 'u' && *q != 'x' && *q != 'X')
    return -EINVAL;
  *conv = *q;
  return (int)(q - p + 1);
}

int sim_pattern_check(const char *pattern, bool optional, char *err,
                      size_t errlen)
{
  int found = 0;

  for (const char *p = pattern; *p; p++) {
    bool zero;
    int width, n;
    char conv;

    if (*p != '%')
      continue;
    if (p[1] == '%') {
      p++;
      continue;
    }
    n = conversion(p, &zero, &width, &conv);
    if (n < 0) {
      snprintf(err, errlen,
               "'%s': only %%d, %%u, %%x, %%X with an optional 0 and "
               "width are allowed",
               pattern);
      return -EINVAL;
    }
    found++;
    p += n - 1;
  }
  if (found > 1 || (found == 0 && !optional)) {
    snprintf(err, errlen, "'%s': needs exactly one %%d-like conversion",
             pattern);
    return -EINVAL;
  }
  return 0;
}

int sim_pattern_format(const char *pattern, long n, char *buf, size_t len)
{
  size_t o = 0;
  int rc = 0;

  if (len == 0)
    return -ENOSPC;
  for (const char *p = pattern; *p; p++) {
    char digits[32];
    bool zero;
    int width, dn, k;
    char conv;

    if (*p != '%' || p[1] == '%') {
      if (o + 1 >= len) {
        rc = -ENOSPC;
        break;
      }
      buf[o++] = *p;
      if (*p == '%')
        p++;
      continue;
    }
    k = conversion(p, &zero, &width, &conv);
    if (k < 0) {
      rc = -EINVAL;
      break;
    }
    p += k - 1;
    if (conv == 'x')
      dn = snprintf(digits, sizeof(digits), "%lx", (unsigned long)n);
    else if (conv == 'X')
      dn = snprintf(digits, sizeof(digits), "%lX", (unsigned long)n);
    else if (conv == 'u')
      dn = snprintf(digits, sizeof(digits), "%lu", (unsigned long)n);
    else
      dn = snprintf(digits, sizeof(digits), "%ld", n);
    for (int i = dn; i < width && o + 1 < len; i++)
      buf[o++] = zero ? '0' : ' ';
    if (o + (size_t)dn >= len) {
      rc = -ENOSPC;
      break;
    }
    memcpy(buf + o, digits, (size_t)dn);
    o += (size_t)dn;
  }
  /* Always a string, even a cut one, so no caller reads past it. */
  buf[o] = '\0';
  return rc;
}

static int hexdigit(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int sim_hex_decode(const char *hex, uint8_t *out, size_t outlen)
{
  size_t n = strlen(hex);

  if (n % 2 != 0 || n / 2 > outlen)
    return -EINVAL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = hexdigit(hex[2 * i]), lo = hexdigit(hex[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return -EINVAL;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return (int)(n / 2);
}

static const struct {
  const char *name;
  bool failure;
  const char *help;
} faults[FAULT_COUNT] = {
    [FAULT_LOST_DOWNLOAD] = {"lost-download", true,
                             "connection lost half-way through the download "
                             "(Result 4)"},
    [FAULT_FLAKY_DOWNLOAD] = {"flaky-download", true,
                              "the first download loses the connection "
                              "half-way (Result 4); later ones succeed"},
    [FAULT_INTEGRITY] = {"integrity", true,
                         "the package fails its integrity check (Result 5)"},
    [FAULT_UNSUPPORTED] = {"unsupported", true,
                           "the package type is refused (Result 6)"},
    [FAULT_INSTALL_FAIL] = {"install-fail", true,
                            "installation fails after the reboot (Result 8, "
                            "stays Downloaded)"},
    [FAULT_ROLLBACK] = {"rollback", true,
                        "silent rollback: comes back with the old version, "
                        "Idle, Result 0"},
    [FAULT_NO_RETURN] = {"no-return", true, "never comes back after Update"},
    [FAULT_REBOOT_LOOP] = {"reboot-loop", true,
                           "after Update: registers, crashes, reboots, "
                           "forever"},
    [FAULT_CONFLICT] = {"conflict", true,
                        "the finished download reports Conflicting state "
                        "(Result 12)"},
    [FAULT_DEPENDENCY] = {"dependency", true,
                          "Execute Update reports Dependency error (Result "
                          "13)"},
    [FAULT_SLOW_DOWNLOAD] = {"slow-download", false,
                             "downloads crawl (one block per "
                             "--slow-delay)"},
    [FAULT_LOST_NOTIFY] = {"lost-notify", false,
                           "notifications are never sent"},
    [FAULT_NAT_REBIND] = {"nat-rebind", false,
                          "new source port (NAT rebinding) once a "
                          "download starts"},
    [FAULT_OFFLINE] = {"offline", false,
                       "goes offline for lifetime + 30 s once a package is "
                       "downloaded"},
    [FAULT_DEFER] = {"defer", false,
                     "the user defers deferrable updates (Result 11) until "
                     "the Maximum Defer Period runs out"},
};

const char *sim_fault_name(enum sim_fault f)
{
  return (unsigned)f < FAULT_COUNT ? faults[f].name : "?";
}

const char *sim_fault_help(enum sim_fault f)
{
  return (unsigned)f < FAULT_COUNT ? faults[f].help : "?";
}

bool sim_fault_is_failure(enum sim_fault f)
{
  return (unsigned)f < FAULT_COUNT && faults[f].failure;
}

int sim_fault_parse(const char *name, size_t len, enum sim_fault *out)
{
  for (int i = 0; i < FAULT_COUNT; i++) {
    if (strlen(faults[i].name) == len &&
        strncmp(faults[i].name, name, len) == 0) {
      *out = (enum sim_fault)i;
      return 0;
    }
  }
  return -EINVAL;
}

/* A number with nothing around it; strtod alone accepts blanks. */
static int strict_double(const char *s, double *out)
{
  char *end = NULL;
  double v;

  if (!*s || isspace((unsigned char)*s))
    return -EINVAL;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || !isfinite(v))
    return -EINVAL;
  if (*end == '%' && end[1] == '\0')
    v /= 100.0;
  else if (*end != '\0')
    return -EINVAL;
  *out = v;
  return 0;
}

int sim_fault_spec_parse(const char *s, struct sim_fault_spec *out, char *err,
                         size_t errlen)
{
  const char *colon = strchr(s, ':');
  const char *spec;
  size_t cap = 0;

  memset(out, 0, sizeof(*out));
  if (!colon || sim_fault_parse(s, (size_t)(colon - s), &out->kind) < 0) {
    snprintf(err, errlen,
             "'%s': expected KIND:FRACTION or KIND:EP,EP,... "
             "with a known KIND (see --help)",
             s);
    return -EINVAL;
  }
  spec = colon + 1;
  if (strict_double(spec, &out->fraction) == 0) {
    if (out->fraction < 0 || out->fraction > 1) {
      snprintf(err, errlen, "'%s': the fraction must be within 0..1", s);
      return -EINVAL;
    }
    return 0;
  }
  out->fraction = 0;
  while (*spec) {
    size_t n = strcspn(spec, ",");

    if (n == 0 || n >= 128) {
      snprintf(err, errlen, "'%s': empty or overlong endpoint name", s);
      sim_fault_spec_free(out);
      return -EINVAL;
    }
    if (out->nendpoints == cap) {
      cap = cap ? cap * 2 : 8;
      out->endpoints = xrealloc(out->endpoints, cap * sizeof(char *));
    }
    out->endpoints[out->nendpoints++] = xstrndup(spec, n);
    spec += n;
    if (*spec == ',')
      spec++;
  }
  if (out->nendpoints == 0) {
    snprintf(err, errlen, "'%s': no fraction and no endpoints", s);
    return -EINVAL;
  }
  return 0;
}

void sim_fault_spec_free(struct sim_fault_spec *f)
{
  for (size_t i = 0; i < f->nendpoints; i++)
    free(f->endpoints[i]);
  free(f->endpoints);
  f->endpoints = NULL;
  f->nendpoints = 0;
}

/* splitmix64: small, seedable, and good enough to spread faults. */
static uint64_t splitmix(uint64_t *state)
{
  uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

void sim_fault_pick(double fraction, size_t count, uint64_t seed,
                    enum sim_fault kind, uint8_t *pick)
{
  size_t k = (size_t)llround(fraction * (double)count);
  uint64_t state =
      seed ^ ((uint64_t)(kind + 1) * UINT64_C(0x2545f4914f6cdd1d));
  size_t *ix;

  memset(pick, 0, count);
  if (k > count)
    k = count;
  if (k == 0)
    return;
  ix = xmalloc(count * sizeof(*ix));
  for (size_t i = 0; i < count; i++)
    ix[i] = i;
  /* A partial Fisher-Yates shuffle: the first k slots are the sample. */
  for (size_t i = 0; i < k; i++) {
    size_t j = i + (size_t)(splitmix(&state) % (count - i));
    size_t t = ix[i];

    ix[i] = ix[j];
    ix[j] = t;
    pick[ix[i]] = 1;
  }
  free(ix);
}

int sim_until_parse(const char *s, struct sim_until *out, char *err,
                    size_t errlen)
{
  static const char updated[] = "all-updated";
  size_t ulen = sizeof(updated) - 1;

  memset(out, 0, sizeof(*out));
  if (strcmp(s, "all-registered") == 0) {
    out->kind = UNTIL_ALL_REGISTERED;
    return 0;
  }
  if (strncmp(s, updated, ulen) == 0 && (s[ulen] == '\0' || s[ulen] == ':')) {
    const char *arg = s[ulen] ? s + ulen + 1 : NULL;
    const char *eq = arg ? strchr(arg, '=') : NULL;

    out->kind = UNTIL_ALL_UPDATED;
    if (!arg)
      return 0;
    if (eq) {
      size_t n = (size_t)(eq - arg);

      if (n == 0 || n >= sizeof(out->component)) {
        snprintf(err, errlen, "'%s': bad component name", s);
        return -EINVAL;
      }
      memcpy(out->component, arg, n);
      out->component[n] = '\0';
      arg = eq + 1;
    }
    if (!*arg || strlen(arg) >= sizeof(out->version)) {
      snprintf(err, errlen, "'%s': bad version", s);
      return -EINVAL;
    }
    snprintf(out->version, sizeof(out->version), "%s", arg);
    return 0;
  }
  snprintf(err, errlen,
           "'%s': expected all-registered or all-updated[:[COMPONENT=]"
           "VERSION]",
           s);
  return -EINVAL;
}

int sim_rate_parse(const char *s, double *per_s, char *err, size_t errlen)
{
  char num[32];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  double v, div = 1;

  if (n == 0 || n >= sizeof(num))
    goto bad;
  memcpy(num, s, n);
  num[n] = '\0';
  if (strict_double(num, &v) < 0 || strchr(num, '%') || v <= 0)
    goto bad;
  if (slash) {
    if (strcmp(slash + 1, "s") == 0)
      div = 1;
    else if (strcmp(slash + 1, "m") == 0 || strcmp(slash + 1, "min") == 0)
      div = 60;
    else
      goto bad;
  }
  *per_s = v / div;
  return 0;
bad:
  snprintf(err, errlen, "'%s': expected a positive rate like 200/s or 30/m",
           s);
  return -EINVAL;
}

static bool name_ok(const char *s, size_t n)
{
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
        s[i] == '"' || s[i] == '\\')
      return false;
  return true;
}

int sim_components_parse(const char *s, char **names, char **versions,
                         size_t max, char *err, size_t errlen)
{
  size_t count = 0;

  while (*s) {
    size_t n = strcspn(s, ",");
    const char *eq = memchr(s, '=', n);
    size_t nl, vl;

    if (!eq) {
      snprintf(err, errlen, "'%.*s': expected NAME=VERSION", (int)n, s);
      goto fail;
    }
    nl = (size_t)(eq - s);
    vl = n - nl - 1;
    if (!name_ok(s, nl) || nl >= AFU_NAME_MAX || !name_ok(eq + 1, vl) ||
        vl >= AFU_VER_MAX) {
      snprintf(err, errlen, "'%.*s': bad component name or version", (int)n,
               s);
      goto fail;
    }
    if (count == max) {
      snprintf(err, errlen, "at most %zu components", max);
      goto fail;
    }
    names[count] = xstrndup(s, nl);
    versions[count] = xstrndup(eq + 1, vl);
    count++;
    s += n;
    if (*s == ',')
      s++;
  }
  if (count == 0) {
    snprintf(err, errlen, "no components given");
    return -EINVAL;
  }
  return (int)count;
fail:
  for (size_t i = 0; i < count; i++) {
    free(names[i]);
    free(versions[i]);
  }
  return -EINVAL;
}
