/*
 * GET /api/v1/events: the timeline as a live stream, in Server-Sent Events
 * or newline-delimited JSON, resumable by event id (Last-Event-ID) across
 * reconnects and restarts, since every event is a row of timeline_events.
 *
 * How it stays cheap with many subscribers: writers bump a counter in db
 * (db_timeline_changes()); before the loop sleeps, and once no transaction
 * is open (so only committed rows are read), the pump reads the new rows
 * once, counts them for /metrics, and keeps them, formatted, in a ring.
 * Each stream is an MHD callback response that suspends its connection
 * when it has nothing to send; the pump resumes the streams that have new
 * events, which they copy from the ring. Only a stream that fell behind the
 * ring (a client resuming from an old id, or a slow reader) reads the
 * database, a bounded page at a time, yielding to the loop between pages.
 * A timer makes idle streams send a heartbeat so that proxies keep them
 * open, and another deletes events older than the retention.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define RING_MAX 2048    /* newest events kept in memory for the streams */
#define PAGE 256         /* rows per database read */
#define PUMP_MAX 4096    /* new rows the pump reads per loop iteration */
#define SCAN_BUDGET 2048 /* events a stream looks at before yielding */
#define STREAM_BUF 16384 /* a stream's buffer is refilled up to this */
#define DATA_MAX 65536   /* event data larger than this is left out */
#define FILTER_TYPES 16  /* types in one ?type= filter */
#define TYPE_LEN_MAX 31
#define COUNTS_MAX 48 /* distinct event types counted for /metrics */
#define SWEEP_INTERVAL_MS 60000
#define SWEEP_BATCH 2000

struct ring_item {
  int64_t id;
  char *type;
  char *endpoint; /* or NULL */
  int64_t rollout_id;
  char *json; /* the event as one line of JSON */
};

struct api_sub {
  struct api_sub *next, **prev;
  struct api *api;
  struct MHD_Connection *conn;
  bool ndjson;
  bool follow;
  bool started, suspended, heartbeat_due, ended;
  int64_t last;  /* the newest event id looked at */
  int64_t until; /* without follow: the last event id to send */
  char *types[FILTER_TYPES];
  size_t ntypes;
  char *device;
  int64_t rollout;
  char *buf;
  size_t len, off, cap;
  int budget; /* events left to look at in this callback */
};

struct api_events {
  int64_t hwm; /* the newest committed event id read */
  uint64_t seen_changes;
  bool backlog; /* the pump stopped with rows left to read */
  bool closing;
  bool wake; /* some stream may have something to do */
  struct ring_item ring[RING_MAX];
  size_t head, count; /* the oldest item is ring[head] */
  int64_t ring_from;  /* the ring holds every event with id > ring_from */
  struct api_sub *subs;
  size_t nsubs;
  struct loop_timer heartbeat, sweep;
  struct api_event_count types[COUNTS_MAX];
  size_t ntypes;
  struct api_event_count reasons[8];
  size_t nreasons;
};

/* Counts key in a small table; the last slot takes "other". */
static void count(struct api_event_count *arr, size_t *n, size_t max,
                  const char *key)
{
  for (size_t i = 0; i < *n; i++) {
    if (strcmp(arr[i].type, key) == 0) {
      arr[i].n++;
      return;
    }
  }
  if (*n == max - 1)
    key = "other";
  if (*n < max) {
    snprintf(arr[*n].type, sizeof(arr[*n].type), "%s", key);
    arr[*n].n = 1;
    (*n)++;
  } else {
    arr[max - 1].n++;
  }
}

/* The event as the API shows it; a new string. */
static char *event_json(const struct db_event *e)
{
  json_t *j = json_pack(
      "{s:I, s:s, s:o, s:s?, s:o, s:o}", "id", (json_int_t)e->id, "type",
      e->type, "at", api_time(e->at), "endpoint", e->endpoint, "rollout_id",
      e->rollout_id ? json_integer(e->rollout_id) : json_null(), "job_id",
      e->job_id ? json_integer(e->job_id) : json_null());
  char *text;

  if (!j)
    return xasprintf("{\"id\":%lld,\"type\":\"invalid\",\"data\":null}",
                     (long long)e->id);
  if (e->data && strlen(e->data) > DATA_MAX) {
    json_object_set_new(j, "data", json_null());
    json_object_set_new(j, "data_truncated", json_true());
  } else if (e->data) {
    json_t *d = json_loads(e->data, JSON_DECODE_ANY, NULL);

    json_object_set_new(j, "data", d ? d : json_string(e->data));
  } else {
    json_object_set_new(j, "data", json_null());
  }
  text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return text ? text
              : xasprintf("{\"id\":%lld,\"type\":\"invalid\",\"data\":null}",
                          (long long)e->id);
}

