/*
 * db: fotad's store. One SQLite connection in WAL mode, a schema kept in
 * PRAGMA user_version and grown by numbered, forward-only migrations, and
 * the queries the other modules need. Nothing outside db/ sees SQL.
 *
 * All timestamps in the database are Unix times in milliseconds.
 */
#ifndef FOTAD_DB_H
#define FOTAD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
/* The same type as sqlite3, without making every module include sqlite3.h */
struct sqlite3;

/*
 * Opens the database at path, creating the file if it does not exist, and
 * migrates its schema to db_schema_latest(). busy_timeout_ms is how long a
 * statement waits for a lock held by another connection.
 *
 * A database whose schema is newer than this binary knows is refused before
 * anything is written to it, so that an older fotad started by mistake
 * leaves the file byte-for-byte as it found it.
 *
 * Returns a new handle (free with db_close()), or NULL with the reason in
 * err; db_open() does not log that reason itself.
 */
struct db *db_open(const char *path, int busy_timeout_ms, char *err,
                   size_t errlen);

/*
 * Finalises the cached statements, lets SQLite refresh its statistics
 * (PRAGMA optimize) and closes the connection. NULL is a no-op.
 */
void db_close(struct db *db);

/* The path given to db_open(). Borrowed; valid until db_close(). */
const char *db_path(const struct db *db);

/* The schema version of the open database, or a negative errno. */
int db_schema_version(struct db *db);
/* The newest schema version this binary can create. */
int db_schema_latest(void);

/*
 * A cheap liveness check, meant for every health request: runs one small
 * query. Returns 0, or -EIO with the reason in err.
 */
int db_check(struct db *db, char *err, size_t errlen);

/* Number of known devices / rollouts. Return 0 or a negative errno. */
int db_count_devices(struct db *db, int64_t *out);
int db_count_rollouts(struct db *db, int64_t *out);

/*
 * Transactions. db_begin() takes the write lock at once (BEGIN IMMEDIATE),
 * so a transaction never fails half-way for want of it. db_rollback() is a
 * no-op returning 0 when no transaction is open (SQLite rolls back by
 * itself after some errors), so cleanup paths may call it unconditionally.
 * Return 0 or a negative errno (-EBUSY when the lock could not be taken).
 */
int db_begin(struct db *db);
int db_commit(struct db *db);
int db_rollback(struct db *db);

/*
 * The underlying sqlite3 handle, borrowed. For the db/ module's own files
 * only: other modules must not use it, so that another backend can replace
 * SQLite behind this header.
 */
struct sqlite3 *db_handle(struct db *db);

/*
 * Devices and registrations. None of these opens a transaction: callers
 * group related writes with db_begin()/db_commit(). Strings in the structs
 * are borrowed (on input) or valid only during the callback (on output).
 */
struct db_registration {
  int64_t device_id;
  const char *endpoint;
  const char *location;
  const char *lwm2m_version;
  const char *binding;
  const char *sms;      /* may be NULL */
  const char *alt_path; /* may be NULL */
  const char *content_format;
  const char *peer;
  const char *security;
  const char *identity; /* may be NULL */
  int64_t lifetime;
  bool queue_mode;
  int64_t registered_at, updated_at, expires_at; /* Unix ms */
};

struct db_object_link {
  uint16_t oid;
  int32_t iid;         /* -1 for an object without instances */
  const char *version; /* may be NULL */
};

/*
 * Creates the device if new (setting r->device_id either way) and stores
 * r as its one registration, replacing any earlier one, with its objects.
 * r->device_id > 0 on input names the device, if the caller knows it
 * (a lookup less); 0 finds or creates it by endpoint.
 */
int db_registration_save(struct db *db, struct db_registration *r,
                         const struct db_object_link *links, size_t n);
/* Stores what an Update may change: lifetime, binding, sms, queue mode,
 * peer, updated_at and expires_at. */
int db_registration_update(struct db *db, const struct db_registration *r);
/* Replaces the object list of a device. */
int db_objects_replace(struct db *db, int64_t device_id,
                       const struct db_object_link *links, size_t n);
