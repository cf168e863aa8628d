/*
 * Staged rollouts: a release (one or more packages) applied to a set of
 * devices in cohorts, through the update jobs of jobs.c, with health
 * gates, pace, schedule, retries and verification (DESIGN.md's rollout
 * model; docs/rollouts.md tells the whole story).
 *
 * The database is the truth: every device of a started rollout has a
 * row in rollout_devices, and each change of it is stored in the same
 * transaction as the job event that caused it (a job's start, through
 * orch_job_spec.stored; its end, through the jobs' done callback). So a
 * kill -9 at any moment loses and repeats nothing: after a restart the
 * rows say which devices wait, run (their jobs resume in jobs.c) or are
 * done. A rollout's tick reads the counts, applies the gates, moves the
 * stage on and starts the next jobs within the pace and the windows.
 */
#include "orchestrator/rollout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "rollout"

/* A running rollout looks at its devices at least this often (ms), and
 * at most every TICK_MIN_MS however many jobs end. */
#define TICK_MS 1000
#define TICK_MIN_MS 100
/* Jobs started by one tick at most: the loop stays responsive. */
#define STARTS_PER_TICK 200
/* A device busy with another job is tried again after this long (ms). */
#define BUSY_RETRY_MS 30000
/* A dynamic rollout looks for new devices this often (ms). */
#define SCAN_MS 10000

enum rstate {
  RS_CREATED,
  RS_RUNNING,
  RS_PAUSED,
  RS_COMPLETED,
  RS_ABORTED,
  RS_EXPIRED
};
#define RS_COUNT (RS_EXPIRED + 1)
static const char *const rstate_names[RS_COUNT] = {
    "created", "running", "paused", "completed", "aborted", "expired"};

enum mstate {
  MS_PENDING,
  MS_WAITING,
  MS_ACTIVE,
  MS_RETRY,
  MS_SUCCEEDED,
  MS_FAILED,
  MS_SKIPPED,
  MS_CANCELLED
};
#define MS_COUNT (MS_CANCELLED + 1)
static const char *const mstate_names[MS_COUNT] = {
    "pending",   "waiting", "active",  "retry",
    "succeeded", "failed",  "skipped", "cancelled"};

struct rollout {
  struct hmap_node node;
  struct orch *orch;
  int64_t id;
  enum rstate state;
  char *reason;
  struct rollout_spec sp;
  int64_t created_at, started_at, finished_at;
  int64_t stage, stage_started_at, stage_done_at;
  int64_t gate_failures, gate_finished, gate_passed_stage;
  struct loop_timer tick;
  int64_t last_tick; /* loop time */
  int64_t next_scan; /* loop time of the next dynamic scan */
  double tokens;     /* job starts allowed now (max_starts_per_minute) */
  int64_t tokens_at; /* loop time they were counted */
  int64_t waiting;   /* members waiting for their device, last count */
  json_t *events;    /* timeline events for the next commit */
};

struct orch_rollouts {
  struct hmap by_id;
  struct loop_timer startup;
  uint64_t gate_trips;
};

/* What the counts say, per stage and in all. */
struct counts {
  int64_t st[ROLLOUT_STAGES_MAX][MS_COUNT];
  int64_t total[MS_COUNT];
  int64_t failed_by[GATE_CLASS_COUNT];
};

static int mstate_parse(const char *s)
{
  for (int i = 0; s && i < MS_COUNT; i++)
    if (strcmp(mstate_names[i], s) == 0)
      return i;
  return -1;
}

static int rstate_parse(const char *s)
{
  for (int i = 0; s && i < RS_COUNT; i++)
    if (strcmp(rstate_names[i], s) == 0)
      return i;
  return -1;
}

static bool rstate_final(enum rstate s)
{
  return s == RS_COMPLETED || s == RS_ABORTED || s == RS_EXPIRED;
}

static void set_str(char **dst, const char *s)
{
  char *n = s ? xstrdup(s) : NULL;

  free(*dst);
  *dst = n;
}

static uint64_t id_hash(int64_t id)
{
  return (uint64_t)id * 0x9e3779b97f4a7c15ULL;
}

static struct rollout *rollout_by_id(const struct orch *orch, int64_t id)
{
  uint64_t h = id_hash(id);

  if (!orch->rollouts)
    return NULL;
  for (struct hmap_node *n = hmap_first(&orch->rollouts->by_id, h); n;
       n = n->next) {
    struct rollout *r = container_of(n, struct rollout, node);

    if (n->hash == h && r->id == id)
      return r;
  }
  return NULL;
}

static void on_tick(struct loop *loop, struct loop_timer *t, void *arg);

static struct rollout *rollout_alloc(struct orch *orch, int64_t id)
{
  struct rollout *r = xcalloc(1, sizeof(*r));

  r->orch = orch;
  r->id = id;
  r->gate_passed_stage = -1;
  r->events = json_array();
  loop_timer_init(&r->tick, on_tick, r);
  hmap_insert(&orch->rollouts->by_id, &r->node, id_hash(id));
  return r;
}

static void rollout_free(struct rollout *r)
{
  loop_timer_disarm(r->orch->loop, &r->tick);
  hmap_remove(&r->orch->rollouts->by_id, &r->node);
  rollout_spec_clear(&r->sp);
  json_decref(r->events);
  free(r->reason);
  free(r);
}

/* Ticks soon, but not more often than TICK_MIN_MS. */
static void poke(struct rollout *r)
{
  struct loop *loop = r->orch->loop;
  int64_t when = r->last_tick + TICK_MIN_MS;

  if (when < loop_now(loop))
    when = loop_now(loop);
  if (!loop_timer_armed(&r->tick) || r->tick.when > when)
    loop_timer_arm_at(loop, &r->tick, when);
}

static void add_event(struct rollout *r, json_t *data)
{
  json_array_append_new(r->events, data);
}

/* Stores the rollout's row and pending events as one unit. */
static int rollout_commit(struct rollout *r)
{
  struct db *db = r->orch->db;
  int64_t at = loop_wall(r->orch->loop);
  struct db_rollout row = {
      .id = r->id,
      .state = rstate_names[r->state],
      .reason = r->reason,
      .updated_at = at,
      .started_at = r->started_at,
      .finished_at = r->finished_at,
      .stage = r->stage,
      .stage_started_at = r->stage_started_at,
      .stage_done_at = r->stage_done_at,
      .gate_failures = r->gate_failures,
      .gate_finished = r->gate_finished,
      .gate_passed_stage = r->gate_passed_stage,
  };
  size_t i;
  json_t *ev;
  int rc = db_action_begin(db);

  if (rc == 0)
    rc = db_rollout_update(db, &row);
  json_array_foreach(r->events, i, ev)
  {
    char *data;

    if (rc < 0)
      break;
    data = json_dumps(ev, JSON_COMPACT);
    rc = db_timeline_add(db, at, "rollout", 0, NULL, 0, r->id, data);
    free(data);
  }
  if (rc == 0)
    rc = db_action_end(db, true);
  if (rc < 0) {
    db_action_end(db, false);
    log_err("rollout %lld: state %s not stored", (long long)r->id,
            rstate_names[r->state]);
  }
  json_array_clear(r->events);
  return rc;
}

/*
 * The one place a rollout's state changes: logs "rollout 3: running ->
 * [paused] reason", stores it with its event.
 */
