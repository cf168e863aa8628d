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
  if (srv_add_listener(srv, &orch_component_events, orch) < 0) {
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
  orch_components_free(orch);
  free(orch);
}
