/*
 * Devices: listing, details, and pass-through device-management
 * operations that wait (suspended, not blocking the loop) for the device.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define DEVICES_PAGE_MAX 1000

static json_t *reg_json(const struct srv_reg_info *ri)
{
  return json_pack(
      "{s:s, s:s, s:s, s:s*, s:s, s:s, s:I, s:b, s:b, s:b, "
      "s:o, s:o, s:o, s:s}",
      "location", ri->location, "lwm2m_version", ri->lwm2m_version, "binding",
      ri->binding, "alt_path", ri->alt_path, "peer", ri->peer, "security",
      ri->security, "lifetime", (json_int_t)ri->lifetime, "queue_mode",
      ri->queue_mode, "awake", ri->awake, "reachable", ri->reachable,
      "registered_at", api_time(ri->registered_at), "updated_at",
      api_time(ri->updated_at), "expires_at", api_time(ri->expires_at),
      "content_format", lwm2m_ct_name(ri->format));
}

static json_t *device_json(struct api *api, const struct db_device *d)
{
  struct srv_reg_info ri;
  json_t *j =
      json_pack("{s:s, s:o, s:o, s:s*}", "endpoint", d->endpoint, "created_at",
                api_time(d->created_at), "last_seen_at",
                api_time(d->last_seen_at), "lwm2m_version", d->lwm2m_version);

  if (srv_reg_info(api->srv, d->endpoint, &ri) == 0) {
    json_object_set_new(j, "online", json_true());
    json_object_set_new(j, "registration", reg_json(&ri));
  } else {
    json_object_set_new(j, "online", json_false());
    json_object_set_new(j, "registration", json_null());
  }
  return j;
}

struct list_ctx {
  struct api *api;
  json_t *arr;
  char *last;
};

static void add_device(void *arg, const struct db_device *d)
{
  struct list_ctx *lc = arg;

  json_array_append_new(lc->arr, device_json(lc->api, d));
  free(lc->last);
  lc->last = xstrdup(d->endpoint);
}

/*
 * GET /api/v1/devices?prefix=&online=true|false&object=N&tag=&limit=&cursor=
 * Devices in endpoint order; next_cursor continues the listing.
 */
void api_list_devices(struct api_req *req)
{
  struct list_ctx lc = {.api = req->api};
  const char *online = api_query(req, "online");
  const char *object = api_query(req, "object");
  const char *tag = api_query(req, "tag");
  char err[160];
  int registered = -1;
  int64_t oid = -1;
  int limit;

  if (api_query_limit(req, 100, DEVICES_PAGE_MAX, &limit) < 0)
    return;
  if (online) {
    bool b;

    if (parse_bool(online, &b) < 0) {
      api_reply_invalid(req, "online", "expected true or false");
      return;
    }
    registered = b;
  }
  if (object && parse_int64(object, 0, 65535, &oid) < 0) {
    api_reply_invalid(req, "object", "expected an object id from 0 to 65535");
    return;
  }
  if (tag && api_tag_check(tag, err, sizeof(err)) < 0) {
    api_reply_invalid(req, "tag", "%s", err);
    return;
  }
  lc.arr = json_array();
  if (db_devices_list(req->api->db, api_query(req, "prefix"), registered,
                      (int)oid, tag, api_query(req, "cursor"), limit,
                      add_device, &lc) < 0) {
    json_decref(lc.arr);
    free(lc.last);
    api_reply_error(req, 500, "internal", "cannot list devices");
    return;
  }
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:s?}", "devices", lc.arr, "next_cursor",
                json_array_size(lc.arr) == (size_t)limit ? lc.last : NULL));
  free(lc.last);
}

struct device_ctx {
  struct api *api;
  json_t *dev;
  int64_t id;
};

static void got_device(void *arg, const struct db_device *d)
{
  struct device_ctx *dc = arg;

  dc->dev = device_json(dc->api, d);
  dc->id = d->id;
}

static void add_object(void *arg, const struct db_object_link *l)
{
  json_t *arr = arg;
  char path[24];

  if (l->iid < 0)
    snprintf(path, sizeof(path), "/%u", l->oid);
  else
    snprintf(path, sizeof(path), "/%u/%d", l->oid, l->iid);
  json_array_append_new(
      arr,
      json_pack("{s:s, s:i, s:o, s:s*}", "path", path, "object", l->oid,
                "instance", l->iid < 0 ? json_null() : json_integer(l->iid),
                "version", l->version));
}

