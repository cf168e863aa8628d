#include "api/api_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_TAG "api"

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  log_vmsg(LL_WARN, "mhd", fmt, ap);
}

static void req_free(struct api_req *req)
{
  if (!req)
    return;
  if (req->srv_handle)
    srv_forget(req->api->srv, req->srv_handle);
  api_sub_free(req->sub);
  json_decref(req->deferred_body);
  for (size_t i = 0; i < req->nparams; i++)
    free(req->params[i]);
  for (size_t i = 0; i < req->nheaders; i++)
    free(req->hdr_value[i]);
  if (req->bearer) {
    explicit_bzero(req->bearer, strlen(req->bearer));
    free(req->bearer);
  }
  free(req->idem_key);
  free(req->body);
  free(req);
}

void api_add_header(struct api_req *req, const char *name, const char *value)
{
  if (req->nheaders == API_MAX_HEADERS) {
    log_warn("%s %s: header %s dropped", req->method, req->path, name);
    return;
  }
  req->hdr_name[req->nheaders] = name;
  req->hdr_value[req->nheaders] = xstrdup(value);
  req->nheaders++;
}

/* Counts a reply for /metrics, by route and status. */
static void count_reply(struct api_req *req, unsigned status)
{
  struct api_route_stats *rs =
      &req->api->route_stats[req->route ? (size_t)(req->route - api_routes)
                                        : api_nroutes];

  for (size_t i = 0; i < API_STATUS_SLOTS; i++) {
    if (rs->status[i] == status || rs->status[i] == 0) {
      rs->status[i] = status;
      rs->count[i]++;
      return;
    }
  }
  rs->other++;
}

/* Adds the request's extra headers and the common ones to resp. */
static void add_headers(struct api_req *req, struct MHD_Response *resp,
                        const char *content_type)
{
  bool ok = true;

  if (content_type)
    ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                 content_type) == MHD_YES;
  ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                     "no-store") == MHD_YES;
  for (size_t i = 0; i < req->nheaders; i++)
    ok = ok && MHD_add_response_header(resp, req->hdr_name[i],
                                       req->hdr_value[i]) == MHD_YES;
  if (!ok)
    log_warn("cannot add headers to the response");
}

/* Does an If-None-Match or If-Match value list etag (or say "*")? */
static bool etag_listed(const char *list, const char *etag)
{
  size_t elen = strlen(etag);
  const char *p = list;

  while (*p) {
    size_t n;

    p += strspn(p, " \t,");
    n = strcspn(p, ",");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
      n--;
    if ((n == 1 && p[0] == '*') || (n == elen && memcmp(p, etag, n) == 0))
      return true;
    /* A weak validator matches If-None-Match by its opaque part. */
    if (n == elen + 2 && strncmp(p, "W/", 2) == 0 &&
        memcmp(p + 2, etag, elen) == 0)
      return true;
    p += n;
  }
  return false;
}

