/* Components: a device's firmware components, the fleet's versions, and a
 * device's timeline. */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

static json_t *json_or_null(const char *text)
{
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;

  return j ? j : json_null();
}

static json_t *opt_int(int64_t v)
{
  return v >= 0 ? json_integer(v) : json_null();
}

static void add_component(void *arg, const struct db_component *c)
{
  json_t *arr = arg;
  char path[24];

  snprintf(path, sizeof(path), "/%d/%d", c->oid, c->iid);
  json_array_append_new(
      arr, json_pack("{s:s, s:i, s:i, s:s?, s:s?, s:o, s:o, s:s?, s:s?, s:o, "
                     "s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "path", path, "object", c->oid, "instance", c->iid,
                     "name", c->name, "current_version", c->current_version,
                     "state", opt_int(c->state), "result", opt_int(c->result),
                     "pkg_name", c->pkg_name, "pkg_version", c->pkg_version,
                     "protocols", json_or_null(c->protocols),
                     "delivery_method", opt_int(c->delivery_method),
                     "severity", opt_int(c->severity), "last_state_change",
                     c->last_state_change >= 0 ? api_time(c->last_state_change)
                                               : json_null(),
                     "max_defer_period", opt_int(c->max_defer_period),
                     "linked", json_or_null(c->linked), "conflicting",
                     json_or_null(c->conflicting), "updated_at",
                     api_time(c->updated_at)));
}

/* GET /api/v1/devices/{ep}/components */
void api_list_device_components(struct api_req *req)
{
  int64_t id;
  json_t *arr;

  if (api_device_id(req, &id) < 0)
    return;
  arr = json_array();
  if (db_components_of_device(req->api->db, id, add_component, arr) < 0) {
    json_decref(arr);
    api_reply_error(req, 500, "internal", "cannot read the components");
    return;
  }
  api_reply_json(
      req, 200,
      json_pack("{s:s, s:o}", "endpoint", req->params[0], "components", arr));
}

static void add_version(void *arg, const char *name, const char *version,
                        int64_t devices)
{
  json_t *arr = arg;

  json_array_append_new(arr, json_pack("{s:s, s:s?, s:I}", "component", name,
                                       "version", version, "devices",
                                       (json_int_t)devices));
}

/* GET /api/v1/components: how many devices run which version of what. */
void api_list_component_versions(struct api_req *req)
{
  json_t *arr = json_array();

  if (db_component_versions(req->api->db, add_version, arr) < 0) {
    json_decref(arr);
    api_reply_error(req, 500, "internal", "cannot read the versions");
    return;
  }
  api_reply_json(req, 200, json_pack("{s:o}", "versions", arr));
}

struct timeline_ctx {
  json_t *arr;
  int64_t last;
};

static void add_event(void *arg, const struct db_event *e)
{
  struct timeline_ctx *tc = arg;
  json_t *j = json_pack("{s:I, s:o, s:s}", "id", (json_int_t)e->id, "at",
                        api_time(e->at), "type", e->type);

  if (e->job_id > 0)
    json_object_set_new(j, "job_id", json_integer(e->job_id));
  if (e->rollout_id > 0)
    json_object_set_new(j, "rollout_id", json_integer(e->rollout_id));
  json_object_set_new(j, "data", json_or_null(e->data));
  json_array_append_new(tc->arr, j);
  tc->last = e->id;
}

/* GET /api/v1/devices/{ep}/timeline?cursor=ID&limit=N, oldest first. */
void api_get_device_timeline(struct api_req *req)
{
  struct timeline_ctx tc = {0};
  const char *cursor = api_query(req, "cursor");
  int64_t id, after = 0;
  int limit;

  if (api_query_limit(req, 100, 1000, &limit) < 0)
    return;
  if (cursor && parse_int64(cursor, 0, INT64_MAX, &after) < 0) {
    api_reply_error(req, 400, "bad_request", "cursor: expected an event id");
    return;
  }
  if (api_device_id(req, &id) < 0)
    return;
  tc.arr = json_array();
  if (db_timeline_list(req->api->db, id, after, limit, add_event, &tc) < 0) {
    json_decref(tc.arr);
    api_reply_error(req, 500, "internal", "cannot read the timeline");
    return;
  }
  {
    json_t *body =
        json_pack("{s:s, s:o}", "endpoint", req->params[0], "events", tc.arr);
    char next[24];

    if (json_array_size(tc.arr) == (size_t)limit) {
      snprintf(next, sizeof(next), "%lld", (long long)tc.last);
      json_object_set_new(body, "next_cursor", json_string(next));
    } else {
      json_object_set_new(body, "next_cursor", json_null());
    }
    api_reply_json(req, 200, body);
  }
}

static void add_sent(void *arg, int64_t id, int64_t at, int content_format,
                     const char *data)
{
  json_array_append_new(arg, json_pack("{s:I, s:o, s:s, s:o}", "id",
                                       (json_int_t)id, "received_at",
                                       api_time(at), "content_format",
                                       lwm2m_ct_name((uint16_t)content_format),
                                       "values", json_or_null(data)));
}

/* GET /api/v1/devices/{ep}/sent?cursor=ID&limit=N: Send operations. */
void api_list_device_sent(struct api_req *req)
{
  const char *cursor = api_query(req, "cursor");
  int64_t id, after = 0;
  json_t *arr, *body;
  int limit;

  if (api_query_limit(req, 100, 1000, &limit) < 0)
    return;
  if (cursor && parse_int64(cursor, 0, INT64_MAX, &after) < 0) {
    api_reply_error(req, 400, "bad_request", "cursor: expected an id");
    return;
  }
  if (api_device_id(req, &id) < 0)
    return;
  arr = json_array();
  if (db_sent_values_list(req->api->db, id, after, limit, add_sent, arr) < 0) {
    json_decref(arr);
    api_reply_error(req, 500, "internal", "cannot read the values");
    return;
  }
  body = json_pack("{s:s, s:o}", "endpoint", req->params[0], "sent", arr);
  if (json_array_size(arr) == (size_t)limit) {
    char next[24];
    json_t *last = json_array_get(arr, json_array_size(arr) - 1);

    snprintf(next, sizeof(next), "%lld",
             (long long)json_integer_value(json_object_get(last, "id")));
    json_object_set_new(body, "next_cursor", json_string(next));
  } else {
    json_object_set_new(body, "next_cursor", json_null());
  }
  api_reply_json(req, 200, body);
}
