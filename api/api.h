/*
 * api: the operator-facing REST API over HTTP (libmicrohttpd in epoll mode
 * on the shared loop), JSON in and out (jansson).
 */
#ifndef FOTAD_API_H
#define FOTAD_API_H

#include "common/common.h"
#include "db/db.h"
#include "server/srv.h"

struct api;

struct api_config {
  const char *http_listen; /* "HOST:PORT"; borrowed */
  int64_t max_body;        /* largest accepted request body, bytes */
  int64_t max_connections; /* concurrent HTTP connections */
  int64_t conn_timeout_s;  /* idle connection time-out */
};

/*
 * Starts the HTTP listener on loop. db and srv are borrowed and must
 * outlive the api. Returns a new api, or NULL with err filled.
 */
struct api *api_new(struct loop *loop, struct db *db, struct srv *srv,
                    const struct api_config *cfg, char *err, size_t errlen);
/* Stops the listener, dropping open connections; NULL is a no-op. */
void api_free(struct api *api);
/* Changes the body size limit (config reload). */
void api_set_max_body(struct api *api, int64_t max_body);
/* The TCP port the HTTP listener is bound to (useful with port 0). */
int api_http_port(const struct api *api);

#endif