int db_registration_delete(struct db *db, int64_t device_id);
/* Calls cb for every stored registration, with its objects. */
int db_registrations_load(struct db *db,
                          void (*cb)(void *arg,
                                     const struct db_registration *r,
                                     const struct db_object_link *links,
                                     size_t n),
                          void *arg);
/* The id of a known device, or -ENOENT. */
int db_device_id(struct db *db, const char *ep, int64_t *id);

/*
 * Appends an event to the timeline; ids 0 and NULL strings mean none.
 * Inside a transaction the row may wait in the connection, to go in with
 * up to 15 others in one INSERT: any later statement on the connection
 * (COMMIT included) inserts it first, so readers and the commit see it as
 * if it had been inserted at once. An error of that insert is logged
 * (the rows are lost) and returned by whichever call ran it.
 */
int db_timeline_add(struct db *db, int64_t at, const char *type,
                    int64_t device_id, const char *endpoint, int64_t job_id,
                    int64_t rollout_id, const char *data_json);

/* Queued device-management requests (see the requests table). */
struct db_request {
  int64_t id;
  int64_t device_id;
  const char *endpoint; /* output only */
  const char *op;
  const char *path;
  const char *body;  /* JSON or NULL */
  const char *state; /* queued, sent, done, failed, expired, cancelled */
  int64_t created_at, expires_at, sent_at, finished_at; /* 0: none */
  const char *code;                                     /* "2.05" or NULL */
  const char *result;                                   /* JSON or NULL */
  const char *error;                                    /* or NULL */
};

typedef void db_request_cb(void *arg, const struct db_request *r);

/* Inserts r (state queued); sets r->id. */
int db_request_add(struct db *db, struct db_request *r);
/* Records a new state and, when given, the outcome. */
int db_request_finish(struct db *db, int64_t id, const char *state, int64_t at,
                      const char *code, const char *result, const char *error);
int db_request_sent(struct db *db, int64_t id, int64_t at);
/* The queued requests of a device, oldest first. */
int db_requests_queued(struct db *db, int64_t device_id, db_request_cb *cb,
                       void *arg);
/* A device's requests with id > after_id, oldest first, at most limit. */
int db_requests_list(struct db *db, int64_t device_id, int64_t after_id,
                     int limit, db_request_cb *cb, void *arg);
/* One request; -ENOENT if there is none with that id. */
int db_request_get(struct db *db, int64_t id, db_request_cb *cb, void *arg);
/* Marks queued requests whose expiry passed as expired; sets *n. */
int db_requests_expire(struct db *db, int64_t now, int64_t *n);
/* Marks requests left 'sent' by a previous run as failed (restart). */
int db_requests_abandon(struct db *db, int64_t now);
/* Number of queued requests. */
int db_requests_count_queued(struct db *db, int64_t *n);

/* Stores the values of a Send operation as JSON. */
int db_sent_values_add(struct db *db, int64_t device_id, int64_t at,
                       int content_format, const char *data_json);
/* A device's Send values with id > after_id, oldest first. */
int db_sent_values_list(struct db *db, int64_t device_id, int64_t after_id,
                        int limit,
                        void (*cb)(void *arg, int64_t id, int64_t at,
                                   int content_format, const char *data),
                        void *arg);

/* A device row with its registration, for listings. */
struct db_device {
  int64_t id;
  const char *endpoint;
  int64_t created_at, last_seen_at;
  const char *lwm2m_version;
  bool registered;
};

/*
 * Lists devices in endpoint order after after_ep (NULL: from the start):
 * those whose endpoint starts with prefix (NULL: any), registered or not
 * (registered < 0: either), with an instance of object_id (< 0: any),
 * tagged with tag (NULL: any).
 */
int db_devices_list(struct db *db, const char *prefix, int registered,
                    int object_id, const char *tag, const char *after_ep,
                    int limit,
                    void (*cb)(void *arg, const struct db_device *d),
                    void *arg);
/* One device by endpoint; -ENOENT if unknown. */
int db_device_get(struct db *db, const char *ep,
                  void (*cb)(void *arg, const struct db_device *d), void *arg);
/* The object links of a device, in object and instance order. */
int db_device_objects(struct db *db, int64_t device_id,
                      void (*cb)(void *arg, const struct db_object_link *l),
                      void *arg);
