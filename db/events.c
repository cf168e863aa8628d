/*
 * The event store (timeline_events read as a stream), its retention, and
 * the counts the metrics need.
 */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

uint64_t db_timeline_changes(const struct db *db)
{
  return db->timeline_changes;
}

bool db_in_transaction(struct db *db)
{
  return !sqlite3_get_autocommit(db->h);
}

const struct latency_hist *db_txn_latency(const struct db *db)
{
  return &db->txn_latency;
}

int db_events_list(struct db *db, int64_t after_id, int64_t max_id, int limit,
                   db_event_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "SELECT id, at, type, endpoint, job_id, rollout_id, data "
                   "FROM timeline_events WHERE id > ?1 AND id <= ?2 "
                   "ORDER BY id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, after_id);
  sqlite3_bind_int64(st, 2, max_id);
  sqlite3_bind_int(st, 3, limit);
  rc = db_event_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}

int db_events_last_id(struct db *db, int64_t *id)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc =
      db_stmt_get(db, "SELECT coalesce(max(id), 0) FROM timeline_events", &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    log_err("%s: last event id: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  *id = sqlite3_column_int64(st, 0);
out:
  db_stmt_done(st);
  return rc;
}

int db_events_purge(struct db *db, int64_t before, int limit, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  *n = 0;
  /*
   * In batches, so that a large backlog does not hold the loop. By id,
   * not by an index on at: every event written would pay for that index,
   * and ids follow time.
   */
  rc = db_stmt_get(db,
                   "DELETE FROM timeline_events WHERE id IN (SELECT id FROM "
                   "timeline_events ORDER BY id LIMIT ?2) AND at < ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, before);
  sqlite3_bind_int(st, 2, limit);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: events purge: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  *n = sqlite3_changes(db->h);
out:
  db_stmt_done(st);
  return rc;
}

static int count_by_state(struct db *db, const char *sql,
                          db_state_count_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, (const char *)sqlite3_column_text(st, 0),
       sqlite3_column_int64(st, 1));
  if (src != SQLITE_DONE) {
    log_err("%s: %s: %s", db_path(db), sql, sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_jobs_by_state(struct db *db, db_state_count_cb *cb, void *arg)
{
  return count_by_state(
      db, "SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state", cb,
      arg);
}

int db_rollouts_by_state(struct db *db, db_state_count_cb *cb, void *arg)
{
  return count_by_state(
      db, "SELECT state, count(*) FROM rollouts GROUP BY state ORDER BY state",
      cb, arg);
}
