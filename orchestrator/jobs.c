/*
 * Update jobs: one device's update of one or several firmware components,
 * driven through the job state machine of DESIGN.md's rollout model.
 *
 * A job writes each component's Package URI (or pushes the package to
 * resource 0 with Block1), follows State and Update Result as component
 * tracking hears them (notifications and reconciling reads both arrive
 * through orch_jobs_on_component()), reads Conflicting Instances once
 * every component is Downloaded, executes Update exactly once (with the
 * linked-instances argument when there are several 33629 components),
 * waits for the device to come back and verifies Current Version and
 * Update Result. Every transition is stored with its timeline event in
 * one transaction; the time of Execute is stored before it goes out, so
 * that no restart sends it twice. docs/updates.md tells the whole story.
 *
 * Requests to the device carry the job's id, not a pointer: a job that
 * finished (or was freed at shutdown) simply no longer answers to it.
 * A finished job leaves the maps at once but is freed from a timer, so
 * that code still holding it when a callback ends it stays safe.
 */
#include "orchestrator/orch_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "job"

#define OBJ_AFU 33629
#define OBJ_FW 5
#define JOB_MAX_COMPONENTS 16
/* A request that got no answer is tried again after this long (ms). */
#define RETRY_MS 10000
/* An Update from a device re-reads its job's components when nothing was
 * heard of them for this long (ms): notifications are best effort. */
#define RECONCILE_MS 10000
/* A job waiting for its device's State reads it when nothing was heard
 * for this long (ms), and this soon after the last block of a package
 * went out or a push was stored (ms): a device whose notifications are
 * lost still moves on. */
#define POLL_QUIET_MS 30000
#define POLL_AFTER_DOWNLOAD_MS 2000
/* A verifying job reads again this often until the device confirms. */
#define POLL_VERIFY_MS 5000
/* A deadline that passed while fotad was down leaves the device this
 * long (ms, or the state's own time-out if shorter) to be heard. */
#define RECOVERY_GRACE_MS 30000
/* Package URIs are at most 255 characters (resource 1). */
#define URI_MAX 255

static const char *const job_state_names[JOB_STATE_COUNT] = {
    [JOB_QUEUED] = "queued",           [JOB_URI_WRITTEN] = "uri-written",
    [JOB_DOWNLOADING] = "downloading", [JOB_DOWNLOADED] = "downloaded",
    [JOB_UPDATING] = "updating",       [JOB_VERIFYING] = "verifying",
    [JOB_SUCCEEDED] = "succeeded",     [JOB_FAILED] = "failed",
    [JOB_TIMED_OUT] = "timed-out",     [JOB_CANCELLED] = "cancelled",
};

/* A component's step within its job. */
enum comp_state {
  COMP_PENDING,
  COMP_URI_WRITTEN,
  COMP_DOWNLOADING,
  COMP_DOWNLOADED,
  COMP_UPDATING,
  COMP_UPDATED,
  COMP_FAILED,
  COMP_CANCELLED,
};
#define COMP_STATE_COUNT (COMP_CANCELLED + 1)

static const char *const comp_state_names[COMP_STATE_COUNT] = {
    [COMP_PENDING] = "pending",         [COMP_URI_WRITTEN] = "uri-written",
    [COMP_DOWNLOADING] = "downloading", [COMP_DOWNLOADED] = "downloaded",
    [COMP_UPDATING] = "updating",       [COMP_UPDATED] = "updated",
    [COMP_FAILED] = "failed",           [COMP_CANCELLED] = "cancelled",
};

/* How a package reaches the device; stored by name. */
static const char *const delivery_names[] = {"coap", "coaps", "http", "https",
                                             "push"};
#define DELIVERY_PUSH 4

struct jcomp {
  struct hmap_node by_token; /* when dl_token is set */
  struct job *job;
  int64_t component_id, package_id;
  int oid, iid;
  enum comp_state state;
  char *name;         /* Component Name (/14), or NULL */
  char *version;      /* the package's version: the target */
  char *from_version; /* Current Version when the job was created */
  char *token;        /* the package's download token */
  char *dl_token;     /* this job's token in a CoAP URI, or NULL */
  char *uri;          /* the Package URI written, or NULL */
  int64_t start_result, result;
  struct orch_job_progress progress;
  bool dirty; /* to be stored by the next commit */
  /* Requests of the current step (in memory only). */
  bool writing, reset_first, reset_done, checking, conflicts_ok;
  bool sent; /* a Package URI or the package went out at least once */
  /* What the device said since it came back (verifying). */
  bool v_have, v_have_version;
  int64_t v_state, v_result;
  char *v_version;
};

struct job {
  struct hmap_node by_id, by_dev, by_ep;
  struct orch *orch;
  struct job *next_dead;
  int64_t id, rollout_id, device_id;
  char *ep;
  enum job_state state;
  int64_t attempt;
  bool forced;
  char *failure_class, *detail;
  int delivery; /* index into delivery_names; -1: not chosen yet */
  int64_t update_result;
  int64_t created_at, updated_at, started_at, executed_at, deadline_at,
      finished_at;
  struct orch_job_limits lim; /* 0: the configured default */
  int reboots;                /* registrations while verifying */
  struct jcomp *c;
  size_t n;
  struct loop_timer deadline, kick, poll;
  json_t *events; /* timeline events for the next commit */
  int reading;    /* reads in flight */
  bool executing; /* Execute Update in flight */
  bool dead;      /* finished; freed soon */
  bool reconcile; /* read everything at the next chance (restart) */
  bool poll_now;  /* the poll timer reads whatever was heard */
  bool verified;  /* every component confirmed; watching the window */
  int64_t heard;  /* loop time a value of its components last came */
};

struct orch_jobs {
  struct hmap by_id, by_dev, by_ep;
  struct hmap by_token; /* struct jcomp by dl_token */
  struct job *dead;
  struct loop_timer reaper, startup;
  char *host;
  int http_port;
  bool https;
  void (*done_cb)(void *arg, const struct orch_job_outcome *o);
  void *done_arg;
};

const char *orch_job_state_name(enum job_state s)
{
  return (unsigned)s < JOB_STATE_COUNT ? job_state_names[s] : NULL;
}

int orch_job_state_parse(const char *name, enum job_state *out)
{
  for (int i = 0; i < JOB_STATE_COUNT; i++) {
    if (strcmp(name, job_state_names[i]) == 0) {
      *out = (enum job_state)i;
      return 0;
    }
  }
  return -EINVAL;
}

bool orch_job_state_final(enum job_state s)
{
  return s >= JOB_SUCCEEDED;
}

static int comp_state_parse(const char *name, enum comp_state *out)
{
  for (int i = 0; name && i < COMP_STATE_COUNT; i++) {
    if (strcmp(name, comp_state_names[i]) == 0) {
      *out = (enum comp_state)i;
      return 0;
    }
  }
  return -EINVAL;
}

static void set_str(char **dst, const char *s)
{
  if (s == *dst)
    return;
  free(*dst);
  *dst = s ? xstrdup(s) : NULL;
}

static bool str_eq(const char *a, const char *b)
{
  return a && b && strcmp(a, b) == 0;
}

/* Maps. */

static uint64_t id_hash(int64_t id)
{
  return hash_bytes(&id, sizeof(id));
}

static uint64_t ep_hash(const char *ep)
{
  return hash_bytes(ep, strlen(ep));
}

static struct job *job_by_id(const struct orch *orch, int64_t id)
{
  uint64_t h = id_hash(id);

  for (struct hmap_node *n = hmap_first(&orch->jobs->by_id, h); n;
       n = n->next) {
    struct job *j = container_of(n, struct job, by_id);

    if (n->hash == h && j->id == id)
      return j;
  }
  return NULL;
}

static struct job *job_by_dev(const struct orch *orch, int64_t device_id)
{
  uint64_t h = id_hash(device_id);

  for (struct hmap_node *n = hmap_first(&orch->jobs->by_dev, h); n;
       n = n->next) {
    struct job *j = container_of(n, struct job, by_dev);

    if (n->hash == h && j->device_id == device_id)
      return j;
  }
  return NULL;
}

static struct job *job_by_ep(const struct orch *orch, const char *ep)
{
  uint64_t h = ep_hash(ep);

  for (struct hmap_node *n = hmap_first(&orch->jobs->by_ep, h); n;
       n = n->next) {
    struct job *j = container_of(n, struct job, by_ep);

    if (n->hash == h && strcmp(j->ep, ep) == 0)
      return j;
  }
  return NULL;
}

static uint64_t token_hash(const char *token)
{
  return hash_bytes(token, strlen(token));
}

static struct jcomp *comp_by_token(const struct orch *orch, const char *token)
{
  uint64_t h = token_hash(token);

  for (struct hmap_node *n = hmap_first(&orch->jobs->by_token, h); n;
       n = n->next) {
    struct jcomp *c = container_of(n, struct jcomp, by_token);

    if (n->hash == h && strcmp(c->dl_token, token) == 0)
      return c;
  }
  return NULL;
}

/* Gives a component its own download token (indexed). */
static void set_dl_token(struct orch *orch, struct jcomp *c, const char *t)
{
  if (c->dl_token)
    hmap_remove(&orch->jobs->by_token, &c->by_token);
  set_str(&c->dl_token, t);
  if (t)
    hmap_insert(&orch->jobs->by_token, &c->by_token, token_hash(t));
}

static struct jcomp *comp_at(struct job *j, int oid, int iid)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->c[i].oid == oid && j->c[i].iid == iid)
      return &j->c[i];
  return NULL;
}

static void job_free(struct job *j)
{
  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];

    free(c->name);
    free(c->version);
    free(c->from_version);
    free(c->token);
    free(c->dl_token);
    free(c->uri);
    free(c->v_version);
  }
  free(j->c);
  free(j->ep);
  free(j->failure_class);
  free(j->detail);
  json_decref(j->events);
  free(j);
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *arg);
static void on_kick(struct loop *loop, struct loop_timer *t, void *arg);
static void on_poll(struct loop *loop, struct loop_timer *t, void *arg);

static struct job *job_alloc(struct orch *orch, int64_t id, int64_t device_id,
                             const char *ep, size_t n)
{
  struct job *j = xcalloc(1, sizeof(*j));

  j->orch = orch;
  j->id = id;
  j->device_id = device_id;
  j->ep = xstrdup(ep);
  j->delivery = -1;
  j->update_result = -1;
  j->c = xcalloc(n, sizeof(*j->c));
  j->n = n;
  for (size_t i = 0; i < n; i++)
    j->c[i].job = j;
  j->events = json_array();
  j->heard = loop_now(orch->loop);
  loop_timer_init(&j->deadline, on_deadline, j);
  loop_timer_init(&j->kick, on_kick, j);
  loop_timer_init(&j->poll, on_poll, j);
  hmap_insert(&orch->jobs->by_id, &j->by_id, id_hash(id));
  hmap_insert(&orch->jobs->by_dev, &j->by_dev, id_hash(device_id));
  hmap_insert(&orch->jobs->by_ep, &j->by_ep, ep_hash(ep));
  return j;
}

