/*
 * GET /metrics: Prometheus text exposition format (version 0.0.4). Every
 * family has its HELP and TYPE lines before its samples; counters end in
 * _total and count since fotad started; histograms have cumulative
 * buckets, _sum and _count.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

/* The exposition stays far below this; it bounds a runaway label set. */
#define METRICS_MAX (4 << 20)

struct out {
  char *p;
  size_t len, cap;
  bool full;
};

static void put(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void put(struct out *o, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (o->full)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if ((size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    if (o->cap >= METRICS_MAX) {
      o->full = true;
      o->p[o->len] = '\0';
      return;
    }
    o->cap *= 2;
    o->p = xrealloc(o->p, o->cap);
  }
}

/* A label value with \, " and line feeds escaped, in a static buffer. */
static const char *esc(const char *s, char *buf, size_t len)
{
  size_t j = 0;

  for (; s && *s && j + 3 < len; s++) {
    if (*s == '\\' || *s == '"') {
      buf[j++] = '\\';
      buf[j++] = *s;
    } else if (*s == '\n') {
      buf[j++] = '\\';
      buf[j++] = 'n';
    } else {
      buf[j++] = *s;
    }
  }
  buf[j] = '\0';
  return buf;
}

static void family(struct out *o, const char *name, const char *type,
                   const char *help)
{
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(struct out *o, const char *name, const char *type,
                   const char *help, int64_t v)
{
  family(o, name, type, help);
  put(o, "%s %lld\n", name, (long long)v);
}

static void histogram(struct out *o, const char *name, const char *help,
                      const struct latency_hist *h)
{
  uint64_t cum = 0;

  family(o, name, "histogram", help);
  for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
    cum += h->buckets[i];
    put(o, "%s_bucket{le=\"%g\"} %llu\n", name,
        (double)latency_bounds_us[i] / 1e6, (unsigned long long)cum);
  }
  put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
  put(o, "%s_sum %.6f\n", name, (double)h->sum_us / 1e6);
  put(o, "%s_count %llu\n", name, (unsigned long long)h->count);
}

static void counts(struct out *o, const char *name, const char *label,
                   const struct api_event_count *c, size_t n)
{
  char buf[128];

  for (size_t i = 0; i < n; i++)
    put(o, "%s{%s=\"%s\"} %llu\n", name, label,
        esc(c[i].type, buf, sizeof(buf)), (unsigned long long)c[i].n);
}

static uint64_t count_of(const struct api_event_count *c, size_t n,
                         const char *key)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(c[i].type, key) == 0)
      return c[i].n;
  return 0;
}

struct state_ctx {
  struct out *o;
  const char *name;
};

static void put_state(void *arg, const char *state, int64_t n)
{
  struct state_ctx *sc = arg;
  char buf[128];

  put(sc->o, "%s{state=\"%s\"} %lld\n", sc->name, esc(state, buf, sizeof(buf)),
      (long long)n);
}

static void devices(struct out *o, struct api *api)
{
  const struct api_event_count *c, *r;
  size_t nc = api_events_counts(api, &c);
  size_t nr = api_events_reasons(api, &r);
  struct srv_stats st;
  int64_t known = 0;

  srv_get_stats(api->srv, &st);
  if (db_count_devices(api->db, &known) == 0)
    scalar(o, "fotad_devices", "gauge", "Devices fotad knows.", known);
  scalar(o, "fotad_devices_registered", "gauge",
         "Devices with a live registration (online).", st.registered);
  scalar(o, "fotad_devices_awake", "gauge",
         "Registered devices reachable now.", st.awake);
  scalar(o, "fotad_devices_sleeping", "gauge",
         "Registered queue-mode devices asleep.", st.registered - st.awake);
  scalar(o, "fotad_registrations_total", "counter",
         "Registrations accepted since start.",
         (int64_t)count_of(c, nc, "registered"));
  scalar(o, "fotad_registration_updates_total", "counter",
         "Registration updates accepted since start.",
         (int64_t)count_of(c, nc, "updated"));
  family(o, "fotad_deregistrations_total", "counter",
         "Registrations ended since start, by reason.");
  counts(o, "fotad_deregistrations_total", "reason", r, nr);
  family(o, "fotad_events_total", "counter",
         "Timeline events recorded since start, by type.");
  counts(o, "fotad_events_total", "type", c, nc);
  scalar(o, "fotad_dtls_handshakes_total", "counter",
         "DTLS handshakes that proved an identity since start.",
         st.dtls_handshakes);
  scalar(o, "fotad_dtls_handshake_failures_total", "counter",
         "DTLS handshakes refused since start.", st.dtls_failures);
  scalar(o, "fotad_requests_in_flight", "gauge",
         "Device-management requests waiting for the device's answer.",
         st.pending);
  scalar(o, "fotad_queue_depth", "gauge",
         "Requests queued for sleeping devices.", st.queued);
  scalar(o, "fotad_observations", "gauge", "Live observations.",
         st.observations);
  scalar(o, "fotad_blocks_served_total", "counter",
         "Package blocks served over CoAP since start.", st.blocks_served);
  family(o, "fotad_coap_requests_total", "counter",
         "CoAP requests from devices since start, by response code.");
  for (size_t i = 0; i < 256; i++) {
    char code[8];

    if (st.coap_codes[i] == 0)
      continue;
    srv_code_format((uint8_t)i, code, sizeof(code));
    put(o, "fotad_coap_requests_total{code=\"%s\"} %llu\n", code,
        (unsigned long long)st.coap_codes[i]);
  }
}

