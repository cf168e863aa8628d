/* GET /api/v1/audit: who did what, and when; newest first. */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

struct audit_list {
  json_t *arr;
  int64_t last;
};

static void add_entry(void *arg, const struct db_audit *a)
{
  struct audit_list *al = arg;
  json_t *details = a->details ? json_loads(a->details, 0, NULL) : NULL;
  json_t *who = a->token_id
                    ? json_pack("{s:I, s:s?}", "id", (json_int_t)a->token_id,
                                "name", a->token_name)
                    : json_null();

  json_array_append_new(
      al->arr, json_pack("{s:I, s:o, s:o, s:s, s:s?, s:s?, s:o}", "id",
                         (json_int_t)a->id, "at", api_time(a->at), "token",
                         who ? who : json_null(), "action", a->action,
                         "target", a->target, "remote", a->remote, "details",
                         details ? details : json_null()));
  al->last = a->id;
}

/* GET /api/v1/audit?action=&cursor=&limit= */
void api_list_audit(struct api_req *req)
{
  struct audit_list al = {0};
  const char *action = api_query(req, "action");
  int64_t before;
  int limit;
  char next[24];

  if (api_query_limit(req, 100, 1000, &limit) < 0 ||
      api_query_cursor_id(req, &before) < 0)
    return;
  if (action && (action[0] == '\0' || strlen(action) > 64)) {
    api_reply_invalid(req, "action",
                      "expected an action such as "
                      "token.create");
    return;
  }
  al.arr = json_array();
  if (db_audit_list(req->api->db, before, action, limit, add_entry, &al) < 0) {
    json_decref(al.arr);
    api_reply_error(req, 500, "internal", "cannot read the audit log");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)al.last);
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:s?}", "entries", al.arr, "next_cursor",
                json_array_size(al.arr) == (size_t)limit ? next : NULL));
}
