/*
 * Staged rollouts: create (and dry-run) a rollout from a JSON spec,
 * list and show them with their progress and gates, start, pause,
 * resume and abort them, list their cohorts, their devices' jobs (with
 * each job's timeline) and their own timeline. The orchestrator runs
 * them (orchestrator/rollouts.c); docs/rollouts.md has the spec.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define ROLLOUTS_PAGE_MAX 200
#define MEMBERS_PAGE_MAX 1000
#define EVENTS_MAX 500

static bool orch_ready(struct api_req *req)
{
  if (req->api->orch)
    return true;
  api_reply_error(req, 503, "unavailable", "rollouts are not running");
  return false;
}

static int rollout_id_param(struct api_req *req, int64_t *id)
{
  if (parse_int64(req->params[0], 1, INT64_MAX, id) < 0) {
    api_reply_error(req, 404, "not_found", "no rollout '%s'", req->params[0]);
    return -EINVAL;
  }
  return 0;
}

/* Replies 404 (or 500) unless rollout id exists. */
static bool rollout_found(struct api_req *req, int64_t id)
{
  int rc = orch_rollout_exists(req->api->orch, id);

  if (rc == -ENOENT)
    api_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
  else if (rc < 0)
    api_reply_error(req, 500, "internal", "cannot read rollout %lld",
                    (long long)id);
  return rc == 0;
}

/* Replies to an orchestrator error. */
static void reply_rc(struct api_req *req, int rc, const char *err)
{
  const char *sep = strstr(err, ": ");
  char field[80];

  switch (rc) {
  case -EINVAL:
    /* "targets.filter[0]: expected ..." names the field. */
    if (sep && (size_t)(sep - err) < sizeof(field) &&
        !memchr(err, ' ', (size_t)(sep - err))) {
      memcpy(field, err, (size_t)(sep - err));
      field[sep - err] = '\0';
      api_reply_invalid(req, field, "%s", sep + 2);
    } else {
      api_reply_error(req, 400, "invalid_spec", "%s", err);
    }
    break;
  case -ENOENT:
    api_reply_error(req, 422, "unknown_package", "%s", err);
    break;
  case -EPERM:
    api_reply_error(req, 422, "package_not_allowed", "%s", err);
    break;
  case -EBUSY:
    api_reply_error(req, 409, "conflict", "%s", err);
    break;
  default:
    api_reply_error(req, 500, "internal", "%s",
                    err[0] ? err : "cannot store the rollout");
    break;
  }
}

static json_t *spec_body(struct api_req *req)
{
  json_t *body = api_body_json(req);

  if (body && !json_is_object(body)) {
    api_reply_error(req, 400, "bad_request", "a JSON object body is required");
    json_decref(body);
    return NULL;
  }
  return body;
}

/* POST /api/v1/rollouts: 201 with the rollout, in state created. */
void api_create_rollout(struct api_req *req)
{
  struct api *api = req->api;
  struct db_audit a;
  char remote[64], err[512] = "", location[48];
  json_t *body, *out;
  int64_t id = 0;
  int rc;

  if (!orch_ready(req) || !(body = spec_body(req)))
    return;
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_rollout_create(api->orch, body, &a, &id, err, sizeof(err));
  json_decref(body);
  if (rc < 0) {
    reply_rc(req, rc, err);
    return;
  }
  if (orch_rollout_get(api->orch, id, &out) < 0) {
    api_reply_error(req, 500, "internal", "rollout %lld not readable",
                    (long long)id);
    return;
  }
  snprintf(location, sizeof(location), "/api/v1/rollouts/%lld", (long long)id);
  api_add_header(req, "Location", location);
  api_reply_json(req, 201, out);
}

/* POST /api/v1/rollouts/dry-run: the cohorts of a spec, nothing stored. */
void api_dry_run_rollout(struct api_req *req)
{
  char err[512] = "";
  json_t *body, *out;
  int rc;

  if (!orch_ready(req) || !(body = spec_body(req)))
    return;
  out = orch_rollout_dry_run(req->api->orch, body, &rc, err, sizeof(err));
  json_decref(body);
  if (!out) {
    reply_rc(req, rc, err);
    return;
  }
  api_reply_json(req, 200, out);
}

struct list_ctx {
  struct api *api;
  json_t *arr;
  int64_t last;
};

