/*
 * Observe on the device side (RFC 7641 with the LwM2M attributes of spec
 * 3.3). libcoap cannot observe its catch-all resource, so the simulator
 * keeps its own observations: a token, the observed path(s) and format,
 * and sends notifications itself, as CON 2.05 responses carrying the token
 * and an Observe sequence number.
 *
 * A change marks the observations covering it; a notification goes out
 * once pmin has passed since the previous one (gt/lt/st may decide the
 * change is not worth one), and pmax forces one even without change.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "observe"

static struct sim_attrs *attrs_find(struct sim_dev *d,
                                    const struct lwm2m_path *p)
{
  for (size_t i = 0; i < d->nattrs; i++)
    if (lwm2m_path_cmp(&d->attrs[i].path, p) == 0)
      return &d->attrs[i];
  return NULL;
}

const struct sim_attrs *obs_attrs_get(const struct sim_dev *d,
                                      const struct lwm2m_path *p)
{
  return attrs_find((struct sim_dev *)d, p);
}

static int parse_real(const char *s, double *out)
{
  char *end = NULL;

  if (!*s)
    return -EINVAL;
  *out = strtod(s, &end);
  if (*end != '\0' || !isfinite(*out))
    return -EINVAL;
  return 0;
}

/* Applies one "name=value" or bare "name" to a, checking the value. */
static int apply_attr(struct sim_attrs *a, const char *q, bool numeric_res,
                      char *err, size_t errlen)
{
  static const struct {
    const char *name;
    unsigned bitv;
    bool real;
  } names[] = {
      {"pmin", ATTR_PMIN, false},   {"pmax", ATTR_PMAX, false},
      {"gt", ATTR_GT, true},        {"lt", ATTR_LT, true},
      {"st", ATTR_ST, true},        {"epmin", ATTR_EPMIN, false},
      {"epmax", ATTR_EPMAX, false},
  };
  const char *eq = strchr(q, '=');
  size_t nlen = eq ? (size_t)(eq - q) : strlen(q);

  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    int64_t iv;
    double dv;

    if (strlen(names[i].name) != nlen || strncmp(q, names[i].name, nlen))
      continue;
    if (names[i].real && !numeric_res) {
      snprintf(err, errlen, "%s applies to numeric resources only",
               names[i].name);
      return -EINVAL;
    }
    if (!eq) {
      a->set &= ~names[i].bitv;
      return 0;
    }
    if (names[i].real) {
      if (parse_real(eq + 1, &dv) < 0) {
        snprintf(err, errlen, "%s: '%s' is not a number", names[i].name,
                 eq + 1);
        return -EINVAL;
      }
      if (names[i].bitv == ATTR_GT)
        a->gt = dv;
      else if (names[i].bitv == ATTR_LT)
        a->lt = dv;
      else
        a->st = dv;
    } else {
      if (parse_int64(eq + 1, 0, UINT32_MAX, &iv) < 0) {
        snprintf(err, errlen, "%s: '%s' is not a whole number of seconds",
                 names[i].name, eq + 1);
        return -EINVAL;
      }
      if (names[i].bitv == ATTR_PMIN)
        a->pmin = iv;
      else if (names[i].bitv == ATTR_PMAX)
        a->pmax = iv;
      else if (names[i].bitv == ATTR_EPMIN)
        a->epmin = iv;
      else
        a->epmax = iv;
    }
    a->set |= names[i].bitv;
    return 0;
  }
  snprintf(err, errlen, "unknown attribute '%.*s'", (int)nlen, q);
  return -EINVAL;
}

