/*
 * Devices, registrations, their object lists, the timeline, queued
 * device-management requests and values received through Send.
 */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

int db_device_id(struct db *db, const char *ep, int64_t *id)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get_timeline_safe(
      db, "SELECT id FROM devices WHERE endpoint = ?1", &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, ep);
  src = sqlite3_step(st);
  if (src == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
  } else if (src == SQLITE_DONE) {
    rc = -ENOENT;
  } else {
    log_err("%s: device lookup: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

struct link_ref {
  const struct db_object_link *l;
  size_t pos;
};

/* Object, instance, then position in the payload. */
static int link_ref_cmp(const void *a, const void *b)
{
  const struct link_ref *x = a, *y = b;

  if (x->l->oid != y->l->oid)
    return x->l->oid < y->l->oid ? -1 : 1;
  if (x->l->iid != y->l->iid)
    return x->l->iid < y->l->iid ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Appends s as the inside of a JSON string; p has room for 6 bytes per
 * byte of s. */
static char *json_escape(char *p, const char *s)
{
  static const char hex[] = "0123456789abcdef";

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;

    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = (char)c;
    } else if (c < 0x20) {
      memcpy(p, "\\u00", 4);
      p[4] = hex[c >> 4];
      p[5] = hex[c & 15];
      p += 6;
    } else {
      *p++ = (char)c;
    }
  }
  return p;
}

/*
 * The devices.objects text for n links (see the schema): sorted by object
 * and instance, and where a payload names one twice, the last wins (as a
 * row per link replaced by its key did). Returns a new string.
 */
static char *objects_json(const struct db_object_link *links, size_t n)
{
  struct link_ref *refs = NULL;
  size_t cap = 3, i;
  bool sorted = true;
  char *out, *p;

  for (i = 0; i < n; i++) {
    /* "[65535,65534,\"" ... "\"]," */
    cap += 20 + (links[i].version ? 6 * strlen(links[i].version) : 0);
    if (i > 0 && (links[i].oid < links[i - 1].oid ||
                  (links[i].oid == links[i - 1].oid &&
                   links[i].iid <= links[i - 1].iid)))
      sorted = false;
  }
  /* Devices list their objects in order: sort only when they do not. */
  if (!sorted) {
    refs = xmalloc(n * sizeof(*refs));
    for (i = 0; i < n; i++)
      refs[i] = (struct link_ref){.l = &links[i], .pos = i};
    qsort(refs, n, sizeof(*refs), link_ref_cmp);
  }
  p = out = xmalloc(cap);
  *p++ = '[';
  for (i = 0; i < n; i++) {
    const struct db_object_link *l = refs ? refs[i].l : &links[i];
    const struct db_object_link *next =
        i + 1 < n ? (refs ? refs[i + 1].l : &links[i + 1]) : NULL;

    if (next && next->oid == l->oid && next->iid == l->iid)
      continue;
    if (p[-1] != '[')
      *p++ = ',';
    *p++ = '[';
    p = put_decimal(p, l->oid);
    *p++ = ',';
    if (l->iid < 0) {
      memcpy(p, "null", 4);
      p += 4;
    } else {
      p = put_decimal(p, (unsigned)l->iid);
    }
    if (l->version) {
      *p++ = ',';
      *p++ = '"';
      p = json_escape(p, l->version);
      *p++ = '"';
    }
    *p++ = ']';
  }
  *p++ = ']';
  *p = '\0';
  free(refs);
  return out;
}

int db_objects_replace(struct db *db, int64_t device_id,
                       const struct db_object_link *links, size_t n)
{
  sqlite3_stmt *st = NULL;
  char *objects = objects_json(links, n);
  int rc;

  rc = db_stmt_get(db, "UPDATE devices SET objects = ?2 WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  db_bind_text(st, 2, objects);
  rc = db_step_done(db, st, "objects update");
out:
  db_stmt_done(st);
  free(objects);
  return rc;
}

/*
 * The registration columns of the device row, in the order both
 * statements below bind them: ?1 is the device's endpoint (insert) or id
 * (update).
 */
#define REG_SET                                                               \
  "last_seen_at = ?2, lwm2m_version = ?3, objects = ?4, location = ?5, "      \
  "lifetime = ?6, binding = ?7, queue_mode = ?8, sms_number = ?9, "           \
  "alt_path = ?10, content_format = ?11, peer_addr = ?12, security = ?13, "   \
  "identity = ?14, registered_at = ?2, updated_at = ?15, expires_at = ?16 "

static void bind_registration(sqlite3_stmt *st,
                              const struct db_registration *r,
                              const char *objects)
{
  sqlite3_bind_int64(st, 2, r->registered_at);
  db_bind_text(st, 3, r->lwm2m_version);
  db_bind_text(st, 4, objects);
  db_bind_text(st, 5, r->location);
  sqlite3_bind_int64(st, 6, r->lifetime);
  db_bind_text(st, 7, r->binding);
  sqlite3_bind_int(st, 8, r->queue_mode);
  db_bind_text(st, 9, r->sms);
  db_bind_text(st, 10, r->alt_path);
  db_bind_text(st, 11, r->content_format);
  db_bind_text(st, 12, r->peer);
  db_bind_text(st, 13, r->security);
  db_bind_text(st, 14, r->identity);
  sqlite3_bind_int64(st, 15, r->updated_at);
  sqlite3_bind_int64(st, 16, r->expires_at);
}

/* Stores the registration in the row of device id; *found tells whether
 * the row is there. */
static int registration_set(struct db *db, const struct db_registration *r,
                            const char *objects, int64_t id, bool *found)
{
  sqlite3_stmt *st = NULL;
  int rc;

  *found = false;
  rc = db_stmt_get_timeline_safe(
      db, "UPDATE devices SET " REG_SET "WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  bind_registration(st, r, objects);
  rc = db_step_done(db, st, "registration save");
  if (rc == 0)
    *found = sqlite3_changes(db->h) > 0;
out:
  db_stmt_done(st);
  return rc;
}

/*
 * A new device is one INSERT; a known one an UPDATE by id, looked up by
 * endpoint only when the caller does not know it. An upsert with
 * RETURNING would do either in one statement, but SQLite collects
 * RETURNING rows in a temporary B-tree, which costs more than these.
 */
int db_registration_save(struct db *db, struct db_registration *r,
                         const struct db_object_link *links, size_t n)
{
  sqlite3_stmt *st = NULL;
  char *objects = objects_json(links, n);
  bool found = false;
  int rc;

  if (r->device_id > 0) {
    rc = registration_set(db, r, objects, r->device_id, &found);
    if (rc < 0 || found)
      goto out;
  }
  rc = db_stmt_get_timeline_safe(
      db,
      "INSERT INTO devices (endpoint, created_at, last_seen_at, "
      "lwm2m_version, objects, location, lifetime, binding, queue_mode, "
      "sms_number, alt_path, content_format, peer_addr, security, identity, "
      "registered_at, updated_at, expires_at) VALUES (?1, ?2, ?2, ?3, ?4, "
      "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?2, ?15, ?16) "
      "ON CONFLICT (endpoint) DO NOTHING",
      &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, r->endpoint);
  bind_registration(st, r, objects);
  rc = db_step_done(db, st, "device insert");
  if (rc < 0)
    goto out;
  if (sqlite3_changes(db->h) > 0) {
    r->device_id = sqlite3_last_insert_rowid(db->h);
    goto out;
  }
  /* Known already: the endpoint is taken. */
  db_stmt_done(st);
  st = NULL;
  rc = db_device_id(db, r->endpoint, &r->device_id);
  if (rc < 0)
    goto out;
  rc = registration_set(db, r, objects, r->device_id, &found);
out:
  db_stmt_done(st);
  free(objects);
  return rc;
}

int db_registration_update(struct db *db, const struct db_registration *r)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get_timeline_safe(
      db,
      "UPDATE devices SET lifetime = ?2, binding = ?3, "
      "sms_number = ?4, queue_mode = ?5, peer_addr = ?6, "
      "updated_at = ?7, expires_at = ?8, last_seen_at = ?7 "
      "WHERE id = ?1 AND location IS NOT NULL",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, r->device_id);
  sqlite3_bind_int64(st, 2, r->lifetime);
  db_bind_text(st, 3, r->binding);
  db_bind_text(st, 4, r->sms);
  sqlite3_bind_int(st, 5, r->queue_mode);
  db_bind_text(st, 6, r->peer);
  sqlite3_bind_int64(st, 7, r->updated_at);
  sqlite3_bind_int64(st, 8, r->expires_at);
  rc = db_step_done(db, st, "registration update");
out:
  db_stmt_done(st);
  return rc;
}

int db_registration_delete(struct db *db, int64_t device_id)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get_timeline_safe(
      db,
      "UPDATE devices SET location = NULL, lifetime = NULL, "
      "binding = NULL, queue_mode = NULL, sms_number = NULL, "
      "alt_path = NULL, content_format = NULL, "
      "peer_addr = NULL, security = NULL, identity = NULL, "
      "registered_at = NULL, updated_at = NULL, "
      "expires_at = NULL WHERE id = ?1",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  rc = db_step_done(db, st, "registration delete");
out:
  db_stmt_done(st);
  return rc;
}

/* The links of a devices.objects text, one row each, from json_each (in
 * array order, which is object and instance order). */
#define OBJECT_COLUMNS "value ->> 0, coalesce(value ->> 1, -1), value ->> 2 "

int db_registrations_load(struct db *db,
                          void (*cb)(void *arg,
                                     const struct db_registration *r,
                                     const struct db_object_link *links,
                                     size_t n),
                          void *arg)
{
  sqlite3_stmt *st = NULL, *ob = NULL;
  struct db_object_link *links = NULL;
  size_t cap = 0;
  int rc, src;

  rc = db_stmt_get(
      db,
      "SELECT id, endpoint, location, lwm2m_version, lifetime, binding, "
      "queue_mode, sms_number, alt_path, content_format, peer_addr, "
      "security, identity, registered_at, updated_at, expires_at, objects "
      "FROM devices WHERE location IS NOT NULL",
      &st);
  if (rc < 0)
    goto out;
  rc = db_stmt_get(db, "SELECT " OBJECT_COLUMNS "FROM json_each(?1)", &ob);
  if (rc < 0)
    goto out;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_registration r = {
        .device_id = sqlite3_column_int64(st, 0),
        .endpoint = db_col_text(st, 1),
        .location = db_col_text(st, 2),
        .lwm2m_version = db_col_text(st, 3),
        .lifetime = sqlite3_column_int64(st, 4),
        .binding = db_col_text(st, 5),
        .queue_mode = sqlite3_column_int(st, 6) != 0,
        .sms = db_col_text(st, 7),
        .alt_path = db_col_text(st, 8),
        .content_format = db_col_text(st, 9),
        .peer = db_col_text(st, 10),
        .security = db_col_text(st, 11),
        .identity = db_col_text(st, 12),
        .registered_at = sqlite3_column_int64(st, 13),
        .updated_at = sqlite3_column_int64(st, 14),
        .expires_at = sqlite3_column_int64(st, 15),
    };
    size_t n = 0;

    db_bind_text(ob, 1, db_col_text(st, 16));
    while ((src = sqlite3_step(ob)) == SQLITE_ROW) {
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        links = xrealloc(links, cap * sizeof(*links));
      }
      links[n].oid = (uint16_t)sqlite3_column_int(ob, 0);
      links[n].iid = sqlite3_column_int(ob, 1);
      /* Copied: json_each's values last only until its next row. */
      links[n].version = sqlite3_column_type(ob, 2) == SQLITE_NULL
                             ? NULL
                             : xstrdup(db_col_text(ob, 2));
      n++;
    }
    if (src == SQLITE_DONE)
      cb(arg, &r, links, n);
    /* Before st moves on: ob's argument is st's column. */
    db_stmt_done(ob);
    for (size_t i = 0; i < n; i++)
      free((char *)links[i].version);
    if (src != SQLITE_DONE) {
      log_err("%s: objects load: %s", db_path(db), sqlite3_errmsg(db->h));
      rc = db_errno(src);
      goto out;
    }
  }
  if (src != SQLITE_DONE) {
    log_err("%s: registrations load: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  free(links);
  db_stmt_done(ob);
  db_stmt_done(st);
  return rc;
}

int db_request_add(struct db *db, struct db_request *r)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO requests (device_id, op, path, body, state, "
                   "created_at, expires_at) "
                   "VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, r->device_id);
  db_bind_text(st, 2, r->op);
  db_bind_text(st, 3, r->path);
  db_bind_text(st, 4, r->body);
  sqlite3_bind_int64(st, 5, r->created_at);
  sqlite3_bind_int64(st, 6, r->expires_at);
  rc = db_step_done(db, st, "request insert");
  if (rc == 0)
    r->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_request_finish(struct db *db, int64_t id, const char *state, int64_t at,
                      const char *code, const char *result, const char *error)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "UPDATE requests SET state = ?2, finished_at = ?3, "
                   "code = ?4, result = ?5, error = ?6 WHERE id = ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  db_bind_text(st, 2, state);
  sqlite3_bind_int64(st, 3, at);
  db_bind_text(st, 4, code);
  db_bind_text(st, 5, result);
  db_bind_text(st, 6, error);
  rc = db_step_done(db, st, "request finish");
out:
  db_stmt_done(st);
  return rc;
}

int db_request_sent(struct db *db, int64_t id, int64_t at)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db, "UPDATE requests SET state = 'sent', sent_at = ?2 WHERE id = ?1",
      &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, at);
  rc = db_step_done(db, st, "request sent");
out:
  db_stmt_done(st);
  return rc;
}

