/*
 * orchestrator: what fotad does with devices. It tracks every firmware
 * component (each instance of 33629, and /5/0) from registrations,
 * reads and notifications, and keeps them and their timeline in the
 * database. Rollouts and update jobs build on it.
 */
#ifndef FOTAD_ORCH_H
#define FOTAD_ORCH_H

#include "common/common.h"
#include "db/db.h"
#include "server/srv.h"

struct orch;

struct orch_config {
  /* A registration Update re-reads a device's components when its last
   * read is older than this (s); notifications are best effort. */
  int64_t reconcile_interval;
  /* pmax set on observed State and Update Result resources (s). */
  int64_t observe_pmax;
};

/* Starts tracking on srv's events. db and srv are borrowed. */
struct orch *orch_new(struct loop *loop, struct db *db, struct srv *srv,
                      const struct orch_config *cfg, char *err, size_t errlen);
void orch_free(struct orch *orch);

#endif