int obs_write_attrs(struct sim_dev *d, const struct lwm2m_path *p,
                    const coap_pdu_t *req, char *err, size_t errlen)
{
  struct sim_attrs work, *cur;
  const struct sim_res *r = NULL;
  coap_opt_iterator_t it;
  coap_opt_filter_t f;
  coap_opt_t *opt;
  int rc;

  if (p->len == 0) {
    snprintf(err, errlen, "attributes cannot be set on /");
    return -EPERM;
  }
  if (!obj_exists(d, p))
    return -ENOENT;
  if (p->len >= 3)
    r = obj_res(d, p->id[0], p->id[2]);
  cur = attrs_find(d, p);
  if (cur)
    work = *cur;
  else
    work = (struct sim_attrs){.path = *p};

  coap_option_filter_clear(&f);
  coap_option_filter_set(&f, COAP_OPTION_URI_QUERY);
  coap_option_iterator_init(req, &it, &f);
  for (opt = coap_option_next(&it); opt; opt = coap_option_next(&it)) {
    char q[64];
    size_t n = coap_opt_length(opt);

    if (n >= sizeof(q)) {
      snprintf(err, errlen, "attribute too long");
      return -EINVAL;
    }
    memcpy(q, coap_opt_value(opt), n);
    q[n] = '\0';
    rc = apply_attr(&work, q, r && obj_res_numeric(r), err, errlen);
    if (rc < 0)
      return rc;
  }
  if ((work.set & ATTR_PMIN) && (work.set & ATTR_PMAX) &&
      work.pmax < work.pmin) {
    snprintf(err, errlen, "pmax must not be below pmin");
    return -EINVAL;
  }
  if ((work.set & ATTR_EPMIN) && (work.set & ATTR_EPMAX) &&
      work.epmax < work.epmin) {
    snprintf(err, errlen, "epmax must not be below epmin");
    return -EINVAL;
  }
  if ((work.set & ATTR_LT) && (work.set & ATTR_GT) && work.lt >= work.gt) {
    snprintf(err, errlen, "lt must be below gt");
    return -EINVAL;
  }
  if ((work.set & ATTR_ST) && work.st <= 0) {
    snprintf(err, errlen, "st must be positive");
    return -EINVAL;
  }

  if (cur && work.set == 0) {
    *cur = d->attrs[--d->nattrs];
  } else if (cur) {
    *cur = work;
  } else if (work.set != 0) {
    if (d->nattrs == SIM_MAX_ATTRS) {
      snprintf(err, errlen, "at most %d paths with attributes", SIM_MAX_ATTRS);
      return -EINVAL;
    }
    d->attrs[d->nattrs++] = work;
  }
  /* New periods take effect from now on. */
  obs_flush(d, false);
  return 0;
}

/* The attributes in force for path p: its own, else inherited. */
static void effective(const struct sim_dev *d, const struct lwm2m_path *p,
                      struct sim_attrs *out)
{
  memset(out, 0, sizeof(*out));
  out->pmin = d->pmin_def;
  out->pmax = d->pmax_def;
  for (uint8_t len = 1; len <= p->len; len++) {
    struct lwm2m_path up = *p;
    const struct sim_attrs *a;

    up.len = len;
    a = obs_attrs_get(d, &up);
    if (!a)
      continue;
    if (a->set & ATTR_PMIN)
      out->pmin = a->pmin;
    if (a->set & ATTR_PMAX)
      out->pmax = a->pmax;
    if (a->set & ATTR_GT)
      out->gt = a->gt;
    if (a->set & ATTR_LT)
      out->lt = a->lt;
    if (a->set & ATTR_ST)
      out->st = a->st;
    out->set |= a->set & (ATTR_GT | ATTR_LT | ATTR_ST);
  }
}

/* The current value of a single numeric resource, if p is one. */
static bool read_number(struct sim_dev *d, const struct lwm2m_path *p,
                        double *out)
{
  struct lwm2m_records recs;
  bool found = false;

  if (p->len < 3)
    return false;
  lwm2m_records_init(&recs);
  if (obj_read(d, p, &recs) == 0 && recs.len == 1) {
    const struct lwm2m_value *v = &recs.v[0].v;

    found = true;
    if (v->type == LWM2M_T_INTEGER || v->type == LWM2M_T_TIME)
      *out = (double)v->u.i;
    else if (v->type == LWM2M_T_UNSIGNED)
      *out = (double)v->u.u;
    else if (v->type == LWM2M_T_FLOAT)
      *out = v->u.f;
    else
      found = false;
  }
  lwm2m_records_free(&recs);
  return found;
}

