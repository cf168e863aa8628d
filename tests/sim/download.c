/*
 * Pull downloads of packages: coap:// and coaps:// (PSK) with Block2 on a
 * session of their own (a new socket, as a real device's downloader), and
 * http:// and https:// through libcurl's multi interface on the same loop.
 *
 * The Block2 transfer is driven here rather than by libcoap's block mode
 * so that each block can be checked (offset, ETag, size bound), slowed
 * down or lost on purpose, and fed straight into the package checker: no
 * device ever holds a whole image.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define LOG_TAG "download"

static void dl_begin(struct sim_dl *dl);

static void kick_waiting(struct sim *sim)
{
  while (sim->dl_wait_head && sim->dl_active < sim->dl_max) {
    struct sim_dl *dl = sim->dl_wait_head;

    sim->dl_wait_head = dl->wait_next;
    if (!sim->dl_wait_head)
      sim->dl_wait_tail = NULL;
    dl->wait_next = NULL;
    sim->dl_active++;
    dl->started = true;
    loop_timer_arm(sim->loop, &dl->timer, 0);
  }
}

static void unqueue(struct sim *sim, struct sim_dl *dl)
{
  struct sim_dl **pp = &sim->dl_wait_head, *prev = NULL;

  while (*pp && *pp != dl) {
    prev = *pp;
    pp = &(*pp)->wait_next;
  }
  if (!*pp)
    return;
  *pp = dl->wait_next;
  if (sim->dl_wait_tail == dl)
    sim->dl_wait_tail = prev;
  dl->wait_next = NULL;
}

/* Releases everything a download holds; reports nothing. */
static void dl_destroy(struct sim_dl *dl)
{
  struct sim_dev *d = dl->dev;
  struct sim *sim = d->sim;

  d->dl[dl->slot] = NULL;
  loop_timer_disarm(sim->loop, &dl->timer);
  if (dl->started) {
    sim->dl_active--;
  } else {
    unqueue(sim, dl);
  }
  if (dl->session)
    sim_session_close(sim, dl->session);
  coap_delete_optlist(dl->opts);
  if (dl->easy) {
    curl_multi_remove_handle(sim->curlm, dl->easy);
    curl_easy_cleanup(dl->easy);
  }
  pkg_stream_free(&dl->pkg);
  free(dl);
  kick_waiting(sim);
}

/* Ends a download with an Update Result (0: check the package). */
static void dl_finish(struct sim_dl *dl, int result, const char *why)
{
  struct sim_dev *d = dl->dev;
  unsigned slot = dl->slot;
  struct pkg_policy pol;
  struct pkg_info info;
  char err[160];

  snprintf(err, sizeof(err), "%s", why ? why : "");
  if (result == 0) {
    dev_pkg_policy(d, slot, &pol);
    result =
        pkg_stream_finish(&dl->pkg, dl->uri, &pol, &info, err, sizeof(err));
  }
  dl_destroy(dl);
  dev_download_finished(d, slot, result, result == 0 ? &info : NULL, err);
}

void dl_abort(struct sim_dev *d, unsigned slot)
{
  if (slot <= AFU_MAX_INST && d->dl[slot])
    dl_destroy(d->dl[slot]);
}

static void request_block(struct sim_dl *dl)
{
  struct sim_dev *d = dl->dev;
  coap_pdu_t *pdu;
  uint8_t buf[4];

  pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET,
                      coap_new_message_id(dl->session),
                      coap_session_max_pdu_size(dl->session));
  if (!pdu) {
    dl_finish(dl, AFU_R_NO_RAM, "cannot build a request");
    return;
  }
  coap_session_new_token(dl->session, &dl->token_len, dl->token);
  coap_add_token(pdu, dl->token_len, dl->token);
  coap_add_optlist_pdu(pdu, &dl->opts);
  coap_add_option(
      pdu, COAP_OPTION_BLOCK2,
      coap_encode_var_safe(buf, sizeof(buf), (dl->num << 4) | dl->szx), buf);
  if (dl->num == 0)
    coap_add_option(pdu, COAP_OPTION_SIZE2, 0, NULL);
  if (sim_send(d->shard, dl->session, pdu) < 0) {
    dl_finish(dl, AFU_R_CONN_LOST, "cannot send");
    return;
  }
  /* No answer for this long and the link is considered lost. */
  loop_timer_arm(d->sim->loop, &dl->timer, d->sim->cfg->download_timeout_ms);
}

