/*
 * Update jobs: update one device (one component, or several at once),
 * show a job with its steps, progress and timeline, list a device's jobs,
 * cancel a job. The orchestrator runs them; this file reads them back from
 * the database, with the live download progress the orchestrator keeps.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define JOBS_PAGE_MAX 500
/* Timeline events shown with a job. */
#define JOB_EVENTS_MAX 500
#define JOB_PACKAGES_MAX 16

static json_t *json_or_null(const char *text)
{
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;

  return j ? j : json_null();
}

static json_t *opt_int(int64_t v)
{
  return v >= 0 ? json_integer(v) : json_null();
}

struct job_ctx {
  struct api *api;
  json_t *job; /* the job being built */
  json_t *arr; /* a listing */
  bool events;
  int64_t last;
};

static void add_component(void *arg, const struct db_job_component *c)
{
  struct job_ctx *jc = arg;
  struct orch_job_progress p = {
      .blocks = c->blocks,
      .bytes = c->bytes,
      .offset = c->bytes < c->pkg_size ? c->bytes : c->pkg_size,
      .size = c->pkg_size,
      .last_block_at = c->last_block_at,
  };
  char path[24];
  json_t *progress, *comp;

  /* An active job's progress lives in memory, fresher than the row. */
  if (jc->api->orch) {
    int64_t id = json_integer_value(json_object_get(jc->job, "id"));

    orch_job_progress(jc->api->orch, id, c->component_id, &p);
  }
  progress = json_pack(
      "{s:I, s:I, s:I, s:I, s:o, s:o}", "blocks", (json_int_t)p.blocks,
      "bytes", (json_int_t)p.bytes, "offset", (json_int_t)p.offset, "size",
      (json_int_t)p.size, "percent",
      p.size > 0 ? json_integer(p.offset * 100 / p.size) : json_null(),
      "last_block_at", api_time(p.last_block_at));
  snprintf(path, sizeof(path), "/%d/%d", c->oid, c->iid);
  comp = json_pack(
      "{s:s, s:i, s:i, s:s?, s:s?, s:s?, s:s?, s:o, s:o, "
      "s:{s:I, s:s?, s:s?, s:I, s:s?}, s:s?, s:o}",
      "path", path, "object", c->oid, "instance", c->iid, "name", c->name,
      "state", c->state, "from_version", c->from_version, "to_version",
      c->pkg_version, "update_result", opt_int(c->result), "start_result",
      opt_int(c->start_result), "package", "id", (json_int_t)c->package_id,
      "component", c->pkg_component, "version", c->pkg_version, "size",
      (json_int_t)c->pkg_size, "sha256", c->pkg_sha256, "uri", c->uri,
      "progress", progress);
  /* A finished job whose package was deleted since. */
  if (comp && c->package_id <= 0)
    json_object_set_new(comp, "package", json_null());
  json_array_append_new(json_object_get(jc->job, "components"), comp);
}

static void add_event(void *arg, const struct db_event *e)
{
  json_array_append_new(arg, json_pack("{s:I, s:o, s:s, s:o}", "id",
                                       (json_int_t)e->id, "at",
                                       api_time(e->at), "type", e->type,
                                       "data", json_or_null(e->data)));
}

