/*
 * Unit tests of the db module: opening and migrating (from nothing, from
 * every released schema, refusing newer ones without touching them), the
 * pragmas fotad relies on, the schema's foreign keys and checks, counts
 * and transactions. Everything runs in a temporary folder.
 */
#include "tests/tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/common.h"
#include "db/db.h"

static char tmpdir[PATH_MAX];

/* The tables migration 1 creates; later migrations only add to this. */
static const char *const tables[] = {
    "devices",         "device_tags",      "components", "packages",
    "rollouts",        "rollout_packages", "jobs",       "job_components",
    "timeline_events", "credentials",      "api_tokens",
};

static char *tmp_path(const char *name)
{
  return xasprintf("%s/%s", tmpdir, name);
}

/* Reads a whole file; returns a new buffer or NULL. */
static char *read_all(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0;

  *len = 0;
  if (!f)
    return NULL;
  for (;;) {
    size_t got;

    if (n == cap) {
      cap = cap ? cap * 2 : 4096;
      buf = xrealloc(buf, cap);
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  *len = n;
  return buf;
}

static bool same_file(const char *path, const char *before, size_t len)
{
  size_t len2;
  char *after = read_all(path, &len2);
  bool same = after && len2 == len && memcmp(after, before, len) == 0;

  free(after);
  return same;
}

/*
 * Runs SQL on a database file through the raw SQLite API, outside db/.
 * With keep_wal, closing does not checkpoint a WAL database, so that what
 * the SQL wrote stays in the -wal file, as after a crash.
 */
static int raw_exec(const char *path, const char *sql, bool keep_wal)
{
  sqlite3 *h = NULL;
  int src;

  src = sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL);
  if (src == SQLITE_OK && keep_wal)
    src = sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  if (src == SQLITE_OK)
    src = sqlite3_exec(h, sql, NULL, NULL, NULL);
  if (src != SQLITE_OK)
    printf("# raw_exec: %s\n", h ? sqlite3_errmsg(h) : sqlite3_errstr(src));
  if (sqlite3_close(h) != SQLITE_OK && src == SQLITE_OK)
    src = SQLITE_ERROR;
  return src;
}

/* The first column of the first row of a query, as an integer; -999 on
 * error or no row. */
static int64_t raw_int(sqlite3 *h, const char *sql)
{
  sqlite3_stmt *st = NULL;
  int64_t v = -999;

  if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
    printf("# %s: %s\n", sql, sqlite3_errmsg(h));
    return v;
  }
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int64_t q_int(struct db *db, const char *sql)
{
  return raw_int(db_handle(db), sql);
}

/* Same, on a file opened read-only through the raw API. */
static int64_t file_int(const char *path, const char *sql)
{
  sqlite3 *h = NULL;
  int64_t v = -999;

  if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
    v = raw_int(h, sql);
  sqlite3_close(h);
  return v;
}

static char *q_text(struct db *db, const char *sql)
{
  sqlite3_stmt *st = NULL;
  char *s = NULL;

  if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
    return NULL;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    s = xstrdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return s;
}

/* Runs SQL on an open db; returns the extended SQLite result code. */
static int exec(struct db *db, const char *sql)
{
  int src = sqlite3_exec(db_handle(db), sql, NULL, NULL, NULL);

  if (src != SQLITE_OK)
    printf("# %s: %s\n", sql, sqlite3_errmsg(db_handle(db)));
  return src == SQLITE_OK ? src : sqlite3_extended_errcode(db_handle(db));
}

static int count_tables(struct db *db)
{
  int n = 0;
  size_t i;

  for (i = 0; i < ARRAY_SIZE(tables); i++) {
    char *sql = xasprintf("SELECT count(*) FROM sqlite_schema "
                          "WHERE type = 'table' AND name = '%s'",
                          tables[i]);

    if (q_int(db, sql) == 1)
      n++;
    else
      printf("# table %s missing\n", tables[i]);
    free(sql);
  }
  return n;
}

static int64_t count_devices(struct db *db)
{
  int64_t n = -1;

  if (db_count_devices(db, &n) < 0)
    return -1;
  return n;
}

static void test_fresh(void)
{
  char *path = tmp_path("fresh.db");
  char err[256] = "";
  char *mode;
  struct db *db;
  unsigned char hdr[20];
  int64_t n = -1;
  FILE *f;

  ok(access(path, F_OK) != 0, "fresh: no file before");
  ok(db_schema_latest() >= 1, "schema latest is at least 1");
  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "fresh: opens (%s)", err);
  if (!db)
    goto out;
  ok(access(path, F_OK) == 0, "fresh: file created");
  is_str(db_path(db), path, "fresh: db_path");
  is_int(db_schema_version(db), db_schema_latest(),
         "fresh: migrated to latest");
  is_int(q_int(db, "PRAGMA user_version"), db_schema_latest(),
         "fresh: user_version on disk");
  is_int(count_tables(db), ARRAY_SIZE(tables), "fresh: every table exists");
  is_int(q_int(db, "SELECT count(*) FROM pragma_table_list "
                   "WHERE schema = 'main' AND name NOT LIKE 'sqlite_%' "
                   "AND strict = 0"),
         0, "fresh: every table is STRICT");
  is_int(q_int(db, "PRAGMA foreign_keys"), 1, "fresh: foreign keys on");
  mode = q_text(db, "PRAGMA journal_mode");
  is_str(mode, "wal", "fresh: WAL mode");
  free(mode);
  is_int(q_int(db, "PRAGMA synchronous"), 1, "fresh: synchronous NORMAL");
  is_int(db_check(db, err, sizeof(err)), 0, "fresh: db_check ok (%s)", err);
  is_int(db_count_devices(db, &n), 0, "fresh: count devices");
  is_int(n, 0, "fresh: no devices");
  n = -1;
  is_int(db_count_rollouts(db, &n), 0, "fresh: count rollouts");
  is_int(n, 0, "fresh: no rollouts");
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) "
                  "VALUES ('keep-me', 1)"),
         SQLITE_OK, "fresh: insert a device");
  db_close(db);

  /* Bytes 18 and 19 of the header are 2 for a WAL database. */
  memset(hdr, 0, sizeof(hdr));
  f = fopen(path, "rb");
  ok(f && fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr), "header readable");
  if (f)
    fclose(f);
  ok(hdr[18] == 2 && hdr[19] == 2, "WAL mode is persistent in the file");

  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "reopen: opens (%s)", err);
  if (!db)
    goto out;
  is_int(db_schema_version(db), db_schema_latest(), "reopen: still latest");
  is_int(count_devices(db), 1, "reopen: data kept");
  is_int(db_check(db, err, sizeof(err)), 0, "reopen: db_check ok");
  db_close(db);
