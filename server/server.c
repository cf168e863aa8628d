/*
 * The libcoap context on our loop: listeners, the dispatch of incoming
 * requests to the registration interface and Send, and the write
 * transaction shared by one loop iteration.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define LOG_TAG "coap"

/* Idle time after which libcoap frees a session nobody holds (s). */
#define SESSION_IDLE_S 30
/* Most reads asked of one ready socket in one libcoap call. Each call
 * ends with a walk over every session, so the more datagrams it takes,
 * the less that walk costs each: at 100,000 sessions, 1024 instead of 64
 * took Updates from 5,000 to 39,000 per second. The batch grows only as
 * far as the socket keeps datagrams queued (see drain()). */
#define READ_BATCH_MAX 1024
/* A write transaction is committed this long after it opened, or when it
 * holds COMMIT_WRITES_MAX writes: one commit for a burst of work. */
#define SRV_COMMIT_MS 10
#define COMMIT_WRITES_MAX 4096
/* Events handed to libcoap per drain round; more wait for the next one. */
#define DRAIN_EVENTS 128
/* Upper bound between two libcoap timer scans (retransmits, idle sessions):
 * scanning walks every session, so it is not done per packet. */
#define SCAN_INTERVAL_MS 100

/* Servers alive; libcoap is set up for the first and torn down after the
 * last, so a clean exit leaves nothing for leak checkers to report. */
static int lib_users;

static void coap_log_cb(coap_log_t level, const char *message)
{
  enum log_level l = LL_DEBUG;

  if (level <= LOG_ERR)
    l = LL_ERR;
  else if (level == LOG_WARNING)
    l = LL_WARN;
  else if (level == LOG_NOTICE)
    l = LL_NOTICE;
  else if (level == LOG_INFO)
    l = LL_INFO;
  log_msg(l, LOG_TAG, "%s", message);
}

void srv_set_log_level(enum log_level level)
{
  /* libcoap is chatty at info; keep it one step quieter than ours. */
  coap_set_log_level(level >= LL_DEBUG ? LOG_DEBUG : LOG_WARNING);
}

int srv_txn(struct srv *srv)
{
  int rc;

  srv->txn_writes++;
  if (srv->in_txn)
    return 0;
  rc = db_begin(srv->db);
  if (rc == 0) {
    srv->in_txn = true;
    srv->txn_since = loop_now(srv->loop);
    srv->txn_writes = 1;
  }
  return rc;
}

static void txn_commit(struct srv *srv)
{
  if (!srv->in_txn)
    return;
  srv->in_txn = false;
  loop_timer_disarm(srv->loop, &srv->commit_timer);
  if (db_commit(srv->db) < 0) {
    log_err("commit of registration changes failed; rolling back");
    db_rollback(srv->db);
  }
}

void srv_fill_token(struct srv *srv, uint8_t *token)
{
  /* A counter mixed with a per-run salt: unique within the run, and not
   * guessable across runs, so a stale notification never matches. */
  uint64_t v = (srv->next_token++ * 0x9e3779b97f4a7c15ULL) ^ srv->token_salt;

  for (int i = 0; i < SRV_TOKEN_LEN; i++)
    token[i] = (uint8_t)(v >> (8 * i));
}

/* Reads the first path segment of a request into seg; the rest into rest. */
static void split_path(const coap_pdu_t *pdu, char *seg, size_t seglen,
                       char *rest, size_t restlen)
{
  coap_opt_iterator_t oi;
  coap_opt_t *opt;
  size_t off = 0;
  bool first = true;

  seg[0] = '\0';
  rest[0] = '\0';
  coap_option_iterator_init(pdu, &oi, COAP_OPT_ALL);
  while ((opt = coap_option_next(&oi)) != NULL) {
    const uint8_t *v = coap_opt_value(opt);
    size_t len = coap_opt_length(opt);

    if (oi.number != COAP_OPTION_URI_PATH)
      continue;
    if (first) {
      size_t n = len < seglen - 1 ? len : seglen - 1;

      memcpy(seg, v, n);
      seg[n] = '\0';
      first = false;
      continue;
    }
    if (off + len + 2 >= restlen) {
      /* Longer than any path we serve: make it match nothing. */
      snprintf(rest, restlen, "\x01");
      return;
    }
    if (off > 0)
      rest[off++] = '/';
    memcpy(rest + off, v, len);
    off += len;
    rest[off] = '\0';
  }
}

/*
 * Every request from a device lands here (libcoap's "unknown resource"):
 * the paths are dynamic (/rd/<location>), so we dispatch ourselves.
 */
