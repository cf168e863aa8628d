/* Private to api/: the request context, the router and reply helpers. */
#ifndef FOTAD_API_INT_H
#define FOTAD_API_INT_H

#include "api/api.h"

#include <jansson.h>
#include <microhttpd.h>

#define API_MAX_PARAMS 4
#define API_MAX_HEADERS 4
/* Distinct HTTP statuses counted per route; more fold into "other". */
#define API_STATUS_SLOTS 12

/*
 * What a route needs from the caller's token. Scopes are ordered: a token
 * of a higher scope may do whatever a lower one may. UNSET is what a route
 * that forgot to declare one gets: api_new() refuses to start with it.
 */
enum api_scope {
  API_SCOPE_UNSET,
  API_SCOPE_PUBLIC,   /* no token: /api/v1/health */
  API_SCOPE_READ,     /* listings and details */
  API_SCOPE_OPERATOR, /* device operations, rollouts */
  API_SCOPE_ADMIN,    /* tokens, credentials, deletions */
  API_SCOPE_METRICS,  /* READ, or no token when metrics_public is on */
};

/* Route flags. */
#define API_IDEMPOTENT 0x1 /* a creating POST that honours Idempotency-Key */
/* The handler runs before the body, which it takes as it streams in (see
 * body_cb in struct api_req); http_max_body does not apply. */
#define API_STREAM_BODY 0x2

struct api_events;
struct api_sub;

/* Why a device request got no answer: timeout, unreachable, bad_answer,
 * asleep, other. */
#define API_DEVICE_FAILURES 5
extern const char *const api_failure_names[API_DEVICE_FAILURES];

/* Requests answered per HTTP status, for one route. */
struct api_route_stats {
  unsigned status[API_STATUS_SLOTS]; /* 0: free slot */
  uint64_t count[API_STATUS_SLOTS];
  uint64_t other; /* statuses that found no free slot */
};

struct api {
  struct loop *loop;
  struct db *db;
  struct srv *srv;
  struct orch *orch; /* the package repository; may be NULL */
  struct MHD_Daemon *mhd;
  int epoll_fd;
  int port;
  bool tls;
  int64_t max_body;
  int64_t started_wall; /* Unix ms, for uptime */
  int64_t started_mono;
  struct loop_timer timer;
  struct api_req *waiting; /* suspended requests, via waiting_next */
  /* A connection was resumed: MHD must run in the next iteration, which
   * its epoll fd alone does not guarantee in external epoll mode. */
  bool kick;
  char *tls_cert, *tls_key; /* PEM, kept while MHD runs */

  /* Reloadable settings (api_reconfigure()). */
  int64_t rate_limit, rate_burst;
  bool metrics_public;
  int64_t events_retention_s, events_heartbeat_s, events_max_streams;
  int64_t idempotency_window_s;

  struct hmap buckets; /* rate limiting: struct api_bucket by token id */
  struct api_events *events;

  /* Counters for /metrics. */
  struct api_route_stats *route_stats; /* api_nroutes + 1 (unmatched) */
  uint64_t auth_failures, rate_limited;
  uint64_t device_codes[256]; /* device answers to API requests, by code */
  uint64_t device_failures[API_DEVICE_FAILURES]; /* by api_failure_names */
};

/* The authenticated caller of a request. */
struct api_caller {
  int64_t token_id; /* 0: none (a public route) */
  char name[80];
  enum api_scope scope;
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
  /* The route the method and path matched (NULL: none, see allow). */
  const struct api_route *route;
  char allow[64]; /* methods allowed on the path when only it matched */
  struct api_caller caller;
  char *bearer; /* the token presented, wiped on free */
  /* Idempotency-Key of a creating POST whose reply is to be kept. */
  char *idem_key;
  uint8_t idem_hash[32];
  /* Extra response headers: names are literals, values owned. */
  const char *hdr_name[API_MAX_HEADERS];
  char *hdr_value[API_MAX_HEADERS];
  size_t nheaders;
  struct api_sub *sub; /* an event stream's state, or NULL */
  /* A handler waiting for a device: the connection is suspended until
   * api_resume() stores the reply and wakes it. */
  bool suspended;
  bool in_call; /* inside the call that may answer synchronously */
  struct api_req *waiting_next, **waiting_prev;
  uint64_t srv_handle;
  json_t *deferred_body;
  unsigned deferred_status;
  /*
   * A body streamed to its handler (routes with API_STREAM_BODY). The
   * handler runs once the headers are in and either replies (an error)
   * or sets body_end, and body_cb to see the body: body_cb gets each
   * piece as it arrives and returns -1 to have the rest read and dropped;
   * body_end runs after the last piece and replies. MHD sends no reply
   * before it has read the whole body, so an error found on the way waits
   * for body_end.
   */
  int (*body_cb)(struct api_req *req, const char *data, size_t len);
  void (*body_end)(struct api_req *req);
  /* Runs when the request ends, whatever became of it (sent: the reply
   * went out in full), so that a handler can free ctx or count what it
   * served. */
  void (*cleanup)(struct api_req *req, bool sent);
  void *ctx;
};

