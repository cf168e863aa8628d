/*
 * Bearer tokens: the bootstrap admin token, authentication and scopes of
 * every request, per-token rate limits, and the token resource itself.
 *
 * A token is "fotad_" and 32 random bytes in base64url. fotad keeps only
 * its SHA-256, so a copy of the database grants nothing; the token itself
 * is shown once, in the reply that creates it (or, for the bootstrap
 * token, in a file only the daemon's user can read), and never logged.
 */
#include "api/api_int.h"

#include <errno.h>
#include <mbedtls/base64.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define LOG_TAG "api"

#define TOKEN_PREFIX "fotad_"
#define TOKEN_RANDOM 32
#define TOKEN_TEXT_MAX 64 /* prefix + base64url of TOKEN_RANDOM, and NUL */
/* The longest credential accepted in an Authorization header. */
#define BEARER_MAX 256
#define TOKEN_NAME_MAX 64
/* last_used_at is written at most this often per token (ms). */
#define TOUCH_INTERVAL_MS 60000
/* Rate-limit state is dropped wholesale beyond this many tokens. */
#define BUCKETS_MAX 4096

/* One token's request budget (a token bucket). */
struct api_bucket {
  struct hmap_node node;
  int64_t token_id;
  double level; /* requests that may be made now */
  int64_t at;   /* loop time of the last refill, ms */
};

/* Fills out with a new token; returns 0 or a negative errno. */
static int token_generate(char out[TOKEN_TEXT_MAX])
{
  uint8_t raw[TOKEN_RANDOM];
  unsigned char b64[TOKEN_TEXT_MAX];
  size_t n = 0, off = strlen(TOKEN_PREFIX);
  int rc = crypto_random(raw, sizeof(raw));

  if (rc < 0)
    return rc;
  if (mbedtls_base64_encode(b64, sizeof(b64), &n, raw, sizeof(raw)) != 0) {
    explicit_bzero(raw, sizeof(raw));
    return -EIO;
  }
  explicit_bzero(raw, sizeof(raw));
  /* base64url without padding: the token goes in headers and shells. */
  memcpy(out, TOKEN_PREFIX, off);
  for (size_t i = 0; i < n && b64[i] != '='; i++)
    out[off++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
  out[off] = '\0';
  explicit_bzero(b64, sizeof(b64));
  return 0;
}

static void token_hash(const char *token, uint8_t out[DB_TOKEN_HASH_LEN])
{
  crypto_sha256(token, strlen(token), out);
}

static json_t *token_json(const struct db_token *t)
{
  return json_pack("{s:I, s:s, s:s, s:o, s:o, s:o}", "id", (json_int_t)t->id,
                   "name", t->name, "scope", t->scope, "created_at",
                   api_time(t->created_at), "last_used_at",
                   api_time(t->last_used_at), "revoked_at",
                   api_time(t->revoked_at));
}

/* Writes the bootstrap token for the daemon's user only (0600). */
static int write_token_file(const char *path, const char *token, char *err,
                            size_t errlen)
{
  char text[TOKEN_TEXT_MAX + 1];
  size_t len = (size_t)snprintf(text, sizeof(text), "%s\n", token);
  struct stat st;
  int rc = write_file_atomic(path, text, len, 0600);

  explicit_bzero(text, sizeof(text));
  if (rc < 0) {
    snprintf(err, errlen, "cannot write the bootstrap token to %s: %s", path,
             strerror(-rc));
    return rc;
  }
  /* The umask can only take bits away; a file left by a crashed run
   * could keep wider ones, so check. */
  if (stat(path, &st) == 0 && (st.st_mode & 077) != 0 &&
      chmod(path, 0600) < 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot make %s private: %s", path, strerror(errno));
    return rc;
  }
  return 0;
}

/*
 * On first start (no token at all in the database) creates the admin
 * token an operator needs to create the others.
 */
static int bootstrap(struct api *api, const char *token_file, char *err,
                     size_t errlen)
{
  char token[TOKEN_TEXT_MAX];
  uint8_t hash[DB_TOKEN_HASH_LEN];
  struct db_token t = {.name = "bootstrap", .scope = "admin", .hash = hash};
  struct db_audit a = {.action = "token.create"};
  char target[48];
  int64_t n = 0;
  int rc;

  rc = db_tokens_count(api->db, &n);
  if (rc < 0) {
    snprintf(err, errlen, "cannot count the API tokens");
    return rc;
  }
  if (n > 0)
    return 0;
  if (!token_file || !token_file[0]) {
    snprintf(err, errlen,
             "api_token_file: required to create the first "
             "API token");
    return -EINVAL;
  }
  rc = token_generate(token);
  if (rc < 0) {
    snprintf(err, errlen, "cannot generate the bootstrap token");
    return rc;
  }
  token_hash(token, hash);
  t.created_at = loop_wall(api->loop);
  rc = db_action_begin(api->db);
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the bootstrap token");
    goto out;
  }
  rc = db_token_add(api->db, &t);
  if (rc == 0) {
    snprintf(target, sizeof(target), "/api/v1/tokens/%lld", (long long)t.id);
    a.at = t.created_at;
    a.target = target;
    a.details = "{\"name\":\"bootstrap\",\"scope\":\"admin\","
                "\"bootstrap\":true}";
    rc = db_audit_add(api->db, &a);
  }
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the bootstrap token");
    db_action_end(api->db, false);
    goto out;
  }
  /* The file first: a token nobody can read must not be stored. */
  rc = write_token_file(token_file, token, err, errlen);
  if (rc < 0) {
    db_action_end(api->db, false);
    goto out;
  }
  rc = db_action_end(api->db, true);
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the bootstrap token");
    goto out;
  }
  log_notice("created the bootstrap admin API token (id %lld); it is in %s",
             (long long)t.id, token_file);