int obs_encode(struct sim_dev *d, const struct lwm2m_path *paths,
               size_t npaths, bool composite, uint16_t ct, uint8_t **out,
               size_t *outlen)
{
  static const struct lwm2m_path root = {.len = 0};
  struct lwm2m_records recs;
  char err[128];
  int rc = 0;

  lwm2m_records_init(&recs);
  for (size_t i = 0; i < npaths && rc == 0; i++) {
    rc = obj_read(d, &paths[i], &recs);
    /* Read-Composite skips what does not exist or cannot be read. */
    if (composite)
      rc = 0;
  }
  if (rc == 0) {
    rc = lwm2m_encode(ct, composite ? &root : &paths[0], &recs, d->sim->model,
                      out, outlen, err, sizeof(err));
    if (rc < 0)
      log_warn("%s: cannot encode a notification: %s", d->ep, err);
  }
  lwm2m_records_free(&recs);
  return rc;
}

static struct sim_obs *find(struct sim_dev *d, const uint8_t *token,
                            size_t len, size_t *ix)
{
  for (size_t i = 0; i < d->nobs; i++) {
    struct sim_obs *o = d->obs[i];

    if (o->token_len == len && memcmp(o->token, token, len) == 0) {
      if (ix)
        *ix = i;
      return o;
    }
  }
  return NULL;
}

static void obs_free(struct sim_obs *o)
{
  free(o->paths);
  free(o);
}

int obs_add(struct sim_dev *d, const uint8_t *token, size_t token_len,
            const struct lwm2m_path *paths, size_t npaths, bool composite,
            uint16_t ct)
{
  struct sim_obs *o;
  size_t ix;

  if (token_len > sizeof(o->token))
    return -EINVAL;
  o = find(d, token, token_len, &ix);
  if (o) {
    /* The same token again replaces the observation (RFC 7641 4.1). */
    obs_free(o);
    d->obs[ix] = d->obs[--d->nobs];
  }
  if (d->nobs == SIM_MAX_OBS)
    return -ENOSPC;
  o = xcalloc(1, sizeof(*o));
  memcpy(o->token, token, token_len);
  o->token_len = token_len;
  o->composite = composite;
  o->npaths = npaths;
  o->paths = xmalloc(npaths * sizeof(*paths));
  memcpy(o->paths, paths, npaths * sizeof(*paths));
  o->ct = ct;
  o->seq = 2;
  o->last_sent = sim_now(d->sim);
  if (!composite)
    o->has_num = read_number(d, &paths[0], &o->last_num);
  d->obs[d->nobs++] = o;
  obs_flush(d, false);
  return (int)o->seq;
}

void obs_cancel(struct sim_dev *d, const uint8_t *token, size_t token_len)
{
  size_t ix;
  struct sim_obs *o = find(d, token, token_len, &ix);

  if (!o)
    return;
  log_debug("%s: observation cancelled", d->ep);
  obs_free(o);
  d->obs[ix] = d->obs[--d->nobs];
  obs_flush(d, false);
}

void obs_clear(struct sim_dev *d)
{
  for (size_t i = 0; i < d->nobs; i++)
    obs_free(d->obs[i]);
  d->nobs = 0;
  loop_timer_disarm(d->sim->loop, &d->obs_timer);
}

void obs_changed(struct sim_dev *d, const struct lwm2m_path *p)
{
  for (size_t i = 0; i < d->nobs; i++) {
    struct sim_obs *o = d->obs[i];

    for (size_t k = 0; k < o->npaths; k++)
      if (lwm2m_path_under(p, &o->paths[k]) ||
          lwm2m_path_under(&o->paths[k], p))
        o->changed = true;
  }
}

