/*
 * Packages over HTTP: uploads (PUT with the raw image, or a multipart form
 * POST) streamed into the repository piece by piece, listing, details,
 * force flag, deletion, and downloads: the operator's (with a token) and
 * the devices' at /fw/<download token>, where the unguessable token is the
 * credential. Downloads honour single byte ranges and count what they
 * served for the job engine.
 */
#include "api/api_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOG_TAG "api"

/* Room for the multipart framing around the file, when the form's
 * Content-Length is held against package_max_size. */
#define FORM_OVERHEAD (64 * 1024)
#define FIELD_MAX 64
#define FILENAME_MAX_LEN 255
#define PP_BUFFER (16 * 1024)
#define TOKEN_LEN 32

static const char name_rule[] = "expected 1 to 64 of A-Z a-z 0-9 . _ - + ~";

/* An upload in progress, from the headers to the reply. */
struct upload {
  struct orch_upload *up;
  struct MHD_PostProcessor *pp; /* multipart POST only */
  char component[FIELD_MAX + 1];
  char version[FIELD_MAX + 1];
  char force[FIELD_MAX + 1];
  char filename[FILENAME_MAX_LEN + 1];
  bool in_file; /* the form part being read is the file */
  /* The first error met on the way, answered once the body is in (MHD
   * cannot answer earlier). status 0: none. */
  unsigned status;
  char code[24];
  char field[FIELD_MAX + 1]; /* a 400 about one field, or "" */
  char msg[400];
};

static void fail(struct upload *u, unsigned status, const char *code,
                 const char *field, const char *fmt, ...) PRINTF_LIKE(5, 6);

static void fail(struct upload *u, unsigned status, const char *code,
                 const char *field, const char *fmt, ...)
{
  va_list ap;

  if (u->status)
    return;
  u->status = status;
  snprintf(u->code, sizeof(u->code), "%s", code);
  snprintf(u->field, sizeof(u->field), "%s", field ? field : "");
  va_start(ap, fmt);
  vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
  va_end(ap);
}

static bool repo_ready(struct api_req *req)
{
  if (req->api->orch)
    return true;
  api_reply_error(req, 503, "unavailable", "the package repository is off");
  return false;
}

/* The JSON of a package, as GET shows it (new reference, or NULL). */
static json_t *package_json(struct api *api, const struct db_package *p)
{
  struct orch_download_totals t;
  char path[64];
  json_t *mcuboot = NULL;

  orch_download_totals(api->orch, p->download_token, &t);
  snprintf(path, sizeof(path), "/fw/%s", p->download_token);
  if (p->mcuboot)
    mcuboot = json_pack("{s:s, s:s?, s:s?}", "verdict", p->mcuboot, "detail",
                        p->mcuboot_detail, "version", p->mcuboot_version);
  return json_pack(
      "{s:I, s:s, s:s, s:s, s:I, s:s?, s:o, s:b, s:b, s:o, s:s, "
      "s:{s:I, s:I, s:I}}",
      "id", (json_int_t)p->id, "component", p->component, "version",
      p->version, "sha256", p->sha256, "size", (json_int_t)p->size, "filename",
      p->filename, "mcuboot", mcuboot ? mcuboot : json_null(), "forced",
      p->forced, "rollout_allowed", orch_pkg_rollout_allowed(p), "created_at",
      api_time(p->created_at), "download_path", path, "downloads", "started",
      (json_int_t)t.started, "completed", (json_int_t)t.completed,
      "bytes_served", (json_int_t)t.bytes);
}

struct one_json {
  struct api *api;
  json_t *j;
};

static void got_json(void *arg, const struct db_package *p)
{
  struct one_json *o = arg;

  o->j = package_json(o->api, p);
}

/*
 * Reads package params[0] as JSON: the new reference, or NULL after a
 * 404 or 500 reply. *id is set from the path.
 */
static json_t *load_package(struct api_req *req, int64_t *id)
{
  struct one_json o = {req->api, NULL};
  int rc;

  if (parse_int64(req->params[0], 1, INT64_MAX, id) < 0) {
    api_reply_error(req, 404, "not_found", "no package '%s'", req->params[0]);
    return NULL;
  }
  rc = db_package_get(req->api->db, *id, got_json, &o);
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no package %lld", (long long)*id);
    return NULL;
  }
  if (rc < 0 || !o.j) {
    json_decref(o.j);
    api_reply_error(req, 500, "internal", "cannot read the package");
    return NULL;
  }
  return o.j;
}

