/*
 * A simulated device's life: boot, Register and periodic Updates, queue
 * mode sleep, reboots (plain, after an install, crash loops), Disable,
 * Send, and the faults that play out in time (offline, NAT rebinding).
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "dev"

/* What life_timer does when it fires. */
enum life_phase {
  LIFE_NONE,
  LIFE_GO_DOWN,         /* reboot: the Execute answer has gone out */
  LIFE_BOOT,            /* reboot over */
  LIFE_OFFLINE,         /* offline fault starts */
  LIFE_RETURN_UPDATE,   /* offline over: try an Update */
  LIFE_DISABLE,         /* /1/0/4: De-register and go quiet */
  LIFE_RETURN_REGISTER, /* disable timeout over */
  LIFE_REBIND,          /* NAT rebinding fault */
  LIFE_CRASH,           /* reboot-loop fault */
};

/* Before going down, the Execute response and notifications leave. */
#define GO_DOWN_DELAY_MS 100
#define CRASH_AFTER_MS 2000
#define REBIND_AFTER_MS 1000
#define OFFLINE_EXTRA_S 30
#define RETRY_MAX_MS 120000

static const char *const state_names[DEV_STATE_COUNT] = {
    [DEV_OFF] = "off",
    [DEV_WAIT_REGISTER] = "wait-register",
    [DEV_REGISTERING] = "registering",
    [DEV_REGISTERED] = "registered",
    [DEV_ASLEEP] = "asleep",
    [DEV_REBOOTING] = "rebooting",
    [DEV_OFFLINE] = "offline",
    [DEV_DISABLED] = "disabled",
    [DEV_DEAD] = "dead",
    [DEV_DEREGISTERING] = "deregistering",
    [DEV_STOPPED] = "stopped",
};

const char *dev_state_name(enum dev_state s)
{
  return (unsigned)s < DEV_STATE_COUNT ? state_names[s] : "?";
}

/* The one place a device's state changes. */
static void set_state(struct sim_dev *d, enum dev_state to)
{
  if (d->state == to)
    return;
  log_debug("%s: %s -> [%s]", d->ep, dev_state_name(d->state),
            dev_state_name(to));
  d->state = to;
}

bool dev_has_fault(const struct sim_dev *d, enum sim_fault f)
{
  return (d->faults & (UINT32_C(1) << f)) != 0;
}

bool dev_loses_download(struct sim_dev *d)
{
  if (dev_has_fault(d, FAULT_LOST_DOWNLOAD))
    return true;
  if (!dev_has_fault(d, FAULT_FLAKY_DOWNLOAD) || d->downloads_lost > 0)
    return false;
  d->downloads_lost++;
  return true;
}

uint16_t dev_default_ct(const struct sim_dev *d)
{
  if (d->sim->cfg->minor == 0)
    return LWM2M_CT_TLV;
  return lwm2m_ct_supported(LWM2M_CT_SENML_CBOR) ? LWM2M_CT_SENML_CBOR
                                                 : LWM2M_CT_SENML_JSON;
}

struct afu_inst *dev_slot_inst(struct sim_dev *d, unsigned slot)
{
  return afu_by_index(&d->afu, slot == SIM_FW_SLOT ? AFU_FW_INDEX : slot);
}

unsigned dev_inst_slot(const struct afu_inst *in)
{
  return in->obj5 ? SIM_FW_SLOT : in->index;
}

void dev_pkg_policy(const struct sim_dev *d, unsigned slot,
                    struct pkg_policy *pol)
{
  const struct sim_config *cfg = d->sim->cfg;
  unsigned c = slot == SIM_FW_SLOT ? 0 : slot;

  *pol = cfg->pkg;
  if (c < cfg->ncomp && cfg->comp[c].has_sha256) {
    pol->has_sha256 = true;
    memcpy(pol->sha256, cfg->comp[c].sha256, sizeof(pol->sha256));
  }
}

static int64_t update_interval_ms(const struct sim_dev *d)
{
  int64_t ms = d->lifetime * 750;

  /* Spread the fleet a little so Updates do not all land together. */
  ms += d->idx % 1000;
  return ms < 1000 ? 1000 : ms;
}

static void hist_add(struct sim_dev *d, unsigned index, int state, int result)
{
  struct sim_event *e = &d->hist[d->nhist % SIM_HISTORY];

  e->wall_ms = loop_wall(d->sim->loop);
  e->index = (uint16_t)index;
  e->state = (uint8_t)state;
  e->result = (uint8_t)result;
  d->nhist++;
}

static void close_session(struct sim_dev *d)
{
  sim_session_close(d->sim, d->session);
  d->session = NULL;
}