#define REQUEST_COLUMNS                                                       \
  "r.id, r.device_id, d.endpoint, r.op, r.path, r.body, r.state, "            \
  "r.created_at, r.expires_at, r.sent_at, r.finished_at, r.code, "            \
  "r.result, r.error FROM requests r JOIN devices d ON d.id = r.device_id "

/* Runs a bound request query and calls cb for each row. */
static int request_rows(struct db *db, sqlite3_stmt *st, db_request_cb *cb,
                        void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_request r = {
        .id = sqlite3_column_int64(st, 0),
        .device_id = sqlite3_column_int64(st, 1),
        .endpoint = db_col_text(st, 2),
        .op = db_col_text(st, 3),
        .path = db_col_text(st, 4),
        .body = db_col_text(st, 5),
        .state = db_col_text(st, 6),
        .created_at = sqlite3_column_int64(st, 7),
        .expires_at = sqlite3_column_int64(st, 8),
        .sent_at = sqlite3_column_int64(st, 9),
        .finished_at = sqlite3_column_int64(st, 10),
        .code = db_col_text(st, 11),
        .result = db_col_text(st, 12),
        .error = db_col_text(st, 13),
    };

    (*count)++;
    cb(arg, &r);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: requests query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_requests_queued(struct db *db, int64_t device_id, db_request_cb *cb,
                       void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db,
                   "SELECT " REQUEST_COLUMNS
                   "WHERE r.device_id = ?1 AND r.state = 'queued' "
                   "ORDER BY r.id",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  rc = request_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_requests_list(struct db *db, int64_t device_id, int64_t after_id,
                     int limit, db_request_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db,
                   "SELECT " REQUEST_COLUMNS
                   "WHERE r.device_id = ?1 AND r.id > ?2 "
                   "ORDER BY r.id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int(st, 3, limit);
  rc = request_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_request_get(struct db *db, int64_t id, db_request_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, "SELECT " REQUEST_COLUMNS "WHERE r.id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  rc = request_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_requests_expire(struct db *db, int64_t now, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc;

  *n = 0;
  rc = db_stmt_get(db,
                   "UPDATE requests SET state = 'expired', finished_at = ?1, "
                   "error = 'the device did not wake up before the request "
                   "expired' WHERE state = 'queued' AND expires_at <= ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, now);
  rc = db_step_done(db, st, "requests expire");
  if (rc == 0)
    *n = sqlite3_changes(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_requests_abandon(struct db *db, int64_t now)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "UPDATE requests SET state = 'failed', finished_at = ?1, "
                   "error = 'fotad restarted before the device answered' "
                   "WHERE state = 'sent'",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, now);
  rc = db_step_done(db, st, "requests abandon");
out:
  db_stmt_done(st);
  return rc;
}

int db_requests_count_queued(struct db *db, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, "SELECT count(*) FROM requests WHERE state = 'queued'",
                   &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    rc = db_errno(src);
    goto out;
  }
  *n = sqlite3_column_int64(st, 0);
out:
  db_stmt_done(st);
  return rc;
}

int db_sent_values_add(struct db *db, int64_t device_id, int64_t at,
                       int content_format, const char *data_json)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO sent_values (device_id, received_at, "
                   "content_format, data) VALUES (?1, ?2, ?3, ?4)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int64(st, 2, at);
  sqlite3_bind_int(st, 3, content_format);
  db_bind_text(st, 4, data_json);
  rc = db_step_done(db, st, "sent values insert");
out:
  db_stmt_done(st);
  return rc;
}

static int device_rows(struct db *db, sqlite3_stmt *st,
                       void (*cb)(void *arg, const struct db_device *d),
                       void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_device d = {
        .id = sqlite3_column_int64(st, 0),
        .endpoint = db_col_text(st, 1),
        .created_at = sqlite3_column_int64(st, 2),
        .last_seen_at = sqlite3_column_int64(st, 3),
        .lwm2m_version = db_col_text(st, 4),
        .registered = sqlite3_column_int(st, 5) != 0,
    };

    (*count)++;
    cb(arg, &d);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: devices query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

#define DEVICE_COLUMNS                                                        \
  "SELECT d.id, d.endpoint, d.created_at, d.last_seen_at, "                   \
  "d.lwm2m_version, d.location IS NOT NULL FROM devices d "

int db_devices_list(struct db *db, const char *prefix, int registered,
                    int object_id, const char *tag, const char *after_ep,
                    int limit,
                    void (*cb)(void *arg, const struct db_device *d),
                    void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  /* substr() rather than LIKE: endpoint names may hold '%' and '_'. */
  rc = db_stmt_get(
      db,
      DEVICE_COLUMNS
      "WHERE (?1 IS NULL OR substr(d.endpoint, 1, length(?1)) = ?1) "
      "AND (?2 < 0 OR (d.location IS NOT NULL) = ?2) "
      "AND (?3 < 0 OR EXISTS (SELECT 1 FROM json_each(d.objects) "
      "WHERE value ->> 0 = ?3)) "
      "AND (?4 IS NULL OR d.endpoint > ?4) "
      "AND (?6 IS NULL OR EXISTS (SELECT 1 FROM device_tags t "
      "WHERE t.device_id = d.id AND t.tag = ?6)) "
      "ORDER BY d.endpoint LIMIT ?5",
      &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, prefix);
  sqlite3_bind_int(st, 2, registered);
  sqlite3_bind_int(st, 3, object_id);
  db_bind_text(st, 4, after_ep);
  sqlite3_bind_int(st, 5, limit);
  db_bind_text(st, 6, tag);
  rc = device_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_device_get(struct db *db, const char *ep,
                  void (*cb)(void *arg, const struct db_device *d), void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, DEVICE_COLUMNS "WHERE d.endpoint = ?1", &st);
  if (rc < 0)
    goto out;
  db_bind_text(st, 1, ep);
  rc = device_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_device_objects(struct db *db, int64_t device_id,
                      void (*cb)(void *arg, const struct db_object_link *l),
                      void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT " OBJECT_COLUMNS
                   "FROM devices d, json_each(d.objects) WHERE d.id = ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_object_link l = {
        .oid = (uint16_t)sqlite3_column_int(st, 0),
        .iid = sqlite3_column_int(st, 1),
        .version = db_col_text(st, 2),
    };

    cb(arg, &l);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: objects query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_request_cancel(struct db *db, int64_t id, int64_t at)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "UPDATE requests SET state = 'cancelled', finished_at = ?2 "
                   "WHERE id = ?1 AND state = 'queued'",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, at);
  rc = db_step_done(db, st, "request cancel");
  if (rc == 0 && sqlite3_changes(db->h) == 0) {
    db_stmt_done(st);
    st = NULL;
    rc = db_stmt_get(db, "SELECT id FROM requests WHERE id = ?1", &st);
    if (rc < 0)
      goto out;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st) == SQLITE_ROW ? -EBUSY : -ENOENT;
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_sent_values_list(struct db *db, int64_t device_id, int64_t after_id,
                        int limit,
                        void (*cb)(void *arg, int64_t id, int64_t at,
                                   int content_format, const char *data),
                        void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT id, received_at, content_format, data FROM "
                   "sent_values WHERE device_id = ?1 AND id > ?2 "
                   "ORDER BY id LIMIT ?3",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int(st, 3, limit);
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
       sqlite3_column_int(st, 2), db_col_text(st, 3));
  if (src != SQLITE_DONE) {
    log_err("%s: sent values query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_device_tags(struct db *db, int64_t device_id, db_tag_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT tag FROM device_tags WHERE device_id = ?1 "
                   "ORDER BY tag",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  while ((src = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, db_col_text(st, 0));
  if (src != SQLITE_DONE) {
    log_err("%s: tags query: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_device_tag_add(struct db *db, int64_t device_id, const char *tag,
                      bool *added)
{
  sqlite3_stmt *st = NULL;
  int rc;

  if (added)
    *added = false;
  /* OR IGNORE: adding a tag the device has is not an error, and the
   * number of changed rows tells the caller which case it was. */
  rc = db_stmt_get(db,
                   "INSERT OR IGNORE INTO device_tags (device_id, tag) "
                   "VALUES (?1, ?2)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  db_bind_text(st, 2, tag);
  rc = db_step_done(db, st, "tag insert");
  if (rc == 0 && added)
    *added = sqlite3_changes(db->h) > 0;
out:
  db_stmt_done(st);
  return rc;
}

int db_device_tag_remove(struct db *db, int64_t device_id, const char *tag)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(
      db, "DELETE FROM device_tags WHERE device_id = ?1 AND tag = ?2", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  db_bind_text(st, 2, tag);
  rc = db_step_done(db, st, "tag delete");
  if (rc == 0 && sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_device_tags_set(struct db *db, int64_t device_id,
                       const char *const *tags, size_t n)
{
  sqlite3_stmt *st = NULL;
  int rc;

  /* A savepoint, so that a failure half-way leaves the old set whole. */
  rc = db_action_begin(db);
  if (rc < 0)
    return rc;
  rc = db_stmt_get(db, "DELETE FROM device_tags WHERE device_id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, device_id);
  rc = db_step_done(db, st, "tags delete");
  if (rc < 0)
    goto out;
  for (size_t i = 0; i < n; i++) {
    /* db_device_tag_add() ignores duplicates within tags too. */
    rc = db_device_tag_add(db, device_id, tags[i], NULL);
    if (rc < 0)
      goto out;
  }
out:
  db_stmt_done(st);
  if (rc == 0)
    rc = db_action_end(db, true);
  if (rc < 0)
    db_action_end(db, false);
  return rc;
}