/* Marks a queued request cancelled; -ENOENT if absent, -EBUSY if it is no
 * longer queued. */
int db_request_cancel(struct db *db, int64_t id, int64_t at);

/*
 * Device tags (device_tags): labels that rollouts select devices by. The
 * grammar of a tag is the caller's to check. None of these but
 * db_device_tags_set() opens a transaction. Tags given are borrowed; the
 * tag passed to a callback is valid only during the call.
 */
typedef void db_tag_cb(void *arg, const char *tag);

/* Calls cb with each tag of the device, in byte order. */
int db_device_tags(struct db *db, int64_t device_id, db_tag_cb *cb, void *arg);
/* Tags the device; tagging it again is no error. *added (may be NULL)
 * tells whether the tag is new. */
int db_device_tag_add(struct db *db, int64_t device_id, const char *tag,
                      bool *added);
/* -ENOENT if the device does not have the tag. */
int db_device_tag_remove(struct db *db, int64_t device_id, const char *tag);
/* Replaces the device's tags with the n in tags (duplicates count once),
 * all or nothing, in a savepoint (see db_action_begin()). */
int db_device_tags_set(struct db *db, int64_t device_id,
                       const char *const *tags, size_t n);

/* DTLS credentials, one per endpoint. Blobs are borrowed. */
struct db_credential {
  int64_t id;
  const char *endpoint;
  const char *type; /* psk, rpk, x509 */
  const char *identity;
  const uint8_t *secret;
  size_t secret_len;
  const uint8_t *public_key;
  size_t public_key_len;
  int64_t created_at;
};

typedef void db_credential_cb(void *arg, const struct db_credential *c);

/* Adds a credential; -EEXIST if the endpoint or identity is taken. */
int db_credential_add(struct db *db, struct db_credential *c);
/* -ENOENT if there is none. */
int db_credential_delete(struct db *db, const char *endpoint);
int db_credential_by_endpoint(struct db *db, const char *endpoint,
                              db_credential_cb *cb, void *arg);
int db_credential_by_identity(struct db *db, const char *identity,
                              db_credential_cb *cb, void *arg);
int db_credential_by_key(struct db *db, const uint8_t *key, size_t len,
                         db_credential_cb *cb, void *arg);
/* In endpoint order after after_ep (NULL: from the start). */
int db_credentials_list(struct db *db, const char *after_ep, int limit,
                        db_credential_cb *cb, void *arg);

/*
 * The event store: timeline_events read as a stream (events.c). Ids only
 * grow (AUTOINCREMENT), so readers page with "id > last seen".
 */
struct db_event {
  int64_t id;
  int64_t at; /* Unix ms */
  const char *type;
  const char *endpoint;       /* may be NULL */
  int64_t job_id, rollout_id; /* 0: none */
  const char *data;           /* JSON, may be NULL */
};

typedef void db_event_cb(void *arg, const struct db_event *e);

/* Events with after_id < id <= max_id in id order, at most limit. */
int db_events_list(struct db *db, int64_t after_id, int64_t max_id, int limit,
                   db_event_cb *cb, void *arg);
/* The id of the newest event (0 when there is none). */
int db_events_last_id(struct db *db, int64_t *id);
/*
 * Deletes those of the limit oldest events (by id) that are older than
 * before (Unix ms); sets *n. Events are written in time order, so this is
 * the oldest ones; n == limit means that there may be more. An event
 * stamped out of order (the clock stepped back) goes when the oldest
 * events around it do.
 */
int db_events_purge(struct db *db, int64_t before, int limit, int64_t *n);
/*
 * A counter of timeline rows inserted through this handle since it was
 * opened: cheap to poll, so the API looks for new events only when it
 * moved. The rows may still be uncommitted (see db_in_transaction()).
 */
uint64_t db_timeline_changes(const struct db *db);
/* True while a transaction is open on the connection. */
bool db_in_transaction(struct db *db);