/* GET /api/v1/devices/{ep}: registration, objects, tags, queue state. */
void api_get_device(struct api_req *req)
{
  struct device_ctx dc = {.api = req->api};
  const char *ep = req->params[0];
  json_t *objects, *tags, *queue;
  int rc = db_device_get(req->api->db, ep, got_device, &dc);

  if (rc == -ENOENT) {
    api_reply_error(req, 404, "unknown_device", "no device '%s'", ep);
    return;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "cannot read the device");
    return;
  }
  objects = json_array();
  if (db_device_objects(req->api->db, dc.id, add_object, objects) < 0) {
    json_decref(objects);
    json_decref(dc.dev);
    api_reply_error(req, 500, "internal", "cannot read the objects");
    return;
  }
  json_object_set_new(dc.dev, "objects", objects);
  tags = api_device_tags_json(req->api, dc.id);
  if (!tags) {
    json_decref(dc.dev);
    api_reply_error(req, 500, "internal", "cannot read the tags");
    return;
  }
  json_object_set_new(dc.dev, "tags", tags);
  queue = srv_queue_json(req->api->srv, ep, 0, 100);
  json_object_set_new(dc.dev, "requests", queue ? queue : json_array());
  api_reply_json(req, 200, dc.dev);
}

/* Maps a device's CoAP error class to the HTTP status we answer with. */
static unsigned http_status_for(uint8_t code)
{
  switch (code) {
  case 0x80: /* 4.00 */
    return 400;
  case 0x81: /* 4.01 */
  case 0x83: /* 4.03 */
    return 403;
  case 0x84:
    return 404;
  case 0x85:
    return 405;
  case 0x86:
    return 406;
  case 0x8d:
    return 413;
  case 0x8f:
    return 415;
  default:
    return 502;
  }
}

const char *const api_failure_names[API_DEVICE_FAILURES] = {
    "timeout", "unreachable", "bad_answer", "asleep", "other"};

/* Counts the device's answer, or why there was none, for /metrics. */
static void count_answer(struct api *api, const struct srv_result *res)
{
  if (res->queued_id > 0)
    return;
  if (res->status == 0)
    api->device_codes[res->code]++;
  else if (res->status == -ETIMEDOUT)
    api->device_failures[0]++;
  else if (res->status == -ENOTCONN)
    api->device_failures[1]++;
  else if (res->status == -EPROTO)
    api->device_failures[2]++;
  else if (res->status == -EAGAIN)
    api->device_failures[3]++;
  else
    api->device_failures[4]++;
}

static void op_done(void *arg, const struct srv_result *res)
{
  struct api_req *req = arg;
  char code[8];
  json_t *body;

  count_answer(req->api, res);
  if (res->queued_id > 0) {
    api_resume(req, 202,
               json_pack("{s:s, s:I, s:s}", "status", "queued", "request_id",
                         (json_int_t)res->queued_id, "message",
                         "the device is asleep; the request is sent when it "
                         "wakes"));
    return;
  }
  if (res->status < 0) {
    unsigned st = res->status == -ETIMEDOUT ? 504
                  : res->status == -ENOENT  ? 404
                  : res->status == -EINVAL  ? 400
                  : res->status == -EAGAIN  ? 409
                                            : 502;
    const char *ecode = res->status == -ETIMEDOUT ? "device_timeout"
                        : res->status == -ENOENT  ? "not_found"
                        : res->status == -EINVAL  ? "bad_request"
                        : res->status == -EAGAIN  ? "device_asleep"
                        : res->status == -EPROTO  ? "bad_device_answer"
                                                  : "device_unreachable";

    api_resume(req, st,
               json_pack("{s:{s:s, s:s}}", "error", "code", ecode, "message",
                         res->error ? res->error : "request failed"));
    return;
  }
  srv_code_format(res->code, code, sizeof(code));
  if (res->code >> 5 != 2) {
    api_resume(req, http_status_for(res->code),
               json_pack("{s:{s:s, s:s, s:s}}", "error", "code",
                         "device_error", "message",
                         "the device answered with an error", "coap_code",
                         code));
    return;
  }
  body = json_pack("{s:s}", "code", code);
  if (res->format != 0xffff)
    json_object_set_new(body, "content_format",
                        json_string(lwm2m_ct_name(res->format)));
  if (res->values.len > 0)
    json_object_set_new(body, "values", lwm2m_records_to_json(&res->values));
  if (res->links)
    json_object_set_new(body, "links", json_string(res->links));
  api_resume(req, 200, body);
}

