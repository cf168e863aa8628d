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
  bool no_firmware;  /* registered without 33629 or 5: nothing to track */
  /* A read that got no answer is tried again (components.c). */
  struct loop_timer retry;
  int read_failures;
  bool retry_observe;
  /* Waiting for a free read slot (components.c), to observe then. */
  bool read_queued, queued_observe;
  struct orch *orch;
};

struct orch {
  struct loop *loop;
  struct db *db;
  struct srv *srv;
  struct orch_config cfg;
  struct hmap devs;
  /* Component tracking's requests in flight, and the devices waiting for
   * one of the COMP_INFLIGHT_MAX slots (endpoints, oldest first). */
  int comp_inflight;
  char **read_queue;
  size_t rq_head, rq_len, rq_cap;
  struct loop_timer read_pump;

  /* Package repository (packages.c). */
  char *pkg_dir, *tmp_dir; /* NULL: no repository */
  struct orch_mcuboot_keys *keys;
  struct hmap downloads;       /* per (token, requester) */
  struct hmap download_totals; /* per token */
  size_t ndownloads;

  /* Update jobs (jobs.c) and package delivery over CoAP (delivery.c). */
  struct orch_jobs *jobs;
  struct orch_files *files;

  /* Rollouts (rollouts.c). */
  struct orch_rollouts *rollouts;
};

/* packages.c */
int orch_packages_init(struct orch *orch, char *err, size_t errlen);
void orch_packages_free(struct orch *orch);

/* components.c */
void orch_components_init(struct orch *orch);
void orch_components_free(struct orch *orch);
extern const struct srv_events orch_component_events;

/* jobs.c */
int orch_jobs_init(struct orch *orch, char *err, size_t errlen);
void orch_jobs_free(struct orch *orch);
extern const struct srv_events orch_job_events;
/*
 * Component tracking tells the job engine each value it stored for a
 * device's component (from a read or a notification): State and Update
 * Result (-1 unknown) and, for 33629, Current Version (NULL unknown).
 */
void orch_jobs_on_component(struct orch *orch, int64_t device_id,
                            const char *ep, int oid, int iid, int64_t state,
                            int64_t result, const char *version);
/* The package token behind a job's own download token, or NULL. */
const char *orch_jobs_package_token(const struct orch *orch,
                                    const char *token);
/* The progress record of the job component a download belongs to (by
 * the job's own token, or ep's active job and the package's token), or
 * NULL. *first is set when nothing had been served for it yet. */
struct orch_job_progress *orch_jobs_progress_of(struct orch *orch,
                                                const char *token,
                                                const char *ep, bool *first);
/* A device fetched the first block of a job's package. */
void orch_jobs_download_seen(struct orch *orch, const char *token,
                             const char *ep);
/* A device fetched the last block of a job's package. */
void orch_jobs_download_done(struct orch *orch, const char *token,
                             const char *ep);

/*
 * The job states (DESIGN.md's rollout model). Rollouts create jobs with
 * orch_job_start() and hear of their end through orch->job_done.
 */
enum job_state {
  JOB_QUEUED,
  JOB_URI_WRITTEN,
  JOB_DOWNLOADING,
  JOB_DOWNLOADED,
  JOB_UPDATING,
  JOB_VERIFYING,
  JOB_SUCCEEDED,
  JOB_FAILED,
  JOB_TIMED_OUT,
  JOB_CANCELLED,
};
#define JOB_STATE_COUNT (JOB_CANCELLED + 1)

/* "queued", "uri-written"...; NULL out of range. */
const char *orch_job_state_name(enum job_state s);
/* -EINVAL for an unknown name. */
int orch_job_state_parse(const char *name, enum job_state *out);
bool orch_job_state_final(enum job_state s);

/* A job's own time-outs and verification (s); 0 takes the configured
 * time-out. verify_window > 0 keeps a job that confirmed its new version
 * in verifying for that long: more than max_reboots registrations in it
 * fail the job as reboot_loop. */
struct orch_job_limits {
  int64_t download_timeout, update_timeout, reboot_timeout;
  int64_t verify_window, max_reboots;
};

/* What a job updates, for orch_job_start(). */
struct orch_job_spec {
  const char *ep;
  const int64_t *packages;
  size_t npackages;
  bool force;
  int64_t rollout_id; /* 0: a job of its own */
  int64_t attempt;
  struct orch_job_limits limits;
  const struct db_audit *audit; /* NULL: no audit row */
  /* Called inside the transaction that stores the new job; a negative
   * return undoes the job and is returned. NULL: none. */
  int (*stored)(void *arg, int64_t job_id);
  void *stored_arg;
};
int orch_job_start(struct orch *orch, const struct orch_job_spec *spec,
                   int64_t *job_id, char *err, size_t errlen);

/* Called once per job that reaches a final state, inside the transaction
 * that stores it. */
struct orch_job_outcome {
  int64_t job_id, rollout_id, device_id;
  enum job_state state;
  const char *failure_class; /* NULL when it succeeded or was cancelled */
  int64_t update_result;     /* -1: none */
};
void orch_jobs_set_done_cb(struct orch *orch,
                           void (*cb)(void *arg,
                                      const struct orch_job_outcome *o),
                           void *arg);

/* orch.c */
/* Adds the audit row of action on /api/v1/KIND/ID from the caller's
 * template (NULL: no row); details is stolen. */
int orch_audit(struct orch *orch, const struct db_audit *tmpl,
               const char *action, const char *kind, int64_t id,
               json_t *details);

/* rollouts.c */
int orch_rollouts_init(struct orch *orch, char *err, size_t errlen);
void orch_rollouts_free(struct orch *orch);
extern const struct srv_events orch_rollout_events;

/* delivery.c */
void orch_files_init(struct orch *orch);
void orch_files_free(struct orch *orch);
extern const struct srv_events orch_delivery_events;
/* Maps the package with this download token (cached); fills f as the
 * CoAP server needs it. Release with f->release. */
int orch_files_get(struct orch *orch, const char *token, struct srv_file *f);
/* The same as a srv_file_cb, arg being the orchestrator. */
int orch_files_provide(void *arg, const char *token, struct srv_file *f);
/* Forgets a cached mapping (the package was deleted). */
void orch_files_drop(struct orch *orch, const char *token);

#endif