/* Resolves host:port (a name is looked up once, blocking, as it is rare:
 * file hosts in tests are numeric). */
static int resolve(const coap_uri_t *uri, coap_address_t *out)
{
  char host[256], port[8];
  struct addrinfo hints, *res = NULL;
  int rc;

  if (uri->host.length == 0 || uri->host.length >= sizeof(host))
    return -EINVAL;
  memcpy(host, uri->host.s, uri->host.length);
  host[uri->host.length] = '\0';
  snprintf(port, sizeof(port), "%u", uri->port);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || !res)
    return -EHOSTUNREACH;
  coap_address_init(out);
  out->size = res->ai_addrlen;
  memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return 0;
}

/* Uri-Path and Uri-Query options from the URI, percent-decoded. */
static void build_options(struct sim_dl *dl, const coap_uri_t *uri)
{
  uint8_t buf[512];
  uint8_t *p;
  size_t len;
  int n;

  len = sizeof(buf);
  p = buf;
  n = uri->path.length
          ? coap_split_path(uri->path.s, uri->path.length, buf, &len)
          : 0;
  while (n-- > 0) {
    coap_insert_optlist(&dl->opts, coap_new_optlist(COAP_OPTION_URI_PATH,
                                                    coap_opt_length(p),
                                                    coap_opt_value(p)));
    p += coap_opt_size(p);
  }
  len = sizeof(buf);
  p = buf;
  n = uri->query.length
          ? coap_split_query(uri->query.s, uri->query.length, buf, &len)
          : 0;
  while (n-- > 0) {
    coap_insert_optlist(&dl->opts, coap_new_optlist(COAP_OPTION_URI_QUERY,
                                                    coap_opt_length(p),
                                                    coap_opt_value(p)));
    p += coap_opt_size(p);
  }
}

static void begin_coap(struct sim_dl *dl)
{
  struct sim_dev *d = dl->dev;
  const struct sim_config *cfg = d->sim->cfg;
  coap_uri_t uri;
  coap_address_t addr;
  bool dtls = dl->proto == AFU_PROTO_COAPS;

  if (coap_split_uri((const uint8_t *)dl->uri, strlen(dl->uri), &uri) < 0) {
    dl_finish(dl, AFU_R_INVALID_URI, "libcoap cannot parse the URI");
    return;
  }
  if (resolve(&uri, &addr) < 0) {
    dl_finish(dl, AFU_R_CONN_LOST, "cannot resolve the host");
    return;
  }
  if (dtls && d->psk_key_len == 0) {
    dl_finish(dl, AFU_R_CONN_LOST, "no PSK for coaps");
    return;
  }
  build_options(dl, &uri);
  dl->session = sim_session_open(
      d->shard, cfg->have_bind ? &cfg->bind : NULL, &addr,
      dtls ? COAP_PROTO_DTLS : COAP_PROTO_UDP, dtls ? d->psk_id : NULL,
      d->psk_key, d->psk_key_len, &dl->peer);
  if (!dl->session) {
    dl_finish(dl, AFU_R_CONN_LOST, "cannot open a session");
    return;
  }
  dl->szx = cfg->block_szx;
  dl->num = 0;
  log_debug("%s: downloading %s", d->ep, dl->uri);
  request_block(dl);
}

static int opt_uint(const coap_pdu_t *pdu, coap_option_num_t num, size_t *out)
{
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(pdu, num, &it);

  if (!opt)
    return -ENOENT;
  *out = coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
  return 0;
}

/* Checks that every block belongs to the same representation. */
static int check_etag(struct sim_dl *dl, const coap_pdu_t *rcv)
{
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(rcv, COAP_OPTION_ETAG, &it);
  size_t n = opt ? coap_opt_length(opt) : 0;

  if (n > sizeof(dl->etag))
    return -EINVAL;
  if (!dl->have_etag) {
    dl->have_etag = true;
    dl->etag_len = n;
    if (n)
      memcpy(dl->etag, coap_opt_value(opt), n);
    return 0;
  }
  if (n != dl->etag_len || (n && memcmp(dl->etag, coap_opt_value(opt), n)))
    return -ESTALE;
  return 0;
}