/* How long db_begin() transactions took, for metrics; borrowed. */
struct latency_hist;
const struct latency_hist *db_txn_latency(const struct db *db);
/* Calls cb with each job (rollout) state and its number of rows. */
typedef void db_state_count_cb(void *arg, const char *state, int64_t n);
int db_jobs_by_state(struct db *db, db_state_count_cb *cb, void *arg);
int db_rollouts_by_state(struct db *db, db_state_count_cb *cb, void *arg);

/*
 * An operator's action and its audit row as one unit (audit.c): a
 * savepoint, so it nests inside a transaction already open on the
 * connection (it then commits with that one) and otherwise is its own.
 * db_action_end() releases it (commit true) or rolls it back.
 */
int db_action_begin(struct db *db);
int db_action_end(struct db *db, bool commit);

/* The audit log: who (which API token) did what, and when. */
struct db_audit {
  int64_t id;
  int64_t at;             /* Unix ms */
  int64_t token_id;       /* 0: none (fotad itself) */
  const char *token_name; /* may be NULL */
  const char *action;     /* "credential.create", "token.revoke"... */
  const char *target;     /* what it acted on; may be NULL */
  const char *remote;     /* the client's address; may be NULL */
  const char *details;    /* JSON or NULL */
};

typedef void db_audit_cb(void *arg, const struct db_audit *a);

/* Appends a row; sets a->id. */
int db_audit_add(struct db *db, struct db_audit *a);
/* Newest first, with id < before_id (0: from the newest), of one action
 * (NULL: any), at most limit. */
int db_audit_list(struct db *db, int64_t before_id, const char *action,
                  int limit, db_audit_cb *cb, void *arg);

/* REST API tokens (tokens.c); only SHA-256 hashes are stored. */
#define DB_TOKEN_HASH_LEN 32

struct db_token {
  int64_t id;
  const char *name;
  const uint8_t *hash;                          /* DB_TOKEN_HASH_LEN bytes */
  const char *scope;                            /* read, operator, admin */
  int64_t created_at, last_used_at, revoked_at; /* Unix ms; 0: never */
};

typedef void db_token_cb(void *arg, const struct db_token *t);

/* Adds a token; sets t->id. -EEXIST if the hash is taken. */
int db_token_add(struct db *db, struct db_token *t);
/* The token with this hash, revoked or not; -ENOENT if none. */
int db_token_by_hash(struct db *db, const uint8_t *hash, db_token_cb *cb,
                     void *arg);
/* -ENOENT if there is no token with that id. */
int db_token_get(struct db *db, int64_t id, db_token_cb *cb, void *arg);
/* In id order after after_id, at most limit. */
int db_tokens_list(struct db *db, int64_t after_id, int limit, db_token_cb *cb,
                   void *arg);
/* Marks a token revoked: -ENOENT if unknown, -EALREADY if revoked. */
int db_token_revoke(struct db *db, int64_t id, int64_t at);
/* Records when a token was last used. */
int db_token_touch(struct db *db, int64_t id, int64_t at);
/* Number of tokens, revoked ones included. */
int db_tokens_count(struct db *db, int64_t *n);

/*
 * Replies kept for the Idempotency-Key header (idempotency.c): the
 * response to (token, key, request) is replayed for a retention window.
 * The response is stored encrypted by the caller.
 */
struct db_idem {
  int64_t token_id;
  const char *key;
  const char *request;         /* "POST /api/v1/credentials" */
  const uint8_t *request_hash; /* 32 bytes: SHA-256 of the body */
  int status;
  const uint8_t *nonce;
  size_t nonce_len;
  const uint8_t *response;
  size_t response_len;
  int64_t created_at; /* Unix ms */
};

typedef void db_idem_cb(void *arg, const struct db_idem *r);

/* The reply stored at or after since; -ENOENT if none. */
int db_idem_get(struct db *db, int64_t token_id, const char *key,
                const char *request, int64_t since, db_idem_cb *cb, void *arg);
/* Stores a reply, replacing an expired one for the same key. */
int db_idem_put(struct db *db, const struct db_idem *r);
/* Deletes the replies stored before before; sets *n. */
int db_idem_purge(struct db *db, int64_t before, int64_t *n);

/*
 * Firmware components: instances of 33629 and /5/0. Integer fields are -1
 * when unknown (NULL in the table); strings NULL when unknown.
 */