static struct ring_item *ring_at(struct api_events *ev, size_t i)
{
  return &ev->ring[(ev->head + i) % RING_MAX];
}

static void ring_item_free(struct ring_item *it)
{
  free(it->type);
  free(it->endpoint);
  free(it->json);
  memset(it, 0, sizeof(*it));
}

static void ring_push(struct api_events *ev, const struct db_event *e)
{
  struct ring_item *it;

  if (ev->count == RING_MAX) {
    it = ring_at(ev, 0);
    ev->ring_from = it->id;
    ring_item_free(it);
    ev->head = (ev->head + 1) % RING_MAX;
    ev->count--;
  }
  it = ring_at(ev, ev->count++);
  it->id = e->id;
  it->type = xstrdup(e->type);
  it->endpoint = e->endpoint ? xstrdup(e->endpoint) : NULL;
  it->rollout_id = e->rollout_id;
  it->json = event_json(e);
}

/* The logical index of the first ring item with id > after. */
static size_t ring_find(struct api_events *ev, int64_t after)
{
  size_t lo = 0, hi = ev->count;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (ring_at(ev, mid)->id <= after)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

struct pump_ctx {
  struct api_events *ev;
  int rows;
};

/* A new committed event: count it, keep it for the streams. */
static void on_new_event(void *arg, const struct db_event *e)
{
  struct pump_ctx *pc = arg;
  struct api_events *ev = pc->ev;

  pc->rows++;
  count(ev->types, &ev->ntypes, COUNTS_MAX, e->type);
  if (strcmp(e->type, "deregistered") == 0) {
    json_t *d = e->data ? json_loads(e->data, 0, NULL) : NULL;
    const char *why = json_string_value(json_object_get(d, "reason"));

    count(ev->reasons, &ev->nreasons, ARRAY_SIZE(ev->reasons),
          why ? why : "unknown");
    json_decref(d);
  }
  /* Nobody listens: the ring is not needed to start a stream (it reads
   * what the ring lacks from the database), so skip formatting. */
  if (ev->nsubs == 0) {
    while (ev->count > 0) {
      ring_item_free(ring_at(ev, 0));
      ev->head = (ev->head + 1) % RING_MAX;
      ev->count--;
    }
    ev->ring_from = e->id;
  } else {
    ring_push(ev, e);
    ev->wake = true;
  }
  ev->hwm = e->id;
}

/* Reads the rows committed since the last look, a bounded number. */
static void read_new(struct api *api)
{
  struct api_events *ev = api->events;
  int total = 0;

  ev->backlog = false;
  for (;;) {
    struct pump_ctx pc = {.ev = ev};

    if (db_events_list(api->db, ev->hwm, INT64_MAX, PAGE, on_new_event, &pc) <
        0)
      return;
    total += pc.rows;
    if (pc.rows < PAGE)
      return;
    if (total >= PUMP_MAX) {
      ev->backlog = true;
      return;
    }
  }
}

static void sub_append(struct api_sub *s, const char *text, size_t len)
{
  if (s->len + len > s->cap) {
    s->cap = s->len + len > STREAM_BUF ? s->len + len : STREAM_BUF;
    s->buf = xrealloc(s->buf, s->cap);
  }
  memcpy(s->buf + s->len, text, len);
  s->len += len;
}

static bool sub_wants(const struct api_sub *s, const char *type,
                      const char *endpoint, int64_t rollout_id)
{
  bool ok = s->ntypes == 0;

  for (size_t i = 0; i < s->ntypes && !ok; i++)
    ok = strcmp(type, s->types[i]) == 0;
  if (ok && s->device)
    ok = endpoint && strcmp(endpoint, s->device) == 0;
  if (ok && s->rollout)
    ok = rollout_id == s->rollout;
  return ok;
}

static void sub_event(struct api_sub *s, int64_t id, const char *type,
                      const char *json)
{
  char head[96];
  int n;

  if (s->ndjson) {
    sub_append(s, json, strlen(json));
    sub_append(s, "\n", 1);
    return;
  }
  /* Types are fotad's own words; a line break would end the field. */
  n = snprintf(head, sizeof(head),
               "id: %lld\nevent: %.*s\ndata: ", (long long)id,
               (int)strcspn(type, "\r\n"), type);
  sub_append(s, head, (size_t)n < sizeof(head) ? (size_t)n : 0);
  sub_append(s, json, strlen(json));
  sub_append(s, "\n\n", 2);
}

struct page_ctx {
  struct api_sub *sub;
  int rows;
};

static void on_old_event(void *arg, const struct db_event *e)
{
  struct page_ctx *pc = arg;
  struct api_sub *s = pc->sub;

  pc->rows++;
  s->budget--;
  s->last = e->id;
  if (sub_wants(s, e->type, e->endpoint, e->rollout_id)) {
    char *json = event_json(e);

    sub_event(s, e->id, e->type, json);
    free(json);
  }
}

/* Fills the stream's buffer with what it may send now. */
static void sub_fill(struct api_sub *s)
{
  struct api_events *ev = s->api->events;
  int64_t limit = s->follow ? ev->hwm : s->until;

  if (ev->closing) {
    s->ended = true;
    return;
  }
  if (!s->started) {
    s->started = true;
    /* Tells EventSource clients how soon to reconnect. */
    if (!s->ndjson)
      sub_append(s, "retry: 3000\n\n", 13);
  }
  s->budget = SCAN_BUDGET;
  while (s->len < STREAM_BUF && s->last < limit && s->budget > 0) {
    if (s->last < ev->ring_from) {
      /* Behind the ring: a page from the database. */
      int64_t upto = limit < ev->ring_from ? limit : ev->ring_from;
      struct page_ctx pc = {.sub = s};

      if (db_events_list(s->api->db, s->last, upto, PAGE, on_old_event, &pc) <
          0) {
        s->ended = true;
        return;
      }
      if (pc.rows < PAGE)
        s->last = upto; /* nothing else in (last, upto] */
      if (pc.rows == 0)
        s->budget--;
      continue;
    }
    {
      size_t i = ring_find(ev, s->last);

      for (; i < ev->count && s->len < STREAM_BUF && s->budget > 0; i++) {
        struct ring_item *it = ring_at(ev, i);

        if (it->id > limit)
          break;
        s->budget--;
        if (sub_wants(s, it->type, it->endpoint, it->rollout_id))
          sub_event(s, it->id, it->type, it->json);
        s->last = it->id;
      }
      /* The ring holds every event up to hwm: none left up to limit. */
      if (i == ev->count || ring_at(ev, i)->id > limit)
        s->last = limit;
    }
  }
  if (s->last < limit)
    ev->wake = true; /* yielded: go on in the next loop iteration */
  if (!s->follow && s->last >= s->until)
    s->ended = true;
  if (s->len == 0 && s->heartbeat_due && !s->ended)
    sub_append(s, s->ndjson ? "\n" : ": keep-alive\n\n", s->ndjson ? 1 : 14);
  if (s->len > 0)
    s->heartbeat_due = false;
}

/* MHD asks for the next bytes of the stream. */
static ssize_t sub_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct api_sub *s = cls;
  size_t n;

  if (s->off == s->len) {
    s->off = 0;
    s->len = 0;
    sub_fill(s);
  }
  if (s->off < s->len) {
    n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
  }
  if (s->ended)
    return MHD_CONTENT_READER_END_OF_STREAM;
  /* Nothing to send: sleep until the pump or the heartbeat wakes us. */
  s->suspended = true;
  MHD_suspend_connection(s->conn);
  return 0;
}

