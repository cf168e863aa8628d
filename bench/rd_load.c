/*
 * rd_load: a CoAP load generator for the LwM2M registration interface.
 *
 * Each client is one UDP socket with its own source port, so the server
 * sees as many distinct peers (sessions) as there are clients. Clients
 * send Register (POST /rd?ep=...) and then Update (POST /rd/<location>)
 * through one epoll loop, with a window of confirmable requests in flight
 * per socket and a global cap on the requests in flight.
 *
 * The few CoAP messages needed are encoded and decoded here by hand:
 * a CoAP library would add its own per-session bookkeeping to the cost
 * of every request, and the load generator must stay cheap next to the
 * server it measures. Retransmission is simplified to a fixed 2 s time-out
 * (no exponential back-off); each one is counted.
 *
 * Results are printed as "result" lines of key=value pairs (see usage()),
 * so that bench/bench_rd.sh can sum the lines of several processes.
 */
#include "common/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAG "rd_load"

/* CoAP constants (RFC 7252). */
#define COAP_CON 0
#define COAP_NON 1
#define COAP_ACK 2
#define COAP_RST 3
#define CODE_POST 0x02
#define CODE_CREATED 0x41 /* 2.01 */
#define CODE_CHANGED 0x44 /* 2.04 */
#define OPT_LOCATION_PATH 8
#define OPT_URI_PATH 11
#define OPT_CONTENT_FORMAT 12
#define OPT_URI_QUERY 15
#define CT_LINK_FORMAT 40

#define TOKEN_LEN 4
#define MSG_MAX 1024
/* Longest Location-Path we keep ("rd/<id>"; coap-rd's ids are longer). */
#define LOC_MAX 48
#define PREFIX_MAX 32
#define PAYLOAD_MAX 512

/* A request with no answer after this long is sent again. */
#define ACK_TIMEOUT_MS 2000
/* After an empty ACK, how long the separate response may take. */
#define SEPARATE_TIMEOUT_MS 10000
/* Once the phase's time is up, how long in-flight requests may finish. */
#define DRAIN_MS 15000
/* File descriptors kept free for epoll, stdio and the like. */
#define FD_SPARE 16
#define EVENTS_MAX 1024

enum phase { PHASE_REGISTER, PHASE_UPDATE };

static const char *const phase_names[] = {"register", "update"};

struct opts {
  struct sockaddr_in server;
  int64_t clients;
  int64_t regs_per_client;
  int64_t updates_per_client;
  int64_t window;
  int64_t max_inflight;
  int64_t duration_s;
  int64_t setup_duration_s; /* the registrations before Updates; -1: same */
  int64_t max_tries;
  int64_t lifetime;
  int64_t first_client;
  int64_t per_addr;
  int64_t start_at_ms;
  struct in_addr source_base;
  const char *ep_prefix;
  const char *payload;
  const char *go_file;     /* Updates wait until it exists */
  bool do_register_report; /* print the register phase as a result */
  bool do_update;
  bool hold;
  bool adaptive;
};

/* One request slot; a client owns opts.window of them. */
struct req {
  struct req *prev, *next; /* in wait_ack or wait_sep while in use */
  uint32_t client;
  uint32_t ep_ix; /* which of the client's endpoints */
  uint16_t mid;
  uint8_t token[TOKEN_LEN];
  uint8_t tries;
  bool in_use;
  bool acked; /* empty ACK seen; waiting for the separate response */
  int64_t deadline_ms;
};

struct client {
  int fd;
  uint16_t next_mid;
  uint32_t next_token;
  uint32_t issued; /* requests started in this phase */
  uint32_t inflight;
};

/* A FIFO of requests ordered by deadline (time-outs are all equal). */
struct req_list {
  struct req *head, *tail;
};

struct stats {
  int64_t sent, retransmits, timeouts, responses, ok, unmatched, skipped;
  int64_t abandoned, send_errors;
  int64_t codes[256];
  int64_t rst;
  int64_t cap_cuts;
  int64_t first_send_us, last_done_us;
};

struct load {
  struct opts o;
  int epfd;
  struct client *clients;
  struct req *reqs;      /* clients * window slots */
  char (*locs)[LOC_MAX]; /* clients * regs_per_client locations */
  uint32_t *ready;       /* ring of client indices with work and room */
  size_t ready_cap, ready_head, ready_len;
  struct req_list wait_ack, wait_sep;
  enum phase phase;
  uint32_t per_client; /* requests per client in this phase */
  int64_t inflight;
  /* The in-flight cap in force: --max-inflight, or with --adaptive less
   * after time-outs (halved at most once per ACK_TIMEOUT_MS, then grown
   * by about one per cap's worth of answers, as TCP does). */
  double cap;
  int64_t last_cut_ms;
  int64_t done; /* finished requests (any outcome) */
  int64_t target;
  struct stats st;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  stop_flag = 1;
}

