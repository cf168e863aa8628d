/*
 * The fleet: libcoap shards on the common loop, the registration pacer,
 * fault assignment, the stop conditions and the shutdown.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#define LOG_TAG "fleet"

/*
 * Time to wait for De-register answers at shutdown: a few seconds, and
 * more for a large fleet (a server answers some thousands a second).
 */
#define SHUTDOWN_GRACE_MS 3000
#define SHUTDOWN_GRACE_PER_DEV_MS 2
#define SHUTDOWN_GRACE_MAX_MS 60000

int64_t sim_wall_s(const struct sim *sim)
{
  return loop_wall(sim->loop) / 1000;
}

int64_t sim_now(const struct sim *sim)
{
  return loop_now(sim->loop);
}

static void coap_log_cb(coap_log_t level, const char *message)
{
  enum log_level l = LL_DEBUG;
  size_t n = strlen(message);

  if (level <= LOG_ERR)
    l = LL_ERR;
  else if (level == LOG_WARNING)
    l = LL_WARN;
  else if (level == LOG_NOTICE)
    l = LL_NOTICE;
  else if (level == LOG_INFO)
    l = LL_INFO;
  /* libcoap ends its messages with a newline; ours add one. */
  while (n > 0 && message[n - 1] == '\n')
    n--;
  log_msg(l, "coap", "%.*s", (int)n, message);
}

static void mark_dirty(struct sim_shard *sh)
{
  struct sim *sim = sh->sim;

  if (sh->dirty)
    return;
  sh->dirty = true;
  sim->dirty[sim->ndirty++] = sh;
}

static void process_shard(struct sim_shard *sh)
{
  if (coap_io_process(sh->ctx, COAP_IO_NO_WAIT) < 0)
    log_err("coap_io_process failed");
  mark_dirty(sh);
}

static void on_shard_fd(struct loop *loop, int fd, uint32_t events, void *arg)
{
  process_shard(arg);
}

static void on_shard_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  process_shard(arg);
}

/*
 * Before the loop sleeps: free the sessions closed during this iteration
 * (not earlier, libcoap may still have been using them), then ask each
 * shard that had traffic when libcoap next needs to run.
 */
static void before_sleep(struct loop *loop, void *arg)
{
  struct sim *sim = arg;
  coap_tick_t now;

  for (size_t i = 0; i < sim->ngrave; i++) {
    coap_session_disconnected(sim->grave[i], COAP_NACK_NOT_DELIVERABLE);
    coap_session_release(sim->grave[i]);
  }
  sim->ngrave = 0;
  if (sim->ndirty == 0)
    return;
  coap_ticks(&now);
  for (size_t i = 0; i < sim->ndirty; i++) {
    struct sim_shard *sh = sim->dirty[i];
    unsigned int ms = coap_io_prepare_epoll(sh->ctx, now);

    sh->dirty = false;
    if (ms == 0)
      loop_timer_disarm(loop, &sh->timer);
    else
      loop_timer_arm(loop, &sh->timer, ms);
  }
  sim->ndirty = 0;
}

static struct sim_peer *peer_of(coap_session_t *s)
{
  return coap_session_get_app_data(s);
}

static coap_response_t on_response(coap_session_t *s, const coap_pdu_t *sent,
                                   const coap_pdu_t *rcv, const coap_mid_t id)
{
  struct sim_peer *peer = peer_of(s);

  if (!peer)
    return COAP_RESPONSE_OK;
  if (peer->kind == PEER_DEV)
    dev_on_response(peer->owner, sent, rcv);
  else
    dl_on_response(peer->owner, rcv);
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *s, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t id)
{
  struct sim_peer *peer = peer_of(s);

  if (!peer)
    return;
  if (peer->kind == PEER_DEV)
    dev_on_nack(peer->owner, sent, reason);
  else
    dl_on_nack(peer->owner, reason);
}

