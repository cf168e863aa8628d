/* DTLS credentials: PSK identities and keys, raw public keys, X.509. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

#define CREDENTIAL_COLUMNS                                                    \
  "SELECT id, endpoint, type, identity, secret, public_key, created_at "      \
  "FROM credentials "

static int credential_rows(struct db *db, sqlite3_stmt *st,
                           db_credential_cb *cb, void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_credential c = {
        .id = sqlite3_column_int64(st, 0),
        .endpoint = (const char *)sqlite3_column_text(st, 1),
        .type = (const char *)sqlite3_column_text(st, 2),
        .identity = (const char *)sqlite3_column_text(st, 3),
        .secret = sqlite3_column_blob(st, 4),
        .secret_len = (size_t)sqlite3_column_bytes(st, 4),
        .public_key = sqlite3_column_blob(st, 5),
        .public_key_len = (size_t)sqlite3_column_bytes(st, 5),
        .created_at = sqlite3_column_int64(st, 6),
    };

    (*count)++;
    cb(arg, &c);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: credentials query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

static int bind_blob(sqlite3_stmt *st, int ix, const uint8_t *b, size_t len)
{
  if (!b)
    return sqlite3_bind_null(st, ix);
  return sqlite3_bind_blob(st, ix, b, (int)len, SQLITE_STATIC);
}

int db_credential_add(struct db *db, struct db_credential *c)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "INSERT INTO credentials (endpoint, type, identity, "
                   "secret, public_key, created_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_text(st, 1, c->endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, c->type, -1, SQLITE_STATIC);
  if (c->identity)
    sqlite3_bind_text(st, 3, c->identity, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 3);
  bind_blob(st, 4, c->secret, c->secret_len);
  bind_blob(st, 5, c->public_key, c->public_key_len);
  sqlite3_bind_int64(st, 6, c->created_at);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    rc = db_errno(sqlite3_extended_errcode(db->h));
    if (rc != -EEXIST)
      log_err("%s: credential insert: %s", db_path(db), sqlite3_errmsg(db->h));
    goto out;
  }
  c->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_credential_delete(struct db *db, const char *endpoint)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db, "DELETE FROM credentials WHERE endpoint = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_err("%s: credential delete: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = -EIO;
    goto out;
  }
  if (sqlite3_changes(db->h) == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

static int one(struct db *db, const char *sql, const void *key, size_t len,
               bool blob, db_credential_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, sql, &st);
  if (rc < 0)
    goto out;
  if (blob)
    sqlite3_bind_blob(st, 1, key, (int)len, SQLITE_STATIC);
  else
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  rc = credential_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_credential_by_endpoint(struct db *db, const char *endpoint,
                              db_credential_cb *cb, void *arg)
{
  return one(db, CREDENTIAL_COLUMNS "WHERE endpoint = ?1", endpoint, 0, false,
             cb, arg);
}

int db_credential_by_identity(struct db *db, const char *identity,
                              db_credential_cb *cb, void *arg)
{
  return one(db, CREDENTIAL_COLUMNS "WHERE identity = ?1", identity, 0, false,
             cb, arg);
}

int db_credential_by_key(struct db *db, const uint8_t *key, size_t len,
                         db_credential_cb *cb, void *arg)
{
  return one(db, CREDENTIAL_COLUMNS "WHERE public_key = ?1", key, len, true,
             cb, arg);
}

int db_credentials_list(struct db *db, const char *after_ep, int limit,
                        db_credential_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc = db_stmt_get(db,
                   CREDENTIAL_COLUMNS "WHERE ?1 IS NULL OR endpoint > ?1 "
                                      "ORDER BY endpoint LIMIT ?2",
                   &st);
  if (rc < 0)
    goto out;
  if (after_ep)
    sqlite3_bind_text(st, 1, after_ep, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 1);
  sqlite3_bind_int(st, 2, limit);
  rc = credential_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}