static int set_state(struct rollout *r, enum rstate to, const char *reason)
{
  enum rstate from = r->state;
  int64_t now = loop_wall(r->orch->loop);

  r->state = to;
  set_str(&r->reason, reason);
  if (to == RS_RUNNING && r->started_at == 0) {
    r->started_at = now;
    r->stage_started_at = now;
  }
  if (rstate_final(to)) {
    r->finished_at = now;
    /* Out of memory at its next tick, which stops here. */
    loop_timer_arm(r->orch->loop, &r->tick, 0);
  }
  add_event(r, json_pack("{s:s, s:s, s:s, s:s?}", "event", "state", "from",
                         rstate_names[from], "to", rstate_names[to], "reason",
                         reason));
  log_notice("rollout %lld: %s -> [%s]%s%s", (long long)r->id,
             rstate_names[from], rstate_names[to], reason ? ": " : "",
             reason ? reason : "");
  return rollout_commit(r);
}

/* Counting. */

static void got_count(void *arg, int64_t stage, const char *state,
                      const char *gate_class, int64_t count)
{
  struct counts *c = arg;
  int s = mstate_parse(state);

  if (s < 0)
    return;
  if (stage >= ROLLOUT_STAGES_MAX)
    stage = ROLLOUT_STAGES_MAX - 1;
  c->st[stage][s] += count;
  c->total[s] += count;
  if (s == MS_FAILED) {
    for (int k = 0; k < GATE_CLASS_COUNT; k++)
      if (gate_class && strcmp(rollout_gate_class_names[k], gate_class) == 0)
        c->failed_by[k] += count;
  }
}

static int count_members(struct orch *orch, int64_t id, struct counts *c)
{
  memset(c, 0, sizeof(*c));
  return db_member_counts(orch->db, id, got_count, c);
}

static int64_t counted_failures(const struct rollout_spec *sp,
                                const struct counts *c)
{
  int64_t n = 0;

  for (int k = 0; k < GATE_CLASS_COUNT; k++)
    if (sp->fail_classes & (1u << k))
      n += c->failed_by[k];
  return n;
}

/* Members of stages 0..stage that have not ended. */
static int64_t unfinished_upto(const struct counts *c, int64_t stage)
{
  int64_t n = 0;

  for (int64_t s = 0; s <= stage && s < ROLLOUT_STAGES_MAX; s++)
    n += c->st[s][MS_PENDING] + c->st[s][MS_ACTIVE] + c->st[s][MS_RETRY];
  return n;
}

/* Membership: who a spec targets, who is skipped, in which cohort. */

struct pkg_info {
  int64_t id;
  char *component, *version, *mcuboot;
  bool forced;
  bool found;
};

static void got_pkg(void *arg, const struct db_job_package *p)
{
  struct pkg_info *k = arg;

  k->found = true;
  k->id = p->id;
  set_str(&k->component, p->component);
  set_str(&k->version, p->version);
  set_str(&k->mcuboot, p->mcuboot);
  k->forced = p->forced;
}

static void pkgs_clear(struct pkg_info *pk, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(pk[i].component);
    free(pk[i].version);
    free(pk[i].mcuboot);
  }
}

/* Loads the spec's packages and checks them; -ENOENT, -EPERM, -EINVAL. */
static int load_pkgs(struct orch *orch, const struct rollout_spec *sp,
                     struct pkg_info *pk, char *err, size_t errlen)
{
  for (size_t i = 0; i < sp->npackages; i++) {
    int rc = db_job_package_get(orch->db, sp->packages[i], got_pkg, &pk[i]);

    if (rc < 0 || !pk[i].found) {
      snprintf(err, errlen, "packages: no package %lld",
               (long long)sp->packages[i]);
      return rc == -ENOENT || rc == 0 ? -ENOENT : -EIO;
    }
    if (!sp->force && !pk[i].forced && pk[i].mcuboot &&
        strcmp(pk[i].mcuboot, "invalid") == 0) {
      snprintf(err, errlen,
               "package %lld (%s %s) is an MCUboot image that failed "
               "verification; it may only be rolled out with force",
               (long long)pk[i].id, pk[i].component, pk[i].version);
      return -EPERM;
    }
    for (size_t k = 0; k < i; k++)
      if (strcmp(pk[k].component, pk[i].component) == 0) {
        snprintf(err, errlen,
                 "packages %lld and %lld are both for component "
                 "'%s'",
                 (long long)pk[k].id, (long long)pk[i].id, pk[i].component);
        return -EINVAL;
      }
  }
  return 0;
}

#define DEV_COMPS_MAX 64

struct dev_comp {
  int oid;
  char *name, *version;
};

struct plan_member {
  int64_t device_id;
  char *ep;
  uint64_t rank;
  bool canary;
  const char *skip; /* NULL: eligible */
  int64_t stage;
};

struct plan {
  const struct rollout_spec *sp;
  const struct pkg_info *pk;
  /* The device being gathered from candidate rows. */
  int64_t dev_id;
  char *dev_ep;
  struct dev_comp comps[DEV_COMPS_MAX];
  size_t ncomps;
  /* The result. */
  struct plan_member *m;
  size_t n, cap, eligible, canaries;
  size_t sizes[ROLLOUT_STAGES_MAX];
};

/* The component a package (or a filter) names on a device: the 33629
 * instance of that Component Name, else /5/0 (as jobs.c matches). */
static const struct dev_comp *find_comp(const struct dev_comp *comps, size_t n,
                                        const char *name)
{
  const struct dev_comp *fw = NULL;

  for (size_t i = 0; i < n; i++) {
    if (comps[i].oid == 33629 && comps[i].name &&
        strcmp(comps[i].name, name) == 0)
      return &comps[i];
    if (comps[i].oid == 5)
      fw = &comps[i];
  }
  return fw;
}

static void dev_comps_clear(struct dev_comp *comps, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(comps[i].name);
    free(comps[i].version);
  }
}

static bool is_canary(const struct rollout_spec *sp, const char *ep)
{
  size_t i;
  json_t *v;

  json_array_foreach(sp->canaries, i, v)
  {
    if (strcmp(json_string_value(v), ep) == 0)
      return true;
  }
  return false;
}

/* Decides the gathered device. */
static void plan_flush(struct plan *p)
{
  const struct rollout_spec *sp = p->sp;
  const char *skip = NULL;
  size_t current = 0;

  if (p->dev_id == 0)
    return;
  for (size_t i = 0; i < sp->nfilters; i++) {
    const struct dev_comp *c =
        find_comp(p->comps, p->ncomps, sp->filters[i].component);

    if (!c || !rollout_filter_match(&sp->filters[i], c->version))
      goto done; /* not a target */
  }
  for (size_t i = 0; i < sp->npackages; i++) {
    const struct dev_comp *c =
        find_comp(p->comps, p->ncomps, p->pk[i].component);

    if (!c) {
      skip = "no_component";
      break;
    }
    if (c->version && rollout_version_cmp(c->version, p->pk[i].version) == 0)
      current++;
  }
  if (!skip && current == sp->npackages && !sp->force)
    skip = "up_to_date";
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 256;
    p->m = xrealloc(p->m, p->cap * sizeof(*p->m));
  }
  p->m[p->n] = (struct plan_member){
      .device_id = p->dev_id,
      .ep = xstrdup(p->dev_ep),
      .rank = rollout_rank(sp->seed, p->dev_ep),
      .canary = is_canary(sp, p->dev_ep),
      .skip = skip,
  };
  if (!skip) {
    p->eligible++;
    p->canaries += p->m[p->n].canary;
  }
  p->n++;