static int coap_failure_result(coap_pdu_code_t code)
{
  switch (code) {
  case COAP_RESPONSE_CODE(400):
  case COAP_RESPONSE_CODE(401):
  case COAP_RESPONSE_CODE(402):
  case COAP_RESPONSE_CODE(403):
  case COAP_RESPONSE_CODE(404):
  case COAP_RESPONSE_CODE(405):
    return AFU_R_INVALID_URI;
  case COAP_RESPONSE_CODE(413):
    return AFU_R_NO_FLASH;
  default:
    return AFU_R_CONN_LOST;
  }
}

void dl_on_response(struct sim_dl *dl, const coap_pdu_t *rcv)
{
  struct sim_dev *d = dl->dev;
  const struct sim_config *cfg = d->sim->cfg;
  coap_bin_const_t tok = coap_pdu_get_token(rcv);
  coap_pdu_code_t code = coap_pdu_get_code(rcv);
  coap_block_t b;
  bool blocked, more;
  const uint8_t *data = NULL;
  size_t len = 0, size2, expect;
  char why[64];

  if (tok.length != dl->token_len || memcmp(tok.s, dl->token, tok.length))
    return;
  loop_timer_disarm(d->sim->loop, &dl->timer);
  if (COAP_RESPONSE_CLASS(code) != 2) {
    snprintf(why, sizeof(why), "file server answered %d.%02d",
             COAP_RESPONSE_CLASS(code), code & 0x1f);
    dl_finish(dl, coap_failure_result(code), why);
    return;
  }
  blocked = coap_get_block(rcv, COAP_OPTION_BLOCK2, &b) != 0;
  more = blocked && b.m;
  if (blocked && (size_t)b.num << (b.szx + 4) != dl->pkg.len) {
    dl_finish(dl, AFU_R_CONN_LOST, "block at an unexpected offset");
    return;
  }
  if (check_etag(dl, rcv) < 0) {
    dl_finish(dl, AFU_R_CONN_LOST, "the package changed during download");
    return;
  }
  if (dl->pkg.len == 0 && opt_uint(rcv, COAP_OPTION_SIZE2, &size2) == 0) {
    dl->size2 = size2;
    if (size2 > cfg->pkg.max_size) {
      dl_finish(dl, AFU_R_NO_FLASH, "announced size too large");
      return;
    }
  }
  if (dl->pkg.len == 0 && dev_loses_download(d))
    dl->lose_at = dl->size2 ? dl->size2 / 2 : (size_t)2 * (16u << dl->szx);
  if (!coap_get_data(rcv, &len, &data))
    len = 0;
  if (dl->lose_at && dl->pkg.len + len >= dl->lose_at && more) {
    /* The link drops: nothing more arrives, the device gives up. */
    dl_finish(dl, AFU_R_CONN_LOST, "lost-download fault");
    return;
  }
  if (pkg_stream_feed(&dl->pkg, data, len, cfg->pkg.max_size) != 0) {
    dl_finish(dl, AFU_R_NO_FLASH, "package too large");
    return;
  }
  if (!more) {
    dl_finish(dl, 0, NULL);
    return;
  }
  /* Continue at the server's block size, which may be smaller. */
  dl->szx = b.szx;
  expect = dl->pkg.len >> (b.szx + 4);
  dl->num = (uint32_t)expect;
  if (dev_has_fault(d, FAULT_SLOW_DOWNLOAD)) {
    loop_timer_arm(d->sim->loop, &dl->timer, cfg->slow_delay_ms);
    dl->slow_wait = true;
    return;
  }
  request_block(dl);
}

void dl_on_nack(struct sim_dl *dl, coap_nack_reason_t reason)
{
  char why[48];

  snprintf(why, sizeof(why), "no answer from the file server (%d)",
           (int)reason);
  dl_finish(dl, AFU_R_CONN_LOST, why);
}

