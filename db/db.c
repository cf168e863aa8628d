/*
 * Opening, migrating and closing the database, the statement cache, and
 * the small queries that need no file of their own.
 */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

/* STRICT tables need 3.37; json_valid() is built in from 3.38. */
#define SQLITE_MIN_VERSION 3038000
#define SQLITE_MIN_VERSION_TEXT "3.38.0"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (!err || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int db_errno(int sqlite_rc)
{
  switch (sqlite_rc) {
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY:
  case SQLITE_CONSTRAINT_ROWID:
    return -EEXIST;
  default:
    break;
  }
  switch (sqlite_rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return 0;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_READONLY:
    return -EROFS;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_PERM:
  case SQLITE_AUTH:
    return -EACCES;
  case SQLITE_INTERRUPT:
    return -EINTR;
  case SQLITE_TOOBIG:
    return -E2BIG;
  case SQLITE_CONSTRAINT:
  case SQLITE_MISMATCH:
  case SQLITE_RANGE:
    return -EINVAL;
  default:
    return -EIO;
  }
}

int db_bind_text(sqlite3_stmt *st, int ix, const char *s)
{
  if (!s)
    return sqlite3_bind_null(st, ix);
  return sqlite3_bind_text(st, ix, s, -1, SQLITE_STATIC);
}

int db_bind_id(sqlite3_stmt *st, int ix, int64_t id)
{
  if (id <= 0)
    return sqlite3_bind_null(st, ix);
  return sqlite3_bind_int64(st, ix, id);
}

int db_bind_opt_int(sqlite3_stmt *st, int ix, int64_t v)
{
  if (v < 0)
    return sqlite3_bind_null(st, ix);
  return sqlite3_bind_int64(st, ix, v);
}

const char *db_col_text(sqlite3_stmt *st, int ix)
{
  return (const char *)sqlite3_column_text(st, ix);
}

int64_t db_col_opt_int(sqlite3_stmt *st, int ix)
{
  if (sqlite3_column_type(st, ix) == SQLITE_NULL)
    return -1;
  return sqlite3_column_int64(st, ix);
}

int db_step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
    return db_errno(sqlite3_extended_errcode(db->h));
  }
  return 0;
}

int db_event_rows(struct db *db, sqlite3_stmt *st, db_event_cb *cb, void *arg)
{
  int src;

  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_event e = {
        .id = sqlite3_column_int64(st, 0),
        .at = sqlite3_column_int64(st, 1),
        .type = db_col_text(st, 2),
        .endpoint = db_col_text(st, 3),
        .job_id = sqlite3_column_int64(st, 4),
        .rollout_id = sqlite3_column_int64(st, 5),
        .data = db_col_text(st, 6),
    };

    cb(arg, &e);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: events query: %s", db->path, sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

void db_stmt_done(sqlite3_stmt *st)
{
  if (!st)
    return;
  /*
   * sqlite3_reset() repeats the error of the last step, which the caller
   * has already handled; the reset itself cannot fail.
   */
  (void)sqlite3_reset(st);
  (void)sqlite3_clear_bindings(st);
}

int db_stmt_get(struct db *db, const char *sql, sqlite3_stmt **out)
{
  int rc;

  /* Whatever this statement does sees, or is ordered after, every
   * timeline row added before it (see db_timeline_add()). */
  if (db->npending > 0 && !db->flushing) {
    rc = db_timeline_flush(db);
    if (rc < 0) {
      *out = NULL;
      return rc;
    }
  }
  return db_stmt_get_timeline_safe(db, sql, out);
}

int db_stmt_get_timeline_safe(struct db *db, const char *sql,
                              sqlite3_stmt **out)
{
  sqlite3_stmt *st = NULL;
  int src;
  size_t i;

  *out = NULL;
  /* Callers pass string literals: the same pointer finds a statement on
   * hot paths without comparing the text. */
  for (i = 0; i < db->nstmts; i++) {
    if (db->stmts[i].key == sql) {
      db_stmt_done(db->stmts[i].stmt);
      *out = db->stmts[i].stmt;
      return 0;
    }
  }
  for (i = 0; i < db->nstmts; i++) {
    if (strcmp(db->stmts[i].sql, sql) == 0) {
      db_stmt_done(db->stmts[i].stmt);
      *out = db->stmts[i].stmt;
      return 0;
    }
  }
  if (db->nstmts >= DB_STMT_MAX) {
    log_err("%s: more than %d cached statements, not caching \"%s\"", db->path,
            DB_STMT_MAX, sql);
    return -ENOSPC;
  }
  /* PERSISTENT: these live until db_close(), so keep them off lookaside. */
  src =
      sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
  if (src != SQLITE_OK) {
    log_err("%s: cannot prepare \"%s\": %s", db->path, sql,
            sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  if (!st) {
    log_err("%s: no statement in \"%s\"", db->path, sql);
    return -EINVAL;
  }
  if (db->nstmts == db->capstmts) {
    db->capstmts = db->capstmts ? db->capstmts * 2 : 16;
    db->stmts = xrealloc(db->stmts, db->capstmts * sizeof(*db->stmts));
  }
  db->stmts[db->nstmts].sql = xstrdup(sql);
  db->stmts[db->nstmts].key = sql;
  db->stmts[db->nstmts].stmt = st;
  db->nstmts++;
  *out = st;
  return 0;
}

/* Runs a cached statement that returns no rows. */
static int exec_cached(struct db *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: %s: %s", db->path, sql, sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
out:
  db_stmt_done(st);
  return rc;
}

/* Runs a cached statement that returns one integer. */
static int query_int64(struct db *db, const char *sql, int64_t *out)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    log_err("%s: %s: %s", db->path, sql,
            src == SQLITE_DONE ? "no row" : sqlite3_errmsg(db->h));
    rc = src == SQLITE_DONE ? -EIO : db_errno(src);
    goto out;
  }
  *out = sqlite3_column_int64(st, 0);
out:
  db_stmt_done(st);
  return rc;
}

/*
 * Reads PRAGMA user_version without the cache (db_open() needs it before
 * the struct db exists). Returns an SQLite result code; on failure the
 * message is in sqlite3_errmsg(h).
 */
static int read_user_version(sqlite3 *h, int *out)
{
  sqlite3_stmt *st = NULL;
  int src;

  src = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
  if (src != SQLITE_OK)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW)
    goto out;
  *out = sqlite3_column_int(st, 0);
  src = SQLITE_OK;
out:
  /* Returns the step error again, already in src. */
  (void)sqlite3_finalize(st);
  return src;
}