/* Formats accepted in "format": names or numbers. */
static int parse_format(const json_t *v, uint16_t *out)
{
  static const struct {
    const char *name;
    uint16_t ct;
  } names[] = {
      {"text", LWM2M_CT_TEXT},
      {"opaque", LWM2M_CT_OPAQUE},
      {"cbor", LWM2M_CT_CBOR},
      {"senml-json", LWM2M_CT_SENML_JSON},
      {"senml-cbor", LWM2M_CT_SENML_CBOR},
      {"tlv", LWM2M_CT_TLV},
      {"lwm2m-json", LWM2M_CT_OMA_JSON},
  };

  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);

    if (n < 0 || n > 65535 || !lwm2m_ct_supported((uint16_t)n))
      return -EINVAL;
    *out = (uint16_t)n;
    return 0;
  }
  if (json_is_string(v)) {
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
      if (strcmp(json_string_value(v), names[i].name) == 0) {
        *out = names[i].ct;
        return 0;
      }
    }
  }
  return -EINVAL;
}

/* Builds "pmin=10&pmax=60" from {"pmin":10,"pmax":60,"gt":null...}. */
static int parse_attrs(const json_t *o, char *buf, size_t len, char *err,
                       size_t errlen)
{
  static const char *const known[] = {"pmin", "pmax",  "gt",   "lt",
                                      "st",   "epmin", "epmax"};
  const char *key;
  json_t *v;
  size_t off = 0;

  buf[0] = '\0';
  if (!json_is_object(o) || json_object_size(o) == 0) {
    snprintf(err, errlen, "attributes: expected a non-empty object");
    return -EINVAL;
  }
  json_object_foreach((json_t *)o, key, v)
  {
    bool ok = false;
    int n;

    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
      ok = ok || strcmp(key, known[i]) == 0;
    if (!ok) {
      snprintf(err, errlen, "attributes.%s: unknown attribute", key);
      return -EINVAL;
    }
    if (json_is_null(v))
      n = snprintf(buf + off, len - off, "%s%s", off ? "&" : "", key);
    else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
             (key[0] == 'p' || key[0] == 'e'))
      n = snprintf(buf + off, len - off, "%s%s=%lld", off ? "&" : "", key,
                   (long long)json_integer_value(v));
    else if (json_is_number(v) && key[0] != 'p' && key[0] != 'e')
      n = snprintf(buf + off, len - off, "%s%s=%.17g", off ? "&" : "", key,
                   json_number_value(v));
    else {
      snprintf(err, errlen, "attributes.%s: expected %s, or null to remove it",
               key,
               key[0] == 'p' || key[0] == 'e' ? "a whole number of seconds"
                                              : "a number");
      return -EINVAL;
    }
    if (n < 0 || (size_t)n >= len - off) {
      snprintf(err, errlen, "attributes: too long");
      return -EINVAL;
    }
    off += (size_t)n;
  }
  return 0;
}

/*
 * POST /api/v1/devices/{ep}/{op}: one device-management operation. The
 * body names the path and, as the operation needs, values, args,
 * attributes or paths; the reply carries the device's answer.
 */
