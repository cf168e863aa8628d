/*
 * common: the pieces every other module stands on. The event loop and its
 * clock, logging, the table-driven config parser, strict number parsing,
 * address parsing and the xmalloc family.
 */
#ifndef FOTAD_COMMON_H
#define FOTAD_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/socket.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))

/*
 * Memory. Each of these aborts the process with a message on allocation
 * failure, so callers never check for NULL. xfree(NULL) is a no-op.
 */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a new string formatted like printf. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/*
 * Logging. Levels are syslog's. Each .c file that logs defines LOG_TAG (its
 * module name) before using the log_* macros. Messages go to stderr, in a
 * human format on a terminal and with "<N>" level prefixes under systemd
 * (JOURNAL_STREAM set), or to syslog once log_use_syslog() was called.
 */
enum log_level {
  LL_ERR = 3,
  LL_WARN = 4,
  LL_NOTICE = 5,
  LL_INFO = 6,
  LL_DEBUG = 7,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* Sends further messages to syslog under the given identity. */
void log_use_syslog(const char *ident);
/* Sends further messages to the file descriptor (default 2, stderr). */
void log_set_fd(int fd);
void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
void log_vmsg(enum log_level level, const char *tag, const char *fmt,
              va_list ap) PRINTF_LIKE(3, 0);
/* Names are "err", "warn", "notice", "info", "debug". */
const char *log_level_name(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);

#define log_err(...) log_msg(LL_ERR, LOG_TAG, __VA_ARGS__)
#define log_warn(...) log_msg(LL_WARN, LOG_TAG, __VA_ARGS__)
#define log_notice(...) log_msg(LL_NOTICE, LOG_TAG, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, LOG_TAG, __VA_ARGS__)
#define log_debug(...)                                                        \
  do {                                                                        \
    if (log_enabled(LL_DEBUG))                                                \
      log_msg(LL_DEBUG, LOG_TAG, __VA_ARGS__);                                \
  } while (0)

/*
 * Strict number parsing: the whole string must be a number in [min, max],
 * no leading blanks, no trailing garbage. Return 0 or -EINVAL (not a
 * number) or -ERANGE (out of range).
 */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A duration: a number with an optional unit s, m, h or d; in seconds. */
int parse_duration(const char *s, int64_t min, int64_t max, int64_t *out);
/* A size: a number with an optional unit k, M or G (powers of 1024). */
int parse_size(const char *s, int64_t min, int64_t max, int64_t *out);
/* yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *out);

/*
 * Parses "HOST:PORT" or "[V6HOST]:PORT" (numeric addresses only; "*" means
 * every IPv4 address) into a socket address. Fills err on failure.
 */
int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen);
/* Formats a socket address as "HOST:PORT" or "[V6HOST]:PORT". */
void format_sockaddr(const struct sockaddr *sa, char *buf, size_t buflen);
/* Writes v in decimal at p, without a terminating NUL; returns the end
 * (at most 10 characters). For hot paths where snprintf() would cost more
 * than the rest of the work. */
char *put_decimal(char *p, unsigned v);
/* Copies s to p, without its NUL; returns the end. The caller sized the
 * buffer for it. */
char *put_text(char *p, const char *s);
/* Returns the port of an IPv4 or IPv6 socket address. */
int sockaddr_port(const struct sockaddr *sa);

/* Formats a Unix time in milliseconds as ISO 8601 UTC with milliseconds. */
void format_iso8601(int64_t unix_ms, char *buf, size_t buflen);

/*
 * Writes data to path atomically: a temporary file in the same folder,
 * fsync, rename. Returns 0 or a negative errno.
 */
int write_file_atomic(const char *path, const void *data, size_t len,
                      int mode);
/* Creates a folder and its parents with the given mode. */
int mkdir_p(const char *path, int mode);

/*
 * Crypto helpers on mbedTLS: a CTR-DRBG seeded once from the system's
 * entropy, SHA-256, and hex. Return 0 or a negative errno.
 */
