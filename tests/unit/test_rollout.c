/*
 * The pure side of staged rollouts (orchestrator/rollout_spec.c): spec
 * parsing with its defaults, normalised form and refusals, version order
 * and filters, UTC times, cohort ranks and stage sizes, maintenance
 * windows under a clock the test picks (in UTC and, when the system has
 * its zoneinfo, in Europe/Berlin), failure classes, retries and backoff.
 */
#include "orchestrator/rollout.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BERLIN "/usr/share/zoneinfo/Europe/Berlin"

static bool have_berlin;

/* A check that is not run, as a TAP SKIP. */
static void skip(const char *why)
{
  ok(1, "# SKIP %s", why);
}

/* Parses the spec text js into sp; err gets the refusal. */
static int parse(const char *js, struct rollout_spec *sp, char *err,
                 size_t errlen)
{
  json_error_t jerr;
  json_t *in = json_loads(js, 0, &jerr);
  int rc;

  if (!in) {
    printf("Bail out! bad JSON in the test: %s: %s\n", js, jerr.text);
    exit(1);
  }
  err[0] = '\0';
  rc = rollout_spec_parse(in, sp, err, errlen);
  json_decref(in);
  return rc;
}

/* Parses js, which must be valid, or stops the program. */
static void parse_ok(const char *js, struct rollout_spec *sp)
{
  char err[256];

  if (parse(js, sp, err, sizeof(err)) != 0) {
    printf("Bail out! spec %s refused: %s\n", js, err);
    exit(1);
  }
}

/* The spec js is refused with an error that starts with prefix, and sp is
 * left cleared. */
static void refused(const char *js, const char *prefix)
{
  struct rollout_spec sp;
  char err[256];
  int rc = parse(js, &sp, err, sizeof(err));
  bool good =
      rc == -EINVAL && strncmp(err, prefix, strlen(prefix)) == 0 && !sp.norm;

  if (!ok(good, "refused at %s: %s", prefix, js))
    printf("#   rc %d, err \"%s\"\n", rc, err);
  if (rc == 0)
    rollout_spec_clear(&sp);
}

/* Does the JSON value got equal the JSON text want? */
static void json_is(json_t *got, const char *want, const char *what)
{
  json_t *w = json_loads(want, 0, NULL);

  if (!w) {
    printf("Bail out! bad JSON in the test: %s\n", want);
    exit(1);
  }
  if (!ok(got && json_equal(got, w), "%s", what)) {
    char *s = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

    printf("#   got  %s\n#   want %s\n", s ? s : "(null)", want);
    free(s);
  }
  json_decref(w);
}

/* Unix ms of a UTC date and time. */
static int64_t utc_ms(int year, int mon, int day, int hour, int min)
{
  struct tm tm = {.tm_year = year - 1900,
                  .tm_mon = mon - 1,
                  .tm_mday = day,
                  .tm_hour = hour,
                  .tm_min = min};

  return (int64_t)timegm(&tm) * 1000;
}

