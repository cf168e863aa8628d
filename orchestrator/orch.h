/*
 * orchestrator: what fotad does with devices. It tracks every firmware
 * component (each instance of 33629, and /5/0) from registrations,
 * reads and notifications, and keeps them and their timeline in the
 * database. Rollouts and update jobs build on it.
 */
#ifndef FOTAD_ORCH_H
#define FOTAD_ORCH_H

#include <jansson.h>

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
  /* Packages are stored under state_dir/packages (state_dir absolute;
   * copied). NULL keeps the repository off. */
  const char *state_dir;
  int64_t package_max_size; /* largest package accepted, bytes */
  /* A folder of trusted MCUboot signing keys (PEM EC P-256 public keys,
   * *.pem); "" or NULL for none. Read once by orch_new(). */
  const char *mcuboot_keys_dir;
  /* Update jobs (jobs.c): the host put in Package URIs (copied), the
   * time-outs of their steps (s), and the largest package pushed to a
   * device with a Block1 Write (bytes). */
  const char *download_host;
  int64_t job_download_timeout; /* Package URI written -> Downloaded */
  int64_t job_update_timeout;   /* Downloaded -> Updating */
  int64_t job_reboot_timeout;   /* Updating -> back with the new version */
  int64_t job_push_max_size;
};

/* Starts tracking on srv's events. db and srv are borrowed. */
struct orch *orch_new(struct loop *loop, struct db *db, struct srv *srv,
                      const struct orch_config *cfg, char *err, size_t errlen);
void orch_free(struct orch *orch);

/*
 * MCUboot image verification (mcuboot.c), spec section 6.3. The image is
 * fed in pieces of any size as it streams in; memory stays bounded (the
 * hashed region only passes through SHA-256, the TLV areas are kept).
 */
enum orch_mcuboot_verdict {
  ORCH_MCUBOOT_NONE,     /* not an MCUboot image: a plain binary */
  ORCH_MCUBOOT_VALID,    /* hash and signature verified */
  ORCH_MCUBOOT_UNSIGNED, /* hash verified; no signature, or no keys */
  ORCH_MCUBOOT_INVALID,  /* something is wrong: see detail */
};

struct orch_mcuboot_result {
  enum orch_mcuboot_verdict verdict;
  char detail[320]; /* what was checked or what failed, for operators */
  char version[40]; /* the header's "major.minor.revision+build", or "" */
};

/* Trusted signing keys. */
struct orch_mcuboot_keys;
/* An empty set. */
struct orch_mcuboot_keys *orch_mcuboot_keys_new(void);
/* Loads every *.pem of dir (NULL or "": none); NULL with err filled if a
 * file is not an EC P-256 public key. */
struct orch_mcuboot_keys *orch_mcuboot_keys_load(const char *dir, char *err,
                                                 size_t errlen);
/* Adds one PEM public key, named name in messages. */
int orch_mcuboot_keys_add_pem(struct orch_mcuboot_keys *keys, const char *name,
                              const char *pem, char *err, size_t errlen);
size_t orch_mcuboot_keys_count(const struct orch_mcuboot_keys *keys);
void orch_mcuboot_keys_free(struct orch_mcuboot_keys *keys);

struct orch_mcuboot;
struct orch_mcuboot *orch_mcuboot_new(void);
/* Feeds the next len bytes of the image. */
void orch_mcuboot_update(struct orch_mcuboot *m, const void *data, size_t len);
/* The verdict on everything fed (keys may be NULL). Call once. */
void orch_mcuboot_finish(struct orch_mcuboot *m,
                         const struct orch_mcuboot_keys *keys,
                         struct orch_mcuboot_result *r);
void orch_mcuboot_free(struct orch_mcuboot *m);
/* The same for an image in one buffer. */
void orch_mcuboot_verify(const void *image, size_t len,
                         const struct orch_mcuboot_keys *keys,
                         struct orch_mcuboot_result *r);
/* "valid", "unsigned", "invalid"; NULL for ORCH_MCUBOOT_NONE. */
const char *orch_mcuboot_verdict_name(enum orch_mcuboot_verdict v);

/*
 * The package repository (packages.c). Packages live in
 * state_dir/packages/<sha256 hex>, content-addressed: rows with the same
 * content share one file. Uploads are written to state_dir/packages/tmp,
 * hashed (SHA-256 and the MCUboot checks) as they stream in, fsync'd and
 * renamed into place.
 */

