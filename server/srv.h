/*
 * server: the LwM2M side of fotad. Owns the libcoap context and its
 * listeners, runs them on the shared event loop, and reports upward
 * through callbacks registered at start-up.
 */
#ifndef FOTAD_SRV_H
#define FOTAD_SRV_H

#include "common/common.h"
#include "db/db.h"

struct srv;

struct srv_config {
  /* "HOST:PORT" of the plain CoAP (UDP) listener; borrowed. */
  const char *coap_listen;
};

/*
 * Initialises libcoap (once per process), routes its log through ours, and
 * creates the listeners on loop. db is borrowed. Returns a new server, or
 * NULL with err filled (e.g. the address is in use).
 */
struct srv *srv_new(struct loop *loop, struct db *db,
                    const struct srv_config *cfg, char *err, size_t errlen);
/* Closes every listener and session; NULL is a no-op. */
void srv_free(struct srv *srv);
/* The UDP port the CoAP listener is bound to (useful with port 0). */
int srv_coap_port(const struct srv *srv);
/* Applies a new log level to libcoap's own messages. */
void srv_set_log_level(enum log_level level);

#endif