done:
  dev_comps_clear(p->comps, p->ncomps);
  p->ncomps = 0;
  free(p->dev_ep);
  p->dev_ep = NULL;
  p->dev_id = 0;
}

static void got_candidate(void *arg, const struct db_candidate *c)
{
  struct plan *p = arg;

  if (c->device_id != p->dev_id) {
    plan_flush(p);
    p->dev_id = c->device_id;
    p->dev_ep = xstrdup(c->endpoint);
  }
  if (c->oid != 0 && p->ncomps < DEV_COMPS_MAX) {
    p->comps[p->ncomps].oid = c->oid;
    p->comps[p->ncomps].name = c->name ? xstrdup(c->name) : NULL;
    p->comps[p->ncomps].version = c->version ? xstrdup(c->version) : NULL;
    p->ncomps++;
  }
}

/* Eligible first, canaries first among them, then by rank. */
static int plan_cmp(const void *a, const void *b)
{
  const struct plan_member *x = a, *y = b;

  if ((x->skip == NULL) != (y->skip == NULL))
    return x->skip == NULL ? -1 : 1;
  if (x->canary != y->canary)
    return x->canary ? -1 : 1;
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  return strcmp(x->ep, y->ep);
}

static void plan_free(struct plan *p)
{
  plan_flush(p);
  for (size_t i = 0; i < p->n; i++)
    free(p->m[i].ep);
  free(p->m);
}

/*
 * Finds the members of a spec among the devices (those of rollout
 * not_in excluded: a dynamic rollout's new devices) and places them in
 * cohorts. Members of a fresh plan fill every stage; with join_stage >=
 * 0 every eligible device goes to that stage.
 */
static int plan_build(struct orch *orch, const struct rollout_spec *sp,
                      const struct pkg_info *pk, int64_t not_in,
                      int64_t join_stage, struct plan *p)
{
  char *eps = NULL, *tags = NULL;
  int rc;

  memset(p, 0, sizeof(*p));
  p->sp = sp;
  p->pk = pk;
  if (sp->endpoints || sp->tags) {
    /* Canaries are targets too. */
    json_t *all = json_array();

    if (sp->endpoints)
      json_array_extend(all, sp->endpoints);
    if (sp->canaries)
      json_array_extend(all, sp->canaries);
    eps = json_dumps(all, JSON_COMPACT);
    json_decref(all);
  }
  if (sp->tags)
    tags = json_dumps(sp->tags, JSON_COMPACT);
  rc = db_rollout_candidates(orch->db, eps, tags, not_in, got_candidate, p);
  plan_flush(p);
  free(eps);
  free(tags);
  if (rc < 0)
    return rc;
  if (p->n > 1)
    qsort(p->m, p->n, sizeof(*p->m), plan_cmp);
  rollout_stage_sizes(sp, p->eligible, p->canaries, p->sizes);
  for (size_t i = 0, s = 0; i < p->n; i++) {
    if (p->m[i].skip) {
      p->m[i].stage = 0;
      continue;
    }
    while (s + 1 < sp->nstages && i >= p->sizes[s])
      s++;
    p->m[i].stage = join_stage >= 0 ? join_stage : (int64_t)s;
  }
  return 0;
}

static json_t *plan_json(const struct plan *p, const struct rollout_spec *sp)
{
  json_t *stages = json_array(), *skipped = json_array();
  json_t *by_reason = json_object();
  size_t prev = 0;

  for (size_t s = 0; s < sp->nstages; s++) {
    json_t *devs = json_array();

    for (size_t i = 0; i < p->n; i++)
      if (!p->m[i].skip && p->m[i].stage == (int64_t)s)
        json_array_append_new(devs, json_string(p->m[i].ep));
    json_array_append_new(
        stages,
        json_pack("{s:I, s:O, s:I, s:I, s:o}", "stage", (json_int_t)s + 1,
                  "of", json_array_get(json_object_get(sp->norm, "stages"), s),
                  "cumulative", (json_int_t)p->sizes[s], "size",
                  (json_int_t)(p->sizes[s] - prev), "devices", devs));
    prev = p->sizes[s];
  }
  for (size_t i = 0; i < p->n; i++) {
    if (!p->m[i].skip)
      continue;
    json_array_append_new(skipped,
                          json_pack("{s:s, s:s}", "endpoint", p->m[i].ep,
                                    "reason", p->m[i].skip));
    json_object_set_new(
        by_reason, p->m[i].skip,
        json_integer(
            json_integer_value(json_object_get(by_reason, p->m[i].skip)) + 1));
  }
  return json_pack("{s:I, s:I, s:I, s:o, s:o, s:o}", "seed",
                   (json_int_t)sp->seed, "members", (json_int_t)p->eligible,
                   "skipped", (json_int_t)(p->n - p->eligible), "skipped_by",
                   by_reason, "stages", stages, "skipped_devices", skipped);
}

/* Stores a plan's members (in the caller's unit). */
static int plan_store(struct orch *orch, int64_t rollout_id,
                      const struct plan *p, bool with_skipped)
{
  int64_t at = loop_wall(orch->loop);
  int rc = 0;

  for (size_t i = 0; rc == 0 && i < p->n; i++) {
    struct db_member m = {
        .rollout_id = rollout_id,
        .device_id = p->m[i].device_id,
        .stage = p->m[i].stage,
        .rank = (int64_t)p->m[i].rank,
        .state = p->m[i].skip ? "skipped" : "pending",
        .reason = p->m[i].skip,
        .updated_at = at,
    };

    if (p->m[i].skip && !with_skipped)
      continue;
    rc = db_member_add(orch->db, &m);
  }
  return rc;
}

/* Starting jobs. */

struct member_copy {
  int64_t rollout_id, device_id, stage, attempts, job_id;
  char *ep, *state;
};

static void got_member(void *arg, const struct db_member *m)
{
  struct member_copy *c = arg;

  c->rollout_id = m->rollout_id;
  c->device_id = m->device_id;
  c->stage = m->stage;
  c->attempts = m->attempts;
  c->job_id = m->job_id;
  set_str(&c->ep, m->endpoint);
  set_str(&c->state, m->state);
}

static void member_copy_clear(struct member_copy *c)
{
  free(c->ep);
  free(c->state);
}

/* Stores a member's new state (in the caller's unit, or its own). */
static int member_set(struct orch *orch, const struct member_copy *c,
                      enum mstate to, int64_t attempts, int64_t job_id,
                      int64_t next_at, const char *cls, const char *reason)
{
  struct db_member m = {
      .rollout_id = c->rollout_id,
      .device_id = c->device_id,
      .state = mstate_names[to],
      .attempts = attempts,
      .job_id = job_id,
      .next_at = next_at,
      .failure_class = cls,
      .gate_class = to == MS_FAILED
                        ? rollout_gate_class_names[rollout_gate_class(cls)]
                        : NULL,
      .reason = reason,
      .updated_at = loop_wall(orch->loop),
  };

  return db_member_update(orch->db, &m);
}

struct start_ctx {
  struct orch *orch;
  const struct member_copy *m;
};

/* Inside the transaction that stores the new job. */
static int member_started(void *arg, int64_t job_id)
{
  struct start_ctx *sc = arg;

  return member_set(sc->orch, sc->m, MS_ACTIVE, sc->m->attempts + 1, job_id, 0,
                    NULL, NULL);
}

struct comp_list {
  struct dev_comp c[DEV_COMPS_MAX];
  size_t n;
};