out:
  explicit_bzero(token, sizeof(token));
  return rc;
}

int api_auth_start(struct api *api, const char *token_file, char *err,
                   size_t errlen)
{
  return bootstrap(api, token_file, err, errlen);
}

static void buckets_clear(struct api *api)
{
  for (size_t i = 0; i < api->buckets.nbuckets; i++) {
    struct hmap_node *n = api->buckets.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;

      free(container_of(n, struct api_bucket, node));
      n = next;
    }
    api->buckets.buckets[i] = NULL;
  }
  api->buckets.len = 0;
}

void api_auth_stop(struct api *api)
{
  buckets_clear(api);
}

static struct api_bucket *bucket_find(struct api *api, int64_t token_id)
{
  uint64_t h = hash_bytes(&token_id, sizeof(token_id));

  for (struct hmap_node *n = hmap_first(&api->buckets, h); n; n = n->next) {
    struct api_bucket *b = container_of(n, struct api_bucket, node);

    if (n->hash == h && b->token_id == token_id)
      return b;
  }
  return NULL;
}

static void bucket_drop(struct api *api, int64_t token_id)
{
  struct api_bucket *b = bucket_find(api, token_id);

  if (b) {
    hmap_remove(&api->buckets, &b->node);
    free(b);
  }
}

/*
 * Takes one request from the token's bucket. Returns 0, or the seconds
 * until the next request would be allowed.
 */
static int64_t rate_take(struct api *api, int64_t token_id)
{
  struct api_bucket *b;
  int64_t now = loop_now(api->loop);

  if (api->rate_limit <= 0)
    return 0;
  b = bucket_find(api, token_id);
  if (!b) {
    if (api->buckets.len >= BUCKETS_MAX)
      buckets_clear(api);
    b = xcalloc(1, sizeof(*b));
    b->token_id = token_id;
    b->level = (double)api->rate_burst;
    b->at = now;
    hmap_insert(&api->buckets, &b->node,
                hash_bytes(&token_id, sizeof(token_id)));
  }
  b->level += (double)(now - b->at) * (double)api->rate_limit / 1000.0;
  if (b->level > (double)api->rate_burst)
    b->level = (double)api->rate_burst;
  b->at = now;
  if (b->level >= 1.0) {
    b->level -= 1.0;
    return 0;
  }
  {
    double s = (1.0 - b->level) / (double)api->rate_limit;
    int64_t w = (int64_t)s;

    return (double)w < s ? w + 1 : w > 0 ? w : 1;
  }
}

struct found_token {
  bool found;
  int64_t id, last_used_at, revoked_at;
  char name[80];
  char scope[16];
};

static void got_token(void *arg, const struct db_token *t)
{
  struct found_token *f = arg;

  f->found = true;
  f->id = t->id;
  f->last_used_at = t->last_used_at;
  f->revoked_at = t->revoked_at;
  snprintf(f->name, sizeof(f->name), "%s", t->name);
  snprintf(f->scope, sizeof(f->scope), "%s", t->scope);
}

static void unauthorized(struct api_req *req, const char *error,
                         const char *message)
{
  char h[96];

  req->api->auth_failures++;
  if (error)
    snprintf(h, sizeof(h), "Bearer realm=\"fotad\", error=\"%s\"", error);
  else
    snprintf(h, sizeof(h), "Bearer realm=\"fotad\"");
  api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, h);
  api_reply_error(req, 401, "unauthorized", "%s", message);
}

