/*
 * Rollout specifications (rollout_spec.c) and the pure decisions made
 * from them, apart from the engine (rollouts.c) so that unit tests can
 * drive them with any clock. Private to orchestrator/ and its tests.
 */
#ifndef FOTAD_ROLLOUT_H
#define FOTAD_ROLLOUT_H

#include <jansson.h>

#include "common/common.h"
#include "orchestrator/orch_int.h"

#define ROLLOUT_PACKAGES_MAX 16
#define ROLLOUT_STAGES_MAX 16
#define ROLLOUT_FILTERS_MAX 8
#define ROLLOUT_WINDOWS_MAX 16
#define ROLLOUT_RETRY_ON_MAX 32
#define ROLLOUT_ENDPOINTS_MAX 100000

/* What a failure counts as for the gates. */
enum gate_class {
  GATE_DOWNLOAD,
  GATE_INTEGRITY,
  GATE_INSTALL,
  GATE_TIMEOUT,
  GATE_ROLLBACK,
  GATE_OTHER,
};
#define GATE_CLASS_COUNT (GATE_OTHER + 1)
extern const char *const rollout_gate_class_names[GATE_CLASS_COUNT];

enum filter_op {
  FILTER_LT,
  FILTER_LE,
  FILTER_EQ,
  FILTER_NE,
  FILTER_GE,
  FILTER_GT
};

/* "application < 3.0" */
struct rollout_filter {
  char component[65];
  enum filter_op op;
  char version[65];
};

/* Cumulative: a share of the members, or a number of them. */
struct rollout_stage {
  bool percent;
  double value;
};

/* Recurring: on days (bit 0 Sunday), from start_min after local midnight
 * in tz, for duration_min. */
struct rollout_window {
  unsigned days;
  int start_min, duration_min;
  char tz[72];
};

struct rollout_spec {
  int64_t packages[ROLLOUT_PACKAGES_MAX];
  size_t npackages;
  json_t *endpoints, *tags; /* arrays of strings, or NULL */
  struct rollout_filter filters[ROLLOUT_FILTERS_MAX];
  size_t nfilters;
  struct rollout_stage stages[ROLLOUT_STAGES_MAX];
  size_t nstages;
  json_t *canaries; /* array of endpoints, or NULL */
  bool dynamic, force;
  int64_t seed; /* cohort order: rollout_rank(seed, endpoint) */
  /* Gates. */
  double success_ratio;
  int64_t soak_s;
  int64_t fail_count; /* 0: off */
  double fail_ratio;  /* 0: off */
  int64_t min_sample;
  bool fail_abort;       /* else pause */
  unsigned fail_classes; /* bits of enum gate_class */
  /* Pace and schedule. */
  int64_t max_concurrent, max_per_minute; /* 0 per minute: no limit */
  int64_t start_at, end_at;               /* Unix ms, 0: none */
  struct rollout_window windows[ROLLOUT_WINDOWS_MAX];
  size_t nwindows;
  /* Jobs. */
  struct orch_job_limits limits;
  int64_t retry_max, backoff_s, backoff_max_s;
  const char *retry_on[ROLLOUT_RETRY_ON_MAX]; /* static strings */
  size_t nretry_on;
  json_t *norm; /* the spec with every default filled in */
};

/* Parses and checks a spec (packages are not looked up here). -EINVAL
 * with err saying what is wrong and where. */
int rollout_spec_parse(json_t *in, struct rollout_spec *sp, char *err,
                       size_t errlen);
void rollout_spec_clear(struct rollout_spec *sp);

/* Version order: numbers compare as numbers, "3.0" equals "3.0.0". */
int rollout_version_cmp(const char *a, const char *b);
/* Does a component at version (NULL: unknown, never matches) pass f? */
bool rollout_filter_match(const struct rollout_filter *f, const char *version);
/* "2026-11-26T02:00:00Z" -> Unix ms. */
int rollout_parse_time(const char *s, int64_t *out_ms);

/* A member's place in cohort order. */
uint64_t rollout_rank(int64_t seed, const char *endpoint);
/* Cumulative cohort sizes for n eligible members (canaries of them go
 * first): sizes[i] for each stage, the last one n. */
void rollout_stage_sizes(const struct rollout_spec *sp, size_t n,
                         size_t canaries, size_t *sizes);

/* May a job start at now (Unix ms) as far as the windows go? */
bool rollout_window_open(const struct rollout_spec *sp, int64_t now_ms);

enum gate_class rollout_gate_class(const char *failure_class);
/* Is a job failure of this class retried under sp? */
bool rollout_retries(const struct rollout_spec *sp, const char *failure_class);
/* The wait before attempt attempts + 1 (attempts >= 1 done). */
int64_t rollout_backoff_ms(const struct rollout_spec *sp, int64_t attempts);

#endif