static void got_comp(void *arg, const struct db_component *c)
{
  struct comp_list *l = arg;

  if (l->n == DEV_COMPS_MAX)
    return;
  l->c[l->n].oid = c->oid;
  l->c[l->n].name = c->name ? xstrdup(c->name) : NULL;
  l->c[l->n].version = c->current_version ? xstrdup(c->current_version) : NULL;
  l->n++;
}

/* The packages of the release that the device still needs. */
static size_t needed_packages(struct rollout *r, const struct pkg_info *pk,
                              int64_t device_id, int64_t *out)
{
  struct comp_list *l = xcalloc(1, sizeof(*l));
  size_t n = 0;

  db_components_of_device(r->orch->db, device_id, got_comp, l);
  for (size_t i = 0; i < r->sp.npackages; i++) {
    const struct dev_comp *c = find_comp(l->c, l->n, pk[i].component);

    if (r->sp.force || !c || !c->version ||
        rollout_version_cmp(c->version, pk[i].version) != 0)
      out[n++] = pk[i].id;
  }
  dev_comps_clear(l->c, l->n);
  free(l);
  return n;
}

/* Starts m's next job; returns whether one started. */
static bool start_member(struct rollout *r, const struct pkg_info *pk,
                         const struct member_copy *m)
{
  struct orch *orch = r->orch;
  int64_t now = loop_wall(orch->loop);
  int64_t pkgs[ROLLOUT_PACKAGES_MAX];
  struct srv_reg_info ri;
  struct start_ctx sc = {.orch = orch, .m = m};
  struct orch_job_spec spec = {
      .ep = m->ep,
      .packages = pkgs,
      .force = r->sp.force,
      .rollout_id = r->id,
      .attempt = m->attempts,
      .limits = r->sp.limits,
      .stored = member_started,
      .stored_arg = &sc,
  };
  char err[300];
  int64_t job_id;
  int rc;

  if (srv_reg_info(orch->srv, m->ep, &ri) < 0) {
    member_set(orch, m, MS_WAITING, m->attempts, m->job_id, 0, NULL,
               "the device is not registered");
    return false;
  }
  spec.npackages = needed_packages(r, pk, m->device_id, pkgs);
  if (spec.npackages == 0) {
    member_set(orch, m, MS_SKIPPED, m->attempts, m->job_id, 0, NULL,
               "up_to_date");
    return false;
  }
  rc = orch_job_start(orch, &spec, &job_id, err, sizeof(err));
  switch (rc) {
  case 0:
    return true;
  case -EEXIST:
  case -EBUSY:
  case -EIO:
    member_set(orch, m, MS_RETRY, m->attempts, m->job_id, now + BUSY_RETRY_MS,
               NULL, err);
    break;
  case -ENODEV:
  case -ENXIO:
    member_set(orch, m, MS_SKIPPED, m->attempts, m->job_id, 0, NULL, err);
    break;
  default:
    member_set(orch, m, MS_FAILED, m->attempts, m->job_id, 0, "not_updatable",
               err);
    break;
  }
  log_info("rollout %lld: %s not started: %s", (long long)r->id, m->ep, err);
  return false;
}

struct next_ctx {
  struct member_copy m[2 * STARTS_PER_TICK];
  size_t n;
};

static void got_next(void *arg, const struct db_member *m)
{
  struct next_ctx *nc = arg;

  if (nc->n < ARRAY_SIZE(nc->m))
    got_member(&nc->m[nc->n++], m);
}

/* Starts up to n jobs of stages up to r->stage; returns how many. */
static size_t start_jobs(struct rollout *r, size_t n)
{
  struct orch *orch = r->orch;
  struct pkg_info pk[ROLLOUT_PACKAGES_MAX] = {{0}};
  struct next_ctx *nc;
  size_t started = 0;
  char err[300];

  if (n == 0)
    return 0;
  if (n > STARTS_PER_TICK)
    n = STARTS_PER_TICK;
  if (load_pkgs(orch, &r->sp, pk, err, sizeof(err)) < 0) {
    pkgs_clear(pk, r->sp.npackages);
    set_state(r, RS_PAUSED, err);
    return 0;
  }
  nc = xcalloc(1, sizeof(*nc));
  if (db_members_next(orch->db, r->id, r->stage, loop_wall(orch->loop), (int)n,
                      got_next, nc) == 0) {
    /* One unit for the batch: one commit, not one per device. */
    db_action_begin(orch->db);
    for (size_t i = 0; i < nc->n && started < n; i++)
      started += start_member(r, pk, &nc->m[i]);
    db_action_end(orch->db, true);
  }
  for (size_t i = 0; i < nc->n; i++)
    member_copy_clear(&nc->m[i]);
  free(nc);
  pkgs_clear(pk, r->sp.npackages);
  return started;
}

/* The dynamic scan: devices that match now join the stage in progress. */
static void scan_new(struct rollout *r)
{
  struct orch *orch = r->orch;
  struct pkg_info pk[ROLLOUT_PACKAGES_MAX] = {{0}};
  struct plan p;
  size_t joined;
  char err[300];

  if (load_pkgs(orch, &r->sp, pk, err, sizeof(err)) < 0 ||
      plan_build(orch, &r->sp, pk, r->id, r->stage, &p) < 0) {
    pkgs_clear(pk, r->sp.npackages);
    return;
  }
  joined = p.eligible;
  if (joined > 0) {
    db_action_begin(orch->db);
    if (plan_store(orch, r->id, &p, false) == 0) {
      add_event(r, json_pack("{s:s, s:I, s:I}", "event", "joined", "devices",
                             (json_int_t)joined, "stage",
                             (json_int_t)r->stage + 1));
      rollout_commit(r);
      db_action_end(orch->db, true);
      log_info("rollout %lld: %zu new device%s joined stage %lld",
               (long long)r->id, joined, joined > 1 ? "s" : "",
               (long long)r->stage + 1);
    } else {
      db_action_end(orch->db, false);
    }
  }
  plan_free(&p);
  pkgs_clear(pk, r->sp.npackages);
}

static void abort_members(struct rollout *r);

/* The gates. */

static void finish(struct rollout *r, enum rstate to, const char *reason,
                   const char *leftover);

/* A gate stops the rollout: it pauses, or aborts (cancelling what can
 * be cancelled). */
static void trip(struct rollout *r, const char *why, bool abort)
{
  r->orch->rollouts->gate_trips++;
  add_event(r, json_pack("{s:s, s:s}", "event", "gate", "reason", why));
  if (abort) {
    abort_members(r);
    finish(r, RS_ABORTED, why, "aborted");
  } else {
    set_state(r, RS_PAUSED, why);
  }
}

/* The failure gate; true when it tripped. */
static bool failure_gate(struct rollout *r, const struct counts *c)
{
  const struct rollout_spec *sp = &r->sp;
  int64_t failed = counted_failures(sp, c) - r->gate_failures;
  int64_t finished =
      c->total[MS_SUCCEEDED] + c->total[MS_FAILED] - r->gate_finished;
  char why[200];

  if (sp->fail_count > 0 && failed >= sp->fail_count) {
    snprintf(why, sizeof(why), "failure gate: %lld failures (limit %lld)",
             (long long)failed, (long long)sp->fail_count);
  } else if (sp->fail_ratio > 0 && finished >= sp->min_sample &&
             (double)failed >= sp->fail_ratio * (double)finished &&
             failed > 0) {
    snprintf(why, sizeof(why),
             "failure gate: %lld of %lld finished devices failed (%.2f, "
             "limit %.2f)",
             (long long)failed, (long long)finished,
             (double)failed / (double)finished, sp->fail_ratio);
  } else {
    return false;
  }
  trip(r, why, sp->fail_abort);
  return true;
}