static int shard_init(struct sim *sim, struct sim_shard *sh, char *err,
                      size_t errlen)
{
  coap_resource_t *r;

  sh->sim = sim;
  sh->fd = -1;
  loop_timer_init(&sh->timer, on_shard_timer, sh);
  sh->ctx = coap_new_context(NULL);
  if (!sh->ctx) {
    snprintf(err, errlen, "cannot create a CoAP context");
    return -ENOMEM;
  }
  coap_register_response_handler(sh->ctx, on_response);
  coap_register_nack_handler(sh->ctx, on_nack);
  /* Every request to a device lands in one catch-all resource. */
  r = coap_resource_unknown_init2(dm_handle, 0);
  if (!r) {
    snprintf(err, errlen, "cannot create the CoAP resource");
    return -ENOMEM;
  }
  coap_register_request_handler(r, COAP_REQUEST_GET, dm_handle);
  coap_register_request_handler(r, COAP_REQUEST_POST, dm_handle);
  coap_register_request_handler(r, COAP_REQUEST_DELETE, dm_handle);
  coap_register_request_handler(r, COAP_REQUEST_FETCH, dm_handle);
  coap_register_request_handler(r, COAP_REQUEST_PATCH, dm_handle);
  coap_register_request_handler(r, COAP_REQUEST_IPATCH, dm_handle);
  coap_add_resource(sh->ctx, r);
  sh->fd = coap_context_get_coap_fd(sh->ctx);
  if (sh->fd < 0) {
    snprintf(err, errlen, "libcoap was built without epoll support");
    return -ENOTSUP;
  }
  if (loop_fd_add(sim->loop, sh->fd, EPOLLIN, on_shard_fd, sh) < 0) {
    sh->fd = -1;
    snprintf(err, errlen, "cannot watch a CoAP context");
    return -EIO;
  }
  return 0;
}

static void shard_free(struct sim *sim, struct sim_shard *sh)
{
  loop_timer_disarm(sim->loop, &sh->timer);
  if (sh->fd >= 0)
    loop_fd_del(sim->loop, sh->fd);
  if (sh->ctx)
    coap_free_context(sh->ctx);
}

coap_session_t *sim_session_open(struct sim_shard *sh,
                                 const coap_address_t *local,
                                 const coap_address_t *remote,
                                 coap_proto_t proto, const char *psk_id,
                                 const uint8_t *key, size_t keylen,
                                 struct sim_peer *peer)
{
  coap_session_t *s;

  if (proto == COAP_PROTO_DTLS) {
    coap_dtls_cpsk_t setup;

    memset(&setup, 0, sizeof(setup));
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    setup.psk_info.identity.s = (const uint8_t *)psk_id;
    setup.psk_info.identity.length = strlen(psk_id);
    setup.psk_info.key.s = key;
    setup.psk_info.key.length = keylen;
    s = coap_new_client_session_psk2(sh->ctx, local, remote, proto, &setup);
  } else {
    s = coap_new_client_session(sh->ctx, local, remote, proto);
  }
  if (!s)
    return NULL;
  coap_session_set_app_data(s, peer);
  mark_dirty(sh);
  return s;
}

void sim_session_close(struct sim *sim, coap_session_t *s)
{
  if (!s)
    return;
  /* No more callbacks for this session: its owner is going away. */
  coap_session_set_app_data(s, NULL);
  if (sim->ngrave == sim->gravecap) {
    sim->gravecap = sim->gravecap ? sim->gravecap * 2 : 64;
    sim->grave = xrealloc(sim->grave, sim->gravecap * sizeof(*sim->grave));
  }
  sim->grave[sim->ngrave++] = s;
}

int sim_send(struct sim_shard *sh, coap_session_t *s, coap_pdu_t *pdu)
{
  if (coap_send(s, pdu) == COAP_INVALID_MID)
    return -EIO;
  mark_dirty(sh);
  return 0;
}

int sim_session_port(const coap_session_t *s)
{
  const coap_address_t *a = coap_session_get_addr_local(s);

  return a ? coap_address_get_port(a) : 0;
}

/*
 * The pacer lets devices send Register at --register-rate: a token bucket
 * refilled from the clock, holding at most a tenth of a second's worth
 * (at least one), so a burst never exceeds what the rate allows.
 */