out:
  free(path);
}

static void test_counts_and_transactions(void)
{
  char *path = tmp_path("tx.db");
  char err[256] = "";
  struct db *db;
  int64_t n = -1;

  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "tx: opens (%s)", err);
  if (!db)
    goto out;
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) VALUES "
                  "('a', 1), ('b', 1), ('c', 1);"
                  "INSERT INTO rollouts(name, state, spec, created_at, "
                  "updated_at) VALUES ('r1', 'draft', '{}', 1, 1), "
                  "('r2', 'draft', '{}', 1, 1)"),
         SQLITE_OK, "tx: insert 3 devices, 2 rollouts");
  is_int(db_count_devices(db, &n), 0, "count devices");
  is_int(n, 3, "3 devices");
  is_int(db_count_rollouts(db, &n), 0, "count rollouts");
  is_int(n, 2, "2 rollouts");

  is_int(db_begin(db), 0, "begin");
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) "
                  "VALUES ('d', 1)"),
         SQLITE_OK, "insert inside a transaction");
  is_int(count_devices(db), 4, "the transaction sees its insert");
  is_int(db_rollback(db), 0, "rollback");
  is_int(count_devices(db), 3, "rollback discarded the insert");

  is_int(db_begin(db), 0, "begin again (statement reused)");
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) "
                  "VALUES ('d', 1)"),
         SQLITE_OK, "insert inside a transaction");
  is_int(db_commit(db), 0, "commit");
  is_int(count_devices(db), 4, "commit kept the insert");
  is_int(db_rollback(db), 0, "rollback without a transaction is a no-op");
  is_int(count_devices(db), 4, "... and changes nothing");

  is_int(db_begin(db), 0, "begin");
  ok(db_begin(db) < 0, "nested begin fails");
  is_int(db_rollback(db), 0, "rollback after the failed begin");
  ok(sqlite3_get_autocommit(db_handle(db)) != 0, "no transaction left open");
  db_close(db);

  /* A second connection sees only committed data, 4 devices. */
  is_int(file_int(path, "SELECT count(*) FROM devices"), 4,
         "committed data is on disk");