static void queue(struct api_req *req, unsigned status, char *text, size_t len,
                  const char *content_type)
{
  struct MHD_Response *resp;

  if (req->replied) {
    free(text);
    return;
  }
  req->replied = true;
  /* A representation a GET shows carries its ETag, so that a client can
   * poll with If-None-Match and make a later change conditional. */
  if (status == MHD_HTTP_OK &&
      (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)) {
    char etag[40];
    const char *inm = MHD_lookup_connection_value(
        req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

    api_etag_of(text, len, etag);
    api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
    if (inm && etag_listed(inm, etag)) {
      status = MHD_HTTP_NOT_MODIFIED;
      len = 0;
      content_type = NULL;
    }
  }
  count_reply(req, status);
  resp = MHD_create_response_from_buffer_with_free_callback(len, text, free);
  if (!resp) {
    log_err("cannot create a response for %s %s", req->method, req->path);
    free(text);
    return;
  }
  add_headers(req, resp, content_type);
  if (MHD_queue_response(req->conn, status, resp) != MHD_YES)
    log_warn("cannot queue the response to %s %s", req->method, req->path);
  MHD_destroy_response(resp);
}

void api_reply_json(struct api_req *req, unsigned status, json_t *body)
{
  char *text = json_dumps(body, JSON_COMPACT);
  size_t len;

  json_decref(body);
  if (!text) {
    log_err("cannot encode the JSON reply to %s %s", req->method, req->path);
    text = xstrdup("{\"error\":{\"code\":\"internal\","
                   "\"message\":\"cannot encode the reply\"}}");
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  /* A trailing newline keeps curl output readable in a terminal. */
  len = strlen(text);
  text = xrealloc(text, len + 2);
  text[len++] = '\n';
  text[len] = '\0';
  if (req->idem_key && !req->replied)
    api_idem_store(req, status, text, len);
  queue(req, status, text, len, "application/json");
}

void api_reply_text(struct api_req *req, unsigned status, char *text,
                    size_t len, const char *content_type)
{
  queue(req, status, text, len, content_type);
}

void api_reply_stream(struct api_req *req, const char *content_type,
                      MHD_ContentReaderCallback reader, void *cls)
{
  struct MHD_Response *resp;

  if (req->replied)
    return;
  req->replied = true;
  count_reply(req, MHD_HTTP_OK);
  /* Unknown size: chunked on HTTP/1.1. No free callback: the stream's
   * state belongs to the request and goes with it (req_free()). */
  resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, cls,
                                           NULL);
  if (!resp) {
    log_err("cannot create a stream for %s %s", req->method, req->path);
    return;
  }
  add_headers(req, resp, content_type);
  if (MHD_queue_response(req->conn, MHD_HTTP_OK, resp) != MHD_YES)
    log_warn("cannot queue the stream to %s %s", req->method, req->path);
  MHD_destroy_response(resp);
}

void api_reply_fd(struct api_req *req, unsigned status, int fd, uint64_t off,
                  uint64_t len, const char *content_type)
{
  struct MHD_Response *resp;

  if (req->replied) {
    close(fd);
    return;
  }
  req->replied = true;
  count_reply(req, status);
  /* MHD sends the file with sendfile() where it can and closes fd. */
  resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
  if (!resp) {
    log_err("cannot create a file response for %s %s", req->method, req->path);
    close(fd);
    return;
  }
  add_headers(req, resp, content_type);
  if (MHD_queue_response(req->conn, status, resp) != MHD_YES)
    log_warn("cannot queue the file to %s %s", req->method, req->path);
  MHD_destroy_response(resp);
}

void api_reply_error(struct api_req *req, unsigned status, const char *code,
                     const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  json_t *body;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
  if (!body) {
    /* json_pack fails only on invalid UTF-8 in msg. */
    body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message",
                     "(message not valid UTF-8)");
  }
  if (status >= 500)
    log_err("%s %s: %u %s", req->method, req->path, status, msg);
  else
    log_debug("%s %s: %u %s", req->method, req->path, status, msg);
  api_reply_json(req, status, body);
}

void api_reply_invalid(struct api_req *req, const char *field, const char *fmt,
                       ...)
{
  char what[448], msg[512];
  va_list ap;
  json_t *body;

  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  snprintf(msg, sizeof(msg), "%s: %s", field, what);
  body = json_pack("{s:{s:s, s:s, s:s}}", "error", "code", "bad_request",
                   "message", msg, "field", field);
  if (!body) {
    api_reply_error(req, 400, "bad_request", "%s: (not valid UTF-8)",
                    "request");
    return;
  }
  log_debug("%s %s: 400 %s: %s", req->method, req->path, field, what);
  api_reply_json(req, 400, body);
}

/*
 * Matches path against pattern segment by segment; "{name}" matches any one
 * non-empty segment and captures it into req->params.
 */
static bool match(const char *pattern, const char *path, struct api_req *req)
{
  const char *p = pattern, *s = path;
  size_t n = 0;

  while (*p && *s) {
    if (*p != '/' || *s != '/')
      return false;
    p++;
    s++;
    size_t plen = strcspn(p, "/");
    size_t slen = strcspn(s, "/");

    if (plen > 1 && p[0] == '{' && p[plen - 1] == '}') {
      if (slen == 0 || n == API_MAX_PARAMS)
        return false;
      n++;
    } else if (plen != slen || strncmp(p, s, plen) != 0) {
      return false;
    }
    p += plen;
    s += slen;
  }
  if (*p || *s)
    return false;

  /* Matched: now capture, which the loop above only counted. */
  p = pattern;
  s = path;
  while (*p) {
    size_t plen, slen;

    p++;
    s++;
    plen = strcspn(p, "/");
    slen = strcspn(s, "/");
    if (plen > 1 && p[0] == '{')
      req->params[req->nparams++] = xstrndup(s, slen);
    p += plen;
    s += slen;
  }
  return true;
}