static void got_rollout(void *arg, const struct db_rollout *r)
{
  struct list_ctx *lc = arg;
  json_t *o = orch_rollout_json(lc->api->orch, r, false);

  if (o)
    json_array_append_new(lc->arr, o);
  lc->last = r->id;
}

static const char *const rollout_states[] = {
    "created", "running", "paused", "completed", "aborted", "expired", NULL};

static bool one_of(const char *s, const char *const *set)
{
  for (size_t i = 0; set[i]; i++)
    if (strcmp(set[i], s) == 0)
      return true;
  return false;
}

/* GET /api/v1/rollouts?state=&cursor=&limit=: newest first. */
void api_list_rollouts(struct api_req *req)
{
  struct list_ctx lc = {.api = req->api};
  const char *state = api_query(req, "state");
  int64_t before;
  int limit;
  char next[24];

  if (!orch_ready(req) ||
      api_query_limit(req, 50, ROLLOUTS_PAGE_MAX, &limit) < 0 ||
      api_query_cursor_id(req, &before) < 0)
    return;
  if (state && !one_of(state, rollout_states)) {
    api_reply_invalid(req, "state",
                      "expected created, running, paused, completed, "
                      "aborted or expired");
    return;
  }
  lc.arr = json_array();
  if (db_rollouts_list(req->api->db, state, before, limit, got_rollout, &lc) <
      0) {
    json_decref(lc.arr);
    api_reply_error(req, 500, "internal", "cannot list the rollouts");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)lc.last);
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:s?}", "rollouts", lc.arr, "next_cursor",
                json_array_size(lc.arr) == (size_t)limit ? next : NULL));
}

/* GET /api/v1/rollouts/{id} */
void api_get_rollout(struct api_req *req)
{
  int64_t id;
  json_t *out;
  int rc;

  if (!orch_ready(req) || rollout_id_param(req, &id) < 0)
    return;
  rc = orch_rollout_get(req->api->orch, id, &out);
  if (rc == -ENOENT)
    api_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
  else if (rc < 0)
    api_reply_error(req, 500, "internal", "cannot read rollout %lld",
                    (long long)id);
  else
    api_reply_json(req, 200, out);
}

/* POST /api/v1/rollouts/{id}/{action}: start, pause, resume, abort. */
void api_rollout_action(struct api_req *req)
{
  static const char *const actions[] = {"start", "pause", "resume", "abort",
                                        NULL};
  struct db_audit a;
  char remote[64], err[512] = "";
  const char *action = req->params[1];
  int64_t id;
  json_t *out;
  int rc;

  if (!orch_ready(req) || rollout_id_param(req, &id) < 0)
    return;
  if (!one_of(action, actions)) {
    api_reply_error(req, 404, "not_found",
                    "no action '%s': expected start, pause, resume or abort",
                    action);
    return;
  }
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_rollout_control(req->api->orch, id, action, &a, err, sizeof(err));
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "%s", err);
    return;
  }
  if (rc < 0) {
    reply_rc(req, rc, err);
    return;
  }
  if (orch_rollout_get(req->api->orch, id, &out) < 0) {
    api_reply_error(req, 500, "internal", "rollout %lld not readable",
                    (long long)id);
    return;
  }
  api_reply_json(req, 200, out);
}

/* GET /api/v1/rollouts/{id}/cohorts */
void api_get_rollout_cohorts(struct api_req *req)
{
  char err[512] = "";
  int64_t id;
  json_t *out;
  int rc;

  if (!orch_ready(req) || rollout_id_param(req, &id) < 0)
    return;
  rc = orch_rollout_cohorts(req->api->orch, id, &out, err, sizeof(err));
  if (rc == -ENOENT)
    api_reply_error(req, 404, "not_found", "no rollout %lld", (long long)id);
  else if (rc < 0)
    reply_rc(req, rc, err);
  else
    api_reply_json(req, 200, out);
}

static void add_event(void *arg, const struct db_event *e)
{
  json_t *data = e->data ? json_loads(e->data, 0, NULL) : NULL;

  json_array_append_new(
      arg, json_pack("{s:I, s:o, s:s, s:s?, s:o}", "id", (json_int_t)e->id,
                     "at", api_time(e->at), "type", e->type, "endpoint",
                     e->endpoint, "data", data ? data : json_null()));
}

struct members_ctx {
  struct api *api;
  json_t *arr;
  bool timeline;
  int64_t last;
};