/* Parsing sp->norm gives sp->norm again. */
static void round_trip(const struct rollout_spec *sp, const char *what)
{
  struct rollout_spec sp2;
  char err[256] = "";
  int rc = rollout_spec_parse(sp->norm, &sp2, err, sizeof(err));

  if (!ok(rc == 0 && json_equal(sp2.norm, sp->norm),
          "%s: the normalised spec parses to itself", what)) {
    char *a = json_dumps(sp->norm, JSON_SORT_KEYS | JSON_COMPACT);
    char *b =
        rc == 0 ? json_dumps(sp2.norm, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

    printf("#   rc %d %s\n#   first  %s\n#   second %s\n", rc, err, a,
           b ? b : "(null)");
    free(a);
    free(b);
  }
  if (rc == 0)
    rollout_spec_clear(&sp2);
}

static void test_defaults(void)
{
  static const char want[] =
      "{\"packages\":[1],\"targets\":{\"filter\":[]},"
      "\"stages\":[\"100%\"],\"canaries\":[],\"dynamic\":false,"
      "\"force\":false,"
      "\"gates\":{\"success_ratio\":1.0,\"soak\":0,\"failure_count\":0,"
      "\"failure_ratio\":0.0,\"min_sample\":10,\"on_failure\":\"pause\","
      "\"failure_classes\":[\"download\",\"integrity\",\"install\","
      "\"timeout\",\"rollback\",\"other\"]},"
      "\"pace\":{\"max_concurrent\":100,\"max_starts_per_minute\":0},"
      "\"schedule\":{\"windows\":[]},"
      "\"timeouts\":{\"download\":null,\"update\":null,\"reboot\":null},"
      "\"retries\":{\"max\":2,\"backoff\":30,\"backoff_max\":600,"
      "\"on\":[\"connection_lost\",\"no_ram\",\"download_timeout\"]},"
      "\"verification\":{\"window\":60,\"max_reboots\":1}}";
  struct rollout_spec sp, sp2;
  char err[256];
  json_t *norm, *seed;
  int rc = parse("{\"packages\":[1]}", &sp, err, sizeof(err));

  is_int(rc, 0, "a minimal spec parses");
  if (rc != 0) {
    printf("#   %s\n", err);
    return;
  }
  is_int(sp.npackages, 1, "one package");
  is_int(sp.packages[0], 1, "... with id 1");
  ok(!sp.endpoints && !sp.tags && !sp.canaries,
     "no endpoints, tags or canaries");
  is_int(sp.nfilters, 0, "no filter");
  is_int(sp.nstages, 1, "one stage");
  ok(sp.stages[0].percent && sp.stages[0].value == 100, "... of 100%%");
  ok(!sp.dynamic && !sp.force, "neither dynamic nor forced");
  ok(sp.success_ratio == 1.0, "success_ratio 1");
  is_int(sp.soak_s, 0, "no soak");
  is_int(sp.fail_count, 0, "failure_count off");
  ok(sp.fail_ratio == 0, "failure_ratio off");
  is_int(sp.min_sample, 10, "min_sample 10");
  ok(!sp.fail_abort, "on_failure pause");
  is_int(sp.fail_classes, (1u << GATE_CLASS_COUNT) - 1,
         "every failure class counts");
  is_int(sp.max_concurrent, 100, "max_concurrent 100");
  is_int(sp.max_per_minute, 0, "no start rate limit");
  ok(sp.start_at == 0 && sp.end_at == 0, "no start or end time");
  is_int(sp.nwindows, 0, "no windows");
  ok(sp.limits.download_timeout == 0 && sp.limits.update_timeout == 0 &&
         sp.limits.reboot_timeout == 0,
     "job timeouts from the settings");
  is_int(sp.limits.verify_window, 60, "verification window 60 s");
  is_int(sp.limits.max_reboots, 1, "max_reboots 1");
  is_int(sp.retry_max, 2, "retries.max 2");
  is_int(sp.backoff_s, 30, "backoff 30 s");
  is_int(sp.backoff_max_s, 600, "backoff_max 600 s");
  is_int(sp.nretry_on, 3, "three retried classes");
  if (sp.nretry_on == 3) {
    is_str(sp.retry_on[0], "connection_lost", "... connection_lost");
    is_str(sp.retry_on[1], "no_ram", "... no_ram");
    is_str(sp.retry_on[2], "download_timeout", "... download_timeout");
  }
  ok(sp.seed >= 0 && sp.seed <= UINT32_MAX, "a seed is drawn");

  seed = json_object_get(sp.norm, "seed");
  ok(json_is_integer(seed) && json_integer_value(seed) == sp.seed,
     "the normalised spec holds the seed");
  norm = json_deep_copy(sp.norm);
  json_object_del(norm, "seed");
  json_is(norm, want, "the normalised spec has every default");
  json_decref(norm);
  round_trip(&sp, "minimal");

  /* Two draws of 32 bits agree once in 4 billion times. */
  parse_ok("{\"packages\":[1]}", &sp2);
  ok(sp2.seed != sp.seed, "another spec draws another seed");
  rollout_spec_clear(&sp2);
  rollout_spec_clear(&sp);
  ok(!sp.norm && sp.npackages == 0, "rollout_spec_clear empties the spec");
}

static void test_full(void)
{
  const char *tz = have_berlin ? "Europe/Berlin" : "UTC";
  char js[2048], want[2048];
  struct rollout_spec sp;
  char err[256];
  int rc;

  snprintf(js, sizeof(js),
           "{\"name\":\"fall release\",\"packages\":[3,7],"
           "\"targets\":{\"endpoints\":[\"ep-1\",\"ep-2\"],"
           "\"tags\":[\"beta\"],\"filter\":\"application < 3.0\"},"
           "\"stages\":[5,\"10%%\",50,\"50%%\",\"100%%\"],"
           "\"canaries\":[\"ep-1\"],\"dynamic\":true,\"force\":true,"
           "\"gates\":{\"success_ratio\":0.95,\"soak\":\"10m\","
           "\"failure_count\":5,\"failure_ratio\":0.2,\"min_sample\":20,"
           "\"on_failure\":\"abort\","
           "\"failure_classes\":[\"rollback\",\"download\"]},"
           "\"pace\":{\"max_concurrent\":25,\"max_starts_per_minute\":60},"
           "\"schedule\":{\"start_at\":\"2026-11-26T02:00:00Z\","
           "\"end_at\":\"2026-12-01T00:00:00.250Z\",\"windows\":["
           "{\"days\":[\"sat\",\"mon\"],\"start\":\"02:00\","
           "\"duration\":\"4h\"},"
           "{\"start\":\"23:30\",\"duration\":5400,\"time_zone\":\"%s\"}]},"
           "\"timeouts\":{\"download\":\"2h\",\"update\":600,"
           "\"reboot\":\"15m\"},"
           "\"retries\":{\"max\":4,\"backoff\":\"1m\",\"backoff_max\":\"1h\","
           "\"on\":[\"connection_lost\",\"update_timeout\"]},"
           "\"verification\":{\"window\":\"2m\",\"max_reboots\":0},"
           "\"seed\":12345}",
           tz);
  rc = parse(js, &sp, err, sizeof(err));
  is_int(rc, 0, "a full spec parses");
  if (rc != 0) {
    printf("#   %s\n", err);
    return;
  }
  ok(sp.npackages == 2 && sp.packages[0] == 3 && sp.packages[1] == 7,
     "packages 3 and 7");
  ok(json_array_size(sp.endpoints) == 2 &&
         strcmp(json_string_value(json_array_get(sp.endpoints, 1)), "ep-2") ==
             0,
     "two endpoints");
  ok(json_array_size(sp.tags) == 1, "one tag");
  is_int(sp.nfilters, 1, "a filter string is one filter");
  is_str(sp.filters[0].component, "application", "... on application");
  is_int(sp.filters[0].op, FILTER_LT, "... with <");
  is_str(sp.filters[0].version, "3.0", "... and 3.0");
  is_int(sp.nstages, 5, "five stages");
  ok(!sp.stages[0].percent && sp.stages[0].value == 5, "stage 1: 5 devices");
  ok(sp.stages[1].percent && sp.stages[1].value == 10, "stage 2: 10%%");
  ok(!sp.stages[2].percent && sp.stages[2].value == 50, "stage 3: 50 devices");
  ok(sp.stages[3].percent && sp.stages[3].value == 50, "stage 4: 50%%");
  ok(sp.stages[4].percent && sp.stages[4].value == 100, "stage 5: 100%%");
  ok(json_array_size(sp.canaries) == 1, "one canary");
  ok(sp.dynamic && sp.force, "dynamic and forced");
  ok(sp.success_ratio == 0.95, "success_ratio 0.95");
  is_int(sp.soak_s, 600, "soak 10m is 600 s");
  is_int(sp.fail_count, 5, "failure_count 5");
  ok(sp.fail_ratio == 0.2, "failure_ratio 0.2");
  is_int(sp.min_sample, 20, "min_sample 20");
  ok(sp.fail_abort, "on_failure abort");
  is_int(sp.fail_classes, 1u << GATE_DOWNLOAD | 1u << GATE_ROLLBACK,
         "failure_classes download and rollback only");
  is_int(sp.max_concurrent, 25, "max_concurrent 25");
  is_int(sp.max_per_minute, 60, "60 starts per minute");
  is_int(sp.start_at, utc_ms(2026, 11, 26, 2, 0), "start_at");
  is_int(sp.end_at, utc_ms(2026, 12, 1, 0, 0) + 250,
         "end_at, with its milliseconds");
  is_int(sp.nwindows, 2, "two windows");
  is_int(sp.windows[0].days, 1u << 1 | 1u << 6, "window 1 on mon and sat");
  is_int(sp.windows[0].start_min, 120, "... from 02:00");
  is_int(sp.windows[0].duration_min, 240, "... for 4 h");
  is_str(sp.windows[0].tz, "UTC", "... in UTC by default");
  is_int(sp.windows[1].days, 0x7f, "window 2 every day by default");
  is_int(sp.windows[1].start_min, 23 * 60 + 30, "... from 23:30");
  is_int(sp.windows[1].duration_min, 90, "... for 90 min");
  is_str(sp.windows[1].tz, tz, "... in %s", tz);
  is_int(sp.limits.download_timeout, 7200, "download timeout 2h");
  is_int(sp.limits.update_timeout, 600, "update timeout 600");
  is_int(sp.limits.reboot_timeout, 900, "reboot timeout 15m");
  is_int(sp.limits.verify_window, 120, "verification window 2m");
  is_int(sp.limits.max_reboots, 0, "max_reboots 0");
  is_int(sp.retry_max, 4, "retries.max 4");
  is_int(sp.backoff_s, 60, "backoff 1m");
  is_int(sp.backoff_max_s, 3600, "backoff_max 1h");
  ok(sp.nretry_on == 2 && strcmp(sp.retry_on[0], "connection_lost") == 0 &&
         strcmp(sp.retry_on[1], "update_timeout") == 0,
     "retried: connection_lost, update_timeout");
  is_int(sp.seed, 12345, "seed 12345");

  snprintf(
      want, sizeof(want),
      "{\"name\":\"fall release\",\"packages\":[3,7],"
      "\"targets\":{\"endpoints\":[\"ep-1\",\"ep-2\"],\"tags\":[\"beta\"],"
      "\"filter\":[\"application < 3.0\"]},"
      "\"stages\":[5,\"10%%\",50,\"50%%\",\"100%%\"],"
      "\"canaries\":[\"ep-1\"],\"dynamic\":true,\"force\":true,"
      "\"gates\":{\"success_ratio\":0.95,\"soak\":600,\"failure_count\":5,"
      "\"failure_ratio\":0.2,\"min_sample\":20,\"on_failure\":\"abort\","
      "\"failure_classes\":[\"download\",\"rollback\"]},"
      "\"pace\":{\"max_concurrent\":25,\"max_starts_per_minute\":60},"
      "\"schedule\":{\"start_at\":\"2026-11-26T02:00:00.000Z\","
      "\"end_at\":\"2026-12-01T00:00:00.250Z\",\"windows\":["
      "{\"days\":[\"mon\",\"sat\"],\"start\":\"02:00\",\"duration\":14400,"
      "\"time_zone\":\"UTC\"},"
      "{\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],"
      "\"start\":\"23:30\",\"duration\":5400,\"time_zone\":\"%s\"}]},"
      "\"timeouts\":{\"download\":7200,\"update\":600,\"reboot\":900},"
      "\"retries\":{\"max\":4,\"backoff\":60,\"backoff_max\":3600,"
      "\"on\":[\"connection_lost\",\"update_timeout\"]},"
      "\"verification\":{\"window\":120,\"max_reboots\":0},"
      "\"seed\":12345}",
      tz);
  json_is(sp.norm, want, "the normalised full spec");
  round_trip(&sp, "full");
  rollout_spec_clear(&sp);

  /* A filter array: every condition, operators normalised. */
  parse_ok("{\"packages\":[1],\"targets\":{\"filter\":["
           "\"application >= 1.2\",\"bootloader!=0.9\",\"modem == 2\","
           "\"app2 <= 4\",\"app3 > 5\"]}}",
           &sp);
  is_int(sp.nfilters, 5, "a filter array gives one filter per string");
  ok(sp.filters[0].op == FILTER_GE && sp.filters[1].op == FILTER_NE &&
         sp.filters[2].op == FILTER_EQ && sp.filters[3].op == FILTER_LE &&
         sp.filters[4].op == FILTER_GT,
     "... with >=, !=, ==, <=, >");
  is_str(sp.filters[1].component, "bootloader", "... without blanks needed");
  is_str(sp.filters[1].version, "0.9", "... version 0.9");
  json_is(json_object_get(json_object_get(sp.norm, "targets"), "filter"),
          "[\"application >= 1.2\",\"bootloader != 0.9\",\"modem = 2\","
          "\"app2 <= 4\",\"app3 > 5\"]",
          "filters are normalised to \"COMPONENT OP VERSION\"");
  ok(!json_object_get(json_object_get(sp.norm, "targets"), "endpoints"),
     "no endpoints in the normalised targets when none given");
  round_trip(&sp, "filters");
  rollout_spec_clear(&sp);

  /* Nothing retried, a backoff_max below the backoff, a fraction. */
  parse_ok("{\"packages\":[1],\"stages\":[\"12.5%\",\"100%\"],"
           "\"retries\":{\"on\":[],\"backoff\":100,\"backoff_max\":10}}",
           &sp);
  ok(sp.stages[0].percent && sp.stages[0].value == 12.5, "stage 12.5%%");
  is_int(sp.nretry_on, 0, "retries.on [] retries nothing");
  is_int(sp.backoff_max_s, 100, "backoff_max is at least the backoff");
  json_is(json_object_get(sp.norm, "stages"), "[\"12.5%\",\"100%\"]",
          "a fractional percentage is kept");
  round_trip(&sp, "no retries");
  rollout_spec_clear(&sp);
}

static void test_refusals(void)
{
  refused("[1]", "rollout: expected an object");
  refused("{}", "packages");
  refused("{\"packages\":[]}", "packages");
  refused("{\"packages\":[0]}", "packages[0]");
  refused("{\"packages\":[\"3\"]}", "packages[0]");
  refused("{\"packages\":[4,4]}", "packages[1]: package 4 is listed twice");
  refused("{\"packages\":[1],\"name\":\"\"}", "name");
  refused("{\"packages\":[1],\"surprise\":1}", "surprise: unknown field");
  refused("{\"packages\":[1],\"stages\":[]}", "stages");
  refused("{\"packages\":[1],\"stages\":[\"10%\",\"5%\"]}", "stages[1]");
  refused("{\"packages\":[1],\"stages\":[10,10]}", "stages[1]");
  refused("{\"packages\":[1],\"stages\":[\"10%\",\"many\"]}", "stages[1]");
  refused("{\"packages\":[1],\"stages\":[\"0%\"]}", "stages[0]");
  refused("{\"packages\":[1],\"stages\":[\"101%\"]}", "stages[0]");
  refused("{\"packages\":[1],\"stages\":[\"nan%\"]}", "stages[0]");
  refused("{\"packages\":[1],\"stages\":[\"10\"]}", "stages[0]");
  refused("{\"packages\":[1],\"stages\":[0]}", "stages[0]");
  refused("{\"packages\":[1],\"targets\":{\"filter\":\"application\"}}",
          "targets.filter[0]");
  refused("{\"packages\":[1],\"targets\":{\"filter\":[\"a < 1\","
          "\"b =< 2\"]}}",
          "targets.filter[1]: unknown operator");
  refused("{\"packages\":[1],\"targets\":{\"filter\":"
          "\"application < 3.0 or so\"}}",
          "targets.filter[0]");
  refused("{\"packages\":[1],\"targets\":{\"filter\":[5]}}",
          "targets.filter[0]");
  refused("{\"packages\":[1],\"targets\":{\"filter\":{}}}", "targets.filter");
  refused("{\"packages\":[1],\"targets\":{\"tags\":[\"\"]}}",
          "targets.tags[0]");
  refused("{\"packages\":[1],\"targets\":{\"devices\":[]}}",
          "targets.devices: unknown field");
  refused("{\"packages\":[1],\"gates\":{\"sucess_ratio\":0.9}}",
          "gates.sucess_ratio: unknown field");
  refused("{\"packages\":[1],\"gates\":{\"success_ratio\":1.5}}",
          "gates.success_ratio");
  refused("{\"packages\":[1],\"gates\":{\"on_failure\":\"explode\"}}",
          "gates.on_failure");
  refused("{\"packages\":[1],\"gates\":{\"failure_classes\":"
          "[\"download\",\"bogus\"]}}",
          "gates.failure_classes[1]");
  refused("{\"packages\":[1],\"retries\":{\"on\":[\"integrity\"]}}",
          "retries.on[0]: integrity failures are never retried");
  refused("{\"packages\":[1],\"retries\":{\"on\":[\"no_ram\","
          "\"unsupported_package\"]}}",
          "retries.on[1]");
  refused("{\"packages\":[1],\"retries\":{\"on\":[\"bogus\"]}}",
          "retries.on[0]: unknown failure class");
  refused("{\"packages\":[1],\"retries\":{\"backoff\":\"soon\"}}",
          "retries.backoff");
  refused("{\"packages\":[1],\"timeouts\":{\"download\":0}}",
          "timeouts.download");
  refused("{\"packages\":[1],\"pace\":{\"max_concurrent\":0}}",
          "pace.max_concurrent");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":\"2:00\","
          "\"duration\":\"1h\"}]}}",
          "schedule.windows[0].start");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"24:00\",\"duration\":\"1h\"}]}}",
          "schedule.windows[0].start");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:60\",\"duration\":\"1h\"}]}}",
          "schedule.windows[0].start");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:00\"}]}}",
          "schedule.windows[0].duration");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:00\",\"duration\":\"1h\"},{\"start\":\"03:00\","
          "\"duration\":\"1h\",\"days\":[\"mon\",\"funday\"]}]}}",
          "schedule.windows[1].days[1]");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:00\",\"duration\":\"1h\",\"time_zone\":\"Mars/Olympus\"}]}}",
          "schedule.windows[0].time_zone");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:00\",\"duration\":\"1h\",\"time_zone\":"
          "\"Europe/../Europe/Berlin\"}]}}",
          "schedule.windows[0].time_zone");
  refused("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
          "\"02:00\",\"duration\":\"1h\",\"time_zone\":\"/etc/localtime\"}]}}",
          "schedule.windows[0].time_zone");
  refused("{\"packages\":[1],\"schedule\":{\"start_at\":"
          "\"2026-11-26T02:00:00Z\",\"end_at\":\"2026-11-26T01:00:00Z\"}}",
          "schedule.end_at");
  refused("{\"packages\":[1],\"schedule\":{\"start_at\":"
          "\"2026-11-26T02:00:00Z\",\"end_at\":\"2026-11-26T02:00:00Z\"}}",
          "schedule.end_at");
  refused("{\"packages\":[1],\"schedule\":{\"start_at\":\"tomorrow\"}}",
          "schedule.start_at");
  refused("{\"packages\":[1],\"seed\":-1}", "seed");
  refused("{\"packages\":[1],\"dynamic\":\"yes\"}", "dynamic");
}