/*
 * Runs a pragma that returns one text value, such as journal_mode, and
 * copies that value into buf.
 */
static int pragma_text(sqlite3 *h, const char *sql, char *buf, size_t buflen)
{
  sqlite3_stmt *st = NULL;
  const unsigned char *txt;
  int src;

  src = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
  if (src != SQLITE_OK)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW)
    goto out;
  txt = sqlite3_column_text(st, 0);
  snprintf(buf, buflen, "%s", txt ? (const char *)txt : "");
  src = SQLITE_OK;
out:
  (void)sqlite3_finalize(st);
  return src;
}

/* Closes a connection and reports the statements that keep it open. */
static void close_handle(sqlite3 *h, const char *path)
{
  int src;

  if (!h)
    return;
  src = sqlite3_close(h);
  if (src != SQLITE_OK) {
    sqlite3_stmt *st;

    log_err("%s: cannot close the database: %s", path, sqlite3_errmsg(h));
    for (st = sqlite3_next_stmt(h, NULL); st; st = sqlite3_next_stmt(h, st))
      log_err("%s: statement still open: %s", path, sqlite3_sql(st));
  }
}

static void refuse_newer(const char *path, int version, char *err,
                         size_t errlen)
{
  seterr(err, errlen,
         "database %s has schema version %d, newer than this fotad "
         "supports (%d); refusing to open it (upgrade fotad)",
         path, version, db_schema_latest());
}

/* Rolls back the migration transaction after a failure, if still open. */
static void migration_rollback(sqlite3 *h, const char *path)
{
  char *msg = NULL;
  int src;

  if (sqlite3_get_autocommit(h))
    return;
  src = sqlite3_exec(h, "ROLLBACK", NULL, NULL, &msg);
  if (src != SQLITE_OK)
    log_err("%s: cannot roll back a failed migration: %s", path,
            msg ? msg : sqlite3_errstr(src));
  sqlite3_free(msg);
}

/*
 * Applies one migration, in its own transaction. The version is read
 * again under the write lock, so that two processes starting at once do
 * not both apply it. Sets *done when the schema is already at the latest.
 */
