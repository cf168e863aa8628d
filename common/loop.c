#include "common/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAG "loop"

#define MAX_EVENTS 64
#define MAX_HOOKS 16

struct loop_fd {
  int fd;
  loop_fd_cb *cb;
  void *arg;
};

struct loop_hook {
  loop_hook_cb *cb;
  void *arg;
};

struct loop {
  int epfd;
  bool stop;
  int64_t now;  /* monotonic ms, read once per iteration */
  int64_t wall; /* Unix ms, read at the same moment */
  loop_clock_cb *clock;
  void *clock_arg;

  /* Registered fds, indexed by fd number; grown on demand. */
  struct loop_fd *fds;
  size_t nfds;

  /* Armed timers: a binary min-heap on (when, seq). */
  struct loop_timer **heap;
  size_t heap_len, heap_cap;
  uint64_t seq;

  struct loop_hook hooks[MAX_HOOKS];
  size_t nhooks;

  bool has_sigmask;
  sigset_t sigmask;

  struct latency_hist busy; /* work per iteration, waits excluded */
};

const int64_t latency_bounds_us[LATENCY_BUCKETS] = {
    10,   50,    100,   250,   500,    1000,   2500,
    5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

void latency_hist_add(struct latency_hist *h, int64_t us)
{
  if (us < 0)
    us = 0;
  h->count++;
  h->sum_us += us;
  for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
    if (us <= latency_bounds_us[i]) {
      h->buckets[i]++;
      break;
    }
  }
}

int64_t mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const struct latency_hist *loop_latency(const struct loop *loop)
{
  return &loop->busy;
}

static void real_clock(void *arg, int64_t *mono, int64_t *wall)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  *mono = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  clock_gettime(CLOCK_REALTIME, &ts);
  *wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
  struct loop *loop;
  int epfd = epoll_create1(EPOLL_CLOEXEC);

  if (epfd < 0) {
    log_err("epoll_create1: %s", strerror(errno));
    return NULL;
  }
  loop = xcalloc(1, sizeof(*loop));
  loop->epfd = epfd;
  loop->clock = real_clock;
  loop_update_time(loop);
  return loop;
}

void loop_free(struct loop *loop)
{
  if (!loop)
    return;
  close(loop->epfd);
  for (size_t i = 0; i < loop->heap_len; i++)
    loop->heap[i]->heap_ix = SIZE_MAX;
  free(loop->heap);
  free(loop->fds);
  free(loop);
}

int64_t loop_now(const struct loop *loop)
{
  return loop->now;
}

int64_t loop_wall(const struct loop *loop)
{
  return loop->wall;
}

void loop_update_time(struct loop *loop)
{
  loop->clock(loop->clock_arg, &loop->now, &loop->wall);
}

void loop_set_clock(struct loop *loop, loop_clock_cb *cb, void *arg)
{
  loop->clock = cb ? cb : real_clock;
  loop->clock_arg = cb ? arg : NULL;
  loop_update_time(loop);
}

int loop_fd_add(struct loop *loop, int fd, uint32_t events, loop_fd_cb *cb,
                void *arg)
{
  struct epoll_event ev = {.events = events, .data.fd = fd};

  if (fd < 0)
    return -EBADF;
  if ((size_t)fd >= loop->nfds) {
    size_t n = loop->nfds ? loop->nfds : 64;

    while (n <= (size_t)fd)
      n *= 2;
    loop->fds = xrealloc(loop->fds, n * sizeof(*loop->fds));
    for (size_t i = loop->nfds; i < n; i++)
      loop->fds[i] = (struct loop_fd){.fd = -1};
    loop->nfds = n;
  }
  if (loop->fds[fd].fd >= 0)
    return -EEXIST;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    return -errno;
  loop->fds[fd] = (struct loop_fd){.fd = fd, .cb = cb, .arg = arg};
  return 0;
}

int loop_fd_mod(struct loop *loop, int fd, uint32_t events)
{
  struct epoll_event ev = {.events = events, .data.fd = fd};

  if (fd < 0 || (size_t)fd >= loop->nfds || loop->fds[fd].fd < 0)
    return -ENOENT;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
    return -errno;
  return 0;
}

int loop_fd_del(struct loop *loop, int fd)
{
  if (fd < 0 || (size_t)fd >= loop->nfds || loop->fds[fd].fd < 0)
    return -ENOENT;
  loop->fds[fd].fd = -1;
  /* The fd may already be closed, which removed it from epoll. */
  if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF &&
      errno != ENOENT)
    return -errno;
  return 0;
}