void api_wait(struct api_req *req)
{
  if (req->deferred_body) {
    json_t *body = req->deferred_body;

    req->deferred_body = NULL;
    api_reply_json(req, req->deferred_status, body);
    return;
  }
  req->suspended = true;
  req->waiting_next = req->api->waiting;
  if (req->waiting_next)
    req->waiting_next->waiting_prev = &req->waiting_next;
  req->waiting_prev = &req->api->waiting;
  req->api->waiting = req;
  MHD_suspend_connection(req->conn);
}

void api_resume(struct api_req *req, unsigned status, json_t *body)
{
  req->srv_handle = 0;
  req->deferred_status = status;
  req->deferred_body = body;
  if (req->suspended) {
    req->suspended = false;
    *req->waiting_prev = req->waiting_next;
    if (req->waiting_next)
      req->waiting_next->waiting_prev = req->waiting_prev;
    MHD_resume_connection(req->conn);
    req->api->kick = true;
  }
}

json_t *api_body_json(struct api_req *req)
{
  json_error_t jerr;
  json_t *j;

  if (!req->body || req->body_len == 0) {
    api_reply_error(req, 400, "bad_request", "a JSON object body is required");
    return NULL;
  }
  /* Any JSON value parses, so that "5" gets told it is not an object. */
  j = json_loadb(req->body, req->body_len,
                 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!j) {
    api_reply_error(req, 400, "bad_json",
                    "malformed JSON at line %d column "
                    "%d: %s",
                    jerr.line, jerr.column, jerr.text);
    return NULL;
  }
  if (!json_is_object(j)) {
    api_reply_error(req, 400, "bad_request", "the body must be a JSON object");
    json_decref(j);
    return NULL;
  }
  return j;
}

const char *api_query(struct api_req *req, const char *key)
{
  return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

int api_query_limit(struct api_req *req, int def, int max, int *out)
{
  const char *s = api_query(req, "limit");
  int64_t v;

  *out = def;
  if (!s)
    return 0;
  if (parse_int64(s, 1, max, &v) < 0) {
    api_reply_error(req, 400, "bad_request",
                    "limit: expected a whole number from 1 to %d", max);
    return -EINVAL;
  }
  *out = (int)v;
  return 0;
}

json_t *api_time(int64_t unix_ms)
{
  char t[32];

  if (unix_ms <= 0)
    return json_null();
  format_iso8601(unix_ms, t, sizeof(t));
  return json_string(t);
}

/*
 * Finds the route of the request, capturing its parameters. Without one,
 * req->allow lists the methods the path allows (empty: unknown path), and
 * *public_path tells whether the path is only public routes', so that a
 * wrong method there needs no token to be told so.
 */
static void route_find(struct api_req *req, bool *public_path)
{
  const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
  size_t allow_len = 0;

  *public_path = true;
  for (size_t i = 0; i < api_nroutes; i++) {
    const struct api_route *r = &api_routes[i];

    if (!match(r->pattern, req->path, req))
      continue;
    if (strcmp(r->method, method) == 0) {
      req->route = r;
      return;
    }
    for (size_t k = 0; k < req->nparams; k++)
      free(req->params[k]);
    req->nparams = 0;
    *public_path = *public_path && r->scope == API_SCOPE_PUBLIC;
    allow_len += (size_t)snprintf(req->allow + allow_len,
                                  sizeof(req->allow) - allow_len, "%s%s",
                                  allow_len ? ", " : "", r->method);
    if (allow_len >= sizeof(req->allow))
      allow_len = sizeof(req->allow) - 1;
  }
  if (allow_len == 0)
    *public_path = false;
}

/*
 * Authentication and authorization, at the first call for a request (its
 * headers are in, its body not yet): a request refused here is answered
 * before anyone uploads a body for it.
 */
static void admit(struct api_req *req)
{
  struct api *api = req->api;
  bool public_path;
  enum api_scope need;

  route_find(req, &public_path);
  if (!req->route) {
    /* Unknown paths are revealed only to callers with a token. */
    if (!public_path)
      api_authenticate(req, API_SCOPE_READ);
    return;
  }
  need = req->route->scope;
  if (need == API_SCOPE_METRICS)
    need = api->metrics_public ? API_SCOPE_PUBLIC : API_SCOPE_READ;
  if (need != API_SCOPE_PUBLIC)
    api_authenticate(req, need);
}

static void dispatch(struct api_req *req)
{
  if (!req->route) {
    if (req->allow[0])
      api_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                      "%s is not allowed on %s (allowed: %s)", req->method,
                      req->path, req->allow);
    else
      api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found",
                      "no such resource: %s", req->path);
    return;
  }
  if ((req->route->flags & API_IDEMPOTENT) && api_idem_check(req) != 0)
    return;
  req->route->fn(req);
  if (!req->replied && !req->suspended)
    api_reply_error(req, 500, "internal", "handler gave no reply");
}