/* Opens the registration session; same_port reuses the last local port. */
static int open_session(struct sim_dev *d, bool same_port)
{
  const struct sim_config *cfg = d->sim->cfg;
  const coap_address_t *local = cfg->have_bind ? &cfg->bind : NULL;
  const coap_address_t *la;
  bool dtls = cfg->proto == COAP_PROTO_DTLS;
  coap_session_t *s = NULL;

  if (same_port && d->have_local)
    s = sim_session_open(d->shard, &d->local, &cfg->server_addr, cfg->proto,
                         dtls ? d->psk_id : NULL, d->psk_key, d->psk_key_len,
                         &d->peer);
  if (!s && same_port && d->have_local)
    log_info("%s: port %d is taken, waking on a new one", d->ep, d->port);
  if (!s)
    s = sim_session_open(d->shard, local, &cfg->server_addr, cfg->proto,
                         dtls ? d->psk_id : NULL, d->psk_key, d->psk_key_len,
                         &d->peer);
  if (!s) {
    log_warn("%s: cannot open a CoAP session", d->ep);
    return -EIO;
  }
  d->session = s;
  la = coap_session_get_addr_local(s);
  if (la) {
    coap_address_copy(&d->local, la);
    d->have_local = true;
    d->port = coap_address_get_port(la);
  }
  log_debug("%s: session on local port %d", d->ep, d->port);
  return 0;
}

/* A new CON request on the device's session with a fresh token. */
static coap_pdu_t *new_request(struct sim_dev *d, coap_pdu_code_t code,
                               uint8_t *token, size_t *token_len)
{
  coap_pdu_t *pdu =
      coap_pdu_init(COAP_MESSAGE_CON, code, coap_new_message_id(d->session),
                    coap_session_max_pdu_size(d->session));

  if (!pdu)
    return NULL;
  coap_session_new_token(d->session, token_len, token);
  if (!coap_add_token(pdu, *token_len, token)) {
    coap_delete_pdu(pdu);
    return NULL;
  }
  return pdu;
}

static void add_query(coap_pdu_t *pdu, const char *q)
{
  coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(q), (const uint8_t *)q);
}

static void add_location(struct sim_dev *d, coap_pdu_t *pdu)
{
  for (size_t i = 0; i < d->nloc; i++)
    coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(d->loc[i]),
                    (const uint8_t *)d->loc[i]);
}

/* 1.0 says queue mode in the binding, 1.1 with the bare Q parameter. */
static const char *binding_text(const struct sim_dev *d)
{
  return d->queue && d->sim->cfg->minor == 0 ? "UQ" : "U";
}

static void send_register(struct sim_dev *d)
{
  char q[96];
  coap_pdu_t *pdu =
      new_request(d, COAP_REQUEST_CODE_POST, d->reg_token, &d->reg_token_len);
  char *links;
  uint8_t buf[4];

  if (!pdu)
    return;
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 2, (const uint8_t *)"rd");
  coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                  coap_encode_var_safe(buf, sizeof(buf), LWM2M_CT_LINK), buf);
  snprintf(q, sizeof(q), "ep=%s", d->ep);
  add_query(pdu, q);
  snprintf(q, sizeof(q), "lt=%lld", (long long)d->lifetime);
  add_query(pdu, q);
  snprintf(q, sizeof(q), "lwm2m=1.%d", d->sim->cfg->minor);
  add_query(pdu, q);
  snprintf(q, sizeof(q), "b=%s", binding_text(d));
  add_query(pdu, q);
  if (d->queue && d->sim->cfg->minor >= 1)
    add_query(pdu, "Q");
  links = obj_register_links(d);
  coap_add_data(pdu, strlen(links), (const uint8_t *)links);
  free(links);
  d->reg_op = REG_REGISTER;
  d->reg_sent_ms = sim_now(d->sim);
  d->update_lt = d->update_b = d->update_again = false;
  if (sim_send(d->shard, d->session, pdu) < 0)
    log_warn("%s: cannot send Register", d->ep);
  dev_uplink(d);
}

static void send_update(struct sim_dev *d)
{
  char q[32];
  coap_pdu_t *pdu =
      new_request(d, COAP_REQUEST_CODE_POST, d->reg_token, &d->reg_token_len);

  if (!pdu)
    return;
  /* The object list never changes, so an Update carries no payload. */
  add_location(d, pdu);
  if (d->update_lt) {
    snprintf(q, sizeof(q), "lt=%lld", (long long)d->lifetime);
    add_query(pdu, q);
  }
  if (d->update_b) {
    snprintf(q, sizeof(q), "b=%s", binding_text(d));
    add_query(pdu, q);
  }
  d->update_lt = d->update_b = false;
  d->reg_op = REG_UPDATE;
  if (sim_send(d->shard, d->session, pdu) < 0)
    log_warn("%s: cannot send Update", d->ep);
  dev_uplink(d);
}

