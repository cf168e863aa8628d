/*
 * The event store (timeline_events read as a stream), its retention, and
 * the counts the metrics need.
 */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <stdlib.h>
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

#define TIMELINE_INSERT                                                       \
  "INSERT INTO timeline_events (at, type, device_id, endpoint, job_id, "      \
  "rollout_id, data) VALUES "
#define TIMELINE_VALUES "(?, ?, ?, ?, ?, ?, ?)"
#define TIMELINE_VALUES4                                                      \
  TIMELINE_VALUES ", " TIMELINE_VALUES ", " TIMELINE_VALUES                   \
                  ", " TIMELINE_VALUES
#define TIMELINE_COLUMNS 7

_Static_assert(DB_TIMELINE_BATCH == 16, "one placeholder group per row");

static void bind_row(sqlite3_stmt *st, int first,
                     const struct db_timeline_row *r)
{
  sqlite3_bind_int64(st, first, r->at);
  db_bind_text(st, first + 1, r->type);
  db_bind_id(st, first + 2, r->device_id);
  db_bind_text(st, first + 3, r->endpoint);
  db_bind_id(st, first + 4, r->job_id);
  db_bind_id(st, first + 5, r->rollout_id);
  db_bind_text(st, first + 6, r->data);
}

static void row_free(struct db_timeline_row *r)
{
  free(r->type);
  free(r->endpoint);
  free(r->data);
}

void db_timeline_drop(struct db *db)
{
  for (size_t i = 0; i < db->npending; i++)
    row_free(&db->pending[i]);
  db->npending = 0;
}

/* Inserts rows [from, from + n) with one statement of n rows (1 or
 * DB_TIMELINE_BATCH). */
static int insert_rows(struct db *db, size_t from, size_t n)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get_timeline_safe(
      db,
      n == 1 ? TIMELINE_INSERT TIMELINE_VALUES
             : TIMELINE_INSERT TIMELINE_VALUES4
          ", " TIMELINE_VALUES4 ", " TIMELINE_VALUES4 ", " TIMELINE_VALUES4,
      &st);
  if (rc < 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    bind_row(st, 1 + (int)i * TIMELINE_COLUMNS, &db->pending[from + i]);
  rc = db_step_done(db, st, "timeline insert");
  if (rc == 0)
    db->timeline_changes += n;
out:
  db_stmt_done(st);
  return rc;
}

/* Inserts the waiting rows, DB_TIMELINE_BATCH at once or one by one. */
static int insert_pending(struct db *db)
{
  size_t n = db->npending, done = 0;
  int rc = 0;

  db->flushing = true;
  if (n == DB_TIMELINE_BATCH) {
    rc = insert_rows(db, 0, n);
    done = rc == 0 ? n : 0;
  }
  while (rc == 0 && done < n) {
    rc = insert_rows(db, done, 1);
    if (rc == 0)
      done++;
  }
  db->flushing = false;
  if (rc < 0)
    log_err("%s: %zu timeline events lost", db->path, n - done);
  db_timeline_drop(db);
  return rc;
}

int db_timeline_flush(struct db *db)
{
  if (db->npending == 0)
    return 0;
  /* Rows wait only inside a transaction, and COMMIT and ROLLBACK flush
   * them first: if none is open now, SQLite rolled theirs back by itself
   * (after an I/O error, say), and the rows went with it. */
  if (sqlite3_get_autocommit(db->h)) {
    log_err("%s: %zu timeline events lost with a rolled-back transaction",
            db->path, db->npending);
    db_timeline_drop(db);
    return -EIO;
  }
  return insert_pending(db);
}

int db_timeline_add(struct db *db, int64_t at, const char *type,
                    int64_t device_id, const char *endpoint, int64_t job_id,
                    int64_t rollout_id, const char *data_json)
{
  bool in_txn = !sqlite3_get_autocommit(db->h);

  if (!in_txn)
    (void)db_timeline_flush(db); /* drops (and logs) orphans, if any */
  db->pending[db->npending++] = (struct db_timeline_row){
      .at = at,
      .device_id = device_id,
      .job_id = job_id,
      .rollout_id = rollout_id,
      .type = type ? xstrdup(type) : NULL,
      .endpoint = endpoint ? xstrdup(endpoint) : NULL,
      .data = data_json ? xstrdup(data_json) : NULL,
  };
  /* Outside a transaction a row waits for nothing. */
  if (!in_txn || db->npending == DB_TIMELINE_BATCH)
    return insert_pending(db);
  return 0;
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