static void got_member(void *arg, const struct db_member *m)
{
  struct members_ctx *mc = arg;
  json_t *o = json_pack(
      "{s:s, s:I, s:s, s:I, s:o, s:s?, s:s?, s:s?, s:s?, s:o, s:o}",
      "endpoint", m->endpoint, "stage", (json_int_t)m->stage + 1, "state",
      m->state, "attempts", (json_int_t)m->attempts, "job_id",
      m->job_id > 0 ? json_integer(m->job_id) : json_null(), "job_state",
      m->job_state, "failure_class", m->failure_class, "gate_class",
      m->gate_class, "reason", m->reason, "next_attempt_at",
      m->next_at > 0 && strcmp(m->state, "retry") == 0 ? api_time(m->next_at)
                                                       : json_null(),
      "updated_at", api_time(m->updated_at));

  if (mc->timeline && m->job_id > 0) {
    json_t *events = json_array();

    if (db_job_events(mc->api->db, m->job_id, 0, EVENTS_MAX, add_event,
                      events) < 0)
      log_warn("job %lld: events not read", (long long)m->job_id);
    json_object_set_new(o, "timeline", events);
  }
  json_array_append_new(mc->arr, o);
  mc->last = m->device_id;
}

static const char *const member_states[] = {
    "pending",   "waiting",     "active",      "retry",
    "succeeded", "failed",      "skipped",     "cancelled",
    "queued",    "uri-written", "downloading", "downloaded",
    "updating",  "verifying",   "timed-out",   NULL};

/*
 * GET /api/v1/rollouts/{id}/jobs?state=&stage=&timeline=true&cursor=&limit=
 * The rollout's devices with their latest job; state is a device's state
 * in the rollout (pending, active, failed...) or its job's (downloading,
 * verifying...).
 */
void api_list_rollout_jobs(struct api_req *req)
{
  struct members_ctx mc = {.api = req->api};
  const char *state = api_query(req, "state");
  const char *stage_s = api_query(req, "stage");
  const char *tl = api_query(req, "timeline");
  int64_t id, after, stage = -1;
  int limit;
  char next[24];

  if (!orch_ready(req) || rollout_id_param(req, &id) < 0 ||
      api_query_limit(req, 100, MEMBERS_PAGE_MAX, &limit) < 0 ||
      api_query_cursor_id(req, &after) < 0)
    return;
  if (state && !one_of(state, member_states)) {
    api_reply_invalid(req, "state",
                      "expected a device state in the rollout (pending, "
                      "waiting, active, retry, succeeded, failed, skipped, "
                      "cancelled) or a job state");
    return;
  }
  if (stage_s && parse_int64(stage_s, 1, 1000, &stage) < 0) {
    api_reply_invalid(req, "stage", "expected a stage number from 1");
    return;
  }
  if (tl && parse_bool(tl, &mc.timeline) < 0) {
    api_reply_invalid(req, "timeline", "expected true or false");
    return;
  }
  if (!rollout_found(req, id))
    return;
  mc.arr = json_array();
  if (db_members_list(req->api->db, id, state, stage > 0 ? stage - 1 : -1,
                      after, limit, got_member, &mc) < 0) {
    json_decref(mc.arr);
    api_reply_error(req, 500, "internal", "cannot list the rollout's jobs");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)mc.last);
  api_reply_json(
      req, 200,
      json_pack("{s:I, s:o, s:s?}", "rollout_id", (json_int_t)id, "jobs",
                mc.arr, "next_cursor",
                json_array_size(mc.arr) == (size_t)limit ? next : NULL));
}

/* GET /api/v1/rollouts/{id}/timeline?cursor=EVENT_ID: its own events. */
void api_get_rollout_timeline(struct api_req *req)
{
  int64_t id, after;
  json_t *events;
  int limit;

  if (!orch_ready(req) || rollout_id_param(req, &id) < 0 ||
      api_query_limit(req, 100, EVENTS_MAX, &limit) < 0 ||
      api_query_cursor_id(req, &after) < 0)
    return;
  if (!rollout_found(req, id))
    return;
  events = json_array();
  if (db_rollout_events(req->api->db, id, after, limit, add_event, events) <
      0) {
    json_decref(events);
    api_reply_error(req, 500, "internal", "cannot read the timeline");
    return;
  }
  api_reply_json(
      req, 200,
      json_pack("{s:I, s:o}", "rollout_id", (json_int_t)id, "events", events));
}