static bool send_deregister(struct sim_dev *d)
{
  coap_pdu_t *pdu;

  if (d->nloc == 0 || !d->session)
    return false;
  pdu = new_request(d, COAP_REQUEST_CODE_DELETE, d->reg_token,
                    &d->reg_token_len);
  if (!pdu)
    return false;
  add_location(d, pdu);
  d->reg_op = REG_DEREGISTER;
  return sim_send(d->shard, d->session, pdu) == 0;
}

static void arm_life(struct sim_dev *d, enum life_phase phase, int64_t ms)
{
  d->life_phase = phase;
  loop_timer_arm(d->sim->loop, &d->life_timer, ms);
}

/* Forgets the registration (the server will have dropped it, or will). */
static void drop_registration(struct sim_dev *d)
{
  obs_clear(d);
  d->nloc = 0;
  d->reg_op = REG_NONE;
  d->reg_token_len = 0;
  d->send_token_len = 0;
  loop_timer_disarm(d->sim->loop, &d->reg_timer);
  loop_timer_disarm(d->sim->loop, &d->sleep_timer);
  loop_timer_disarm(d->sim->loop, &d->send_timer);
}

/* Queues a fresh Register through the pacer. */
static void register_again(struct sim_dev *d)
{
  drop_registration(d);
  set_state(d, DEV_WAIT_REGISTER);
  sim_pace_add(d->sim, d);
}

/* Register failed: back off exponentially, on a new socket. */
static void register_retry(struct sim_dev *d, const char *why)
{
  int64_t delay;
  unsigned shift = d->reg_failures < 6 ? d->reg_failures : 6;

  d->reg_failures++;
  d->reg_retries++;
  delay = (int64_t)2000 << shift;
  if (delay > RETRY_MAX_MS)
    delay = RETRY_MAX_MS;
  delay += (int64_t)(d->idx * 37 % 1000);
  log_info("%s: registration failed (%s), retry in %lld ms", d->ep, why,
           (long long)delay);
  drop_registration(d);
  close_session(d);
  set_state(d, DEV_OFF);
  loop_timer_arm(d->sim->loop, &d->reg_timer, delay);
}

void dev_register(struct sim_dev *d)
{
  if (d->state != DEV_WAIT_REGISTER)
    return;
  if (!d->session && open_session(d, false) < 0) {
    register_retry(d, "no socket");
    return;
  }
  set_state(d, DEV_REGISTERING);
  send_register(d);
}

static bool token_is(const coap_pdu_t *pdu, const uint8_t *tok, size_t len)
{
  coap_bin_const_t t = coap_pdu_get_token(pdu);

  return len > 0 && t.length == len && memcmp(t.s, tok, len) == 0;
}

static void registered(struct sim_dev *d, const coap_pdu_t *rcv)
{
  struct sim *sim = d->sim;
  coap_opt_iterator_t it;
  coap_opt_filter_t f;
  coap_opt_t *opt;
  int64_t now = sim_now(sim);

  d->nloc = 0;
  coap_option_filter_clear(&f);
  coap_option_filter_set(&f, COAP_OPTION_LOCATION_PATH);
  coap_option_iterator_init(rcv, &it, &f);
  for (opt = coap_option_next(&it); opt; opt = coap_option_next(&it)) {
    size_t n = coap_opt_length(opt);

    if (d->nloc == SIM_LOC_MAX || n >= SIM_LOC_SEG || n == 0) {
      register_retry(d, "unusable Location-Path");
      return;
    }
    memcpy(d->loc[d->nloc], coap_opt_value(opt), n);
    d->loc[d->nloc][n] = '\0';
    d->nloc++;
  }
  if (d->nloc == 0) {
    register_retry(d, "2.01 without Location-Path");
    return;
  }
  d->reg_op = REG_NONE;
  d->reg_failures = 0;
  d->registrations++;
  if (d->first_reg_ms < 0) {
    d->first_reg_ms = now - d->reg_sent_ms;
    sim->n_registered++;
    if (sim->n_registered == sim->ndev) {
      double s;

      sim->all_registered_ms = now - sim->start_ms;
      s = (double)(sim->all_registered_ms > 0 ? sim->all_registered_ms : 1) /
          1000.0;
      log_notice("all %zu devices registered in %.3f s (%.0f/s)", sim->ndev, s,
                 (double)sim->ndev / s);
    }
  }
  set_state(d, DEV_REGISTERED);
  log_info("%s: registered as /%s%s%s from port %d", d->ep, d->loc[0],
           d->nloc > 1 ? "/" : "", d->nloc > 1 ? d->loc[1] : "", d->port);
  loop_timer_arm(sim->loop, &d->reg_timer, update_interval_ms(d));
  dev_uplink(d);
  if (dev_has_fault(d, FAULT_OFFLINE) && !d->offline_done &&
      !loop_timer_armed(&d->life_timer))
    arm_life(d, LIFE_OFFLINE, d->lifetime * 500);
  if (dev_has_fault(d, FAULT_REBOOT_LOOP) && d->installs > 0)
    arm_life(d, LIFE_CRASH, CRASH_AFTER_MS);
  if (sim->cfg->nsend > 0) {
    dev_send(d);
    if (sim->cfg->send_interval_ms > 0)
      loop_timer_arm(sim->loop, &d->send_timer, sim->cfg->send_interval_ms);
  }
  sim_until_update(sim, d);
}