static void test_versions(void)
{
  static const struct {
    const char *a, *b;
    int want;
  } cases[] = {
      {"1.0", "1.0.1", -1},     {"3.0", "3.0.0", 0},
      {"1.10", "1.9", 1},       {"2.0", "10.0", -1},
      {"3.0", "3.0a", -1},      {"1.2.3", "1.2.3", 0},
      {"v1.2", "v1.10", -1},    {"1.0.0-rc1", "1.0.0-rc2", -1},
      {"3", "3.0.0.0", 0},      {"0.9.9", "1", -1},
      {"2024.1", "2023.12", 1}, {"1.0b", "1.0a", 1},
  };
  static const char *const vers[] = {"2.9", "3.0", "3.0.0", "3.1"};
  /* For each operator against 3.0: does each of vers match? */
  static const struct {
    enum filter_op op;
    const char *name;
    bool match[4];
  } ops[] = {
      {FILTER_LT, "<", {true, false, false, false}},
      {FILTER_LE, "<=", {true, true, true, false}},
      {FILTER_EQ, "=", {false, true, true, false}},
      {FILTER_NE, "!=", {true, false, false, true}},
      {FILTER_GE, ">=", {false, true, true, true}},
      {FILTER_GT, ">", {false, false, false, true}},
  };

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    int ab = rollout_version_cmp(cases[i].a, cases[i].b);
    int ba = rollout_version_cmp(cases[i].b, cases[i].a);
    int sab = (ab > 0) - (ab < 0), sba = (ba > 0) - (ba < 0);

    is_int(sab, cases[i].want, "%s %s %s", cases[i].a,
           cases[i].want < 0 ? "<"
           : cases[i].want   ? ">"
                             : "==",
           cases[i].b);
    is_int(sba, -cases[i].want, "... and the other way round");
  }
  for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
    struct rollout_filter f = {.component = "application", .op = ops[i].op};

    snprintf(f.version, sizeof(f.version), "3.0");
    for (size_t k = 0; k < ARRAY_SIZE(vers); k++)
      ok(rollout_filter_match(&f, vers[k]) == ops[i].match[k],
         "%s %s 3.0 is %s", vers[k], ops[i].name,
         ops[i].match[k] ? "true" : "false");
    ok(!rollout_filter_match(&f, NULL),
       "an unknown version never matches %s 3.0", ops[i].name);
  }
}