static double success_ratio(const struct counts *c, int64_t stage)
{
  int64_t ok = 0, bad = 0;

  for (int64_t s = 0; s <= stage && s < ROLLOUT_STAGES_MAX; s++) {
    ok += c->st[s][MS_SUCCEEDED];
    bad += c->st[s][MS_FAILED];
  }
  return ok + bad > 0 ? (double)ok / (double)(ok + bad) : 1.0;
}

/* The tick. */

static void finish(struct rollout *r, enum rstate to, const char *reason,
                   const char *leftover)
{
  struct orch *orch = r->orch;
  int64_t at = loop_wall(orch->loop);
  static const char *const open_states[] = {"pending", "waiting", "retry"};

  db_action_begin(orch->db);
  for (size_t i = 0; i < ARRAY_SIZE(open_states); i++)
    db_members_set_state(orch->db, r->id, 0, open_states[i],
                         to == RS_ABORTED ? "cancelled" : "skipped", leftover,
                         at, NULL);
  set_state(r, to, reason);
  db_action_end(orch->db, true);
}

static void tick(struct rollout *r)
{
  struct orch *orch = r->orch;
  const struct rollout_spec *sp = &r->sp;
  int64_t now = loop_wall(orch->loop), mono = loop_now(orch->loop);
  int64_t last = (int64_t)sp->nstages - 1;
  struct counts c;
  size_t slots;
  char why[200];

  r->last_tick = mono;
  if (r->state != RS_RUNNING)
    return;
  if (count_members(orch, r->id, &c) < 0)
    return;
  r->waiting = c.total[MS_WAITING];
  if (failure_gate(r, &c))
    return;
  if (sp->end_at && now >= sp->end_at) {
    if (c.total[MS_ACTIVE] == 0)
      finish(r, RS_EXPIRED, "the end time passed", "rollout_expired");
    return;
  }
  /* The stage in progress: done when nothing of it is left to run. */
  if (unfinished_upto(&c, r->stage) == 0) {
    double ratio = success_ratio(&c, r->stage);

    if (r->stage_done_at == 0) {
      r->stage_done_at = now;
      add_event(r,
                json_pack("{s:s, s:I, s:f}", "event", "stage_done", "stage",
                          (json_int_t)r->stage + 1, "success_ratio", ratio));
      log_info("rollout %lld: stage %lld done (success ratio %.3f)",
               (long long)r->id, (long long)r->stage + 1, ratio);
      rollout_commit(r);
    }
    if (ratio < sp->success_ratio && r->gate_passed_stage < r->stage) {
      snprintf(why, sizeof(why),
               "success gate: stage %lld ended with a success ratio of %.3f, "
               "below %.3f",
               (long long)r->stage + 1, ratio, sp->success_ratio);
      trip(r, why, false);
      return;
    }
    if (r->stage == last) {
      if (!sp->dynamic) {
        finish(r, RS_COMPLETED, NULL, "offline");
        return;
      }
    } else if (now < r->stage_done_at + sp->soak_s * 1000) {
      loop_timer_arm(orch->loop, &r->tick,
                     r->stage_done_at + sp->soak_s * 1000 - now);
      return;
    } else {
      r->stage++;
      r->stage_started_at = now;
      r->stage_done_at = 0;
      add_event(r, json_pack("{s:s, s:I}", "event", "stage_started", "stage",
                             (json_int_t)r->stage + 1));
      log_notice("rollout %lld: stage %lld of %zu starts", (long long)r->id,
                 (long long)r->stage + 1, sp->nstages);
      rollout_commit(r);
    }
  }
  if (sp->dynamic && mono >= r->next_scan) {
    r->next_scan = mono + SCAN_MS;
    scan_new(r);
  }
  if ((sp->start_at && now < sp->start_at) || !rollout_window_open(sp, now))
    return;
  /* Pace: concurrency, and a bucket of starts per minute. */
  slots = c.total[MS_ACTIVE] < sp->max_concurrent
              ? (size_t)(sp->max_concurrent - c.total[MS_ACTIVE])
              : 0;
  if (sp->max_per_minute > 0) {
    r->tokens +=
        (double)(mono - r->tokens_at) * (double)sp->max_per_minute / 60000.0;
    if (r->tokens > (double)sp->max_per_minute)
      r->tokens = (double)sp->max_per_minute;
    r->tokens_at = mono;
    if ((double)slots > r->tokens)
      slots = (size_t)r->tokens;
  }
  if (slots > 0 && c.total[MS_PENDING] + c.total[MS_RETRY] > 0) {
    size_t n = start_jobs(r, slots);

    r->tokens -= (double)n;
    if (n == STARTS_PER_TICK)
      poke(r);
  }
}

static void on_tick(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct rollout *r = arg;

  tick(r);
  if (r->state == RS_RUNNING && !loop_timer_armed(&r->tick))
    loop_timer_arm(loop, &r->tick, TICK_MS);
  else if (rstate_final(r->state))
    rollout_free(r);
}

/* Cancels the jobs under way where the devices' state allows; the
 * outcomes come back through on_job_done(). */
struct active_ctx {
  int64_t *jobs;
  size_t n, cap;
  int64_t last;
};

static void got_active(void *arg, const struct db_member *m)
{
  struct active_ctx *ac = arg;

  if (ac->n == ac->cap) {
    ac->cap = ac->cap ? ac->cap * 2 : 64;
    ac->jobs = xrealloc(ac->jobs, ac->cap * sizeof(*ac->jobs));
  }
  if (m->job_id > 0)
    ac->jobs[ac->n++] = m->job_id;
  ac->last = m->device_id;
}

static void abort_members(struct rollout *r)
{
  struct orch *orch = r->orch;
  struct active_ctx ac = {0};
  size_t before;
  char err[300];

  do {
    before = ac.n;
    if (db_members_list(orch->db, r->id, "active", -1, ac.last, 500,
                        got_active, &ac) < 0)
      break;
  } while (ac.n > before);
  for (size_t i = 0; i < ac.n; i++)
    if (orch_job_cancel(orch, ac.jobs[i], NULL, err, sizeof(err)) < 0)
      log_info("rollout %lld: job %lld goes on: %s", (long long)r->id,
               (long long)ac.jobs[i], err);
  free(ac.jobs);
}

/* Job outcomes, inside the transaction that stores the job's end. */
static void on_job_done(void *arg, const struct orch_job_outcome *o)
{
  struct orch *orch = arg;
  struct member_copy m = {0};
  struct rollout *r;
  int64_t now = loop_wall(orch->loop);
  char why[200];

  if (o->rollout_id <= 0 ||
      db_member_get(orch->db, o->rollout_id, o->device_id, got_member, &m) < 0)
    return;
  if (m.job_id != o->job_id)
    goto out;
  r = rollout_by_id(orch, o->rollout_id);
  switch (o->state) {
  case JOB_SUCCEEDED:
    member_set(orch, &m, MS_SUCCEEDED, m.attempts, o->job_id, 0, NULL, NULL);
    break;
  case JOB_CANCELLED:
    member_set(orch, &m, MS_CANCELLED, m.attempts, o->job_id, 0, NULL,
               "the job was cancelled");
    break;
  default:
    if (r && !rstate_final(r->state) &&
        rollout_retries(&r->sp, o->failure_class) &&
        m.attempts <= r->sp.retry_max) {
      int64_t wait = rollout_backoff_ms(&r->sp, m.attempts);

      snprintf(why, sizeof(why), "retry %lld of %lld in %llds after %s",
               (long long)m.attempts, (long long)r->sp.retry_max,
               (long long)(wait / 1000), o->failure_class);
      member_set(orch, &m, MS_RETRY, m.attempts, o->job_id, now + wait,
                 o->failure_class, why);
    } else {
      member_set(orch, &m, MS_FAILED, m.attempts, o->job_id, 0,
                 o->failure_class ? o->failure_class : "failed", NULL);
    }
    break;
  }
  if (r && r->state == RS_RUNNING)
    poke(r);
out:
  member_copy_clear(&m);
}