int crypto_random(void *buf, size_t len);
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
/* Writes 2*len lowercase hex digits and a NUL into out. */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes hex (either case) into out; -EINVAL if not hex or too long. */
int hex_decode(const char *in, uint8_t *out, size_t outlen, size_t *len);

/*
 * The event loop: one epoll instance, file descriptors with callbacks,
 * one-shot timers, before-sleep hooks, and a clock read once per
 * iteration. One thread only.
 */
struct loop;
struct loop_timer;

typedef void loop_fd_cb(struct loop *loop, int fd, uint32_t events, void *arg);
typedef void loop_timer_cb(struct loop *loop, struct loop_timer *t, void *arg);
typedef void loop_hook_cb(struct loop *loop, void *arg);
/* A time source: fills the monotonic and the Unix time in ms. */
typedef void loop_clock_cb(void *arg, int64_t *mono_ms, int64_t *wall_ms);

/*
 * A timer is owned and embedded by its user; the loop only links it into
 * its heap. Initialise with loop_timer_init(), then arm and disarm at will.
 * The fields are private to the loop.
 */
struct loop_timer {
  int64_t when;   /* monotonic ms at which it fires */
  uint64_t seq;   /* tie-breaker, so equal deadlines fire in arm order */
  size_t heap_ix; /* position in the loop's heap, SIZE_MAX when disarmed */
  loop_timer_cb *cb;
  void *arg;
};

/* Returns a new loop, or NULL (with a log line) if epoll is unavailable. */
struct loop *loop_new(void);
/* Frees the loop. Fds and timers still registered are simply forgotten. */
void loop_free(struct loop *loop);

/* Watches fd for events (EPOLLIN, EPOLLOUT...). One callback per fd. */
int loop_fd_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb *cb,
                void *arg);
int loop_fd_mod(struct loop *loop, int fd, uint32_t events);
int loop_fd_del(struct loop *loop, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_cb *cb, void *arg);
/* (Re)arms t to fire delay_ms after the loop's current time. */
void loop_timer_arm(struct loop *loop, struct loop_timer *t, int64_t delay_ms);
/* Arms t to fire at an absolute monotonic time. */
void loop_timer_arm_at(struct loop *loop, struct loop_timer *t, int64_t when);
void loop_timer_disarm(struct loop *loop, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);

/* Registers a hook run after timers and before each wait. Max 16. */
int loop_hook_add(struct loop *loop, loop_hook_cb *cb, void *arg);
/* Removes the hook registered with the same cb and arg, if any. */
void loop_hook_del(struct loop *loop, loop_hook_cb *cb, void *arg);

/*
 * Sets the signal mask in force while the loop waits (epoll_pwait), so a
 * signal blocked elsewhere is delivered only there and cannot be missed
 * between the before-sleep hooks and the wait. NULL keeps the current mask.
 */
void loop_set_wait_sigmask(struct loop *loop, const sigset_t *mask);
/* Runs until loop_stop(). Returns 0, or a negative errno if epoll fails. */
int loop_run(struct loop *loop);
/* Runs one iteration, waiting at most max_wait_ms (-1: no limit). */
int loop_run_once(struct loop *loop, int max_wait_ms);
void loop_stop(struct loop *loop);

/* The monotonic time in ms, read once at the start of the iteration. */
int64_t loop_now(const struct loop *loop);
/* The wall-clock (Unix) time in ms, read at the same moment. */
int64_t loop_wall(const struct loop *loop);
/* Rereads the clocks (used after blocking work inside one iteration). */
void loop_update_time(struct loop *loop);
/* Replaces both clocks, for tests; NULL restores the real ones. */
void loop_set_clock(struct loop *loop, loop_clock_cb *cb, void *arg);

/*
 * Latency histograms for metrics: fixed buckets with the upper bounds
 * (inclusive, in microseconds) of latency_bounds_us; durations above the
 * last bound count only in count and sum. Measured with mono_us(), the
 * real monotonic clock, whatever clock the loop runs on.
 */
