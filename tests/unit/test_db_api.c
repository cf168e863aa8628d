/*
 * The db queries behind the REST API's conventions: tokens (hashes only),
 * the audit log, the event store and its retention, idempotent replies,
 * the action savepoints (alone and inside an open transaction), and the
 * transaction latency histogram; registrations with their object lists,
 * as the registry stores them and the API reads them back; and timeline
 * rows waiting in the connection to go in together (db_timeline_add()).
 */
#include "db/db.h"

#include "common/common.h"
#include "tests/tap.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *path;

static struct db *open_fresh(void)
{
  char err[256] = "";
  struct db *db;

  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "open %s (%s)", path, err);
  return db;
}

struct tok {
  int n;
  int64_t id, revoked_at;
  char scope[16], name[32];
};

static void got_token(void *arg, const struct db_token *t)
{
  struct tok *k = arg;

  k->n++;
  k->id = t->id;
  k->revoked_at = t->revoked_at;
  snprintf(k->scope, sizeof(k->scope), "%s", t->scope);
  snprintf(k->name, sizeof(k->name), "%s", t->name);
}

static void test_tokens(struct db *db)
{
  uint8_t h1[DB_TOKEN_HASH_LEN], h2[DB_TOKEN_HASH_LEN];
  struct db_token t1 = {
      .name = "ci", .hash = h1, .scope = "operator", .created_at = 1000};
  struct db_token t2 = {
      .name = "ro", .hash = h2, .scope = "read", .created_at = 2000};
  struct tok k = {0};
  int64_t n = -1;

  crypto_sha256("token-1", 7, h1);
  crypto_sha256("token-2", 7, h2);
  is_int(db_tokens_count(db, &n), 0, "count tokens");
  is_int(n, 0, "no token at first");
  is_int(db_token_add(db, &t1), 0, "add a token");
  ok(t1.id > 0, "it gets an id");
  is_int(db_token_add(db, &t2), 0, "add another");
  is_int(db_token_add(db, &t1), -EEXIST, "the same hash twice: -EEXIST");
  is_int(db_token_by_hash(db, h2, got_token, &k), 0, "find by hash");
  ok(k.n == 1 && k.id == t2.id && strcmp(k.scope, "read") == 0,
     "the right token (%s, %s)", k.name, k.scope);
  is_int(db_token_revoke(db, t2.id, 3000), 0, "revoke it");
  is_int(db_token_revoke(db, t2.id, 4000), -EALREADY,
         "revoke again: -EALREADY");
  is_int(db_token_revoke(db, 999, 4000), -ENOENT, "revoke unknown: -ENOENT");
  memset(&k, 0, sizeof(k));
  db_token_by_hash(db, h2, got_token, &k);
  is_int(k.revoked_at, 3000, "a revoked token is still found, revoked");
  memset(&k, 0, sizeof(k));
  is_int(db_tokens_list(db, t1.id, 10, got_token, &k), 0, "list after id");
  ok(k.n == 1 && k.id == t2.id, "the page after the cursor");
  is_int(db_token_touch(db, t1.id, 5000), 0, "touch");
  is_int(db_token_get(db, 12345, got_token, &k), -ENOENT,
         "get unknown: -ENOENT");
}

struct audit_seen {
  int n;
  int64_t first_id, last_id;
  char actions[256];
};

static void got_audit(void *arg, const struct db_audit *a)
{
  struct audit_seen *s = arg;
  size_t off = strlen(s->actions);

  if (s->n++ == 0)
    s->first_id = a->id;
  s->last_id = a->id;
  snprintf(s->actions + off, sizeof(s->actions) - off, "%s%s", off ? "," : "",
           a->action);
}

static void test_audit(struct db *db)
{
  const char *actions[] = {"token.create", "credential.create",
                           "credential.delete", "token.revoke"};
  struct audit_seen s = {0};

  for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
    struct db_audit a = {.at = 1000 + (int64_t)i,
                         .token_id = 1,
                         .token_name = "ci",
                         .action = actions[i],
                         .target = "/api/v1/x",
                         .remote = "127.0.0.1:1",
                         .details = "{\"k\":1}"};

    is_int(db_audit_add(db, &a), 0, "audit %s", actions[i]);
  }
  is_int(db_audit_list(db, 0, NULL, 2, got_audit, &s), 0, "list the newest");
  is_str(s.actions, "token.revoke,credential.delete", "newest first");
  memset(&s, 0, sizeof(s));
  db_audit_list(db, 3, NULL, 10, got_audit, &s);
  is_str(s.actions, "credential.create,token.create",
         "the cursor continues below it");
  memset(&s, 0, sizeof(s));
  db_audit_list(db, 0, "credential.create", 10, got_audit, &s);
  is_str(s.actions, "credential.create", "filtered by action");
  {
    struct db_audit bad = {.at = 1, .action = "x", .details = "{not json"};

    ok(db_audit_add(db, &bad) < 0, "details must be JSON");
  }
}