static int64_t wall_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_seconds(void)
{
  struct rusage ru;

  if (getrusage(RUSAGE_SELF, &ru) < 0)
    return 0;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void list_push(struct req_list *l, struct req *r)
{
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
}

static void list_unlink(struct req_list *l, struct req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->prev = r->next = NULL;
}

static void ready_push(struct load *ld, uint32_t c)
{
  /* Sized for one entry per request slot, so it cannot overflow. */
  ld->ready[(ld->ready_head + ld->ready_len) % ld->ready_cap] = c;
  ld->ready_len++;
}

static uint32_t ready_pop(struct load *ld)
{
  uint32_t c = ld->ready[ld->ready_head];

  ld->ready_head = (ld->ready_head + 1) % ld->ready_cap;
  ld->ready_len--;
  return c;
}

/*
 * Appends one option: the delta from the previous option number and the
 * length, each in 4 bits or an extended 1- or 2-byte form (RFC 7252
 * section 3.1), then the value. The caller's buffer has room: messages are
 * bounded by PREFIX_MAX, PAYLOAD_MAX and LOC_MAX well below MSG_MAX.
 */
static uint8_t *put_option(uint8_t *p, unsigned *last, unsigned num,
                           const void *val, size_t len)
{
  uint8_t *head = p++;
  unsigned delta = num - *last;
  uint8_t dn, ln;

  if (delta < 13) {
    dn = (uint8_t)delta;
  } else if (delta < 269) {
    dn = 13;
    *p++ = (uint8_t)(delta - 13);
  } else {
    dn = 14;
    *p++ = (uint8_t)((delta - 269) >> 8);
    *p++ = (uint8_t)((delta - 269) & 0xff);
  }
  if (len < 13) {
    ln = (uint8_t)len;
  } else if (len < 269) {
    ln = 13;
    *p++ = (uint8_t)(len - 13);
  } else {
    ln = 14;
    *p++ = (uint8_t)((len - 269) >> 8);
    *p++ = (uint8_t)((len - 269) & 0xff);
  }
  *head = (uint8_t)(dn << 4 | ln);
  if (len > 0)
    memcpy(p, val, len);
  *last = num;
  return p + len;
}

static uint8_t *put_header(uint8_t *p, uint8_t type, uint8_t code,
                           const struct req *r)
{
  *p++ = (uint8_t)(0x40 | type << 4 | TOKEN_LEN);
  *p++ = code;
  *p++ = (uint8_t)(r->mid >> 8);
  *p++ = (uint8_t)(r->mid & 0xff);
  memcpy(p, r->token, TOKEN_LEN);
  return p + TOKEN_LEN;
}

/* The global endpoint number of a client's endpoint: distinct across
 * processes that use distinct --first-client ranges. */
static uint64_t ep_number(const struct load *ld, uint32_t c, uint32_t ep_ix)
{
  return ((uint64_t)ld->o.first_client + c) * (uint64_t)ld->o.regs_per_client +
         ep_ix;
}

static size_t build_register(const struct load *ld, const struct req *r,
                             uint8_t *buf)
{
  uint8_t *p = put_header(buf, COAP_CON, CODE_POST, r);
  unsigned last = 0;
  uint8_t ct = CT_LINK_FORMAT;
  char q[PREFIX_MAX + 32];
  int n;
  size_t plen = strlen(ld->o.payload);

  p = put_option(p, &last, OPT_URI_PATH, "rd", 2);
  p = put_option(p, &last, OPT_CONTENT_FORMAT, &ct, 1);
  n = snprintf(q, sizeof(q), "ep=%s%llu", ld->o.ep_prefix,
               (unsigned long long)ep_number(ld, r->client, r->ep_ix));
  p = put_option(p, &last, OPT_URI_QUERY, q, (size_t)n);
  n = snprintf(q, sizeof(q), "lt=%lld", (long long)ld->o.lifetime);
  p = put_option(p, &last, OPT_URI_QUERY, q, (size_t)n);
  p = put_option(p, &last, OPT_URI_QUERY, "lwm2m=1.1", 9);
  p = put_option(p, &last, OPT_URI_QUERY, "b=U", 3);
  if (plen > 0) {
    *p++ = 0xff;
    memcpy(p, ld->o.payload, plen);
    p += plen;
  }
  return (size_t)(p - buf);
}

/* Update: POST to the location the Register answered, with no body. */
static size_t build_update(const struct load *ld, const struct req *r,
                           uint8_t *buf)
{
  const char *loc =
      ld->locs[(size_t)r->client * (size_t)ld->o.regs_per_client + r->ep_ix];
  uint8_t *p = put_header(buf, COAP_CON, CODE_POST, r);
  unsigned last = 0;

  while (*loc) {
    const char *slash = strchr(loc, '/');
    size_t len = slash ? (size_t)(slash - loc) : strlen(loc);

    p = put_option(p, &last, OPT_URI_PATH, loc, len);
    loc += len;
    if (*loc == '/')
      loc++;
  }
  return (size_t)(p - buf);
}

static void send_req(struct load *ld, struct req *r, int64_t now_us)
{
  uint8_t buf[MSG_MAX];
  size_t len = ld->phase == PHASE_REGISTER ? build_register(ld, r, buf)
                                           : build_update(ld, r, buf);

  /* A failed send is left to the retransmission timer, like a loss. */
  if (send(ld->clients[r->client].fd, buf, len, 0) < 0)
    ld->st.send_errors++;
  if (r->tries == 0)
    ld->st.sent++;
  else
    ld->st.retransmits++;
  r->tries++;
  r->deadline_ms = now_us / 1000 + ACK_TIMEOUT_MS;
  list_push(&ld->wait_ack, r);
}

/* Starts the next request of client c, if it has one; false if not. */
static bool start_next(struct load *ld, uint32_t c, int64_t now_us)
{
  struct client *cl = &ld->clients[c];
  struct req *r = NULL;
  uint32_t ep_ix;

  while (cl->issued < ld->per_client) {
    ep_ix = cl->issued % (uint32_t)ld->o.regs_per_client;
    cl->issued++;
    if (ld->phase == PHASE_UPDATE &&
        ld->locs[(size_t)c * (size_t)ld->o.regs_per_client + ep_ix][0] ==
            '\0') {
      /* Its registration failed: nothing to update. */
      ld->st.skipped++;
      ld->done++;
      continue;
    }
    for (int64_t s = 0; s < ld->o.window; s++) {
      struct req *cand = &ld->reqs[(size_t)c * (size_t)ld->o.window + s];

      if (!cand->in_use) {
        r = cand;
        break;
      }
    }
    if (!r)
      return false; /* not reached: a ready entry means a free slot */
    r->in_use = true;
    r->acked = false;
    r->tries = 0;
    r->ep_ix = ep_ix;
    r->mid = cl->next_mid++;
    for (int i = 0; i < TOKEN_LEN; i++)
      r->token[i] = (uint8_t)(cl->next_token >> (8 * i));
    cl->next_token++;
    cl->inflight++;
    ld->inflight++;
    if (ld->st.first_send_us == 0)
      ld->st.first_send_us = now_us;
    send_req(ld, r, now_us);
    return true;
  }
  return false;
}

/* Ends a request, with a response code or 0 for a time-out. */
static void finish(struct load *ld, struct req *r, uint8_t code, bool rst,
                   const char *loc, int64_t now_us)
{
  struct client *cl = &ld->clients[r->client];
  uint8_t want = ld->phase == PHASE_REGISTER ? CODE_CREATED : CODE_CHANGED;

  list_unlink(r->acked ? &ld->wait_sep : &ld->wait_ack, r);
  if (rst) {
    ld->st.rst++;
  } else if (code == 0) {
    ld->st.timeouts++;
  } else {
    ld->st.responses++;
    ld->st.codes[code]++;
    if (ld->o.adaptive && ld->cap < (double)ld->o.max_inflight)
      ld->cap += 1.0 / ld->cap;
    if (code == want) {
      ld->st.ok++;
      if (ld->phase == PHASE_REGISTER && loc)
        snprintf(ld->locs[(size_t)r->client * (size_t)ld->o.regs_per_client +
                          r->ep_ix],
                 LOC_MAX, "%s", loc);
    }
  }
  r->in_use = false;
  cl->inflight--;
  ld->inflight--;
  ld->done++;
  ld->st.last_done_us = now_us;
  if (cl->issued < ld->per_client)
    ready_push(ld, r->client);
}

/* A received message, decoded. */
struct msg {
  uint8_t type, code, tkl;
  uint16_t mid;
  const uint8_t *token;
  char loc[LOC_MAX];
  bool loc_ok;
};

/*
 * Decodes the header, token and options of a message, collecting the
 * Location-Path options into "seg/seg". Returns 0 or -EINVAL.
 */
static int parse_msg(const uint8_t *b, size_t n, struct msg *m)
{
  size_t p, loclen = 0;
  unsigned num = 0;

  if (n < 4 || b[0] >> 6 != 1)
    return -EINVAL;
  m->type = (b[0] >> 4) & 3;
  m->tkl = b[0] & 0x0f;
  m->code = b[1];
  m->mid = (uint16_t)(b[2] << 8 | b[3]);
  if (m->tkl > 8 || 4u + m->tkl > n)
    return -EINVAL;
  m->token = b + 4;
  m->loc[0] = '\0';
  m->loc_ok = true;
  p = 4u + m->tkl;
  while (p < n && b[p] != 0xff) {
    unsigned delta = b[p] >> 4, len = b[p] & 0x0f;

    p++;
    if (delta == 13) {
      if (p + 1 > n)
        return -EINVAL;
      delta = b[p++] + 13u;
    } else if (delta == 14) {
      if (p + 2 > n)
        return -EINVAL;
      delta = ((unsigned)b[p] << 8 | b[p + 1]) + 269u;
      p += 2;
    } else if (delta == 15) {
      return -EINVAL;
    }
    if (len == 13) {
      if (p + 1 > n)
        return -EINVAL;
      len = b[p++] + 13u;
    } else if (len == 14) {
      if (p + 2 > n)
        return -EINVAL;
      len = ((unsigned)b[p] << 8 | b[p + 1]) + 269u;
      p += 2;
    } else if (len == 15) {
      return -EINVAL;
    }
    if (p + len > n)
      return -EINVAL;
    num += delta;
    if (num == OPT_LOCATION_PATH) {
      size_t need = loclen + (loclen > 0) + len;

      if (need >= LOC_MAX || memchr(b + p, '/', len)) {
        m->loc_ok = false;
      } else {
        if (loclen > 0)
          m->loc[loclen++] = '/';
        memcpy(m->loc + loclen, b + p, len);
        loclen += len;
        m->loc[loclen] = '\0';
      }
    }
    p += len;
  }
  return 0;
}

static struct req *match(struct load *ld, uint32_t c, const struct msg *m,
                         bool by_mid)
{
  for (int64_t s = 0; s < ld->o.window; s++) {
    struct req *r = &ld->reqs[(size_t)c * (size_t)ld->o.window + s];

    if (!r->in_use)
      continue;
    if (by_mid && r->mid != m->mid)
      continue;
    if (m->tkl == TOKEN_LEN && memcmp(r->token, m->token, TOKEN_LEN) == 0)
      return r;
    if (by_mid && m->tkl == 0 && m->code == 0)
      return r; /* empty ACK or RST: MID only */
  }
  return NULL;
}

static void send_empty_ack(struct load *ld, uint32_t c, uint16_t mid)
{
  uint8_t b[4] = {0x40 | COAP_ACK << 4, 0, (uint8_t)(mid >> 8),
                  (uint8_t)(mid & 0xff)};

  if (send(ld->clients[c].fd, b, sizeof(b), 0) < 0)
    ld->st.send_errors++;
}

static void on_datagram(struct load *ld, uint32_t c, const uint8_t *b,
                        size_t n, int64_t now_us)
{
  struct msg m;
  struct req *r;

  if (parse_msg(b, n, &m) < 0) {
    ld->st.unmatched++;
    return;
  }
  if (m.type == COAP_ACK || m.type == COAP_RST) {
    r = match(ld, c, &m, true);
    if (!r || r->acked) {
      ld->st.unmatched++; /* a duplicate answer to a retransmission */
      return;
    }
    if (m.type == COAP_RST) {
      finish(ld, r, 0, true, NULL, now_us);
    } else if (m.code == 0) {
      /* Separate response to come: stop retransmitting, keep waiting. */
      list_unlink(&ld->wait_ack, r);
      r->acked = true;
      r->deadline_ms = now_us / 1000 + SEPARATE_TIMEOUT_MS;
      list_push(&ld->wait_sep, r);
    } else {
      finish(ld, r, m.code, false, m.loc_ok ? m.loc : NULL, now_us);
    }
    return;
  }
  /* A separate response (CON or NON), matched by token alone. */
  if (m.type == COAP_CON)
    send_empty_ack(ld, c, m.mid);
  r = m.code != 0 ? match(ld, c, &m, false) : NULL;
  if (!r) {
    ld->st.unmatched++;
    return;
  }
  finish(ld, r, m.code, false, m.loc_ok ? m.loc : NULL, now_us);
}

static void check_timeouts(struct load *ld, int64_t now_us)
{
  int64_t now_ms = now_us / 1000;

  while (ld->wait_ack.head && ld->wait_ack.head->deadline_ms <= now_ms) {
    struct req *r = ld->wait_ack.head;

    if (r->tries >= ld->o.max_tries) {
      finish(ld, r, 0, false, NULL, now_us);
      continue;
    }
    list_unlink(&ld->wait_ack, r);
    /* The server falls behind: retransmissions only add to its queue. */
    if (ld->o.adaptive && now_ms >= ld->last_cut_ms + ACK_TIMEOUT_MS) {
      ld->cap = ld->cap / 2 < 1 ? 1 : ld->cap / 2;
      ld->last_cut_ms = now_ms;
      ld->st.cap_cuts++;
    }
    send_req(ld, r, now_us);
  }
  while (ld->wait_sep.head && ld->wait_sep.head->deadline_ms <= now_ms)
    finish(ld, ld->wait_sep.head, 0, false, NULL, now_us);
}

static void print_result(const struct load *ld, const char *name, double cpu_s)
{
  const struct stats *st = &ld->st;
  double el = st->last_done_us > st->first_send_us
                  ? (double)(st->last_done_us - st->first_send_us) / 1e6
                  : 0;

  printf("result phase=%s clients=%lld window=%lld requests=%lld "
         "sent=%lld retransmits=%lld timeouts=%lld responses=%lld ok=%lld",
         name, (long long)ld->o.clients, (long long)ld->o.window,
         (long long)ld->target, (long long)st->sent,
         (long long)st->retransmits, (long long)st->timeouts,
         (long long)st->responses, (long long)st->ok);
  for (int code = 0; code < 256; code++)
    if (st->codes[code] > 0)
      printf(" code_%d.%02d=%lld", code >> 5, code & 0x1f,
             (long long)st->codes[code]);
  printf(" rst=%lld unmatched=%lld skipped=%lld abandoned=%lld "
         "send_errors=%lld cap_cuts=%lld final_cap=%.0f elapsed_s=%.6f "
         "rate_per_s=%.1f cpu_s=%.3f\n",
         (long long)st->rst, (long long)st->unmatched, (long long)st->skipped,
         (long long)st->abandoned, (long long)st->send_errors,
         (long long)st->cap_cuts, ld->cap, el,
         el > 0 ? (double)st->ok / el : 0, cpu_s);
  fflush(stdout);
}

/* Runs one phase to its end: every request answered or given up, or the
 * time is up. Returns 0, or a negative errno if epoll fails. */
static int run_phase(struct load *ld, enum phase ph, uint32_t per_client,
                     int64_t duration_s, const char *name)
{
  struct epoll_event evs[EVENTS_MAX];
  int64_t start_us, stop_us, drain_us;
  double cpu0 = cpu_seconds();
  bool draining = false;

  ld->phase = ph;
  ld->per_client = per_client;
  ld->inflight = 0;
  ld->done = 0;
  ld->target = ld->o.clients * (int64_t)per_client;
  memset(&ld->st, 0, sizeof(ld->st));
  ld->ready_head = ld->ready_len = 0;
  ld->cap = (double)ld->o.max_inflight;
  ld->last_cut_ms = 0;
  for (uint32_t c = 0; c < (uint32_t)ld->o.clients; c++) {
    ld->clients[c].issued = 0;
    for (int64_t s = 0; s < ld->o.window && s < per_client; s++)
      ready_push(ld, c);
  }
  start_us = mono_us();
  stop_us = duration_s > 0 ? start_us + duration_s * 1000000 : INT64_MAX;
  drain_us = INT64_MAX;

  while (ld->done < ld->target && !stop_flag) {
    int64_t now = mono_us();
    int timeout_ms = 100;
    int n;

    if (!draining && now >= stop_us) {
      /* Time is up: no new requests; let those in flight finish. */
      draining = true;
      drain_us = now + DRAIN_MS * 1000;
      ld->ready_len = 0;
    }
    if (draining && (ld->inflight == 0 || now >= drain_us))
      break;
    while (!draining && ld->ready_len > 0 && ld->inflight < (int64_t)ld->cap) {
      uint32_t c = ready_pop(ld);

      start_next(ld, c, now);
    }
    if (ld->done >= ld->target)
      break;
    if (ld->wait_ack.head) {
      int64_t left = ld->wait_ack.head->deadline_ms - now / 1000;

      if (left < timeout_ms)
        timeout_ms = left > 0 ? (int)left : 0;
    }
    n = epoll_wait(ld->epfd, evs, EVENTS_MAX, timeout_ms);
    if (n < 0 && errno != EINTR) {
      int e = errno;

      log_err("epoll_wait: %s", strerror(e));
      return -e;
    }
    now = mono_us();
    for (int i = 0; i < n; i++) {
      uint32_t c = evs[i].data.u32;
      uint8_t buf[MSG_MAX];
      /* One datagram per event: with a window of 1 there is rarely a
       * second, and the level-triggered epoll reports it again. */
      ssize_t len = recv(ld->clients[c].fd, buf, sizeof(buf), MSG_DONTWAIT);

      if (len > 0)
        on_datagram(ld, c, buf, (size_t)len, now);
    }
    check_timeouts(ld, now);
  }
  ld->st.abandoned = ld->inflight;
  /* Free the slots of abandoned requests for the next phase. */
  while (ld->wait_ack.head) {
    ld->wait_ack.head->in_use = false;
    list_unlink(&ld->wait_ack, ld->wait_ack.head);
  }
  while (ld->wait_sep.head) {
    ld->wait_sep.head->in_use = false;
    list_unlink(&ld->wait_sep, ld->wait_sep.head);
  }
  for (uint32_t c = 0; c < (uint32_t)ld->o.clients; c++)
    ld->clients[c].inflight = 0;
  print_result(ld, name, cpu_seconds() - cpu0);
  return 0;
}

/* Raises the soft descriptor limit to the hard one; fails if the clients
 * still do not fit. */
static int raise_fd_limit(int64_t clients)
{
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return -errno;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    return -errno;
  if (rl.rlim_cur != RLIM_INFINITY &&
      (rlim_t)clients + FD_SPARE > rl.rlim_cur) {
    log_err("%lld clients need %lld descriptors; the limit is %llu: run "
            "several processes with distinct --first-client and "
            "--ep-prefix (bench/bench_rd.sh does)",
            (long long)clients, (long long)clients + FD_SPARE,
            (unsigned long long)rl.rlim_cur);
    return -EMFILE;
  }
  return 0;
}

static int open_clients(struct load *ld)
{
  uint32_t base = ntohl(ld->o.source_base.s_addr);
  uint32_t seed = (uint32_t)getpid() * 2654435761u ^ (uint32_t)mono_us();

  for (uint32_t c = 0; c < (uint32_t)ld->o.clients; c++) {
    struct client *cl = &ld->clients[c];
    uint64_t g = (uint64_t)ld->o.first_client + c;
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = c};
    char a[INET_ADDRSTRLEN];

    src.sin_addr.s_addr =
        htonl(base + (uint32_t)(g / (uint64_t)ld->o.per_addr));
    cl->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cl->fd < 0) {
      int e = errno;

      log_err("socket %u: %s", c, strerror(e));
      return -e;
    }
    /* Bound to an explicit source address, so each 127.0.0.x gives its
     * own range of ephemeral ports. */
    if (bind(cl->fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
        connect(cl->fd, (struct sockaddr *)&ld->o.server,
                sizeof(ld->o.server)) < 0) {
      int e = errno;

      inet_ntop(AF_INET, &src.sin_addr, a, sizeof(a));
      log_err("client %u from %s: %s (lower --per-addr?)", c, a, strerror(e));
      return -e;
    }
    if (epoll_ctl(ld->epfd, EPOLL_CTL_ADD, cl->fd, &ev) < 0) {
      int e = errno;

      log_err("epoll_ctl: %s", strerror(e));
      return -e;
    }
    /* Random first message IDs: servers that name resources after the
     * MID (coap-rd) should not see the same one from every socket. */
    seed = seed * 1103515245u + 12345u;
    cl->next_mid = (uint16_t)(seed >> 16);
    cl->next_token = seed;
  }
  return 0;
}