static int migrate_one(sqlite3 *h, const char *path, bool *done, char *err,
                       size_t errlen)
{
  const struct db_migration *m;
  sqlite3_stmt *st = NULL;
  char *msg = NULL;
  char sql[64];
  int rc = 0, src, version = 0, to;

  *done = false;
  src = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &msg);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot start a migration: %s", path,
           msg ? msg : sqlite3_errstr(src));
    rc = db_errno(src);
    goto out;
  }
  src = read_user_version(h, &version);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot read the schema version: %s",
           path, sqlite3_errmsg(h));
    rc = db_errno(src);
    goto out;
  }
  if (version > db_schema_latest()) {
    refuse_newer(path, version, err, errlen);
    rc = -EPROTO;
    goto out;
  }
  if (version == db_schema_latest()) {
    *done = true;
    goto out;
  }

  to = version + 1;
  m = &db_migrations[version];
  src = sqlite3_exec(h, m->sql, NULL, NULL, &msg);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: migration %d (%s) failed: %s", path, to,
           m->name, msg ? msg : sqlite3_errstr(src));
    rc = db_errno(src);
    goto out;
  }
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", to);
  src = sqlite3_exec(h, sql, NULL, NULL, &msg);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: migration %d: cannot set version: %s",
           path, to, msg ? msg : sqlite3_errstr(src));
    rc = db_errno(src);
    goto out;
  }

  /*
   * Migrations run with foreign keys off (see db_open()), so check them
   * all before committing instead.
   */
  src = sqlite3_prepare_v2(h, "PRAGMA foreign_key_check", -1, &st, NULL);
  if (src == SQLITE_OK)
    src = sqlite3_step(st);
  if (src == SQLITE_ROW) {
    const unsigned char *table = sqlite3_column_text(st, 0);

    seterr(err, errlen,
           "database %s: migration %d (%s) leaves a broken foreign key in "
           "table %s",
           path, to, m->name, table ? (const char *)table : "?");
    rc = -EINVAL;
    goto out;
  }
  if (src != SQLITE_DONE) {
    seterr(err, errlen, "database %s: migration %d: foreign key check: %s",
           path, to, sqlite3_errmsg(h));
    rc = db_errno(src);
    goto out;
  }

  src = sqlite3_exec(h, "COMMIT", NULL, NULL, &msg);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: migration %d (%s): commit failed: %s",
           path, to, m->name, msg ? msg : sqlite3_errstr(src));
    rc = db_errno(src);
    goto out;
  }
  log_info("%s: applied migration %d (%s)", path, to, m->name);
out:
  (void)sqlite3_finalize(st);
  sqlite3_free(msg);
  if (rc < 0 || *done)
    migration_rollback(h, path);
  return rc;
}

static int migrate(sqlite3 *h, const char *path, char *err, size_t errlen)
{
  bool done = false;
  int rc = 0;

  while (!done) {
    rc = migrate_one(h, path, &done, err, errlen);
    if (rc < 0)
      break;
  }
  return rc;
}

/* Runs statements that return no rows, filling err on failure. */
static int exec_setup(sqlite3 *h, const char *path, const char *sql, char *err,
                      size_t errlen)
{
  char *msg = NULL;
  int src;

  src = sqlite3_exec(h, sql, NULL, NULL, &msg);
  if (src != SQLITE_OK)
    seterr(err, errlen, "database %s: %s: %s", path, sql,
           msg ? msg : sqlite3_errstr(src));
  sqlite3_free(msg);
  return db_errno(src);
}

/*
 * Library-wide settings, before SQLite initialises itself (the first open
 * does that); later calls would be refused, so only the first open tries.
 * Memory statistics take a global mutex around every allocation, and
 * fotad reads none of them.
 */
static void configure_library(void)
{
  static bool done;

  if (done)
    return;
  done = true;
  /* SQLITE_MISUSE if something initialised SQLite first: harmless. */
  (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

struct db *db_open(const char *path, int busy_timeout_ms, char *err,
                   size_t errlen)
{
  struct db *db = NULL;
  sqlite3 *h = NULL;
  const char *file;
  char mode[16];
  int src, version = 0;
  bool ok = false;

  if (sqlite3_libversion_number() < SQLITE_MIN_VERSION) {
    seterr(err, errlen, "SQLite %s is too old, fotad needs %s or newer",
           sqlite3_libversion(), SQLITE_MIN_VERSION_TEXT);
    goto out;
  }
  if (busy_timeout_ms < 0) {
    seterr(err, errlen, "database %s: negative busy timeout %d", path,
           busy_timeout_ms);
    goto out;
  }

  configure_library();
  src = sqlite3_open_v2(
      path, &h,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (src != SQLITE_OK) {
    int sys = h ? sqlite3_system_errno(h) : 0;

    seterr(err, errlen, "cannot open database %s: %s%s%s%s", path,
           h ? sqlite3_errmsg(h) : sqlite3_errstr(src), sys ? " (" : "",
           sys ? strerror(sys) : "", sys ? ")" : "");
    goto out;
  }
  src = sqlite3_extended_result_codes(h, 1);
  if (src == SQLITE_OK)
    src = sqlite3_busy_timeout(h, busy_timeout_ms);
  /*
   * Closing the last connection to a WAL database checkpoints it into the
   * main file. Until the version check has passed, that file must not
   * change, so no checkpoint on close.
   */
  if (src == SQLITE_OK)
    src = sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot configure the connection: %s",
           path, sqlite3_errmsg(h));
    goto out;
  }

  /* Nothing may be written before this check. */
  src = read_user_version(h, &version);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot read the schema version: %s",
           path, sqlite3_errmsg(h));
    goto out;
  }
  if (version > db_schema_latest()) {
    refuse_newer(path, version, err, errlen);
    goto out;
  }
  if (version < 0) {
    seterr(err, errlen,
           "database %s has an invalid schema version %d; refusing to open "
           "it",
           path, version);
    goto out;
  }

  src = pragma_text(h, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot enable WAL mode: %s", path,
           sqlite3_errmsg(h));
    goto out;
  }
  /* Memory and temporary databases (no file name) cannot use WAL. */
  file = sqlite3_db_filename(h, "main");
  if (strcmp(mode, "wal") != 0 && file && file[0]) {
    seterr(err, errlen,
           "database %s: cannot enable WAL mode (journal mode is %s)", path,
           mode);
    goto out;
  }
  if (exec_setup(h, path, "PRAGMA synchronous = NORMAL", err, errlen) < 0)
    goto out;

  /*
   * Foreign keys stay off while migrating: rebuilding a table the way
   * SQLite documents it (create the new one, copy, drop the old, rename)
   * would otherwise cascade the DROP into every child table. Each
   * migration checks the keys before it commits instead. The pragma is a
   * no-op inside a transaction, so it is set here, around them all.
   */
  if (exec_setup(h, path, "PRAGMA foreign_keys = OFF", err, errlen) < 0)
    goto out;
  if (version < db_schema_latest() && migrate(h, path, err, errlen) < 0)
    goto out;
  if (exec_setup(h, path, "PRAGMA foreign_keys = ON", err, errlen) < 0)
    goto out;

  src = sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
  if (src != SQLITE_OK) {
    seterr(err, errlen, "database %s: cannot configure the connection: %s",
           path, sqlite3_errmsg(h));
    goto out;
  }

  db = xcalloc(1, sizeof(*db));
  db->h = h;
  db->path = xstrdup(path);
  ok = true;