static void test_times(void)
{
  int64_t ms = -1;
  char buf[40];

  is_int(rollout_parse_time("2026-11-26T02:00:00Z", &ms), 0, "a UTC time");
  is_int(ms, utc_ms(2026, 11, 26, 2, 0), "... in Unix ms");
  is_int(rollout_parse_time("1970-01-01T00:00:00Z", &ms), 0, "the epoch");
  is_int(ms, 0, "... is 0");
  is_int(rollout_parse_time("2026-11-26T02:00:07.250Z", &ms), 0,
         "a time with a fraction");
  is_int(ms, utc_ms(2026, 11, 26, 2, 0) + 7250, "... keeps its milliseconds");
  is_int(rollout_parse_time("2026-11-26T02:00:07.5Z", &ms), 0,
         "one fractional digit");
  is_int(ms, utc_ms(2026, 11, 26, 2, 0) + 7500, "... is tenths");
  is_int(rollout_parse_time("2026-11-26T02:00:07.123999Z", &ms), 0,
         "microseconds");
  is_int(ms, utc_ms(2026, 11, 26, 2, 0) + 7123, "... cut to milliseconds");
  format_iso8601(utc_ms(2030, 6, 1, 12, 34) + 567, buf, sizeof(buf));
  ok(rollout_parse_time(buf, &ms) == 0 &&
         ms == utc_ms(2030, 6, 1, 12, 34) + 567,
     "format_iso8601's output reads back exactly");
  is_int(rollout_parse_time("2026-11-26T02:00:00", &ms), -EINVAL,
         "no Z: refused");
  is_int(rollout_parse_time("2026-11-26T02:00:00+01:00", &ms), -EINVAL,
         "an offset: refused");
  is_int(rollout_parse_time("2026-11-26T02:00Z", &ms), -EINVAL,
         "no seconds: refused");
  is_int(rollout_parse_time("2026-11-26 02:00:00Z", &ms), -EINVAL,
         "no T: refused");
  is_int(rollout_parse_time("2026-11-26T02:00:00ZZ", &ms), -EINVAL,
         "trailing text: refused");
  is_int(rollout_parse_time("2026-11-26T02:00:00.Z", &ms), -EINVAL,
         "a point without digits: refused");
  is_int(rollout_parse_time("2026-02-30T02:00:00Z", &ms), -EINVAL,
         "February 30: refused");
  is_int(rollout_parse_time("garbage", &ms), -EINVAL, "garbage: refused");
  is_int(rollout_parse_time("", &ms), -EINVAL, "empty: refused");
}