static void on_request(coap_resource_t *resource, coap_session_t *session,
                       const coap_pdu_t *req, const coap_string_t *query,
                       coap_pdu_t *resp)
{
  struct srv *srv = coap_get_app_data(coap_session_get_context(session));
  char seg[16], rest[128];

  srv->rx_count++;
  split_path(req, seg, sizeof(seg), rest, sizeof(rest));
  if (strcmp(seg, "rd") == 0) {
    srv_handle_rd(srv, session, req, resp, rest);
  } else if (strcmp(seg, "dp") == 0 && rest[0] == '\0') {
    srv_handle_dp(srv, session, req, resp);
  } else if (strcmp(seg, "fw") == 0) {
    srv_handle_fw(srv, session, req, resp, rest);
  } else {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
  }
  srv->coap_codes[coap_pdu_get_code(resp) & 0xff]++;
}

/*
 * libcoap reads one datagram per ready socket per coap_io_do_epoll() call,
 * and each call ends by walking every session for timers: at 10,000
 * sessions that walk costs more than the datagram. So each ready event is
 * handed over read_batch times, sized to what the last call found; reads
 * past the end of the socket queue just fail with EAGAIN (muted). The
 * batch doubles while calls find it full, and otherwise asks for what the
 * last call got plus a margin that grows with the sessions: a read that
 * finds nothing costs about a microsecond, the walk about a tenth of one
 * per session.
 */
static void drain(struct srv *srv)
{
  struct epoll_event evs[DRAIN_EVENTS], batch[DRAIN_EVENTS * 8];

  if (srv->read_batch == 0)
    srv->read_batch = 1;
  /* Bounded: other fds and timers get their turn between rounds. */
  for (int round = 0; round < 8; round++) {
    int n = epoll_wait(srv->coap_fd, evs, DRAIN_EVENTS, 0);
    size_t total = 0;
    uint64_t before = srv->rx_count;

    if (n <= 0)
      break;
    for (int i = 0; i < n; i++) {
      size_t k = (evs[i].events & EPOLLIN) ? srv->read_batch : 1;

      while (k-- > 0 && total < ARRAY_SIZE(batch))
        batch[total++] = evs[i];
    }
    if (total > (size_t)n)
      coap_set_log_level(LOG_ERR);
    coap_io_do_epoll(srv->ctx, batch, total);
    if (total > (size_t)n)
      srv_set_log_level(log_get_level());
    {
      size_t got = (size_t)(srv->rx_count - before);
      size_t want = got >= srv->read_batch ? 2 * srv->read_batch
                                           : got + srv->by_ep.len / 256 + 1;

      srv->read_batch = want > READ_BATCH_MAX ? READ_BATCH_MAX : want;
    }
    if (n < DRAIN_EVENTS)
      break;
  }
}

static void on_coap_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
  drain(arg);
}

static void on_io_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct srv *srv = arg;
  coap_tick_t now;
  unsigned int ms;

  coap_ticks(&now);
  ms = coap_io_prepare_epoll(srv->ctx, now);
  if (ms == 0 || ms > SCAN_INTERVAL_MS)
    ms = SCAN_INTERVAL_MS;
  loop_timer_arm(loop, t, ms);
}

static void on_sweep(struct loop *loop, struct loop_timer *t, void *arg)
{
  srv_queue_sweep(arg);
  loop_timer_arm(loop, t, 1000);
}

static void on_commit_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  txn_commit(arg);
}

/* Commits once the transaction is old or large enough, else soon. */
static void before_sleep(struct loop *loop, void *arg)
{
  struct srv *srv = arg;

  if (!srv->in_txn)
    return;
  if (srv->txn_writes >= COMMIT_WRITES_MAX ||
      loop_now(loop) - srv->txn_since >= SRV_COMMIT_MS)
    txn_commit(srv);
  else if (!loop_timer_armed(&srv->commit_timer))
    loop_timer_arm_at(loop, &srv->commit_timer,
                      srv->txn_since + SRV_COMMIT_MS);
}

/*
 * libcoap 4.3.1 has no accessor for an endpoint's bound address, but
 * coap_endpoint_str() prints it ("127.0.0.1:38110 UDP", "[::1]:5683 UDP")
 * after the bind, so a listener on port 0 can report its real port.
 */