static void reg_answer(struct sim_dev *d, coap_pdu_code_t code,
                       const coap_pdu_t *rcv)
{
  enum reg_op op = d->reg_op;
  char why[32];

  snprintf(why, sizeof(why), "%d.%02d", COAP_RESPONSE_CLASS(code),
           code & 0x1f);
  switch (op) {
  case REG_REGISTER:
    if (code == COAP_RESPONSE_CODE(201))
      registered(d, rcv);
    else
      register_retry(d, why);
    break;
  case REG_UPDATE:
    d->reg_op = REG_NONE;
    if (code == COAP_RESPONSE_CODE(204)) {
      d->updates++;
      loop_timer_arm(d->sim->loop, &d->reg_timer, update_interval_ms(d));
      if (d->update_again) {
        d->update_again = false;
        dev_request_update(d, false, false);
      }
    } else {
      /* 4.04: the server forgot us; anything else: start over too. */
      log_info("%s: Update answered %s, registering again", d->ep, why);
      register_again(d);
    }
    break;
  case REG_DEREGISTER:
    d->reg_op = REG_NONE;
    if (d->state == DEV_DEREGISTERING) {
      set_state(d, DEV_STOPPED);
      if (d->sim->pending_deregister > 0)
        d->sim->pending_deregister--;
    }
    break;
  case REG_NONE:
    break;
  }
}

void dev_on_response(struct sim_dev *d, const coap_pdu_t *sent,
                     const coap_pdu_t *rcv)
{
  coap_pdu_code_t code = coap_pdu_get_code(rcv);

  if (token_is(rcv, d->reg_token, d->reg_token_len) && d->reg_op != REG_NONE) {
    reg_answer(d, code, rcv);
    return;
  }
  if (token_is(rcv, d->send_token, d->send_token_len)) {
    d->send_token_len = 0;
    if (code != COAP_RESPONSE_CODE(204))
      log_info("%s: Send answered %d.%02d", d->ep, COAP_RESPONSE_CLASS(code),
               code & 0x1f);
    if (d->send_wanted) {
      d->send_wanted = false;
      dev_send(d);
    }
  }
}

void dev_on_nack(struct sim_dev *d, const coap_pdu_t *sent,
                 coap_nack_reason_t reason)
{
  coap_bin_const_t tok;

  if (!sent)
    return;
  tok = coap_pdu_get_token(sent);
  if (token_is(sent, d->reg_token, d->reg_token_len) &&
      d->reg_op != REG_NONE) {
    switch (d->reg_op) {
    case REG_REGISTER:
      register_retry(d, reason == COAP_NACK_RST ? "reset" : "no answer");
      break;
    case REG_UPDATE:
      log_info("%s: Update got no answer, registering again", d->ep);
      register_again(d);
      break;
    default:
      reg_answer(d, COAP_RESPONSE_CODE(504), sent);
      break;
    }
    return;
  }
  if (token_is(sent, d->send_token, d->send_token_len)) {
    d->send_token_len = 0;
    return;
  }
  /* An unanswered or reset notification ends its observation. */
  obs_cancel(d, tok.s, tok.length);
}

void dev_uplink(struct sim_dev *d)
{
  if (d->queue && d->state == DEV_REGISTERED)
    loop_timer_arm(d->sim->loop, &d->sleep_timer, d->sim->cfg->awake_ms);
}

static bool busy(const struct sim_dev *d)
{
  if (d->reg_op != REG_NONE || d->b1 || d->send_token_len)
    return true;
  for (size_t i = 0; i <= AFU_MAX_INST; i++)
    if (d->dl[i])
      return true;
  for (size_t i = 0; i < d->afu.n; i++)
    if (d->afu.inst[i].state == AFU_DOWNLOADING ||
        d->afu.inst[i].state == AFU_UPDATING)
      return true;
  return d->afu.has_fw && (d->afu.fw.state == AFU_DOWNLOADING ||
                           d->afu.fw.state == AFU_UPDATING);
}