/* Takes a finished job out of the maps; the reaper frees it. */
static void job_bury(struct job *j)
{
  struct orch_jobs *js = j->orch->jobs;

  j->dead = true;
  loop_timer_disarm(j->orch->loop, &j->deadline);
  loop_timer_disarm(j->orch->loop, &j->kick);
  loop_timer_disarm(j->orch->loop, &j->poll);
  hmap_remove(&js->by_id, &j->by_id);
  hmap_remove(&js->by_dev, &j->by_dev);
  hmap_remove(&js->by_ep, &j->by_ep);
  for (size_t i = 0; i < j->n; i++)
    if (j->c[i].dl_token)
      hmap_remove(&js->by_token, &j->c[i].by_token);
  j->next_dead = js->dead;
  js->dead = j;
  loop_timer_arm(j->orch->loop, &js->reaper, 0);
}

static void on_reaper(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct orch_jobs *js = arg;

  while (js->dead) {
    struct job *j = js->dead;

    js->dead = j->next_dead;
    job_free(j);
  }
}

/* Runs the job's next action from the loop, outside any callback. */
static void kick(struct job *j, int64_t delay_ms)
{
  if (!j->dead)
    loop_timer_arm(j->orch->loop, &j->kick, delay_ms);
}

/* Storage. */

static void add_event(struct job *j, json_t *data)
{
  json_array_append_new(j->events, data);
}

static const char *comp_path(const struct jcomp *c, char *buf, size_t len)
{
  snprintf(buf, len, "/%d/%d", c->oid, c->iid);
  return buf;
}

/*
 * Stores the job, its changed components and its pending timeline events
 * as one unit; for a final state the rollout callback runs inside it.
 */
static void job_commit(struct job *j)
{
  struct orch *orch = j->orch;
  struct orch_jobs *js = orch->jobs;
  int64_t at = loop_wall(orch->loop);
  struct db_job row = {
      .id = j->id,
      .state = job_state_names[j->state],
      .attempt = j->attempt,
      .failure_class = j->failure_class,
      .update_result = j->update_result,
      .detail = j->detail,
      .delivery = j->delivery >= 0 ? delivery_names[j->delivery] : NULL,
      .updated_at = j->updated_at,
      .started_at = j->started_at,
      .executed_at = j->executed_at,
      .deadline_at = j->deadline_at,
      .finished_at = j->finished_at,
  };
  size_t i;
  json_t *ev;
  int rc = db_action_begin(orch->db);

  if (rc == 0)
    rc = db_job_update(orch->db, &row);
  for (i = 0; rc == 0 && i < j->n; i++) {
    struct jcomp *c = &j->c[i];
    struct db_job_component jc = {
        .job_id = j->id,
        .component_id = c->component_id,
        .state = comp_state_names[c->state],
        .result = c->result,
        .uri = c->uri,
        .blocks = c->progress.blocks,
        .bytes = c->progress.bytes,
        .last_block_at = c->progress.last_block_at,
        .updated_at = at,
    };

    if (c->dirty)
      rc = db_job_component_update(orch->db, &jc);
  }
  json_array_foreach(j->events, i, ev)
  {
    char *data;

    if (rc < 0)
      break;
    json_object_set_new(ev, "job_id", json_integer(j->id));
    data = json_dumps(ev, JSON_COMPACT);
    rc = db_timeline_add(orch->db, at, "job", j->device_id, j->ep, j->id,
                         j->rollout_id, data);
    free(data);
  }
  if (rc == 0 && orch_job_state_final(j->state) && js->done_cb) {
    struct orch_job_outcome o = {
        .job_id = j->id,
        .rollout_id = j->rollout_id,
        .device_id = j->device_id,
        .state = j->state,
        .failure_class = j->failure_class,
        .update_result = j->update_result,
    };

    js->done_cb(js->done_arg, &o);
  }
  if (rc == 0)
    rc = db_action_end(orch->db, true);
  if (rc < 0) {
    db_action_end(orch->db, false);
    log_err("job %lld: state %s not stored", (long long)j->id,
            job_state_names[j->state]);
  }
  for (i = 0; i < j->n; i++)
    j->c[i].dirty = false;
  json_array_clear(j->events);
}

/* The one place a component's step changes (stored by the next commit). */
static void comp_set_state(struct job *j, struct jcomp *c, enum comp_state to)
{
  char path[24];

  if (c->state == to)
    return;
  comp_path(c, path, sizeof(path));
  log_info("job %lld: %s %s: %s -> [%s]", (long long)j->id, path,
           c->name ? c->name : "", comp_state_names[c->state],
           comp_state_names[to]);
  /* A job of one component tells its steps through its own events. */
  if (j->n > 1)
    add_event(j, json_pack("{s:s, s:s?, s:s, s:s}", "path", path, "component",
                           c->name, "from", comp_state_names[c->state], "to",
                           comp_state_names[to]));
  c->state = to;
  c->dirty = true;
}

static void arm_deadline(struct job *j)
{
  struct orch *orch = j->orch;

  if (j->deadline_at > 0 && !orch_job_state_final(j->state)) {
    int64_t delay = j->deadline_at - loop_wall(orch->loop);

    loop_timer_arm(orch->loop, &j->deadline, delay > 0 ? delay : 0);
  } else {
    loop_timer_disarm(orch->loop, &j->deadline);
  }
}

/* A job's time-out for state s (s), its own or the configured one. */
static int64_t job_timeout_s(const struct job *j, enum job_state s)
{
  const struct orch_config *cfg = &j->orch->cfg;

  switch (s) {
  case JOB_URI_WRITTEN:
  case JOB_DOWNLOADING:
    return j->lim.download_timeout > 0 ? j->lim.download_timeout
                                       : cfg->job_download_timeout;
  case JOB_DOWNLOADED:
    return j->lim.update_timeout > 0 ? j->lim.update_timeout
                                     : cfg->job_update_timeout;
  case JOB_UPDATING:
  case JOB_VERIFYING:
    return j->lim.reboot_timeout > 0 ? j->lim.reboot_timeout
                                     : cfg->job_reboot_timeout;
  default:
    return 0;
  }
}

static int64_t state_timeout_ms(const struct job *j, enum job_state s)
{
  return job_timeout_s(j, s) * 1000;
}

static void cleanup_components(struct job *j, bool cancel);

/*
 * The one place a job's state changes: logs "job 12: downloading ->
 * [downloaded]", sets the deadline of the new state, stores the
 * transition with its timeline event (cls, result and detail describe a
 * failure, or say why), then runs the new state's enter-actions.
 */
static void job_set_state(struct job *j, enum job_state to, const char *cls,
                          int64_t result, const char *detail)
{
  struct orch *orch = j->orch;
  enum job_state from = j->state;
  int64_t now = loop_wall(orch->loop);
  json_t *ev;

  if (from == to || orch_job_state_final(from))
    return;
  j->state = to;
  j->updated_at = now;
  if (cls)
    set_str(&j->failure_class, cls);
  if (result >= 0)
    j->update_result = result;
  /* The detail says why this state was entered; it goes with the state. */
  set_str(&j->detail, detail);
  switch (to) {
  case JOB_QUEUED:
    j->deadline_at = 0;
    break;
  case JOB_DOWNLOADING:
    /* A push starts its download here; a pull at uri-written. */
    if (from == JOB_QUEUED)
      j->deadline_at = now + state_timeout_ms(j, to);
    break;
  case JOB_VERIFYING:
    if (from != JOB_UPDATING)
      j->deadline_at = now + state_timeout_ms(j, to);
    for (size_t i = 0; i < j->n; i++) {
      j->c[i].v_have = j->c[i].v_have_version = false;
      set_str(&j->c[i].v_version, NULL);
    }
    break;
  case JOB_URI_WRITTEN:
  case JOB_DOWNLOADED:
  case JOB_UPDATING:
    j->deadline_at = now + state_timeout_ms(j, to);
    break;
  case JOB_SUCCEEDED:
  case JOB_FAILED:
  case JOB_TIMED_OUT:
  case JOB_CANCELLED:
    j->deadline_at = 0;
    j->finished_at = now;
    break;
  }
  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];

    if (to == JOB_UPDATING && c->state == COMP_DOWNLOADED)
      comp_set_state(j, c, COMP_UPDATING);
    else if (to == JOB_CANCELLED && c->state < COMP_UPDATED)
      comp_set_state(j, c, COMP_CANCELLED);
    else if ((to == JOB_FAILED || to == JOB_TIMED_OUT) &&
             c->state < COMP_UPDATED)
      comp_set_state(j, c, COMP_FAILED);
  }
  ev = json_pack("{s:s, s:s}", "from", job_state_names[from], "to",
                 job_state_names[to]);
  if (cls)
    json_object_set_new(ev, "failure_class", json_string(cls));
  if (result >= 0)
    json_object_set_new(ev, "update_result", json_integer(result));
  if (detail)
    json_object_set_new(ev, "detail", json_string(detail));
  add_event(j, ev);
  log_info("job %lld: %s -> [%s]%s%s%s%s", (long long)j->id,
           job_state_names[from], job_state_names[to], cls ? " " : "",
           cls ? cls : "", detail ? ": " : "", detail ? detail : "");
  job_commit(j);

  arm_deadline(j);
  if (to >= JOB_URI_WRITTEN && to <= JOB_DOWNLOADED &&
      !loop_timer_armed(&j->poll))
    loop_timer_arm(orch->loop, &j->poll, POLL_QUIET_MS);
  if (to == JOB_VERIFYING)
    loop_timer_arm(orch->loop, &j->poll, POLL_VERIFY_MS);
  if (orch_job_state_final(to)) {
    /* Packages on their way are stopped, unless the update ran. */
    if (to != JOB_SUCCEEDED && j->executed_at == 0)
      cleanup_components(j, to == JOB_CANCELLED);
    job_bury(j);
    return;
  }
  kick(j, 0);
}

static void job_fail(struct job *j, enum job_state to, const char *cls,
                     int64_t result, const char *fmt, ...) PRINTF_LIKE(5, 6);

static void job_fail(struct job *j, enum job_state to, const char *cls,
                     int64_t result, const char *fmt, ...)
{
  char detail[300];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  job_set_state(j, to, cls, result, detail);
}

/* The failure class of an Update Result (spec 1.4). */
static const char *result_class(int64_t r)
{
  switch (r) {
  case 2:
    return "no_flash";
  case 3:
    return "no_ram";
  case 4:
    return "connection_lost";
  case 5:
    return "integrity";
  case 6:
    return "unsupported_package";
  case 7:
    return "invalid_uri";
  case 8:
    return "install_failed";
  case 9:
    return "unsupported_scheme";
  case 10:
    return "cancelled_on_device";
  case 12:
    return "conflict";
  case 13:
    return "dependency";
  default:
    return "update_failed";
  }
}

