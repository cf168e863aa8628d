/*
 * Device tags: the labels rollouts select devices by. Listed, replaced as
 * a set, added and removed one at a time; every change is audited.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

int api_tag_check(const char *tag, char *err, size_t errlen)
{
  size_t len = strlen(tag);
  size_t bad;

  if (len == 0 || len > API_TAG_MAX) {
    snprintf(err, errlen,
             "expected 1 to %d characters of A-Z a-z 0-9 . _ : - "
             "(got %zu)",
             API_TAG_MAX, len);
    return -EINVAL;
  }
  bad = strspn(tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789._:-");
  if (bad < len) {
    snprintf(err, errlen,
             "character %zu is not one of A-Z a-z 0-9 . _ : - (a tag is 1 "
             "to %d of them)",
             bad + 1, API_TAG_MAX);
    return -EINVAL;
  }
  return 0;
}

static void add_tag(void *arg, const char *tag)
{
  json_array_append_new(arg, json_string(tag));
}

json_t *api_device_tags_json(struct api *api, int64_t device_id)
{
  json_t *arr = json_array();

  if (db_device_tags(api->db, device_id, add_tag, arr) < 0) {
    json_decref(arr);
    return NULL;
  }
  return arr;
}

/* Replies status with {"endpoint": ep, "tags": [...]} as stored now. */
static void reply_tags(struct api_req *req, unsigned status, int64_t id)
{
  json_t *arr = api_device_tags_json(req->api, id);

  if (!arr) {
    api_reply_error(req, 500, "internal", "cannot read the tags");
    return;
  }
  api_reply_json(
      req, status,
      json_pack("{s:s, s:o}", "endpoint", req->params[0], "tags", arr));
}

/* The {tag} of the path, checked; replies 400 and fails if invalid. */
static int tag_param(struct api_req *req, const char **tag)
{
  char err[160];

  *tag = req->params[1];
  if (api_tag_check(*tag, err, sizeof(err)) < 0) {
    api_reply_invalid(req, "tag", "%s", err);
    return -EINVAL;
  }
  return 0;
}

/* GET /api/v1/devices/{ep}/tags */
void api_get_device_tags(struct api_req *req)
{
  int64_t id;

  if (api_device_id(req, &id) < 0)
    return;
  reply_tags(req, 200, id);
}

/* Checks {"tags": [...]}; fills tags (borrowed from body) and *n. */
static int tags_body(struct api_req *req, json_t *body, const char **tags,
                     size_t *n)
{
  json_t *arr = json_object_get(body, "tags"), *v;
  char err[160], field[32];
  size_t i;

  if (!json_is_array(arr)) {
    api_reply_invalid(req, "tags", "required: an array of tags");
    return -EINVAL;
  }
  if (json_array_size(arr) > API_TAGS_PER_DEVICE) {
    api_reply_invalid(req, "tags", "a device has at most %d tags (got %zu)",
                      API_TAGS_PER_DEVICE, json_array_size(arr));
    return -EINVAL;
  }
  json_array_foreach(arr, i, v)
  {
    snprintf(field, sizeof(field), "tags[%zu]", i);
    if (!json_is_string(v)) {
      api_reply_invalid(req, field, "expected a string");
      return -EINVAL;
    }
    if (api_tag_check(json_string_value(v), err, sizeof(err)) < 0) {
      api_reply_invalid(req, field, "%s", err);
      return -EINVAL;
    }
    tags[i] = json_string_value(v);
  }
  *n = json_array_size(arr);
  return 0;
}

/*
 * PUT /api/v1/devices/{ep}/tags {"tags": ["eu", "canary"]}: replaces the
 * device's tags with these (duplicates count once); [] removes them all.
 */