static bool timer_before(const struct loop_timer *a,
                         const struct loop_timer *b)
{
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_place(struct loop *loop, size_t ix, struct loop_timer *t)
{
  loop->heap[ix] = t;
  t->heap_ix = ix;
}

static void heap_up(struct loop *loop, size_t ix)
{
  struct loop_timer *t = loop->heap[ix];

  while (ix > 0) {
    size_t parent = (ix - 1) / 2;

    if (!timer_before(t, loop->heap[parent]))
      break;
    heap_place(loop, ix, loop->heap[parent]);
    ix = parent;
  }
  heap_place(loop, ix, t);
}

static void heap_down(struct loop *loop, size_t ix)
{
  struct loop_timer *t = loop->heap[ix];

  for (;;) {
    size_t child = 2 * ix + 1;

    if (child >= loop->heap_len)
      break;
    if (child + 1 < loop->heap_len &&
        timer_before(loop->heap[child + 1], loop->heap[child]))
      child++;
    if (!timer_before(loop->heap[child], t))
      break;
    heap_place(loop, ix, loop->heap[child]);
    ix = child;
  }
  heap_place(loop, ix, t);
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb *cb, void *arg)
{
  memset(t, 0, sizeof(*t));
  t->heap_ix = SIZE_MAX;
  t->cb = cb;
  t->arg = arg;
}

bool loop_timer_armed(const struct loop_timer *t)
{
  return t->heap_ix != SIZE_MAX;
}

void loop_timer_disarm(struct loop *loop, struct loop_timer *t)
{
  size_t ix = t->heap_ix;
  struct loop_timer *last;

  if (ix == SIZE_MAX)
    return;
  t->heap_ix = SIZE_MAX;
  last = loop->heap[--loop->heap_len];
  if (last == t)
    return;
  heap_place(loop, ix, last);
  heap_up(loop, ix);
  heap_down(loop, last->heap_ix);
}

void loop_timer_arm_at(struct loop *loop, struct loop_timer *t, int64_t when)
{
  loop_timer_disarm(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    loop->heap = xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
  }
  t->when = when;
  t->seq = loop->seq++;
  heap_place(loop, loop->heap_len++, t);
  heap_up(loop, t->heap_ix);
}

void loop_timer_arm(struct loop *loop, struct loop_timer *t, int64_t delay_ms)
{
  loop_timer_arm_at(loop, t, loop->now + (delay_ms > 0 ? delay_ms : 0));
}

int loop_hook_add(struct loop *loop, loop_hook_cb *cb, void *arg)
{
  if (loop->nhooks == MAX_HOOKS)
    return -ENOSPC;
  loop->hooks[loop->nhooks++] = (struct loop_hook){.cb = cb, .arg = arg};
  return 0;
}

void loop_hook_del(struct loop *loop, loop_hook_cb *cb, void *arg)
{
  for (size_t i = 0; i < loop->nhooks; i++) {
    if (loop->hooks[i].cb == cb && loop->hooks[i].arg == arg) {
      memmove(&loop->hooks[i], &loop->hooks[i + 1],
              (loop->nhooks - i - 1) * sizeof(loop->hooks[0]));
      loop->nhooks--;
      return;
    }
  }
}

void loop_set_wait_sigmask(struct loop *loop, const sigset_t *mask)
{
  loop->has_sigmask = mask != NULL;
  if (mask)
    loop->sigmask = *mask;
}

void loop_stop(struct loop *loop)
{
  loop->stop = true;
}

/*
 * Fires every timer that is due at the iteration's time. A callback may arm
 * timers again, even for now: those wait for the next iteration, so a timer
 * that keeps re-arming itself at zero delay cannot starve the fds.
 */
static void run_timers(struct loop *loop)
{
  uint64_t limit = loop->seq;

  while (loop->heap_len > 0) {
    struct loop_timer *t = loop->heap[0];

    if (t->when > loop->now || t->seq >= limit)
      break;
    loop_timer_disarm(loop, t);
    t->cb(loop, t, t->arg);
  }
}

static int wait_timeout(const struct loop *loop, int max_wait_ms)
{
  int64_t d;

  if (loop->heap_len == 0)
    return max_wait_ms;
  d = loop->heap[0]->when - loop->now;
  if (d < 0)
    d = 0;
  if (d > INT32_MAX)
    d = INT32_MAX;
  if (max_wait_ms >= 0 && d > max_wait_ms)
    d = max_wait_ms;
  return (int)d;
}

int loop_run_once(struct loop *loop, int max_wait_ms)
{
  struct epoll_event evs[MAX_EVENTS];
  int64_t t0 = mono_us(), busy;
  int n;

  loop_update_time(loop);
  run_timers(loop);
  for (size_t i = 0; i < loop->nhooks; i++)
    loop->hooks[i].cb(loop, loop->hooks[i].arg);
  if (loop->stop)
    return 0;

  busy = mono_us() - t0;
  n = epoll_pwait(loop->epfd, evs, MAX_EVENTS, wait_timeout(loop, max_wait_ms),
                  loop->has_sigmask ? &loop->sigmask : NULL);
  if (n < 0) {
    if (errno == EINTR) {
      /* The signal's handling may arm timers: against the time now. */
      loop_update_time(loop);
      return 0;
    }
    log_err("epoll_pwait: %s", strerror(errno));
    return -errno;
  }
  t0 = mono_us();
  loop_update_time(loop);
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;

    /* An earlier callback in this batch may have removed this fd. */
    if ((size_t)fd >= loop->nfds || loop->fds[fd].fd < 0)
      continue;
    loop->fds[fd].cb(loop, fd, evs[i].events, loop->fds[fd].arg);
  }
  /* Timers and hooks before the wait, plus the callbacks after it: the
   * time this iteration kept every other event waiting. */
  latency_hist_add(&loop->busy, busy + mono_us() - t0);
  return 0;
}

int loop_run(struct loop *loop)
{
  loop->stop = false;
  while (!loop->stop) {
    int rc = loop_run_once(loop, -1);

    if (rc < 0)
      return rc;
  }
  return 0;
}