out:
  free(path);
}

static void test_schema_rules(void)
{
  char *path = tmp_path("rules.db");
  char err[256] = "";
  struct db *db;

  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "rules: opens (%s)", err);
  if (!db)
    goto out;

  is_int(
      exec(db,
           "INSERT INTO devices(id, endpoint, created_at, objects, "
           "location, lwm2m_version, lifetime, binding, queue_mode, "
           "peer_addr, security, registered_at, updated_at, expires_at) "
           "VALUES (1, 'dev1', 1, '[[5,null],[33629,0,\"1.0\"]]', 'r1', "
           "'1.1', 60, 'U', 0, '127.0.0.1:5683', 'psk', 1, 1, 61),"
           "(2, 'dev2', 1, '[]', 'r2', '1.1', 60, 'U', 0, "
           "'127.0.0.1:5684', 'nosec', 1, 1, 61);"
           "INSERT INTO device_tags VALUES (1, 'eu'), (2, 'eu');"
           "INSERT INTO components(id, device_id, object_id, "
           "instance_id, name, protocols, updated_at) VALUES "
           "(10, 1, 33629, 0, 'app', '[0,1]', 1);"
           "INSERT INTO packages(id, component, version, sha256, size, "
           "file, download_token, created_at) VALUES (20, 'app', '2.0', "
           "'" /* sha256 of "" */
           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
           "', 0, 'p/20', 'tok20', 1);"
           "INSERT INTO rollouts(id, state, spec, created_at, "
           "updated_at) VALUES (30, 'running', '{\"stages\":[1]}', 1, 1);"
           "INSERT INTO rollout_packages VALUES (30, 20);"
           "INSERT INTO jobs(id, rollout_id, device_id, state, "
           "created_at, updated_at) VALUES (40, 30, 1, 'queued', 1, 1);"
           "INSERT INTO job_components(job_id, component_id, package_id, "
           "position, object_id, instance_id, state) "
           "VALUES (40, 10, 20, 0, 33629, 0, 'downloading');"
           "INSERT INTO timeline_events(at, type, device_id, endpoint, "
           "job_id, rollout_id) VALUES (1, 'job-state', 1, 'dev1', 40, "
           "30);"),
      SQLITE_OK, "rules: insert a device with everything it owns");

  /* Cascades. */
  is_int(exec(db, "DELETE FROM devices WHERE id = 1"), SQLITE_OK,
         "delete device 1");
  is_int(q_int(db, "SELECT count(*) FROM devices WHERE location IS NOT NULL"),
         1, "the other device's registration stays");
  is_int(q_int(db, "SELECT count(*) FROM device_tags WHERE device_id = 1"), 0,
         "its tags are gone");
  is_int(q_int(db, "SELECT count(*) FROM components"), 0,
         "its components are gone");
  is_int(q_int(db, "SELECT count(*) FROM jobs"), 0, "its jobs are gone");
  is_int(q_int(db, "SELECT count(*) FROM job_components"), 0,
         "its job components are gone");
  is_int(q_int(db, "SELECT count(*) FROM timeline_events WHERE "
                   "device_id IS NULL AND job_id IS NULL AND "
                   "rollout_id = 30 AND endpoint = 'dev1'"),
         1, "its timeline event stays, unlinked");

  /* A package's place in a rollout goes with it (the repository refuses
   * to delete one that a live rollout uses); the rollout stays. */
  is_int(exec(db, "DELETE FROM packages WHERE id = 20"), SQLITE_OK,
         "a package can be deleted under a rollout");
  is_int(q_int(db, "SELECT count(*) FROM rollout_packages"), 0,
         "its row in the rollout's package list is gone");
  is_int(q_int(db, "SELECT count(*) FROM rollouts WHERE id = 30"), 1,
         "the rollout stays");
  is_int(exec(db, "DELETE FROM rollouts WHERE id = 30"), SQLITE_OK,
         "delete the rollout");
  is_int(q_int(db, "SELECT count(*) FROM timeline_events WHERE "
                   "rollout_id IS NULL"),
         1, "the timeline event survives the rollout");

  /* Checks and types. */
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) "
                  "VALUES ('x', 'yesterday')"),
         SQLITE_CONSTRAINT_DATATYPE, "STRICT: a text timestamp is refused");
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at) "
                  "VALUES ('dev2', 1)"),
         SQLITE_CONSTRAINT_UNIQUE, "endpoints are unique");
  is_int(exec(db, "UPDATE devices SET security = 'tls' WHERE id = 2"),
         SQLITE_CONSTRAINT_CHECK, "unknown security mode refused");
  is_int(exec(db, "UPDATE devices SET security = 'x509' WHERE id = 2"),
         SQLITE_OK, "known security modes accepted");
  is_int(exec(db, "UPDATE devices SET peer_addr = NULL WHERE id = 2"),
         SQLITE_CONSTRAINT_CHECK, "a registration is whole");
  is_int(exec(db, "INSERT INTO devices(endpoint, created_at, location) "
                  "VALUES ('half', 1, 'r3')"),
         SQLITE_CONSTRAINT_CHECK, "... from the start");
  is_int(exec(db, "UPDATE devices SET objects = '[[1,0]'"),
         SQLITE_CONSTRAINT_CHECK, "a device's object list is JSON");
  is_int(exec(db, "UPDATE devices SET queue_mode = 2 WHERE id = 2"),
         SQLITE_CONSTRAINT_CHECK, "queue_mode is 0 or 1");
  is_int(exec(db, "INSERT INTO components(device_id, object_id, "
                  "instance_id, updated_at) VALUES (2, 3, 0, 1)"),
         SQLITE_CONSTRAINT_CHECK, "components are objects 5 or 33629 only");
  is_int(exec(db, "INSERT INTO components(device_id, object_id, "
                  "instance_id, updated_at) VALUES (2, 5, 1, 1)"),
         SQLITE_CONSTRAINT_CHECK, "object 5 has only instance 0");
  is_int(exec(db, "INSERT INTO packages(component, version, sha256, size, "
                  "file, download_token, created_at) VALUES ('a', '1', "
                  "'XYZ', 1, 'f', 't', 1)"),
         SQLITE_CONSTRAINT_CHECK, "sha256 must be 64 hex digits");
  is_int(exec(db, "INSERT INTO rollouts(state, spec, created_at, "
                  "updated_at) VALUES ('draft', '{nope', 1, 1)"),
         SQLITE_CONSTRAINT_CHECK, "rollout spec must be JSON");
  is_int(exec(db, "INSERT INTO credentials(endpoint, type, created_at) "
                  "VALUES ('dev2', 'psk', 1)"),
         SQLITE_CONSTRAINT_CHECK, "a PSK credential needs identity and key");
  is_int(exec(db, "INSERT INTO api_tokens(name, token_hash, scope, "
                  "created_at) VALUES ('t', x'00', 'root', 1)"),
         SQLITE_CONSTRAINT_CHECK, "unknown token scope refused");
  db_close(db);
