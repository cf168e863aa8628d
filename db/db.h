/*
 * db: fotad's store. One SQLite connection in WAL mode, a schema kept in
 * PRAGMA user_version and grown by numbered, forward-only migrations, and
 * the queries the other modules need. Nothing outside db/ sees SQL.
 *
 * All timestamps in the database are Unix times in milliseconds.
 */
#ifndef FOTAD_DB_H
#define FOTAD_DB_H

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

#endif
