/*
 * Component tracking: on registration, read every instance of 33629, /5/0
 * and /3/0/3, store them, and observe State and Update Result of each
 * instance (pmin 0, so short-lived states are not missed). Updates
 * reconcile with a fresh read now and then, because notifications are
 * best effort. Every change lands in the device's timeline.
 */
#include "orchestrator/orch_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "comp"

#define OBJ_AFU 33629
#define OBJ_FW 5

static uint64_t ep_hash(const char *ep)
{
  return hash_bytes(ep, strlen(ep));
}

static struct orch_dev *dev_find(struct orch *orch, const char *ep)
{
  uint64_t h = ep_hash(ep);

  for (struct hmap_node *n = hmap_first(&orch->devs, h); n; n = n->next) {
    struct orch_dev *d = container_of(n, struct orch_dev, node);

    if (n->hash == h && strcmp(d->ep, ep) == 0)
      return d;
  }
  return NULL;
}

static void on_read_retry(struct loop *loop, struct loop_timer *t, void *arg);

static struct orch_dev *dev_get(struct orch *orch, const char *ep,
                                int64_t device_id)
{
  struct orch_dev *d = dev_find(orch, ep);

  if (d)
    return d;
  d = xcalloc(1, sizeof(*d));
  d->orch = orch;
  loop_timer_init(&d->retry, on_read_retry, d);
  d->ep = xstrdup(ep);
  d->device_id = device_id;
  d->last_read = INT64_MIN / 2;
  hmap_insert(&orch->devs, &d->node, ep_hash(ep));
  return d;
}

static void dev_drop(struct orch *orch, struct orch_dev *d)
{
  hmap_remove(&orch->devs, &d->node);
  loop_timer_disarm(orch->loop, &d->retry);
  free(d->ep);
  free(d);
}

static void on_read_pump(struct loop *loop, struct loop_timer *t, void *arg);

void orch_components_init(struct orch *orch)
{
  hmap_init(&orch->devs);
  loop_timer_init(&orch->read_pump, on_read_pump, orch);
}

void orch_components_free(struct orch *orch)
{
  for (size_t i = 0; i < orch->devs.nbuckets; i++) {
    struct hmap_node *n = orch->devs.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct orch_dev *d = container_of(n, struct orch_dev, node);

      loop_timer_disarm(orch->loop, &d->retry);
      free(d->ep);
      free(d);
      n = next;
    }
  }
  hmap_destroy(&orch->devs);
  loop_timer_disarm(orch->loop, &orch->read_pump);
  for (size_t i = 0; i < orch->rq_len; i++)
    free(orch->read_queue[orch->rq_head + i]);
  free(orch->read_queue);
  orch->read_queue = NULL;
  orch->rq_len = orch->rq_head = orch->rq_cap = 0;
}

/* A component as we build it from values; strings owned. */
struct comp {
  int oid, iid;
  char *name, *current_version, *pkg_name, *pkg_version;
  int64_t state, result, delivery_method, severity, last_state_change,
      max_defer_period;
  json_t *protocols, *linked, *conflicting;
};

static void comp_init(struct comp *c, int oid, int iid)
{
  memset(c, 0, sizeof(*c));
  c->oid = oid;
  c->iid = iid;
  c->state = c->result = c->delivery_method = c->severity = -1;
  c->last_state_change = c->max_defer_period = -1;
}

static void comp_clear(struct comp *c)
{
  free(c->name);
  free(c->current_version);
  free(c->pkg_name);
  free(c->pkg_version);
  json_decref(c->protocols);
  json_decref(c->linked);
  json_decref(c->conflicting);
}

static char *str_value(const struct lwm2m_value *v)
{
  if (v->type == LWM2M_T_STRING || v->type == LWM2M_T_CORELNK)
    return xstrndup((const char *)v->u.bytes.data, v->u.bytes.len);
  return NULL;
}