static int endpoint_port(const coap_endpoint_t *ep)
{
  const char *s = coap_endpoint_str(ep);
  const char *space = strchr(s, ' ');
  const char *colon;
  char digits[8];
  size_t len;
  int64_t port;

  if (!space)
    return -1;
  colon = space;
  while (colon > s && *colon != ':')
    colon--;
  len = (size_t)(space - colon - 1);
  if (*colon != ':' || len == 0 || len >= sizeof(digits))
    return -1;
  memcpy(digits, colon + 1, len);
  digits[len] = '\0';
  if (parse_int64(digits, 0, 65535, &port) < 0)
    return -1;
  return (int)port;
}

/*
 * libcoap does not expose an endpoint's socket either; find ours among
 * the open descriptors by its bound address (to size its receive buffer,
 * so that a burst of registrations is not dropped by the kernel, and to
 * ping devices from it). -1 if not found.
 */
static int find_socket(const struct sockaddr_storage *want, int port)
{
  for (int fd = 3; fd < 4096; fd++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int type = 0;
    socklen_t tlen = sizeof(type);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        ss.ss_family != want->ss_family ||
        sockaddr_port((struct sockaddr *)&ss) != port)
      continue;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
        type == SOCK_DGRAM)
      return fd;
  }
  log_warn("UDP socket of port %d not found", port);
  return -1;
}