static void test_rank(void)
{
  char ep[32];
  size_t differ = 0, distinct = 0, fits = 0, wide = 0;
  uint64_t r[100];

  ok(rollout_rank(42, "ep-1") == rollout_rank(42, "ep-1"),
     "the same seed and endpoint give the same rank");
  /* SHA-256("42:ep-1") starts 55b6f70d1912c2: cohorts stay the same
   * across versions of fotad for a seed given back. */
  ok(rollout_rank(42, "ep-1") == 0x55b6f70d1912c2ull,
     "the rank is the first 56 bits of SHA-256(\"seed:endpoint\")");
  for (int i = 0; i < 100; i++) {
    snprintf(ep, sizeof(ep), "dev-%d", i);
    r[i] = rollout_rank(7, ep);
    if (rollout_rank(8, ep) != r[i])
      differ++;
    if (r[i] < 1ull << 56)
      fits++;
    if (r[i] >= 1ull << 52)
      wide++;
  }
  for (int i = 0; i < 100; i++) {
    int k;

    for (k = 0; k < i && r[k] != r[i]; k++)
      ;
    if (k == i)
      distinct++;
  }
  is_int(differ, 100, "another seed gives other ranks");
  is_int(distinct, 100, "endpoints get distinct ranks");
  is_int(fits, 100, "ranks fit in 56 bits");
  ok(wide > 50, "ranks use the high bits (%zu of 100 >= 2^52)", wide);
}