struct ev_seen {
  int n;
  int64_t ids[16];
};

static void got_event(void *arg, const struct db_event *e)
{
  struct ev_seen *s = arg;

  if (s->n < 16)
    s->ids[s->n] = e->id;
  s->n++;
}

static void test_events(struct db *db)
{
  struct ev_seen s = {0};
  uint64_t before = db_timeline_changes(db);
  int64_t last = -1, n = -1;

  is_int(db_events_last_id(db, &last), 0, "last event id");
  is_int(last, 0, "none yet");
  for (int i = 0; i < 5; i++)
    db_timeline_add(db, 1000 * (i + 1), "registered", 0, "dev", 0, 0,
                    "{\"i\":1}");
  ok(db_timeline_changes(db) == before + 5, "the change counter moved by 5");
  db_events_last_id(db, &last);
  is_int(last, 5, "the newest id is 5");
  is_int(db_events_list(db, 1, 4, 10, got_event, &s), 0, "list (1, 4]");
  ok(s.n == 3 && s.ids[0] == 2 && s.ids[2] == 4, "ids 2, 3, 4 in order");
  memset(&s, 0, sizeof(s));
  db_events_list(db, 0, INT64_MAX, 2, got_event, &s);
  is_int(s.n, 2, "the limit holds");
  is_int(db_events_purge(db, 3500, 2, &n), 0, "purge older than 3.5 s");
  is_int(n, 2, "in batches of the limit");
  db_events_purge(db, 3500, 2, &n);
  is_int(n, 1, "then the rest");
  memset(&s, 0, sizeof(s));
  db_events_list(db, 0, INT64_MAX, 10, got_event, &s);
  ok(s.n == 2 && s.ids[0] == 4, "events 4 and 5 are kept");
  db_timeline_add(db, 9000, "updated", 0, "dev", 0, 0, NULL);
  db_events_last_id(db, &last);
  is_int(last, 6, "ids are never reused after a purge");
}

struct idem_seen {
  int status;
  size_t len;
  char body[64];
};

static void got_idem(void *arg, const struct db_idem *r)
{
  struct idem_seen *s = arg;

  s->status = r->status;
  s->len = r->response_len;
  memcpy(s->body, r->response, r->response_len < 63 ? r->response_len : 63);
}

static void test_idempotency(struct db *db)
{
  uint8_t hash[32] = {1}, nonce[12] = {2};
  struct db_idem r = {.token_id = 1,
                      .key = "k-1",
                      .request = "POST /api/v1/tokens",
                      .request_hash = hash,
                      .status = 201,
                      .nonce = nonce,
                      .nonce_len = sizeof(nonce),
                      .response = (const uint8_t *)"sealed",
                      .response_len = 6,
                      .created_at = 10000};
  struct idem_seen s = {0};
  int64_t n = -1;

  is_int(db_idem_put(db, &r), 0, "keep a reply");
  is_int(db_idem_get(db, 1, "k-1", "POST /api/v1/tokens", 5000, got_idem, &s),
         0, "find it");
  ok(s.status == 201 && s.len == 6 && memcmp(s.body, "sealed", 6) == 0,
     "status and body as stored");
  is_int(db_idem_get(db, 1, "k-1", "POST /api/v1/credentials", 5000, got_idem,
                     &s),
         -ENOENT, "a key is per request");
  is_int(db_idem_get(db, 2, "k-1", "POST /api/v1/tokens", 5000, got_idem, &s),
         -ENOENT, "and per token");
  is_int(db_idem_get(db, 1, "k-1", "POST /api/v1/tokens", 20000, got_idem, &s),
         -ENOENT, "an expired reply is not found");
  r.created_at = 30000;
  r.status = 400;
  is_int(db_idem_put(db, &r), 0, "an expired key is stored again");
  is_int(db_idem_purge(db, 20000, &n), 0, "purge");
  is_int(n, 0, "the fresh reply stays");
  is_int(db_idem_purge(db, 40000, &n), 0, "purge later");
  is_int(n, 1, "then goes");
}

