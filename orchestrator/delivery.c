/*
 * Package delivery over CoAP and CoAPS: the provider behind GET
 * /fw/<token> (the server cuts the Block2 blocks from what we hand it),
 * and download progress from every block served.
 *
 * A token resolves to its package row once, then to a read-only mapping
 * of the package's file, kept in a small LRU cache: a thousand devices
 * fetching the same image share one mapping, and a block costs neither a
 * query nor a read. A cached token is checked against the database again
 * after RECHECK_MS, so that a deleted package stops being served even if
 * nobody calls orch_files_drop(). The ETag is the first 8 bytes of the
 * content's SHA-256: the same for every block, and different as soon as
 * the content differs.
 */
#include "orchestrator/orch_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LOG_TAG "fw"

/* Mappings kept; one in use beyond it waits for its release. */
#define FILES_MAX 32
/* How long a cached token is trusted without asking the database (ms). */
#define RECHECK_MS 1000

struct fmap {
  struct hmap_node node;
  struct fmap *prev, *next; /* LRU list, most recent first */
  char *token;
  char sha256[65];
  uint8_t *data; /* NULL for an empty package */
  size_t size;
  uint8_t etag[8];
  int refs;        /* handed out and not yet released */
  int64_t checked; /* loop time the row was last confirmed */
  bool dropped;    /* out of the cache; freed at its last release */
};

struct orch_files {
  struct hmap by_token;
  struct fmap *head, *tail;
  size_t n;
};

static uint64_t token_hash(const char *token)
{
  return hash_bytes(token, strlen(token));
}

static struct fmap *fmap_find(struct orch_files *fs, const char *token)
{
  uint64_t h = token_hash(token);

  for (struct hmap_node *n = hmap_first(&fs->by_token, h); n; n = n->next) {
    struct fmap *m = container_of(n, struct fmap, node);

    if (n->hash == h && strcmp(m->token, token) == 0)
      return m;
  }
  return NULL;
}

static void lru_unlink(struct orch_files *fs, struct fmap *m)
{
  if (m->prev)
    m->prev->next = m->next;
  else
    fs->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  else
    fs->tail = m->prev;
  m->prev = m->next = NULL;
}

static void lru_push_front(struct orch_files *fs, struct fmap *m)
{
  m->prev = NULL;
  m->next = fs->head;
  if (fs->head)
    fs->head->prev = m;
  fs->head = m;
  if (!fs->tail)
    fs->tail = m;
}

static void fmap_free(struct fmap *m)
{
  if (m->data)
    munmap(m->data, m->size);
  free(m->token);
  free(m);
}

/* Takes m out of the cache; it is freed now, or at its last release. */
static void fmap_drop(struct orch_files *fs, struct fmap *m)
{
  hmap_remove(&fs->by_token, &m->node);
  lru_unlink(fs, m);
  fs->n--;
  m->dropped = true;
  if (m->refs == 0)
    fmap_free(m);
}

/* Keeps the cache within FILES_MAX, oldest unused mappings first. */
static void fmap_trim(struct orch_files *fs)
{
  struct fmap *m = fs->tail;

  while (fs->n > FILES_MAX && m) {
    struct fmap *prev = m->prev;

    if (m->refs == 0)
      fmap_drop(fs, m);
    m = prev;
  }
}

void orch_files_init(struct orch *orch)
{
  orch->files = xcalloc(1, sizeof(*orch->files));
  hmap_init(&orch->files->by_token);
}

void orch_files_free(struct orch *orch)
{
  struct orch_files *fs = orch->files;

  if (!fs)
    return;
  while (fs->head) {
    struct fmap *m = fs->head;

    /* The server released everything it borrowed before it was freed. */
    m->refs = 0;
    fmap_drop(fs, m);
  }
  hmap_destroy(&fs->by_token);
  free(fs);
  orch->files = NULL;
}

struct pkg_row {
  bool found;
  int64_t id;
  char sha256[65];
  char *file;
  int64_t size;
};

static void got_row(void *arg, const struct db_job_package *p)
{
  struct pkg_row *r = arg;

  r->found = true;
  r->id = p->id;
  snprintf(r->sha256, sizeof(r->sha256), "%s", p->sha256);
  free(r->file);
  r->file = xstrdup(p->file);
  r->size = p->size;
}

