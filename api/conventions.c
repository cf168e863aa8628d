/*
 * The conventions every route follows: scopes, strict bodies, ETags and
 * If-Match, cursors, and the audit trail of operators' actions.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

static const char *const scope_names[] = {
    [API_SCOPE_UNSET] = "unset", [API_SCOPE_PUBLIC] = "public",
    [API_SCOPE_READ] = "read",   [API_SCOPE_OPERATOR] = "operator",
    [API_SCOPE_ADMIN] = "admin", [API_SCOPE_METRICS] = "metrics",
};

const char *api_scope_name(enum api_scope scope)
{
  if ((size_t)scope >= ARRAY_SIZE(scope_names))
    return "unset";
  return scope_names[scope];
}

int api_scope_parse(const char *s, enum api_scope *out)
{
  static const enum api_scope tokens[] = {API_SCOPE_READ, API_SCOPE_OPERATOR,
                                          API_SCOPE_ADMIN};

  for (size_t i = 0; i < ARRAY_SIZE(tokens); i++) {
    if (strcmp(s, scope_names[tokens[i]]) == 0) {
      *out = tokens[i];
      return 0;
    }
  }
  return -EINVAL;
}

int api_check_fields(struct api_req *req, json_t *body,
                     const char *const *allowed)
{
  const char *key;
  json_t *v;

  json_object_foreach(body, key, v)
  {
    bool known = false;
    char list[256] = "";
    size_t off = 0;

    for (size_t i = 0; allowed[i] && !known; i++)
      known = strcmp(key, allowed[i]) == 0;
    if (known)
      continue;
    for (size_t i = 0; allowed[i] && off < sizeof(list); i++)
      off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                              i ? ", " : "", allowed[i]);
    api_reply_invalid(req, key, "unknown field (expected %s)", list);
    return -EINVAL;
  }
  return 0;
}

void api_etag_of(const void *data, size_t len, char out[40])
{
  uint8_t sum[32];
  char hex[33];

  /* 128 bits of SHA-256 are plenty to tell representations apart. */
  crypto_sha256(data, len, sum);
  hex_encode(sum, 16, hex);
  snprintf(out, 40, "\"%s\"", hex);
}

/* Does the If-Match value list etag, or say "*"? */
static bool if_match_lists(const char *list, const char *etag)
{
  size_t elen = strlen(etag);
  const char *p = list;

  while (*p) {
    size_t n;

    p += strspn(p, " \t,");
    n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    /* If-Match uses the strong comparison: a weak tag never matches. */
    if ((n == 1 && p[0] == '*') || (n == elen && memcmp(p, etag, n) == 0))
      return true;
    p += n;
  }
  return false;
}

int api_check_if_match(struct api_req *req, json_t *current, bool required)
{
  const char *im = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_IF_MATCH);
  char etag[40];
  char *text;
  size_t len;

  if (!im) {
    if (!required)
      return 0;
    api_reply_error(req, 428, "precondition_required",
                    "this change needs an If-Match header with the ETag "
                    "from a GET of the resource");
    return -1;
  }
  /* The ETag of the representation a GET shows: its JSON and newline. */
  text = json_dumps(current, JSON_COMPACT);
  if (!text) {
    api_reply_error(req, 500, "internal", "cannot encode the resource");
    return -1;
  }
  len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  api_etag_of(text, len, etag);
  free(text);
  if (if_match_lists(im, etag))
    return 0;
  api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
  api_reply_error(req, 412, "precondition_failed",
                  "If-Match: the resource changed (its ETag is now %s)", etag);
  return -1;
}

void api_remote(struct api_req *req, char *buf, size_t len)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  if (ci && ci->client_addr)
    format_sockaddr(ci->client_addr, buf, len);
  else
    snprintf(buf, len, "unknown");
}

void api_audit_template(struct api_req *req, struct db_audit *a, char *remote,
                        size_t len)
{
  api_remote(req, remote, len);
  memset(a, 0, sizeof(*a));
  a->at = loop_wall(req->api->loop);
  a->token_id = req->caller.token_id;
  a->token_name = req->caller.token_id ? req->caller.name : NULL;
  a->remote = remote;
}

int api_audit(struct api_req *req, const char *action, const char *target,
              json_t *details)
{
  char remote[64];
  char *text = details ? json_dumps(details, JSON_COMPACT) : NULL;
  struct db_audit a;
  int rc;

  api_audit_template(req, &a, remote, sizeof(remote));
  a.action = action;
  a.target = target;
  a.details = text;
  json_decref(details);
  rc = db_audit_add(req->api->db, &a);
  free(text);
  return rc;
}

int api_query_cursor_id(struct api_req *req, int64_t *out)
{
  const char *s = api_query(req, "cursor");

  *out = 0;
  if (s && parse_int64(s, 1, INT64_MAX, out) < 0) {
    api_reply_invalid(req, "cursor",
                      "expected the next_cursor of a previous "
                      "page");
    return -EINVAL;
  }
  return 0;
}

int api_device_id(struct api_req *req, int64_t *id)
{
  int rc = db_device_id(req->api->db, req->params[0], id);

  if (rc == -ENOENT)
    api_reply_error(req, 404, "unknown_device", "no device '%s'",
                    req->params[0]);
  else if (rc < 0)
    api_reply_error(req, 500, "internal", "cannot read the device");
  return rc;
}