static void usage(FILE *f)
{
  fprintf(
      f,
      "usage: rd_load --server IP:PORT [options]\n"
      "  --server IP:PORT         the LwM2M server (IPv4)\n"
      "  --clients N              client sockets, each its own source port "
      "(1)\n"
      "  --phase P                register, update or both (register):\n"
      "                           update registers first (reported as\n"
      "                           phase=setup), then times the Updates\n"
      "  --regs-per-client R      endpoints each socket registers, one after\n"
      "                           the other (1)\n"
      "  --updates-per-client K   Updates each socket sends (10)\n"
      "  --window W               requests in flight per socket (1)\n"
      "  --max-inflight G         requests in flight in all (0: no cap)\n"
      "  --adaptive               halve that cap when requests time out\n"
      "                           (once per 2 s), grow it back by one per\n"
      "                           cap's worth of answers\n"
      "  --duration S             seconds per phase at most (120)\n"
      "  --setup-duration S       seconds at most for the registrations\n"
      "                           before Updates (--duration)\n"
      "  --go-file F              start the Updates once F exists, so that\n"
      "                           several processes time them together\n"
      "  --max-tries T            transmissions before giving up (5)\n"
      "  --ep-prefix S            endpoint name prefix (rdload-)\n"
      "  --lifetime S             lt= of each Register (86400)\n"
      "  --payload S              Register body (</1/0>,</3/0>)\n"
      "  --source-base IP         first source address (127.0.0.1)\n"
      "  --per-addr M             clients per source address (16384)\n"
      "  --first-client F         number of the first client, for several\n"
      "                           processes: endpoints and source addresses\n"
      "                           follow from it (0)\n"
      "  --start-at-ms T          wait until Unix time T (ms) to start\n"
      "  --hold                   keep the sockets open after the phases\n"
      "                           until SIGTERM or SIGINT\n"
      "Prints one line per phase:\n"
      "  result phase=P clients= window= requests= sent= retransmits=\n"
      "  timeouts= responses= ok= code_X.YY=... rst= unmatched= skipped=\n"
      "  abandoned= send_errors= cap_cuts= final_cap= elapsed_s= rate_per_s=\n"
      "  cpu_s=\n"
      "then \"cpu total_s=T\" (getrusage, whole process) and \"done\".\n");
}

