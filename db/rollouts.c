/* Rollouts, their packages and their devices (members). */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

int db_rollout_add(struct db *db, struct db_rollout *r)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO rollouts (name, state, spec, created_at, "
                   "updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                   &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, r->name);
  db_bind_text(st, 2, r->state);
  db_bind_text(st, 3, r->spec);
  sqlite3_bind_int64(st, 4, r->created_at);
  rc = db_step_done(db, st, "rollout insert");
  if (rc == 0)
    r->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_rollout_package_add(struct db *db, int64_t rollout_id,
                           int64_t package_id)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO rollout_packages (rollout_id, package_id) "
                   "VALUES (?1, ?2)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  sqlite3_bind_int64(st, 2, package_id);
  rc = db_step_done(db, st, "rollout package insert");
out:
  db_stmt_done(st);
  return rc;
}

int db_rollout_update(struct db *db, const struct db_rollout *r)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db,
      "UPDATE rollouts SET state = ?2, reason = ?3, updated_at = ?4, "
      "started_at = ?5, finished_at = ?6, stage = ?7, stage_started_at = ?8, "
      "stage_done_at = ?9, gate_failures = ?10, gate_finished = ?11, "
      "gate_passed_stage = ?12 WHERE id = ?1",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, r->id);
  db_bind_text(st, 2, r->state);
  db_bind_text(st, 3, r->reason);
  sqlite3_bind_int64(st, 4, r->updated_at);
  db_bind_id(st, 5, r->started_at);
  db_bind_id(st, 6, r->finished_at);
  sqlite3_bind_int64(st, 7, r->stage);
  db_bind_id(st, 8, r->stage_started_at);
  db_bind_id(st, 9, r->stage_done_at);
  sqlite3_bind_int64(st, 10, r->gate_failures);
  sqlite3_bind_int64(st, 11, r->gate_finished);
  sqlite3_bind_int64(st, 12, r->gate_passed_stage);
  rc = db_step_done(db, st, "rollout update");
  if (rc == 0 && sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

#define ROLLOUT_COLUMNS                                                       \
  "SELECT id, name, state, spec, created_at, updated_at, started_at, "        \
  "finished_at, reason, stage, stage_started_at, stage_done_at, "             \
  "gate_failures, gate_finished, gate_passed_stage FROM rollouts "

static int rollout_rows(struct db *db, sqlite3_stmt *st, db_rollout_cb *cb,
                        void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_rollout r = {
        .id = sqlite3_column_int64(st, 0),
        .name = db_col_text(st, 1),
        .state = db_col_text(st, 2),
        .spec = db_col_text(st, 3),
        .created_at = sqlite3_column_int64(st, 4),
        .updated_at = sqlite3_column_int64(st, 5),
        .started_at = sqlite3_column_int64(st, 6),
        .finished_at = sqlite3_column_int64(st, 7),
        .reason = db_col_text(st, 8),
        .stage = sqlite3_column_int64(st, 9),
        .stage_started_at = sqlite3_column_int64(st, 10),
        .stage_done_at = sqlite3_column_int64(st, 11),
        .gate_failures = sqlite3_column_int64(st, 12),
        .gate_finished = sqlite3_column_int64(st, 13),
        .gate_passed_stage = sqlite3_column_int64(st, 14),
    };

    (*count)++;
    cb(arg, &r);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: rollouts query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_rollout_get(struct db *db, int64_t id, db_rollout_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, ROLLOUT_COLUMNS "WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  rc = rollout_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_rollouts_list(struct db *db, const char *state, int64_t before_id,
                     int limit, db_rollout_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db,
                   ROLLOUT_COLUMNS "WHERE (?1 IS NULL OR state = ?1) "
                                   "AND (?2 IS NULL OR id < ?2) "
                                   "ORDER BY id DESC LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, state);
  db_bind_id(st, 2, before_id);
  sqlite3_bind_int(st, 3, limit);
  rc = rollout_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_rollouts_live(struct db *db, db_rollout_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(
      db, ROLLOUT_COLUMNS "WHERE state IN ('running', 'paused') ORDER BY id",
      &st);
  if (rc == 0)
    rc = rollout_rows(db, st, cb, arg, &count);
  db_stmt_done(st);
  return rc;
}

int db_rollout_candidates(struct db *db, const char *endpoints_json,
                          const char *tags_json, int64_t not_in_rollout,
                          db_candidate_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(
      db,
      "SELECT d.id, d.endpoint, c.object_id, c.instance_id, c.name, "
      "c.current_version, c.state FROM devices d "
      "LEFT JOIN components c ON c.device_id = d.id "
      "WHERE ((?1 IS NULL AND ?2 IS NULL) "
      "  OR d.endpoint IN (SELECT value FROM json_each(?1)) "
      "  OR d.id IN (SELECT device_id FROM device_tags "
      "    WHERE tag IN (SELECT value FROM json_each(?2)))) "
      "AND (?3 IS NULL OR d.id NOT IN (SELECT device_id FROM "
      "  rollout_devices WHERE rollout_id = ?3)) "
      "ORDER BY d.id, c.object_id, c.instance_id",
      &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, endpoints_json);
  db_bind_text(st, 2, tags_json);
  db_bind_id(st, 3, not_in_rollout);
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_candidate c = {
        .device_id = sqlite3_column_int64(st, 0),
        .endpoint = db_col_text(st, 1),
        .oid = sqlite3_column_type(st, 2) == SQLITE_NULL
                   ? 0
                   : sqlite3_column_int(st, 2),
        .iid = sqlite3_column_int(st, 3),
        .name = db_col_text(st, 4),
        .version = db_col_text(st, 5),
        .state = db_col_opt_int(st, 6),
    };

    cb(arg, &c);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: rollout candidates: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_member_add(struct db *db, const struct db_member *m)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO rollout_devices (rollout_id, device_id, "
                   "stage, rank, state, reason, updated_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, m->rollout_id);
  sqlite3_bind_int64(st, 2, m->device_id);
  sqlite3_bind_int64(st, 3, m->stage);
  sqlite3_bind_int64(st, 4, m->rank);
  db_bind_text(st, 5, m->state);
  db_bind_text(st, 6, m->reason);
  sqlite3_bind_int64(st, 7, m->updated_at);
  rc = db_step_done(db, st, "rollout member insert");
out:
  db_stmt_done(st);
  return rc;
}

int db_member_update(struct db *db, const struct db_member *m)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db,
      "UPDATE rollout_devices SET state = ?3, attempts = ?4, job_id = ?5, "
      "next_at = ?6, failure_class = ?7, gate_class = ?8, reason = ?9, "
      "updated_at = ?10 WHERE rollout_id = ?1 AND device_id = ?2",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, m->rollout_id);
  sqlite3_bind_int64(st, 2, m->device_id);
  db_bind_text(st, 3, m->state);
  sqlite3_bind_int64(st, 4, m->attempts);
  db_bind_id(st, 5, m->job_id);
  db_bind_id(st, 6, m->next_at);
  db_bind_text(st, 7, m->failure_class);
  db_bind_text(st, 8, m->gate_class);
  db_bind_text(st, 9, m->reason);
  sqlite3_bind_int64(st, 10, m->updated_at);
  rc = db_step_done(db, st, "rollout member update");
  if (rc == 0 && sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

#define MEMBER_COLUMNS                                                        \
  "SELECT m.rollout_id, m.device_id, d.endpoint, m.stage, m.rank, m.state, "  \
  "m.attempts, m.job_id, m.next_at, m.failure_class, m.gate_class, "          \
  "m.reason, m.updated_at, j.state FROM rollout_devices m "                   \
  "JOIN devices d ON d.id = m.device_id "                                     \
  "LEFT JOIN jobs j ON j.id = m.job_id "

static int member_rows(struct db *db, sqlite3_stmt *st, db_member_cb *cb,
                       void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_member m = {
        .rollout_id = sqlite3_column_int64(st, 0),
        .device_id = sqlite3_column_int64(st, 1),
        .endpoint = db_col_text(st, 2),
        .stage = sqlite3_column_int64(st, 3),
        .rank = sqlite3_column_int64(st, 4),
        .state = db_col_text(st, 5),
        .attempts = sqlite3_column_int64(st, 6),
        .job_id = sqlite3_column_int64(st, 7),
        .next_at = sqlite3_column_int64(st, 8),
        .failure_class = db_col_text(st, 9),
        .gate_class = db_col_text(st, 10),
        .reason = db_col_text(st, 11),
        .updated_at = sqlite3_column_int64(st, 12),
        .job_state = db_col_text(st, 13),
    };

    (*count)++;
    cb(arg, &m);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: rollout members: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_member_get(struct db *db, int64_t rollout_id, int64_t device_id,
                  db_member_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(
      db, MEMBER_COLUMNS "WHERE m.rollout_id = ?1 AND m.device_id = ?2", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  sqlite3_bind_int64(st, 2, device_id);
  rc = member_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_members_next(struct db *db, int64_t rollout_id, int64_t max_stage,
                    int64_t now, int limit, db_member_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  /* Retries that are due first, then pending devices in cohort order. */
  rc = db_stmt_get(
      db,
      "SELECT * FROM (" MEMBER_COLUMNS
      "WHERE m.rollout_id = ?1 AND m.state = 'retry' "
      "AND m.stage <= ?2 AND m.next_at <= ?3 ORDER BY m.next_at LIMIT ?4) "
      "UNION ALL SELECT * FROM (" MEMBER_COLUMNS
      "WHERE m.rollout_id = ?1 AND m.state = 'pending' "
      "AND m.stage <= ?2 ORDER BY m.stage, m.rank LIMIT ?4)",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  sqlite3_bind_int64(st, 2, max_stage);
  sqlite3_bind_int64(st, 3, now);
  sqlite3_bind_int(st, 4, limit);
  rc = member_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_members_list(struct db *db, int64_t rollout_id, const char *state,
                    int64_t stage, int64_t after_device, int limit,
                    db_member_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db,
                   MEMBER_COLUMNS
                   "WHERE m.rollout_id = ?1 AND (?2 IS NULL OR m.state = ?2 "
                   "OR j.state = ?2) AND (?3 < 0 OR m.stage = ?3) "
                   "AND m.device_id > ?4 ORDER BY m.device_id LIMIT ?5",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  db_bind_text(st, 2, state);
  sqlite3_bind_int64(st, 3, stage);
  sqlite3_bind_int64(st, 4, after_device);
  sqlite3_bind_int(st, 5, limit);
  rc = member_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_member_of_job(struct db *db, int64_t job_id, db_member_cb *cb,
                     void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, MEMBER_COLUMNS "WHERE m.job_id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, job_id);
  rc = member_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_member_counts(struct db *db, int64_t rollout_id, db_member_count_cb *cb,
                     void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT stage, state, gate_class, count(*) "
                   "FROM rollout_devices WHERE rollout_id = ?1 "
                   "GROUP BY stage, state, gate_class",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, sqlite3_column_int64(st, 0), db_col_text(st, 1),
       db_col_text(st, 2), sqlite3_column_int64(st, 3));
  if (src != SQLITE_DONE) {
    log_err("%s: rollout counts: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_members_set_state(struct db *db, int64_t rollout_id, int64_t device_id,
                         const char *from, const char *to, const char *reason,
                         int64_t at, int *changed)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db,
      "UPDATE rollout_devices SET state = ?4, reason = coalesce(?5, reason), "
      "updated_at = ?6 WHERE (?1 IS NULL OR rollout_id = ?1) "
      "AND (?2 IS NULL OR device_id = ?2) AND state = ?3 "
      "AND (?1 IS NOT NULL OR rollout_id IN (SELECT id FROM rollouts "
      "  WHERE state IN ('running', 'paused')))",
      &st);
  if (rc < 0)
    goto out;
  db_bind_id(st, 1, rollout_id);
  db_bind_id(st, 2, device_id);
  db_bind_text(st, 3, from);
  db_bind_text(st, 4, to);
  db_bind_text(st, 5, reason);
  sqlite3_bind_int64(st, 6, at);
  rc = db_step_done(db, st, "rollout members update");
  if (changed)
    *changed = rc == 0 ? sqlite3_changes(db->h) : 0;
out:
  db_stmt_done(st);
  return rc;
}

int db_rollout_events(struct db *db, int64_t rollout_id, int64_t after_id,
                      int limit, db_event_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "SELECT id, at, type, endpoint, job_id, rollout_id, data "
                   "FROM timeline_events WHERE rollout_id = ?1 AND id > ?2 "
                   "AND job_id IS NULL ORDER BY id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, rollout_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int(st, 3, limit);
  rc = db_event_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}
