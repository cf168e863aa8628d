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
  struct api_req *waiting; /* suspended requests, via waiting_next */
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
  /* A handler waiting for a device: the connection is suspended until
   * api_resume() stores the reply and wakes it. */
  bool suspended;
  bool in_call; /* inside the call that may answer synchronously */
  struct api_req *waiting_next, **waiting_prev;
  uint64_t srv_handle;
  json_t *deferred_body;
  unsigned deferred_status;
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

/*
 * After starting asynchronous work: replies at once if the work already
 * answered (api_resume() during the call), else suspends the connection
 * until api_resume().
 */
void api_wait(struct api_req *req);
/* Stores the reply (body stolen) and resumes the connection. */
void api_resume(struct api_req *req, unsigned status, json_t *body);

/* Parses the request body as a JSON object; replies 400 and returns NULL
 * when it is missing or malformed. New reference. */
json_t *api_body_json(struct api_req *req);
/* A query-string argument, or NULL. */
const char *api_query(struct api_req *req, const char *key);
/* Parses ?limit= (default def, at most max); replies 400 on bad input. */
int api_query_limit(struct api_req *req, int def, int max, int *out);
/* Formats a Unix ms time as an ISO 8601 JSON string (null for 0). */
json_t *api_time(int64_t unix_ms);

/* Route handlers. */
void api_get_health(struct api_req *req);
void api_list_devices(struct api_req *req);
void api_get_device(struct api_req *req);
void api_device_op(struct api_req *req);
void api_list_device_requests(struct api_req *req);
void api_get_request(struct api_req *req);
void api_cancel_request(struct api_req *req);
void api_list_credentials(struct api_req *req);
void api_get_credential(struct api_req *req);
void api_create_credential(struct api_req *req);
void api_delete_credential(struct api_req *req);

#endif
