#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

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
  json_decref(req->deferred_body);
  for (size_t i = 0; i < req->nparams; i++)
    free(req->params[i]);
  free(req->body);
  free(req);
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
  resp = MHD_create_response_from_buffer_with_free_callback(len, text, free);
  if (!resp) {
    log_err("cannot create a response for %s %s", req->method, req->path);
    free(text);
    return;
  }
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                              content_type) != MHD_YES ||
      MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                              "no-store") != MHD_YES)
    log_warn("cannot add headers to the response");
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
  queue(req, status, text, len, "application/json");
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
  j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
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

static void dispatch(struct api_req *req)
{
  const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
  char allow[64] = "";
  size_t allow_len = 0;

  for (size_t i = 0; i < api_nroutes; i++) {
    const struct api_route *r = &api_routes[i];

    if (!match(r->pattern, req->path, req))
      continue;
    if (strcmp(r->method, method) == 0) {
      r->fn(req);
      if (!req->replied && !req->suspended)
        api_reply_error(req, 500, "internal", "handler gave no reply");
      return;
    }
    for (size_t k = 0; k < req->nparams; k++)
      free(req->params[k]);
    req->nparams = 0;
    allow_len += (size_t)snprintf(allow + allow_len, sizeof(allow) - allow_len,
                                  "%s%s", allow_len ? ", " : "", r->method);
    if (allow_len >= sizeof(allow))
      allow_len = sizeof(allow) - 1;
  }
  if (allow_len > 0)
    api_reply_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                    "%s is not allowed on %s (allowed: %s)", req->method,
                    req->path, allow);
  else
    api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found",
                    "no such resource: %s", req->path);
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
    if (!req->replied && !req->too_large) {
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
  dispatch(req);
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **req_cls, enum MHD_RequestTerminationCode toe)
{
  req_free(*req_cls);
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

/* MHD keeps its own connection time-outs; wake up when the next is due. */
static void before_sleep(struct loop *loop, void *arg)
{
  struct api *api = arg;
  MHD_UNSIGNED_LONG_LONG ms;

  if (MHD_get_timeout(api->mhd, &ms) == MHD_YES)
    loop_timer_arm(loop, &api->timer, (int64_t)ms);
  else
    loop_timer_disarm(loop, &api->timer);
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
  api->epoll_fd = -1;
  api->max_body = cfg->max_body;
  api->started_wall = loop_wall(loop);
  api->started_mono = loop_now(loop);
  loop_timer_init(&api->timer, on_timer, api);

  if (parse_hostport(cfg->http_listen, &ss, &sslen, err, errlen) < 0)
    goto fail;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* The logger goes first so that MHD reports option errors through it. */
  api->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->conn_timeout_s,
      MHD_OPTION_END);
  if (!api->mhd) {
    snprintf(err, errlen, "cannot listen for HTTP on %s", cfg->http_listen);
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
  log_info("listening for HTTP on %s (tcp port %d)", cfg->http_listen,
           api->port);
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
  /* MHD cannot stop with suspended connections: answer them first. */
  if (api->waiting) {
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
  free(api);
}

int api_http_port(const struct api *api)
{
  return api->port;
}

void api_set_max_body(struct api *api, int64_t max_body)
{
  api->max_body = max_body;
}