/* Finds the token in "Bearer TOKEN"; NULL if the header is not that. */
static const char *bearer_token(const char *hdr, size_t *len)
{
  const char *p;
  size_t n;

  if (strncasecmp(hdr, "Bearer", 6) != 0 || (hdr[6] != ' ' && hdr[6] != '\t'))
    return NULL;
  p = hdr + 6;
  p += strspn(p, " \t");
  /* RFC 6750 b64token characters. */
  n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789-._~+/=");
  if (n == 0 || n > BEARER_MAX || p[n + strspn(p + n, " \t")] != '\0')
    return NULL;
  *len = n;
  return p;
}

int api_authenticate(struct api_req *req, enum api_scope need)
{
  struct api *api = req->api;
  const char *hdr = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
  struct found_token f = {0};
  uint8_t hash[DB_TOKEN_HASH_LEN];
  char remote[64];
  enum api_scope scope;
  const char *tok;
  char *bearer;
  size_t len = 0;
  int64_t wait_s;
  int rc;

  if (!hdr) {
    unauthorized(req, NULL,
                 "this resource needs a token: Authorization: Bearer TOKEN");
    return -1;
  }
  tok = bearer_token(hdr, &len);
  if (!tok) {
    unauthorized(req, "invalid_request",
                 "Authorization: expected \"Bearer TOKEN\"");
    return -1;
  }
  bearer = xstrndup(tok, len);
  token_hash(bearer, hash);
  rc = db_token_by_hash(api->db, hash, got_token, &f);
  if (rc < 0 && rc != -ENOENT) {
    explicit_bzero(bearer, len);
    free(bearer);
    api_reply_error(req, 503, "unavailable", "cannot check the token now");
    return -1;
  }
  if (!f.found || f.revoked_at > 0 || api_scope_parse(f.scope, &scope) < 0) {
    explicit_bzero(bearer, len);
    free(bearer);
    api_remote(req, remote, sizeof(remote));
    /* The token itself is never logged; its id is enough to act on. */
    if (f.found)
      log_info("%s %s from %s: revoked token %lld", req->method, req->path,
               remote, (long long)f.id);
    else
      log_info("%s %s from %s: unknown token", req->method, req->path, remote);
    unauthorized(req, "invalid_token",
                 f.found ? "the token was revoked" : "unknown token");
    return -1;
  }
  req->bearer = bearer;
  req->caller.token_id = f.id;
  req->caller.scope = scope;
  snprintf(req->caller.name, sizeof(req->caller.name), "%s", f.name);

  if (scope < need) {
    char h[128];

    snprintf(h, sizeof(h),
             "Bearer realm=\"fotad\", error=\"insufficient_scope\", "
             "scope=\"%s\"",
             api_scope_name(need));
    api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, h);
    api_reply_error(req, 403, "forbidden",
                    "%s %s needs a token with scope %s (this one has %s)",
                    req->method, req->route ? req->route->pattern : req->path,
                    api_scope_name(need), api_scope_name(scope));
    return -1;
  }
  wait_s = rate_take(api, f.id);
  if (wait_s > 0) {
    char h[24];

    api->rate_limited++;
    snprintf(h, sizeof(h), "%lld", (long long)wait_s);
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, h);
    api_reply_error(req, 429, "rate_limited",
                    "token %lld exceeded %lld requests per second (burst "
                    "%lld); retry in %lld s",
                    (long long)f.id, (long long)api->rate_limit,
                    (long long)api->rate_burst, (long long)wait_s);
    return -1;
  }
  if (loop_wall(api->loop) - f.last_used_at >= TOUCH_INTERVAL_MS)
    db_token_touch(api->db, f.id, loop_wall(api->loop));
  return 0;
}

struct token_list {
  json_t *arr;
  int64_t last;
};

static void add_token(void *arg, const struct db_token *t)
{
  struct token_list *tl = arg;

  json_array_append_new(tl->arr, token_json(t));
  tl->last = t->id;
}

/* GET /api/v1/tokens?cursor=&limit=: every token, never the secrets. */
void api_list_tokens(struct api_req *req)
{
  struct token_list tl = {0};
  int64_t after;
  int limit;
  char next[24];

  if (api_query_limit(req, 100, 1000, &limit) < 0 ||
      api_query_cursor_id(req, &after) < 0)
    return;
  tl.arr = json_array();
  if (db_tokens_list(req->api->db, after, limit, add_token, &tl) < 0) {
    json_decref(tl.arr);
    api_reply_error(req, 500, "internal", "cannot list the tokens");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)tl.last);
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:s?}", "tokens", tl.arr, "next_cursor",
                json_array_size(tl.arr) == (size_t)limit ? next : NULL));
}

static void got_token_json(void *arg, const struct db_token *t)
{
  *(json_t **)arg = token_json(t);
}