/* The stage sizes of stages (a JSON array) for n members, c canaries. */
static void sizes_are(const char *stages, size_t n, size_t c,
                      const size_t *want, size_t nwant, const char *what)
{
  char js[256];
  struct rollout_spec sp;
  size_t got[ROLLOUT_STAGES_MAX];
  bool same;

  snprintf(js, sizeof(js), "{\"packages\":[1],\"stages\":%s}", stages);
  parse_ok(js, &sp);
  rollout_stage_sizes(&sp, n, c, got);
  same = sp.nstages == nwant;
  for (size_t i = 0; same && i < nwant; i++)
    same = got[i] == want[i];
  if (!ok(same, "%s", what)) {
    printf("#   got ");
    for (size_t i = 0; i < sp.nstages; i++)
      printf(" %zu", got[i]);
    printf("\n");
  }
  rollout_spec_clear(&sp);
}

static void test_stage_sizes(void)
{
  struct rollout_spec sp;
  size_t got[ROLLOUT_STAGES_MAX];
  bool up = true;

  sizes_are("[\"10%\",\"50%\",\"100%\"]", 200, 0, (size_t[]){20, 100, 200}, 3,
            "10%, 50%, 100% of 200: 20, 100, 200");
  sizes_are("[\"1%\",\"100%\"]", 150, 0, (size_t[]){2, 150}, 2,
            "1% of 150 rounds up to 2");
  sizes_are("[\"1.1%\",\"100%\"]", 3000, 0, (size_t[]){33, 3000}, 2,
            "1.1% of 3000 is 33, not 34");
  sizes_are("[\"7%\",\"100%\"]", 100, 0, (size_t[]){7, 100}, 2,
            "7% of 100 is 7");
  sizes_are("[50,500,1000]", 100, 0, (size_t[]){50, 100, 100}, 3,
            "counts are capped at n");
  sizes_are("[\"10%\",\"50%\"]", 200, 0, (size_t[]){20, 200}, 2,
            "the last stage takes every member");
  sizes_are("[5,20]", 30, 0, (size_t[]){5, 30}, 2,
            "the last stage takes every member (counts)");
  sizes_are("[\"10%\",\"100%\"]", 200, 30, (size_t[]){30, 200}, 2,
            "canaries raise stage 1");
  sizes_are("[\"10%\",\"100%\"]", 200, 5, (size_t[]){20, 200}, 2,
            "fewer canaries than stage 1 change nothing");
  sizes_are("[\"10%\",\"20%\",\"100%\"]", 100, 25, (size_t[]){25, 25, 100}, 3,
            "a stage never shrinks below the canaries");
  sizes_are("[50,\"10%\",\"100%\"]", 200, 0, (size_t[]){50, 50, 200}, 3,
            "mixed stages do not decrease");
  sizes_are("[\"10%\",\"50%\",\"100%\"]", 0, 0, (size_t[]){0, 0, 0}, 3,
            "no members: every stage empty");
  sizes_are("[5,100]", 0, 0, (size_t[]){0, 0}, 2,
            "no members: counts give empty stages");
  sizes_are("[\"100%\"]", 1, 1, (size_t[]){1}, 1, "one canary, one member");

  parse_ok("{\"packages\":[1],\"stages\":[1,\"3%\",10,\"33.3%\",\"50%\","
           "400,\"90%\",\"99.9%\"]}",
           &sp);
  for (size_t n = 0; n <= 1000; n++) {
    rollout_stage_sizes(&sp, n, n % 7, got);
    for (size_t i = 1; i < sp.nstages; i++)
      if (got[i] < got[i - 1])
        up = false;
    if (got[sp.nstages - 1] != n)
      up = false;
  }
  ok(up, "for n up to 1000: non-decreasing and the last stage is n");
  rollout_spec_clear(&sp);
}