/* Devices coming back. */

static void wake(struct orch *orch, int64_t device_id)
{
  struct orch_rollouts *rs = orch->rollouts;
  bool any = false;
  int changed = 0;

  for (size_t i = 0; i < rs->by_id.nbuckets && !any; i++)
    for (struct hmap_node *n = rs->by_id.buckets[i]; n && !any; n = n->next)
      any = container_of(n, struct rollout, node)->waiting != 0;
  if (!any)
    return;
  db_members_set_state(orch->db, 0, device_id, "waiting", "pending", NULL,
                       loop_wall(orch->loop), &changed);
  if (changed == 0)
    return;
  for (size_t i = 0; i < rs->by_id.nbuckets; i++)
    for (struct hmap_node *n = rs->by_id.buckets[i]; n; n = n->next) {
      struct rollout *r = container_of(n, struct rollout, node);

      if (r->state == RS_RUNNING)
        poke(r);
    }
}

static void on_registered(void *arg, const char *ep, bool replaced,
                          int64_t device_id,
                          const struct db_object_link *links, size_t n)
{
  wake(arg, device_id);
}

static void on_updated(void *arg, const char *ep, int64_t device_id,
                       const struct db_object_link *links, size_t n)
{
  wake(arg, device_id);
}

const struct srv_events orch_rollout_events = {
    .registered = on_registered,
    .updated = on_updated,
};

/* Loading. */

static struct rollout *rollout_load(struct orch *orch,
                                    const struct db_rollout *row, char *err,
                                    size_t errlen)
{
  json_t *spec = json_loads(row->spec, 0, NULL);
  struct rollout *r;
  int rs = rstate_parse(row->state);

  if (!spec || rs < 0) {
    json_decref(spec);
    snprintf(err, errlen, "rollout %lld: unreadable spec or state",
             (long long)row->id);
    return NULL;
  }
  r = rollout_alloc(orch, row->id);
  if (rollout_spec_parse(spec, &r->sp, err, errlen) < 0) {
    json_decref(spec);
    rollout_free(r);
    return NULL;
  }
  json_decref(spec);
  r->state = (enum rstate)rs;
  r->reason = row->reason ? xstrdup(row->reason) : NULL;
  r->created_at = row->created_at;
  r->started_at = row->started_at;
  r->finished_at = row->finished_at;
  r->stage = row->stage;
  r->stage_started_at = row->stage_started_at;
  r->stage_done_at = row->stage_done_at;
  r->gate_failures = row->gate_failures;
  r->gate_finished = row->gate_finished;
  r->gate_passed_stage = row->gate_passed_stage;
  r->waiting = -1; /* unknown until the first tick */
  r->tokens_at = loop_now(orch->loop);
  r->tokens = (double)r->sp.max_per_minute / 60.0;
  return r;
}

struct load_ctx {
  struct orch *orch;
  int loaded;
};

static void got_live(void *arg, const struct db_rollout *row)
{
  struct load_ctx *lc = arg;
  char err[300];
  struct rollout *r = rollout_load(lc->orch, row, err, sizeof(err));

  if (!r) {
    log_err("%s; it stays as it is", err);
    return;
  }
  lc->loaded++;
  loop_timer_arm(lc->orch->loop, &r->tick, 0);
}

int orch_rollouts_init(struct orch *orch, char *err, size_t errlen)
{
  struct orch_rollouts *rs = xcalloc(1, sizeof(*rs));
  struct load_ctx lc = {.orch = orch};

  orch->rollouts = rs;
  hmap_init(&rs->by_id);
  orch_jobs_set_done_cb(orch, on_job_done, orch);
  if (db_rollouts_live(orch->db, got_live, &lc) < 0) {
    snprintf(err, errlen, "cannot load the rollouts");
    return -EIO;
  }
  if (lc.loaded > 0)
    log_info("%d rollout%s resumed", lc.loaded, lc.loaded > 1 ? "s" : "");
  return 0;
}

void orch_rollouts_free(struct orch *orch)
{
  struct orch_rollouts *rs = orch->rollouts;

  if (!rs)
    return;
  for (size_t i = 0; i < rs->by_id.nbuckets; i++) {
    struct hmap_node *n = rs->by_id.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;

      rollout_free(container_of(n, struct rollout, node));
      n = next;
    }
  }
  hmap_destroy(&rs->by_id);
  free(rs);
  orch->rollouts = NULL;
}

uint64_t orch_rollout_gate_trips(const struct orch *orch)
{
  return orch->rollouts ? orch->rollouts->gate_trips : 0;
}

/* The operator's side. */

json_t *orch_rollout_dry_run(struct orch *orch, json_t *body, int *rc,
                             char *err, size_t errlen)
{
  struct rollout_spec sp;
  struct pkg_info pk[ROLLOUT_PACKAGES_MAX] = {{0}};
  struct plan p;
  json_t *out = NULL;

  *rc = rollout_spec_parse(body, &sp, err, errlen);
  if (*rc < 0)
    return NULL;
  *rc = load_pkgs(orch, &sp, pk, err, errlen);
  if (*rc == 0) {
    *rc = plan_build(orch, &sp, pk, 0, -1, &p);
    if (*rc == 0) {
      out = plan_json(&p, &sp);
      json_object_set(out, "spec", sp.norm);
    } else {
      snprintf(err, errlen, "cannot read the devices");
    }
    plan_free(&p);
  }
  pkgs_clear(pk, sp.npackages);
  rollout_spec_clear(&sp);
  return out;
}

int orch_rollout_create(struct orch *orch, json_t *body,
                        const struct db_audit *audit, int64_t *id, char *err,
                        size_t errlen)
{
  struct rollout_spec sp;
  struct pkg_info pk[ROLLOUT_PACKAGES_MAX] = {{0}};
  struct db_rollout row = {0};
  char *spec;
  int rc = rollout_spec_parse(body, &sp, err, errlen);

  if (rc < 0)
    return rc;
  rc = load_pkgs(orch, &sp, pk, err, errlen);
  if (rc < 0)
    goto out;
  spec = json_dumps(sp.norm, JSON_COMPACT);
  row.name = json_string_value(json_object_get(sp.norm, "name"));
  row.state = rstate_names[RS_CREATED];
  row.spec = spec;
  row.created_at = loop_wall(orch->loop);
  rc = db_action_begin(orch->db);
  if (rc == 0)
    rc = db_rollout_add(orch->db, &row);
  for (size_t i = 0; rc == 0 && i < sp.npackages; i++)
    rc = db_rollout_package_add(orch->db, row.id, sp.packages[i]);
  if (rc == 0) {
    json_t *ev = json_pack("{s:s, s:s}", "event", "state", "to", "created");
    char *data = json_dumps(ev, JSON_COMPACT);

    json_decref(ev);
    rc = db_timeline_add(orch->db, row.created_at, "rollout", 0, NULL, 0,
                         row.id, data);
    free(data);
  }
  if (rc == 0)
    rc = orch_audit(orch, audit, "rollout.create", "rollouts", row.id,
                    json_incref(sp.norm));
  if (rc == 0)
    rc = db_action_end(orch->db, true);
  if (rc < 0) {
    db_action_end(orch->db, false);
    snprintf(err, errlen, "cannot store the rollout");
    rc = -EIO;
  } else {
    *id = row.id;
    log_notice("rollout %lld: created (%zu package%s, %zu stage%s)",
               (long long)row.id, sp.npackages, sp.npackages > 1 ? "s" : "",
               sp.nstages, sp.nstages > 1 ? "s" : "");
  }
  free(spec);
out:
  pkgs_clear(pk, sp.npackages);
  rollout_spec_clear(&sp);
  return rc;
}

