/*
 * The package repository: uploads streamed to a temporary file while
 * SHA-256 and the MCUboot verifier see every byte, then fsync'd and renamed
 * to a content-addressed path; one row per (component, version) in the
 * database, in one unit with its audit row. Download progress is counted
 * here too, in memory, for the job engine and the API.
 */
#include "orchestrator/orch_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_TAG "pkg"

#define NAME_MAX_LEN 64
#define TOKEN_BYTES 16
/* Requesters whose progress is remembered; the oldest make room. */
#define MAX_DOWNLOADS 65536

struct orch_upload {
  struct orch *orch;
  int fd;
  char *tmp_path; /* NULL once stored or deleted */
  int64_t size;
  bool failed; /* a write failed: the file is incomplete */
  mbedtls_sha256_context sha;
  struct orch_mcuboot *mcuboot;
};

/* One requester's progress on one package. */
struct dl_entry {
  struct hmap_node node;
  char *token;
  char *requester;
  struct orch_download d;
};

struct dl_total {
  struct hmap_node node;
  char *token;
  struct orch_download_totals t;
};

bool orch_pkg_name_valid(const char *s)
{
  size_t n = strlen(s);

  if (n == 0 || n > NAME_MAX_LEN)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];

    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
          c == '+' || c == '~'))
      return false;
  }
  return true;
}

int64_t orch_pkg_max_size(const struct orch *orch)
{
  return orch->cfg.package_max_size;
}

static bool is_sha256_name(const char *s)
{
  size_t n = strlen(s);

  if (n != 64)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return true;
}

/* Syncs a folder, so that a rename or unlink in it is durable. */
static int sync_dir(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = 0;

  if (fd < 0)
    return -errno;
  if (fsync(fd) < 0)
    rc = -errno;
  close(fd);
  return rc;
}

/*
 * Start-up housekeeping: temporary files of uploads a previous run did not
 * finish are deleted, and so are stored files no row refers to (a crash
 * between the rename and the commit leaves one).
 */
static void sweep(struct orch *orch)
{
  DIR *d = opendir(orch->tmp_dir);
  struct dirent *e;

  while (d && (e = readdir(d)) != NULL) {
    char *path;

    if (e->d_name[0] == '.')
      continue;
    path = xasprintf("%s/%s", orch->tmp_dir, e->d_name);
    if (unlink(path) == 0)
      log_info("deleted %s, left by an unfinished upload", path);
    free(path);
  }
  if (d)
    closedir(d);
  d = opendir(orch->pkg_dir);
  while (d && (e = readdir(d)) != NULL) {
    int64_t n = 0;
    char *path;

    if (!is_sha256_name(e->d_name) ||
        db_packages_count_sha256(orch->db, e->d_name, &n) < 0 || n > 0)
      continue;
    path = xasprintf("%s/%s", orch->pkg_dir, e->d_name);
    if (unlink(path) == 0)
      log_info("deleted %s, which no package refers to", path);
    free(path);
  }
  if (d)
    closedir(d);
}

int orch_packages_init(struct orch *orch, char *err, size_t errlen)
{
  int rc;

  hmap_init(&orch->downloads);
  hmap_init(&orch->download_totals);
  if (!orch->cfg.state_dir)
    return 0;
  orch->pkg_dir = xasprintf("%s/packages", orch->cfg.state_dir);
  orch->tmp_dir = xasprintf("%s/packages/tmp", orch->cfg.state_dir);
  rc = mkdir_p(orch->tmp_dir, 0700);
  if (rc < 0) {
    snprintf(err, errlen, "cannot create %s: %s", orch->tmp_dir,
             strerror(-rc));
    return rc;
  }
  orch->keys = orch_mcuboot_keys_load(orch->cfg.mcuboot_keys_dir, err, errlen);
  if (!orch->keys)
    return -EINVAL;
  if (orch_mcuboot_keys_count(orch->keys) > 0)
    log_info("%zu MCUboot signing key(s) trusted, from %s",
             orch_mcuboot_keys_count(orch->keys), orch->cfg.mcuboot_keys_dir);
  /* The config strings are the caller's: keep none of them. */
  orch->cfg.state_dir = NULL;
  orch->cfg.mcuboot_keys_dir = NULL;
  sweep(orch);
  return 0;
}