static int num_arg(const char *name, const char *s, int64_t min, int64_t max,
                   int64_t *out)
{
  int rc = parse_int64(s, min, max, out);

  if (rc < 0)
    log_err("--%s: '%s' is not a number in %lld..%lld", name, s,
            (long long)min, (long long)max);
  return rc;
}

enum {
  OPT_SERVER = 256,
  OPT_CLIENTS,
  OPT_PHASE,
  OPT_REGS,
  OPT_UPDATES,
  OPT_WINDOW,
  OPT_MAX_INFLIGHT,
  OPT_DURATION,
  OPT_SETUP_DURATION,
  OPT_GO_FILE,
  OPT_MAX_TRIES,
  OPT_PREFIX,
  OPT_LIFETIME,
  OPT_PAYLOAD,
  OPT_SOURCE_BASE,
  OPT_PER_ADDR,
  OPT_FIRST_CLIENT,
  OPT_START_AT,
  OPT_HOLD,
  OPT_ADAPTIVE,
  OPT_HELP,
};

static const struct option long_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"phase", required_argument, NULL, OPT_PHASE},
    {"regs-per-client", required_argument, NULL, OPT_REGS},
    {"updates-per-client", required_argument, NULL, OPT_UPDATES},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"setup-duration", required_argument, NULL, OPT_SETUP_DURATION},
    {"go-file", required_argument, NULL, OPT_GO_FILE},
    {"max-tries", required_argument, NULL, OPT_MAX_TRIES},
    {"ep-prefix", required_argument, NULL, OPT_PREFIX},
    {"lifetime", required_argument, NULL, OPT_LIFETIME},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"source-base", required_argument, NULL, OPT_SOURCE_BASE},
    {"per-addr", required_argument, NULL, OPT_PER_ADDR},
    {"first-client", required_argument, NULL, OPT_FIRST_CLIENT},
    {"start-at-ms", required_argument, NULL, OPT_START_AT},
    {"hold", no_argument, NULL, OPT_HOLD},
    {"adaptive", no_argument, NULL, OPT_ADAPTIVE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_server(const char *s, struct sockaddr_in *out)
{
  struct sockaddr_storage ss;
  socklen_t len;
  char err[128];

  if (parse_hostport(s, &ss, &len, err, sizeof(err)) < 0) {
    log_err("--server: %s", err);
    return -EINVAL;
  }
  if (ss.ss_family != AF_INET) {
    log_err("--server: only IPv4 addresses are supported");
    return -EINVAL;
  }
  memcpy(out, &ss, sizeof(*out));
  return 0;
}

/* Parses the command line into o; returns 0, 1 for --help, or -EINVAL. */
static int parse_args(int argc, char **argv, struct opts *o)
{
  const char *phase = "register";
  bool have_server = false;
  int c, rc = 0;

  *o = (struct opts){
      .clients = 1,
      .regs_per_client = 1,
      .updates_per_client = 10,
      .window = 1,
      .duration_s = 120,
      .setup_duration_s = -1,
      .max_tries = 5,
      .lifetime = 86400,
      .per_addr = 16384,
      .ep_prefix = "rdload-",
      .payload = "</1/0>,</3/0>",
  };
  o->source_base.s_addr = htonl(INADDR_LOOPBACK);
  for (c = getopt_long(argc, argv, "", long_opts, NULL); c != -1 && rc == 0;
       c = getopt_long(argc, argv, "", long_opts, NULL)) {
    switch (c) {
    case OPT_SERVER:
      rc = parse_server(optarg, &o->server);
      have_server = rc == 0;
      break;
    case OPT_CLIENTS:
      rc = num_arg("clients", optarg, 1, 1000000, &o->clients);
      break;
    case OPT_PHASE:
      phase = optarg;
      break;
    case OPT_REGS:
      rc = num_arg("regs-per-client", optarg, 1, 1000000, &o->regs_per_client);
      break;
    case OPT_UPDATES:
      rc = num_arg("updates-per-client", optarg, 0, 100000000,
                   &o->updates_per_client);
      break;
    case OPT_WINDOW:
      rc = num_arg("window", optarg, 1, 256, &o->window);
      break;
    case OPT_MAX_INFLIGHT:
      rc = num_arg("max-inflight", optarg, 0, 100000000, &o->max_inflight);
      break;
    case OPT_DURATION:
      rc = num_arg("duration", optarg, 0, 86400, &o->duration_s);
      break;
    case OPT_SETUP_DURATION:
      rc = num_arg("setup-duration", optarg, 0, 86400, &o->setup_duration_s);
      break;
    case OPT_GO_FILE:
      o->go_file = optarg;
      break;
    case OPT_MAX_TRIES:
      rc = num_arg("max-tries", optarg, 1, 100, &o->max_tries);
      break;
    case OPT_PREFIX:
      o->ep_prefix = optarg;
      if (strlen(optarg) > PREFIX_MAX - 12) {
        log_err("--ep-prefix: at most %d characters", PREFIX_MAX - 12);
        rc = -EINVAL;
      }
      break;
    case OPT_LIFETIME:
      rc = num_arg("lifetime", optarg, 1, UINT32_MAX, &o->lifetime);
      break;
    case OPT_PAYLOAD:
      o->payload = optarg;
      if (strlen(optarg) > PAYLOAD_MAX) {
        log_err("--payload: at most %d bytes", PAYLOAD_MAX);
        rc = -EINVAL;
      }
      break;
    case OPT_SOURCE_BASE:
      if (inet_pton(AF_INET, optarg, &o->source_base) != 1) {
        log_err("--source-base: '%s' is not an IPv4 address", optarg);
        rc = -EINVAL;
      }
      break;
    case OPT_PER_ADDR:
      rc = num_arg("per-addr", optarg, 1, 60000, &o->per_addr);
      break;
    case OPT_FIRST_CLIENT:
      rc = num_arg("first-client", optarg, 0, 100000000, &o->first_client);
      break;
    case OPT_START_AT:
      rc = num_arg("start-at-ms", optarg, 0, INT64_MAX, &o->start_at_ms);
      break;
    case OPT_HOLD:
      o->hold = true;
      break;
    case OPT_ADAPTIVE:
      o->adaptive = true;
      break;
    case OPT_HELP:
      usage(stdout);
      return 1;
    default:
      usage(stderr);
      return -EINVAL;
    }
  }
  if (rc < 0)
    return rc;
  if (optind < argc) {
    log_err("unexpected argument '%s'", argv[optind]);
    return -EINVAL;
  }
  if (!have_server) {
    log_err("--server IP:PORT is required");
    return -EINVAL;
  }
  if (strcmp(phase, "register") == 0) {
    o->do_register_report = true;
  } else if (strcmp(phase, "update") == 0) {
    o->do_update = true;
  } else if (strcmp(phase, "both") == 0) {
    o->do_register_report = true;
    o->do_update = true;
  } else {
    log_err("--phase: register, update or both");
    return -EINVAL;
  }
  /* Each endpoint keeps its location (LOC_MAX bytes). */
  if (o->clients * o->regs_per_client > 20000000) {
    log_err("--clients times --regs-per-client: at most 20000000");
    return -EINVAL;
  }
  /* No cap means every slot of every socket. */
  if (o->max_inflight == 0 || o->max_inflight > o->clients * o->window)
    o->max_inflight = o->clients * o->window;
  /* 127.0.0.x source addresses must stay inside the address block. */
  if ((ntohl(o->source_base.s_addr) & 0xff) +
          (uint64_t)(o->first_client + o->clients - 1) /
              (uint64_t)o->per_addr >
      254) {
    log_err("too many clients for the source addresses from --source-base "
            "with --per-addr %lld",
            (long long)o->per_addr);
    return -EINVAL;
  }
  return 0;
}

static void wait_until(int64_t at_ms)
{
  while (!stop_flag) {
    int64_t left = at_ms - wall_ms();
    struct timespec ts;

    if (left <= 0)
      return;
    if (left > 100)
      left = 100;
    ts.tv_sec = 0;
    ts.tv_nsec = (long)left * 1000000;
    nanosleep(&ts, NULL);
  }
}

/* Waits until path exists, a signal comes, or ten minutes have passed. */
static void wait_for_file(const char *path)
{
  int64_t until = wall_ms() + 600000;

  while (!stop_flag && access(path, F_OK) != 0) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};

    if (wall_ms() >= until) {
      log_err("--go-file %s: not there after ten minutes", path);
      stop_flag = 1;
      return;
    }
    nanosleep(&ts, NULL);
  }
}

