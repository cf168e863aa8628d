#include "api/api_int.h"

#include <string.h>

#define LOG_TAG "api"

/*
 * Every route of the REST API, with the scope its caller's token needs
 * (API_SCOPE_*; a route without one keeps fotad from starting) and its
 * flags. api/openapi.json documents each one: tests/unit/test_api.c checks
 * both ways, so a new route goes in both places.
 */
const struct api_route api_routes[] = {
    {"GET", "/api/v1/health", api_get_health, API_SCOPE_PUBLIC, 0},
    {"GET", "/api/v1/openapi.json", api_get_openapi, API_SCOPE_READ, 0},
    {"GET", "/metrics", api_get_metrics, API_SCOPE_METRICS, 0},
    {"GET", "/api/v1/events", api_get_events, API_SCOPE_READ, 0},
    {"GET", "/api/v1/devices", api_list_devices, API_SCOPE_READ, 0},
    {"GET", "/api/v1/devices/{ep}", api_get_device, API_SCOPE_READ, 0},
    {"GET", "/api/v1/devices/{ep}/requests", api_list_device_requests,
     API_SCOPE_READ, 0},
    /* Before {op}, which would take "updates" for an operation. */
    {"POST", "/api/v1/devices/{ep}/updates", api_create_update,
     API_SCOPE_OPERATOR, 0},
    {"GET", "/api/v1/devices/{ep}/jobs", api_list_device_jobs, API_SCOPE_READ,
     0},
    {"GET", "/api/v1/devices/{ep}/tags", api_get_device_tags, API_SCOPE_READ,
     0},
    {"PUT", "/api/v1/devices/{ep}/tags", api_put_device_tags,
     API_SCOPE_OPERATOR, 0},
    {"PUT", "/api/v1/devices/{ep}/tags/{tag}", api_add_device_tag,
     API_SCOPE_OPERATOR, 0},
    {"DELETE", "/api/v1/devices/{ep}/tags/{tag}", api_remove_device_tag,
     API_SCOPE_OPERATOR, 0},
    {"POST", "/api/v1/devices/{ep}/{op}", api_device_op, API_SCOPE_OPERATOR,
     0},
    {"GET", "/api/v1/jobs/{id}", api_get_job, API_SCOPE_READ, 0},
    {"POST", "/api/v1/jobs/{id}/cancel", api_cancel_job, API_SCOPE_OPERATOR,
     0},
    {"GET", "/api/v1/rollouts", api_list_rollouts, API_SCOPE_READ, 0},
    {"POST", "/api/v1/rollouts", api_create_rollout, API_SCOPE_OPERATOR,
     API_IDEMPOTENT},
    /* Before {id}/{action}, which has one segment more anyway. */
    {"POST", "/api/v1/rollouts/dry-run", api_dry_run_rollout,
     API_SCOPE_OPERATOR, 0},
    {"GET", "/api/v1/rollouts/{id}", api_get_rollout, API_SCOPE_READ, 0},
    {"GET", "/api/v1/rollouts/{id}/cohorts", api_get_rollout_cohorts,
     API_SCOPE_READ, 0},
    {"GET", "/api/v1/rollouts/{id}/jobs", api_list_rollout_jobs,
     API_SCOPE_READ, 0},
    {"GET", "/api/v1/rollouts/{id}/timeline", api_get_rollout_timeline,
     API_SCOPE_READ, 0},
    {"POST", "/api/v1/rollouts/{id}/{action}", api_rollout_action,
     API_SCOPE_OPERATOR, 0},
    {"GET", "/api/v1/requests/{id}", api_get_request, API_SCOPE_READ, 0},
    {"DELETE", "/api/v1/requests/{id}", api_cancel_request, API_SCOPE_OPERATOR,
     0},
    {"GET", "/api/v1/credentials", api_list_credentials, API_SCOPE_ADMIN, 0},
    {"POST", "/api/v1/credentials", api_create_credential, API_SCOPE_ADMIN,
     API_IDEMPOTENT},
    {"GET", "/api/v1/credentials/{ep}", api_get_credential, API_SCOPE_ADMIN,
     0},
    {"DELETE", "/api/v1/credentials/{ep}", api_delete_credential,
     API_SCOPE_ADMIN, 0},
    {"GET", "/api/v1/tokens", api_list_tokens, API_SCOPE_ADMIN, 0},
    {"POST", "/api/v1/tokens", api_create_token, API_SCOPE_ADMIN,
     API_IDEMPOTENT},
    {"GET", "/api/v1/tokens/{id}", api_get_token, API_SCOPE_ADMIN, 0},
    {"DELETE", "/api/v1/tokens/{id}", api_revoke_token, API_SCOPE_ADMIN, 0},
    {"GET", "/api/v1/audit", api_list_audit, API_SCOPE_ADMIN, 0},
    {"GET", "/api/v1/devices/{ep}/components", api_list_device_components,
     API_SCOPE_READ, 0},
    {"GET", "/api/v1/devices/{ep}/timeline", api_get_device_timeline,
     API_SCOPE_READ, 0},
    {"GET", "/api/v1/components", api_list_component_versions, API_SCOPE_READ,
     0},
    {"GET", "/api/v1/devices/{ep}/sent", api_list_device_sent, API_SCOPE_READ,
     0},
    {"GET", "/api/v1/objects", api_list_objects, API_SCOPE_READ, 0},
    {"GET", "/api/v1/objects/{id}", api_get_object, API_SCOPE_READ, 0},
    {"GET", "/api/v1/packages", api_list_packages, API_SCOPE_READ, 0},
    {"PUT", "/api/v1/packages", api_put_package, API_SCOPE_OPERATOR,
     API_STREAM_BODY},
    {"POST", "/api/v1/packages", api_post_package, API_SCOPE_OPERATOR,
     API_STREAM_BODY},
    {"GET", "/api/v1/packages/{id}", api_get_package, API_SCOPE_READ, 0},
    {"PATCH", "/api/v1/packages/{id}", api_patch_package, API_SCOPE_OPERATOR,
     0},
    {"DELETE", "/api/v1/packages/{id}", api_delete_package, API_SCOPE_ADMIN,
     0},
    {"GET", "/api/v1/packages/{id}/content", api_get_package_content,
     API_SCOPE_READ, 0},
    /* Devices download here: the token in the URL is the credential. */
    {"GET", "/fw/{token}", api_get_fw, API_SCOPE_PUBLIC, 0},
};
const size_t api_nroutes = ARRAY_SIZE(api_routes);