static size_t on_http_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
  struct sim_dl *dl = arg;
  struct sim_dev *d = dl->dev;
  size_t n = size * nmemb;
  long status = 0;

  curl_easy_getinfo(dl->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    return n; /* an error page: the status decides the result */
  if (dl->pkg.len == 0 && dev_loses_download(d)) {
    curl_off_t cl = -1;

    curl_easy_getinfo(dl->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    dl->lose_at = cl > 0 ? (size_t)cl / 2 : 2048;
  }
  if (dl->lose_at && dl->pkg.len + n >= dl->lose_at) {
    dl->result = AFU_R_CONN_LOST;
    return 0;
  }
  if (pkg_stream_feed(&dl->pkg, (const uint8_t *)ptr, n,
                      d->sim->cfg->pkg.max_size) != 0) {
    dl->result = AFU_R_NO_FLASH;
    return 0;
  }
  return n;
}

static void begin_http(struct sim_dl *dl)
{
  struct sim_dev *d = dl->dev;
  const struct sim_config *cfg = d->sim->cfg;
  long timeout_s = (long)(cfg->download_timeout_ms / 1000);
  CURL *e = curl_easy_init();

  if (!e) {
    dl_finish(dl, AFU_R_NO_RAM, "curl_easy_init failed");
    return;
  }
  dl->easy = e;
  curl_easy_setopt(e, CURLOPT_URL, dl->uri);
  curl_easy_setopt(e, CURLOPT_PRIVATE, dl);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_http_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, dl);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)cfg->pkg.max_size);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)cfg->download_timeout_ms);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, timeout_s > 0 ? timeout_s : 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "fotad-sim");
  if (cfg->http_insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (dev_has_fault(d, FAULT_SLOW_DOWNLOAD)) {
    /* The same pace as a slow CoAP download: one block per delay. */
    curl_off_t rate = (curl_off_t)(16 << cfg->block_szx) * 1000 /
                      (cfg->slow_delay_ms > 0 ? cfg->slow_delay_ms : 1);

    curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE, rate > 0 ? rate : 1);
  }
  if (curl_multi_add_handle(d->sim->curlm, e) != CURLM_OK) {
    dl_finish(dl, AFU_R_NO_RAM, "curl_multi_add_handle failed");
    return;
  }
  log_debug("%s: downloading %s", d->ep, dl->uri);
}

static int http_result(struct sim_dl *dl, CURLcode cc, char *why, size_t len)
{
  long status = 0;

  if (dl->result) {
    snprintf(why, len, "%s",
             dl->result == AFU_R_CONN_LOST ? "lost-download fault"
                                           : "package too large");
    return dl->result;
  }
  if (cc == CURLE_FILESIZE_EXCEEDED) {
    snprintf(why, len, "package too large");
    return AFU_R_NO_FLASH;
  }
  if (cc != CURLE_OK) {
    snprintf(why, len, "%s", curl_easy_strerror(cc));
    return AFU_R_CONN_LOST;
  }
  curl_easy_getinfo(dl->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200)
    return 0;
  snprintf(why, len, "HTTP status %ld", status);
  return status >= 400 && status < 500 ? AFU_R_INVALID_URI : AFU_R_CONN_LOST;
}

static void check_multi(struct sim *sim)
{
  CURLMsg *msg;
  int left;

  for (msg = curl_multi_info_read(sim->curlm, &left); msg;
       msg = curl_multi_info_read(sim->curlm, &left)) {
    struct sim_dl *dl = NULL;
    char why[128];
    int result;

    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&dl);
    if (!dl)
      continue;
    result = http_result(dl, msg->data.result, why, sizeof(why));
    dl_finish(dl, result, result ? why : NULL);
  }
}