void api_put_device_tags(struct api_req *req)
{
  static const char *const fields[] = {"tags", NULL};
  const char *tags[API_TAGS_PER_DEVICE];
  json_t *body = api_body_json(req), *before = NULL;
  char *target = NULL;
  size_t n = 0;
  int64_t id;
  int rc;

  if (!body)
    return;
  if (api_check_fields(req, body, fields) < 0 ||
      tags_body(req, body, tags, &n) < 0 || api_device_id(req, &id) < 0)
    goto out;
  /* The set it replaces goes in the audit row, so that it can be restored
   * by hand. */
  before = api_device_tags_json(req->api, id);
  if (!before) {
    api_reply_error(req, 500, "internal", "cannot read the tags");
    goto out;
  }
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot store the tags");
    goto out;
  }
  target = xasprintf("/api/v1/devices/%s/tags", req->params[0]);
  rc = db_device_tags_set(req->api->db, id, tags, n);
  if (rc == 0)
    rc = api_audit(req, "device.tags.set", target,
                   json_pack("{s:O, s:O}", "tags",
                             json_object_get(body, "tags"), "previous",
                             before));
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    api_reply_error(req, 500, "internal", "cannot store the tags");
    goto out;
  }
  log_info("%s: %zu tags set", req->params[0], n);
  reply_tags(req, 200, id);
out:
  free(target);
  json_decref(before);
  json_decref(body);
}

/* PUT /api/v1/devices/{ep}/tags/{tag}: 201 if the tag is new, 200 if the
 * device had it already; either way the answer lists all its tags. */
void api_add_device_tag(struct api_req *req)
{
  const char *tag;
  json_t *cur;
  char *target = NULL;
  bool added = false, had = false;
  size_t i;
  int64_t id;
  int rc;

  if (tag_param(req, &tag) < 0 || api_device_id(req, &id) < 0)
    return;
  cur = api_device_tags_json(req->api, id);
  if (!cur) {
    api_reply_error(req, 500, "internal", "cannot read the tags");
    return;
  }
  for (i = 0; i < json_array_size(cur) && !had; i++)
    had = strcmp(json_string_value(json_array_get(cur, i)), tag) == 0;
  if (!had && json_array_size(cur) >= API_TAGS_PER_DEVICE) {
    api_reply_invalid(req, "tag",
                      "device '%s' already has %d tags, the most a device "
                      "may have",
                      req->params[0], API_TAGS_PER_DEVICE);
    goto out;
  }
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot store the tag");
    goto out;
  }
  target = xasprintf("/api/v1/devices/%s/tags/%s", req->params[0], tag);
  rc = db_device_tag_add(req->api->db, id, tag, &added);
  /* Only a change is audited: tagging again leaves everything as it was. */
  if (rc == 0 && added)
    rc = api_audit(req, "device.tag.add", target,
                   json_pack("{s:s}", "tag", tag));
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    api_reply_error(req, 500, "internal", "cannot store the tag");
    goto out;
  }
  if (added)
    log_info("%s: tagged %s", req->params[0], tag);
  reply_tags(req, added ? 201 : 200, id);
out:
  free(target);
  json_decref(cur);
}

/* DELETE /api/v1/devices/{ep}/tags/{tag}: 204, or 404 if the device does
 * not have the tag. */
void api_remove_device_tag(struct api_req *req)
{
  const char *tag;
  char *target = NULL;
  int64_t id;
  int rc;

  if (tag_param(req, &tag) < 0 || api_device_id(req, &id) < 0)
    return;
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot remove the tag");
    return;
  }
  target = xasprintf("/api/v1/devices/%s/tags/%s", req->params[0], tag);
  rc = db_device_tag_remove(req->api->db, id, tag);
  if (rc == 0)
    rc = api_audit(req, "device.tag.remove", target,
                   json_pack("{s:s}", "tag", tag));
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    if (rc == -ENOENT)
      api_reply_error(req, 404, "not_found", "device '%s' has no tag '%s'",
                      req->params[0], tag);
    else
      api_reply_error(req, 500, "internal", "cannot remove the tag");
    goto out;
  }
  log_info("%s: untagged %s", req->params[0], tag);
  api_reply_text(req, MHD_HTTP_NO_CONTENT, xstrdup(""), 0, NULL);
out:
  free(target);
}