static const char *result_text(int64_t r)
{
  static const char *const text[] = {
      "initial value",
      "update succeeded",
      "not enough flash for the package",
      "out of RAM while downloading",
      "connection lost while downloading",
      "integrity check of the package failed",
      "package type not supported",
      "invalid URI",
      "installation failed",
      "URI scheme not supported",
      "cancelled on the device",
      "update deferred",
      "conflicting state",
      "dependency error",
  };

  return r >= 0 && (size_t)r < ARRAY_SIZE(text) ? text[r] : "unknown result";
}

static void fail_result(struct job *j, const struct jcomp *c, int64_t r)
{
  char path[24];

  job_fail(j, JOB_FAILED, result_class(r), r, "%s %s: Update Result %lld (%s)",
           comp_path(c, path, sizeof(path)), c->name ? c->name : "",
           (long long)r, result_text(r));
}

/* Requests. */

enum req_kind {
  REQ_WRITE,     /* Package URI */
  REQ_RESET,     /* an empty Package URI before the real one */
  REQ_PUSH,      /* the package itself, to resource 0 */
  REQ_CONFLICTS, /* read Conflicting Instances */
  REQ_EXECUTE,   /* Update */
  REQ_READ,      /* the component instance (or /5/0) */
  REQ_READ_FW,   /* /3/0/3, the version of an object 5 device */
  REQ_CANCEL,    /* Cancel (/10), after the job was cancelled */
  REQ_CLEANUP,   /* an empty Package URI, after the job ended */
};

struct req {
  struct orch *orch;
  int64_t job_id;
  size_t ix;
  enum req_kind kind;
  char *ep;
  int oid, iid;
};

static void on_answer(void *arg, const struct srv_result *res);

/* Sends sr for component ix of j. j may be finished when this returns. */
static uint64_t job_send(struct job *j, size_t ix, enum req_kind kind,
                         const struct srv_request *sr)
{
  struct req *x = xcalloc(1, sizeof(*x));

  x->orch = j->orch;
  x->job_id = j->id;
  x->ix = ix;
  x->kind = kind;
  x->ep = xstrdup(j->ep);
  x->oid = ix < j->n ? j->c[ix].oid : 0;
  x->iid = ix < j->n ? j->c[ix].iid : 0;
  return srv_send(j->orch->srv, j->ep, sr, on_answer, x);
}

/* A request that belongs to no job any more (cancel, clean-up). */
static void send_detached(struct orch *orch, const char *ep, int oid, int iid,
                          enum req_kind kind, const struct srv_request *sr)
{
  struct req *x = xcalloc(1, sizeof(*x));

  x->orch = orch;
  x->kind = kind;
  x->ep = xstrdup(ep);
  x->oid = oid;
  x->iid = iid;
  srv_send(orch->srv, ep, sr, on_answer, x);
}

/* Writes a string to /oid/iid/rid. */
static void write_string(struct orch *orch, struct job *j, size_t ix,
                         const char *ep, int oid, int iid, int rid,
                         const char *s, enum req_kind kind)
{
  struct lwm2m_path path = {
      .id = {(uint16_t)oid, (uint16_t)iid, (uint16_t)rid}, .len = 3};
  struct lwm2m_value v = {0};
  struct lwm2m_records recs;
  struct srv_request sr = {
      .op = SRV_OP_WRITE, .path = path, .values = &recs, .allow_queue = true};

  lwm2m_records_init(&recs);
  lwm2m_value_set_bytes(&v, LWM2M_T_STRING, s, strlen(s));
  lwm2m_records_add(&recs, &path, &v);
  if (j)
    job_send(j, ix, kind, &sr);
  else
    send_detached(orch, ep, oid, iid, kind, &sr);
  lwm2m_records_free(&recs);
}

/*
 * After a job that did not install ends, stops what is on its way: Cancel
 * (33629) or an empty Package URI for each component that may hold or be
 * fetching a package.
 */
static void cleanup_components(struct job *j, bool cancel)
{
  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];

    if (!c->sent && !c->writing)
      continue; /* nothing was sent to it */
    if (cancel && c->oid == OBJ_AFU) {
      struct srv_request sr = {
          .op = SRV_OP_EXECUTE,
          .path = {.id = {OBJ_AFU, (uint16_t)c->iid, 10}, .len = 3},
          .allow_queue = true};

      send_detached(j->orch, j->ep, c->oid, c->iid, REQ_CANCEL, &sr);
    } else {
      write_string(j->orch, NULL, 0, j->ep, c->oid, c->iid, 1, "",
                   REQ_CLEANUP);
    }
  }
}

/* Delivery. */

static bool lists(const json_t *protocols, int p)
{
  size_t i;
  json_t *v;

  json_array_foreach(protocols, i, v)
  {
    if (json_is_integer(v) && json_integer_value(v) == p)
      return true;
  }
  return false;
}

/*
 * Chooses how the package reaches the device from its Protocol Support
 * (/8, as JSON; NULL or empty means CoAP, spec 1.9) and Delivery Method
 * (/9). A device that registered over DTLS gets coaps first (it has the
 * credentials for our host, and its firmware deserves the same channel),
 * others coap; then http(s) on the API's listener. Push-only devices, and
 * devices that can take a push when no scheme fits, get a push.
 */
static int choose_delivery(const struct orch *orch, const char *protocols,
                           int64_t method, const char *security, char *err,
                           size_t errlen)
{
  const struct orch_jobs *js = orch->jobs;
  json_t *list = protocols ? json_loads(protocols, 0, NULL) : NULL;
  bool secure = security && strcmp(security, "nosec") != 0;
  static const int secure_order[] = {1, 0, 2, 3};
  static const int plain_order[] = {0, 2, 3, 1};
  const int *order = secure ? secure_order : plain_order;
  int rc = -EINVAL;

  if (method == 1) {
    rc = DELIVERY_PUSH;
    goto out;
  }
  for (size_t i = 0; i < 4; i++) {
    int p = order[i];
    bool listed = json_array_size(list) > 0 ? lists(list, p) : p == 0;
    bool served = p == 0   ? srv_coap_port(orch->srv) > 0
                  : p == 1 ? srv_coaps_port(orch->srv) > 0
                  : p == 2 ? js->http_port > 0 && !js->https
                           : js->http_port > 0 && js->https;

    if (listed && served) {
      rc = p;
      goto out;
    }
  }
  if (method == 2) {
    rc = DELIVERY_PUSH;
    goto out;
  }
  snprintf(err, errlen,
           "the device downloads with protocols %s (/8) and takes no push "
           "(/9 = %lld): fotad serves none of them",
           protocols ? protocols : "[0]", (long long)method);
out:
  json_decref(list);
  return rc;
}

static int build_uri(const struct orch *orch, int delivery, const char *token,
                     char *buf, size_t len)
{
  const char *host = orch->jobs->host;
  bool v6 = strchr(host, ':') != NULL && host[0] != '[';
  int port = delivery == 0   ? srv_coap_port(orch->srv)
             : delivery == 1 ? srv_coaps_port(orch->srv)
                             : orch->jobs->http_port;
  int n;

  if (port <= 0)
    return -ENOTCONN;
  n = snprintf(buf, len, "%s://%s%s%s:%d/fw/%s", delivery_names[delivery],
               v6 ? "[" : "", host, v6 ? "]" : "", port, token);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

struct comp_row {
  bool found;
  int64_t id;
  char *name, *version, *protocols;
  int64_t state, result, method, updated_at;
};

static void got_comp_row(void *arg, const struct db_component *c)
{
  struct comp_row *r = arg;

  r->found = true;
  r->id = c->id;
  set_str(&r->name, c->name);
  set_str(&r->version, c->current_version);
  set_str(&r->protocols, c->protocols);
  r->state = c->state;
  r->result = c->result;
  r->method = c->delivery_method;
  r->updated_at = c->updated_at;
}

static void comp_row_clear(struct comp_row *r)
{
  free(r->name);
  free(r->version);
  free(r->protocols);
  memset(r, 0, sizeof(*r));
}

/* Chooses the delivery at the job's first step and builds the URIs. */
static int start_delivery(struct job *j)
{
  struct orch *orch = j->orch;
  struct srv_reg_info ri;
  struct comp_row row = {0};
  char err[256];
  int rc;

  if (srv_reg_info(orch->srv, j->ep, &ri) < 0)
    return -ENOENT; /* the device's next registration starts it */
  rc = db_component_get(orch->db, j->device_id, j->c[0].oid, j->c[0].iid,
                        got_comp_row, &row);
  if (rc < 0 || !row.found) {
    comp_row_clear(&row);
    job_fail(j, JOB_FAILED, "component_gone", -1,
             "the device no longer has /%d/%d", j->c[0].oid, j->c[0].iid);
    return -ENOENT;
  }
  rc = choose_delivery(orch, row.protocols, row.method, ri.security, err,
                       sizeof(err));
  comp_row_clear(&row);
  if (rc < 0) {
    job_fail(j, JOB_FAILED, "no_delivery", -1, "%s", err);
    return rc;
  }
  j->delivery = rc;
  j->started_at = loop_wall(orch->loop);
  for (size_t i = 0; i < j->n && rc != DELIVERY_PUSH; i++) {
    char uri[URI_MAX + 1];
    const char *token = j->c[i].token;
    uint8_t raw[16];
    char hex[33];

    /* Over CoAP each job has its own token: its downloads are told apart
     * whatever socket the device fetches from, and the token dies with
     * the job. HTTP is served by the repository, by package token. */
    if (rc == 0 || rc == 1) {
      if (crypto_random(raw, sizeof(raw)) < 0) {
        job_fail(j, JOB_FAILED, "internal", -1, "no random bytes for a token");
        return -EIO;
      }
      hex_encode(raw, sizeof(raw), hex);
      set_dl_token(orch, &j->c[i], hex);
      token = hex;
    }
    if (build_uri(orch, rc, token, uri, sizeof(uri)) < 0) {
      job_fail(j, JOB_FAILED, "no_delivery", -1,
               "no %s URI of at most %d characters for the package",
               delivery_names[rc], URI_MAX);
      return -EINVAL;
    }
    set_str(&j->c[i].uri, uri);
    j->c[i].dirty = true;
  }
  add_event(j, json_pack("{s:s, s:s}", "action", "deliver", "delivery",
                         delivery_names[j->delivery]));
  job_commit(j);
  return 0;
}

/* Pushes the next component's package with a Block1 Write to /0. */
static void push_next(struct job *j)
{
  struct orch *orch = j->orch;
  struct jcomp *c = NULL;
  struct srv_file f = {0};
  struct lwm2m_records recs;
  struct lwm2m_value v = {0};
  struct srv_request sr = {.op = SRV_OP_WRITE,
                           .format = LWM2M_CT_OPAQUE,
                           .has_format = true,
                           .values = &recs};
  size_t ix;
  uint64_t h;

  for (ix = 0; ix < j->n; ix++) {
    if (j->c[ix].writing)
      return; /* one push at a time: devices refuse parallel ones */
    if (!c && j->c[ix].state == COMP_PENDING)
      c = &j->c[ix];
  }
  if (!c)
    return;
  ix = (size_t)(c - j->c);
  if (orch_files_get(orch, c->token, &f) < 0) {
    job_fail(j, JOB_FAILED, "package_unavailable", -1,
             "the package file for /%d/%d cannot be read", c->oid, c->iid);
    return;
  }
  sr.path = (struct lwm2m_path){.id = {(uint16_t)c->oid, (uint16_t)c->iid, 0},
                                .len = 3};
  /* The whole transfer is one request: give it the download's time. */
  sr.timeout_ms = orch->cfg.job_download_timeout * 1000;
  lwm2m_records_init(&recs);
  lwm2m_value_set_bytes(&v, LWM2M_T_OPAQUE, f.data, f.size);
  lwm2m_records_add(&recs, &sr.path, &v);
  if (f.release)
    f.release(f.release_arg);
  c->writing = true;
  c->sent = true;
  h = job_send(j, ix, REQ_PUSH, &sr);
  lwm2m_records_free(&recs);
  if (j->dead || h == 0)
    return;
  comp_set_state(j, c, COMP_DOWNLOADING);
  if (j->state == JOB_QUEUED)
    job_set_state(j, JOB_DOWNLOADING, NULL, -1, NULL);
  else
    job_commit(j);
}

/* Writes every pending component's Package URI (after a reset if its
 * component turned out not to be Idle). */
static void write_uris(struct job *j)
{
  int64_t id = j->id;

  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];

    if (c->state != COMP_PENDING || c->writing)
      continue;
    c->writing = true;
    c->sent = true;
    if (c->reset_first)
      write_string(j->orch, j, i, j->ep, c->oid, c->iid, 1, "", REQ_RESET);
    else
      write_string(j->orch, j, i, j->ep, c->oid, c->iid, 1, c->uri, REQ_WRITE);
    /* The answer may have come at once and moved the job on. */
    if (!job_by_id(j->orch, id) || j->state != JOB_QUEUED)
      return;
  }
}