struct db_component {
  int64_t id;
  int64_t device_id;
  const char *endpoint; /* output only */
  int oid, iid;
  const char *name;
  const char *current_version;
  int64_t state, result;
  const char *pkg_name, *pkg_version;
  const char *protocols; /* JSON array of integers */
  int64_t delivery_method, severity;
  int64_t last_state_change;        /* Unix ms */
  int64_t max_defer_period;         /* s */
  const char *linked, *conflicting; /* JSON arrays of instance ids */
  int64_t updated_at;
};

typedef void db_component_cb(void *arg, const struct db_component *c);

/* Inserts or replaces the row of (device, object, instance). */
int db_component_save(struct db *db, const struct db_component *c);
int db_component_get(struct db *db, int64_t device_id, int oid, int iid,
                     db_component_cb *cb, void *arg);
/* A device's components in object and instance order. */
int db_components_of_device(struct db *db, int64_t device_id,
                            db_component_cb *cb, void *arg);
/* Removes components of a device not in the keep list (oid<<16 | iid). */
int db_components_prune(struct db *db, int64_t device_id, const uint32_t *keep,
                        size_t n);
/* The fleet's versions: per component name and version, how many devices
 * run it (in name, version order). */
int db_component_versions(struct db *db,
                          void (*cb)(void *arg, const char *name,
                                     const char *version, int64_t devices),
                          void *arg);
/* Stores /3/0/3 of a device. */
int db_device_set_firmware(struct db *db, int64_t device_id,
                           const char *version);

/* A device's timeline (struct db_event), oldest first, ids after after_id. */
int db_timeline_list(struct db *db, int64_t device_id, int64_t after_id,
                     int limit, db_event_cb *cb, void *arg);

/*
 * Packages (packages.c): uploaded images and their verification. Strings
 * are borrowed on input and valid only during the callback on output.
 */
struct db_package {
  int64_t id;
  const char *component;
  const char *version;
  const char *sha256; /* 64 lowercase hex digits */
  int64_t size;
  const char *file;            /* relative to the state folder */
  const char *filename;        /* as uploaded; may be NULL */
  const char *mcuboot;         /* valid, invalid, unsigned; NULL: plain */
  const char *mcuboot_detail;  /* may be NULL */
  const char *mcuboot_version; /* "1.2.3+4"; may be NULL */
  bool forced;                 /* may be rolled out although invalid */
  const char *download_token;
  int64_t created_at; /* Unix ms */
};

typedef void db_package_cb(void *arg, const struct db_package *p);

/* Adds a package; sets p->id. -EEXIST if its component and version (or
 * its download token) are taken. */
int db_package_add(struct db *db, struct db_package *p);
/* One package; -ENOENT if there is none. */
int db_package_get(struct db *db, int64_t id, db_package_cb *cb, void *arg);
int db_package_by_version(struct db *db, const char *component,
                          const char *version, db_package_cb *cb, void *arg);
int db_package_by_token(struct db *db, const char *token, db_package_cb *cb,
                        void *arg);
/* Newest first, with id < before_id (0: from the newest), of one
 * component (NULL: any), at most limit. */
int db_packages_list(struct db *db, const char *component, int64_t before_id,
                     int limit, db_package_cb *cb, void *arg);
/* Number of packages stored with this sha256 (they share one file). */
int db_packages_count_sha256(struct db *db, const char *sha256, int64_t *n);
/* Sets the forced flag; -ENOENT if there is no such package. */
int db_package_set_forced(struct db *db, int64_t id, bool forced);
/* How many live rollouts (created, running, paused) and active jobs use a
 * package: while any does, it may not be deleted. */
int db_package_usage(struct db *db, int64_t id, int64_t *rollouts,
                     int64_t *jobs);
/* Deletes a package (finished rollouts and jobs keep their rows, without
 * it): -ENOENT if absent, -EBUSY on a constraint. */
int db_package_delete(struct db *db, int64_t id);

/*
 * Update jobs (jobs.c): a device's update of one or more components, and
 * their steps. Strings are borrowed on input and valid only during the
 * callback on output; times are Unix ms, 0 for none; update_result,
 * start_result and result are -1 for none.
 */
