#include "orchestrator/orch_int.h"

#include <stdio.h>
#include <stdlib.h>

#define LOG_TAG "orch"

struct orch *orch_new(struct loop *loop, struct db *db, struct srv *srv,
                      const struct orch_config *cfg, char *err, size_t errlen)
{
  struct orch *orch = xcalloc(1, sizeof(*orch));

  orch->loop = loop;
  orch->db = db;
  orch->srv = srv;
  orch->cfg = *cfg;
  orch_components_init(orch);
  if (orch_packages_init(orch, err, errlen) < 0) {
    orch_free(orch);
    return NULL;
  }
  if (srv_add_listener(srv, &orch_component_events, orch) < 0) {
    snprintf(err, errlen, "too many server listeners");
    orch_free(orch);
    return NULL;
  }
  /* Jobs listen after component tracking, so that a registration's
   * component read is under way when they hear of it. */
  orch_files_init(orch);
  srv_set_file_provider(srv, orch_files_provide, orch);
  if (orch_jobs_init(orch, err, errlen) < 0) {
    orch_free(orch);
    return NULL;
  }
  if (orch_rollouts_init(orch, err, errlen) < 0) {
    orch_free(orch);
    return NULL;
  }
  if (srv_add_listener(srv, &orch_job_events, orch) < 0 ||
      srv_add_listener(srv, &orch_delivery_events, orch) < 0 ||
      srv_add_listener(srv, &orch_rollout_events, orch) < 0) {
    snprintf(err, errlen, "too many server listeners");
    orch_free(orch);
    return NULL;
  }
  return orch;
}

void orch_free(struct orch *orch)
{
  if (!orch)
    return;
  orch_rollouts_free(orch);
  orch_jobs_free(orch);
  orch_files_free(orch);
  orch_components_free(orch);
  orch_packages_free(orch);
  free(orch);
}

int orch_audit(struct orch *orch, const struct db_audit *tmpl,
               const char *action, const char *kind, int64_t id,
               json_t *details)
{
  struct db_audit a;
  char target[64];
  char *text;
  int rc;

  if (!tmpl) {
    json_decref(details);
    return 0;
  }
  a = *tmpl;
  snprintf(target, sizeof(target), "/api/v1/%s/%lld", kind, (long long)id);
  text = details ? json_dumps(details, JSON_COMPACT) : NULL;
  json_decref(details);
  a.action = action;
  a.target = target;
  a.details = text;
  rc = db_audit_add(orch->db, &a);
  free(text);
  return rc;
}
