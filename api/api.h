/*
 * api: the operator-facing REST API over HTTP (libmicrohttpd in epoll mode
 * on the shared loop), JSON in and out (jansson).
 */
#ifndef FOTAD_API_H
#define FOTAD_API_H

#include "common/common.h"
#include "db/db.h"
#include "orchestrator/orch.h"
#include "server/srv.h"

struct api;

struct api_config {
  const char *http_listen; /* "HOST:PORT"; borrowed */
  int64_t max_body;        /* largest accepted request body, bytes */
  int64_t max_connections; /* concurrent HTTP connections */
  int64_t conn_timeout_s;  /* idle connection time-out */
  /* HTTPS: PEM certificate (chain) and key files, or "" for plain HTTP. */
  const char *tls_cert_file;
  const char *tls_key_file;
  /* Where the bootstrap admin token is written on first start; absolute. */
  const char *token_file;
  int64_t rate_limit;           /* requests per second per token; 0: none */
  int64_t rate_burst;           /* token bucket size */
  bool metrics_public;          /* GET /metrics without a token */
  int64_t events_retention_s;   /* events older than this are deleted */
  int64_t events_heartbeat_s;   /* keep-alive interval of event streams */
  int64_t events_max_streams;   /* concurrent event streams */
  int64_t idempotency_window_s; /* how long Idempotency-Key replies live */
  /* The package repository behind /api/v1/packages and /fw; borrowed,
   * must outlive the api. NULL: those routes answer 503. */
  struct orch *orch;
};

/*
 * Starts the HTTP listener on loop. db and srv are borrowed and must
 * outlive the api. On first start (no API token in db) it creates the
 * bootstrap admin token and writes it to cfg->token_file (mode 0600).
 * Returns a new api, or NULL with err filled.
 */
struct api *api_new(struct loop *loop, struct db *db, struct srv *srv,
                    const struct api_config *cfg, char *err, size_t errlen);
/* Stops the listener, ending event streams and dropping open connections;
 * NULL is a no-op. */
void api_free(struct api *api);
/* Applies the reloadable keys of cfg: max_body, rate_limit, rate_burst,
 * metrics_public, events_retention_s, idempotency_window_s. */
void api_reconfigure(struct api *api, const struct api_config *cfg);
/* The TCP port the HTTP listener is bound to (useful with port 0). */
int api_http_port(const struct api *api);

#endif