/*
 * A streaming route's handler runs before the body: it replies (an error)
 * or sets body_end, which replies once the whole body is in.
 */
static void stream_start(struct api_req *req)
{
  req->route->fn(req);
  if (!req->replied && !req->body_end)
    api_reply_error(req, 500, "internal", "handler gave no reply");
}

static void stream_end(struct api_req *req)
{
  req->body_end(req);
  if (!req->replied && !req->suspended)
    api_reply_error(req, 500, "internal", "handler gave no reply");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **req_cls)
{
  struct api *api = cls;
  struct api_req *req = *req_cls;

  if (!req) {
    const char *cl;

    req = xcalloc(1, sizeof(*req));
    req->api = api;
    req->conn = conn;
    req->method = method;
    req->path = url;
    *req_cls = req;
    admit(req);
    if (req->replied)
      return MHD_YES;
    /* A streaming route takes its body as it comes, under its own limit. */
    if (req->route && (req->route->flags & API_STREAM_BODY)) {
      stream_start(req);
      return MHD_YES;
    }
    /* Refuse an announced oversized body before reading any of it. */
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
      int64_t n;

      if (parse_int64(cl, 0, INT64_MAX, &n) == 0 && n > api->max_body) {
        api_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                        "request body of %lld bytes exceeds the limit of "
                        "%lld bytes",
                        (long long)n, (long long)api->max_body);
      }
    }
    return MHD_YES;
  }
  if (*data_size > 0) {
    if (req->body_end) {
      if (req->body_cb && req->body_cb(req, data, *data_size) < 0)
        req->body_cb = NULL; /* the rest is read and dropped */
    } else if (!req->replied && !req->too_large) {
      if ((int64_t)(req->body_len + *data_size) > api->max_body) {
        req->too_large = true;
        free(req->body);
        req->body = NULL;
      } else {
        req->body = xrealloc(req->body, req->body_len + *data_size + 1);
        memcpy(req->body + req->body_len, data, *data_size);
        req->body_len += *data_size;
        req->body[req->body_len] = '\0';
      }
    }
    *data_size = 0;
    return MHD_YES;
  }
  if (req->deferred_body) {
    json_t *body = req->deferred_body;

    req->deferred_body = NULL;
    api_reply_json(req, req->deferred_status, body);
    return MHD_YES;
  }
  if (req->replied || req->suspended)
    return MHD_YES;
  if (req->too_large) {
    api_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                    "request body exceeds the limit of %lld bytes",
                    (long long)api->max_body);
    return MHD_YES;
  }
  if (req->body_end)
    stream_end(req);
  else
    dispatch(req);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **req_cls, enum MHD_RequestTerminationCode toe)
{
  struct api_req *req = *req_cls;

  /* The handler may free its state, or count what it served. */
  if (req && req->cleanup)
    req->cleanup(req, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  req_free(req);
  *req_cls = NULL;
}

static void run(struct api *api)
{
  if (MHD_run(api->mhd) != MHD_YES)
    log_warn("MHD_run failed");
}

static void on_epoll_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
  run(arg);
}