/* Maps the file of a package row; NULL (logged) if that fails. */
static struct fmap *fmap_open(struct orch *orch, const char *token,
                              const struct pkg_row *r)
{
  /* The repository knows where its files are (and checks their size). */
  struct db_package p = {
      .id = r->id, .sha256 = r->sha256, .size = r->size, .file = r->file};
  struct fmap *m = NULL;
  char hex[17];
  size_t elen = 0;
  int fd = -1;

  if (orch_pkg_open(orch, &p, &fd) < 0)
    goto out;
  m = xcalloc(1, sizeof(*m));
  m->token = xstrdup(token);
  snprintf(m->sha256, sizeof(m->sha256), "%s", r->sha256);
  m->size = (size_t)r->size;
  if (m->size > 0) {
    void *data = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);

    if (data == MAP_FAILED) {
      log_err("package %lld: mmap: %s", (long long)r->id, strerror(errno));
      free(m->token);
      free(m);
      m = NULL;
      goto out;
    }
    m->data = data;
  }
  /* The SHA-256 is hex (the schema checks it); its first 8 bytes tag it. */
  snprintf(hex, sizeof(hex), "%.16s", r->sha256);
  if (hex_decode(hex, m->etag, sizeof(m->etag), &elen) < 0 ||
      elen != sizeof(m->etag))
    memset(m->etag, 0, sizeof(m->etag));
out:
  if (fd >= 0)
    close(fd);
  return m;
}

static void fmap_release(void *arg)
{
  struct fmap *m = arg;

  if (--m->refs == 0 && m->dropped)
    fmap_free(m);
}

/* The mapping for token: cached and still valid, or loaded now. */
static int fmap_lookup(struct orch *orch, const char *token, struct fmap **out)
{
  struct orch_files *fs = orch->files;
  struct fmap *m = fmap_find(fs, token);
  int64_t now = loop_now(orch->loop);
  struct pkg_row r = {0};
  int rc = 0;

  if (m && now - m->checked >= RECHECK_MS) {
    rc = db_job_package_by_token(orch->db, token, got_row, &r);
    if (rc < 0 && rc != -ENOENT)
      goto out; /* the database is unwell: do not serve on stale trust */
    if (rc == -ENOENT || strcmp(r.sha256, m->sha256) != 0) {
      fmap_drop(fs, m);
      m = NULL;
    } else {
      m->checked = now;
    }
  }
  if (m) {
    if (fs->head != m) {
      lru_unlink(fs, m);
      lru_push_front(fs, m);
    }
    *out = m;
    rc = 0;
    goto out;
  }
  if (!r.found) {
    rc = db_job_package_by_token(orch->db, token, got_row, &r);
    if (rc < 0)
      goto out;
  }
  m = fmap_open(orch, token, &r);
  if (!m) {
    rc = -EIO;
    goto out;
  }
  m->checked = now;
  hmap_insert(&fs->by_token, &m->node, token_hash(token));
  lru_push_front(fs, m);
  fs->n++;
  *out = m;
  rc = 0;
out:
  free(r.file);
  return rc;
}

int orch_files_get(struct orch *orch, const char *token, struct srv_file *f)
{
  struct fmap *m = NULL;
  int rc = fmap_lookup(orch, token, &m);

  if (rc < 0)
    return rc;
  m->refs++;
  f->data = m->data;
  f->size = m->size;
  memcpy(f->etag, m->etag, sizeof(m->etag));
  f->etag_len = sizeof(m->etag);
  f->release = fmap_release;
  f->release_arg = m;
  fmap_trim(orch->files);
  return 0;
}

void orch_files_drop(struct orch *orch, const char *token)
{
  struct fmap *m = orch->files ? fmap_find(orch->files, token) : NULL;

  if (m)
    fmap_drop(orch->files, m);
}

/* The server's file provider: a job's own token, or a package's. */
int orch_files_provide(void *arg, const char *token, struct srv_file *f)
{
  struct orch *orch = arg;
  const char *pkg = orch_jobs_package_token(orch, token);

  return orch_files_get(orch, pkg ? pkg : token, f);
}

/*
 * Every block served: the repository's per-requester counters, and the
 * progress of the job it belongs to. A block that is not the last is
 * full, so its offset is its number times its length; the last one ends
 * the file.
 */
static void on_block_served(void *arg, const char *token, const char *ep,
                            const char *peer, uint32_t num, uint32_t len,
                            bool last)
{
  struct orch *orch = arg;
  const char *pkg = orch_jobs_package_token(orch, token);
  struct fmap *m = fmap_find(orch->files, pkg ? pkg : token);
  uint64_t total = m ? m->size : 0;
  uint64_t off = last ? (total >= len ? total - len : 0) : (uint64_t)num * len;
  struct orch_job_progress *p;
  bool first = false;

  orch_download_served(orch, pkg ? pkg : token, ep ? ep : peer, off, len,
                       total);
  p = orch_jobs_progress_of(orch, token, ep, &first);
  if (!p)
    return;
  p->blocks++;
  p->bytes += len;
  if ((int64_t)(off + len) > p->offset)
    p->offset = (int64_t)(off + len);
  p->last_block_at = loop_wall(orch->loop);
  if (first)
    orch_jobs_download_seen(orch, token, ep);
  if (last)
    orch_jobs_download_done(orch, token, ep);
}

const struct srv_events orch_delivery_events = {
    .block_served = on_block_served,
};