void orch_packages_free(struct orch *orch)
{
  for (size_t i = 0; i < orch->downloads.nbuckets; i++) {
    struct hmap_node *n = orch->downloads.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct dl_entry *e = container_of(n, struct dl_entry, node);

      free(e->token);
      free(e->requester);
      free(e);
      n = next;
    }
  }
  for (size_t i = 0; i < orch->download_totals.nbuckets; i++) {
    struct hmap_node *n = orch->download_totals.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct dl_total *t = container_of(n, struct dl_total, node);

      free(t->token);
      free(t);
      n = next;
    }
  }
  hmap_destroy(&orch->downloads);
  hmap_destroy(&orch->download_totals);
  orch_mcuboot_keys_free(orch->keys);
  free(orch->pkg_dir);
  free(orch->tmp_dir);
}

/* Uploads. */

struct orch_upload *orch_upload_new(struct orch *orch, char *err,
                                    size_t errlen)
{
  struct orch_upload *up;

  if (!orch->tmp_dir) {
    snprintf(err, errlen, "the package repository is off");
    return NULL;
  }
  up = xcalloc(1, sizeof(*up));
  up->orch = orch;
  up->tmp_path = xasprintf("%s/upload-XXXXXX", orch->tmp_dir);
  up->fd = mkostemp(up->tmp_path, O_CLOEXEC);
  if (up->fd < 0) {
    snprintf(err, errlen, "cannot create a file in %s: %s", orch->tmp_dir,
             strerror(errno));
    log_err("%s", err);
    free(up->tmp_path);
    free(up);
    return NULL;
  }
  mbedtls_sha256_init(&up->sha);
  up->failed = mbedtls_sha256_starts_ret(&up->sha, 0) != 0;
  up->mcuboot = orch_mcuboot_new();
  return up;
}