struct row_copy {
  bool found;
  struct db_rollout r;
  char *name, *state, *spec, *reason;
};

static void got_row(void *arg, const struct db_rollout *r)
{
  struct row_copy *c = arg;

  c->found = true;
  c->r = *r;
  c->name = r->name ? xstrdup(r->name) : NULL;
  c->state = xstrdup(r->state);
  c->spec = xstrdup(r->spec);
  c->reason = r->reason ? xstrdup(r->reason) : NULL;
  c->r.name = c->name;
  c->r.state = c->state;
  c->r.spec = c->spec;
  c->r.reason = c->reason;
}

static void row_copy_clear(struct row_copy *c)
{
  free(c->name);
  free(c->state);
  free(c->spec);
  free(c->reason);
}

/* created -> running: the members are chosen and stored now. */
static int start(struct orch *orch, const struct db_rollout *row,
                 const struct db_audit *audit, char *err, size_t errlen)
{
  struct pkg_info pk[ROLLOUT_PACKAGES_MAX] = {{0}};
  struct rollout *r = rollout_load(orch, row, err, errlen);
  struct plan p;
  int rc;

  if (!r)
    return -EIO;
  rc = load_pkgs(orch, &r->sp, pk, err, errlen);
  if (rc == 0 && plan_build(orch, &r->sp, pk, 0, -1, &p) == 0) {
    rc = db_action_begin(orch->db);
    if (rc == 0)
      rc = plan_store(orch, r->id, &p, true);
    if (rc == 0)
      rc =
          orch_audit(orch, audit, "rollout.start", "rollouts", r->id,
                     json_pack("{s:I, s:I}", "members", (json_int_t)p.eligible,
                               "skipped", (json_int_t)(p.n - p.eligible)));
    if (rc == 0) {
      add_event(r, json_pack("{s:s, s:I, s:I}", "event", "members", "members",
                             (json_int_t)p.eligible, "skipped",
                             (json_int_t)(p.n - p.eligible)));
      rc = set_state(r, RS_RUNNING, NULL);
    }
    if (rc == 0)
      rc = db_action_end(orch->db, true);
    if (rc < 0) {
      db_action_end(orch->db, false);
      snprintf(err, errlen, "cannot store the rollout's devices");
      rc = -EIO;
    }
    plan_free(&p);
  } else if (rc == 0) {
    snprintf(err, errlen, "cannot read the devices");
    rc = -EIO;
  }
  pkgs_clear(pk, r->sp.npackages);
  if (rc < 0)
    rollout_free(r);
  else
    loop_timer_arm(orch->loop, &r->tick, 0);
  return rc;
}

int orch_rollout_control(struct orch *orch, int64_t id, const char *action,
                         const struct db_audit *audit, char *err,
                         size_t errlen)
{
  struct row_copy row = {0};
  struct rollout *r = rollout_by_id(orch, id);
  char act[32];
  int rc = db_rollout_get(orch->db, id, got_row, &row);
  enum rstate st;

  if (rc == -ENOENT) {
    snprintf(err, errlen, "no rollout %lld", (long long)id);
    return -ENOENT;
  }
  if (rc < 0) {
    snprintf(err, errlen, "cannot read rollout %lld", (long long)id);
    return -EIO;
  }
  st = (enum rstate)rstate_parse(row.r.state);
  snprintf(act, sizeof(act), "rollout.%s", action);
  rc = -EBUSY;
  if (strcmp(action, "start") == 0) {
    if (st == RS_CREATED && !r)
      rc = start(orch, &row.r, audit, err, errlen);
  } else if (strcmp(action, "pause") == 0) {
    if (r && st == RS_RUNNING) {
      db_action_begin(orch->db);
      orch_audit(orch, audit, act, "rollouts", id, NULL);
      rc = set_state(r, RS_PAUSED, "paused by the operator");
      db_action_end(orch->db, rc == 0);
    }
  } else if (strcmp(action, "resume") == 0) {
    if (r && st == RS_PAUSED) {
      struct counts c;

      if (count_members(orch, id, &c) == 0) {
        /* The failure gate counts from here; a stage whose success gate
         * held it is passed on the operator's word. */
        r->gate_failures = counted_failures(&r->sp, &c);
        r->gate_finished = c.total[MS_SUCCEEDED] + c.total[MS_FAILED];
        if (unfinished_upto(&c, r->stage) == 0)
          r->gate_passed_stage = r->stage;
        db_action_begin(orch->db);
        orch_audit(orch, audit, act, "rollouts", id, NULL);
        rc = set_state(r, RS_RUNNING, NULL);
        db_action_end(orch->db, rc == 0);
        r->tokens_at = loop_now(orch->loop);
        poke(r);
      } else {
        rc = -EIO;
      }
    }
  } else if (strcmp(action, "abort") == 0) {
    if (st == RS_CREATED) {
      struct db_rollout u = row.r;

      u.state = rstate_names[RS_ABORTED];
      u.reason = "aborted by the operator";
      u.updated_at = u.finished_at = loop_wall(orch->loop);
      db_action_begin(orch->db);
      orch_audit(orch, audit, act, "rollouts", id, NULL);
      rc = db_rollout_update(orch->db, &u);
      db_action_end(orch->db, rc == 0);
    } else if (r && !rstate_final(st)) {
      abort_members(r);
      db_action_begin(orch->db);
      orch_audit(orch, audit, act, "rollouts", id, NULL);
      finish(r, RS_ABORTED, "aborted by the operator", "aborted");
      rc = db_action_end(orch->db, true);
    }
  } else {
    snprintf(err, errlen,
             "unknown action '%s': expected start, pause, "
             "resume or abort",
             action);
    rc = -EINVAL;
  }
  if (rc == -EBUSY)
    snprintf(err, errlen, "rollout %lld is %s: it cannot %s", (long long)id,
             row.r.state, action);
  row_copy_clear(&row);
  return rc;
}

/* Views. */

static json_t *time_json(int64_t ms)
{
  char buf[32];

  if (ms <= 0)
    return json_null();
  format_iso8601(ms, buf, sizeof(buf));
  return json_string(buf);
}

static json_t *state_counts(const int64_t *n, bool with_skipped)
{
  json_t *o = json_object();

  for (int s = 0; s < MS_COUNT; s++)
    if (with_skipped || s != MS_SKIPPED)
      json_object_set_new(o, mstate_names[s], json_integer(n[s]));
  return o;
}