static void test_windows(void)
{
  struct rollout_spec sp;
  const char *saved;

  /* 2026-11-23 is a Monday. */
  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":[{\"days\":"
           "[\"mon\"],\"start\":\"02:00\",\"duration\":\"4h\"}]}}",
           &sp);
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 23, 1, 59)),
     "mon 02:00 + 4h: closed at mon 01:59");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 23, 2, 0)),
     "... open at mon 02:00");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 23, 3, 59)),
     "... open at mon 03:59");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 23, 5, 59)),
     "... open at mon 05:59");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 23, 6, 0)),
     "... closed at mon 06:00");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 22, 3, 0)),
     "... closed at sun 03:00");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 24, 3, 0)),
     "... closed at tue 03:00");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 30, 3, 0)),
     "... open again the next monday");
  rollout_spec_clear(&sp);

  /* 2026-11-27 is a Friday. */
  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":[{\"days\":"
           "[\"fri\"],\"start\":\"23:00\",\"duration\":\"3h\"}]}}",
           &sp);
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 27, 22, 59)),
     "fri 23:00 + 3h: closed at fri 22:59");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 27, 23, 30)),
     "... open at fri 23:30");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 28, 1, 0)),
     "... open at sat 01:00, past midnight");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 28, 2, 0)),
     "... closed at sat 02:00");
  rollout_spec_clear(&sp);
  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":[{\"days\":"
           "[\"sat\"],\"start\":\"23:00\",\"duration\":\"3h\"}]}}",
           &sp);
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 28, 1, 0)),
     "sat 23:00 + 3h: closed at sat 01:00 (friday not listed)");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 28, 23, 0)),
     "... open at sat 23:00");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 29, 1, 0)),
     "... open at sun 01:00, across the week's end");
  rollout_spec_clear(&sp);

  parse_ok("{\"packages\":[1]}", &sp);
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 23, 1, 0)) &&
         rollout_window_open(&sp, utc_ms(2026, 11, 29, 13, 0)) &&
         rollout_window_open(&sp, 0),
     "no windows: always open");
  rollout_spec_clear(&sp);

  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":["
           "{\"start\":\"01:00\",\"duration\":\"1h\"},"
           "{\"days\":[\"sun\"],\"start\":\"12:00\",\"duration\":3600}]}}",
           &sp);
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 25, 1, 30)),
     "two windows: the daily one opens wed 01:30");
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 29, 12, 30)),
     "... the sunday one opens sun 12:30");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 25, 12, 30)),
     "... neither at wed 12:30");
  rollout_spec_clear(&sp);

  if (!have_berlin) {
    for (int i = 0; i < 8; i++)
      skip("no " BERLIN);
    return;
  }
  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":[{\"start\":"
           "\"02:00\",\"duration\":\"1h\",\"time_zone\":\"Europe/Berlin\"}]}}",
           &sp);
  ok(rollout_window_open(&sp, utc_ms(2026, 1, 15, 1, 30)),
     "Berlin 02:00 + 1h: open at 01:30 UTC in winter (CET)");
  ok(!rollout_window_open(&sp, utc_ms(2026, 1, 15, 2, 30)),
     "... closed at 02:30 UTC in winter");
  ok(rollout_window_open(&sp, utc_ms(2026, 7, 15, 0, 30)),
     "... open at 00:30 UTC in summer (CEST)");
  ok(!rollout_window_open(&sp, utc_ms(2026, 7, 15, 1, 30)),
     "... closed at 01:30 UTC in summer");
  saved = getenv("TZ");
  setenv("TZ", "America/New_York", 1);
  rollout_window_open(&sp, utc_ms(2026, 7, 15, 0, 30));
  ok(getenv("TZ") && strcmp(getenv("TZ"), "America/New_York") == 0,
     "the process's TZ is put back");
  unsetenv("TZ");
  rollout_window_open(&sp, utc_ms(2026, 7, 15, 0, 30));
  ok(!getenv("TZ"), "... and stays unset when it was");
  if (saved)
    setenv("TZ", saved, 1);
  rollout_spec_clear(&sp);

  /* The day is the zone's: sun 23:45 UTC is mon 00:45 in Berlin. */
  parse_ok("{\"packages\":[1],\"schedule\":{\"windows\":[{\"days\":"
           "[\"mon\"],\"start\":\"00:30\",\"duration\":\"1h\","
           "\"time_zone\":\"Europe/Berlin\"}]}}",
           &sp);
  ok(rollout_window_open(&sp, utc_ms(2026, 11, 22, 23, 45)),
     "Berlin mon 00:30 + 1h: open at sun 23:45 UTC");
  ok(!rollout_window_open(&sp, utc_ms(2026, 11, 23, 23, 45)),
     "... closed at mon 23:45 UTC (tue in Berlin)");
  rollout_spec_clear(&sp);
}