static void device_requests(struct out *o, struct api *api)
{
  char code[8];

  family(o, "fotad_device_responses_total", "counter",
         "Answers of devices to requests made through the API, by CoAP "
         "response code.");
  for (size_t i = 0; i < ARRAY_SIZE(api->device_codes); i++) {
    if (api->device_codes[i] == 0)
      continue;
    srv_code_format((uint8_t)i, code, sizeof(code));
    put(o, "fotad_device_responses_total{code=\"%s\"} %llu\n", code,
        (unsigned long long)api->device_codes[i]);
  }
  family(o, "fotad_device_request_failures_total", "counter",
         "Requests made through the API that got no answer from the "
         "device, by reason.");
  for (size_t i = 0; i < API_DEVICE_FAILURES; i++)
    put(o, "fotad_device_request_failures_total{reason=\"%s\"} %llu\n",
        api_failure_names[i], (unsigned long long)api->device_failures[i]);
}

static void rollouts(struct out *o, struct api *api)
{
  struct state_ctx sc = {.o = o, .name = "fotad_jobs"};

  family(o, "fotad_jobs", "gauge", "Update jobs, by state.");
  db_jobs_by_state(api->db, put_state, &sc);
  sc.name = "fotad_rollouts";
  family(o, "fotad_rollouts", "gauge", "Rollouts, by state.");
  db_rollouts_by_state(api->db, put_state, &sc);
  scalar(o, "fotad_rollout_gate_trips_total", "counter",
         "Times a health gate paused or aborted a rollout since start-up.",
         api->orch ? (int64_t)orch_rollout_gate_trips(api->orch) : 0);
}

static void http(struct out *o, struct api *api)
{
  char buf[256];

  family(o, "fotad_http_requests_total", "counter",
         "HTTP requests answered, by route and status.");
  for (size_t r = 0; r <= api_nroutes; r++) {
    const struct api_route_stats *rs = &api->route_stats[r];
    const char *method = r < api_nroutes ? api_routes[r].method : "";
    const char *route = r < api_nroutes
                            ? esc(api_routes[r].pattern, buf, sizeof(buf))
                            : "unmatched";

    for (size_t i = 0; i < API_STATUS_SLOTS && rs->status[i]; i++)
      put(o,
          "fotad_http_requests_total{method=\"%s\",route=\"%s\","
          "code=\"%u\"} %llu\n",
          method, route, rs->status[i], (unsigned long long)rs->count[i]);
    if (rs->other)
      put(o,
          "fotad_http_requests_total{method=\"%s\",route=\"%s\","
          "code=\"other\"} %llu\n",
          method, route, (unsigned long long)rs->other);
  }
  scalar(o, "fotad_http_auth_failures_total", "counter",
         "HTTP requests refused for a missing, unknown or revoked token.",
         (int64_t)api->auth_failures);
  scalar(o, "fotad_http_rate_limited_total", "counter",
         "HTTP requests refused by the per-token rate limit.",
         (int64_t)api->rate_limited);
  scalar(o, "fotad_event_streams", "gauge", "Open event streams.",
         (int64_t)api_events_streams(api));
}

/* GET /metrics */
void api_get_metrics(struct api_req *req)
{
  struct api *api = req->api;
  struct out o = {.cap = 16384};

  o.p = xmalloc(o.cap);
  o.p[0] = '\0';
  family(&o, "fotad_build_info", "gauge",
         "Always 1; the version label names the running fotad.");
  put(&o, "fotad_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
  family(&o, "fotad_start_time_seconds", "gauge",
         "When fotad started, in seconds since the Unix epoch.");
  put(&o, "fotad_start_time_seconds %.3f\n",
      (double)api->started_wall / 1000.0);
  devices(&o, api);
  device_requests(&o, api);
  rollouts(&o, api);
  http(&o, api);
  histogram(&o, "fotad_sqlite_transaction_seconds",
            "Duration of database write transactions, begin to commit.",
            db_txn_latency(api->db));
  histogram(&o, "fotad_loop_iteration_seconds",
            "Time each event-loop iteration spent working (not waiting).",
            loop_latency(api->loop));
  if (o.full)
    log_warn("the metrics exceed %d bytes; the rest is left out", METRICS_MAX);
  api_reply_text(req, 200, o.p, o.len,
                 "text/plain; version=0.0.4; "
                 "charset=utf-8");
}