static void on_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  run(arg);
}

/*
 * New events wake the streams waiting for them; then MHD, which keeps its
 * own connection time-outs, says when it next needs to run.
 */
static void before_sleep(struct loop *loop, void *arg)
{
  struct api *api = arg;
  MHD_UNSIGNED_LONG_LONG ms;

  api_events_pump(api);
  if (api->kick) {
    api->kick = false;
    loop_timer_arm(loop, &api->timer, 0);
  } else if (MHD_get_timeout(api->mhd, &ms) == MHD_YES)
    loop_timer_arm(loop, &api->timer, (int64_t)ms);
  else
    loop_timer_disarm(loop, &api->timer);
}

/* Reads a PEM file for MHD (at most 1 MiB) into a new string. */
static char *read_pem(const char *path, char *err, size_t errlen)
{
  char *buf = NULL;
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  buf = xmalloc((1 << 20) + 1);
  for (;;) {
    ssize_t n = read(fd, buf + len, (size_t)(1 << 20) - len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    if (n == 0)
      break;
    len += (size_t)n;
    if (len == (size_t)1 << 20) {
      snprintf(err, errlen, "%s: larger than 1 MiB", path);
      goto fail;
    }
  }
  close(fd);
  buf[len] = '\0';
  if (!strstr(buf, "-----BEGIN ")) {
    snprintf(err, errlen, "%s: not a PEM file", path);
    free(buf);
    return NULL;
  }
  return buf;
fail:
  close(fd);
  free(buf);
  return NULL;
}

static void tls_audit(void *session, const char *text)
{
  size_t n = strcspn(text, "\n");

  log_warn("tls: %.*s", (int)n, text);
}

/*
 * GnuTLS has one audit-log hook per process, and libcoap's GnuTLS backend
 * installs one that takes every session's transport pointer for a libcoap
 * session. libmicrohttpd's sessions hold its connection there, so the
 * first audit message of an HTTPS connection (a client sending plain HTTP
 * is enough) would crash fotad. Once libcoap is set up, a hook that looks
 * at no session takes its place. It is looked up at run time: GnuTLS is
 * loaded by libcoap and libmicrohttpd, and fotad itself does not link it.
 */
static void replace_tls_audit_hook(void)
{
  typedef void audit_fn(void *session, const char *text);
  void (*set)(audit_fn *);

  *(void **)&set = dlsym(RTLD_DEFAULT, "gnutls_global_set_audit_log_function");
  if (set)
    set(tls_audit);
}

/* Every route declares the scope its caller needs: a new route that forgot
 * would otherwise be open, or closed, by accident. */
static int check_routes(char *err, size_t errlen)
{
  for (size_t i = 0; i < api_nroutes; i++) {
    if (api_routes[i].scope == API_SCOPE_UNSET) {
      snprintf(err, errlen, "route %s %s declares no scope",
               api_routes[i].method, api_routes[i].pattern);
      return -EINVAL;
    }
  }
  return 0;
}

static struct MHD_Daemon *start_mhd(struct api *api,
                                    const struct api_config *cfg,
                                    const struct sockaddr *sa,
                                    unsigned int flags)
{
  /* The logger goes first so that MHD reports option errors through it. */
  if (api->tls)
    return MHD_start_daemon(
        flags | MHD_USE_TLS, 0, NULL, NULL, on_request, api,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout_s,
        MHD_OPTION_HTTPS_MEM_CERT, api->tls_cert, MHD_OPTION_HTTPS_MEM_KEY,
        api->tls_key, MHD_OPTION_END);
  return MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, api, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, api, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)cfg->conn_timeout_s, MHD_OPTION_END);
}