static void set_rcvbuf(int fd, int64_t bytes)
{
  int size = (int)bytes;

  /* FORCE works as root; otherwise the kernel caps at rmem_max. */
  if (fd >= 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
    log_warn("cannot set the UDP receive buffer: %s", strerror(errno));
}

static int listen_on(struct srv *srv, const char *hostport, coap_proto_t proto,
                     coap_endpoint_t **ep, int *port, int *fd, char *err,
                     size_t errlen)
{
  const char *name = proto == COAP_PROTO_DTLS ? "CoAPS" : "CoAP";
  struct sockaddr_storage ss;
  coap_address_t addr;
  socklen_t len;

  if (parse_hostport(hostport, &ss, &len, err, errlen) < 0)
    return -EINVAL;
  coap_address_init(&addr);
  memcpy(&addr.addr, &ss, len);
  addr.size = len;
  *ep = coap_new_endpoint(srv->ctx, &addr, proto);
  if (!*ep) {
    snprintf(err, errlen, "cannot listen for %s on %s (see above)", name,
             hostport);
    return -EADDRINUSE;
  }
  *port = endpoint_port(*ep);
  *fd = find_socket(&ss, *port);
  if (srv->cfg.udp_rcvbuf > 0)
    set_rcvbuf(*fd, srv->cfg.udp_rcvbuf);
  log_info("listening for %s on %s (udp port %d)", name, hostport, *port);
  return 0;
}

static uint64_t random_u64(void)
{
  uint64_t v = 0;

  if (crypto_random(&v, sizeof(v)) < 0)
    log_warn("no random source: tokens will be predictable");
  return v;
}

/* libcoap's session events: a new session may be a device fotad pinged
 * after a restart (registry.c). */
static int on_event(coap_session_t *session, const coap_event_t event)
{
  if (event == COAP_EVENT_SERVER_SESSION_NEW)
    srv_reg_session_new(coap_get_app_data(coap_session_get_context(session)),
                        session);
  return 0;
}

struct srv *srv_new(struct loop *loop, struct db *db,
                    const struct srv_config *cfg, char *err, size_t errlen)
{
  struct srv *srv = xcalloc(1, sizeof(*srv));
  coap_resource_t *unknown;
  int dtls_fd = -1;

  if (lib_users++ == 0) {
    coap_startup();
    coap_set_log_handler(coap_log_cb);
    coap_dtls_set_log_level(LOG_WARNING);
  }
  srv_set_log_level(log_get_level());
  srv->loop = loop;
  srv->db = db;
  srv->cfg = *cfg;
  srv->coap_fd = -1;
  srv->udp_fd = -1;
  srv->dtls_port = -1;
  srv->pki_rpk = cfg->dtls_rpk;
  hmap_init(&srv->peer_ids);
  srv->token_salt = random_u64();
  srv->next_handle = 1;
  loop_timer_init(&srv->io_timer, on_io_timer, srv);
  loop_timer_init(&srv->sweep_timer, on_sweep, srv);
  loop_timer_init(&srv->commit_timer, on_commit_timer, srv);
  srv_registry_init(srv);
  srv_requests_init(srv);

  srv->model = lwm2m_model_new();
  if (cfg->objects_dir && cfg->objects_dir[0]) {
    int n = lwm2m_model_load_dir(srv->model, cfg->objects_dir, err, errlen);

    if (n < 0)
      goto fail;
    log_info("loaded %d object definitions from %s", n, cfg->objects_dir);
  }

  srv->ctx = coap_new_context(NULL);
  if (!srv->ctx) {
    snprintf(err, errlen, "cannot create the CoAP context");
    goto fail;
  }
  coap_set_app_data(srv->ctx, srv);
  coap_context_set_block_mode(srv->ctx,
                              COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  coap_context_set_max_idle_sessions(srv->ctx, 0);
  /* Sessions of registered devices are held by their registration; the
   * others (download sockets, one-off clients) are only scanned by
   * libcoap's timer walk, so let them go after a short idle time. */
  coap_context_set_session_timeout(srv->ctx, SESSION_IDLE_S);
  coap_register_response_handler(srv->ctx, srv_on_response);
  coap_register_nack_handler(srv->ctx, srv_on_nack);
  coap_register_event_handler(srv->ctx, on_event);
  unknown = coap_resource_unknown_init2(on_request, 0);
  coap_register_handler(unknown, COAP_REQUEST_GET, on_request);
  coap_register_handler(unknown, COAP_REQUEST_POST, on_request);
  coap_register_handler(unknown, COAP_REQUEST_PUT, on_request);
  coap_register_handler(unknown, COAP_REQUEST_DELETE, on_request);
  coap_register_handler(unknown, COAP_REQUEST_FETCH, on_request);
  coap_register_handler(unknown, COAP_REQUEST_IPATCH, on_request);
  coap_add_resource(srv->ctx, unknown);

  if (srv_registry_load(srv) < 0) {
    snprintf(err, errlen, "cannot load the stored registrations");
    goto fail;
  }
  if (listen_on(srv, cfg->coap_listen, COAP_PROTO_UDP, &srv->udp,
                &srv->udp_port, &srv->udp_fd, err, errlen) < 0)
    goto fail;
  if (srv_dtls_setup(srv, err, errlen) < 0)
    goto fail;
  if (cfg->coaps_listen && cfg->coaps_listen[0] &&
      listen_on(srv, cfg->coaps_listen, COAP_PROTO_DTLS, &srv->dtls,
                &srv->dtls_port, &dtls_fd, err, errlen) < 0)
    goto fail;

  srv->coap_fd = coap_context_get_coap_fd(srv->ctx);
  if (srv->coap_fd < 0) {
    snprintf(err, errlen, "libcoap was built without epoll support");
    goto fail;
  }
  if (loop_fd_add(loop, srv->coap_fd, EPOLLIN, on_coap_fd, srv) < 0) {
    srv->coap_fd = -1;
    snprintf(err, errlen, "cannot watch the CoAP fd");
    goto fail;
  }
  if (loop_hook_add(loop, before_sleep, srv) < 0) {
    snprintf(err, errlen, "too many loop hooks");
    goto fail;
  }
  loop_timer_arm(loop, &srv->io_timer, 0);
  loop_timer_arm(loop, &srv->sweep_timer, 1000);
  return srv;
fail:
  srv_free(srv);
  return NULL;
}

void srv_free(struct srv *srv)
{
  if (!srv)
    return;
  loop_timer_disarm(srv->loop, &srv->io_timer);
  loop_timer_disarm(srv->loop, &srv->sweep_timer);
  loop_hook_del(srv->loop, before_sleep, srv);
  if (srv->coap_fd >= 0)
    loop_fd_del(srv->loop, srv->coap_fd);
  srv_requests_free(srv);
  srv_registry_free(srv);
  txn_commit(srv);
  if (srv->ctx)
    coap_free_context(srv->ctx);
  srv_dtls_free(srv);
  lwm2m_model_free(srv->model);
  free(srv);
  if (--lib_users == 0)
    coap_cleanup();
}

int srv_add_listener(struct srv *srv, const struct srv_events *ev, void *arg)
{
  if (srv->nlisteners == ARRAY_SIZE(srv->listeners))
    return -ENOSPC;
  srv->listeners[srv->nlisteners].ev = ev;
  srv->listeners[srv->nlisteners].arg = arg;
  srv->nlisteners++;
  return 0;
}

int srv_coap_port(const struct srv *srv)
{
  return srv->udp_port;
}

int srv_coaps_port(const struct srv *srv)
{
  return srv->dtls_port;
}

const struct lwm2m_model *srv_model(const struct srv *srv)
{
  return srv->model;
}

void srv_code_format(uint8_t code, char *buf, size_t len)
{
  snprintf(buf, len, "%d.%02d", code >> 5, code & 0x1f);
}