/* Builds a job's JSON (with its components, and its events if asked). */
static void got_job(void *arg, const struct db_job *j)
{
  struct job_ctx *jc = arg;

  jc->job = json_pack(
      "{s:I, s:s, s:o, s:s, s:s?, s:o, s:s?, s:s?, s:b, s:I, s:o, s:o, "
      "s:o, s:o, s:o, s:o, s:[]}",
      "id", (json_int_t)j->id, "endpoint", j->endpoint, "rollout_id",
      j->rollout_id > 0 ? json_integer(j->rollout_id) : json_null(), "state",
      j->state, "failure_class", j->failure_class, "update_result",
      opt_int(j->update_result), "detail", j->detail, "delivery", j->delivery,
      "force", j->forced, "attempt", (json_int_t)j->attempt, "created_at",
      api_time(j->created_at), "updated_at", api_time(j->updated_at),
      "started_at", api_time(j->started_at), "executed_at",
      api_time(j->executed_at), "deadline_at", api_time(j->deadline_at),
      "finished_at", api_time(j->finished_at), "components");
  if (!jc->job)
    return;
  json_object_set_new(jc->job, "active", json_boolean(j->finished_at == 0));
  if (db_job_components(jc->api->db, j->id, add_component, jc) < 0)
    log_warn("job %lld: components not read", (long long)j->id);
  if (jc->events) {
    json_t *events = json_array();

    if (db_job_events(jc->api->db, j->id, 0, JOB_EVENTS_MAX, add_event,
                      events) < 0)
      log_warn("job %lld: events not read", (long long)j->id);
    json_object_set_new(jc->job, "events", events);
  }
  if (jc->arr) {
    json_array_append_new(jc->arr, jc->job);
    jc->job = NULL;
  }
  jc->last = j->id;
}

/* A job's JSON (new reference), or NULL if there is none. */
static json_t *job_json(struct api *api, int64_t id, bool events)
{
  struct job_ctx jc = {.api = api, .events = events};

  if (db_job_get(api->db, id, got_job, &jc) < 0) {
    json_decref(jc.job);
    return NULL;
  }
  return jc.job;
}

static int package_id(const json_t *v, int64_t *out)
{
  if (!json_is_integer(v) || json_integer_value(v) < 1)
    return -EINVAL;
  *out = json_integer_value(v);
  return 0;
}

/*
 * POST /api/v1/devices/{ep}/updates {"packages": [ID, ...]} or
 * {"package": ID}, optionally "force": true. Each package goes to the
 * device's component of the same name (33629 /14), or to /5/0; several
 * are installed together. 201 with the job.
 */
void api_create_update(struct api_req *req)
{
  static const char *const fields[] = {"packages", "package", "force", NULL};
  struct api *api = req->api;
  int64_t ids[JOB_PACKAGES_MAX], job_id = 0;
  size_t n = 0;
  struct db_audit a;
  char remote[64], err[512] = "";
  json_t *body = NULL, *v, *job;
  bool force = false;
  int rc;

  if (!api->orch) {
    api_reply_error(req, 503, "unavailable", "update jobs are not running");
    return;
  }
  body = api_body_json(req);
  if (!body)
    return;
  if (!json_is_object(body)) {
    api_reply_error(req, 400, "bad_request", "a JSON object body is required");
    goto out;
  }
  if (api_check_fields(req, body, fields) < 0)
    goto out;
  v = json_object_get(body, "force");
  if (v && !json_is_boolean(v)) {
    api_reply_invalid(req, "force", "expected true or false");
    goto out;
  }
  force = json_is_true(v);
  if (json_object_get(body, "packages") && json_object_get(body, "package")) {
    api_reply_invalid(req, "package", "give either package or packages");
    goto out;
  }
  v = json_object_get(body, "package");
  if (v) {
    if (package_id(v, &ids[0]) < 0) {
      api_reply_invalid(req, "package", "expected a package id");
      goto out;
    }
    n = 1;
  } else {
    size_t i;
    json_t *e;

    v = json_object_get(body, "packages");
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > JOB_PACKAGES_MAX) {
      api_reply_invalid(req, "packages",
                        "expected an array of 1 to %d package ids",
                        JOB_PACKAGES_MAX);
      goto out;
    }
    json_array_foreach(v, i, e)
    {
      if (package_id(e, &ids[i]) < 0) {
        char field[24];

        snprintf(field, sizeof(field), "packages[%zu]", i);
        api_reply_invalid(req, field, "expected a package id");
        goto out;
      }
      for (size_t k = 0; k < i; k++) {
        if (ids[k] == ids[i]) {
          char field[24];

          snprintf(field, sizeof(field), "packages[%zu]", i);
          api_reply_invalid(req, field, "package %lld is listed twice",
                            (long long)ids[i]);
          goto out;
        }
      }
    }
    n = json_array_size(v);
  }
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_job_create(api->orch, req->params[0], ids, n, force, &a, &job_id,
                       err, sizeof(err));
  switch (rc) {
  case 0:
    break;
  case -ENODEV:
    api_reply_error(req, 404, "unknown_device", "%s", err);
    goto out;
  case -ENOENT:
    api_reply_error(req, 422, "unknown_package", "%s", err);
    goto out;
  case -ENXIO:
    api_reply_error(req, 422, "no_such_component", "%s", err);
    goto out;
  case -EPERM:
    api_reply_error(req, 422, "package_not_allowed", "%s", err);
    goto out;
  case -EEXIST:
    api_reply_error(req, 409, "active_job", "%s", err);
    goto out;
  case -EBUSY:
    api_reply_error(req, 409, "component_busy", "%s", err);
    goto out;
  case -EINVAL:
    api_reply_error(req, 422, "invalid_update", "%s", err);
    goto out;
  default:
    api_reply_error(req, 500, "internal", "%s",
                    err[0] ? err : "cannot create the job");
    goto out;
  }
  job = job_json(api, job_id, true);
  if (!job) {
    api_reply_error(req, 500, "internal", "job %lld not readable",
                    (long long)job_id);
    goto out;
  }
  {
    char location[48];

    snprintf(location, sizeof(location), "/api/v1/jobs/%lld",
             (long long)job_id);
    api_add_header(req, "Location", location);
  }
  api_reply_json(req, 201, job);
