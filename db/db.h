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

/* Appends an event to the timeline; ids 0 and NULL strings mean none. */
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
 * (registered < 0: either), with an instance of object_id (< 0: any).
 */
int db_devices_list(struct db *db, const char *prefix, int registered,
                    int object_id, const char *after_ep, int limit,
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

#endif