out:
  free(path);
}

/*
 * A database written by a newer fotad must be refused, and left exactly
 * as it was, whatever its journal mode. With keep_wal the newer version
 * and data sit in the -wal file only, not checkpointed: a refusing fotad
 * must not checkpoint them into the main file when it closes.
 */
static void test_newer(const char *name, const char *journal, bool keep_wal)
{
  char *path = tmp_path(name);
  char *wal = xasprintf("%s-wal", path);
  char *sql, *before = NULL, *wal_before = NULL;
  char *want_v = NULL, *want_latest = NULL;
  char err[512] = "";
  int newer = db_schema_latest() + 5;
  struct db *db;
  size_t len = 0, wal_len = 0;

  sql = xasprintf("PRAGMA journal_mode = %s;"
                  "PRAGMA wal_autocheckpoint = 0;"
                  "CREATE TABLE devices (id INTEGER PRIMARY KEY, v TEXT);"
                  "INSERT INTO devices VALUES (1, 'from the future');"
                  "PRAGMA user_version = %d;",
                  journal, newer);
  is_int(raw_exec(path, sql, keep_wal), SQLITE_OK, "%s: fixture created",
         name);
  free(sql);
  before = read_all(path, &len);
  ok(before && len > 0, "%s: fixture read", name);
  if (keep_wal) {
    wal_before = read_all(wal, &wal_len);
    ok(wal_before && wal_len > 0, "%s: fixture has a -wal file", name);
  }
  is_int(file_int(path, "PRAGMA user_version"), newer,
         "%s: fixture has version %d", name, newer);

  db = db_open(path, 1000, err, sizeof(err));
  ok(db == NULL, "%s: refused", name);
  db_close(db);
  printf("# %s\n", err);
  want_v = xasprintf("schema version %d", newer);
  want_latest = xasprintf("(%d)", db_schema_latest());
  ok(strstr(err, "newer") != NULL, "%s: error says newer", name);
  ok(strstr(err, want_v) != NULL, "%s: error names version %d", name, newer);
  ok(strstr(err, want_latest) != NULL, "%s: error names supported %d", name,
     db_schema_latest());
  ok(strstr(err, path) != NULL, "%s: error names the file", name);
  ok(before && same_file(path, before, len),
     "%s: file byte-for-byte unchanged", name);
  if (keep_wal)
    ok(wal_before && same_file(wal, wal_before, wal_len),
       "%s: -wal file byte-for-byte unchanged", name);
  free(want_v);
  free(want_latest);
  free(wal_before);
  free(before);
  free(wal);
  free(path);
}