static void wake_streams(struct api_events *ev)
{
  ev->wake = false;
  for (struct api_sub *s = ev->subs; s; s = s->next) {
    int64_t limit = s->follow ? ev->hwm : s->until;

    if (s->suspended && (s->last < limit || s->heartbeat_due || ev->closing)) {
      s->suspended = false;
      MHD_resume_connection(s->conn);
      s->api->kick = true;
    }
  }
}

void api_events_pump(struct api *api)
{
  struct api_events *ev = api->events;
  uint64_t changes;

  if (!ev)
    return;
  changes = db_timeline_changes(api->db);
  /* Uncommitted rows could still be rolled back, and their ids reused:
   * wait for the transaction to end. */
  if ((changes != ev->seen_changes || ev->backlog) &&
      !db_in_transaction(api->db)) {
    ev->seen_changes = changes;
    read_new(api);
  }
  if (ev->wake)
    wake_streams(ev);
}

static void on_heartbeat(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct api *api = arg;
  struct api_events *ev = api->events;

  for (struct api_sub *s = ev->subs; s; s = s->next)
    s->heartbeat_due = true;
  ev->wake = ev->subs != NULL;
  loop_timer_arm(loop, t, api->events_heartbeat_s * 1000);
}

/* Deletes events (and kept idempotent replies) past their retention. */
static void on_sweep(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct api *api = arg;
  int64_t now = loop_wall(loop), n = 0, m = 0;
  int64_t delay = SWEEP_INTERVAL_MS;

  if (db_events_purge(api->db, now - api->events_retention_s * 1000,
                      SWEEP_BATCH, &n) == 0 &&
      n == SWEEP_BATCH)
    delay = 0; /* more to delete: go on next iteration */
  if (n > 0)
    log_info("deleted %lld events older than %llds", (long long)n,
             (long long)api->events_retention_s);
  if (db_idem_purge(api->db, now - api->idempotency_window_s * 1000, &m) ==
          0 &&
      m > 0)
    log_debug("deleted %lld expired idempotency replies", (long long)m);
  loop_timer_arm(loop, t, delay);
}