/*
 * GET /api/v1/health: liveness for load balancers and operators. Answers
 * 200 while the database answers, 503 otherwise.
 */
void api_get_health(struct api_req *req)
{
  struct api *api = req->api;
  char started[32], err[256] = "";
  int64_t devices = -1, rollouts = -1;
  bool db_ok;
  json_t *body;

  db_ok = db_check(api->db, err, sizeof(err)) == 0 &&
          db_count_devices(api->db, &devices) == 0 &&
          db_count_rollouts(api->db, &rollouts) == 0;
  format_iso8601(api->started_wall, started, sizeof(started));
  body =
      json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s, s:i, s:s*}, s:I, s:I}",
                "status", db_ok ? "ok" : "degraded", "version",
                PACKAGE_VERSION, "started_at", started, "uptime_s",
                (json_int_t)((loop_now(api->loop) - api->started_mono) / 1000),
                "database", "state", db_ok ? "ok" : "error", "path",
                db_path(api->db), "schema_version", db_schema_version(api->db),
                "error", db_ok ? NULL : err, "devices", (json_int_t)devices,
                "rollouts", (json_int_t)rollouts);
  if (!body) {
    api_reply_error(req, 500, "internal", "cannot build the health reply");
    return;
  }
  {
    struct srv_stats st;

    srv_get_stats(api->srv, &st);
    json_object_set_new(body, "registered", json_integer(st.registered));
    json_object_set_new(body, "awake", json_integer(st.awake));
    json_object_set_new(body, "queued_requests", json_integer(st.queued));
  }
  api_reply_json(req, db_ok ? 200 : 503, body);
}