/* A component name or version: 1 to 64 of A-Z a-z 0-9 . _ - + ~ */
bool orch_pkg_name_valid(const char *s);
/* The package_max_size in force. */
int64_t orch_pkg_max_size(const struct orch *orch);

/* An upload in progress. */
struct orch_upload;
/* Starts an upload (a new temporary file); NULL with err filled. */
struct orch_upload *orch_upload_new(struct orch *orch, char *err,
                                    size_t errlen);
/* Appends data: -EFBIG once the upload passes package_max_size, or
 * another negative errno if the file cannot be written (err filled). */
int orch_upload_write(struct orch_upload *up, const void *data, size_t len,
                      char *err, size_t errlen);
/* Bytes written so far. */
int64_t orch_upload_size(const struct orch_upload *up);

/* What an upload is stored as, and who did it. */
struct orch_pkg_new {
  const char *component, *version; /* checked with orch_pkg_name_valid() */
  const char *filename;            /* as uploaded; may be NULL */
  bool force;                      /* may be rolled out even if invalid */
  /* The caller's audit row (at, token, remote): action, target and
   * details are filled here. NULL: no audit row. Borrowed. */
  const struct db_audit *audit;
};

/*
 * Stores the upload as a package, in one unit with its audit row. Returns
 * 0 with *id, *created false when this component and version already hold
 * the same content (nothing is stored then); -EEXIST when they hold other
 * content (*id is that package); -ENODATA for an empty upload; another
 * negative errno on failure. err says why. The upload is spent either way
 * and must be freed.
 */
int orch_upload_finish(struct orch_upload *up, const struct orch_pkg_new *p,
                       int64_t *id, bool *created, char *err, size_t errlen);
/* Frees an upload, deleting its temporary file unless it was stored. NULL
 * is a no-op. */
void orch_upload_free(struct orch_upload *up);

/*
 * Deletes a package (audited like orch_pkg_new.audit, action
 * package.delete) and, unless another package shares its content, its
 * file. -ENOENT if unknown; -EBUSY if a rollout or job uses it (err says
 * which).
 */
int orch_pkg_delete(struct orch *orch, int64_t id,
                    const struct db_audit *audit, char *err, size_t errlen);
/* Sets whether an invalid package may be rolled out all the same (audited
 * as package.update). -ENOENT if unknown. */
int orch_pkg_set_forced(struct orch *orch, int64_t id, bool forced,
                        const struct db_audit *audit);
/* May the package be rolled out: its MCUboot verdict is not 'invalid', or
 * it is forced. */
bool orch_pkg_rollout_allowed(const struct db_package *p);
/* Opens the stored file of p for reading into *fd (the caller closes it);
 * -EIO if it is missing or its size is not p->size. */
int orch_pkg_open(struct orch *orch, const struct db_package *p, int *fd);

/*
 * Download progress, in memory: the HTTP (and CoAP) servers report each
 * piece of a package they served, by download token and requester (the
 * client's address, or a device's endpoint); the job engine and the API
 * read it. A download starts with a requester's first request, or a
 * request from offset 0 after earlier progress; it completes when the
 * last byte is served.
 */
struct orch_download {
  uint64_t bytes;   /* bytes served to this requester, in all */
  uint64_t next;    /* the end of the last piece served */
  uint64_t total;   /* the package size */
  unsigned started; /* downloads started */
  bool completed;   /* the current download reached the last byte */
  int64_t first_at; /* loop time (ms) of the first request */
  int64_t last_at;  /* and of the latest */
};

struct orch_download_totals {
  uint64_t started, completed, bytes;
};

/* Records that len bytes from off of the package (of total bytes) with
 * this download token were served to requester. */
void orch_download_served(struct orch *orch, const char *token,
                          const char *requester, uint64_t off, uint64_t len,
                          uint64_t total);
/* One requester's progress; -ENOENT if it fetched nothing. */
int orch_download_get(struct orch *orch, const char *token,
                      const char *requester, struct orch_download *out);
/* Every requester's downloads of one package, summed. */
void orch_download_totals(struct orch *orch, const char *token,
                          struct orch_download_totals *out);