int api_events_start(struct api *api, char *err, size_t errlen)
{
  struct api_events *ev = xcalloc(1, sizeof(*ev));

  api->events = ev;
  if (db_events_last_id(api->db, &ev->hwm) < 0) {
    snprintf(err, errlen, "cannot read the newest event id");
    return -EIO;
  }
  ev->ring_from = ev->hwm;
  ev->seen_changes = db_timeline_changes(api->db);
  loop_timer_init(&ev->heartbeat, on_heartbeat, api);
  loop_timer_init(&ev->sweep, on_sweep, api);
  loop_timer_arm(api->loop, &ev->heartbeat, api->events_heartbeat_s * 1000);
  loop_timer_arm(api->loop, &ev->sweep, 1000);
  return 0;
}

bool api_events_close(struct api *api)
{
  struct api_events *ev = api->events;

  if (!ev || !ev->subs)
    return false;
  ev->closing = true;
  wake_streams(ev);
  return true;
}

void api_events_stop(struct api *api)
{
  struct api_events *ev = api->events;

  if (!ev)
    return;
  loop_timer_disarm(api->loop, &ev->heartbeat);
  loop_timer_disarm(api->loop, &ev->sweep);
  while (ev->subs)
    api_sub_free(ev->subs);
  for (size_t i = 0; i < ev->count; i++)
    ring_item_free(ring_at(ev, i));
  free(ev);
  api->events = NULL;
}

void api_sub_free(struct api_sub *s)
{
  if (!s)
    return;
  *s->prev = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->api->events->nsubs--;
  for (size_t i = 0; i < s->ntypes; i++)
    free(s->types[i]);
  free(s->device);
  free(s->buf);
  free(s);
}

size_t api_events_counts(struct api *api, const struct api_event_count **out)
{
  *out = api->events->types;
  return api->events->ntypes;
}

size_t api_events_reasons(struct api *api, const struct api_event_count **out)
{
  *out = api->events->reasons;
  return api->events->nreasons;
}

size_t api_events_streams(struct api *api)
{
  return api->events->nsubs;
}

