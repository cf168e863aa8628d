/*
 * db internals shared by the files of the db/ module: the connection
 * struct, the statement cache, errno mapping and the migration table.
 * Nothing outside db/ includes this header.
 */
#ifndef FOTAD_DB_INT_H
#define FOTAD_DB_INT_H

#include <sqlite3.h>

#include "common/common.h"
#include "db/db.h"

/* Upper bound on distinct cached statements, so a bug cannot grow it. */
#define DB_STMT_MAX 256

struct db_stmt_slot {
  char *sql;       /* owned copy, the cache key */
  const char *key; /* the caller's pointer, checked first */
  sqlite3_stmt *stmt;
};

/*
 * Timeline rows wait in the connection until DB_TIMELINE_BATCH of them go
 * in one INSERT, or another statement runs (see db_timeline_add()).
 */
#define DB_TIMELINE_BATCH 16

struct db_timeline_row {
  int64_t at;
  int64_t device_id;
  int64_t job_id;
  int64_t rollout_id;
  char *type;
  char *endpoint;
  char *data;
};

struct db {
  sqlite3 *h;
  char *path;
  struct db_stmt_slot *stmts;
  size_t nstmts;
  size_t capstmts;
  /* Timeline rows inserted since open: the API wakes event streams when
   * this moves (see db_timeline_changes()). */
  uint64_t timeline_changes;
  struct db_timeline_row pending[DB_TIMELINE_BATCH];
  size_t npending;
  bool flushing; /* db_timeline_flush() is running its own statements */
  /* db_begin() to db_commit() or db_rollback(), for metrics. */
  int64_t txn_started_us;    /* 0 when no db_begin() transaction is open */
  int64_t action_started_us; /* an outermost db_action_begin(), or 0 */
  struct latency_hist txn_latency;
};

/*
 * Returns in *out the cached prepared statement for sql, preparing it on
 * first use. The statement comes reset with its bindings cleared; it stays
 * owned by the cache (db_close() finalises it). Release it with
 * db_stmt_done() as soon as its rows are consumed, so that no read
 * transaction stays open. The same SQL must not be used twice at once
 * (e.g. from a nested call). Returns 0 or a negative errno, logged here.
 */
int db_stmt_get(struct db *db, const char *sql, sqlite3_stmt **out);
/*
 * db_stmt_get() for a statement that neither reads timeline_events nor
 * deletes or changes the ids of rows that timeline rows refer to (devices,
 * jobs, rollouts): timeline rows still waiting stay waiting, so that those
 * of a run of registrations go in together. db_stmt_get() inserts them
 * first.
 */
int db_stmt_get_timeline_safe(struct db *db, const char *sql,
                              sqlite3_stmt **out);
/* Inserts the waiting timeline rows. On an error they are logged as lost
 * and dropped, and the error returned. */
int db_timeline_flush(struct db *db);
/* Forgets the waiting timeline rows (db_close()). */
void db_timeline_drop(struct db *db);
/* Resets st and clears its bindings. NULL is a no-op. */
void db_stmt_done(sqlite3_stmt *st);

/* Maps an SQLite result code (primary or extended) to a negative errno. */
int db_errno(int sqlite_rc);

/*
 * Binding and reading helpers shared by the db/ files. NULL strings, ids
 * <= 0 (db_bind_id) and values < 0 (db_bind_opt_int) are stored as NULL;
 * db_col_opt_int() reads NULL back as -1.
 */
int db_bind_text(sqlite3_stmt *st, int ix, const char *s);
int db_bind_id(sqlite3_stmt *st, int ix, int64_t id);
int db_bind_opt_int(sqlite3_stmt *st, int ix, int64_t v);
const char *db_col_text(sqlite3_stmt *st, int ix);
int64_t db_col_opt_int(sqlite3_stmt *st, int ix);
/* Steps a statement that returns no rows; logs (with what) and maps
 * errors to a negative errno. */
int db_step_done(struct db *db, sqlite3_stmt *st, const char *what);
/* Steps a bound "SELECT id, at, type, endpoint, job_id, rollout_id, data
 * FROM timeline_events ..." and calls cb for each row. */
int db_event_rows(struct db *db, sqlite3_stmt *st, db_event_cb *cb, void *arg);

/*
 * The migrations, in order: migration i + 1 takes user_version from i to
 * i + 1, so db_migrations_count is the latest schema version. Each runs
 * in one transaction; sql may hold several statements.
 */
struct db_migration {
  const char *name; /* what it does, for the log */
  const char *sql;
};

extern const struct db_migration db_migrations[];
extern const int db_migrations_count;

#endif