static void on_sleep_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;

  if (d->state != DEV_REGISTERED || !d->queue)
    return;
  if (busy(d)) {
    loop_timer_arm(loop, t, d->sim->cfg->awake_ms);
    return;
  }
  log_debug("%s: going to sleep", d->ep);
  close_session(d);
  set_state(d, DEV_ASLEEP);
}

bool dev_wake(struct sim_dev *d)
{
  if (d->state == DEV_REGISTERED && d->session)
    return true;
  if (d->state != DEV_ASLEEP)
    return false;
  if (open_session(d, true) < 0)
    return false;
  log_debug("%s: awake", d->ep);
  set_state(d, DEV_REGISTERED);
  dev_uplink(d);
  return true;
}

void dev_request_update(struct sim_dev *d, bool lt, bool b)
{
  d->update_lt |= lt;
  d->update_b |= b;
  if (d->state != DEV_REGISTERED && d->state != DEV_ASLEEP)
    return; /* a Register on its way carries everything */
  if (d->reg_op != REG_NONE) {
    d->update_again = true;
    return;
  }
  if (!dev_wake(d))
    return;
  send_update(d);
}

static void on_reg_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;

  if (d->state == DEV_REGISTERED || d->state == DEV_ASLEEP) {
    dev_request_update(d, false, false);
  } else if (d->state == DEV_OFF) {
    set_state(d, DEV_WAIT_REGISTER);
    sim_pace_add(d->sim, d);
  }
}

static void stop_downloads(struct sim_dev *d)
{
  for (unsigned slot = 0; slot <= AFU_MAX_INST; slot++)
    dl_abort(d, slot);
  dm_block1_free(d);
}

/* The device goes silent: after an Execute Update or Reboot, or a crash. */
static void go_down(struct sim_dev *d)
{
  drop_registration(d);
  stop_downloads(d);
  d->nattrs = 0;
  sim_pace_remove(d->sim, d);
  loop_timer_disarm(d->sim->loop, &d->defer_timer);
  close_session(d);
  d->reboots++;
  if (d->reboot_kind == REBOOT_INSTALL && dev_has_fault(d, FAULT_NO_RETURN)) {
    log_info("%s: installing, and never coming back", d->ep);
    set_state(d, DEV_DEAD);
    sim_until_update(d->sim, d);
    return;
  }
  set_state(d, DEV_REBOOTING);
  sim_until_update(d->sim, d);
  arm_life(d, LIFE_BOOT, d->sim->cfg->reboot_ms);
}

void dev_reboot(struct sim_dev *d, enum reboot_kind kind, uint32_t batch)
{
  if (d->state == DEV_REBOOTING || d->state == DEV_DEAD ||
      d->life_phase == LIFE_GO_DOWN)
    return;
  d->reboot_kind = kind;
  d->install_batch |= batch;
  /* What changed (State 3 "updating") goes out before the reboot. */
  obs_flush(d, true);
  arm_life(d, LIFE_GO_DOWN, GO_DOWN_DELAY_MS);
}

void dev_disable(struct sim_dev *d)
{
  arm_life(d, LIFE_DISABLE, GO_DOWN_DELAY_MS);
}

static void on_defer_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;

  afu_defer_expired(&d->afu, sim_wall_s(d->sim));
  dev_afu_changed(d);
}

static void arm_defer(struct sim_dev *d)
{
  int64_t left = d->afu.defer_until - sim_wall_s(d->sim);

  if (!d->afu.deferred)
    return;
  loop_timer_arm(d->sim->loop, &d->defer_timer, left > 0 ? left * 1000 : 0);
}

void dev_boot(struct sim_dev *d)
{
  int64_t now = sim_wall_s(d->sim);

  d->life_phase = LIFE_NONE;
  if (d->reboot_kind == REBOOT_INSTALL && d->install_batch) {
    enum afu_outcome out = AFU_OUT_SUCCESS;

    if (dev_has_fault(d, FAULT_INSTALL_FAIL))
      out = AFU_OUT_FAILED;
    else if (dev_has_fault(d, FAULT_ROLLBACK))
      out = AFU_OUT_ROLLBACK;
    afu_install_done(&d->afu, d->install_batch, out, now);
    if (out == AFU_OUT_SUCCESS)
      d->installs++;
    else
      d->install_failures++;
    log_info("%s: boot after install: %s", d->ep,
             out == AFU_OUT_SUCCESS  ? "new firmware runs"
             : out == AFU_OUT_FAILED ? "installation failed"
                                     : "rolled back (silently)");
  } else if (d->reboots > 0) {
    afu_rebooted(&d->afu, now);
  }
  d->install_batch = 0;
  d->reboot_kind = REBOOT_PLAIN;
  dev_afu_changed(d);
  arm_defer(d);
  set_state(d, DEV_WAIT_REGISTER);
  sim_pace_add(d->sim, d);
}

