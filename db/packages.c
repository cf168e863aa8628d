/* Packages: uploaded images, their hashes and MCUboot verdicts. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

#define PACKAGE_COLUMNS                                                       \
  "SELECT id, component, version, sha256, size, file, filename, mcuboot, "    \
  "mcuboot_detail, mcuboot_version, forced, download_token, created_at "      \
  "FROM packages "

/* Calls cb for each row; *count is the number of rows. */
static int package_rows(struct db *db, sqlite3_stmt *st, db_package_cb *cb,
                        void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_package p = {
        .id = sqlite3_column_int64(st, 0),
        .component = (const char *)sqlite3_column_text(st, 1),
        .version = (const char *)sqlite3_column_text(st, 2),
        .sha256 = (const char *)sqlite3_column_text(st, 3),
        .size = sqlite3_column_int64(st, 4),
        .file = (const char *)sqlite3_column_text(st, 5),
        .filename = (const char *)sqlite3_column_text(st, 6),
        .mcuboot = (const char *)sqlite3_column_text(st, 7),
        .mcuboot_detail = (const char *)sqlite3_column_text(st, 8),
        .mcuboot_version = (const char *)sqlite3_column_text(st, 9),
        .forced = sqlite3_column_int(st, 10) != 0,
        .download_token = (const char *)sqlite3_column_text(st, 11),
        .created_at = sqlite3_column_int64(st, 12),
    };

    (*count)++;
    cb(arg, &p);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: packages query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_package_add(struct db *db, struct db_package *p)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO packages (component, version, sha256, size, "
                   "file, filename, mcuboot, mcuboot_detail, "
                   "mcuboot_version, forced, download_token, created_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                   "?12)",
                   &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, p->component);
  db_bind_text(st, 2, p->version);
  db_bind_text(st, 3, p->sha256);
  sqlite3_bind_int64(st, 4, p->size);
  db_bind_text(st, 5, p->file);
  db_bind_text(st, 6, p->filename);
  db_bind_text(st, 7, p->mcuboot);
  db_bind_text(st, 8, p->mcuboot_detail);
  db_bind_text(st, 9, p->mcuboot_version);
  sqlite3_bind_int(st, 10, p->forced ? 1 : 0);
  db_bind_text(st, 11, p->download_token);
  sqlite3_bind_int64(st, 12, p->created_at);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = db_errno(sqlite3_extended_errcode(db->h));
    if (rc != -EEXIST)
      log_err("%s: package insert: %s", db_path(db), sqlite3_errmsg(db->h));
    goto out;
  }
  p->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

/* Runs a query for one package, keyed by one or two text parameters or
 * an integer. */
static int one(struct db *db, const char *sql, int64_t id, const char *k1,
               const char *k2, db_package_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  if (k1) {
    db_bind_text(st, 1, k1);
    if (k2)
      db_bind_text(st, 2, k2);
  } else {
    sqlite3_bind_int64(st, 1, id);
  }
  rc = package_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_package_get(struct db *db, int64_t id, db_package_cb *cb, void *arg)
{
  return one(db, PACKAGE_COLUMNS "WHERE id = ?1", id, NULL, NULL, cb, arg);
}

int db_package_by_version(struct db *db, const char *component,
                          const char *version, db_package_cb *cb, void *arg)
{
  return one(db, PACKAGE_COLUMNS "WHERE component = ?1 AND version = ?2", 0,
             component, version, cb, arg);
}

int db_package_by_token(struct db *db, const char *token, db_package_cb *cb,
                        void *arg)
{
  return one(db, PACKAGE_COLUMNS "WHERE download_token = ?1", 0, token, NULL,
             cb, arg);
}

int db_packages_list(struct db *db, const char *component, int64_t before_id,
                     int limit, db_package_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  /* Two statements, so that each walks its index from before_id. */
  if (component)
    rc = db_stmt_get(db,
                     PACKAGE_COLUMNS "WHERE component = ?2 AND id < ?1 "
                                     "ORDER BY id DESC LIMIT ?3",
                     &st);
  else
    rc = db_stmt_get(
        db, PACKAGE_COLUMNS "WHERE id < ?1 ORDER BY id DESC LIMIT ?3", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
  if (component)
    db_bind_text(st, 2, component);
  sqlite3_bind_int(st, 3, limit);
  rc = package_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

/* Runs a query with one integer or text parameter that yields one
 * integer. */
static int count_query(struct db *db, const char *sql, int64_t id,
                       const char *key, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  *n = 0;
  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  if (key)
    db_bind_text(st, 1, key);
  else
    sqlite3_bind_int64(st, 1, id);
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    log_err("%s: packages count: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  *n = sqlite3_column_int64(st, 0);
out:
  db_stmt_done(st);
  return rc;
}

int db_packages_count_sha256(struct db *db, const char *sha256, int64_t *n)
{
  return count_query(db, "SELECT count(*) FROM packages WHERE sha256 = ?1", 0,
                     sha256, n);
}

int db_package_set_forced(struct db *db, int64_t id, bool forced)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db, "UPDATE packages SET forced = ?2 WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int(st, 2, forced ? 1 : 0);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: package update: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(sqlite3_extended_errcode(db->h));
    goto out;
  }
  if (sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_package_usage(struct db *db, int64_t id, int64_t *rollouts,
                     int64_t *jobs)
{
  int rc = count_query(db,
                       "SELECT count(*) FROM rollout_packages rp "
                       "JOIN rollouts r ON r.id = rp.rollout_id "
                       "WHERE rp.package_id = ?1 "
                       "AND r.state IN ('created', 'running', 'paused')",
                       id, NULL, rollouts);

  if (rc == 0)
    rc = count_query(db,
                     "SELECT count(DISTINCT jc.job_id) FROM job_components jc "
                     "JOIN jobs j ON j.id = jc.job_id "
                     "WHERE jc.package_id = ?1 AND j.finished_at IS NULL",
                     id, NULL, jobs);
  return rc;
}

int db_package_delete(struct db *db, int64_t id)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, "DELETE FROM packages WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    /* ON DELETE RESTRICT reports a reference as a constraint failure
     * (SQLITE_CONSTRAINT_TRIGGER or _FOREIGNKEY). */
    if ((sqlite3_extended_errcode(db->h) & 0xff) == SQLITE_CONSTRAINT) {
      rc = -EBUSY;
      goto out;
    }
    log_err("%s: package delete: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(sqlite3_extended_errcode(db->h));
    goto out;
  }
  if (sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}