static int64_t int_value(const struct lwm2m_value *v)
{
  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    return v->u.i;
  case LWM2M_T_UNSIGNED:
    return v->u.u > INT64_MAX ? INT64_MAX : (int64_t)v->u.u;
  case LWM2M_T_FLOAT:
    return (int64_t)v->u.f;
  case LWM2M_T_BOOLEAN:
    return v->u.b;
  default:
    return -1;
  }
}

static void append_int(json_t **arr, int64_t v)
{
  if (!*arr)
    *arr = json_array();
  json_array_append_new(*arr, json_integer(v));
}

/* Applies one resource value (/O/I/R or /O/I/R/RI) to c. */
static void comp_apply(struct comp *c, const struct lwm2m_record *r)
{
  const struct lwm2m_value *v = &r->v;
  uint16_t rid = r->path.id[2];

  switch (rid) {
  case 3:
    c->state = int_value(v);
    break;
  case 5:
    c->result = int_value(v);
    break;
  case 6:
    free(c->pkg_name);
    c->pkg_name = str_value(v);
    break;
  case 7:
    free(c->pkg_version);
    c->pkg_version = str_value(v);
    break;
  case 8:
    append_int(&c->protocols, int_value(v));
    break;
  case 9:
    c->delivery_method = int_value(v);
    break;
  case 11:
    c->severity = int_value(v);
    break;
  case 12:
    /* A Time is in seconds; the table keeps milliseconds. */
    c->last_state_change = int_value(v) >= 0 ? int_value(v) * 1000 : -1;
    break;
  case 13:
    c->max_defer_period = int_value(v);
    break;
  case 14:
    if (c->oid == OBJ_AFU) {
      free(c->name);
      c->name = str_value(v);
    }
    break;
  case 15:
    if (c->oid == OBJ_AFU) {
      free(c->current_version);
      c->current_version = str_value(v);
    }
    break;
  case 16:
  case 17:
    if (c->oid == OBJ_AFU && v->type == LWM2M_T_OBJLNK)
      append_int(rid == 16 ? &c->linked : &c->conflicting, v->u.lnk.iid);
    break;
  default:
    break;
  }
}