static void read_components(struct job *j, bool with_fw);

/* Reads Conflicting Instances of each 33629 component, then executes. */
static void check_conflicts(struct job *j)
{
  bool all = true;

  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];
    struct srv_request sr = {
        .op = SRV_OP_READ,
        .path = {.id = {OBJ_AFU, (uint16_t)c->iid, 17}, .len = 3}};

    if (c->oid != OBJ_AFU)
      c->conflicts_ok = true;
    if (c->conflicts_ok)
      continue;
    all = false;
    if (c->checking)
      continue;
    c->checking = true;
    job_send(j, i, REQ_CONFLICTS, &sr);
    if (j->dead || j->state != JOB_DOWNLOADED)
      return;
  }
  if (!all)
    return;
  {
    struct srv_request sr = {.op = SRV_OP_EXECUTE, .allow_queue = true};
    char args[16 + JOB_MAX_COMPONENTS * 16] = "";
    char path[32];
    size_t off = 0;

    if (j->executing || j->executed_at > 0)
      return;
    sr.path = (struct lwm2m_path){
        .id = {(uint16_t)j->c[0].oid, (uint16_t)j->c[0].iid, 2}, .len = 3};
    /* 33629: argument 0 alone updates only this instance; 0='<...>'
     * updates it and exactly the instances listed (spec 1.6). */
    if (j->c[0].oid == OBJ_AFU && j->n == 1) {
      snprintf(args, sizeof(args), "0");
    } else if (j->c[0].oid == OBJ_AFU) {
      off = (size_t)snprintf(args, sizeof(args), "0='");
      for (size_t i = 1; i < j->n; i++)
        off +=
            (size_t)snprintf(args + off, sizeof(args) - off, "%s</33629/%d>",
                             i > 1 ? "," : "", j->c[i].iid);
      snprintf(args + off, sizeof(args) - off, "'");
    }
    sr.args = args[0] ? args : NULL;
    lwm2m_path_format(&sr.path, path, sizeof(path));
    /* Stored before it goes out: Execute is sent once, whatever happens
     * to fotad between now and the answer. */
    j->executed_at = loop_wall(j->orch->loop);
    j->executing = true;
    add_event(j, json_pack("{s:s, s:s, s:s?}", "action", "execute", "path",
                           path, "args", sr.args));
    log_info("job %lld: Execute %s%s%s", (long long)j->id, path,
             sr.args ? " " : "", sr.args ? sr.args : "");
    job_commit(j);
    job_send(j, 0, REQ_EXECUTE, &sr);
  }
}

/* What the current state needs done, if it is not under way already. */
static void drive(struct job *j)
{
  if (j->dead)
    return;
  switch (j->state) {
  case JOB_QUEUED:
    if (j->delivery < 0 && start_delivery(j) < 0)
      return;
    if (j->dead)
      return;
    if (j->delivery == DELIVERY_PUSH)
      push_next(j);
    else
      write_uris(j);
    break;
  case JOB_DOWNLOADING:
    if (j->delivery == DELIVERY_PUSH)
      push_next(j);
    break;
  case JOB_DOWNLOADED:
    if (j->executed_at == 0)
      check_conflicts(j);
    break;
  case JOB_VERIFYING:
    read_components(j, true);
    break;
  default:
    break;
  }
}

static void on_kick(struct loop *loop, struct loop_timer *t, void *arg)
{
  drive(arg);
}

/* Reads the components of a job that waits for its device to say
 * something, while it waits for it. */
static void on_poll(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct job *j = arg;

  if (j->state == JOB_VERIFYING) {
    /* Back, but not confirmed yet (values read too early, or lost):
     * ask again until it is, or its time runs out. */
    if (!j->verified && j->reading == 0)
      read_components(j, true);
    if (!j->dead && !j->verified)
      loop_timer_arm(loop, &j->poll, POLL_VERIFY_MS);
    return;
  }
  if (j->state < JOB_URI_WRITTEN || j->state > JOB_DOWNLOADED)
    return;
  if (j->poll_now || loop_now(loop) - j->heard >= POLL_QUIET_MS)
    read_components(j, false);
  j->poll_now = false;
  if (!j->dead)
    loop_timer_arm(loop, &j->poll, POLL_QUIET_MS);
}

static void poll_soon(struct job *j)
{
  j->poll_now = true;
  loop_timer_arm(j->orch->loop, &j->poll, POLL_AFTER_DOWNLOAD_MS);
}

/* Moves a job on through the download steps its components allow. */
static void job_advance(struct job *j)
{
  for (;;) {
    bool all_written = true, any_dl = false, all_dl = true;
    enum job_state s = j->state;

    for (size_t i = 0; i < j->n; i++) {
      all_written = all_written && j->c[i].state >= COMP_URI_WRITTEN;
      any_dl = any_dl || j->c[i].state >= COMP_DOWNLOADING;
      all_dl = all_dl && j->c[i].state >= COMP_DOWNLOADED;
    }
    if (s == JOB_QUEUED && j->delivery == DELIVERY_PUSH && any_dl)
      job_set_state(j, JOB_DOWNLOADING, NULL, -1, NULL);
    else if (s == JOB_QUEUED && j->delivery != DELIVERY_PUSH && all_written)
      job_set_state(j, JOB_URI_WRITTEN, NULL, -1, NULL);
    else if (s == JOB_URI_WRITTEN && any_dl)
      job_set_state(j, JOB_DOWNLOADING, NULL, -1, NULL);
    else if (s == JOB_DOWNLOADING && all_dl)
      job_set_state(j, JOB_DOWNLOADED, NULL, -1, NULL);
    if (j->dead || j->state == s)
      return;
  }
}

/* Values. */

/* While the package travels: State 1 and 2 move the component on; an
 * error Result fails the job, unless it is the one the component had
 * before the job and nothing shows it started again. */
static void download_values(struct job *j, struct jcomp *c, int64_t st,
                            int64_t res)
{
  if (c->state == COMP_PENDING && !c->writing)
    return; /* nothing of ours is on its way yet */
  if (st == 1 && c->state < COMP_DOWNLOADING)
    comp_set_state(j, c, COMP_DOWNLOADING);
  else if (st == 2 && c->state < COMP_DOWNLOADED)
    comp_set_state(j, c, COMP_DOWNLOADED);
  else if (st == 0 && res >= 2 && res != 11 &&
           (c->state >= COMP_DOWNLOADING || res != c->start_result)) {
    fail_result(j, c, res);
    return;
  }
  job_advance(j);
}

static void eval_verify(struct job *j);

/* After Execute Update: Updating, a failure, or done without a reboot. */
static void update_values(struct job *j, struct jcomp *c, int64_t st,
                          int64_t res, const char *version)
{
  if (st == 3) {
    if (c->state < COMP_UPDATING)
      comp_set_state(j, c, COMP_UPDATING);
    if (j->state == JOB_DOWNLOADED)
      job_set_state(j, JOB_UPDATING, NULL, -1, "the device reports Updating");
    return;
  }
  if (res == 11) {
    /* Deferred by the user: the device installs later by itself. */
    j->update_result = 11;
    set_str(&j->detail, "the update was deferred on the device");
    if (j->state == JOB_DOWNLOADED) {
      job_set_state(j, JOB_UPDATING, NULL, 11, j->detail);
    } else {
      j->deadline_at =
          loop_wall(j->orch->loop) + state_timeout_ms(j, JOB_UPDATING);
      arm_deadline(j);
    }
    return;
  }
  if (res >= 2) {
    fail_result(j, c, res);
    return;
  }
  /* Installed without re-registering (some components do): the values
   * say so, and verification confirms them with a read. */
  if (st == 0 && res == 1 &&
      (c->oid == OBJ_FW || str_eq(version, c->version))) {
    job_set_state(j, JOB_VERIFYING, NULL, -1,
                  "installed without a new registration");
    if (j->dead || j->state != JOB_VERIFYING)
      return;
    c->v_have = true;
    c->v_state = st;
    c->v_result = res;
    if (version) {
      c->v_have_version = true;
      set_str(&c->v_version, version);
    }
    eval_verify(j);
  }
}

