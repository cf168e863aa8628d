/* Private to api/: the request context, the router and reply helpers. */
#ifndef FOTAD_API_INT_H
#define FOTAD_API_INT_H

#include "api/api.h"

#include <jansson.h>
#include <microhttpd.h>

#define API_MAX_PARAMS 4

struct api {
  struct loop *loop;
  struct db *db;
  struct srv *srv;
  struct MHD_Daemon *mhd;
  int epoll_fd;
  int port;
  int64_t max_body;
  int64_t started_wall; /* Unix ms, for uptime */
  int64_t started_mono;
  struct loop_timer timer;
};

/* One HTTP request, from its first header to its response. */
struct api_req {
  struct api *api;
  struct MHD_Connection *conn;
  const char *method; /* "GET", "POST"... (HEAD is routed as GET) */
  const char *path;
  /* Path segments captured by "{name}" in the route pattern. */
  char *params[API_MAX_PARAMS];
  size_t nparams;
  char *body; /* NUL-terminated request body, may be NULL */
  size_t body_len;
  bool too_large;
  bool replied;
};

typedef void api_handler(struct api_req *req);

struct api_route {
  const char *method;
  const char *pattern; /* "/api/v1/devices/{ep}" */
  api_handler *fn;
};

/* The route table, defined in routes.c. */
extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* Sends body (stolen) as JSON with the given status. */
void api_reply_json(struct api_req *req, unsigned status, json_t *body);
/*
 * Sends the uniform error body {"error": {"code": ..., "message": ...}}.
 * code is a short machine-readable word ("not_found").
 */
void api_reply_error(struct api_req *req, unsigned status, const char *code,
                     const char *fmt, ...) PRINTF_LIKE(4, 5);

/* Route handlers. */
void api_get_health(struct api_req *req);

#endif