/* Uploads. */

static void upload_cleanup(struct api_req *req, bool sent)
{
  struct upload *u = req->ctx;

  if (u->pp)
    MHD_destroy_post_processor(u->pp);
  /* An upload that was not stored (an error, a client gone) leaves no
   * temporary file behind. */
  orch_upload_free(u->up);
  free(u);
  req->ctx = NULL;
}

/* Writes file bytes to the upload; -1 (with the error kept) on failure. */
static int file_data(struct upload *u, const char *data, size_t len)
{
  char err[256];
  int rc = orch_upload_write(u->up, data, len, err, sizeof(err));

  if (rc == -EFBIG)
    fail(u, 413, "too_large", NULL, "%s", err);
  else if (rc == -ENOSPC)
    fail(u, 507, "insufficient_storage", NULL, "%s", err);
  else if (rc < 0)
    fail(u, 500, "internal", NULL, "%s", err);
  return rc < 0 ? -1 : 0;
}

static int put_data(struct api_req *req, const char *data, size_t len)
{
  return file_data(req->ctx, data, len);
}

/* Copies a query argument, if present, into buf; replies 400 if it is too
 * long. */
static int query_copy(struct api_req *req, const char *key, char *buf,
                      size_t len)
{
  const char *v = api_query(req, key);

  if (!v)
    return 0;
  if (strlen(v) >= len) {
    api_reply_invalid(req, key, "%s", name_rule);
    return -EINVAL;
  }
  memcpy(buf, v, strlen(v) + 1);
  return 0;
}

/*
 * Checks the package's fields once they are all known (query or form):
 * fills the failure and returns -1 if one is missing or malformed.
 */
static int check_fields(struct upload *u, bool *force)
{
  *force = false;
  if (!u->component[0])
    fail(u, 400, "bad_request", "component", "required");
  else if (!orch_pkg_name_valid(u->component))
    fail(u, 400, "bad_request", "component", "%s", name_rule);
  else if (!u->version[0])
    fail(u, 400, "bad_request", "version", "required");
  else if (!orch_pkg_name_valid(u->version))
    fail(u, 400, "bad_request", "version", "%s", name_rule);
  else if (u->force[0] && parse_bool(u->force, force) < 0)
    fail(u, 400, "bad_request", "force", "expected true or false");
  return u->status ? -1 : 0;
}

static void reply_failure(struct api_req *req, struct upload *u)
{
  if (u->field[0])
    api_reply_invalid(req, u->field, "%s", u->msg);
  else
    api_reply_error(req, u->status, u->code, "%s", u->msg);
}

/* Stores the finished upload and replies 201 (new), 200 (the same image
 * was there already) or the error. */
static void upload_end(struct api_req *req)
{
  struct upload *u = req->ctx;
  struct db_audit a;
  struct orch_pkg_new p = {0};
  struct one_json o = {req->api, NULL};
  char remote[64], err[400], location[64];
  bool created = false;
  int64_t id = 0;
  int rc;

  if (u->pp) {
    enum MHD_Result done = MHD_destroy_post_processor(u->pp);

    u->pp = NULL;
    if (done != MHD_YES)
      fail(u, 400, "bad_request", NULL,
           "the multipart/form-data body is malformed or incomplete");
  }
  if (!u->status && !u->up)
    fail(u, 400, "bad_request", "file",
         "required: the image as a file field (curl -F file=@IMAGE)");
  if (!u->status)
    check_fields(u, &p.force);
  if (u->status) {
    reply_failure(req, u);
    return;
  }
  api_audit_template(req, &a, remote, sizeof(remote));
  p.component = u->component;
  p.version = u->version;
  p.filename = u->filename[0] ? u->filename : NULL;
  p.audit = &a;
  rc = orch_upload_finish(u->up, &p, &id, &created, err, sizeof(err));
  if (rc == -EEXIST) {
    api_reply_error(req, 409, "conflict", "%s", err);
    return;
  }
  if (rc == -ENODATA || rc == -EINVAL) {
    api_reply_error(req, 400, "bad_request", "%s", err);
    return;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "%s", err);
    return;
  }
  rc = db_package_get(req->api->db, id, got_json, &o);
  if (rc < 0 || !o.j) {
    json_decref(o.j);
    api_reply_error(req, 500, "internal", "cannot read package %lld",
                    (long long)id);
    return;
  }
  if (created) {
    snprintf(location, sizeof(location), "/api/v1/packages/%lld",
             (long long)id);
    api_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
  }
  api_reply_json(req, created ? 201 : 200, o.j);
}

