/* REST API tokens: stored as SHA-256 hashes, revoked rather than deleted. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

#define TOKEN_COLUMNS                                                         \
  "SELECT id, name, token_hash, scope, created_at, last_used_at, "            \
  "revoked_at FROM api_tokens "

/* Calls cb (if any) for each row; *count is the number of rows. */
static int token_rows(struct db *db, sqlite3_stmt *st, db_token_cb *cb,
                      void *arg, int *count)
{
  int src;

  *count = 0;
  while ((src = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_token t = {
        .id = sqlite3_column_int64(st, 0),
        .name = (const char *)sqlite3_column_text(st, 1),
        .hash = sqlite3_column_blob(st, 2),
        .scope = (const char *)sqlite3_column_text(st, 3),
        .created_at = sqlite3_column_int64(st, 4),
        .last_used_at = sqlite3_column_int64(st, 5),
        .revoked_at = sqlite3_column_int64(st, 6),
    };

    (*count)++;
    if (cb)
      cb(arg, &t);
  }
  if (src != SQLITE_DONE) {
    log_err("%s: tokens query: %s", db_path(db), sqlite3_errmsg(db->h));
    return db_errno(src);
  }
  return 0;
}

int db_token_add(struct db *db, struct db_token *t)
{
  sqlite3_stmt *st = NULL;
  int rc;

  rc = db_stmt_get(db,
                   "INSERT INTO api_tokens (name, token_hash, scope, "
                   "created_at) VALUES (?1, ?2, ?3, ?4)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, t->hash, DB_TOKEN_HASH_LEN, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, t->scope, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, t->created_at);
  if (sqlite3_step(st) != SQLITE_DONE) {
    rc = db_errno(sqlite3_extended_errcode(db->h));
    if (rc != -EEXIST)
      log_err("%s: token insert: %s", db_path(db), sqlite3_errmsg(db->h));
    goto out;
  }
  t->id = sqlite3_last_insert_rowid(db->h);
out:
  db_stmt_done(st);
  return rc;
}

int db_token_by_hash(struct db *db, const uint8_t *hash, db_token_cb *cb,
                     void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, TOKEN_COLUMNS "WHERE token_hash = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_blob(st, 1, hash, DB_TOKEN_HASH_LEN, SQLITE_STATIC);
  rc = token_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_token_get(struct db *db, int64_t id, db_token_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count = 0;

  rc = db_stmt_get(db, TOKEN_COLUMNS "WHERE id = ?1", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  rc = token_rows(db, st, cb, arg, &count);
  if (rc == 0 && count == 0)
    rc = -ENOENT;
out:
  db_stmt_done(st);
  return rc;
}

int db_tokens_list(struct db *db, int64_t after_id, int limit, db_token_cb *cb,
                   void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, count;

  rc =
      db_stmt_get(db, TOKEN_COLUMNS "WHERE id > ?1 ORDER BY id LIMIT ?2", &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, after_id);
  sqlite3_bind_int(st, 2, limit);
  rc = token_rows(db, st, cb, arg, &count);
out:
  db_stmt_done(st);
  return rc;
}

int db_token_revoke(struct db *db, int64_t id, int64_t at)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "UPDATE api_tokens SET revoked_at = ?2 "
                   "WHERE id = ?1 AND revoked_at IS NULL",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, at);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: token revoke: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  if (sqlite3_changes(db->h) == 0) {
    /* Either unknown or already revoked: tell which. */
    db_stmt_done(st);
    st = NULL;
    rc = db_token_get(db, id, NULL, NULL);
    if (rc == 0)
      rc = -EALREADY;
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_token_touch(struct db *db, int64_t id, int64_t at)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, at);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: token touch: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_tokens_count(struct db *db, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db, "SELECT count(*) FROM api_tokens", &st);
  if (rc < 0)
    goto out;
  src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    log_err("%s: token count: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  *n = sqlite3_column_int64(st, 0);
out:
  db_stmt_done(st);
  return rc;
}