void api_device_op(struct api_req *req)
{
  static const char *const fields[] = {
      "path", "format",     "timeout", "queue", "value", "values",
      "args", "attributes", "paths",   "rst",   NULL};
  struct api *api = req->api;
  const char *ep = req->params[0];
  struct srv_request sr = {0};
  struct lwm2m_records values;
  struct lwm2m_path *paths = NULL;
  char err[256], attrs[256];
  json_t *body = NULL, *v;
  const char *path;

  lwm2m_records_init(&values);
  if (srv_op_parse(req->params[1], &sr.op) < 0) {
    api_reply_error(req, 404, "not_found", "no such operation '%s'",
                    req->params[1]);
    goto out;
  }
  if (srv_reg_info(api->srv, ep, &(struct srv_reg_info){0}) < 0) {
    api_reply_error(req, 404, "unknown_device",
                    "device '%s' is not registered", ep);
    goto out;
  }
  body = req->body_len ? api_body_json(req) : json_object();
  if (!body || api_check_fields(req, body, fields) < 0)
    goto out;
  v = json_object_get(body, "path");
  path = json_string_value(v);
  if (v && !path) {
    api_reply_invalid(req, "path", "expected a string");
    goto out;
  }
  if (!path)
    path = "/";
  if (lwm2m_path_parse(path, &sr.path) < 0) {
    api_reply_invalid(req, "path", "'%s' is not an LwM2M path like /3/0/1",
                      path);
    goto out;
  }
  v = json_object_get(body, "format");
  sr.has_format = v != NULL;
  if (v && parse_format(v, &sr.format) < 0) {
    api_reply_invalid(req, "format",
                      "expected tlv, senml-json, senml-cbor, text, opaque, "
                      "cbor, lwm2m-json or a supported number");
    goto out;
  }
  v = json_object_get(body, "timeout");
  if (v) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 3600) {
      api_reply_invalid(req, "timeout",
                        "expected whole seconds from 1 to "
                        "3600");
      goto out;
    }
    sr.timeout_ms = json_integer_value(v) * 1000;
  }
  v = json_object_get(body, "queue");
  if (v && !json_is_boolean(v)) {
    api_reply_invalid(req, "queue", "expected true or false");
    goto out;
  }
  sr.allow_queue = !v || json_is_true(v);

  switch (sr.op) {
  case SRV_OP_WRITE:
  case SRV_OP_WRITE_PARTIAL:
  case SRV_OP_CREATE:
  case SRV_OP_WRITE_COMPOSITE:
    v = json_object_get(body, "values");
    if (!v && json_object_get(body, "value") && sr.path.len >= 3) {
      /* {"path": "/1/0/1", "value": 300} is shorthand for one resource. */
      json_t *one = json_object();

      json_object_set(one, path, json_object_get(body, "value"));
      json_object_set_new(body, "values", one);
      v = one;
    }
    if (!v) {
      api_reply_invalid(req, "values", "required, e.g. {\"/1/0/1\": 300}");
      goto out;
    }
    if (lwm2m_records_from_json(v, &sr.path, srv_model(api->srv), &values, err,
                                sizeof(err)) < 0) {
      api_reply_invalid(req, "values", "%s", err);
      goto out;
    }
    sr.values = &values;
    break;
  case SRV_OP_EXECUTE:
    v = json_object_get(body, "args");
    if (v) {
      const char *a = json_string_value(v);

      if (!a || lwm2m_exec_args_check(a, strlen(a), err, sizeof(err)) < 0) {
        api_reply_invalid(req, "args", "%s", a ? err : "expected a string");
        goto out;
      }
      sr.args = a;
    }
    if (sr.path.len != 3) {
      api_reply_invalid(req, "path", "execute needs a resource path /O/I/R");
      goto out;
    }
    break;
  case SRV_OP_WRITE_ATTRS:
    if (parse_attrs(json_object_get(body, "attributes"), attrs, sizeof(attrs),
                    err, sizeof(err)) < 0) {
      api_reply_error(req, 400, "bad_request", "%s", err);
      goto out;
    }
    sr.attrs = attrs;
    break;
  case SRV_OP_READ_COMPOSITE:
  case SRV_OP_OBSERVE_COMPOSITE:
  case SRV_OP_CANCEL_OBSERVE_COMPOSITE: {
    json_t *a = json_object_get(body, "paths");
    size_t i;

    if (!json_is_array(a) || json_array_size(a) == 0 ||
        json_array_size(a) > 256) {
      api_reply_invalid(req, "paths", "expected an array of 1 to 256 paths");
      goto out;
    }
    paths = xcalloc(json_array_size(a), sizeof(*paths));
    json_array_foreach(a, i, v)
    {
      if (!json_is_string(v) ||
          lwm2m_path_parse(json_string_value(v), &paths[i]) < 0) {
        char field[32];

        snprintf(field, sizeof(field), "paths[%zu]", i);
        api_reply_invalid(req, field, "expected an LwM2M path");
        goto out;
      }
    }
    sr.paths = paths;
    sr.npaths = json_array_size(a);
    break;
  }
  case SRV_OP_DELETE:
    if (sr.path.len != 2) {
      api_reply_invalid(req, "path", "delete needs an instance path /O/I");
      goto out;
    }
    break;
  case SRV_OP_CANCEL_OBSERVE:
    v = json_object_get(body, "rst");
    if (v && !json_is_boolean(v)) {
      api_reply_error(req, 400, "bad_request", "rst: expected true or false");
      goto out;
    }
    sr.cancel_by_rst = json_is_true(v);
    break;
  case SRV_OP_READ:
  case SRV_OP_DISCOVER:
  case SRV_OP_OBSERVE:
    break;
  }
  if (sr.op != SRV_OP_READ_COMPOSITE && sr.op != SRV_OP_OBSERVE_COMPOSITE &&
      sr.op != SRV_OP_CANCEL_OBSERVE_COMPOSITE &&
      sr.op != SRV_OP_WRITE_COMPOSITE && sr.path.len == 0) {
    api_reply_invalid(req, "path", "required for %s", req->params[1]);
    goto out;
  }

  /* The callback may run at once (immediate failure or queued);
   * otherwise the connection waits, suspended, for the device. */
  req->in_call = true;
  req->srv_handle = srv_send(api->srv, ep, &sr, op_done, req);
  req->in_call = false;
  api_wait(req);