int orch_upload_write(struct orch_upload *up, const void *data, size_t len,
                      char *err, size_t errlen)
{
  const char *p = data;
  int64_t max = up->orch->cfg.package_max_size;

  if (up->failed) {
    snprintf(err, errlen, "the upload failed earlier");
    return -EIO;
  }
  if ((uint64_t)up->size + len > (uint64_t)max) {
    snprintf(err, errlen,
             "the package exceeds the limit of %lld bytes (package_max_size)",
             (long long)max);
    up->failed = true;
    return -EFBIG;
  }
  if (mbedtls_sha256_update_ret(&up->sha, data, len) != 0) {
    snprintf(err, errlen, "cannot hash the upload");
    up->failed = true;
    return -EIO;
  }
  orch_mcuboot_update(up->mcuboot, data, len);
  up->size += (int64_t)len;
  while (len > 0) {
    ssize_t n = write(up->fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;

      snprintf(err, errlen, "cannot write %s: %s", up->tmp_path, strerror(e));
      log_err("%s", err);
      up->failed = true;
      return e == ENOSPC ? -ENOSPC : -EIO;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int64_t orch_upload_size(const struct orch_upload *up)
{
  return up->size;
}

void orch_upload_free(struct orch_upload *up)
{
  if (!up)
    return;
  if (up->fd >= 0)
    close(up->fd);
  if (up->tmp_path) {
    unlink(up->tmp_path);
    free(up->tmp_path);
  }
  mbedtls_sha256_free(&up->sha);
  orch_mcuboot_free(up->mcuboot);
  free(up);
}

/* A copy of the few columns the repository needs from a row. */
struct found {
  bool found;
  int64_t id;
  char sha256[65];
  char token[2 * TOKEN_BYTES + 1];
  char component[NAME_MAX_LEN + 1];
  char version[NAME_MAX_LEN + 1];
};

static void got_package(void *arg, const struct db_package *p)
{
  struct found *f = arg;

  f->found = true;
  f->id = p->id;
  snprintf(f->sha256, sizeof(f->sha256), "%s", p->sha256);
  snprintf(f->token, sizeof(f->token), "%s", p->download_token);
  snprintf(f->component, sizeof(f->component), "%s", p->component);
  snprintf(f->version, sizeof(f->version), "%s", p->version);
}

/* Where content with this hash is stored; a new string. */
static char *content_path(const struct orch *orch, const char *sha256)
{
  return xasprintf("%s/%s", orch->pkg_dir, sha256);
}

int orch_upload_finish(struct orch_upload *up, const struct orch_pkg_new *p,
                       int64_t *id, bool *created, char *err, size_t errlen)
{
  struct orch *orch = up->orch;
  struct orch_mcuboot_result mr;
  struct found f = {0};
  uint8_t sum[32], tok[TOKEN_BYTES];
  char sha[65], token[2 * TOKEN_BYTES + 1], file[80];
  char *final = NULL;
  struct db_package row = {0};
  int64_t sharing = 0;
  bool in_action = false, renamed = false;
  struct stat st;
  int rc;

  *id = 0;
  *created = false;
  if (up->failed || !up->tmp_path) {
    snprintf(err, errlen, "the upload failed");
    rc = -EIO;
    goto out;
  }
  if (up->size == 0) {
    snprintf(err, errlen, "the package is empty");
    rc = -ENODATA;
    goto out;
  }
  if (!orch_pkg_name_valid(p->component) || !orch_pkg_name_valid(p->version)) {
    snprintf(err, errlen, "invalid component or version");
    rc = -EINVAL;
    goto out;
  }
  if (fsync(up->fd) < 0) {
    snprintf(err, errlen, "cannot sync %s: %s", up->tmp_path, strerror(errno));
    log_err("%s", err);
    rc = -EIO;
    goto out;
  }
  if (mbedtls_sha256_finish_ret(&up->sha, sum) != 0) {
    snprintf(err, errlen, "cannot hash the upload");
    rc = -EIO;
    goto out;
  }
  hex_encode(sum, sizeof(sum), sha);
  orch_mcuboot_finish(up->mcuboot, orch->keys, &mr);

  rc = db_action_begin(orch->db);
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the package");
    goto out;
  }
  in_action = true;
  rc = db_package_by_version(orch->db, p->component, p->version, got_package,
                             &f);
  if (rc < 0 && rc != -ENOENT) {
    snprintf(err, errlen, "cannot look up the package");
    goto out;
  }
  if (f.found) {
    *id = f.id;
    if (strcmp(f.sha256, sha) == 0) {
      /* A retry, or the same image uploaded twice: nothing to store. */
      rc = 0;
    } else {
      snprintf(err, errlen,
               "%s %s exists with other content (package %lld, sha256 %s)",
               p->component, p->version, (long long)f.id, f.sha256);
      rc = -EEXIST;
    }
    goto out;
  }
  rc = crypto_random(tok, sizeof(tok));
  if (rc < 0) {
    snprintf(err, errlen, "no random source for the download token");
    goto out;
  }
  hex_encode(tok, sizeof(tok), token);
  snprintf(file, sizeof(file), "packages/%s", sha);
  row.component = p->component;
  row.version = p->version;
  row.sha256 = sha;
  row.size = up->size;
  row.file = file;
  row.filename = p->filename;
  row.mcuboot = orch_mcuboot_verdict_name(mr.verdict);
  row.mcuboot_detail = mr.verdict != ORCH_MCUBOOT_NONE ? mr.detail : NULL;
  row.mcuboot_version = mr.version[0] ? mr.version : NULL;
  row.forced = p->force;
  row.download_token = token;
  row.created_at = loop_wall(orch->loop);
  rc = db_packages_count_sha256(orch->db, sha, &sharing);
  if (rc == 0)
    rc = db_package_add(orch->db, &row);
  if (rc == 0)
    rc = orch_audit(orch, p->audit, "package.upload", "packages", row.id,
                    json_pack("{s:s, s:s, s:s, s:I, s:s?, s:b}", "component",
                              p->component, "version", p->version, "sha256",
                              sha, "size", (json_int_t)up->size, "mcuboot",
                              row.mcuboot, "forced", p->force));
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the package");
    goto out;
  }

  /* Content another package already has stays as it is; the new file
   * replaces nothing then and is simply dropped. */
  final = content_path(orch, sha);
  if (sharing == 0 || stat(final, &st) < 0) {
    if (rename(up->tmp_path, final) < 0) {
      snprintf(err, errlen, "cannot move the upload to %s: %s", final,
               strerror(errno));
      log_err("%s", err);
      rc = -EIO;
      goto out;
    }
    renamed = true;
    free(up->tmp_path);
    up->tmp_path = NULL;
    sync_dir(orch->pkg_dir);
  }
  rc = db_action_end(orch->db, true);
  if (rc < 0) {
    snprintf(err, errlen, "cannot store the package");
    if (renamed)
      unlink(final);
    goto out;
  }
  in_action = false;
  *id = row.id;
  *created = true;
  log_info("package %lld: %s %s, %lld bytes, sha256 %s%s%s%s%s",
           (long long)row.id, p->component, p->version, (long long)up->size,
           sha, row.mcuboot ? ", MCUboot " : "",
           row.mcuboot ? row.mcuboot : "", row.mcuboot ? ": " : "",
           row.mcuboot ? mr.detail : "");
out:
  if (in_action)
    db_action_end(orch->db, rc == 0);
  /* Spent either way: the temporary file (if still there) goes. */
  if (up->tmp_path) {
    unlink(up->tmp_path);
    free(up->tmp_path);
    up->tmp_path = NULL;
  }
  free(final);
  return rc;
}

/* Download progress. */

static uint64_t dl_hash(const char *token, const char *requester)
{
  uint64_t h = hash_bytes(token, strlen(token));

  return h ^ hash_bytes(requester, strlen(requester)) * 31;
}

static struct dl_entry *dl_find(struct orch *orch, const char *token,
                                const char *requester)
{
  uint64_t h = dl_hash(token, requester);

  for (struct hmap_node *n = hmap_first(&orch->downloads, h); n; n = n->next) {
    struct dl_entry *e = container_of(n, struct dl_entry, node);

    if (n->hash == h && strcmp(e->token, token) == 0 &&
        strcmp(e->requester, requester) == 0)
      return e;
  }
  return NULL;
}

static struct dl_total *total_find(struct orch *orch, const char *token,
                                   bool create)
{
  uint64_t h = hash_bytes(token, strlen(token));
  struct dl_total *t;

  for (struct hmap_node *n = hmap_first(&orch->download_totals, h); n;
       n = n->next) {
    t = container_of(n, struct dl_total, node);
    if (n->hash == h && strcmp(t->token, token) == 0)
      return t;
  }
  if (!create)
    return NULL;
  t = xcalloc(1, sizeof(*t));
  t->token = xstrdup(token);
  hmap_insert(&orch->download_totals, &t->node, h);
  return t;
}

static void dl_drop(struct orch *orch, struct dl_entry *e)
{
  hmap_remove(&orch->downloads, &e->node);
  orch->ndownloads--;
  free(e->token);
  free(e->requester);
  free(e);
}

/* Makes room by forgetting the requester seen least recently. A linear
 * scan, but only when the table is full. */
static void dl_evict(struct orch *orch)
{
  struct dl_entry *oldest = NULL;

  for (size_t i = 0; i < orch->downloads.nbuckets; i++) {
    for (struct hmap_node *n = orch->downloads.buckets[i]; n; n = n->next) {
      struct dl_entry *e = container_of(n, struct dl_entry, node);

      if (!oldest || e->d.last_at < oldest->d.last_at)
        oldest = e;
    }
  }
  if (oldest)
    dl_drop(orch, oldest);
}

void orch_download_served(struct orch *orch, const char *token,
                          const char *requester, uint64_t off, uint64_t len,
                          uint64_t total)
{
  struct dl_entry *e = dl_find(orch, token, requester);
  struct dl_total *t = total_find(orch, token, true);
  int64_t now = loop_now(orch->loop);

  if (!e) {
    if (orch->ndownloads >= MAX_DOWNLOADS)
      dl_evict(orch);
    e = xcalloc(1, sizeof(*e));
    e->token = xstrdup(token);
    e->requester = xstrdup(requester);
    e->d.first_at = now;
    hmap_insert(&orch->downloads, &e->node, dl_hash(token, requester));
    orch->ndownloads++;
    e->d.started = 1;
    t->t.started++;
  } else if (off == 0 && e->d.next > 0) {
    /* From the start again: a new download (a retry, or an update
     * downloaded anew). */
    e->d.started++;
    e->d.completed = false;
    t->t.started++;
  }
  e->d.bytes += len;
  e->d.next = off + len;
  e->d.total = total;
  e->d.last_at = now;
  t->t.bytes += len;
  if (len > 0 && off + len >= total && !e->d.completed) {
    e->d.completed = true;
    t->t.completed++;
  }
}

int orch_download_get(struct orch *orch, const char *token,
                      const char *requester, struct orch_download *out)
{
  struct dl_entry *e = dl_find(orch, token, requester);

  if (!e)
    return -ENOENT;
  *out = e->d;
  return 0;
}

void orch_download_totals(struct orch *orch, const char *token,
                          struct orch_download_totals *out)
{
  struct dl_total *t = total_find(orch, token, false);

  memset(out, 0, sizeof(*out));
  if (t)
    *out = t->t;
}

/* Forgets every counter of a deleted package's token. */
static void downloads_forget(struct orch *orch, const char *token)
{
  struct dl_total *t = total_find(orch, token, false);

  for (size_t i = 0; i < orch->downloads.nbuckets; i++) {
    struct hmap_node *n = orch->downloads.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct dl_entry *e = container_of(n, struct dl_entry, node);

      if (strcmp(e->token, token) == 0)
        dl_drop(orch, e);
      n = next;
    }
  }
  if (t) {
    hmap_remove(&orch->download_totals, &t->node);
    free(t->token);
    free(t);
  }
}