/* Reads {id} and the token it names; replies 404 and returns NULL. */
static json_t *token_param(struct api_req *req, int64_t *id)
{
  json_t *j = NULL;
  int rc;

  if (parse_int64(req->params[0], 1, INT64_MAX, id) < 0) {
    api_reply_error(req, 404, "not_found", "no token '%s'", req->params[0]);
    return NULL;
  }
  rc = db_token_get(req->api->db, *id, got_token_json, &j);
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no token %lld", (long long)*id);
    return NULL;
  }
  if (rc < 0 || !j) {
    json_decref(j);
    api_reply_error(req, 500, "internal", "cannot read the token");
    return NULL;
  }
  return j;
}

/* GET /api/v1/tokens/{id} */
void api_get_token(struct api_req *req)
{
  int64_t id;
  json_t *j = token_param(req, &id);

  if (j)
    api_reply_json(req, 200, j);
}

/* A token name: 1 to TOKEN_NAME_MAX printable characters. */
static bool name_ok(const char *s, size_t len)
{
  if (len == 0 || len > TOKEN_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return false;
  return true;
}

/*
 * POST /api/v1/tokens {"name": "ci", "scope": "operator"}: a new token,
 * shown in this reply only.
 */
void api_create_token(struct api_req *req)
{
  static const char *const fields[] = {"name", "scope", NULL};
  char token[TOKEN_TEXT_MAX] = "";
  uint8_t hash[DB_TOKEN_HASH_LEN];
  struct db_token t = {.hash = hash};
  enum api_scope scope;
  char target[48];
  json_t *body = api_body_json(req), *v, *reply;
  int rc;

  if (!body)
    return;
  if (api_check_fields(req, body, fields) < 0)
    goto out;
  v = json_object_get(body, "name");
  if (!json_is_string(v) ||
      !name_ok(json_string_value(v), json_string_length(v))) {
    api_reply_invalid(req, "name",
                      "%s; expected a string of 1 to %d printable characters",
                      v ? "wrong type or length" : "required", TOKEN_NAME_MAX);
    goto out;
  }
  t.name = json_string_value(v);
  v = json_object_get(body, "scope");
  if (!json_is_string(v) ||
      api_scope_parse(json_string_value(v), &scope) < 0) {
    api_reply_invalid(req, "scope", "%s; expected read, operator or admin",
                      v ? "not a scope" : "required");
    goto out;
  }
  t.scope = api_scope_name(scope);
  if (token_generate(token) < 0) {
    api_reply_error(req, 500, "internal", "no random source");
    goto out;
  }
  token_hash(token, hash);
  t.created_at = loop_wall(req->api->loop);
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot store the token");
    goto out;
  }
  rc = db_token_add(req->api->db, &t);
  if (rc == 0) {
    snprintf(target, sizeof(target), "/api/v1/tokens/%lld", (long long)t.id);
    rc = api_audit(req, "token.create", target,
                   json_pack("{s:s, s:s}", "name", t.name, "scope", t.scope));
  }
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    api_reply_error(req, 500, "internal", "cannot store the token");
    goto out;
  }
  log_info("API token %lld (%s, %s) created by token %lld", (long long)t.id,
           t.name, t.scope, (long long)req->caller.token_id);
  reply = token_json(&t);
  /* The only time the token leaves fotad. */
  json_object_set_new(reply, "token", json_string(token));
  api_reply_json(req, 201, reply);
out:
  explicit_bzero(token, sizeof(token));
  json_decref(body);
}

/* DELETE /api/v1/tokens/{id}: revokes the token; it stays listed. */
void api_revoke_token(struct api_req *req)
{
  int64_t id;
  json_t *cur = token_param(req, &id), *after = NULL;
  char target[48];
  int rc;

  if (!cur)
    return;
  if (api_check_if_match(req, cur, false) < 0)
    goto out;
  if (!json_is_null(json_object_get(cur, "revoked_at"))) {
    api_reply_error(req, 409, "conflict", "token %lld is already revoked",
                    (long long)id);
    goto out;
  }
  snprintf(target, sizeof(target), "/api/v1/tokens/%lld", (long long)id);
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot revoke the token");
    goto out;
  }
  rc = db_token_revoke(req->api->db, id, loop_wall(req->api->loop));
  if (rc == 0)
    rc =
        api_audit(req, "token.revoke", target,
                  json_pack("{s:O, s:O}", "name", json_object_get(cur, "name"),
                            "scope", json_object_get(cur, "scope")));
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    api_reply_error(req, 500, "internal", "cannot revoke the token");
    goto out;
  }
  bucket_drop(req->api, id);
  log_info("API token %lld revoked by token %lld", (long long)id,
           (long long)req->caller.token_id);
  db_token_get(req->api->db, id, got_token_json, &after);
  api_reply_json(req, 200, after ? after : json_object());
out:
  json_decref(cur);
}