static void pace_run(struct sim *sim)
{
  int64_t now = sim_now(sim);
  double rate = sim->cfg->register_rate, cap;

  if (rate <= 0) {
    while (sim->pace_head) {
      struct sim_dev *d = sim->pace_head;

      sim_pace_remove(sim, d);
      dev_register(d);
    }
    return;
  }
  cap = rate / 10 > 1 ? rate / 10 : 1;
  sim->tokens += (double)(now - sim->pace_last) * rate / 1000.0;
  if (sim->tokens > cap)
    sim->tokens = cap;
  sim->pace_last = now;
  while (sim->pace_head && sim->tokens >= 1) {
    struct sim_dev *d = sim->pace_head;

    sim->tokens -= 1;
    sim_pace_remove(sim, d);
    dev_register(d);
  }
  if (sim->pace_head) {
    int64_t wait = (int64_t)ceil((1 - sim->tokens) * 1000.0 / rate);

    loop_timer_arm(sim->loop, &sim->pace_timer, wait > 0 ? wait : 1);
  }
}

static void on_pace(struct loop *loop, struct loop_timer *t, void *arg)
{
  pace_run(arg);
}

void sim_pace_add(struct sim *sim, struct sim_dev *d)
{
  if (d->paced || sim->stopping)
    return;
  d->paced = true;
  d->pace_next = NULL;
  if (sim->pace_tail)
    sim->pace_tail->pace_next = d;
  else
    sim->pace_head = d;
  sim->pace_tail = d;
  if (!loop_timer_armed(&sim->pace_timer))
    loop_timer_arm(sim->loop, &sim->pace_timer, 0);
}

void sim_pace_remove(struct sim *sim, struct sim_dev *d)
{
  struct sim_dev **pp = &sim->pace_head, *prev = NULL;

  if (!d->paced)
    return;
  /* Usually the head, so this walk is short. */
  while (*pp && *pp != d) {
    prev = *pp;
    pp = &(*pp)->pace_next;
  }
  if (*pp)
    *pp = d->pace_next;
  if (sim->pace_tail == d)
    sim->pace_tail = prev;
  d->paced = false;
  d->pace_next = NULL;
}

/* Does d run target (component or any) at the wanted version? */
static bool runs_version(const struct sim_dev *d, const struct sim_until *u)
{
  for (size_t i = 0; i < d->afu.n; i++) {
    const struct afu_inst *in = &d->afu.inst[i];

    if (u->component[0] && strcmp(in->name, u->component) != 0)
      continue;
    if (strcmp(in->version, u->version) == 0 && in->state == AFU_IDLE)
      return true;
  }
  return false;
}

void sim_until_update(struct sim *sim, struct sim_dev *d)
{
  const struct sim_until *u = &sim->cfg->until;
  bool registered = d->state == DEV_REGISTERED || d->state == DEV_ASLEEP;
  bool ok = false;

  switch (u->kind) {
  case UNTIL_NONE:
    return;
  case UNTIL_ALL_REGISTERED:
    ok = d->registrations > 0;
    break;
  case UNTIL_ALL_UPDATED:
    if (u->version[0])
      ok = registered && runs_version(d, u);
    else
      ok = registered && d->installs > 0;
    break;
  }
  if (ok == d->until_ok)
    return;
  d->until_ok = ok;
  if (ok)
    sim->n_until_ok++;
  else
    sim->n_until_ok--;
  if (sim->n_until_ok >= sim->n_until_needed && !sim->until_met) {
    sim->until_met = true;
    sim_stop(sim, "--until condition met");
  }
}

static void on_stop_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim *sim = arg;

  if (sim->pending_deregister)
    log_notice("%zu De-registers unanswered at exit", sim->pending_deregister);
  sim->finished = true;
}

void sim_stop(struct sim *sim, const char *reason)
{
  if (sim->stopping)
    return;
  sim->stopping = true;
  sim->stop_reason = reason;
  log_notice("stopping: %s", reason);
  loop_timer_disarm(sim->loop, &sim->pace_timer);
  while (sim->pace_head)
    sim_pace_remove(sim, sim->pace_head);
  for (size_t i = 0; i < sim->ndev; i++)
    if (dev_shutdown(&sim->devs[i]))
      sim->pending_deregister++;
  if (sim->pending_deregister) {
    int64_t grace = SHUTDOWN_GRACE_MS + (int64_t)sim->pending_deregister *
                                            SHUTDOWN_GRACE_PER_DEV_MS;

    loop_timer_arm(sim->loop, &sim->stop_timer,
                   grace < SHUTDOWN_GRACE_MAX_MS ? grace
                                                 : SHUTDOWN_GRACE_MAX_MS);
  } else {
    loop_timer_arm(sim->loop, &sim->stop_timer, 0);
  }
}