typedef void api_handler(struct api_req *req);

struct api_route {
  const char *method;
  const char *pattern; /* "/api/v1/devices/{ep}" */
  api_handler *fn;
  enum api_scope scope; /* what the caller's token needs */
  unsigned flags;       /* API_IDEMPOTENT, API_STREAM_BODY */
};

/* The route table, defined in routes.c. */
extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* The OpenAPI document, embedded at build time from api/openapi.json. */
extern const unsigned char api_openapi_json[];
extern const size_t api_openapi_json_len;

/* "read", "operator", "admin" (and "public", "metrics", "unset"). */
const char *api_scope_name(enum api_scope scope);
/* Parses read, operator or admin; -EINVAL otherwise. */
int api_scope_parse(const char *s, enum api_scope *out);

/* Sends body (stolen) as JSON with the given status. */
void api_reply_json(struct api_req *req, unsigned status, json_t *body);
/*
 * Sends the uniform error body {"error": {"code": ..., "message": ...}}.
 * code is a short machine-readable word ("not_found").
 */
void api_reply_error(struct api_req *req, unsigned status, const char *code,
                     const char *fmt, ...) PRINTF_LIKE(4, 5);
/*
 * A 400 bad_request about one field of the body or query: the message is
 * "FIELD: what was expected" and the error object also names the field.
 */
void api_reply_invalid(struct api_req *req, const char *field, const char *fmt,
                       ...) PRINTF_LIKE(3, 4);
/* Sends text (stolen, malloc'd) with the given status and content type. */
void api_reply_text(struct api_req *req, unsigned status, char *text,
                    size_t len, const char *content_type);
/* Adds a header to the reply still to be sent (value copied). */
void api_add_header(struct api_req *req, const char *name, const char *value);

/*
 * Checks that body (a JSON object) has no member outside allowed (a
 * NULL-terminated list); replies 400 naming the first stranger.
 */
int api_check_fields(struct api_req *req, json_t *body,
                     const char *const *allowed);

/*
 * ETags: a strong validator computed from a representation (the JSON as
 * GET shows it). GET replies with status 200 carry one and answer 304 to a
 * matching If-None-Match. api_check_if_match() enforces If-Match before a
 * change: it returns 0 when the header is absent (or required is false and
 * it is absent), "*" or lists the current ETag, else replies 412 (or 428
 * when required and absent) and returns -1.
 */
void api_etag_of(const void *data, size_t len, char out[40]);
int api_check_if_match(struct api_req *req, json_t *current, bool required);

/* The id of the device named by the route's first parameter ({ep});
 * replies 404 (unknown_device) or 500 and returns the error otherwise. */
int api_device_id(struct api_req *req, int64_t *id);
/* Fills who (the caller's token), from where (remote, a buffer of len)
 * and when, for an audit row the orchestrator completes. */
void api_audit_template(struct api_req *req, struct db_audit *a, char *remote,
                        size_t len);
/* Appends an audit row for the caller's action; details stolen. */
int api_audit(struct api_req *req, const char *action, const char *target,
              json_t *details);
/* The client's address as "IP:PORT" in buf. */
void api_remote(struct api_req *req, char *buf, size_t len);
/* Parses ?cursor= as an id (0 when absent); replies 400 on bad input. */
int api_query_cursor_id(struct api_req *req, int64_t *out);

/* auth.c: bearer tokens and rate limits; return 0 or reply and -1. */
int api_auth_start(struct api *api, const char *token_file, char *err,
                   size_t errlen);
