/* Replies kept for requests sent with an Idempotency-Key. */
#define LOG_TAG "db"
#include "db/db.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db_int.h"

int db_idem_get(struct db *db, int64_t token_id, const char *key,
                const char *request, int64_t since, db_idem_cb *cb, void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "SELECT request_hash, status, nonce, response, created_at "
                   "FROM idempotency_keys WHERE token_id = ?1 AND "
                   "idem_key = ?2 AND request = ?3 AND created_at >= ?4",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, token_id);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, request, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, since);
  src = sqlite3_step(st);
  if (src == SQLITE_DONE) {
    rc = -ENOENT;
    goto out;
  }
  if (src != SQLITE_ROW) {
    log_err("%s: idempotency lookup: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  {
    struct db_idem r = {
        .token_id = token_id,
        .key = key,
        .request = request,
        .request_hash = sqlite3_column_blob(st, 0),
        .status = sqlite3_column_int(st, 1),
        .nonce = sqlite3_column_blob(st, 2),
        .nonce_len = (size_t)sqlite3_column_bytes(st, 2),
        .response = sqlite3_column_blob(st, 3),
        .response_len = (size_t)sqlite3_column_bytes(st, 3),
        .created_at = sqlite3_column_int64(st, 4),
    };

    if (sqlite3_column_bytes(st, 0) != 32) {
      log_err("%s: idempotency row with a bad request hash", db_path(db));
      rc = -EIO;
      goto out;
    }
    cb(arg, &r);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_idem_put(struct db *db, const struct db_idem *r)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  rc = db_stmt_get(db,
                   "INSERT OR REPLACE INTO idempotency_keys (token_id, "
                   "idem_key, request, request_hash, status, nonce, "
                   "response, created_at) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, r->token_id);
  sqlite3_bind_text(st, 2, r->key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, r->request, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, r->request_hash, 32, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, r->status);
  sqlite3_bind_blob(st, 6, r->nonce, (int)r->nonce_len, SQLITE_STATIC);
  sqlite3_bind_blob(st, 7, r->response, (int)r->response_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, r->created_at);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: idempotency insert: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
  }
out:
  db_stmt_done(st);
  return rc;
}

int db_idem_purge(struct db *db, int64_t before, int64_t *n)
{
  sqlite3_stmt *st = NULL;
  int rc, src;

  *n = 0;
  rc = db_stmt_get(db, "DELETE FROM idempotency_keys WHERE created_at < ?1",
                   &st);
  if (rc < 0)
    goto out;
  sqlite3_bind_int64(st, 1, before);
  src = sqlite3_step(st);
  if (src != SQLITE_DONE) {
    log_err("%s: idempotency purge: %s", db_path(db), sqlite3_errmsg(db->h));
    rc = db_errno(src);
    goto out;
  }
  *n = sqlite3_changes(db->h);
out:
  db_stmt_done(st);
  return rc;
}