out:
  json_decref(body);
  free(paths);
  lwm2m_records_free(&values);
}

struct req_list_ctx {
  json_t *arr;
};

/* GET /api/v1/devices/{ep}/requests?cursor=ID&limit=N (after=ID is the
 * older name of cursor) */
void api_list_device_requests(struct api_req *req)
{
  const char *after = api_query(req, "after");
  int64_t after_id = 0;
  int limit;
  json_t *arr, *last;
  char next[24] = "";

  if (api_query_limit(req, 100, 1000, &limit) < 0 ||
      api_query_cursor_id(req, &after_id) < 0)
    return;
  if (after && parse_int64(after, 0, INT64_MAX, &after_id) < 0) {
    api_reply_invalid(req, "after", "expected a request id");
    return;
  }
  arr = srv_queue_json(req->api->srv, req->params[0], after_id, limit);
  if (!arr) {
    api_reply_error(req, 404, "unknown_device", "no device '%s'",
                    req->params[0]);
    return;
  }
  last = json_array_get(arr, json_array_size(arr) - 1);
  if (json_array_size(arr) == (size_t)limit && last)
    snprintf(next, sizeof(next), "%lld",
             (long long)json_integer_value(json_object_get(last, "id")));
  api_reply_json(req, 200,
                 json_pack("{s:o, s:s?}", "requests", arr, "next_cursor",
                           next[0] ? next : NULL));
}

static int request_id(struct api_req *req, int64_t *id)
{
  if (parse_int64(req->params[0], 1, INT64_MAX, id) < 0) {
    api_reply_error(req, 404, "not_found", "no request '%s'", req->params[0]);
    return -EINVAL;
  }
  return 0;
}

/* GET /api/v1/requests/{id}: a queued request and its fate. */
void api_get_request(struct api_req *req)
{
  int64_t id;
  json_t *j;

  if (request_id(req, &id) < 0)
    return;
  j = srv_request_json(req->api->srv, id);
  if (!j) {
    api_reply_error(req, 404, "not_found", "no request %lld", (long long)id);
    return;
  }
  api_reply_json(req, 200, j);
}

/* DELETE /api/v1/requests/{id}: cancels a request still queued. */
void api_cancel_request(struct api_req *req)
{
  int64_t id;
  int rc;

  if (request_id(req, &id) < 0)
    return;
  rc = db_request_cancel(req->api->db, id, loop_wall(req->api->loop));
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no request %lld", (long long)id);
    return;
  }
  if (rc == -EBUSY) {
    api_reply_error(req, 409, "conflict",
                    "request %lld was already sent or finished",
                    (long long)id);
    return;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "cannot cancel the request");
    return;
  }
  api_reply_json(req, 200, srv_request_json(req->api->srv, id));
}