/* Packages. */

bool orch_pkg_rollout_allowed(const struct db_package *p)
{
  return p->forced || !p->mcuboot || strcmp(p->mcuboot, "invalid") != 0;
}

int orch_pkg_open(struct orch *orch, const struct db_package *p, int *fd)
{
  char *path;
  struct stat st;

  *fd = -1;
  if (!orch->pkg_dir || !is_sha256_name(p->sha256))
    return -EIO;
  path = content_path(orch, p->sha256);
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) {
    log_err("package %lld: cannot open %s: %s", (long long)p->id, path,
            strerror(errno));
    free(path);
    return -EIO;
  }
  if (fstat(*fd, &st) < 0 || st.st_size != p->size) {
    log_err("package %lld: %s does not have the %lld bytes stored",
            (long long)p->id, path, (long long)p->size);
    close(*fd);
    *fd = -1;
    free(path);
    return -EIO;
  }
  free(path);
  return 0;
}

int orch_pkg_delete(struct orch *orch, int64_t id,
                    const struct db_audit *audit_tmpl, char *err,
                    size_t errlen)
{
  struct found f = {0};
  int64_t rollouts = 0, jobs = 0, left = 0;
  char *path = NULL;
  int rc;

  rc = db_package_get(orch->db, id, got_package, &f);
  if (rc == -ENOENT) {
    snprintf(err, errlen, "no package %lld", (long long)id);
    goto out;
  }
  if (rc == 0)
    rc = db_package_usage(orch->db, id, &rollouts, &jobs);
  if (rc < 0) {
    snprintf(err, errlen, "cannot read package %lld", (long long)id);
    goto out;
  }
  if (rollouts > 0 || jobs > 0) {
    snprintf(err, errlen,
             "package %lld is used by %lld live rollout(s) and %lld "
             "active job(s)",
             (long long)id, (long long)rollouts, (long long)jobs);
    rc = -EBUSY;
    goto out;
  }
  rc = db_action_begin(orch->db);
  if (rc < 0) {
    snprintf(err, errlen, "cannot delete package %lld", (long long)id);
    goto out;
  }
  rc = db_package_delete(orch->db, id);
  if (rc == 0)
    rc = orch_audit(orch, audit_tmpl, "package.delete", "packages", id,
                    json_pack("{s:s, s:s, s:s}", "component", f.component,
                              "version", f.version, "sha256", f.sha256));
  if (rc == 0)
    rc = db_packages_count_sha256(orch->db, f.sha256, &left);
  if (rc == 0)
    rc = db_action_end(orch->db, true);
  if (rc < 0) {
    db_action_end(orch->db, false);
    if (rc == -EBUSY)
      snprintf(err, errlen, "package %lld is in use", (long long)id);
    else
      snprintf(err, errlen, "cannot delete package %lld", (long long)id);
    goto out;
  }
  downloads_forget(orch, f.token);
  /* The CoAP server must stop serving it from its cached mapping too. */
  orch_files_drop(orch, f.token);
  /* The file goes with the last package that has this content. */
  if (left == 0) {
    path = content_path(orch, f.sha256);
    if (unlink(path) < 0 && errno != ENOENT)
      log_warn("cannot delete %s: %s", path, strerror(errno));
    else
      sync_dir(orch->pkg_dir);
  }
  log_info("package %lld (%s %s) deleted%s", (long long)id, f.component,
           f.version, left == 0 ? " with its file" : "");
out:
  free(path);
  return rc;
}

int orch_pkg_set_forced(struct orch *orch, int64_t id, bool forced,
                        const struct db_audit *audit_tmpl)
{
  int rc = db_action_begin(orch->db);

  if (rc < 0)
    return rc;
  rc = db_package_set_forced(orch->db, id, forced);
  if (rc == 0)
    rc = orch_audit(orch, audit_tmpl, "package.update", "packages", id,
                    json_pack("{s:b}", "force", forced));
  if (rc == 0)
    rc = db_action_end(orch->db, true);
  if (rc < 0) {
    db_action_end(orch->db, false);
    return rc;
  }
  log_info("package %lld: force %s", (long long)id, forced ? "on" : "off");
  return 0;
}