/*
 * Update jobs (jobs.c): one device's update of one or several components
 * (atomically, through the linked-instances argument of Execute Update),
 * persisted and resumed after a restart. See docs/updates.md.
 */

/*
 * Where HTTP downloads are served, known once the API listener is up:
 * its port and whether it speaks HTTPS. Until then no http(s) URI is
 * handed out.
 */
void orch_set_http_port(struct orch *orch, int port, bool https);

/*
 * Creates a job updating ep's components to packages (ids, n of them,
 * each matched to the 33629 instance whose Component Name is the
 * package's component, else to /5/0) and starts it. force allows an
 * invalid MCUboot image and a reinstall of the running version. audit,
 * when not NULL, is the caller's audit row (at, token, remote), added in
 * the same unit as action job.create. Returns 0 with *job_id set, or with
 * err filled: -ENODEV unknown device, -ENOENT unknown package, -ENXIO no
 * such component on the device, -EPERM a package may not be rolled out,
 * -EEXIST the device has an active job, -EBUSY a component is installing,
 * -EINVAL the update cannot be done (err says why), -EIO storage.
 */
int orch_job_create(struct orch *orch, const char *ep, const int64_t *packages,
                    size_t n, bool force, const struct db_audit *audit,
                    int64_t *job_id, char *err, size_t errlen);

/*
 * Cancels a job before its installation starts: Cancel (/33629/x/10) or
 * an empty Package URI goes to each component with a package on the
 * way. Returns 0, or with err filled: -ENOENT unknown job, -EALREADY it
 * has finished, -EBUSY the installation has started, -EIO storage.
 */
int orch_job_cancel(struct orch *orch, int64_t job_id,
                    const struct db_audit *audit, char *err, size_t errlen);

/* A component's download as served over CoAP (in memory). */
struct orch_job_progress {
  int64_t blocks;        /* Block2 blocks served, repeats included */
  int64_t bytes;         /* bytes in them */
  int64_t offset;        /* end of the furthest block served */
  int64_t size;          /* the package size */
  int64_t last_block_at; /* Unix ms; 0: none yet */
};

/* The live progress of a component of an active job; -ENOENT when the
 * job is not active (the stored values are then the last word). */
int orch_job_progress(const struct orch *orch, int64_t job_id,
                      int64_t component_id, struct orch_job_progress *out);

/*
 * Staged rollouts (rollouts.c): a release of one or more packages applied
 * to a set of devices in cohorts, with gates, pace, schedule, retries and
 * verification, persisted and resumed after a restart. docs/rollouts.md
 * describes the spec (JSON, as the API takes it) and the state machine.
 * Functions returning int give 0 or a negative errno with err filled:
 * -EINVAL a bad spec or action, -ENOENT an unknown rollout or package,
 * -EPERM a package that may not be rolled out, -EBUSY an action the
 * rollout's state does not allow, -EIO storage.
 */
int orch_rollout_create(struct orch *orch, json_t *spec,
                        const struct db_audit *audit, int64_t *id, char *err,
                        size_t errlen);
/* The cohorts a rollout of spec would have now; NULL with *rc set. */
json_t *orch_rollout_dry_run(struct orch *orch, json_t *spec, int *rc,
                             char *err, size_t errlen);
/* action: start, pause, resume or abort. */
int orch_rollout_control(struct orch *orch, int64_t id, const char *action,
                         const struct db_audit *audit, char *err,
                         size_t errlen);
/* A rollout's view: state, progress per stage and member state, gates;
 * full adds the stages and the spec. NULL if it cannot be read. */
json_t *orch_rollout_json(struct orch *orch, const struct db_rollout *row,
                          bool full);
/* 0 if rollout id exists, -ENOENT if not, -EIO. */
int orch_rollout_exists(struct orch *orch, int64_t id);
/* The full view of rollout id; -ENOENT. */
int orch_rollout_get(struct orch *orch, int64_t id, json_t **out);
/* The devices of each cohort: stored ones once started, else a dry run. */
int orch_rollout_cohorts(struct orch *orch, int64_t id, json_t **out,
                         char *err, size_t errlen);
/* How many times a gate paused or aborted a rollout since start-up. */
uint64_t orch_rollout_gate_trips(const struct orch *orch);

#endif