json_t *orch_rollout_json(struct orch *orch, const struct db_rollout *row,
                          bool full)
{
  json_t *spec = json_loads(row->spec, 0, NULL);
  struct rollout_spec sp;
  struct counts c;
  char err[200];
  json_t *o, *stages, *by;
  int64_t members = 0, counted;
  int64_t now = loop_wall(orch->loop);
  bool started = row->started_at > 0;

  if (!spec || rollout_spec_parse(spec, &sp, err, sizeof(err)) < 0 ||
      count_members(orch, row->id, &c) < 0) {
    json_decref(spec);
    return NULL;
  }
  json_decref(spec);
  for (int s = 0; s < MS_COUNT; s++)
    if (s != MS_SKIPPED)
      members += c.total[s];
  o = json_pack(
      "{s:I, s:s?, s:s, s:s?, s:o, s:o, s:o, s:o, s:I, s:o}", "id",
      (json_int_t)row->id, "name", row->name, "state", row->state, "reason",
      row->reason, "created_at", time_json(row->created_at), "updated_at",
      time_json(row->updated_at), "started_at", time_json(row->started_at),
      "finished_at", time_json(row->finished_at), "members",
      (json_int_t)members, "current_stage",
      started ? json_integer(row->stage + 1) : json_null());
  json_object_set_new(o, "stage_count", json_integer((json_int_t)sp.nstages));
  json_object_set_new(o, "totals", state_counts(c.total, true));
  by = json_object();
  for (int k = 0; k < GATE_CLASS_COUNT; k++)
    json_object_set_new(by, rollout_gate_class_names[k],
                        json_integer(c.failed_by[k]));
  json_object_set_new(o, "failures_by_class", by);
  counted = counted_failures(&sp, &c);
  {
    int64_t failed = counted - row->gate_failures;
    int64_t fin =
        c.total[MS_SUCCEEDED] + c.total[MS_FAILED] - row->gate_finished;

    json_object_set_new(
        o, "gates",
        json_pack(
            "{s:{s:f, s:f, s:b}, s:{s:I, s:I, s:o, s:I, s:f, s:I, s:s, s:I, "
            "s:I}}",
            "success", "required", sp.success_ratio, "current",
            success_ratio(&c, row->stage), "passed_by_operator",
            row->gate_passed_stage >= row->stage && started, "failure",
            "failed", (json_int_t)failed, "finished", (json_int_t)fin, "ratio",
            fin > 0 ? json_real((double)failed / (double)fin) : json_null(),
            "limit_count", (json_int_t)sp.fail_count, "limit_ratio",
            sp.fail_ratio, "min_sample", (json_int_t)sp.min_sample,
            "on_failure", sp.fail_abort ? "abort" : "pause", "baseline_failed",
            (json_int_t)row->gate_failures, "baseline_finished",
            (json_int_t)row->gate_finished));
  }
  json_object_set_new(
      o, "schedule",
      json_pack("{s:b, s:b, s:b}", "window_open",
                rollout_window_open(&sp, now), "before_start",
                sp.start_at > 0 &&
                    now<sp.start_at, "after_end", sp.end_at> 0 &&
                    now >= sp.end_at));
  if (full) {
    stages = json_array();
    for (size_t s = 0; s < sp.nstages && s < ROLLOUT_STAGES_MAX; s++) {
      int64_t n = 0;
      json_t *st = state_counts(c.st[s], false);

      for (int k = 0; k < MS_COUNT; k++)
        if (k != MS_SKIPPED)
          n += c.st[s][k];
      json_object_set_new(st, "stage", json_integer((json_int_t)s + 1));
      json_object_set_new(
          st, "of",
          json_incref(json_array_get(json_object_get(sp.norm, "stages"), s)));
      json_object_set_new(st, "members", json_integer(n));
      json_object_set_new(
          st, "status",
          json_string(!started || (int64_t)s > row->stage ? "waiting"
                      : (int64_t)s < row->stage           ? "done"
                      : row->stage_done_at > 0 ? "done, soaking or gated"
                                               : "in progress"));
      json_array_append_new(stages, st);
    }
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "stage_started_at",
                        time_json(row->stage_started_at));
    json_object_set_new(o, "stage_done_at", time_json(row->stage_done_at));
    json_object_set(o, "spec", sp.norm);
  }
  rollout_spec_clear(&sp);
  return o;
}

static void got_nothing(void *arg, const struct db_rollout *r)
{
}

int orch_rollout_exists(struct orch *orch, int64_t id)
{
  int rc = db_rollout_get(orch->db, id, got_nothing, NULL);

  return rc == 0 || rc == -ENOENT ? rc : -EIO;
}

int orch_rollout_get(struct orch *orch, int64_t id, json_t **out)
{
  struct row_copy row = {0};
  int rc = db_rollout_get(orch->db, id, got_row, &row);

  if (rc == 0) {
    *out = orch_rollout_json(orch, &row.r, true);
    if (!*out)
      rc = -EIO;
  }
  row_copy_clear(&row);
  return rc;
}

struct cohort_ctx {
  json_t *stages;
  int64_t last;
  size_t n;
};

static void got_cohort_member(void *arg, const struct db_member *m)
{
  struct cohort_ctx *cc = arg;
  json_t *st = json_array_get(cc->stages, (size_t)m->stage);

  cc->last = m->device_id;
  cc->n++;
  if (st && strcmp(m->state, "skipped") != 0)
    json_array_append_new(json_object_get(st, "devices"),
                          json_string(m->endpoint));
}

int orch_rollout_cohorts(struct orch *orch, int64_t id, json_t **out,
                         char *err, size_t errlen)
{
  struct row_copy row = {0};
  int rc = db_rollout_get(orch->db, id, got_row, &row);
  json_t *spec;
  int erc;

  if (rc < 0) {
    snprintf(err, errlen, "no rollout %lld", (long long)id);
    row_copy_clear(&row);
    return rc;
  }
  spec = json_loads(row.r.spec, 0, NULL);
  if (row.r.started_at == 0) {
    /* Not started: what a start would choose now. */
    *out = orch_rollout_dry_run(orch, spec, &erc, err, errlen);
    rc = *out ? 0 : erc;
  } else {
    struct rollout_spec sp;
    struct cohort_ctx cc = {.stages = json_array()};
    size_t before;

    rc = rollout_spec_parse(spec, &sp, err, errlen);
    for (size_t s = 0; rc == 0 && s < sp.nstages; s++)
      json_array_append_new(
          cc.stages,
          json_pack("{s:I, s:O, s:[]}", "stage", (json_int_t)s + 1, "of",
                    json_array_get(json_object_get(sp.norm, "stages"), s),
                    "devices"));
    do {
      before = cc.n;
      if (rc == 0)
        rc = db_members_list(orch->db, id, NULL, -1, cc.last, 1000,
                             got_cohort_member, &cc);
    } while (rc == 0 && cc.n > before);
    if (rc == 0) {
      for (size_t s = 0; s < json_array_size(cc.stages); s++) {
        json_t *st = json_array_get(cc.stages, s);

        json_object_set_new(st, "size",
                            json_integer((json_int_t)json_array_size(
                                json_object_get(st, "devices"))));
      }
      *out = json_pack("{s:I, s:o}", "seed", (json_int_t)sp.seed, "stages",
                       cc.stages);
      rollout_spec_clear(&sp);
    } else {
      json_decref(cc.stages);
    }
  }
  json_decref(spec);
  row_copy_clear(&row);
  return rc;
}
