/* Firmware components (33629 instances and /5/0) and device timelines. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

int db_component_save(struct db *db, const struct db_component *c)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db,
      "INSERT INTO components (device_id, object_id, instance_id, name, "
      "current_version, state, result, pkg_name, pkg_version, protocols, "
      "delivery_method, severity, last_state_change, max_defer_period, "
      "linked, conflicting, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
      "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) "
      "ON CONFLICT (device_id, object_id, instance_id) DO UPDATE SET "
      "name = excluded.name, current_version = excluded.current_version, "
      "state = excluded.state, result = excluded.result, "
      "pkg_name = excluded.pkg_name, pkg_version = excluded.pkg_version, "
      "protocols = excluded.protocols, "
      "delivery_method = excluded.delivery_method, "
      "severity = excluded.severity, "
      "last_state_change = excluded.last_state_change, "
      "max_defer_period = excluded.max_defer_period, "
      "linked = excluded.linked, conflicting = excluded.conflicting, "
      "updated_at = excluded.updated_at",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, c->device_id);
  sqlite3_bind_int(st, 2, c->oid);
  sqlite3_bind_int(st, 3, c->iid);
  db_bind_text(st, 4, c->name);
  db_bind_text(st, 5, c->current_version);
  db_bind_opt_int(st, 6, c->state);
  db_bind_opt_int(st, 7, c->result);
  db_bind_text(st, 8, c->pkg_name);
  db_bind_text(st, 9, c->pkg_version);
  db_bind_text(st, 10, c->protocols);
  db_bind_opt_int(st, 11, c->delivery_method);
  db_bind_opt_int(st, 12, c->severity);
  db_bind_opt_int(st, 13, c->last_state_change);
  db_bind_opt_int(st, 14, c->max_defer_period);
  db_bind_text(st, 15, c->linked);
  db_bind_text(st, 16, c->conflicting);
  sqlite3_bind_int64(st, 17, c->updated_at);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: component save: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(sqlite3_errcode(db->h));
  }
out:
  db_stmt_done(st);
  return rc;
}

#define COMPONENT_COLUMNS                                                     \
  "SELECT c.id, c.device_id, d.endpoint, c.object_id, c.instance_id, "        \
  "c.name, c.current_version, c.state, c.result, c.pkg_name, "                \
  "c.pkg_version, c.protocols, c.delivery_method, c.severity, "               \
  "c.last_state_change, c.max_defer_period, c.linked, c.conflicting, "        \
  "c.updated_at FROM components c JOIN devices d ON d.id = c.device_id "

static int component_rows(struct db *db, sqlite3_stmt *st, db_component_cb *cb,
                          void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_component c = {
        .id = sqlite3_column_int64(st, 0),
        .device_id = sqlite3_column_int64(st, 1),
        .endpoint = (const char *)sqlite3_column_text(st, 2),
        .oid = sqlite3_column_int(st, 3),
        .iid = sqlite3_column_int(st, 4),
        .name = (const char *)sqlite3_column_text(st, 5),
        .current_version = (const char *)sqlite3_column_text(st, 6),
        .state = db_col_opt_int(st, 7),
        .result = db_col_opt_int(st, 8),
        .pkg_name = (const char *)sqlite3_column_text(st, 9),
        .pkg_version = (const char *)sqlite3_column_text(st, 10),
        .protocols = (const char *)sqlite3_column_text(st, 11),
        .delivery_method = db_col_opt_int(st, 12),
        .severity = db_col_opt_int(st, 13),
        .last_state_change = db_col_opt_int(st, 14),
        .max_defer_period = db_col_opt_int(st, 15),
        .linked = (const char *)sqlite3_column_text(st, 16),
        .conflicting = (const char *)sqlite3_column_text(st, 17),
        .updated_at = sqlite3_column_int64(st, 18),
    };

    (*count)++;
    cb(arg, &c);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: components query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_component_get(struct db *db, int64_t device_id, int oid, int iid,
                     db_component_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db,
                   COMPONENT_COLUMNS "WHERE c.device_id = ?1 AND "
                                     "c.object_id = ?2 AND c.instance_id = ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int(st, 2, oid);
  sqlite3_bind_int(st, 3, iid);
  rc = component_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_components_of_device(struct db *db, int64_t device_id,
                            db_component_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db,
                   COMPONENT_COLUMNS "WHERE c.device_id = ?1 "
                                     "ORDER BY c.object_id, c.instance_id",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  rc = component_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_components_prune(struct db *db, int64_t device_id, const uint32_t *keep,
                        size_t n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;
  char *list = NULL;
  size_t len = 0;

  /* The list is bound as JSON so one cached statement serves any size. */
  list = xmalloc(n * 12 + 3);
  list[len++] = '[';
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(list + len, 12, "%s%u", i ? "," : "", keep[i]);
  list[len++] = ']';
  list[len] = '\0';
  rc = db_stmt_get(db,
                   "DELETE FROM components WHERE device_id = ?1 AND "
                   "(object_id << 16 | instance_id) NOT IN "
                   "(SELECT value FROM json_each(?2))",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_text(st, 2, list, -1, SQLITE_STATIC);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: components prune: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  free(list);
  return rc;
}

int db_component_versions(struct db *db,
                          void (*cb)(void *arg, const char *name,
                                     const char *version, int64_t devices),
                          void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT coalesce(name, CASE object_id WHEN 5 THEN "
                   "'firmware' ELSE 'instance ' || instance_id END), "
                   "current_version, count(DISTINCT device_id) "
                   "FROM components GROUP BY 1, 2 ORDER BY 1, 2",
                   &st);
  if (rc < 0)
    goto out;
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, (const char *)sqlite3_column_text(st, 0),
       (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
  if (src != SQLITE_DONE) {
    log_err("%s: versions query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_device_set_firmware(struct db *db, int64_t device_id,
                           const char *version)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db, "UPDATE devices SET firmware_version = ?2 WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  db_bind_text(st, 2, version);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: firmware version: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = -EIO;
    goto out;
  }
  db_stmt_done(st);
  st = NULL;
  /* Object 5 has no version resource: its version is the device's. */
  rc = db_stmt_get(db,
                   "UPDATE components SET current_version = ?2 "
                   "WHERE device_id = ?1 AND object_id = 5",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  db_bind_text(st, 2, version);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: firmware version: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = -EIO;
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_timeline_list(struct db *db, int64_t device_id, int64_t after_id,
                     int limit, db_event_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "SELECT id, at, type, endpoint, job_id, rollout_id, data "
                   "FROM timeline_events WHERE device_id = ?1 AND id > ?2 "
                   "ORDER BY id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int(st, 3, limit);
  rc = db_event_rows(db, st, cb, arg);
out:
  db_stmt_done(st);
  return rc;
}