static char *json_text(json_t *j)
{
  return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

struct prev {
  bool found;
  int64_t state, result;
  char *version;
  char *name;
};

static void got_prev(void *arg, const struct db_component *c)
{
  struct prev *p = arg;

  p->found = true;
  p->state = c->state;
  p->result = c->result;
  p->version = c->current_version ? xstrdup(c->current_version) : NULL;
  p->name = c->name ? xstrdup(c->name) : NULL;
}

static bool str_differs(const char *a, const char *b)
{
  return a && b ? strcmp(a, b) != 0 : a != b;
}

/* Writes the component and a timeline event saying what changed. */
static void comp_store(struct orch *orch, struct orch_dev *d,
                       const struct comp *c, const char *source)
{
  struct prev p = {.state = -1, .result = -1};
  char *protocols = json_text(c->protocols);
  char *linked = json_text(c->linked);
  char *conflicting = json_text(c->conflicting);
  struct db_component row = {
      .device_id = d->device_id,
      .oid = c->oid,
      .iid = c->iid,
      .name = c->name,
      .current_version = c->current_version,
      .state = c->state,
      .result = c->result,
      .pkg_name = c->pkg_name,
      .pkg_version = c->pkg_version,
      .protocols = protocols,
      .delivery_method = c->delivery_method,
      .severity = c->severity,
      .last_state_change = c->last_state_change,
      .max_defer_period = c->max_defer_period,
      .linked = linked,
      .conflicting = conflicting,
      .updated_at = loop_wall(orch->loop),
  };

  db_component_get(orch->db, d->device_id, c->oid, c->iid, got_prev, &p);
  if (db_component_save(orch->db, &row) < 0) {
    log_err("%s: component /%d/%d not stored", d->ep, c->oid, c->iid);
    goto out;
  }
  if (!p.found || p.state != c->state || p.result != c->result ||
      str_differs(p.version, c->current_version)) {
    json_t *ev = json_pack(
        "{s:s, s:i, s:i, s:s?, s:s, s:o, s:o}", "path",
        c->oid == OBJ_AFU ? "/33629" : "/5", "object", c->oid, "instance",
        c->iid, "component", c->name, "source", source, "state",
        c->state >= 0 ? json_integer(c->state) : json_null(), "result",
        c->result >= 0 ? json_integer(c->result) : json_null());
    char *data;

    if (c->current_version)
      json_object_set_new(ev, "version", json_string(c->current_version));
    if (p.found && p.state != c->state && p.state >= 0)
      json_object_set_new(ev, "previous_state", json_integer(p.state));
    if (p.found && str_differs(p.version, c->current_version) && p.version)
      json_object_set_new(ev, "previous_version", json_string(p.version));
    data = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (db_timeline_add(orch->db, loop_wall(orch->loop), "component",
                        d->device_id, d->ep, 0, 0, data) < 0)
      log_warn("%s: component event not stored", d->ep);
    log_info("%s: /%d/%d%s%s state %lld result %lld%s%s", d->ep, c->oid,
             c->iid, c->name ? " " : "", c->name ? c->name : "",
             (long long)c->state, (long long)c->result,
             c->current_version ? " version " : "",
             c->current_version ? c->current_version : "");
    free(data);
  }
  orch_jobs_on_component(orch, d->device_id, d->ep, c->oid, c->iid, c->state,
                         c->result, c->current_version);
out:
  free(p.version);
  free(p.name);
  free(protocols);
  free(linked);
  free(conflicting);
}

/* A component read without an answer is tried again READ_RETRIES times,
 * after READ_RETRY_MS, then twice as long each time. */
#define READ_RETRIES 5
#define READ_RETRY_MS 5000

/*
 * Component tracking sends at most COMP_INFLIGHT_MAX requests at once;
 * devices beyond wait in a queue. When a whole fleet registers at once,
 * the reads that follow every registration would otherwise pile up in
 * front of the registrations themselves, delay their answers past the
 * devices' retransmission time and make them register again.
 */
#define COMP_INFLIGHT_MAX 256

/* The callback context of a request made for a device. */
struct req_ctx {
  struct orch *orch;
  char *ep;
  bool observe; /* after a read: set attributes and observe */
};

static struct req_ctx *ctx_new(struct orch *orch, const char *ep, bool observe)
{
  struct req_ctx *x = xcalloc(1, sizeof(*x));

  orch->comp_inflight++;
  x->orch = orch;
  x->ep = xstrdup(ep);
  x->observe = observe;
  return x;
}

static void ctx_free(struct req_ctx *x)
{
  struct orch *orch = x->orch;

  orch->comp_inflight--;
  if (orch->rq_len > 0 && !loop_timer_armed(&orch->read_pump))
    loop_timer_arm(orch->loop, &orch->read_pump, 0);
  free(x->ep);
  free(x);
}

static void log_only_done(void *arg, const struct srv_result *res)
{
  struct req_ctx *x = arg;

  if (res->status < 0 || (res->code >> 5) != 2) {
    char code[8];

    srv_code_format(res->code, code, sizeof(code));
    log_info("%s: %s", x->ep,
             res->status < 0 ? (res->error ? res->error : "request failed")
                             : code);
  }
  ctx_free(x);
}

static void send_simple(struct orch *orch, const char *ep, enum srv_op op,
                        const struct lwm2m_path *path, const char *attrs)
{
  struct srv_request req = {
      .op = op, .path = *path, .attrs = attrs, .allow_queue = false};

  srv_send(orch->srv, ep, &req, log_only_done, ctx_new(orch, ep, false));
}

/* pmin 0 at the object: every State and Result change is notified. */
static void observe_states(struct orch *orch, const char *ep, int oid,
                           const int *iids, size_t n)
{
  struct lwm2m_path obj = {.id = {(uint16_t)oid}, .len = 1};
  char attrs[64];

  snprintf(attrs, sizeof(attrs), "pmin=0&pmax=%lld",
           (long long)orch->cfg.observe_pmax);
  send_simple(orch, ep, SRV_OP_WRITE_ATTRS, &obj, attrs);
  for (size_t i = 0; i < n; i++) {
    struct lwm2m_path st = {.id = {(uint16_t)oid, (uint16_t)iids[i], 3},
                            .len = 3};
    struct lwm2m_path res = {.id = {(uint16_t)oid, (uint16_t)iids[i], 5},
                             .len = 3};

    send_simple(orch, ep, SRV_OP_OBSERVE, &st, NULL);
    send_simple(orch, ep, SRV_OP_OBSERVE, &res, NULL);
  }
}

/* Stores every instance found in a read of /33629 or /5/0. */
static void read_done(void *arg, const struct srv_result *res)
{
  struct req_ctx *x = arg;
  struct orch *orch = x->orch;
  struct orch_dev *d = dev_find(orch, x->ep);
  struct comp comps[64];
  int iids[64];
  size_t n = 0;
  int oid = -1;

  if (d)
    d->reading = false;
  if (d && res->status < 0 && res->queued_id == 0 &&
      d->read_failures < READ_RETRIES) {
    /* No answer (lost, or the device was busy): again, later. */
    int64_t delay = READ_RETRY_MS << d->read_failures;

    d->read_failures++;
    d->retry_observe = d->retry_observe || x->observe;
    log_info("%s: component read failed (%s); again in %llds", x->ep,
             res->error ? res->error : "no answer", (long long)delay / 1000);
    loop_timer_arm(orch->loop, &d->retry, delay);
    goto out;
  }
  if (!d || res->status < 0 || res->code != 0x45) {
    char code[8];

    srv_code_format(res->code, code, sizeof(code));
    log_info("%s: component read failed: %s", x->ep,
             res->status < 0 ? (res->error ? res->error : "error") : code);
    goto out;
  }
  d->read_failures = 0;
  for (size_t i = 0; i < res->values.len; i++) {
    const struct lwm2m_record *r = &res->values.v[i];
    size_t k;

    if (r->path.len < 3)
      continue;
    if (r->path.id[0] == 3 && r->path.id[2] == 3) {
      char *fw = str_value(&r->v);

      db_device_set_firmware(orch->db, d->device_id, fw);
      free(fw);
      continue;
    }
    if (r->path.id[0] != OBJ_AFU && r->path.id[0] != OBJ_FW)
      continue;
    oid = r->path.id[0];
    for (k = 0; k < n; k++)
      if (comps[k].iid == r->path.id[1])
        break;
    if (k == n) {
      if (n == ARRAY_SIZE(comps))
        continue;
      comp_init(&comps[n], oid, r->path.id[1]);
      iids[n] = r->path.id[1];
      n++;
    }
    comp_apply(&comps[k], r);
  }
  for (size_t k = 0; k < n; k++)
    comp_store(orch, d, &comps[k], "read");
  if (oid == OBJ_AFU) {
    uint32_t keep[ARRAY_SIZE(comps) + 1];
    size_t nkeep = 0;

    /* Instances gone from 33629 are gone from the table; /5/0 stays. */
    for (size_t k = 0; k < n; k++)
      keep[nkeep++] = (uint32_t)OBJ_AFU << 16 | (uint32_t)comps[k].iid;
    keep[nkeep++] = (uint32_t)OBJ_FW << 16;
    db_components_prune(orch->db, d->device_id, keep, nkeep);
  }
  d->last_read = loop_now(orch->loop);
  if (x->observe && n > 0)
    observe_states(orch, x->ep, oid, iids, n);
  for (size_t k = 0; k < n; k++)
    comp_clear(&comps[k]);
out:
  ctx_free(x);
}

struct objects {
  bool afu, fw, dev;
};

static void note_object(struct objects *o, const struct db_object_link *l)
{
  if (l->oid == OBJ_AFU)
    o->afu = true;
  else if (l->oid == OBJ_FW)
    o->fw = true;
  else if (l->oid == 3)
    o->dev = true;
}

static void got_object(void *arg, const struct db_object_link *l)
{
  note_object(arg, l);
}

static void read_queue_push(struct orch *orch, const char *ep)
{
  if (orch->rq_head > 0 && orch->rq_head + orch->rq_len == orch->rq_cap) {
    memmove(orch->read_queue, orch->read_queue + orch->rq_head,
            orch->rq_len * sizeof(*orch->read_queue));
    orch->rq_head = 0;
  }
  if (orch->rq_head + orch->rq_len == orch->rq_cap) {
    orch->rq_cap = orch->rq_cap ? orch->rq_cap * 2 : 256;
    orch->read_queue =
        xrealloc(orch->read_queue, orch->rq_cap * sizeof(*orch->read_queue));
  }
  orch->read_queue[orch->rq_head + orch->rq_len++] = xstrdup(ep);
}

/*
 * Reads the device's firmware objects (links from the registration, or
 * from the database when NULL); observes them if asked.
 */
static void start_read(struct orch *orch, struct orch_dev *d,
                       const struct db_object_link *links, size_t n,
                       bool observe)
{
  struct objects o = {0};

  if (orch->comp_inflight >= COMP_INFLIGHT_MAX || d->read_queued) {
    /* Later, from the database's object list. */
    d->queued_observe = d->queued_observe || observe;
    if (!d->read_queued) {
      d->read_queued = true;
      read_queue_push(orch, d->ep);
    }
    return;
  }
  if (links) {
    for (size_t i = 0; i < n; i++)
      note_object(&o, &links[i]);
  } else if (db_device_objects(orch->db, d->device_id, got_object, &o) < 0) {
    return;
  }
  d->last_read = loop_now(orch->loop);
  /* /3/0/3 matters only for devices with firmware objects. */
  if (o.dev && (o.afu || o.fw)) {
    struct srv_request req = {.op = SRV_OP_READ,
                              .path = {.id = {3, 0, 3}, .len = 3}};

    srv_send(orch->srv, d->ep, &req, read_done, ctx_new(orch, d->ep, false));
  }
  if (o.afu) {
    struct srv_request req = {.op = SRV_OP_READ,
                              .path = {.id = {OBJ_AFU}, .len = 1}};

    d->reading = true;
    srv_send(orch->srv, d->ep, &req, read_done, ctx_new(orch, d->ep, observe));
  }
  if (o.fw) {
    struct srv_request req = {.op = SRV_OP_READ,
                              .path = {.id = {OBJ_FW, 0}, .len = 2}};

    d->reading = true;
    srv_send(orch->srv, d->ep, &req, read_done, ctx_new(orch, d->ep, observe));
  }
}

/* Starts the reads of waiting devices while slots are free. */
static void on_read_pump(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct orch *orch = arg;

  while (orch->rq_len > 0 && orch->comp_inflight < COMP_INFLIGHT_MAX) {
    char *ep = orch->read_queue[orch->rq_head++];
    struct orch_dev *d = dev_find(orch, ep);

    orch->rq_len--;
    if (orch->rq_len == 0)
      orch->rq_head = 0;
    free(ep);
    if (!d || !d->read_queued)
      continue; /* gone meanwhile */
    d->read_queued = false;
    start_read(orch, d, NULL, 0, d->queued_observe);
    d->queued_observe = false;
  }
}

static void on_read_retry(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct orch_dev *d = arg;
  bool observe = d->retry_observe;

  d->retry_observe = false;
  if (!d->reading)
    start_read(d->orch, d, NULL, 0, observe);
}

static bool has_firmware(const struct db_object_link *links, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (links[i].oid == OBJ_AFU || links[i].oid == OBJ_FW)
      return true;
  return false;
}

static void on_registered(void *arg, const char *ep, bool replaced,
                          int64_t device_id,
                          const struct db_object_link *links, size_t n)
{
  struct orch *orch = arg;
  struct orch_dev *d = dev_get(orch, ep, device_id);

  /* Devices without firmware objects cost a flag here, nothing more. */
  d->no_firmware = !has_firmware(links, n);
  if (d->no_firmware)
    return;
  /* A new registration has no observations: read and observe again. */
  start_read(orch, d, links, n, true);
}

static void on_updated(void *arg, const char *ep, int64_t device_id,
                       const struct db_object_link *links, size_t n)
{
  struct orch *orch = arg;
  struct orch_dev *d = dev_find(orch, ep);

  if (links) {
    /* A new object list: read and observe what it holds now. */
    d = dev_get(orch, ep, device_id);
    d->no_firmware = !has_firmware(links, n);
    if (!d->no_firmware && !d->reading)
      start_read(orch, d, links, n, true);
    return;
  }
  if (!d) {
    struct objects o = {0};

    /* First word from this device since fotad started: its observations
     * (if any survive on the device) are unknown to us, so read and
     * observe again if it has firmware objects. */
    d = dev_get(orch, ep, device_id);
    if (db_device_objects(orch->db, device_id, got_object, &o) < 0)
      return;
    d->no_firmware = !o.afu && !o.fw;
    if (!d->no_firmware)
      start_read(orch, d, NULL, 0, true);
    return;
  }
  if (d->no_firmware || d->reading)
    return;
  if (loop_now(orch->loop) - d->last_read >=
      orch->cfg.reconcile_interval * 1000)
    start_read(orch, d, NULL, 0, false);
}

/* Reached after a restart without a word of its own: the same as its
 * first Update since. */
static void on_reached(void *arg, const char *ep, int64_t device_id)
{
  on_updated(arg, ep, device_id, NULL, 0);
}

static void on_deregistered(void *arg, const char *ep, const char *why)
{
  struct orch *orch = arg;
  struct orch_dev *d = dev_find(orch, ep);

  if (d)
    dev_drop(orch, d);
}

static void comp_from_row(void *arg, const struct db_component *r)
{
  struct comp *c = arg;

  c->name = r->name ? xstrdup(r->name) : NULL;
  c->current_version = r->current_version ? xstrdup(r->current_version) : NULL;
  c->pkg_name = r->pkg_name ? xstrdup(r->pkg_name) : NULL;
  c->pkg_version = r->pkg_version ? xstrdup(r->pkg_version) : NULL;
  c->state = r->state;
  c->result = r->result;
  c->delivery_method = r->delivery_method;
  c->severity = r->severity;
  c->last_state_change = r->last_state_change;
  c->max_defer_period = r->max_defer_period;
  c->protocols = r->protocols ? json_loads(r->protocols, 0, NULL) : NULL;
  c->linked = r->linked ? json_loads(r->linked, 0, NULL) : NULL;
  c->conflicting = r->conflicting ? json_loads(r->conflicting, 0, NULL) : NULL;
}

/* A notification of State or Update Result: merge it into the row. */
static void on_notify(void *arg, const char *ep, const struct lwm2m_path *path,
                      const struct lwm2m_records *values)
{
  struct orch *orch = arg;
  struct orch_dev *d;
  struct comp c;

  if (path->len < 2 || (path->id[0] != OBJ_AFU && path->id[0] != OBJ_FW))
    return;
  d = dev_find(orch, ep);
  if (!d)
    return;
  comp_init(&c, path->id[0], path->id[1]);
  db_component_get(orch->db, d->device_id, c.oid, c.iid, comp_from_row, &c);
  for (size_t i = 0; i < values->len; i++) {
    const struct lwm2m_record *r = &values->v[i];

    if (r->path.len >= 3 && r->path.id[0] == c.oid && r->path.id[1] == c.iid &&
        r->path.id[2] != 8 && r->path.id[2] != 16 && r->path.id[2] != 17)
      comp_apply(&c, r);
  }
  comp_store(orch, d, &c, "notification");
  comp_clear(&c);
}

const struct srv_events orch_component_events = {
    .registered = on_registered,
    .updated = on_updated,
    .reached = on_reached,
    .deregistered = on_deregistered,
    .notify = on_notify,
};