static void send_notification(struct sim_dev *d, struct sim_obs *o)
{
  uint8_t *payload = NULL;
  size_t len = 0;
  coap_pdu_t *pdu;

  o->seq = (o->seq + 1) & 0xffffff;
  o->last_sent = sim_now(d->sim);
  o->changed = false;
  if (o->has_num)
    read_number(d, &o->paths[0], &o->last_num);
  if (dev_has_fault(d, FAULT_LOST_NOTIFY)) {
    d->dropped_notifications++;
    return;
  }
  if (!dev_wake(d))
    return;
  if (obs_encode(d, o->paths, o->npaths, o->composite, o->ct, &payload, &len) <
      0)
    return;
  pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_RESPONSE_CODE(205),
                      coap_new_message_id(d->session),
                      coap_session_max_pdu_size(d->session));
  if (!pdu || !coap_add_token(pdu, o->token_len, o->token)) {
    log_warn("%s: cannot build a notification", d->ep);
    coap_delete_pdu(pdu);
    free(payload);
    return;
  }
  dm_add_payload(pdu, NULL, o->seq, o->ct, payload, len,
                 coap_session_max_pdu_size(d->session));
  free(payload);
  if (sim_send(d->shard, d->session, pdu) == 0) {
    d->notifications++;
    dev_uplink(d);
  }
}

/* Decides whether a change of a numeric value is notable (gt, lt, st). */
static bool notable(struct sim_dev *d, struct sim_obs *o,
                    const struct sim_attrs *eff)
{
  double cur, last = o->last_num;

  if (!o->has_num || !(eff->set & (ATTR_GT | ATTR_LT | ATTR_ST)))
    return true;
  if (!read_number(d, &o->paths[0], &cur))
    return true;
  if ((eff->set & ATTR_GT) && ((last <= eff->gt && cur > eff->gt) ||
                               (last > eff->gt && cur <= eff->gt)))
    return true;
  if ((eff->set & ATTR_LT) && ((last >= eff->lt && cur < eff->lt) ||
                               (last < eff->lt && cur >= eff->lt)))
    return true;
  if ((eff->set & ATTR_ST) && fabs(cur - last) >= eff->st)
    return true;
  return false;
}

void obs_flush(struct sim_dev *d, bool force)
{
  int64_t now = sim_now(d->sim), next = INT64_MAX;

  if (d->state != DEV_REGISTERED && d->state != DEV_ASLEEP) {
    loop_timer_disarm(d->sim->loop, &d->obs_timer);
    return;
  }
  for (size_t i = 0; i < d->nobs; i++) {
    struct sim_obs *o = d->obs[i];
    struct sim_attrs eff;
    int64_t pmin_at, pmax_at;

    if (o->composite)
      effective(d, &(struct lwm2m_path){.len = 0}, &eff);
    else
      effective(d, &o->paths[0], &eff);
    pmin_at = o->last_sent + eff.pmin * 1000;
    pmax_at = eff.pmax > 0 ? o->last_sent + eff.pmax * 1000 : INT64_MAX;
    if (o->changed && !notable(d, o, &eff))
      o->changed = false;
    if ((o->changed && (force || now >= pmin_at)) || now >= pmax_at) {
      send_notification(d, o);
      pmin_at = o->last_sent + eff.pmin * 1000;
      pmax_at = eff.pmax > 0 ? o->last_sent + eff.pmax * 1000 : INT64_MAX;
    }
    if (o->changed && pmin_at < next)
      next = pmin_at;
    if (pmax_at < next)
      next = pmax_at;
  }
  if (next == INT64_MAX)
    loop_timer_disarm(d->sim->loop, &d->obs_timer);
  else
    loop_timer_arm_at(d->sim->loop, &d->obs_timer, next);
}