#define LATENCY_BUCKETS 14
extern const int64_t latency_bounds_us[LATENCY_BUCKETS];
struct latency_hist {
  uint64_t count;
  int64_t sum_us;
  uint64_t buckets[LATENCY_BUCKETS]; /* per bucket, not cumulative */
};
void latency_hist_add(struct latency_hist *h, int64_t us);
/* The real monotonic clock in microseconds, for measuring durations. */
int64_t mono_us(void);
/* How long each loop iteration spent working (not waiting); borrowed. */
const struct latency_hist *loop_latency(const struct loop *loop);

/*
 * An intrusive hash table: users embed struct hmap_node in their own
 * structs, compute the hash with hash_bytes(), and compare keys themselves
 * while walking a bucket. Grows by doubling; never shrinks.
 */
struct hmap_node {
  struct hmap_node *next;
  uint64_t hash;
};

struct hmap {
  struct hmap_node **buckets;
  size_t nbuckets; /* a power of two */
  size_t len;
};

#define container_of(ptr, type, member)                                       \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A 64-bit hash (FNV-1a, then a finalizer mixing the high bits in). */
uint64_t hash_bytes(const void *data, size_t len);
void hmap_init(struct hmap *h);
/* Frees the bucket array; the nodes belong to their owners. */
void hmap_destroy(struct hmap *h);
void hmap_insert(struct hmap *h, struct hmap_node *n, uint64_t hash);
void hmap_remove(struct hmap *h, struct hmap_node *n);
/* The first node of the bucket for hash; follow ->next, check ->hash. */
struct hmap_node *hmap_first(const struct hmap *h, uint64_t hash);

/*
 * Config: flat "key value" lines with '#' comments, parsed from a
 * descriptor table into a caller's struct at the given offsets.
 * The loaders return 0 or a negative errno (-EINVAL, -ERANGE...).
 */
enum conf_type {
  CONF_STRING,   /* char *, owned by the struct, freed by conf_free() */
  CONF_INT,      /* int64_t */
  CONF_DURATION, /* int64_t seconds; "30", "30s", "5m", "2h", "1d" */
  CONF_SIZE,     /* int64_t bytes; "512", "64k", "16M", "1G" */
  CONF_BOOL,     /* bool */
  CONF_ENUM,     /* int, index into names[] */
};

struct conf_desc {
  const char *name;
  enum conf_type type;
  int64_t min, max;         /* for numbers; max 0 means no bound */
  const char *def;          /* default, written as in the file */
  size_t offset;            /* into the destination struct */
  bool reloadable;          /* applied on SIGHUP */
  const char *const *names; /* CONF_ENUM only, NULL-terminated */
};

/* Sets every key of the table to its default. */
void conf_defaults(const struct conf_desc *table, size_t n, void *dst);
/*
 * Parses a file into dst (which should hold the defaults already). On
 * error returns -EINVAL and fills err with "file:line: reason", or
 * "file: reason" when the file cannot be read.
 */
int conf_load_file(const struct conf_desc *table, size_t n, void *dst,
                   const char *path, char *err, size_t errlen);
/* Same, from a buffer; name is used in messages. */
int conf_load_buf(const struct conf_desc *table, size_t n, void *dst,
                  const char *name, const char *text, char *err,
                  size_t errlen);
/* Sets one key from its text form (command-line overrides). */
int conf_set(const struct conf_desc *table, size_t n, void *dst,
             const char *key, const char *value, char *err, size_t errlen);
/* Frees the strings of dst. */
void conf_free(const struct conf_desc *table, size_t n, void *dst);
/* Copies the reloadable keys of src into dst; logs what changed. */
void conf_apply_reloadable(const struct conf_desc *table, size_t n, void *dst,
                           const void *src);
/* True if any key that is not reloadable differs; its name goes in *key. */
bool conf_static_changed(const struct conf_desc *table, size_t n,
                         const void *a, const void *b, const char **key);

#endif