/* The offline fault: silence for longer than the lifetime. */
static void go_offline(struct sim_dev *d)
{
  int64_t away = d->lifetime + OFFLINE_EXTRA_S;

  if (d->state != DEV_REGISTERED && d->state != DEV_ASLEEP)
    return;
  d->offline_done = true;
  for (unsigned slot = 0; slot <= AFU_MAX_INST; slot++)
    if (d->dl[slot]) {
      dl_abort(d, slot);
      dev_download_finished(d, slot, AFU_R_CONN_LOST, NULL, "went offline");
    }
  drop_registration(d);
  close_session(d);
  log_info("%s: offline for %lld s", d->ep, (long long)away);
  set_state(d, DEV_OFFLINE);
  sim_until_update(d->sim, d);
  arm_life(d, LIFE_RETURN_UPDATE, away * 1000);
}

/* The offline device is back and tries its old registration first. */
static void come_back(struct sim_dev *d)
{
  if (open_session(d, false) < 0) {
    register_retry(d, "no socket");
    return;
  }
  log_info("%s: back online, port %d", d->ep, d->port);
  set_state(d, DEV_REGISTERED);
  dev_request_update(d, false, false);
}

static void rebind(struct sim_dev *d)
{
  int old = d->port;

  d->rebind_done = true;
  if (d->state == DEV_ASLEEP) {
    d->have_local = false; /* wakes on a new port */
    return;
  }
  if (d->state != DEV_REGISTERED)
    return;
  close_session(d);
  d->have_local = false;
  if (open_session(d, false) < 0) {
    register_again(d);
    return;
  }
  log_info("%s: NAT rebinding, port %d -> %d", d->ep, old, d->port);
  /* The pending registration operation died with the old socket. */
  if (d->reg_op == REG_UPDATE)
    d->update_again = true;
  d->reg_op = REG_NONE;
  dev_request_update(d, false, false);
}

static void on_life_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;
  enum life_phase phase = (enum life_phase)d->life_phase;

  d->life_phase = LIFE_NONE;
  switch (phase) {
  case LIFE_NONE:
    break;
  case LIFE_GO_DOWN:
    go_down(d);
    break;
  case LIFE_BOOT:
    dev_boot(d);
    break;
  case LIFE_OFFLINE:
    go_offline(d);
    break;
  case LIFE_RETURN_UPDATE:
    come_back(d);
    break;
  case LIFE_DISABLE:
    if (d->session && d->nloc > 0)
      send_deregister(d);
    drop_registration(d);
    close_session(d);
    set_state(d, DEV_DISABLED);
    sim_until_update(d->sim, d);
    arm_life(d, LIFE_RETURN_REGISTER, d->disable_timeout * 1000);
    break;
  case LIFE_RETURN_REGISTER:
    set_state(d, DEV_WAIT_REGISTER);
    sim_pace_add(d->sim, d);
    break;
  case LIFE_REBIND:
    rebind(d);
    break;
  case LIFE_CRASH:
    if (d->state == DEV_REGISTERED || d->state == DEV_ASLEEP) {
      d->crashes++;
      log_info("%s: crashed (reboot loop)", d->ep);
      d->reboot_kind = REBOOT_CRASH;
      go_down(d);
    }
    break;
  }
}

static void on_obs_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  obs_flush(arg, false);
}

static void on_send_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct sim_dev *d = arg;

  dev_send(d);
  if (d->state == DEV_REGISTERED || d->state == DEV_ASLEEP)
    loop_timer_arm(loop, t, d->sim->cfg->send_interval_ms);
}

