/* Update jobs and their components, and the package rows they need. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

int db_job_add(struct db *db, struct db_job *j)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO jobs (rollout_id, device_id, state, attempt, "
                   "forced, created_at, updated_at, download_timeout, "
                   "update_timeout, reboot_timeout, verify_window, "
                   "max_reboots) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
                   &st);
  if (rc < 0)
    goto out;
  db_bind_id(st, 1, j->rollout_id);
  sqlite3_bind_int64(st, 2, j->device_id);
  db_bind_text(st, 3, j->state);
  sqlite3_bind_int64(st, 4, j->attempt);
  sqlite3_bind_int(st, 5, j->forced ? 1 : 0);
  sqlite3_bind_int64(st, 6, j->created_at);
  sqlite3_bind_int64(st, 7, j->download_timeout);
  sqlite3_bind_int64(st, 8, j->update_timeout);
  sqlite3_bind_int64(st, 9, j->reboot_timeout);
  sqlite3_bind_int64(st, 10, j->verify_window);
  sqlite3_bind_int64(st, 11, j->max_reboots);
  rc = db_step_done(db, st, "job insert");
  if (rc == 0)
    j->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_job_component_add(struct db *db, const struct db_job_component *c)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db,
      "INSERT INTO job_components (job_id, component_id, package_id, "
      "position, object_id, instance_id, state, from_version, start_result, "
      "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, c->job_id);
  sqlite3_bind_int64(st, 2, c->component_id);
  sqlite3_bind_int64(st, 3, c->package_id);
  sqlite3_bind_int(st, 4, c->position);
  sqlite3_bind_int(st, 5, c->oid);
  sqlite3_bind_int(st, 6, c->iid);
  db_bind_text(st, 7, c->state);
  db_bind_text(st, 8, c->from_version);
  db_bind_opt_int(st, 9, c->start_result);
  db_bind_id(st, 10, c->updated_at);
  rc = db_step_done(db, st, "job component insert");
out:
  db_stmt_done(st);
  return rc;
}

int db_job_update(struct db *db, const struct db_job *j)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "UPDATE jobs SET state = ?2, attempt = ?3, "
                   "failure_class = ?4, update_result = ?5, detail = ?6, "
                   "delivery = ?7, updated_at = ?8, started_at = ?9, "
                   "executed_at = ?10, deadline_at = ?11, finished_at = ?12 "
                   "WHERE id = ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, j->id);
  db_bind_text(st, 2, j->state);
  sqlite3_bind_int64(st, 3, j->attempt);
  db_bind_text(st, 4, j->failure_class);
  db_bind_opt_int(st, 5, j->update_result);
  db_bind_text(st, 6, j->detail);
  db_bind_text(st, 7, j->delivery);
  sqlite3_bind_int64(st, 8, j->updated_at);
  db_bind_id(st, 9, j->started_at);
  db_bind_id(st, 10, j->executed_at);
  db_bind_id(st, 11, j->deadline_at);
  db_bind_id(st, 12, j->finished_at);
  rc = db_step_done(db, st, "job update");
  if (rc == 0 && sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_job_component_update(struct db *db, const struct db_job_component *c)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "UPDATE job_components SET state = ?3, result = ?4, "
                   "uri = ?5, blocks = ?6, bytes = ?7, last_block_at = ?8, "
                   "updated_at = ?9 WHERE job_id = ?1 AND component_id = ?2",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, c->job_id);
  sqlite3_bind_int64(st, 2, c->component_id);
  db_bind_text(st, 3, c->state);
  db_bind_opt_int(st, 4, c->result);
  db_bind_text(st, 5, c->uri);
  sqlite3_bind_int64(st, 6, c->blocks);
  sqlite3_bind_int64(st, 7, c->bytes);
  db_bind_id(st, 8, c->last_block_at);
  db_bind_id(st, 9, c->updated_at);
  rc = db_step_done(db, st, "job component update");
out:
  db_stmt_done(st);
  return rc;
}

#define JOB_COLUMNS                                                           \
  "SELECT j.id, j.rollout_id, j.device_id, d.endpoint, j.state, j.attempt, "  \
  "j.failure_class, j.update_result, j.detail, j.delivery, j.forced, "        \
  "j.created_at, j.updated_at, j.started_at, j.executed_at, j.deadline_at, "  \
  "j.finished_at, j.download_timeout, j.update_timeout, j.reboot_timeout, "   \
  "j.verify_window, j.max_reboots "                                           \
  "FROM jobs j JOIN devices d ON d.id = j.device_id "

static int job_rows(struct db *db, sqlite3_stmt *st, db_job_cb *cb, void *arg,
                    int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_job j = {
        .id = sqlite3_column_int64(st, 0),
        .rollout_id = sqlite3_column_int64(st, 1),
        .device_id = sqlite3_column_int64(st, 2),
        .endpoint = db_col_text(st, 3),
        .state = db_col_text(st, 4),
        .attempt = sqlite3_column_int64(st, 5),
        .failure_class = db_col_text(st, 6),
        .update_result = db_col_opt_int(st, 7),
        .detail = db_col_text(st, 8),
        .delivery = db_col_text(st, 9),
        .forced = sqlite3_column_int(st, 10) != 0,
        .created_at = sqlite3_column_int64(st, 11),
        .updated_at = sqlite3_column_int64(st, 12),
        .started_at = sqlite3_column_int64(st, 13),
        .executed_at = sqlite3_column_int64(st, 14),
        .deadline_at = sqlite3_column_int64(st, 15),
        .finished_at = sqlite3_column_int64(st, 16),
        .download_timeout = sqlite3_column_int64(st, 17),
        .update_timeout = sqlite3_column_int64(st, 18),
        .reboot_timeout = sqlite3_column_int64(st, 19),
        .verify_window = sqlite3_column_int64(st, 20),
        .max_reboots = sqlite3_column_int64(st, 21),
    };

    (*count)++;
    cb(arg, &j);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: jobs query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_job_get(struct db *db, int64_t id, db_job_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, JOB_COLUMNS "WHERE j.id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  rc = job_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_job_active_of_device(struct db *db, int64_t device_id, int64_t *id)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT id FROM jobs WHERE device_id = ?1 AND "
                   "finished_at IS NULL",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  src = sqlite3_step(st);
  if (src == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
  } else if (src == SQLITE_DONE) {
    rc = -ENOENT;
  } else {
    log_err("%s: active job query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_jobs_active(struct db *db, db_job_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db, JOB_COLUMNS "WHERE j.finished_at IS NULL ORDER BY j.id",
                   &st);
  if (rc == 0)
    rc = job_rows(db, st, cb, arg, &count);
  db_stmt_done(st);
  return rc;
}

int db_jobs_of_device(struct db *db, int64_t device_id, int64_t before_id,
                      int limit, db_job_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db,
                   JOB_COLUMNS "WHERE j.device_id = ?1 AND j.id < ?2 "
                               "ORDER BY j.id DESC LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int64(st, 2, before_id > 0 ? before_id : INT64_MAX);
  sqlite3_bind_int(st, 3, limit);
  rc = job_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_job_components(struct db *db, int64_t job_id, db_job_component_cb *cb,
                      void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(
      db,
      "SELECT jc.job_id, jc.component_id, jc.package_id, jc.position, "
      "jc.object_id, jc.instance_id, jc.state, jc.from_version, "
      "jc.start_result, jc.result, jc.uri, jc.blocks, jc.bytes, "
      "jc.last_block_at, jc.updated_at, c.name, p.component, p.version, "
      "p.sha256, p.download_token, p.size FROM job_components jc "
      "LEFT JOIN packages p ON p.id = jc.package_id "
      "LEFT JOIN components c ON c.id = jc.component_id "
      "WHERE jc.job_id = ?1 ORDER BY jc.position",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, job_id);
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_job_component c = {
        .job_id = sqlite3_column_int64(st, 0),
        .component_id = sqlite3_column_int64(st, 1),
        .package_id = sqlite3_column_int64(st, 2),
        .position = sqlite3_column_int(st, 3),
        .oid = sqlite3_column_int(st, 4),
        .iid = sqlite3_column_int(st, 5),
        .state = db_col_text(st, 6),
        .from_version = db_col_text(st, 7),
        .start_result = db_col_opt_int(st, 8),
        .result = db_col_opt_int(st, 9),
        .uri = db_col_text(st, 10),
        .blocks = sqlite3_column_int64(st, 11),
        .bytes = sqlite3_column_int64(st, 12),
        .last_block_at = sqlite3_column_int64(st, 13),
        .updated_at = sqlite3_column_int64(st, 14),
        .name = db_col_text(st, 15),
        .pkg_component = db_col_text(st, 16),
        .pkg_version = db_col_text(st, 17),
        .pkg_sha256 = db_col_text(st, 18),
        .pkg_token = db_col_text(st, 19),
        .pkg_size = sqlite3_column_int64(st, 20),
    };

    cb(arg, &c);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: job components query: %s", db_path(db),
            sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_job_events(struct db *db, int64_t job_id, int64_t after_id, int limit,
                  db_event_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "SELECT id, at, type, endpoint, job_id, rollout_id, data "
                   "FROM timeline_events WHERE job_id = ?1 AND id > ?2 "
                   "ORDER BY id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, job_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int(st, 3, limit);
  rc = db_event_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}

#define JOB_PACKAGE_COLUMNS                                                   \
  "SELECT id, component, version, sha256, size, file, download_token, "       \
  "mcuboot, forced FROM packages "

static int job_package_rows(struct db *db, sqlite3_stmt *st,
                            db_job_package_cb *cb, void *arg)
{
  int src, count = 0;

  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_job_package p = {
        .id = sqlite3_column_int64(st, 0),
        .component = db_col_text(st, 1),
        .version = db_col_text(st, 2),
        .sha256 = db_col_text(st, 3),
        .size = sqlite3_column_int64(st, 4),
        .file = db_col_text(st, 5),
        .download_token = db_col_text(st, 6),
        .mcuboot = db_col_text(st, 7),
        .forced = sqlite3_column_int(st, 8) != 0,
    };

    count++;
    cb(arg, &p);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: package query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return count > 0 ? 0 : -ENOENT;
}

int db_job_package_get(struct db *db, int64_t id, db_job_package_cb *cb,
                       void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db, JOB_PACKAGE_COLUMNS "WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  rc = job_package_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}

int db_job_package_by_token(struct db *db, const char *token,
                            db_job_package_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db, JOB_PACKAGE_COLUMNS "WHERE download_token = ?1", &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, token);
  rc = job_package_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}