/* Decides a verifying job from what each component said since. */
static void eval_verify(struct job *j)
{
  bool all = true;

  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];
    char path[24];

    if (c->state == COMP_UPDATED)
      continue;
    if (!c->v_have || c->v_state == 3)
      continue; /* not heard yet, or still installing */
    comp_path(c, path, sizeof(path));
    if (c->v_result >= 2 && c->v_result != 11) {
      fail_result(j, c, c->v_result);
      return;
    }
    if (!c->v_have_version)
      continue;
    if (str_eq(c->v_version, c->version)) {
      if (c->v_result == 1)
        comp_set_state(j, c, COMP_UPDATED);
      /* The new version with another Result: wait for Result 1. */
      continue;
    }
    if (str_eq(c->v_version, c->from_version)) {
      job_fail(j, JOB_FAILED, "rollback", c->v_result,
               "%s %s came back with the old version %s, not %s", path,
               c->name ? c->name : "", c->v_version, c->version);
      return;
    }
    job_fail(j, JOB_FAILED, "wrong_version", c->v_result,
             "%s %s runs version %s, not %s", path, c->name ? c->name : "",
             c->v_version ? c->v_version : "(none)", c->version);
    return;
  }
  for (size_t i = 0; i < j->n; i++)
    all = all && j->c[i].state == COMP_UPDATED;
  if (all && j->lim.verify_window > 0) {
    /* Confirmed: it succeeds if it stays up for the window. */
    int64_t until = loop_wall(j->orch->loop) + j->lim.verify_window * 1000;

    if (!j->verified) {
      j->verified = true;
      j->deadline_at = until;
      add_event(j, json_pack("{s:s, s:I}", "verified",
                             "new version confirmed; watching for reboots",
                             "window_s", (json_int_t)j->lim.verify_window));
      arm_deadline(j);
    }
    job_commit(j);
  } else if (all) {
    job_set_state(j, JOB_SUCCEEDED, NULL, 1, NULL);
  } else {
    job_commit(j);
  }
}

/* One value set of a component (State, Result, and Current Version when
 * have_version), from a notification or a read. */
static void job_on_values(struct job *j, struct jcomp *c, int64_t st,
                          int64_t res, const char *version, bool have_version)
{
  j->heard = loop_now(j->orch->loop);
  if (res >= 0 && res != c->result) {
    c->result = res;
    c->dirty = true;
  }
  switch (j->state) {
  case JOB_QUEUED:
  case JOB_URI_WRITTEN:
  case JOB_DOWNLOADING:
    download_values(j, c, st, res);
    break;
  case JOB_DOWNLOADED:
    if (j->executed_at == 0)
      download_values(j, c, st, res);
    else
      update_values(j, c, st, res, version);
    break;
  case JOB_UPDATING:
    update_values(j, c, st, res, version);
    break;
  case JOB_VERIFYING:
    c->v_have = true;
    c->v_state = st;
    c->v_result = res;
    if (have_version) {
      c->v_have_version = true;
      set_str(&c->v_version, version);
    }
    eval_verify(j);
    break;
  default:
    break;
  }
  if (!j->dead) {
    bool dirty = json_array_size(j->events) > 0;

    for (size_t i = 0; i < j->n; i++)
      dirty = dirty || j->c[i].dirty;
    if (dirty)
      job_commit(j);
  }
}

void orch_jobs_on_component(struct orch *orch, int64_t device_id,
                            const char *ep, int oid, int iid, int64_t state,
                            int64_t result, const char *version)
{
  struct job *j = orch->jobs ? job_by_dev(orch, device_id) : NULL;
  struct jcomp *c = j ? comp_at(j, oid, iid) : NULL;

  if (!c)
    return;
  job_on_values(j, c, state, result, version, oid == OBJ_AFU && version);
}

static int64_t int_value(const struct lwm2m_value *v)
{
  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    return v->u.i;
  case LWM2M_T_UNSIGNED:
    return v->u.u > INT64_MAX ? INT64_MAX : (int64_t)v->u.u;
  default:
    return -1;
  }
}

/* Reads what the job needs of each component: the instance (State,
 * Result, Current Version), and /3/0/3 for object 5 when verifying. */
static void read_components(struct job *j, bool with_fw)
{
  int64_t id = j->id;

  if (j->reading > 0)
    return;
  for (size_t i = 0; i < j->n; i++) {
    struct jcomp *c = &j->c[i];
    struct srv_request sr = {
        .op = SRV_OP_READ,
        .path = {.id = {(uint16_t)c->oid, (uint16_t)c->iid}, .len = 2}};

    j->reading++;
    job_send(j, i, REQ_READ, &sr);
    if (!job_by_id(j->orch, id))
      return;
    if (c->oid == OBJ_FW && with_fw) {
      struct srv_request fw = {.op = SRV_OP_READ,
                               .path = {.id = {3, 0, 3}, .len = 3}};

      j->reading++;
      job_send(j, i, REQ_READ_FW, &fw);
      if (!job_by_id(j->orch, id))
        return;
    }
  }
}

/* Answers. */

static bool answer_ok(const struct srv_result *res)
{
  return res->status == 0 && (res->queued_id > 0 || (res->code >> 5) == 2);
}

static void answer_text(const struct srv_result *res, char *buf, size_t len)
{
  if (res->status == 0)
    srv_code_format(res->code, buf, len);
  else
    snprintf(buf, len, "%s", res->error ? res->error : strerror(-res->status));
}

/* Retries the current step later when the device could not answer. */
static void retry_later(struct job *j)
{
  kick(j, RETRY_MS);
}

static void write_done(struct job *j, struct jcomp *c,
                       const struct srv_result *res)
{
  char what[64], path[24];

  c->writing = false;
  if (answer_ok(res)) {
    if (c->state == COMP_PENDING)
      comp_set_state(j, c, COMP_URI_WRITTEN);
    job_commit(j);
    job_advance(j);
    return;
  }
  answer_text(res, what, sizeof(what));
  if (res->status == 0 && res->code == 0x80 && !c->reset_done) {
    /* 4.00: the component is not Idle (a package from before?). An
     * empty URI resets it; then the real one goes again. */
    log_info("job %lld: %s answered 4.00; resetting it first",
             (long long)j->id, comp_path(c, path, sizeof(path)));
    c->reset_first = true;
    kick(j, 0);
    return;
  }
  if (res->status == 0 || res->status == -EPROTO || res->status == -EINVAL) {
    job_fail(j, JOB_FAILED, "rejected", -1,
             "the Package URI write to %s/1 was refused: %s",
             comp_path(c, path, sizeof(path)), what);
    return;
  }
  /* No answer: it is written again later (or at the next registration),
   * after a reset in case it arrived. */
  c->reset_first = res->status == -ETIMEDOUT;
  c->reset_done = false;
  if (res->status != -ENOENT)
    retry_later(j);
}

static void reset_done(struct job *j, struct jcomp *c,
                       const struct srv_result *res)
{
  c->writing = false;
  if (answer_ok(res) || res->status == 0) {
    /* Reset, or refused because it was Idle already: write now. */
    c->reset_first = false;
    c->reset_done = true;
    kick(j, 0);
    return;
  }
  retry_later(j);
}

static void push_done(struct job *j, struct jcomp *c,
                      const struct srv_result *res)
{
  char what[64], path[24];

  c->writing = false;
  if (answer_ok(res)) {
    /* Stored; the device says Downloaded once it checked it. */
    poll_soon(j);
    kick(j, 0);
    return;
  }
  answer_text(res, what, sizeof(what));
  comp_path(c, path, sizeof(path));
  if (res->status == 0) {
    const char *cls = res->code == 0x8d   ? "no_flash"
                      : res->code == 0x88 ? "connection_lost"
                                          : "rejected";

    job_fail(j, JOB_FAILED, cls, -1, "the push to %s/0 was refused: %s", path,
             what);
    return;
  }
  if (res->status == -EAGAIN || res->status == -ENOENT) {
    /* Asleep or away: the push starts again when it is back. */
    if (c->state == COMP_DOWNLOADING)
      comp_set_state(j, c, COMP_PENDING);
    job_commit(j);
  }
  /* Otherwise the device's Result (4) or the deadline tells. */
}

static void conflicts_done(struct job *j, struct jcomp *c,
                           const struct srv_result *res)
{
  char path[24], list[160] = "";
  size_t off = 0;

  c->checking = false;
  if (res->status == 0 && (res->code == 0x84 || res->code == 0x85)) {
    c->conflicts_ok = true; /* no /17 on this device */
  } else if (res->status == 0 && res->code == 0x45) {
    for (size_t i = 0; i < res->values.len; i++) {
      const struct lwm2m_value *v = &res->values.v[i].v;

      if (v->type == LWM2M_T_OBJLNK && off < sizeof(list))
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s</%u/%u>",
                                off ? "," : "", v->u.lnk.oid, v->u.lnk.iid);
    }
    if (off > 0) {
      job_fail(j, JOB_FAILED, "conflict", -1,
               "%s %s lists conflicting instances %s (/17)",
               comp_path(c, path, sizeof(path)), c->name ? c->name : "", list);
      return;
    }
    c->conflicts_ok = true;
  } else {
    retry_later(j);
    return;
  }
  kick(j, 0);
}

static void execute_done(struct job *j, const struct srv_result *res)
{
  char what[64];

  j->executing = false;
  if (j->state != JOB_DOWNLOADED)
    return; /* the device told us first */
  if (res->queued_id > 0) {
    set_str(&j->detail, "Execute Update queued until the device wakes");
    job_commit(j);
    return;
  }
  if (answer_ok(res)) {
    job_set_state(j, JOB_UPDATING, NULL, -1, NULL);
    return;
  }
  answer_text(res, what, sizeof(what));
  if (res->status == -ETIMEDOUT || res->status == -ENOTCONN) {
    /* The device may have rebooted into the update before answering
     * (spec 1.9): treat it as started, and wait for it. */
    job_set_state(j, JOB_UPDATING, NULL, -1,
                  "no answer to Execute Update: it may have started");
    return;
  }
  if (res->status == 0 || res->status == -EPROTO) {
    job_fail(j, JOB_FAILED, "update_rejected", -1,
             "Execute Update was refused: %s", what);
    return;
  }
  /* Not sent at all (not registered, cannot encode): it may go again. */
  j->executed_at = 0;
  job_commit(j);
  retry_later(j);
}