/* Refuses an announced body larger than the package limit allows, before
 * any of it is read. */
static int check_length(struct api_req *req, int64_t overhead)
{
  const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  int64_t max = orch_pkg_max_size(req->api->orch), n;

  if (!cl || parse_int64(cl, 0, INT64_MAX, &n) < 0 || n <= max + overhead)
    return 0;
  api_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                  "a body of %lld bytes exceeds the package limit of %lld "
                  "bytes (package_max_size)",
                  (long long)n, (long long)max);
  return -1;
}

/* Starts an upload: the query's fields, the length check, the state. NULL
 * after a reply. */
static struct upload *upload_start(struct api_req *req, int64_t overhead)
{
  struct upload *u;
  bool force;

  if (!repo_ready(req) || check_length(req, overhead) < 0)
    return NULL;
  u = xcalloc(1, sizeof(*u));
  if (query_copy(req, "component", u->component, sizeof(u->component)) < 0 ||
      query_copy(req, "version", u->version, sizeof(u->version)) < 0 ||
      query_copy(req, "force", u->force, sizeof(u->force)) < 0) {
    free(u);
    return NULL;
  }
  /* What the query gives is checked now, before the body travels. */
  if ((u->component[0] && !orch_pkg_name_valid(u->component)) ||
      (u->version[0] && !orch_pkg_name_valid(u->version)) ||
      (u->force[0] && parse_bool(u->force, &force) < 0)) {
    check_fields(u, &force);
    reply_failure(req, u);
    free(u);
    return NULL;
  }
  req->ctx = u;
  req->cleanup = upload_cleanup;
  req->body_end = upload_end;
  return u;
}

/*
 * PUT /api/v1/packages?component=NAME&version=V[&force=true] with the
 * image as the body (curl -T IMAGE).
 */
void api_put_package(struct api_req *req)
{
  struct upload *u = upload_start(req, 0);
  char err[256];
  bool force;

  if (!u)
    return;
  if (check_fields(u, &force) < 0) {
    /* Answered at once: the body is not read at all. */
    req->body_end = NULL;
    reply_failure(req, u);
    return;
  }
  u->up = orch_upload_new(req->api->orch, err, sizeof(err));
  if (!u->up) {
    req->body_end = NULL;
    api_reply_error(req, 500, "internal", "%s", err);
    return;
  }
  req->body_cb = put_data;
}

/* A printable ASCII name without quotes or slashes, or "" (the name is
 * informative only: another is not worth refusing the upload). */
static void keep_filename(struct upload *u, const char *name)
{
  size_t n = strlen(name);

  u->filename[0] = '\0';
  if (n == 0 || n > FILENAME_MAX_LEN)
    return;
  for (size_t i = 0; i < n; i++) {
    if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' ||
        name[i] == '\\' || name[i] == '/')
      return;
  }
  memcpy(u->filename, name, n + 1);
}

/* MHD's post processor calls this with each piece of each form field. */
static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *filename,
                                  const char *content_type,
                                  const char *transfer_encoding,
                                  const char *data, uint64_t off, size_t size)
{
  struct api_req *req = cls;
  struct upload *u = req->ctx;
  char err[256], *buf = NULL;

  if (strcmp(key, "file") == 0) {
    if (!u->up) {
      u->up = orch_upload_new(req->api->orch, err, sizeof(err));
      if (!u->up) {
        fail(u, 500, "internal", NULL, "%s", err);
        return MHD_NO;
      }
      if (filename)
        keep_filename(u, filename);
    } else if (off == 0 && (!u->in_file || orch_upload_size(u->up) > 0)) {
      fail(u, 400, "bad_request", "file", "one file per upload");
      return MHD_NO;
    }
    u->in_file = true;
    if (size > 0 && file_data(u, data, size) < 0)
      return MHD_NO;
    return MHD_YES;
  }
  u->in_file = false;
  if (strcmp(key, "component") == 0)
    buf = u->component;
  else if (strcmp(key, "version") == 0)
    buf = u->version;
  else if (strcmp(key, "force") == 0)
    buf = u->force;
  if (!buf) {
    fail(u, 400, "bad_request", key,
         "unknown field (expected component, version, force, file)");
    return MHD_NO;
  }
  if (off + size > FIELD_MAX) {
    fail(u, 400, "bad_request", key, "%s", name_rule);
    return MHD_NO;
  }
  /* A form field overrides the query argument of the same name. */
  memcpy(buf + off, data, size);
  buf[off + size] = '\0';
  return MHD_YES;
}