static void on_end_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim *sim = arg;

  sim->timed_out = !sim->stopping;
  sim_stop(sim, "--duration elapsed");
}

/* Names every device, then sets the fault bits the specs pick. */
static int assign_faults(struct sim *sim, uint32_t *faults, char *err,
                         size_t errlen)
{
  const struct sim_config *cfg = sim->cfg;
  uint8_t *pick = xmalloc(cfg->count);
  struct hmap names;
  char(*eps)[SIM_EP_MAX] = xmalloc(cfg->count * sizeof(*eps));
  struct name_node {
    struct hmap_node node;
    size_t idx;
  } *nodes = xcalloc(cfg->count, sizeof(*nodes));
  int rc = 0;

  hmap_init(&names);
  for (size_t i = 0; i < cfg->count; i++) {
    sim_pattern_format(cfg->endpoint_pattern, (long)i, eps[i], SIM_EP_MAX);
    nodes[i].idx = i;
    hmap_insert(&names, &nodes[i].node, hash_bytes(eps[i], strlen(eps[i])));
  }
  for (size_t f = 0; f < cfg->nfaults && rc == 0; f++) {
    const struct sim_fault_spec *spec = &cfg->faults[f];
    uint32_t bitv = UINT32_C(1) << spec->kind;

    if (spec->nendpoints == 0) {
      sim_fault_pick(spec->fraction, cfg->count, cfg->seed, spec->kind, pick);
      for (size_t i = 0; i < cfg->count; i++)
        if (pick[i])
          faults[i] |= bitv;
      continue;
    }
    for (size_t e = 0; e < spec->nendpoints; e++) {
      const char *ep = spec->endpoints[e];
      uint64_t h = hash_bytes(ep, strlen(ep));
      struct hmap_node *n;
      bool found = false;

      for (n = hmap_first(&names, h); n; n = n->next) {
        struct name_node *nn = container_of(n, struct name_node, node);

        if (n->hash == h && strcmp(eps[nn->idx], ep) == 0) {
          faults[nn->idx] |= bitv;
          found = true;
        }
      }
      if (!found) {
        snprintf(err, errlen, "--fault %s: no device is named '%s'",
                 sim_fault_name(spec->kind), ep);
        rc = -EINVAL;
        break;
      }
    }
  }
  hmap_destroy(&names);
  free(nodes);
  free(eps);
  free(pick);
  return rc;
}

/*
 * Each device holds a socket, and a download another; raise the limit on
 * open files as far as the hard limit allows and size the download budget
 * from what is left. A shard costs two descriptors (libcoap's epoll and
 * timer fds); the margin covers stdio, the loop, curl and the report.
 */
static size_t raise_nofile(const struct sim_config *cfg, size_t nshards)
{
  struct rlimit rl;
  size_t need = cfg->count + 2 * nshards + 128, have;

  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return 64;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      log_warn("cannot raise the open file limit: %s", strerror(errno));
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  have = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX / 2 : (size_t)rl.rlim_cur;
  if (have < need + 16) {
    log_warn("open file limit %zu is tight for %zu devices", have, cfg->count);
    return 16;
  }
  return have - need;
}