static void read_done(struct job *j, struct jcomp *c, enum req_kind kind,
                      const struct srv_result *res)
{
  int64_t st = -1, result = -1;
  const char *version = NULL;
  bool have_version = false;

  j->reading--;
  if (res->status != 0 || res->code != 0x45) {
    if (j->state == JOB_VERIFYING && j->reading == 0)
      retry_later(j);
    return;
  }
  for (size_t i = 0; i < res->values.len; i++) {
    const struct lwm2m_record *r = &res->values.v[i];

    if (r->path.len < 3)
      continue;
    if (kind == REQ_READ_FW && r->path.id[0] == 3 && r->path.id[2] == 3 &&
        r->v.type == LWM2M_T_STRING) {
      version = (const char *)r->v.u.bytes.data;
      have_version = true;
    } else if (kind == REQ_READ && r->path.id[0] == c->oid &&
               r->path.id[1] == c->iid) {
      if (r->path.id[2] == 3)
        st = int_value(&r->v);
      else if (r->path.id[2] == 5)
        result = int_value(&r->v);
      else if (r->path.id[2] == 15 && c->oid == OBJ_AFU &&
               r->v.type == LWM2M_T_STRING) {
        version = (const char *)r->v.u.bytes.data;
        have_version = true;
      }
    }
  }
  if (kind == REQ_READ_FW) {
    /* Object 5's version: only verification needs it. */
    if (j->state == JOB_VERIFYING && have_version) {
      c->v_have_version = true;
      set_str(&c->v_version, version);
      eval_verify(j);
    }
    return;
  }
  if (c->oid == OBJ_AFU && !have_version)
    version = NULL;
  job_on_values(j, c, st, result, version, c->oid == OBJ_AFU && have_version);
}

static void on_answer(void *arg, const struct srv_result *res)
{
  struct req *x = arg;
  struct orch *orch = x->orch;
  struct job *j =
      x->job_id > 0 && orch->jobs ? job_by_id(orch, x->job_id) : NULL;
  struct jcomp *c = j && x->ix < j->n ? &j->c[x->ix] : NULL;
  char what[64];

  switch (x->kind) {
  case REQ_CANCEL:
    /* Cancel is refused outside Downloading and Downloaded, and is
     * optional: an empty Package URI resets too. */
    if (res->status == 0 && res->queued_id == 0 && (res->code >> 5) != 2)
      write_string(orch, NULL, 0, x->ep, x->oid, x->iid, 1, "", REQ_CLEANUP);
    goto out;
  case REQ_CLEANUP:
    if (!answer_ok(res)) {
      answer_text(res, what, sizeof(what));
      log_info("%s: reset of /%d/%d: %s", x->ep, x->oid, x->iid, what);
    }
    goto out;
  default:
    break;
  }
  if (!c)
    goto out; /* the job has finished meanwhile */
  switch (x->kind) {
  case REQ_WRITE:
    write_done(j, c, res);
    break;
  case REQ_RESET:
    reset_done(j, c, res);
    break;
  case REQ_PUSH:
    push_done(j, c, res);
    break;
  case REQ_CONFLICTS:
    conflicts_done(j, c, res);
    break;
  case REQ_EXECUTE:
    execute_done(j, res);
    break;
  case REQ_READ:
  case REQ_READ_FW:
    read_done(j, c, x->kind, res);
    break;
  default:
    break;
  }
out:
  free(x->ep);
  free(x);
}

/* Time-outs. */

static bool all_updated(const struct job *j)
{
  for (size_t i = 0; i < j->n; i++)
    if (j->c[i].state != COMP_UPDATED)
      return false;
  return true;
}

static void on_deadline(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct job *j = arg;
  bool installing = false;

  switch (j->state) {
  case JOB_URI_WRITTEN:
  case JOB_DOWNLOADING:
    job_fail(j, JOB_TIMED_OUT, "download_timeout", -1,
             "not Downloaded within %llds",
             (long long)job_timeout_s(j, j->state));
    break;
  case JOB_DOWNLOADED:
    job_fail(j, JOB_TIMED_OUT, "update_timeout", -1,
             "the update did not start within %llds",
             (long long)job_timeout_s(j, j->state));
    break;
  case JOB_UPDATING:
    job_fail(j, JOB_TIMED_OUT, "never_came_back", -1,
             "the device did not come back within %llds",
             (long long)job_timeout_s(j, j->state));
    break;
  case JOB_VERIFYING:
    if (all_updated(j)) {
      job_set_state(j, JOB_SUCCEEDED, NULL, 1,
                    "stayed up with the new version through the "
                    "verification window");
      break;
    }
    for (size_t i = 0; i < j->n; i++)
      installing = installing || (j->c[i].v_have && j->c[i].v_state == 3);
    job_fail(j, JOB_TIMED_OUT, installing ? "stuck_updating" : "unverified",
             -1,
             installing ? "the device came back but stays in Updating"
                        : "the device came back but did not confirm the "
                          "new version with Update Result 1");
    break;
  default:
    break;
  }
}

/* Server events. */

/* Checks that the device came back since Execute, and verifies it. */
static void came_back(struct job *j, const char *why)
{
  if (j->state == JOB_DOWNLOADED && j->executed_at > 0)
    job_set_state(j, JOB_UPDATING, NULL, -1, why);
  if (j->state == JOB_UPDATING)
    job_set_state(j, JOB_VERIFYING, NULL, -1, why);
  else if (j->state == JOB_VERIFYING)
    read_components(j, true);
}

static void on_registered(void *arg, const char *ep, bool replaced,
                          int64_t device_id,
                          const struct db_object_link *links, size_t n)
{
  struct orch *orch = arg;
  struct job *j = job_by_dev(orch, device_id);

  if (!j)
    return;
  if (j->state == JOB_VERIFYING) {
    /* Again: what it said before this registration no longer counts. */
    for (size_t i = 0; i < j->n; i++)
      j->c[i].v_have = j->c[i].v_have_version = false;
    j->reboots++;
    if (j->lim.verify_window > 0 && j->reboots > j->lim.max_reboots) {
      job_fail(j, JOB_FAILED, "reboot_loop", -1,
               "the device registered %d more time%s after coming back "
               "with the new version (at most %lld allowed)",
               j->reboots, j->reboots > 1 ? "s" : "",
               (long long)j->lim.max_reboots);
      return;
    }
    add_event(j, json_pack("{s:s, s:i}", "event",
                           "registered again while "
                           "verifying",
                           "reboots", j->reboots));
    job_commit(j);
  }
  if (j->state >= JOB_DOWNLOADED && j->executed_at > 0)
    came_back(j, "the device registered again");
  else
    kick(j, 0);
}

static void on_updated(void *arg, const char *ep, int64_t device_id,
                       const struct db_object_link *links, size_t n)
{
  struct orch *orch = arg;
  struct job *j = job_by_dev(orch, device_id);
  struct srv_reg_info ri;

  if (!j)
    return;
  /* A registration newer than Execute means the device came back while
   * we were not listening (fotad restarted). */
  if (j->executed_at > 0 && srv_reg_info(orch->srv, ep, &ri) == 0 &&
      ri.registered_at > j->executed_at &&
      (j->state == JOB_DOWNLOADED || j->state == JOB_UPDATING)) {
    came_back(j, "the device registered again while fotad was down");
    return;
  }
  if (j->reconcile || loop_now(orch->loop) - j->heard >= RECONCILE_MS) {
    j->reconcile = false;
    read_components(j, j->state >= JOB_UPDATING);
  }
  if (!j->dead)
    kick(j, 0);
}

static void on_reached(void *arg, const char *ep, int64_t device_id)
{
  on_updated(arg, ep, device_id, NULL, 0);
}

static void on_deregistered(void *arg, const char *ep, const char *why)
{
  struct orch *orch = arg;
  struct job *j = job_by_ep(orch, ep);

  /* After Execute, going away is how an update starts. */
  if (j && j->state == JOB_DOWNLOADED && j->executed_at > 0)
    job_set_state(j, JOB_UPDATING, NULL, -1, "the device went away");
}

const struct srv_events orch_job_events = {
    .registered = on_registered,
    .updated = on_updated,
    .reached = on_reached,
    .deregistered = on_deregistered,
};

/* Progress. */

const char *orch_jobs_package_token(const struct orch *orch, const char *token)
{
  const struct jcomp *c = orch->jobs ? comp_by_token(orch, token) : NULL;

  return c ? c->token : NULL;
}

/* The component of a job a download belongs to: by the job's own token,
 * else by the device's endpoint and the package's token. */
static struct jcomp *comp_of_download(const struct orch *orch,
                                      const char *token, const char *ep)
{
  struct jcomp *c = comp_by_token(orch, token);
  struct job *j;

  if (c || !ep)
    return c;
  j = job_by_ep(orch, ep);
  for (size_t i = 0; j && i < j->n; i++)
    if (str_eq(j->c[i].token, token))
      return &j->c[i];
  return NULL;
}

struct orch_job_progress *orch_jobs_progress_of(struct orch *orch,
                                                const char *token,
                                                const char *ep, bool *first)
{
  struct jcomp *c = orch->jobs ? comp_of_download(orch, token, ep) : NULL;

  if (!c)
    return NULL;
  *first = c->progress.blocks == 0;
  return &c->progress;
}

void orch_jobs_download_done(struct orch *orch, const char *token,
                             const char *ep)
{
  struct jcomp *c = comp_of_download(orch, token, ep);

  /* The device checks the package now and should say Downloaded. */
  if (c && c->state < COMP_DOWNLOADED)
    poll_soon(c->job);
}

void orch_jobs_download_seen(struct orch *orch, const char *token,
                             const char *ep)
{
  struct jcomp *c = comp_of_download(orch, token, ep);
  struct job *j = c ? c->job : NULL;

  /* Blocks flowing say Downloading, whatever notifications do. */
  if (j && c->state == COMP_URI_WRITTEN &&
      (j->state == JOB_URI_WRITTEN || j->state == JOB_QUEUED)) {
    j->heard = loop_now(orch->loop);
    comp_set_state(j, c, COMP_DOWNLOADING);
    job_commit(j);
    job_advance(j);
  }
}

int orch_job_progress(const struct orch *orch, int64_t job_id,
                      int64_t component_id, struct orch_job_progress *out)
{
  struct job *j = orch->jobs ? job_by_id(orch, job_id) : NULL;

  for (size_t i = 0; j && i < j->n; i++) {
    if (j->c[i].component_id == component_id) {
      *out = j->c[i].progress;
      return 0;
    }
  }
  return -ENOENT;
}

void orch_set_http_port(struct orch *orch, int port, bool https)
{
  orch->jobs->http_port = port;
  orch->jobs->https = https;
}

void orch_jobs_set_done_cb(struct orch *orch,
                           void (*cb)(void *arg,
                                      const struct orch_job_outcome *o),
                           void *arg)
{
  orch->jobs->done_cb = cb;
  orch->jobs->done_arg = arg;
}

/* Creation. */

struct dev_comps {
  struct comp_row rows[64];
  int oid[64], iid[64];
  size_t n;
};

static void got_dev_comp(void *arg, const struct db_component *c)
{
  struct dev_comps *dc = arg;

  if (dc->n == ARRAY_SIZE(dc->rows))
    return;
  got_comp_row(&dc->rows[dc->n], c);
  dc->oid[dc->n] = c->oid;
  dc->iid[dc->n] = c->iid;
  dc->n++;
}

struct pkg {
  bool found;
  int64_t id;
  char *component, *version, *token, *mcuboot;
  int64_t size;
  bool forced;
};