out:
  json_decref(body);
}

static int job_id_param(struct api_req *req, int64_t *id)
{
  if (parse_int64(req->params[0], 1, INT64_MAX, id) < 0) {
    api_reply_error(req, 404, "not_found", "no job '%s'", req->params[0]);
    return -EINVAL;
  }
  return 0;
}

/* GET /api/v1/jobs/{id}: state, steps, progress, timeline. */
void api_get_job(struct api_req *req)
{
  int64_t id;
  json_t *job;

  if (job_id_param(req, &id) < 0)
    return;
  job = job_json(req->api, id, true);
  if (!job) {
    api_reply_error(req, 404, "not_found", "no job %lld", (long long)id);
    return;
  }
  api_reply_json(req, 200, job);
}

/* GET /api/v1/devices/{ep}/jobs?cursor=ID&limit=N: newest first. */
void api_list_device_jobs(struct api_req *req)
{
  struct job_ctx jc = {.api = req->api};
  int64_t device_id, before;
  int limit;
  char next[24];

  if (api_query_limit(req, 50, JOBS_PAGE_MAX, &limit) < 0 ||
      api_query_cursor_id(req, &before) < 0 ||
      api_device_id(req, &device_id) < 0)
    return;
  jc.arr = json_array();
  if (db_jobs_of_device(req->api->db, device_id, before, limit, got_job, &jc) <
      0) {
    json_decref(jc.arr);
    api_reply_error(req, 500, "internal", "cannot list the jobs");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)jc.last);
  api_reply_json(
      req, 200,
      json_pack("{s:s, s:o, s:s?}", "endpoint", req->params[0], "jobs", jc.arr,
                "next_cursor",
                json_array_size(jc.arr) == (size_t)limit ? next : NULL));
}

/* POST /api/v1/jobs/{id}/cancel: before the installation starts. */
void api_cancel_job(struct api_req *req)
{
  struct api *api = req->api;
  struct db_audit a;
  char remote[64], err[256] = "";
  int64_t id;
  json_t *job;
  int rc;

  if (job_id_param(req, &id) < 0)
    return;
  if (!api->orch) {
    api_reply_error(req, 503, "unavailable", "update jobs are not running");
    return;
  }
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_job_cancel(api->orch, id, &a, err, sizeof(err));
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "%s", err);
    return;
  }
  if (rc == -EALREADY || rc == -EBUSY) {
    api_reply_error(req, 409, rc == -EBUSY ? "installing" : "finished", "%s",
                    err);
    return;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "%s", err);
    return;
  }
  job = job_json(api, id, true);
  if (!job) {
    api_reply_error(req, 500, "internal", "job %lld not readable",
                    (long long)id);
    return;
  }
  api_reply_json(req, 200, job);
}