void dev_init(struct sim *sim, struct sim_dev *d, unsigned idx)
{
  const struct sim_config *cfg = sim->cfg;
  int64_t now = loop_wall(sim->loop) / 1000;
  char key[2 * SIM_PSK_MAX + 1];
  uint32_t faults = d->faults;

  memset(d, 0, sizeof(*d));
  d->faults = faults;
  d->sim = sim;
  d->idx = idx;
  d->shard = &sim->shards[idx / SIM_SHARD_SIZE];
  d->peer.kind = PEER_DEV;
  d->peer.owner = d;
  d->first_reg_ms = -1;
  sim_pattern_format(cfg->endpoint_pattern, (long)idx, d->ep, sizeof(d->ep));
  if (cfg->psk_identity_pattern)
    sim_pattern_format(cfg->psk_identity_pattern, (long)idx, d->psk_id,
                       sizeof(d->psk_id));
  else
    snprintf(d->psk_id, sizeof(d->psk_id), "%s", d->ep);
  if (cfg->psk_key_pattern) {
    int n;

    sim_pattern_format(cfg->psk_key_pattern, (long)idx, key, sizeof(key));
    n = sim_hex_decode(key, d->psk_key, sizeof(d->psk_key));
    d->psk_key_len = n > 0 ? (size_t)n : 0;
  }
  loop_timer_init(&d->reg_timer, on_reg_timer, d);
  loop_timer_init(&d->sleep_timer, on_sleep_timer, d);
  loop_timer_init(&d->life_timer, on_life_timer, d);
  loop_timer_init(&d->defer_timer, on_defer_timer, d);
  loop_timer_init(&d->send_timer, on_send_timer, d);
  loop_timer_init(&d->obs_timer, on_obs_timer, d);

  d->lifetime = cfg->lifetime;
  d->queue = cfg->queue;
  d->disable_timeout = 86400;
  d->notif_storing = true;
  snprintf(d->utc_offset, sizeof(d->utc_offset), "+00:00");
  snprintf(d->timezone, sizeof(d->timezone), "UTC");
  d->battery = 100 - (int)(idx % 40);

  afu_init(&d->afu, d->ep, cfg->minor);
  d->afu.quirks = cfg->quirks;
  for (size_t i = 0; i < cfg->ncomp; i++)
    afu_add(&d->afu, cfg->comp[i].name, cfg->comp[i].version, cfg->protocols,
            cfg->delivery, cfg->comp[i].severity, cfg->comp[i].max_defer, now);
  if (cfg->object5)
    afu_enable_fw(&d->afu, cfg->protocols, cfg->delivery, now);
  d->afu.fault_conflict = dev_has_fault(d, FAULT_CONFLICT);
  d->afu.fault_dependency = dev_has_fault(d, FAULT_DEPENDENCY);
  d->afu.user_defers = dev_has_fault(d, FAULT_DEFER);
  for (unsigned slot = 0; slot <= AFU_MAX_INST; slot++) {
    struct afu_inst *in = dev_slot_inst(d, slot);

    d->last_state[slot] = in ? (uint8_t)in->state : 0;
    d->last_result[slot] = in ? (uint8_t)in->result : 0;
  }
}

void dev_free(struct sim_dev *d)
{
  struct loop *loop = d->sim->loop;

  loop_timer_disarm(loop, &d->reg_timer);
  loop_timer_disarm(loop, &d->sleep_timer);
  loop_timer_disarm(loop, &d->life_timer);
  loop_timer_disarm(loop, &d->defer_timer);
  loop_timer_disarm(loop, &d->send_timer);
  obs_clear(d);
  stop_downloads(d);
  close_session(d);
}

/* Notes a changed resource of an AFU instance for the observers. */
static void resource_changed(struct sim_dev *d, const struct afu_inst *in,
                             unsigned rid)
{
  struct lwm2m_path p = {.len = 3};

  p.id[0] = in->obj5 ? FW_OID : AFU_OID;
  p.id[1] = in->obj5 ? 0 : in->index;
  p.id[2] = (uint16_t)rid;
  obs_changed(d, &p);
  if (rid == AFU_RES_VERSION && (in->obj5 || in->index == 0)) {
    p.id[0] = 3;
    p.id[1] = 0;
    p.id[2] = 3;
    obs_changed(d, &p);
  }
}

void dev_afu_changed(struct sim_dev *d)
{
  struct afu_effects fx = afu_take_effects(&d->afu);
  bool moved = false, started = false, downloaded = false;

  for (unsigned slot = 0; slot <= AFU_MAX_INST; slot++) {
    struct afu_inst *in = dev_slot_inst(d, slot);
    uint32_t bitv = slot == SIM_FW_SLOT ? AFU_FW_BIT : UINT32_C(1) << slot;
    uint32_t dirty;

    if (!in)
      continue;
    if (fx.abort & bitv) {
      dl_abort(d, slot);
      if (d->b1 && d->b1->package && d->b1->afu_index == in->index)
        dm_block1_free(d);
    }
    if (fx.download & bitv)
      dl_start(d, slot);
    dirty = afu_take_dirty(in);
    for (unsigned rid = 0; rid < 32; rid++)
      if (dirty & (UINT32_C(1) << rid))
        resource_changed(d, in, rid);
    if (in->state != d->last_state[slot] ||
        in->result != d->last_result[slot]) {
      hist_add(d, in->index, in->state, in->result);
      if (in->state == AFU_DOWNLOADING &&
          d->last_state[slot] != AFU_DOWNLOADING)
        started = true;
      if (in->state == AFU_DOWNLOADED &&
          d->last_state[slot] == AFU_DOWNLOADING)
        downloaded = true;
      d->last_state[slot] = (uint8_t)in->state;
      d->last_result[slot] = (uint8_t)in->result;
      moved = true;
    }
  }
  if (fx.defer_armed)
    arm_defer(d);
  if (started && dev_has_fault(d, FAULT_NAT_REBIND) && !d->rebind_done &&
      !loop_timer_armed(&d->life_timer))
    arm_life(d, LIFE_REBIND, REBIND_AFTER_MS);
  if (downloaded) {
    if (dev_has_fault(d, FAULT_OFFLINE) && !d->offline_done &&
        d->life_phase != LIFE_GO_DOWN)
      arm_life(d, LIFE_OFFLINE, 500);
  }
  if (moved && d->sim->cfg->nsend > 0)
    dev_send(d);
  if (fx.install)
    dev_reboot(d, REBOOT_INSTALL, fx.install);
  else
    obs_flush(d, false);
  sim_until_update(d->sim, d);
}