static void got_pkg(void *arg, const struct db_job_package *p)
{
  struct pkg *k = arg;

  k->found = true;
  k->id = p->id;
  set_str(&k->component, p->component);
  set_str(&k->version, p->version);
  set_str(&k->token, p->download_token);
  set_str(&k->mcuboot, p->mcuboot);
  k->size = p->size;
  k->forced = p->forced;
}

static void pkg_clear(struct pkg *k)
{
  free(k->component);
  free(k->version);
  free(k->token);
  free(k->mcuboot);
}

/* Lists the device's component names for an error message. */
static void names_of(const struct dev_comps *dc, char *buf, size_t len)
{
  size_t off = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < dc->n && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                            dc->oid[i] == OBJ_FW ? "/5/0"
                            : dc->rows[i].name   ? dc->rows[i].name
                                                 : "(unnamed)");
  if (off == 0)
    snprintf(buf, len, "no firmware components");
}

int orch_job_start(struct orch *orch, const struct orch_job_spec *spec,
                   int64_t *job_id, char *err, size_t errlen)
{
  struct dev_comps *dc = xcalloc(1, sizeof(*dc));
  struct pkg pk[JOB_MAX_COMPONENTS] = {{0}};
  size_t match[JOB_MAX_COMPONENTS];
  size_t n = spec->npackages;
  int64_t device_id, active;
  struct srv_reg_info ri;
  struct job *j = NULL;
  struct db_job row = {0};
  char names[256];
  json_t *pkgs;
  int rc;

  if (n == 0 || n > JOB_MAX_COMPONENTS) {
    snprintf(err, errlen, "packages: expected 1 to %d package ids",
             JOB_MAX_COMPONENTS);
    rc = -EINVAL;
    goto out;
  }
  rc = db_device_id(orch->db, spec->ep, &device_id);
  if (rc < 0) {
    snprintf(err, errlen, "no device '%s'", spec->ep);
    rc = rc == -ENOENT ? -ENODEV : -EIO;
    goto out;
  }
  rc = db_job_active_of_device(orch->db, device_id, &active);
  if (rc == 0) {
    snprintf(err, errlen, "device '%s' has an active job (%lld)", spec->ep,
             (long long)active);
    rc = -EEXIST;
    goto out;
  }
  if (rc != -ENOENT ||
      db_components_of_device(orch->db, device_id, got_dev_comp, dc) < 0) {
    snprintf(err, errlen, "cannot read the device's jobs and components");
    rc = -EIO;
    goto out;
  }
  names_of(dc, names, sizeof(names));
  for (size_t i = 0; i < n; i++) {
    size_t k, fw = SIZE_MAX;

    rc = db_job_package_get(orch->db, spec->packages[i], got_pkg, &pk[i]);
    if (rc < 0) {
      snprintf(err, errlen, "no package %lld", (long long)spec->packages[i]);
      rc = rc == -ENOENT ? -ENOENT : -EIO;
      goto out;
    }
    if (!spec->force && !pk[i].forced && str_eq(pk[i].mcuboot, "invalid")) {
      snprintf(err, errlen,
               "package %lld (%s %s) is an MCUboot image that failed "
               "verification; it may only be rolled out with force",
               (long long)pk[i].id, pk[i].component, pk[i].version);
      rc = -EPERM;
      goto out;
    }
    for (k = 0; k < dc->n; k++) {
      if (dc->oid[k] == OBJ_AFU && str_eq(dc->rows[k].name, pk[i].component))
        break;
      if (dc->oid[k] == OBJ_FW)
        fw = k;
    }
    if (k == dc->n)
      k = fw;
    if (k == SIZE_MAX) {
      snprintf(err, errlen,
               "device '%s' has no component '%s' (package %lld); it has: %s",
               spec->ep, pk[i].component, (long long)pk[i].id, names);
      rc = -ENXIO;
      goto out;
    }
    match[i] = k;
    for (size_t p = 0; p < i; p++) {
      if (match[p] == k) {
        snprintf(err, errlen,
                 "packages %lld and %lld both go to /%d/%d of '%s'",
                 (long long)pk[p].id, (long long)pk[i].id, dc->oid[k],
                 dc->iid[k], spec->ep);
        rc = -EINVAL;
        goto out;
      }
      if (dc->oid[match[p]] != dc->oid[k]) {
        snprintf(err, errlen,
                 "object 5 and object 33629 components cannot be updated "
                 "together: one job per object");
        rc = -EINVAL;
        goto out;
      }
    }
    if (dc->rows[k].state == 3) {
      snprintf(err, errlen,
               "/%d/%d of '%s' is installing an update (State 3); try "
               "again when it is done",
               dc->oid[k], dc->iid[k], spec->ep);
      rc = -EBUSY;
      goto out;
    }
    if (!spec->force && dc->oid[k] == OBJ_AFU &&
        str_eq(dc->rows[k].version, pk[i].version)) {
      snprintf(err, errlen,
               "'%s' already runs %s %s; use force to install it again",
               spec->ep, pk[i].component, pk[i].version);
      rc = -EINVAL;
      goto out;
    }
  }
  /* Delivery is chosen when the job starts; refuse now what cannot be
   * done at all. */
  if (srv_reg_info(orch->srv, spec->ep, &ri) == 0) {
    const struct comp_row *r = &dc->rows[match[0]];

    rc = choose_delivery(orch, r->protocols, r->method, ri.security, err,
                         errlen);
    if (rc < 0)
      goto out;
    for (size_t i = 0; rc == DELIVERY_PUSH && i < n; i++) {
      if (pk[i].size > orch->cfg.job_push_max_size) {
        snprintf(err, errlen,
                 "package %lld has %lld bytes; the device only takes "
                 "pushes, and job_push_max_size is %lld",
                 (long long)pk[i].id, (long long)pk[i].size,
                 (long long)orch->cfg.job_push_max_size);
        rc = -EINVAL;
        goto out;
      }
    }
  }

  row.rollout_id = spec->rollout_id;
  row.device_id = device_id;
  row.state = job_state_names[JOB_QUEUED];
  row.attempt = spec->attempt;
  row.forced = spec->force;
  row.created_at = loop_wall(orch->loop);
  row.download_timeout = spec->limits.download_timeout;
  row.update_timeout = spec->limits.update_timeout;
  row.reboot_timeout = spec->limits.reboot_timeout;
  row.verify_window = spec->limits.verify_window;
  row.max_reboots = spec->limits.max_reboots;
  rc = db_action_begin(orch->db);
  if (rc == 0)
    rc = db_job_add(orch->db, &row);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const struct comp_row *r = &dc->rows[match[i]];
    struct db_job_component jc = {
        .job_id = row.id,
        .component_id = r->id,
        .package_id = pk[i].id,
        .position = (int)i,
        .oid = dc->oid[match[i]],
        .iid = dc->iid[match[i]],
        .state = comp_state_names[COMP_PENDING],
        .from_version = r->version,
        .start_result = r->result,
        .updated_at = row.created_at,
    };

    rc = db_job_component_add(orch->db, &jc);
  }
  pkgs = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(
        pkgs,
        json_pack("{s:I, s:s, s:s, s:s}", "package", (json_int_t)pk[i].id,
                  "component", pk[i].component, "version", pk[i].version,
                  "path", dc->oid[match[i]] == OBJ_FW ? "/5/0" : "/33629"));
  if (rc == 0) {
    json_t *ev =
        json_pack("{s:I, s:s, s:O, s:b}", "job_id", (json_int_t)row.id, "to",
                  "queued", "packages", pkgs, "force", spec->force);
    char *data = json_dumps(ev, JSON_COMPACT);

    rc = db_timeline_add(orch->db, row.created_at, "job", device_id, spec->ep,
                         row.id, spec->rollout_id, data);
    free(data);
    json_decref(ev);
  }
  if (rc == 0)
    rc = orch_audit(orch, spec->audit, "job.create", "jobs", row.id,
                    json_pack("{s:s, s:O, s:b}", "endpoint", spec->ep,
                              "packages", pkgs, "force", spec->force));
  json_decref(pkgs);
  if (rc == 0 && spec->stored)
    rc = spec->stored(spec->stored_arg, row.id);
  if (rc == 0)
    rc = db_action_end(orch->db, true);
  if (rc < 0) {
    db_action_end(orch->db, false);
    snprintf(err, errlen, "cannot store the job");
    rc = rc == -EEXIST ? -EEXIST : -EIO;
    goto out;
  }

  j = job_alloc(orch, row.id, device_id, spec->ep, n);
  j->rollout_id = spec->rollout_id;
  j->attempt = spec->attempt;
  j->forced = spec->force;
  j->lim = spec->limits;
  j->state = JOB_QUEUED;
  j->created_at = j->updated_at = row.created_at;
  for (size_t i = 0; i < n; i++) {
    struct jcomp *c = &j->c[i];
    const struct comp_row *r = &dc->rows[match[i]];

    c->component_id = r->id;
    c->package_id = pk[i].id;
    c->oid = dc->oid[match[i]];
    c->iid = dc->iid[match[i]];
    c->state = COMP_PENDING;
    c->name = r->name ? xstrdup(r->name) : NULL;
    c->version = xstrdup(pk[i].version);
    c->from_version = r->version ? xstrdup(r->version) : NULL;
    c->token = xstrdup(pk[i].token);
    c->start_result = r->result;
    c->result = r->result;
    c->progress.size = pk[i].size;
    /* A component that is not Idle is reset before its URI goes. */
    c->reset_first = r->state == 1 || r->state == 2;
  }
  log_info("job %lld: created for %s (%zu component%s)", (long long)row.id,
           spec->ep, n, n > 1 ? "s" : "");
  *job_id = row.id;
  kick(j, 0);
  rc = 0;
out:
  for (size_t i = 0; i < n && i < JOB_MAX_COMPONENTS; i++)
    pkg_clear(&pk[i]);
  for (size_t i = 0; i < dc->n; i++)
    comp_row_clear(&dc->rows[i]);
  free(dc);
  return rc;
}

int orch_job_create(struct orch *orch, const char *ep, const int64_t *packages,
                    size_t n, bool force, const struct db_audit *audit,
                    int64_t *job_id, char *err, size_t errlen)
{
  struct orch_job_spec spec = {.ep = ep,
                               .packages = packages,
                               .npackages = n,
                               .force = force,
                               .audit = audit};

  return orch_job_start(orch, &spec, job_id, err, errlen);
}

struct job_row {
  bool found;
  char state[32];
};

static void got_job_state(void *arg, const struct db_job *j)
{
  struct job_row *r = arg;

  r->found = true;
  snprintf(r->state, sizeof(r->state), "%s", j->state);
}