struct api *api_new(struct loop *loop, struct db *db, struct srv *srv,
                    const struct api_config *cfg, char *err, size_t errlen)
{
  struct api *api = xcalloc(1, sizeof(*api));
  struct sockaddr_storage ss;
  socklen_t sslen;
  const union MHD_DaemonInfo *info;
  unsigned int flags =
      MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

  api->loop = loop;
  api->db = db;
  api->srv = srv;
  api->orch = cfg->orch;
  api->epoll_fd = -1;
  api->max_body = cfg->max_body;
  api->started_wall = loop_wall(loop);
  api->started_mono = loop_now(loop);
  api->events_heartbeat_s = cfg->events_heartbeat_s;
  api->events_max_streams = cfg->events_max_streams;
  api_reconfigure(api, cfg);
  api->route_stats = xcalloc(api_nroutes + 1, sizeof(*api->route_stats));
  loop_timer_init(&api->timer, on_timer, api);
  hmap_init(&api->buckets);

  if (check_routes(err, errlen) < 0)
    goto fail;
  if (parse_hostport(cfg->http_listen, &ss, &sslen, err, errlen) < 0)
    goto fail;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (cfg->tls_cert_file && cfg->tls_cert_file[0]) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      snprintf(err, errlen, "this libmicrohttpd has no TLS support");
      goto fail;
    }
    api->tls_cert = read_pem(cfg->tls_cert_file, err, errlen);
    if (!api->tls_cert)
      goto fail;
    api->tls_key = read_pem(cfg->tls_key_file, err, errlen);
    if (!api->tls_key)
      goto fail;
    api->tls = true;
    replace_tls_audit_hook();
  }
  if (api_auth_start(api, cfg->token_file, err, errlen) < 0 ||
      api_events_start(api, err, errlen) < 0)
    goto fail;
  api->mhd = start_mhd(api, cfg, (struct sockaddr *)&ss, flags);
  if (!api->mhd) {
    snprintf(err, errlen, "cannot listen for HTTP%s on %s",
             api->tls ? "S (check the certificate and key)" : "",
             cfg->http_listen);
    goto fail;
  }
  info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info) {
    snprintf(err, errlen, "libmicrohttpd has no epoll support");
    goto fail;
  }
  if (loop_fd_add(loop, info->epoll_fd, EPOLLIN, on_epoll_fd, api) < 0) {
    snprintf(err, errlen, "cannot watch the HTTP fd");
    goto fail;
  }
  api->epoll_fd = info->epoll_fd;
  if (loop_hook_add(loop, before_sleep, api) < 0) {
    snprintf(err, errlen, "too many loop hooks");
    goto fail;
  }
  info = MHD_get_daemon_info(api->mhd, MHD_DAEMON_INFO_BIND_PORT);
  api->port = info ? info->port : -1;
  log_info("listening for HTTP%s on %s (tcp port %d)", api->tls ? "S" : "",
           cfg->http_listen, api->port);
  return api;
fail:
  api_free(api);
  return NULL;
}

void api_free(struct api *api)
{
  if (!api)
    return;
  loop_timer_disarm(api->loop, &api->timer);
  loop_hook_del(api->loop, before_sleep, api);
  /* MHD cannot stop with suspended connections: answer them, and end the
   * event streams, first. */
  if (api->mhd && (api_events_close(api) || api->waiting)) {
    while (api->waiting)
      api_resume(api->waiting, 503,
                 json_pack("{s:{s:s, s:s}}", "error", "code", "unavailable",
                           "message", "fotad is shutting down"));
    for (int i = 0; i < 4; i++)
      run(api);
  }
  if (api->epoll_fd >= 0)
    loop_fd_del(api->loop, api->epoll_fd);
  if (api->mhd)
    MHD_stop_daemon(api->mhd);
  api_events_stop(api);
  api_auth_stop(api);
  hmap_destroy(&api->buckets);
  free(api->route_stats);
  if (api->tls_key) {
    explicit_bzero(api->tls_key, strlen(api->tls_key));
    free(api->tls_key);
  }
  free(api->tls_cert);
  free(api);
}

int api_http_port(const struct api *api)
{
  return api->port;
}

void api_reconfigure(struct api *api, const struct api_config *cfg)
{
  api->max_body = cfg->max_body;
  api->rate_limit = cfg->rate_limit;
  api->rate_burst = cfg->rate_burst;
  api->metrics_public = cfg->metrics_public;
  api->events_retention_s = cfg->events_retention_s;
  api->idempotency_window_s = cfg->idempotency_window_s;
}