void dev_download_finished(struct sim_dev *d, unsigned slot, int result,
                           const struct pkg_info *pkg, const char *why)
{
  struct afu_inst *in = dev_slot_inst(d, slot);
  int64_t now = sim_wall_s(d->sim);

  if (!in)
    return;
  if (result == 0 && dev_has_fault(d, FAULT_INTEGRITY)) {
    result = AFU_R_INTEGRITY;
    why = "integrity fault";
  } else if (result == 0 && dev_has_fault(d, FAULT_UNSUPPORTED)) {
    result = AFU_R_UNSUPPORTED;
    why = "unsupported fault";
  }
  if (result == 0) {
    d->downloads_ok++;
    log_info("%s: package %s %s (%zu bytes) downloaded", d->ep, pkg->name,
             pkg->version, pkg->size);
    afu_download_done(&d->afu, in, pkg, now);
  } else {
    d->downloads_failed++;
    log_info("%s: download failed, result %d (%s)", d->ep, result,
             why && *why ? why : afu_result_name(result));
    afu_download_failed(&d->afu, in, result, now);
  }
  dev_afu_changed(d);
}

void dev_send(struct sim_dev *d)
{
  static const struct lwm2m_path root = {.len = 0};
  const struct sim_config *cfg = d->sim->cfg;
  struct lwm2m_records recs;
  uint16_t ct = lwm2m_ct_supported(LWM2M_CT_SENML_CBOR) ? LWM2M_CT_SENML_CBOR
                                                        : LWM2M_CT_SENML_JSON;
  uint8_t *payload = NULL;
  size_t len = 0;
  char err[128];
  coap_pdu_t *pdu;
  uint8_t buf[4];
  int64_t now = loop_wall(d->sim->loop);

  if (cfg->nsend == 0 || cfg->minor < 1 || d->mute_send)
    return;
  if (d->state != DEV_REGISTERED && d->state != DEV_ASLEEP)
    return;
  if (d->send_token_len) {
    d->send_wanted = true;
    return;
  }
  lwm2m_records_init(&recs);
  for (size_t i = 0; i < cfg->nsend; i++)
    obj_read(d, &cfg->send[i], &recs);
  for (size_t i = 0; i < recs.len; i++)
    recs.v[i].time = now;
  if (lwm2m_encode(ct, &root, &recs, d->sim->model, &payload, &len, err,
                   sizeof(err)) < 0) {
    log_warn("%s: cannot encode Send: %s", d->ep, err);
    lwm2m_records_free(&recs);
    return;
  }
  lwm2m_records_free(&recs);
  if (!dev_wake(d)) {
    free(payload);
    return;
  }
  if (len + 64 > coap_session_max_pdu_size(d->session)) {
    log_warn("%s: Send payload of %zu bytes does not fit a datagram", d->ep,
             len);
    free(payload);
    return;
  }
  pdu = new_request(d, COAP_REQUEST_CODE_POST, d->send_token,
                    &d->send_token_len);
  if (!pdu) {
    free(payload);
    return;
  }
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 2, (const uint8_t *)"dp");
  coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                  coap_encode_var_safe(buf, sizeof(buf), ct), buf);
  coap_add_data(pdu, len, payload);
  free(payload);
  if (sim_send(d->shard, d->session, pdu) < 0)
    d->send_token_len = 0;
  dev_uplink(d);
}

bool dev_shutdown(struct sim_dev *d)
{
  struct loop *loop = d->sim->loop;

  d->stop_state = d->state;
  loop_timer_disarm(loop, &d->reg_timer);
  loop_timer_disarm(loop, &d->sleep_timer);
  loop_timer_disarm(loop, &d->life_timer);
  loop_timer_disarm(loop, &d->defer_timer);
  loop_timer_disarm(loop, &d->send_timer);
  loop_timer_disarm(loop, &d->obs_timer);
  stop_downloads(d);
  if (!d->sim->cfg->deregister ||
      (d->state != DEV_REGISTERED && d->state != DEV_ASLEEP))
    return false;
  if (!dev_wake(d) || !send_deregister(d))
    return false;
  set_state(d, DEV_DEREGISTERING);
  return true;
}