int orch_job_cancel(struct orch *orch, int64_t job_id,
                    const struct db_audit *audit, char *err, size_t errlen)
{
  struct job *j = job_by_id(orch, job_id);
  struct job_row r = {0};
  int rc;

  if (!j) {
    rc = db_job_get(orch->db, job_id, got_job_state, &r);
    if (rc == -ENOENT) {
      snprintf(err, errlen, "no job %lld", (long long)job_id);
      return -ENOENT;
    }
    if (rc < 0) {
      snprintf(err, errlen, "cannot read job %lld", (long long)job_id);
      return -EIO;
    }
    snprintf(err, errlen, "job %lld has finished (%s)", (long long)job_id,
             r.state);
    return -EALREADY;
  }
  if (j->executed_at > 0 || j->state >= JOB_UPDATING) {
    snprintf(err, errlen,
             "job %lld: the installation has started (%s); it cannot be "
             "cancelled",
             (long long)job_id, job_state_names[j->state]);
    return -EBUSY;
  }
  if (audit) {
    if (db_action_begin(orch->db) < 0 ||
        orch_audit(orch, audit, "job.cancel", "jobs", job_id, NULL) < 0) {
      db_action_end(orch->db, false);
      snprintf(err, errlen, "cannot store the audit row");
      return -EIO;
    }
    /* The transition's own unit nests in this one. */
    job_set_state(j, JOB_CANCELLED, NULL, -1, "cancelled by the operator");
    if (db_action_end(orch->db, true) < 0) {
      snprintf(err, errlen, "cannot store the cancellation");
      return -EIO;
    }
    return 0;
  }
  job_set_state(j, JOB_CANCELLED, NULL, -1, "cancelled by the operator");
  return 0;
}

/* Start-up: the active jobs, from the database. */

struct load_ctx {
  struct orch *orch;
  int loaded;
};

static void got_job_comp(void *arg, const struct db_job_component *r)
{
  struct job *j = arg;
  struct jcomp *c = &j->c[r->position < (int)j->n ? r->position : 0];

  if (r->position >= (int)j->n || c->token || !r->pkg_token)
    return; /* no package: the job is left alone as inconsistent */
  c->component_id = r->component_id;
  c->package_id = r->package_id;
  c->oid = r->oid;
  c->iid = r->iid;
  if (comp_state_parse(r->state, &c->state) < 0)
    c->state = COMP_PENDING;
  c->name = r->name ? xstrdup(r->name) : NULL;
  c->version = xstrdup(r->pkg_version);
  c->from_version = r->from_version ? xstrdup(r->from_version) : NULL;
  c->token = xstrdup(r->pkg_token);
  c->uri = r->uri ? xstrdup(r->uri) : NULL;
  c->start_result = r->start_result;
  c->result = r->result;
  c->progress.blocks = r->blocks;
  c->progress.bytes = r->bytes;
  c->progress.offset = r->bytes < r->pkg_size ? r->bytes : r->pkg_size;
  c->progress.size = r->pkg_size;
  c->progress.last_block_at = r->last_block_at;
  c->sent = c->state != COMP_PENDING || (r->uri && r->uri[0]);
}

/* A reloaded CoAP job finds its own tokens in its URIs. */
static void reload_tokens(struct job *j)
{
  for (size_t i = 0; j->delivery >= 0 && j->delivery <= 1 && i < j->n; i++) {
    const char *t = j->c[i].uri ? strstr(j->c[i].uri, "/fw/") : NULL;

    if (t && t[4])
      set_dl_token(j->orch, &j->c[i], t + 4);
  }
}

struct count_ctx {
  size_t n;
};

static void count_comp(void *arg, const struct db_job_component *r)
{
  ((struct count_ctx *)arg)->n++;
}

static void got_active(void *arg, const struct db_job *r)
{
  struct load_ctx *lc = arg;
  struct orch *orch = lc->orch;
  struct count_ctx cc = {0};
  enum job_state s;
  struct job *j;
  bool complete = true;

  if (orch_job_state_parse(r->state, &s) < 0 || orch_job_state_final(s)) {
    log_warn("job %lld: unknown state '%s'; left alone", (long long)r->id,
             r->state);
    return;
  }
  if (db_job_components(orch->db, r->id, count_comp, &cc) < 0 || cc.n == 0 ||
      cc.n > JOB_MAX_COMPONENTS) {
    log_warn("job %lld: its components cannot be read; left alone",
             (long long)r->id);
    return;
  }
  j = job_alloc(orch, r->id, r->device_id, r->endpoint, cc.n);
  j->rollout_id = r->rollout_id;
  j->state = s;
  j->attempt = r->attempt;
  j->forced = r->forced;
  j->failure_class = r->failure_class ? xstrdup(r->failure_class) : NULL;
  j->detail = r->detail ? xstrdup(r->detail) : NULL;
  for (size_t i = 0; r->delivery && i < ARRAY_SIZE(delivery_names); i++)
    if (strcmp(r->delivery, delivery_names[i]) == 0)
      j->delivery = (int)i;
  j->update_result = r->update_result;
  j->created_at = r->created_at;
  j->updated_at = r->updated_at;
  j->started_at = r->started_at;
  j->executed_at = r->executed_at;
  j->deadline_at = r->deadline_at;
  j->lim = (struct orch_job_limits){
      .download_timeout = r->download_timeout,
      .update_timeout = r->update_timeout,
      .reboot_timeout = r->reboot_timeout,
      .verify_window = r->verify_window,
      .max_reboots = r->max_reboots,
  };
  db_job_components(orch->db, r->id, got_job_comp, j);
  for (size_t i = 0; i < j->n; i++)
    complete = complete && j->c[i].token;
  if (!complete) {
    log_warn("job %lld: its components are inconsistent; left alone",
             (long long)r->id);
    job_bury(j);
    return;
  }
  reload_tokens(j);
  j->reconcile = true;
  lc->loaded++;
}

/*
 * Brings a reloaded job up to date with what component tracking stored
 * while it was down (or before it stopped), then lets it go on.
 */
static void recover(struct job *j)
{
  struct orch *orch = j->orch;
  struct srv_reg_info ri;
  int64_t id = j->id;

  /* A deadline that passed while fotad was down gets a grace period. */
  if (j->deadline_at > 0) {
    int64_t now = loop_wall(orch->loop);
    int64_t grace = state_timeout_ms(j, j->state);

    if (grace > RECOVERY_GRACE_MS)
      grace = RECOVERY_GRACE_MS;
    if (j->deadline_at < now + grace)
      j->deadline_at = now + grace;
    arm_deadline(j);
  }
  if ((j->state == JOB_UPDATING || j->state == JOB_DOWNLOADED) &&
      j->executed_at > 0) {
    if (srv_reg_info(orch->srv, j->ep, &ri) == 0 &&
        ri.registered_at > j->executed_at)
      came_back(j, "the device registered again while fotad was down");
    return;
  }
  if (j->state <= JOB_DOWNLOADED && j->started_at > 0) {
    for (size_t i = 0; i < j->n && job_by_id(orch, id); i++) {
      struct jcomp *c = &j->c[i];
      struct comp_row row = {0};

      /* Values stored after the job started are answers to it; a URI
       * write whose answer was lost shows as Downloading here. */
      if (db_component_get(orch->db, j->device_id, c->oid, c->iid,
                           got_comp_row, &row) == 0 &&
          row.found && row.updated_at >= j->started_at) {
        if (c->state == COMP_PENDING && c->uri &&
            (row.state == 1 || row.state == 2))
          comp_set_state(j, c, COMP_URI_WRITTEN);
        job_on_values(j, c, row.state, row.result, row.version,
                      c->oid == OBJ_AFU && row.version);
      }
      comp_row_clear(&row);
    }
  }
  if (!job_by_id(orch, id))
    return;
  if (j->state == JOB_VERIFYING)
    loop_timer_arm(orch->loop, &j->poll, POLL_VERIFY_MS);
  /* What the device did while fotad was down (a download finished, or
   * failed) is only known by asking: now, not at its next Update. */
  if (j->reconcile && j->state >= JOB_URI_WRITTEN &&
      j->state <= JOB_DOWNLOADED && j->executed_at == 0) {
    j->reconcile = false;
    read_components(j, false);
  }
  if (job_by_id(orch, id))
    drive(j);
}

static void on_startup(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct orch *orch = arg;
  struct orch_jobs *js = orch->jobs;
  int64_t *ids = xcalloc(js->by_id.len + 1, sizeof(*ids));
  size_t n = 0;

  /* recover() may finish jobs: walk a copy of the ids. */
  for (size_t i = 0; i < js->by_id.nbuckets; i++)
    for (struct hmap_node *nd = js->by_id.buckets[i]; nd; nd = nd->next)
      ids[n++] = container_of(nd, struct job, by_id)->id;
  for (size_t i = 0; i < n; i++) {
    struct job *j = job_by_id(orch, ids[i]);

    if (j)
      recover(j);
  }
  free(ids);
}

int orch_jobs_init(struct orch *orch, char *err, size_t errlen)
{
  struct orch_jobs *js = xcalloc(1, sizeof(*js));
  struct load_ctx lc = {.orch = orch};

  orch->jobs = js;
  hmap_init(&js->by_id);
  hmap_init(&js->by_dev);
  hmap_init(&js->by_ep);
  hmap_init(&js->by_token);
  loop_timer_init(&js->reaper, on_reaper, js);
  loop_timer_init(&js->startup, on_startup, orch);
  js->host = xstrdup(orch->cfg.download_host && orch->cfg.download_host[0]
                         ? orch->cfg.download_host
                         : "127.0.0.1");
  orch->cfg.download_host = js->host;
  if (db_jobs_active(orch->db, got_active, &lc) < 0) {
    snprintf(err, errlen, "cannot load the active update jobs");
    return -EIO;
  }
  if (lc.loaded > 0)
    log_info("%d active update job%s resumed", lc.loaded,
             lc.loaded > 1 ? "s" : "");
  /* The server's listeners and sessions are up once the loop runs. */
  loop_timer_arm(orch->loop, &js->startup, 0);
  return 0;
}

void orch_jobs_free(struct orch *orch)
{
  struct orch_jobs *js = orch->jobs;

  if (!js)
    return;
  loop_timer_disarm(orch->loop, &js->startup);
  loop_timer_disarm(orch->loop, &js->reaper);
  for (size_t i = 0; i < js->by_id.nbuckets; i++) {
    struct hmap_node *n = js->by_id.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct job *j = container_of(n, struct job, by_id);

      loop_timer_disarm(orch->loop, &j->deadline);
      loop_timer_disarm(orch->loop, &j->kick);
      loop_timer_disarm(orch->loop, &j->poll);
      job_free(j);
      n = next;
    }
  }
  while (js->dead) {
    struct job *j = js->dead;

    js->dead = j->next_dead;
    job_free(j);
  }
  hmap_destroy(&js->by_id);
  hmap_destroy(&js->by_dev);
  hmap_destroy(&js->by_ep);
  hmap_destroy(&js->by_token);
  free(js->host);
  free(js);
  orch->jobs = NULL;
}