static void test_actions(struct db *db)
{
  uint8_t h[DB_TOKEN_HASH_LEN];
  struct db_token t = {.name = "tx", .hash = h, .scope = "admin"};
  struct tok k = {0};
  const struct latency_hist *lat = db_txn_latency(db);
  uint64_t before = lat->count;

  crypto_sha256("token-tx", 8, h);
  is_int(db_action_begin(db), 0, "an action alone");
  ok(db_in_transaction(db), "opens a transaction");
  db_token_add(db, &t);
  is_int(db_action_end(db, false), 0, "rolled back");
  ok(!db_in_transaction(db), "and closed");
  ok(lat->count == before + 1, "an action on its own is timed");
  is_int(db_token_by_hash(db, h, got_token, &k), -ENOENT, "nothing was kept");

  is_int(db_begin(db), 0, "inside a transaction");
  is_int(db_action_begin(db), 0, "an action nests");
  db_token_add(db, &t);
  is_int(db_action_end(db, true), 0, "released");
  ok(db_in_transaction(db), "the outer transaction stays open");
  is_int(db_commit(db), 0, "the outer commits");
  is_int(db_token_by_hash(db, h, got_token, &k), 0, "the token is kept");
  ok(lat->count == before + 2,
     "the outer transaction is timed, the nested action not again");
}

struct objs_seen {
  int n;
  char text[256];
};

static void got_object(void *arg, const struct db_object_link *l)
{
  struct objs_seen *s = arg;
  size_t len = strlen(s->text);

  s->n++;
  snprintf(s->text + len, sizeof(s->text) - len, "%s%u/%d%s%s", len ? " " : "",
           (unsigned)l->oid, (int)l->iid, l->version ? "@" : "",
           l->version ? l->version : "");
}

static void got_device(void *arg, const struct db_device *d)
{
  struct objs_seen *s = arg;
  size_t len = strlen(s->text);

  s->n++;
  snprintf(s->text + len, sizeof(s->text) - len, "%s%s", len ? " " : "",
           d->endpoint);
}

static void got_registration(void *arg, const struct db_registration *r,
                             const struct db_object_link *links, size_t n)
{
  struct objs_seen *s = arg;

  for (size_t i = 0; i < n; i++)
    got_object(s, &links[i]);
}

static void test_registrations(struct db *db)
{
  /* Out of order, /3/0 twice (the last wins), an object without
   * instances, and a version that needs escaping in JSON. */
  const struct db_object_link links[] = {
      {.oid = 33629, .iid = 1, .version = "1.0"},
      {.oid = 3, .iid = 0},
      {.oid = 5, .iid = -1, .version = "q\"\\t"},
      {.oid = 3, .iid = 0, .version = "1.1"},
      {.oid = 1, .iid = 0},
  };
  const struct db_object_link other[] = {{.oid = 1, .iid = 0}};
  struct db_registration r = {
      .endpoint = "ep-a",
      .location = "loca",
      .lwm2m_version = "1.1",
      .binding = "U",
      .peer = "127.0.0.1:5683",
      .security = "nosec",
      .lifetime = 60,
      .registered_at = 1000,
      .updated_at = 1000,
      .expires_at = 61000,
  };
  struct objs_seen s = {0};
  int64_t id, id2;

  is_int(db_registration_save(db, &r, links, ARRAY_SIZE(links)), 0,
         "a new device registers");
  id = r.device_id;
  ok(id > 0, "it has an id");
  is_int(db_device_objects(db, id, got_object, &s), 0, "its objects");
  is_str(s.text, "1/0 3/0@1.1 5/-1@q\"\\t 33629/1@1.0",
         "in order, each once, the last given wins");
  r.device_id = 0;
  r.location = "locb";
  r.registered_at = 2000;
  is_int(db_registration_save(db, &r, other, ARRAY_SIZE(other)), 0,
         "it registers again, by endpoint");
  is_int(r.device_id, id, "the same device");
  memset(&s, 0, sizeof(s));
  db_device_objects(db, id, got_object, &s);
  is_str(s.text, "1/0", "with its new objects");
  is_int(db_registration_save(db, &r, links, 2), 0,
         "and again, naming its id");
  is_int(r.device_id, id, "still the same device");
  r.device_id = 0;
  r.endpoint = "ep-b";
  r.location = "locc";
  is_int(db_registration_save(db, &r, other, ARRAY_SIZE(other)), 0,
         "a second device");
  id2 = r.device_id;
  ok(id2 > 0 && id2 != id, "with its own id");
  memset(&s, 0, sizeof(s));
  is_int(db_devices_list(db, "ep-", -1, 3, NULL, NULL, 10, got_device, &s), 0,
         "devices with object 3");
  is_str(s.text, "ep-a", "object 3: only the first");
  memset(&s, 0, sizeof(s));
  db_devices_list(db, "ep-", -1, 1, NULL, NULL, 10, got_device, &s);
  is_str(s.text, "ep-b", "object 1: only the second");
  is_int(db_objects_replace(db, id2, NULL, 0), 0, "an empty object list");
  memset(&s, 0, sizeof(s));
  db_device_objects(db, id2, got_object, &s);
  is_int(s.n, 0, "is empty");
  memset(&s, 0, sizeof(s));
  is_int(db_registrations_load(db, got_registration, &s), 0,
         "registrations reload");
  is_str(s.text, "3/0 33629/1@1.0", "with their objects");
  is_int(db_registration_delete(db, id), 0, "a registration goes");
  memset(&s, 0, sizeof(s));
  db_device_objects(db, id, got_object, &s);
  is_str(s.text, "3/0 33629/1@1.0", "its device keeps its objects");
}