static void on_curl_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
  struct sim *sim = arg;
  int flags = 0, running;

  if (events & EPOLLIN)
    flags |= CURL_CSELECT_IN;
  if (events & EPOLLOUT)
    flags |= CURL_CSELECT_OUT;
  if (events & (EPOLLERR | EPOLLHUP))
    flags |= CURL_CSELECT_ERR;
  curl_multi_socket_action(sim->curlm, fd, flags, &running);
  check_multi(sim);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp,
                          void *socketp)
{
  struct sim *sim = userp;
  uint32_t ev = 0;

  if (what == CURL_POLL_REMOVE) {
    loop_fd_del(sim->loop, s);
    return 0;
  }
  if (what & CURL_POLL_IN)
    ev |= EPOLLIN;
  if (what & CURL_POLL_OUT)
    ev |= EPOLLOUT;
  if (loop_fd_add(sim->loop, s, ev, on_curl_fd, sim) == -EEXIST)
    loop_fd_mod(sim->loop, s, ev);
  return 0;
}

static void on_curl_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim *sim = arg;
  int running;

  curl_multi_socket_action(sim->curlm, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi(sim);
}

static int on_curl_timeout(CURLM *m, long timeout_ms, void *userp)
{
  struct sim *sim = userp;

  if (timeout_ms < 0)
    loop_timer_disarm(sim->loop, &sim->curl_timer);
  else
    loop_timer_arm(sim->loop, &sim->curl_timer, timeout_ms);
  return 0;
}

int dl_global_init(struct sim *sim, char *err, size_t errlen)
{
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(err, errlen, "curl_global_init failed");
    return -EIO;
  }
  sim->curlm = curl_multi_init();
  if (!sim->curlm) {
    snprintf(err, errlen, "curl_multi_init failed");
    return -ENOMEM;
  }
  loop_timer_init(&sim->curl_timer, on_curl_timer, sim);
  curl_multi_setopt(sim->curlm, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(sim->curlm, CURLMOPT_SOCKETDATA, sim);
  curl_multi_setopt(sim->curlm, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
  curl_multi_setopt(sim->curlm, CURLMOPT_TIMERDATA, sim);
  return 0;
}

void dl_global_free(struct sim *sim)
{
  if (!sim->curlm)
    return;
  loop_timer_disarm(sim->loop, &sim->curl_timer);
  curl_multi_cleanup(sim->curlm);
  sim->curlm = NULL;
  curl_global_cleanup();
}

static void on_dl_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dl *dl = arg;

  if (!dl->begun) {
    dl_begin(dl);
  } else if (dl->slow_wait) {
    dl->slow_wait = false;
    request_block(dl);
  } else {
    dl_finish(dl, AFU_R_CONN_LOST, "download stalled");
  }
}

static void dl_begin(struct sim_dl *dl)
{
  dl->begun = true;
  switch (dl->proto) {
  case AFU_PROTO_COAP:
  case AFU_PROTO_COAPS:
    begin_coap(dl);
    break;
  case AFU_PROTO_HTTP:
  case AFU_PROTO_HTTPS:
    begin_http(dl);
    break;
  default:
    dl_finish(dl, AFU_R_BAD_PROTOCOL, "scheme not implemented");
    break;
  }
}

void dl_start(struct sim_dev *d, unsigned slot)
{
  struct sim *sim = d->sim;
  struct afu_inst *in = dev_slot_inst(d, slot);
  struct pkg_policy pol;
  struct sim_dl *dl;

  if (!in)
    return;
  dl_abort(d, slot);
  dev_pkg_policy(d, slot, &pol);
  dl = xcalloc(1, sizeof(*dl));
  dl->peer.kind = PEER_DL;
  dl->peer.owner = dl;
  dl->dev = d;
  dl->slot = slot;
  snprintf(dl->uri, sizeof(dl->uri), "%s", in->uri);
  dl->proto = pkg_uri_proto(dl->uri);
  pkg_stream_init(&dl->pkg, pkg_needs_sha256(in->uri, &pol));
  loop_timer_init(&dl->timer, on_dl_timer, dl);
  d->dl[slot] = dl;
  /* Sockets are budgeted: past the limit a download waits its turn (the
   * device stays in Downloading meanwhile). */
  if (sim->dl_active < sim->dl_max) {
    sim->dl_active++;
    dl->started = true;
    loop_timer_arm(sim->loop, &dl->timer, 0);
  } else {
    if (sim->dl_wait_tail)
      sim->dl_wait_tail->wait_next = dl;
    else
      sim->dl_wait_head = dl;
    sim->dl_wait_tail = dl;
  }
}
