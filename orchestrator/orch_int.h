/* Private to orchestrator/. */
#ifndef FOTAD_ORCH_INT_H
#define FOTAD_ORCH_INT_H

#include "orchestrator/orch.h"

/* What the orchestrator remembers of a device between events. */
struct orch_dev {
  struct hmap_node node;
  char *ep;
  int64_t device_id;
  int64_t last_read; /* loop time of the last full component read */
  bool reading;      /* a component read is in flight */
};

struct orch {
  struct loop *loop;
  struct db *db;
  struct srv *srv;
  struct orch_config cfg;
  struct hmap devs;
};

/* components.c */
void orch_components_init(struct orch *orch);
void orch_components_free(struct orch *orch);
extern const struct srv_events orch_component_events;

#endif