static int post_data(struct api_req *req, const char *data, size_t len)
{
  struct upload *u = req->ctx;

  if (MHD_post_process(u->pp, data, len) == MHD_YES)
    return 0;
  fail(u, 400, "bad_request", NULL,
       "the multipart/form-data body is malformed");
  return -1;
}

/*
 * POST /api/v1/packages as multipart/form-data (curl -F component=NAME
 * -F version=V -F file=@IMAGE); fields may also come in the query.
 */
void api_post_package(struct api_req *req)
{
  struct upload *u = upload_start(req, FORM_OVERHEAD);

  if (!u)
    return;
  u->pp = MHD_create_post_processor(req->conn, PP_BUFFER, form_field, req);
  if (!u->pp) {
    req->body_end = NULL;
    api_reply_error(req, 400, "bad_request",
                    "Content-Type: expected multipart/form-data (curl -F), "
                    "or PUT the image as the body");
    return;
  }
  req->body_cb = post_data;
}

/* Listing and details. */

struct list {
  struct api *api;
  json_t *arr;
  int64_t last;
};

static void add_package(void *arg, const struct db_package *p)
{
  struct list *l = arg;
  json_t *j = package_json(l->api, p);

  if (j)
    json_array_append_new(l->arr, j);
  l->last = p->id;
}

/* GET /api/v1/packages?component=&cursor=&limit=: newest first. */
void api_list_packages(struct api_req *req)
{
  struct list l = {req->api, NULL, 0};
  const char *component = api_query(req, "component");
  int64_t before;
  int limit;
  char next[24];

  if (!repo_ready(req) || api_query_limit(req, 100, 1000, &limit) < 0 ||
      api_query_cursor_id(req, &before) < 0)
    return;
  if (component && !orch_pkg_name_valid(component)) {
    api_reply_invalid(req, "component", "%s", name_rule);
    return;
  }
  l.arr = json_array();
  if (db_packages_list(req->api->db, component, before, limit, add_package,
                       &l) < 0) {
    json_decref(l.arr);
    api_reply_error(req, 500, "internal", "cannot list packages");
    return;
  }
  snprintf(next, sizeof(next), "%lld", (long long)l.last);
  api_reply_json(
      req, 200,
      json_pack("{s:o, s:s?}", "packages", l.arr, "next_cursor",
                json_array_size(l.arr) == (size_t)limit ? next : NULL));
}

/* GET /api/v1/packages/{id} */
void api_get_package(struct api_req *req)
{
  int64_t id;
  json_t *j;

  if (!repo_ready(req))
    return;
  j = load_package(req, &id);
  if (j)
    api_reply_json(req, 200, j);
}

/* PATCH /api/v1/packages/{id} {"force": true}: lets a package whose
 * MCUboot verdict is invalid be rolled out all the same (or not). */
void api_patch_package(struct api_req *req)
{
  static const char *const fields[] = {"force", NULL};
  json_t *body = NULL, *cur = NULL, *force;
  struct db_audit a;
  char remote[64];
  int64_t id;
  int rc;

  if (!repo_ready(req))
    return;
  body = api_body_json(req);
  if (!body || api_check_fields(req, body, fields) < 0)
    goto out;
  force = json_object_get(body, "force");
  if (!json_is_boolean(force)) {
    api_reply_invalid(req, "force", "required: true or false");
    goto out;
  }
  cur = load_package(req, &id);
  if (!cur || api_check_if_match(req, cur, false) < 0)
    goto out;
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_pkg_set_forced(req->api->orch, id, json_is_true(force), &a);
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no package %lld", (long long)id);
    goto out;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "cannot update the package");
    goto out;
  }
  json_decref(cur);
  cur = load_package(req, &id);
  if (cur) {
    api_reply_json(req, 200, cur);
    cur = NULL;
  }
out:
  json_decref(cur);
  json_decref(body);
}

/* DELETE /api/v1/packages/{id}: refused (409) while a live rollout or an
 * active job uses it; the file goes with the last package that has its
 * content. */