static void test_schema0_empty_file(void)
{
  char *path = tmp_path("empty.db");
  char err[256] = "";
  struct db *db;
  struct stat sb;
  int fd;

  fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ok(fd >= 0 && close(fd) == 0, "empty: 0-byte file created");
  ok(stat(path, &sb) == 0 && sb.st_size == 0, "empty: is empty");
  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "empty: opens (%s)", err);
  if (db) {
    is_int(db_schema_version(db), db_schema_latest(),
           "empty: migrated to latest");
    is_int(count_tables(db), ARRAY_SIZE(tables), "empty: every table");
  }
  db_close(db);
  free(path);
}

static void test_schema0_sqlite(void)
{
  char *path = tmp_path("v0.db");
  char err[256] = "";
  struct db *db;
  struct stat sb;

  /* Creating and dropping a table leaves a valid, empty database file. */
  is_int(raw_exec(path, "CREATE TABLE t (x); DROP TABLE t;", false), SQLITE_OK,
         "v0: fixture created");
  ok(stat(path, &sb) == 0 && sb.st_size > 0, "v0: fixture is not empty");
  is_int(file_int(path, "PRAGMA user_version"), 0, "v0: version 0");
  is_int(file_int(path, "SELECT count(*) FROM sqlite_schema"), 0,
         "v0: no tables");
  db = db_open(path, 1000, err, sizeof(err));
  ok(db != NULL, "v0: opens (%s)", err);
  if (db) {
    is_int(db_schema_version(db), db_schema_latest(),
           "v0: migrated to latest");
    is_int(count_tables(db), ARRAY_SIZE(tables), "v0: every table");
  }
  db_close(db);
  free(path);
}