static void test_failures(void)
{
  static const struct {
    const char *cls;
    enum gate_class gate;
  } cases[] = {
      {"connection_lost", GATE_DOWNLOAD},
      {"no_flash", GATE_DOWNLOAD},
      {"unsupported_scheme", GATE_DOWNLOAD},
      {"integrity", GATE_INTEGRITY},
      {"unsupported_package", GATE_INTEGRITY},
      {"install_failed", GATE_INSTALL},
      {"cancelled_on_device", GATE_INSTALL},
      {"download_timeout", GATE_TIMEOUT},
      {"never_came_back", GATE_TIMEOUT},
      {"unverified", GATE_TIMEOUT},
      {"rollback", GATE_ROLLBACK},
      {"reboot_loop", GATE_ROLLBACK},
      {"stuck_updating", GATE_ROLLBACK},
      {"write_refused", GATE_OTHER},
      {"", GATE_OTHER},
  };
  struct rollout_spec sp;

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
    is_str(rollout_gate_class_names[rollout_gate_class(cases[i].cls)],
           rollout_gate_class_names[cases[i].gate], "%s counts as %s",
           cases[i].cls, rollout_gate_class_names[cases[i].gate]);
  is_int(rollout_gate_class(NULL), GATE_OTHER, "no class counts as other");

  parse_ok("{\"packages\":[1]}", &sp);
  ok(rollout_retries(&sp, "connection_lost") &&
         rollout_retries(&sp, "no_ram") &&
         rollout_retries(&sp, "download_timeout"),
     "retried by default: connection_lost, no_ram, download_timeout");
  ok(!rollout_retries(&sp, "integrity") &&
         !rollout_retries(&sp, "update_timeout") &&
         !rollout_retries(&sp, "rollback") && !rollout_retries(&sp, NULL),
     "... and nothing else");
  is_int(rollout_backoff_ms(&sp, 1), 30000, "backoff after attempt 1: 30 s");
  is_int(rollout_backoff_ms(&sp, 2), 60000, "... after 2: 60 s");
  is_int(rollout_backoff_ms(&sp, 3), 120000, "... after 3: 120 s");
  is_int(rollout_backoff_ms(&sp, 5), 480000, "... after 5: 480 s");
  is_int(rollout_backoff_ms(&sp, 6), 600000, "... after 6: capped at 600 s");
  is_int(rollout_backoff_ms(&sp, 1000000), 600000,
         "... after a million: still 600 s");
  rollout_spec_clear(&sp);

  parse_ok("{\"packages\":[1],\"retries\":{\"on\":[\"update_timeout\"],"
           "\"backoff\":\"1m\",\"backoff_max\":\"5m\"}}",
           &sp);
  ok(rollout_retries(&sp, "update_timeout") &&
         !rollout_retries(&sp, "connection_lost"),
     "retries.on replaces the defaults");
  ok(rollout_backoff_ms(&sp, 1) == 60000 &&
         rollout_backoff_ms(&sp, 2) == 120000 &&
         rollout_backoff_ms(&sp, 3) == 240000 &&
         rollout_backoff_ms(&sp, 4) == 300000,
     "backoff 1m to 5m: 60, 120, 240, 300 s");
  rollout_spec_clear(&sp);

  parse_ok("{\"packages\":[1],\"retries\":{\"backoff\":100,"
           "\"backoff_max\":10}}",
           &sp);
  ok(rollout_backoff_ms(&sp, 1) == 100000 &&
         rollout_backoff_ms(&sp, 4) == 100000,
     "a backoff_max below the backoff: the backoff every time");
  rollout_spec_clear(&sp);
}

int main(void)
{
  struct stat sb;

  have_berlin = stat(BERLIN, &sb) == 0;
  if (!have_berlin)
    printf("# no %s: time zone checks skipped\n", BERLIN);
  test_defaults();
  test_full();
  test_refusals();
  test_versions();
  test_times();
  test_rank();
  test_stage_sizes();
  test_windows();
  test_failures();
  return tap_done();
}