struct db_job {
  int64_t id;
  int64_t rollout_id; /* 0: a job of its own */
  int64_t device_id;
  const char *endpoint; /* output only */
  const char *state;
  int64_t attempt;
  const char *failure_class; /* NULL unless failed or timed out */
  int64_t update_result;
  const char *detail;   /* may be NULL */
  const char *delivery; /* coap, coaps, http, https, push; NULL: not yet */
  bool forced;
  int64_t created_at, updated_at, started_at, executed_at, deadline_at,
      finished_at;
  /* The job's own time-outs and verification window (s; 0: defaults). */
  int64_t download_timeout, update_timeout, reboot_timeout, verify_window,
      max_reboots;
};

struct db_job_component {
  int64_t job_id, component_id, package_id;
  int position;
  int oid, iid;
  const char *state;
  const char *from_version; /* may be NULL */
  int64_t start_result, result;
  const char *uri; /* may be NULL */
  int64_t blocks, bytes, last_block_at, updated_at;
  /* Output only: the component's name and the package's fields. */
  const char *name;
  const char *pkg_component, *pkg_version, *pkg_sha256, *pkg_token;
  int64_t pkg_size;
};

typedef void db_job_cb(void *arg, const struct db_job *j);
typedef void db_job_component_cb(void *arg, const struct db_job_component *c);

/* Inserts a job; sets j->id. -EEXIST if the device has an active job. */
int db_job_add(struct db *db, struct db_job *j);
int db_job_component_add(struct db *db, const struct db_job_component *c);
/* Stores the mutable fields of a job (state to finished_at). */
int db_job_update(struct db *db, const struct db_job *j);
/* Stores state, result, uri, progress and updated_at of a component. */
int db_job_component_update(struct db *db, const struct db_job_component *c);
/* One job; -ENOENT if there is none. */
int db_job_get(struct db *db, int64_t id, db_job_cb *cb, void *arg);
/* The id of the device's active job, or -ENOENT. */
int db_job_active_of_device(struct db *db, int64_t device_id, int64_t *id);
/* Every active (unfinished) job, in id order. */
int db_jobs_active(struct db *db, db_job_cb *cb, void *arg);
/* A job's components in position order. */
int db_job_components(struct db *db, int64_t job_id, db_job_component_cb *cb,
                      void *arg);
/* A device's jobs, newest first, with id < before_id (0: from the newest),
 * at most limit. */
int db_jobs_of_device(struct db *db, int64_t device_id, int64_t before_id,
                      int limit, db_job_cb *cb, void *arg);
/* A job's timeline events (struct db_event), oldest first, ids after
 * after_id, at most limit. */
int db_job_events(struct db *db, int64_t job_id, int64_t after_id, int limit,
                  db_event_cb *cb, void *arg);

/*
 * The package fields a job needs, read by jobs.c on its own so that jobs
 * do not depend on the repository's queries. mcuboot is NULL for a plain
 * image; forced allows an invalid one.
 */
struct db_job_package {
  int64_t id;
  const char *component, *version;
  const char *sha256; /* 64 lowercase hex digits */
  int64_t size;
  const char *file; /* relative to the state folder */
  const char *download_token;
  const char *mcuboot;
  bool forced;
};

typedef void db_job_package_cb(void *arg, const struct db_job_package *p);

/* -ENOENT if there is no such package. */
int db_job_package_get(struct db *db, int64_t id, db_job_package_cb *cb,
                       void *arg);
int db_job_package_by_token(struct db *db, const char *token,
                            db_job_package_cb *cb, void *arg);

/*
 * Rollouts (rollouts.c): a release applied to a set of devices in
 * cohorts. Strings are borrowed on input and valid only during the
 * callback on output; times are Unix ms, 0 for none.
 */
struct db_rollout {
  int64_t id;
  const char *name;  /* may be NULL */
  const char *state; /* created, running, paused, completed, aborted... */
  const char *spec;  /* JSON */
  const char *reason;
  int64_t created_at, updated_at, started_at, finished_at;
  int64_t stage, stage_started_at, stage_done_at;
  int64_t gate_failures, gate_finished, gate_passed_stage;
};

