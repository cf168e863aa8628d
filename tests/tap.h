/*
 * A minimal TAP producer for the unit tests: each check prints "ok N" or
 * "not ok N" with its description, and tap_done() prints the plan and
 * returns the exit status. The automake TAP driver reads the output.
 */
#ifndef FOTAD_TAP_H
#define FOTAD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n;
static int tap_failed;

#define ok(cond, ...) tap_ok_(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                \
  do {                                                                        \
    long long g_ = (long long)(got), w_ = (long long)(want);                  \
    if (!tap_ok_(g_ == w_, #got, __FILE__, __LINE__, __VA_ARGS__))            \
      printf("#   got %lld, want %lld\n", g_, w_);                            \
  } while (0)

#define is_str(got, want, ...)                                                \
  do {                                                                        \
    const char *g_ = (got), *w_ = (want);                                     \
    int eq_ = g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_;                      \
    if (!tap_ok_(eq_, #got, __FILE__, __LINE__, __VA_ARGS__))                 \
      printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)",             \
             w_ ? w_ : "(null)");                                             \
  } while (0)

__attribute__((format(printf, 5, 6))) static int
tap_ok_(int pass, const char *expr, const char *file, int line,
        const char *fmt, ...)
{
  va_list ap;

  tap_n++;
  printf("%s %d - ", pass ? "ok" : "not ok", tap_n);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (!pass) {
    tap_failed++;
    printf("#   failed: %s at %s:%d\n", expr, file, line);
  }
  fflush(stdout);
  return pass;
}

static inline int tap_done(void)
{
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

#endif