out:
  if (!ok)
    close_handle(h, path);
  return db;
}

void db_close(struct db *db)
{
  char *msg = NULL;
  size_t i;
  int src;

  if (!db)
    return;
  for (i = 0; i < db->nstmts; i++) {
    /* Returns the last step's error, handled when it happened. */
    (void)sqlite3_finalize(db->stmts[i].stmt);
    free(db->stmts[i].sql);
  }
  free(db->stmts);
  db_timeline_drop(db);
  /* Lets SQLite run ANALYZE where the queries of this run need it. */
  src = sqlite3_exec(db->h, "PRAGMA optimize", NULL, NULL, &msg);
  if (src != SQLITE_OK)
    log_warn("%s: PRAGMA optimize: %s", db->path,
             msg ? msg : sqlite3_errstr(src));
  sqlite3_free(msg);
  close_handle(db->h, db->path);
  free(db->path);
  free(db);
}

const char *db_path(const struct db *db)
{
  return db->path;
}

struct sqlite3 *db_handle(struct db *db)
{
  return db->h;
}

int db_schema_latest(void)
{
  return db_migrations_count;
}

int db_schema_version(struct db *db)
{
  int src, version = 0;

  src = read_user_version(db->h, &version);
  if (src != SQLITE_OK) {
    log_err("%s: cannot read the schema version: %s", db->path,
            sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return version;
}

int db_check(struct db *db, char *err, size_t errlen)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, "SELECT count(*) FROM sqlite_schema", &st);
  if (rc < 0) {
    seterr(err, errlen, "database %s: %s", db->path, sqlite3_errmsg(db->h));
    rc = -EIO;
    goto out;
  }
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    seterr(err, errlen, "database %s: %s", db->path, sqlite3_errmsg(db->h));
    rc = -EIO;
    goto out;
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_count_devices(struct db *db, int64_t *out)
{
  return query_int64(db, "SELECT count(*) FROM devices", out);
}

int db_count_rollouts(struct db *db, int64_t *out)
{
  return query_int64(db, "SELECT count(*) FROM rollouts", out);
}

/* Records how long the db_begin() transaction that just ended took. */
static void txn_ended(struct db *db)
{
  if (db->txn_started_us == 0)
    return;
  latency_hist_add(&db->txn_latency, mono_us() - db->txn_started_us);
  db->txn_started_us = 0;
}

int db_begin(struct db *db)
{
  int rc = exec_cached(db, "BEGIN IMMEDIATE");

  if (rc == 0)
    db->txn_started_us = mono_us();
  return rc;
}

int db_commit(struct db *db)
{
  int rc = exec_cached(db, "COMMIT");

  if (rc == 0)
    txn_ended(db);
  return rc;
}

int db_rollback(struct db *db)
{
  txn_ended(db);
  if (sqlite3_get_autocommit(db->h))
    return 0;
  return exec_cached(db, "ROLLBACK");
}