/* A migration that fails leaves the database as it was before it. */
static void test_failed_migration(void)
{
  char *path = tmp_path("clash.db");
  char err[512] = "";
  struct db *db;

  /* credentials comes late in migration 1: earlier tables get created. */
  is_int(raw_exec(path, "CREATE TABLE credentials (x);", false), SQLITE_OK,
         "clash: fixture created");
  db = db_open(path, 1000, err, sizeof(err));
  ok(db == NULL, "clash: migration failure refuses to open");
  db_close(db);
  printf("# %s\n", err);
  ok(strstr(err, "migration 1") != NULL, "clash: error names migration 1");
  ok(strstr(err, "already exists") != NULL,
     "clash: error carries SQLite's message");
  is_int(file_int(path, "PRAGMA user_version"), 0, "clash: still version 0");
  is_int(file_int(path, "SELECT count(*) FROM sqlite_schema "
                        "WHERE name = 'devices'"),
         0, "clash: migration rolled back");
  free(path);
}

static void test_not_a_database(void)
{
  char *path = tmp_path("junk.db");
  char err[512] = "";
  char junk[1024];
  struct db *db;
  size_t i;
  FILE *f;

  for (i = 0; i < sizeof(junk); i++)
    junk[i] = (char)('a' + i % 26);
  f = fopen(path, "wb");
  ok(f && fwrite(junk, 1, sizeof(junk), f) == sizeof(junk) && fclose(f) == 0,
     "junk: fixture written");
  db = db_open(path, 1000, err, sizeof(err));
  ok(db == NULL, "junk: refused");
  db_close(db);
  printf("# %s\n", err);
  ok(strstr(err, path) != NULL, "junk: error names the file");
  ok(same_file(path, junk, sizeof(junk)), "junk: file unchanged");
  free(path);
}

static void test_bad_path(void)
{
  char err[512] = "";
  char *path = tmp_path("no/such/dir/x.db");
  struct db *db = db_open(path, 1000, err, sizeof(err));

  ok(db == NULL, "missing folder: refused");
  db_close(db);
  printf("# %s\n", err);
  ok(strstr(err, path) != NULL, "missing folder: error names the file");
  free(path);
}

/* Other modules' tests may use a throw-away in-memory database. */
static void test_memory(void)
{
  char err[256] = "";
  struct db *db = db_open(":memory:", 0, err, sizeof(err));

  ok(db != NULL, "memory: opens (%s)", err);
  if (db)
    is_int(db_schema_version(db), db_schema_latest(),
           "memory: migrated to latest");
  db_close(db);
}

static void rm_tmpdir(void)
{
  DIR *d = opendir(tmpdir);
  struct dirent *e;

  if (!d)
    return;
  for (e = readdir(d); e; e = readdir(d)) {
    char *p;

    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    p = tmp_path(e->d_name);
    if (unlink(p) < 0)
      printf("# unlink %s: %s\n", p, strerror(errno));
    free(p);
  }
  closedir(d);
  if (rmdir(tmpdir) < 0)
    printf("# rmdir %s: %s\n", tmpdir, strerror(errno));
}

int main(void)
{
  const char *base = getenv("TMPDIR");

  if (!base || !base[0])
    base = "/tmp";
  snprintf(tmpdir, sizeof(tmpdir), "%s/test_db.XXXXXX", base);
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp %s: %s\n", tmpdir, strerror(errno));
    return 1;
  }
  /* Migration and error logs go to stderr; keep TAP output readable. */
  log_set_level(LL_WARN);

  db_close(NULL);
  ok(1, "db_close(NULL) is a no-op");
  test_fresh();
  test_counts_and_transactions();
  test_schema_rules();
  test_newer("newer-delete.db", "DELETE", false);
  test_newer("newer-wal.db", "WAL", false);
  test_newer("newer-wal-pending.db", "WAL", true);
  test_schema0_empty_file();
  test_schema0_sqlite();
  test_failed_migration();
  test_not_a_database();
  test_bad_path();
  test_memory();

  rm_tmpdir();
  return tap_done();
}