void api_delete_package(struct api_req *req)
{
  json_t *cur;
  struct db_audit a;
  char remote[64], err[256];
  int64_t id;
  int rc;

  if (!repo_ready(req))
    return;
  cur = load_package(req, &id);
  if (!cur)
    return;
  if (api_check_if_match(req, cur, false) < 0)
    goto out;
  api_audit_template(req, &a, remote, sizeof(remote));
  rc = orch_pkg_delete(req->api->orch, id, &a, err, sizeof(err));
  if (rc == -ENOENT)
    api_reply_error(req, 404, "not_found", "%s", err);
  else if (rc == -EBUSY)
    api_reply_error(req, 409, "conflict", "%s", err);
  else if (rc < 0)
    api_reply_error(req, 500, "internal", "%s", err);
  else
    api_reply_json(req, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
out:
  json_decref(cur);
}

/* Downloads. */

/* What a download needs of a package row. */
struct pkg {
  bool found;
  struct db_package p; /* strings point into the buffers below */
  char sha256[65];
  char token[TOKEN_LEN + 1];
  char component[FIELD_MAX + 1];
  char version[FIELD_MAX + 1];
};

static void got_pkg(void *arg, const struct db_package *p)
{
  struct pkg *k = arg;

  k->found = true;
  k->p = *p;
  snprintf(k->sha256, sizeof(k->sha256), "%s", p->sha256);
  snprintf(k->token, sizeof(k->token), "%s", p->download_token);
  snprintf(k->component, sizeof(k->component), "%s", p->component);
  snprintf(k->version, sizeof(k->version), "%s", p->version);
  k->p.sha256 = k->sha256;
  k->p.download_token = k->token;
  k->p.component = k->component;
  k->p.version = k->version;
  /* Not needed to send the file, and not kept. */
  k->p.file = k->p.filename = k->p.mcuboot = NULL;
  k->p.mcuboot_detail = k->p.mcuboot_version = NULL;
}

/*
 * Parses a Range header against a representation of size bytes (RFC 9110
 * section 14): 1 with *off and *len for one satisfiable range; 0 when the
 * header is to be ignored and the whole file sent (another unit, several
 * ranges, bad syntax); -1 when the range cannot be satisfied (416).
 */
static int parse_range(const char *h, uint64_t size, uint64_t *off,
                       uint64_t *len)
{
  const char *p, *dash;
  char a[24], b[24];
  size_t alen, blen;
  int64_t first, last = 0;

  if (strncasecmp(h, "bytes=", 6) != 0)
    return 0;
  p = h + 6;
  p += strspn(p, " \t");
  if (strchr(p, ','))
    return 0;
  dash = strchr(p, '-');
  if (!dash)
    return 0;
  alen = (size_t)(dash - p);
  blen = strcspn(dash + 1, " \t");
  if (alen >= sizeof(a) || blen >= sizeof(b) ||
      dash[1 + blen + strspn(dash + 1 + blen, " \t")] != '\0')
    return 0;
  memcpy(a, p, alen);
  a[alen] = '\0';
  memcpy(b, dash + 1, blen);
  b[blen] = '\0';
  if (alen == 0) {
    /* "-N": the last N bytes. */
    if (parse_int64(b, 0, INT64_MAX, &last) < 0)
      return 0;
    if (last == 0 || size == 0)
      return -1;
    *len = (uint64_t)last < size ? (uint64_t)last : size;
    *off = size - *len;
    return 1;
  }
  if (parse_int64(a, 0, INT64_MAX, &first) < 0 ||
      (blen > 0 && (parse_int64(b, 0, INT64_MAX, &last) < 0 || last < first)))
    return 0;
  if ((uint64_t)first >= size)
    return -1;
  if (blen == 0 || (uint64_t)last >= size)
    last = (int64_t)size - 1;
  *off = (uint64_t)first;
  *len = (uint64_t)(last - first) + 1;
  return 1;
}

/* A device's download, counted once its reply went out. */
struct served {
  char token[TOKEN_LEN + 1];
  char requester[64];
  uint64_t off, len, total;
};

static void served_done(struct api_req *req, bool sent)
{
  struct served *s = req->ctx;

  if (sent && strcmp(req->method, "HEAD") != 0)
    orch_download_served(req->api->orch, s->token, s->requester, s->off,
                         s->len, s->total);
  free(s);
  req->ctx = NULL;
}

/* The client's IP address, without the port: a device resuming a download
 * on a new connection is still the same requester. */
static void client_ip(struct api_req *req, char *buf, size_t len)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  socklen_t salen = sa && sa->sa_family == AF_INET6
                        ? sizeof(struct sockaddr_in6)
                        : sizeof(struct sockaddr_in);

  if (!sa || getnameinfo(sa, salen, buf, len, NULL, 0, NI_NUMERICHOST) != 0)
    snprintf(buf, len, "unknown");
}

