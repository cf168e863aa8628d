#include "server/srv.h"

#include <coap3/coap.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define LOG_TAG "coap"

struct srv {
  struct loop *loop;
  struct db *db;
  coap_context_t *ctx;
  coap_endpoint_t *udp;
  int coap_fd;
  int udp_port;
  /* Fires when libcoap has retransmissions or time-outs due. */
  struct loop_timer io_timer;
};

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

static void process(struct srv *srv)
{
  if (coap_io_process(srv->ctx, COAP_IO_NO_WAIT) < 0)
    log_err("coap_io_process failed");
}

static void on_coap_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
  process(arg);
}

static void on_io_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  process(arg);
}

/*
 * Before the loop sleeps, ask libcoap when it next needs to run (a
 * retransmission, an observe notification, a session time-out) and arm our
 * timer for then. libcoap's own fds sit behind its epoll fd.
 */
static void before_sleep(struct loop *loop, void *arg)
{
  struct srv *srv = arg;
  coap_tick_t now;
  unsigned int ms;

  coap_ticks(&now);
  ms = coap_io_prepare_epoll(srv->ctx, now);
  if (ms == 0)
    loop_timer_disarm(loop, &srv->io_timer);
  else
    loop_timer_arm(loop, &srv->io_timer, ms);
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

static int listen_udp(struct srv *srv, const char *hostport, char *err,
                      size_t errlen)
{
  struct sockaddr_storage ss;
  coap_address_t addr;
  socklen_t len;

  if (parse_hostport(hostport, &ss, &len, err, errlen) < 0)
    return -EINVAL;
  coap_address_init(&addr);
  memcpy(&addr.addr, &ss, len);
  addr.size = len;
  srv->udp = coap_new_endpoint(srv->ctx, &addr, COAP_PROTO_UDP);
  if (!srv->udp) {
    snprintf(err, errlen, "cannot listen for CoAP on %s (see above)",
             hostport);
    return -EADDRINUSE;
  }
  srv->udp_port = endpoint_port(srv->udp);
  log_info("listening for CoAP on %s (udp port %d)", hostport, srv->udp_port);
  return 0;
}

struct srv *srv_new(struct loop *loop, struct db *db,
                    const struct srv_config *cfg, char *err, size_t errlen)
{
  struct srv *srv = xcalloc(1, sizeof(*srv));

  if (lib_users++ == 0) {
    coap_startup();
    coap_set_log_handler(coap_log_cb);
    coap_dtls_set_log_level(LOG_WARNING);
  }
  srv_set_log_level(log_get_level());
  srv->loop = loop;
  srv->db = db;
  srv->coap_fd = -1;
  loop_timer_init(&srv->io_timer, on_io_timer, srv);

  srv->ctx = coap_new_context(NULL);
  if (!srv->ctx) {
    snprintf(err, errlen, "cannot create the CoAP context");
    goto fail;
  }
  coap_context_set_block_mode(srv->ctx,
                              COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  if (listen_udp(srv, cfg->coap_listen, err, errlen) < 0)
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
  loop_hook_del(srv->loop, before_sleep, srv);
  if (srv->coap_fd >= 0)
    loop_fd_del(srv->loop, srv->coap_fd);
  if (srv->ctx)
    coap_free_context(srv->ctx);
  free(srv);
  if (--lib_users == 0)
    coap_cleanup();
}

int srv_coap_port(const struct srv *srv)
{
  return srv->udp_port;
}
