/*
 * The audit log, and the savepoints that make an operator's action and its
 * audit row one unit.
 */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

static int exec_simple(struct db *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: %s: %s", db_path(db), sql, sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

/*
 * A savepoint rather than BEGIN: the server keeps a transaction open for
 * the rest of a loop iteration after a registration, and an API request
 * handled in that iteration must join it instead of failing with "cannot
 * start a transaction within a transaction".
 */
int db_action_begin(struct db *db)
{
  bool outermost = sqlite3_get_autocommit(db->h);
  int rc = exec_simple(db, "SAVEPOINT fotad_action");

  /* Its own transaction: timed like db_begin() ones, for the metrics. */
  if (rc == 0 && outermost)
    db->action_started_us = mono_us();
  return rc;
}

/* Records the duration of an action that was its own transaction. */
static void action_ended(struct db *db)
{
  if (db->action_started_us == 0 || !sqlite3_get_autocommit(db->h))
    return;
  latency_hist_add(&db->txn_latency, mono_us() - db->action_started_us);
  db->action_started_us = 0;
}

int db_action_end(struct db *db, bool commit)
{
  int rc;

  if (commit) {
    rc = exec_simple(db, "RELEASE fotad_action");
    action_ended(db);
    return rc;
  }
  /* ROLLBACK TO keeps the savepoint open; RELEASE then closes it. SQLite
   * may already have rolled everything back after some errors. */
  if (sqlite3_get_autocommit(db->h)) {
    action_ended(db);
    return 0;
  }
  rc = exec_simple(db, "ROLLBACK TO fotad_action");
  if (rc == 0)
    rc = exec_simple(db, "RELEASE fotad_action");
  action_ended(db);
  return rc;
}

int db_audit_add(struct db *db, struct db_audit *a)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "INSERT INTO audit_log (at, token_id, token_name, action, "
                   "target, remote, details) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, a->at);
  if (a->token_id > 0)
    sqlite3_bind_int64(st, 2, a->token_id);
  else
    sqlite3_bind_null(st, 2);
  db_bind_text(st, 3, a->token_name);
  db_bind_text(st, 4, a->action);
  db_bind_text(st, 5, a->target);
  db_bind_text(st, 6, a->remote);
  db_bind_text(st, 7, a->details);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: audit insert: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  a->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

#define AUDIT_COLUMNS                                                         \
  "SELECT id, at, token_id, token_name, action, target, remote, details "     \
  "FROM audit_log "

int db_audit_list(struct db *db, int64_t before_id, const char *action,
                  int limit, db_audit_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  /* Two statements, so that each can walk its index from before_id. */
  if (action)
    rc = db_stmt_get(db,
                     AUDIT_COLUMNS "WHERE action = ?2 AND id < ?1 "
                                   "ORDER BY id DESC LIMIT ?3",
                     &st);
  else
    rc = db_stmt_get(
        db, AUDIT_COLUMNS "WHERE id < ?1 ORDER BY id DESC LIMIT ?3", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
  if (action)
    db_bind_text(st, 2, action);
  sqlite3_bind_int(st, 3, limit);
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_audit a = {
        .id = sqlite3_column_int64(st, 0),
        .at = sqlite3_column_int64(st, 1),
        .token_id = sqlite3_column_int64(st, 2),
        .token_name = (const char *)sqlite3_column_text(st, 3),
        .action = (const char *)sqlite3_column_text(st, 4),
        .target = (const char *)sqlite3_column_text(st, 5),
        .remote = (const char *)sqlite3_column_text(st, 6),
        .details = (const char *)sqlite3_column_text(st, 7),
    };

    cb(arg, &a);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: audit query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}