/*
 * Sends a package's file, whole (200) or one range of it (206), with its
 * SHA-256 as a strong ETag (so If-None-Match and If-Range work). A device
 * download (count true) is counted per requester once it is sent.
 */
static void send_file(struct api_req *req, const struct pkg *k, bool count,
                      bool attachment)
{
  const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_IF_NONE_MATCH);
  const char *range = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_RANGE);
  const char *if_range = MHD_lookup_connection_value(
      req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  uint64_t size = (uint64_t)k->p.size, off = 0, len = size;
  unsigned status = MHD_HTTP_OK;
  char etag[72], hdr[128];
  int fd, r;

  snprintf(etag, sizeof(etag), "\"%s\"", k->sha256);
  if (inm && (strcmp(inm, "*") == 0 || strstr(inm, etag))) {
    api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
    api_reply_text(req, MHD_HTTP_NOT_MODIFIED, xstrdup(""), 0, NULL);
    return;
  }
  /* A Range whose If-Range names another version gets the whole file. */
  if (range && (!if_range || strcmp(if_range, etag) == 0)) {
    r = parse_range(range, size, &off, &len);
    if (r < 0) {
      snprintf(hdr, sizeof(hdr), "bytes */%llu", (unsigned long long)size);
      api_add_header(req, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
      api_reply_error(req, MHD_HTTP_RANGE_NOT_SATISFIABLE,
                      "range_not_satisfiable",
                      "Range: %s is outside the %llu bytes of the package",
                      range, (unsigned long long)size);
      return;
    }
    if (r > 0)
      status = MHD_HTTP_PARTIAL_CONTENT;
  }
  if (orch_pkg_open(req->api->orch, &k->p, &fd) < 0) {
    api_reply_error(req, 500, "internal", "cannot read the package file");
    return;
  }
  api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
  api_add_header(req, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  if (status == MHD_HTTP_PARTIAL_CONTENT) {
    snprintf(hdr, sizeof(hdr), "bytes %llu-%llu/%llu", (unsigned long long)off,
             (unsigned long long)(off + len - 1), (unsigned long long)size);
    api_add_header(req, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
  }
  if (attachment) {
    /* Names are of safe characters only (orch_pkg_name_valid()). */
    snprintf(hdr, sizeof(hdr), "attachment; filename=\"%s-%s.bin\"",
             k->component, k->version);
    api_add_header(req, MHD_HTTP_HEADER_CONTENT_DISPOSITION, hdr);
  }
  if (count) {
    struct served *s = xcalloc(1, sizeof(*s));

    snprintf(s->token, sizeof(s->token), "%s", k->token);
    client_ip(req, s->requester, sizeof(s->requester));
    s->off = off;
    s->len = len;
    s->total = size;
    req->ctx = s;
    req->cleanup = served_done;
  }
  api_reply_fd(req, status, fd, off, len, "application/octet-stream");
}

/* GET /api/v1/packages/{id}/content: the operator's download. */
void api_get_package_content(struct api_req *req)
{
  struct pkg k = {0};
  int64_t id;
  int rc;

  if (!repo_ready(req))
    return;
  if (parse_int64(req->params[0], 1, INT64_MAX, &id) < 0) {
    api_reply_error(req, 404, "not_found", "no package '%s'", req->params[0]);
    return;
  }
  rc = db_package_get(req->api->db, id, got_pkg, &k);
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no package %lld", (long long)id);
    return;
  }
  if (rc < 0 || !k.found) {
    api_reply_error(req, 500, "internal", "cannot read the package");
    return;
  }
  send_file(req, &k, false, true);
}

static bool is_token(const char *s)
{
  size_t n = strlen(s);

  if (n != TOKEN_LEN)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return true;
}

/*
 * GET /fw/{token}: a device's download. No bearer token: the unguessable
 * download token in the URL is the credential, so an unknown one gets the
 * same 404 as a malformed one.
 */
void api_get_fw(struct api_req *req)
{
  struct pkg k = {0};
  int rc;

  if (!repo_ready(req))
    return;
  rc = is_token(req->params[0])
           ? db_package_by_token(req->api->db, req->params[0], got_pkg, &k)
           : -ENOENT;
  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no such package download");
    return;
  }
  if (rc < 0 || !k.found) {
    api_reply_error(req, 500, "internal", "cannot read the package");
    return;
  }
  send_file(req, &k, true, false);
}