struct sim *sim_new(struct sim_config *cfg, struct loop *loop, char *err,
                    size_t errlen)
{
  struct sim *sim = xcalloc(1, sizeof(*sim));
  uint32_t *faults = NULL;

  sim->cfg = cfg;
  sim->loop = loop;
  sim->all_registered_ms = -1;
  loop_timer_init(&sim->pace_timer, on_pace, sim);
  loop_timer_init(&sim->end_timer, on_end_timer, sim);
  loop_timer_init(&sim->stop_timer, on_stop_timer, sim);
  coap_startup();
  coap_set_log_handler(coap_log_cb);
  coap_set_log_level(log_get_level() >= LL_DEBUG ? LOG_DEBUG : LOG_WARNING);
  coap_dtls_set_log_level(LOG_WARNING);
  if (cfg->proto == COAP_PROTO_DTLS && !coap_dtls_is_supported()) {
    snprintf(err, errlen, "this libcoap has no DTLS support");
    goto fail;
  }
  sim->model = lwm2m_model_new();
  sim->nshards = (cfg->count + SIM_SHARD_SIZE - 1) / SIM_SHARD_SIZE;
  sim->shards = xcalloc(sim->nshards, sizeof(*sim->shards));
  sim->dirty = xcalloc(sim->nshards, sizeof(*sim->dirty));
  for (size_t i = 0; i < sim->nshards; i++)
    if (shard_init(sim, &sim->shards[i], err, errlen) < 0)
      goto fail;
  sim->dl_max = raise_nofile(cfg, sim->nshards);
  if (dl_global_init(sim, err, errlen) < 0)
    goto fail;

  faults = xcalloc(cfg->count, sizeof(*faults));
  if (assign_faults(sim, faults, err, errlen) < 0)
    goto fail;
  sim->devs = xcalloc(cfg->count, sizeof(*sim->devs));
  sim->ndev = cfg->count;
  for (size_t i = 0; i < cfg->count; i++) {
    sim->devs[i].faults = faults[i];
    dev_init(sim, &sim->devs[i], (unsigned)i);
  }
  free(faults);
  faults = NULL;

  sim->n_until_needed = cfg->count;
  if (cfg->until.kind == UNTIL_ALL_UPDATED) {
    /* Devices built to fail never finish; the condition skips them. */
    sim->n_until_needed = 0;
    for (size_t i = 0; i < sim->ndev; i++) {
      bool fails = false;

      for (int f = 0; f < FAULT_COUNT; f++)
        if (dev_has_fault(&sim->devs[i], (enum sim_fault)f) &&
            sim_fault_is_failure((enum sim_fault)f))
          fails = true;
      if (!fails)
        sim->n_until_needed++;
    }
  }
  if (loop_hook_add(loop, before_sleep, sim) < 0) {
    snprintf(err, errlen, "too many loop hooks");
    goto fail;
  }
  return sim;
fail:
  free(faults);
  sim_free(sim);
  return NULL;
}

int sim_run(struct sim *sim, volatile sig_atomic_t *stop_flag)
{
  const struct sim_config *cfg = sim->cfg;
  int rc = 0;

  sim->start_ms = sim_now(sim);
  sim->start_wall_ms = loop_wall(sim->loop);
  sim->pace_last = sim->start_ms;
  log_notice("%zu devices, %zu shards, server %s, LwM2M 1.%d", sim->ndev,
             sim->nshards, cfg->server_uri, cfg->minor);
  for (size_t i = 0; i < sim->ndev; i++)
    dev_boot(&sim->devs[i]);
  if (cfg->duration_ms > 0)
    loop_timer_arm(sim->loop, &sim->end_timer, cfg->duration_ms);
  if (cfg->until.kind != UNTIL_NONE && sim->n_until_needed == 0)
    sim_stop(sim, "--until: no device can meet it");
  while (!sim->finished) {
    rc = loop_run_once(sim->loop, -1);
    if (rc < 0)
      break;
    /* A signal cuts the wait short without a fresh clock reading. */
    loop_update_time(sim->loop);
    if (*stop_flag && !sim->stopping)
      sim_stop(sim, "signal");
    /* Every De-register answered: no need to wait out the grace time. */
    if (sim->stopping && sim->pending_deregister == 0)
      sim->finished = true;
  }
  if (rc < 0)
    return 1;
  if (cfg->until.kind != UNTIL_NONE && !sim->until_met && sim->timed_out)
    return 3;
  return 0;
}

void sim_free(struct sim *sim)
{
  if (!sim)
    return;
  for (size_t i = 0; i < sim->ndev; i++)
    dev_free(&sim->devs[i]);
  before_sleep(sim->loop, sim);
  loop_hook_del(sim->loop, before_sleep, sim);
  dl_global_free(sim);
  for (size_t i = 0; i < sim->nshards; i++)
    shard_free(sim, &sim->shards[i]);
  loop_timer_disarm(sim->loop, &sim->pace_timer);
  loop_timer_disarm(sim->loop, &sim->end_timer);
  loop_timer_disarm(sim->loop, &sim->stop_timer);
  free(sim->shards);
  free(sim->dirty);
  free(sim->grave);
  free(sim->devs);
  lwm2m_model_free(sim->model);
  free(sim);
  coap_cleanup();
}