/* Parses ?type=a,b into the stream's filter; replies 400 on bad input. */
static int parse_types(struct api_req *req, struct api_sub *s, const char *v)
{
  const char *p = v;

  while (*p) {
    size_t n = strcspn(p, ",");

    if (n == 0 || n > TYPE_LEN_MAX || s->ntypes == FILTER_TYPES ||
        strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_.-") < n) {
      api_reply_invalid(req, "type",
                        "expected up to %d event types (lowercase words of "
                        "at most %d characters) separated by commas",
                        FILTER_TYPES, TYPE_LEN_MAX);
      return -EINVAL;
    }
    s->types[s->ntypes++] = xstrndup(p, n);
    p += n;
    if (*p == ',' && p[1] == '\0') {
      api_reply_invalid(req, "type", "a trailing comma");
      return -EINVAL;
    }
    if (*p == ',')
      p++;
  }
  return 0;
}

/* Reads the filters and the starting point of a stream into s. */
static int parse_stream(struct api_req *req, struct api_sub *s)
{
  struct api_events *ev = req->api->events;
  const char *format = api_query(req, "format");
  const char *follow = api_query(req, "follow");
  const char *type = api_query(req, "type");
  const char *device = api_query(req, "device");
  const char *rollout = api_query(req, "rollout");
  const char *after = api_query(req, "after");
  const char *leid =
      MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");

  if (format && strcmp(format, "ndjson") != 0 && strcmp(format, "sse") != 0) {
    api_reply_invalid(req, "format", "expected sse or ndjson");
    return -EINVAL;
  }
  s->ndjson = format && strcmp(format, "ndjson") == 0;
  s->follow = true;
  if (follow && parse_bool(follow, &s->follow) < 0) {
    api_reply_invalid(req, "follow", "expected true or false");
    return -EINVAL;
  }
  if (type && parse_types(req, s, type) < 0)
    return -EINVAL;
  if (device) {
    if (device[0] == '\0' || strlen(device) > 255) {
      api_reply_invalid(req, "device",
                        "expected an endpoint name of 1 to 255 characters");
      return -EINVAL;
    }
    s->device = xstrdup(device);
  }
  if (rollout && parse_int64(rollout, 1, INT64_MAX, &s->rollout) < 0) {
    api_reply_invalid(req, "rollout", "expected a rollout id");
    return -EINVAL;
  }
  /* A reconnecting EventSource sends Last-Event-ID with the URL it first
   * used: the header wins over ?after=. */
  s->last = ev->hwm;
  if (leid && parse_int64(leid, 0, INT64_MAX, &s->last) < 0) {
    api_reply_invalid(req, "Last-Event-ID", "expected an event id");
    return -EINVAL;
  }
  if (!leid && after && parse_int64(after, 0, INT64_MAX, &s->last) < 0) {
    api_reply_invalid(req, "after",
                      "expected an event id (0: from the "
                      "oldest kept)");
    return -EINVAL;
  }
  s->until = ev->hwm;
  return 0;
}

/*
 * GET /api/v1/events?format=sse|ndjson&type=a,b&device=EP&rollout=N
 *     &after=ID&follow=true|false
 */
void api_get_events(struct api_req *req)
{
  struct api *api = req->api;
  struct api_events *ev = api->events;
  struct api_sub *s = xcalloc(1, sizeof(*s));

  s->api = api;
  s->conn = req->conn;
  /* Linked first, so that api_sub_free() works on every path. */
  s->next = ev->subs;
  if (s->next)
    s->next->prev = &s->next;
  s->prev = &ev->subs;
  ev->subs = s;
  ev->nsubs++;
  if (parse_stream(req, s) < 0) {
    api_sub_free(s);
    return;
  }
  if ((int64_t)ev->nsubs > api->events_max_streams) {
    api_sub_free(s);
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "10");
    api_reply_error(req, 503, "too_many_streams",
                    "%lld event streams are open already (events_max_streams)",
                    (long long)api->events_max_streams);
    return;
  }
  req->sub = s;
  /* Proxies such as nginx must pass each event on at once. */
  api_add_header(req, "X-Accel-Buffering", "no");
  api_reply_stream(req,
                   s->ndjson ? "application/x-ndjson"
                             : "text/event-stream; charset=utf-8",
                   sub_read, s);
}