void api_auth_stop(struct api *api);
int api_authenticate(struct api_req *req, enum api_scope need);
/* idempotency.c: 1 if a stored reply was replayed, 0 to go on, -1 if it
 * replied with an error. api_idem_store() keeps the reply about to go. */
int api_idem_check(struct api_req *req);
void api_idem_store(struct api_req *req, unsigned status, const char *text,
                    size_t len);

/* events.c */
int api_events_start(struct api *api, char *err, size_t errlen);
/* Before the loop sleeps: reads new events, wakes the streams. */
void api_events_pump(struct api *api);
/* Ends every stream (shutdown); returns true if some were suspended. */
bool api_events_close(struct api *api);
void api_events_stop(struct api *api);
/* Called when a stream's connection ends. */
void api_sub_free(struct api_sub *sub);
/* Counts for /metrics. */
struct api_event_count {
  char type[32];
  uint64_t n;
};
size_t api_events_counts(struct api *api, const struct api_event_count **out);
/* Deregistrations by reason (deregistered, expired, replaced). */
size_t api_events_reasons(struct api *api, const struct api_event_count **out);
size_t api_events_streams(struct api *api);
/* Sends a streaming reply whose body comes from reader (MHD's callback). */
void api_reply_stream(struct api_req *req, const char *content_type,
                      MHD_ContentReaderCallback reader, void *cls);
/* Sends len bytes of the file fd (stolen) from offset off, with status. */
void api_reply_fd(struct api_req *req, unsigned status, int fd, uint64_t off,
                  uint64_t len, const char *content_type);

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
void api_list_rollouts(struct api_req *req);
void api_create_rollout(struct api_req *req);
void api_dry_run_rollout(struct api_req *req);
void api_get_rollout(struct api_req *req);
void api_get_rollout_cohorts(struct api_req *req);
void api_list_rollout_jobs(struct api_req *req);
void api_get_rollout_timeline(struct api_req *req);
void api_rollout_action(struct api_req *req);
void api_get_health(struct api_req *req);
void api_list_devices(struct api_req *req);
void api_get_device(struct api_req *req);
void api_device_op(struct api_req *req);
void api_list_device_requests(struct api_req *req);
/* tags.c: device tags, which rollouts select devices by. A tag is 1 to
 * API_TAG_MAX characters of A-Z a-z 0-9 . _ : - and a device has at most
 * API_TAGS_PER_DEVICE. */
#define API_TAG_MAX 64
#define API_TAGS_PER_DEVICE 64
/* 0 if tag follows the grammar, else -EINVAL with the reason in err. */
int api_tag_check(const char *tag, char *err, size_t errlen);
/* The device's tags in order as a new JSON array, or NULL (logged). */
json_t *api_device_tags_json(struct api *api, int64_t device_id);
void api_get_device_tags(struct api_req *req);
void api_put_device_tags(struct api_req *req);
void api_add_device_tag(struct api_req *req);
void api_remove_device_tag(struct api_req *req);
void api_get_request(struct api_req *req);
void api_cancel_request(struct api_req *req);
void api_list_credentials(struct api_req *req);
void api_get_credential(struct api_req *req);
void api_create_credential(struct api_req *req);
void api_delete_credential(struct api_req *req);
void api_list_tokens(struct api_req *req);
void api_get_token(struct api_req *req);
void api_create_token(struct api_req *req);
void api_revoke_token(struct api_req *req);
void api_list_audit(struct api_req *req);
void api_get_events(struct api_req *req);
void api_get_metrics(struct api_req *req);
void api_list_device_components(struct api_req *req);
void api_get_device_timeline(struct api_req *req);
void api_list_component_versions(struct api_req *req);
void api_list_device_sent(struct api_req *req);
void api_list_objects(struct api_req *req);
void api_get_object(struct api_req *req);
void api_put_package(struct api_req *req);
void api_post_package(struct api_req *req);
void api_list_packages(struct api_req *req);
void api_get_package(struct api_req *req);
void api_patch_package(struct api_req *req);
void api_delete_package(struct api_req *req);
void api_get_package_content(struct api_req *req);
void api_get_fw(struct api_req *req);
void api_get_openapi(struct api_req *req);
void api_create_update(struct api_req *req);
void api_get_job(struct api_req *req);
void api_list_device_jobs(struct api_req *req);
void api_cancel_job(struct api_req *req);

#endif
