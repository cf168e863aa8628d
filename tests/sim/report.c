/*
 * The end of a run: a summary on stdout and, with --report, the same and
 * every device's details as JSON.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#define LOG_TAG "report"

/* Counts of distinct strings (versions), kept small: a fleet has few. */
struct tally {
  char **keys;
  size_t *counts;
  size_t n, cap;
};

static void tally_add(struct tally *t, const char *key)
{
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->keys[i], key) == 0) {
      t->counts[i]++;
      return;
    }
  }
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 8;
    t->keys = xrealloc(t->keys, t->cap * sizeof(*t->keys));
    t->counts = xrealloc(t->counts, t->cap * sizeof(*t->counts));
  }
  t->keys[t->n] = xstrdup(key);
  t->counts[t->n++] = 1;
}

static void tally_free(struct tally *t)
{
  for (size_t i = 0; i < t->n; i++)
    free(t->keys[i]);
  free(t->keys);
  free(t->counts);
}

static enum dev_state final_state(const struct sim_dev *d)
{
  return d->state == DEV_DEREGISTERING || d->state == DEV_STOPPED
             ? d->stop_state
             : d->state;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

/* Registration latency percentiles over devices that registered. */
static void latency(const struct sim *sim, int64_t *p50, int64_t *p99,
                    int64_t *max, size_t *n)
{
  int64_t *v = xmalloc((sim->ndev ? sim->ndev : 1) * sizeof(*v));

  *n = 0;
  for (size_t i = 0; i < sim->ndev; i++)
    if (sim->devs[i].first_reg_ms >= 0)
      v[(*n)++] = sim->devs[i].first_reg_ms;
  *p50 = *p99 = *max = 0;
  if (*n > 0) {
    qsort(v, *n, sizeof(*v), cmp_i64);
    *p50 = v[(*n - 1) / 2];
    *p99 = v[(*n - 1) * 99 / 100];
    *max = v[*n - 1];
  }
  free(v);
}

struct totals {
  unsigned registrations, reg_retries, updates, reboots, installs;
  unsigned install_failures, notifications, dropped, requests;
  unsigned downloads_ok, downloads_failed;
};

static void sum(const struct sim *sim, struct totals *t)
{
  memset(t, 0, sizeof(*t));
  for (size_t i = 0; i < sim->ndev; i++) {
    const struct sim_dev *d = &sim->devs[i];

    t->registrations += d->registrations;
    t->reg_retries += d->reg_retries;
    t->updates += d->updates;
    t->reboots += d->reboots;
    t->installs += d->installs;
    t->install_failures += d->install_failures;
    t->notifications += d->notifications;
    t->dropped += d->dropped_notifications;
    t->requests += d->requests;
    t->downloads_ok += d->downloads_ok;
    t->downloads_failed += d->downloads_failed;
  }
}

static void cpu(double *user, double *sys)
{
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
  *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double run_seconds(const struct sim *sim)
{
  return (double)(sim_now(sim) - sim->start_ms) / 1000.0;
}

/* The component slot's instance of device d (object 5 last). */
static const struct afu_inst *slot_inst(const struct sim_dev *d, size_t c)
{
  if (c < d->afu.n)
    return &d->afu.inst[c];
  return d->afu.has_fw ? &d->afu.fw : NULL;
}

static size_t nslots(const struct sim *sim)
{
  return sim->cfg->ncomp + (sim->cfg->object5 ? 1 : 0);
}

static const char *slot_name(const struct sim *sim, size_t c)
{
  return c < sim->cfg->ncomp ? sim->cfg->comp[c].name : "object 5";
}

void report_print(const struct sim *sim)
{
  const struct sim_config *cfg = sim->cfg;
  size_t states[DEV_STATE_COUNT] = {0}, n;
  double secs = run_seconds(sim), user, sys;
  int64_t p50, p99, max;
  struct totals t;

  cpu(&user, &sys);
  sum(sim, &t);
  latency(sim, &p50, &p99, &max, &n);
  printf("fotad-sim summary\n");
  printf("  run: %.3f s, %zu devices, stopped by %s\n", secs, sim->ndev,
         sim->stop_reason ? sim->stop_reason : "error");
  printf("  cpu: user %.2f s, system %.2f s (%.0f%% of one core)\n", user, sys,
         secs > 0 ? 100.0 * (user + sys) / secs : 0.0);
  if (sim->all_registered_ms >= 0)
    printf("  registration: all %zu registered in %.3f s (%.0f/s)\n",
           sim->ndev, (double)sim->all_registered_ms / 1000.0,
           (double)sim->ndev * 1000.0 /
               (double)(sim->all_registered_ms ? sim->all_registered_ms : 1));
  else
    printf("  registration: %zu of %zu registered at least once\n",
           sim->n_registered, sim->ndev);
  printf("  register latency: p50 %lld ms, p99 %lld ms, max %lld ms\n",
         (long long)p50, (long long)p99, (long long)max);
  printf("  totals: %u registrations (%u retries), %u updates, %u "
         "requests served, %u notifications (%u dropped)\n",
         t.registrations, t.reg_retries, t.updates, t.requests,
         t.notifications, t.dropped);
  printf("  firmware: %u downloads ok, %u failed, %u installs ok, %u "
         "failed, %u reboots\n",
         t.downloads_ok, t.downloads_failed, t.installs, t.install_failures,
         t.reboots);

  for (size_t i = 0; i < sim->ndev; i++)
    states[final_state(&sim->devs[i])]++;
  printf("  device states:");
  for (int s = 0; s < DEV_STATE_COUNT; s++)
    if (states[s])
      printf(" %s %zu", dev_state_name((enum dev_state)s), states[s]);
  printf("\n");

  for (size_t c = 0; c < nslots(sim); c++) {
    size_t sr[4][14];
    struct tally versions = {0};

    memset(sr, 0, sizeof(sr));
    for (size_t i = 0; i < sim->ndev; i++) {
      const struct afu_inst *in = slot_inst(&sim->devs[i], c);

      if (!in)
        continue;
      tally_add(&versions, in->version);
      if ((unsigned)in->state < 4 && (unsigned)in->result < 14)
        sr[in->state][in->result]++;
    }
    printf("  %s:", slot_name(sim, c));
    for (size_t v = 0; v < versions.n; v++)
      printf(" %s x%zu", versions.keys[v], versions.counts[v]);
    printf("; state/result:");
    for (int s = 0; s < 4; s++)
      for (int r = 0; r < 14; r++)
        if (sr[s][r])
          printf(" %s/%d x%zu", afu_state_name((enum afu_state)s), r,
                 sr[s][r]);
    printf("\n");
    tally_free(&versions);
  }

  for (int f = 0; f < FAULT_COUNT; f++) {
    size_t count = 0, shown = 0;

    for (size_t i = 0; i < sim->ndev; i++)
      count += dev_has_fault(&sim->devs[i], (enum sim_fault)f);
    if (!count)
      continue;
    printf("  fault %s x%zu:", sim_fault_name((enum sim_fault)f), count);
    for (size_t i = 0; i < sim->ndev && shown < 8; i++)
      if (dev_has_fault(&sim->devs[i], (enum sim_fault)f)) {
        printf(" %s", sim->devs[i].ep);
        shown++;
      }
    printf("%s\n", count > shown ? " ..." : "");
  }
  if (cfg->until.kind != UNTIL_NONE)
    printf("  until: %zu of %zu devices met it\n", sim->n_until_ok,
           sim->n_until_needed);
  fflush(stdout);
}

static json_t *inst_json(const struct afu_inst *in)
{
  json_t *o = json_object();
  json_t *linked = json_array(), *conflicting = json_array();

  for (unsigned i = 0; i < 32; i++) {
    if (in->linked & (UINT32_C(1) << i))
      json_array_append_new(linked, json_integer(i));
    if (in->conflicting & (UINT32_C(1) << i))
      json_array_append_new(conflicting, json_integer(i));
  }
  if (!in->obj5)
    json_object_set_new(o, "instance", json_integer(in->index));
  json_object_set_new(o, "name", json_string(in->name));
  json_object_set_new(o, "version", json_string(in->version));
  json_object_set_new(o, "state", json_integer(in->state));
  json_object_set_new(o, "state_name", json_string(afu_state_name(in->state)));
  json_object_set_new(o, "result", json_integer(in->result));
  json_object_set_new(o, "uri", json_string(in->uri));
  json_object_set_new(o, "pkg_name", json_string(in->pkg_name));
  json_object_set_new(o, "pkg_version", json_string(in->pkg_version));
  json_object_set_new(o, "linked", linked);
  json_object_set_new(o, "conflicting", conflicting);
  return o;
}

static json_t *device_json(const struct sim_dev *d)
{
  json_t *o = json_object(), *faults = json_array(), *comps = json_array();
  json_t *hist = json_array();
  char loc[SIM_LOC_MAX * SIM_LOC_SEG + 8] = "";
  size_t first = d->nhist > SIM_HISTORY ? d->nhist - SIM_HISTORY : 0;

  for (size_t i = 0; i < d->nloc; i++) {
    size_t len = strlen(loc);

    snprintf(loc + len, sizeof(loc) - len, "/%s", d->loc[i]);
  }
  for (int f = 0; f < FAULT_COUNT; f++)
    if (dev_has_fault(d, (enum sim_fault)f))
      json_array_append_new(faults,
                            json_string(sim_fault_name((enum sim_fault)f)));
  for (size_t i = 0; i < d->afu.n; i++)
    json_array_append_new(comps, inst_json(&d->afu.inst[i]));
  for (size_t i = first; i < d->nhist; i++) {
    const struct sim_event *e = &d->hist[i % SIM_HISTORY];
    json_t *h = json_object();
    char when[40];

    format_iso8601(e->wall_ms, when, sizeof(when));
    json_object_set_new(h, "time", json_string(when));
    if (e->index == AFU_FW_INDEX)
      json_object_set_new(h, "object", json_integer(FW_OID));
    else
      json_object_set_new(h, "instance", json_integer(e->index));
    json_object_set_new(h, "state", json_integer(e->state));
    json_object_set_new(h, "result", json_integer(e->result));
    json_array_append_new(hist, h);
  }
  json_object_set_new(o, "endpoint", json_string(d->ep));
  json_object_set_new(o, "port", json_integer(d->port));
  json_object_set_new(o, "state", json_string(dev_state_name(final_state(d))));
  json_object_set_new(o, "location", json_string(loc));
  json_object_set_new(o, "faults", faults);
  json_object_set_new(o, "registrations", json_integer(d->registrations));
  json_object_set_new(o, "register_retries", json_integer(d->reg_retries));
  json_object_set_new(o, "first_register_ms",
                      d->first_reg_ms >= 0 ? json_integer(d->first_reg_ms)
                                           : json_null());
  json_object_set_new(o, "updates", json_integer(d->updates));
  json_object_set_new(o, "reboots", json_integer(d->reboots));
  json_object_set_new(o, "crashes", json_integer(d->crashes));
  json_object_set_new(o, "installs", json_integer(d->installs));
  json_object_set_new(o, "install_failures",
                      json_integer(d->install_failures));
  json_object_set_new(o, "downloads_ok", json_integer(d->downloads_ok));
  json_object_set_new(o, "downloads_failed",
                      json_integer(d->downloads_failed));
  json_object_set_new(o, "requests", json_integer(d->requests));
  json_object_set_new(o, "notifications", json_integer(d->notifications));
  json_object_set_new(o, "dropped_notifications",
                      json_integer(d->dropped_notifications));
  json_object_set_new(o, "firmware_version",
                      json_string(d->afu.n ? d->afu.inst[0].version : ""));
  json_object_set_new(o, "components", comps);
  if (d->afu.has_fw)
    json_object_set_new(o, "object5", inst_json(&d->afu.fw));
  json_object_set_new(o, "history", hist);
  if (d->nhist > SIM_HISTORY)
    json_object_set_new(o, "history_dropped",
                        json_integer((json_int_t)(d->nhist - SIM_HISTORY)));
  return o;
}

static json_t *fleet_json(const struct sim *sim)
{
  json_t *o = json_object(), *states = json_object(), *comps = json_object();
  json_t *reg = json_object(), *tot = json_object(), *cpuo = json_object();
  size_t counts[DEV_STATE_COUNT] = {0}, n;
  int64_t p50, p99, max;
  double user, sys;
  struct totals t;
  char started[40];

  cpu(&user, &sys);
  sum(sim, &t);
  latency(sim, &p50, &p99, &max, &n);
  for (size_t i = 0; i < sim->ndev; i++)
    counts[final_state(&sim->devs[i])]++;
  for (int s = 0; s < DEV_STATE_COUNT; s++)
    if (counts[s])
      json_object_set_new(states, dev_state_name((enum dev_state)s),
                          json_integer((json_int_t)counts[s]));
  for (size_t c = 0; c < nslots(sim); c++) {
    json_t *co = json_object(), *vo = json_object(), *so = json_object();
    json_t *ro = json_object();
    struct tally versions = {0}, st = {0}, rs = {0};

    for (size_t i = 0; i < sim->ndev; i++) {
      const struct afu_inst *in = slot_inst(&sim->devs[i], c);
      char num[8];

      if (!in)
        continue;
      tally_add(&versions, in->version);
      tally_add(&st, afu_state_name(in->state));
      snprintf(num, sizeof(num), "%d", in->result);
      tally_add(&rs, num);
    }
    for (size_t v = 0; v < versions.n; v++)
      json_object_set_new(vo, versions.keys[v],
                          json_integer((json_int_t)versions.counts[v]));
    for (size_t v = 0; v < st.n; v++)
      json_object_set_new(so, st.keys[v],
                          json_integer((json_int_t)st.counts[v]));
    for (size_t v = 0; v < rs.n; v++)
      json_object_set_new(ro, rs.keys[v],
                          json_integer((json_int_t)rs.counts[v]));
    json_object_set_new(co, "versions", vo);
    json_object_set_new(co, "states", so);
    json_object_set_new(co, "results", ro);
    json_object_set_new(comps, slot_name(sim, c), co);
    tally_free(&versions);
    tally_free(&st);
    tally_free(&rs);
  }
  json_object_set_new(reg, "registered", json_integer((json_int_t)n));
  json_object_set_new(reg, "all_registered_s",
                      sim->all_registered_ms >= 0
                          ? json_real((double)sim->all_registered_ms / 1000.0)
                          : json_null());
  json_object_set_new(
      reg, "rate_per_s",
      sim->all_registered_ms >= 0
          ? json_real(
                (double)sim->ndev * 1000.0 /
                (double)(sim->all_registered_ms ? sim->all_registered_ms : 1))
          : json_null());
  json_object_set_new(reg, "latency_p50_ms", json_integer(p50));
  json_object_set_new(reg, "latency_p99_ms", json_integer(p99));
  json_object_set_new(reg, "latency_max_ms", json_integer(max));
#define TOT(k) json_object_set_new(tot, #k, json_integer(t.k))
  TOT(registrations);
  TOT(reg_retries);
  TOT(updates);
  TOT(reboots);
  TOT(installs);
  TOT(install_failures);
  TOT(notifications);
  TOT(dropped);
  TOT(requests);
  TOT(downloads_ok);
  TOT(downloads_failed);
#undef TOT
  json_object_set_new(cpuo, "user_s", json_real(user));
  json_object_set_new(cpuo, "system_s", json_real(sys));
  format_iso8601(sim->start_wall_ms, started, sizeof(started));
  json_object_set_new(o, "started", json_string(started));
  json_object_set_new(o, "server", json_string(sim->cfg->server_uri));
  json_object_set_new(o, "devices", json_integer((json_int_t)sim->ndev));
  json_object_set_new(o, "run_s", json_real(run_seconds(sim)));
  json_object_set_new(
      o, "stop_reason",
      json_string(sim->stop_reason ? sim->stop_reason : "error"));
  json_object_set_new(o, "until_met", json_boolean(sim->until_met));
  json_object_set_new(o, "cpu", cpuo);
  json_object_set_new(o, "registration", reg);
  json_object_set_new(o, "totals", tot);
  json_object_set_new(o, "states", states);
  json_object_set_new(o, "components", comps);
  return o;
}

int report_write(const struct sim *sim, const char *path, char *err,
                 size_t errlen)
{
  json_t *root = json_object(), *devs = json_array();
  char *text;
  int rc;

  for (size_t i = 0; i < sim->ndev; i++)
    json_array_append_new(devs, device_json(&sim->devs[i]));
  json_object_set_new(root, "fleet", fleet_json(sim));
  json_object_set_new(root, "devices", devs);
  text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
  json_decref(root);
  if (!text) {
    snprintf(err, errlen, "cannot serialise the report");
    return -ENOMEM;
  }
  rc = write_file_atomic(path, text, strlen(text), 0644);
  free(text);
  if (rc < 0)
    snprintf(err, errlen, "%s: %s", path, strerror(-rc));
  return rc;
}