int main(int argc, char **argv)
{
  struct load ld = {.epfd = -1};
  struct sigaction sa = {.sa_handler = on_signal};
  size_t nslots, nlocs;
  int rc;

  rc = parse_args(argc, argv, &ld.o);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (raise_fd_limit(ld.o.clients) < 0)
    return 2;

  nslots = (size_t)ld.o.clients * (size_t)ld.o.window;
  nlocs = (size_t)ld.o.clients * (size_t)ld.o.regs_per_client;
  ld.clients = xcalloc((size_t)ld.o.clients, sizeof(*ld.clients));
  ld.reqs = xcalloc(nslots, sizeof(*ld.reqs));
  ld.locs = xcalloc(nlocs, sizeof(*ld.locs));
  ld.ready_cap = nslots + 1;
  ld.ready = xcalloc(ld.ready_cap, sizeof(*ld.ready));
  for (size_t i = 0; i < nslots; i++)
    ld.reqs[i].client = (uint32_t)(i / (size_t)ld.o.window);
  for (int64_t c = 0; c < ld.o.clients; c++)
    ld.clients[c].fd = -1;

  rc = -1;
  ld.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (ld.epfd < 0) {
    log_err("epoll_create1: %s", strerror(errno));
    goto out;
  }
  if (open_clients(&ld) < 0)
    goto out;
  if (ld.o.start_at_ms > 0)
    wait_until(ld.o.start_at_ms);

  if (run_phase(
          &ld, PHASE_REGISTER, (uint32_t)ld.o.regs_per_client,
          ld.o.do_update && ld.o.setup_duration_s >= 0 ? ld.o.setup_duration_s
                                                       : ld.o.duration_s,
          ld.o.do_register_report ? phase_names[PHASE_REGISTER] : "setup") < 0)
    goto out;
  fflush(stdout);
  if (ld.o.do_update && ld.o.go_file)
    wait_for_file(ld.o.go_file);
  if (ld.o.do_update && !stop_flag &&
      run_phase(&ld, PHASE_UPDATE, (uint32_t)ld.o.updates_per_client,
                ld.o.duration_s, phase_names[PHASE_UPDATE]) < 0)
    goto out;
  printf("cpu total_s=%.3f\ndone\n", cpu_seconds());
  fflush(stdout);
  rc = stop_flag ? 1 : 0;
  /* The sockets stay open, so the server keeps seeing distinct peers
   * while other processes add theirs. */
  while (ld.o.hold && !stop_flag) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};

    nanosleep(&ts, NULL);
  }
out:
  for (int64_t c = 0; c < ld.o.clients; c++)
    if (ld.clients[c].fd >= 0)
      close(ld.clients[c].fd);
  if (ld.epfd >= 0)
    close(ld.epfd);
  free(ld.ready);
  free(ld.locs);
  free(ld.reqs);
  free(ld.clients);
  return rc == 0 ? 0 : 1;
}