typedef void db_rollout_cb(void *arg, const struct db_rollout *r);

/* Inserts a rollout (name, state, spec, created_at); sets r->id. */
int db_rollout_add(struct db *db, struct db_rollout *r);
int db_rollout_package_add(struct db *db, int64_t rollout_id,
                           int64_t package_id);
/* Stores the mutable fields (state to gate_passed_stage); -ENOENT. */
int db_rollout_update(struct db *db, const struct db_rollout *r);
int db_rollout_get(struct db *db, int64_t id, db_rollout_cb *cb, void *arg);
/* Newest first, ids below before_id (0: from the newest); state NULL for
 * any. */
int db_rollouts_list(struct db *db, const char *state, int64_t before_id,
                     int limit, db_rollout_cb *cb, void *arg);
/* The running and paused rollouts, oldest first. */
int db_rollouts_live(struct db *db, db_rollout_cb *cb, void *arg);

/* A device that may join a rollout, once per firmware component (oid 0
 * and the rest unset for a device without any). */
struct db_candidate {
  int64_t device_id;
  const char *endpoint;
  int oid, iid;
  const char *name, *version;
  int64_t state; /* -1: unknown */
};
typedef void db_candidate_cb(void *arg, const struct db_candidate *c);
/* The devices named in endpoints_json or carrying a tag of tags_json
 * (JSON arrays; both NULL: every device), minus the members of rollout
 * not_in_rollout (0: none), in device order. */
int db_rollout_candidates(struct db *db, const char *endpoints_json,
                          const char *tags_json, int64_t not_in_rollout,
                          db_candidate_cb *cb, void *arg);

/* A device in a rollout. */
struct db_member {
  int64_t rollout_id, device_id;
  const char *endpoint; /* output only */
  int64_t stage, rank;
  const char *state; /* pending, waiting, active, retry, succeeded... */
  int64_t attempts;
  int64_t job_id;  /* the latest job, 0: none */
  int64_t next_at; /* retry: not before */
  const char *failure_class, *gate_class, *reason;
  int64_t updated_at;
  const char *job_state; /* output only: the latest job's state */
};
typedef void db_member_cb(void *arg, const struct db_member *m);
typedef void db_member_count_cb(void *arg, int64_t stage, const char *state,
                                const char *gate_class, int64_t count);

/* Inserts (rollout_id, device_id, stage, rank, state, reason, updated_at). */
int db_member_add(struct db *db, const struct db_member *m);
/* Stores state to updated_at; -ENOENT. */
int db_member_update(struct db *db, const struct db_member *m);
int db_member_get(struct db *db, int64_t rollout_id, int64_t device_id,
                  db_member_cb *cb, void *arg);
/* The member whose latest job is job_id; -ENOENT. */
int db_member_of_job(struct db *db, int64_t job_id, db_member_cb *cb,
                     void *arg);
/* Up to limit retries due at now, then up to limit pending members, of
 * stages up to max_stage, in cohort order. */
int db_members_next(struct db *db, int64_t rollout_id, int64_t max_stage,
                    int64_t now, int limit, db_member_cb *cb, void *arg);
/* Members by device id after after_device; state (member or job state)
 * NULL and stage < 0 for any. */
int db_members_list(struct db *db, int64_t rollout_id, const char *state,
                    int64_t stage, int64_t after_device, int limit,
                    db_member_cb *cb, void *arg);
/* Counts by stage, state and gate class. */
int db_member_counts(struct db *db, int64_t rollout_id, db_member_count_cb *cb,
                     void *arg);
/* Moves members in state from to state to (reason, when not NULL, with
 * it): of rollout_id (0: of every running or paused rollout) and
 * device_id (0: every device). *changed, if not NULL, counts them. */
int db_members_set_state(struct db *db, int64_t rollout_id, int64_t device_id,
                         const char *from, const char *to, const char *reason,
                         int64_t at, int *changed);
/* A rollout's own events (not its jobs'), oldest first, after after_id. */
int db_rollout_events(struct db *db, int64_t rollout_id, int64_t after_id,
                      int limit, db_event_cb *cb, void *arg);

#endif