/* Timeline rows in the table, read past the connection's waiting rows. */
static int64_t rows_stored(struct db *db)
{
  sqlite3_stmt *st = NULL;
  int64_t n = -1;

  if (sqlite3_prepare_v2(db_handle(db), "SELECT count(*) FROM timeline_events",
                         -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

static void test_timeline_batches(struct db *db)
{
  struct ev_seen s = {0};
  int64_t base = rows_stored(db), last = 0, first;
  uint64_t changes = db_timeline_changes(db);

  db_events_last_id(db, &first);
  is_int(db_timeline_add(db, 1, "alone", 0, NULL, 0, 0, NULL), 0,
         "an event outside a transaction");
  ok(rows_stored(db) == base + 1, "is stored at once");

  db_begin(db);
  for (int i = 0; i < 3; i++)
    db_timeline_add(db, 2, "waiting", 0, NULL, 0, 0, "{}");
  ok(rows_stored(db) == base + 1, "three in a transaction wait");
  ok(db_timeline_changes(db) == changes + 1, "and are not counted yet");
  db_events_list(db, first + 1, INT64_MAX, 10, got_event, &s);
  is_int(s.n, 3, "a reader of the timeline sees them");
  ok(rows_stored(db) == base + 4, "because they went in before it read");
  for (int i = 0; i < 20; i++)
    db_timeline_add(db, 3, "batch", 0, "dev", 0, 0, "{\"n\":1}");
  ok(rows_stored(db) == base + 4 + 16, "sixteen go in together");
  is_int(db_commit(db), 0, "commit");
  ok(rows_stored(db) == base + 24, "the other four before the commit");
  ok(db_timeline_changes(db) == changes + 24, "all counted");
  db_events_last_id(db, &last);
  is_int(last, first + 24, "ids follow the order of the calls");

  db_begin(db);
  db_timeline_add(db, 4, "kept", 0, NULL, 0, 0, NULL);
  db_action_begin(db);
  db_timeline_add(db, 4, "undone", 0, NULL, 0, 0, NULL);
  db_action_end(db, false);
  db_timeline_add(db, 4, "kept", 0, NULL, 0, 0, NULL);
  db_commit(db);
  memset(&s, 0, sizeof(s));
  db_events_list(db, last, INT64_MAX, 10, got_event, &s);
  is_int(s.n, 2, "a rolled-back action takes its waiting events along");
  ok(rows_stored(db) == base + 26, "and only those");

  db_begin(db);
  db_timeline_add(db, 5, "gone", 0, NULL, 0, 0, NULL);
  is_int(db_rollback(db), 0, "rollback");
  ok(rows_stored(db) == base + 26, "a rolled-back transaction keeps none");

  db_begin(db);
  db_timeline_add(db, 6, "orphan", 0, NULL, 0, 0, NULL);
  /* As SQLite does by itself after some I/O errors. */
  sqlite3_exec(db_handle(db), "ROLLBACK", NULL, NULL, NULL);
  db_rollback(db);
  is_int(db_timeline_add(db, 7, "after", 0, NULL, 0, 0, NULL), 0,
         "an event after SQLite rolled back by itself");
  ok(rows_stored(db) == base + 27,
     "is stored, without the orphan of the ended transaction");
}

int main(void)
{
  char tmpl[] = "/tmp/fotad-test-db-api.XXXXXX";
  struct db *db;

  if (!mkdtemp(tmpl)) {
    perror("mkdtemp");
    return 1;
  }
  path = xasprintf("%s/t.db", tmpl);
  db = open_fresh();
  if (!db)
    return tap_done();
  test_tokens(db);
  test_audit(db);
  test_events(db);
  test_idempotency(db);
  test_actions(db);
  test_registrations(db);
  test_timeline_batches(db);
  db_close(db);
  for (size_t i = 0; i < 3; i++) {
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char *f = xasprintf("%s%s", path, sfx[i]);

    unlink(f);
    free(f);
  }
  rmdir(tmpl);
  free(path);
  return tap_done();
}
