/*
 * The registration interface (/rd): Register, Update and De-register, the
 * registrations kept in memory and in SQLite, lifetime expiry, and Send
 * (/dp) from registered devices.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "rd"

/* A registration payload larger than this is refused (4.13). */
#define RD_PAYLOAD_MAX (64 * 1024)
/* More object links than this in one registration are refused. */
#define RD_LINKS_MAX 4096

static uint64_t str_hash(const char *s)
{
  return hash_bytes(s, strlen(s));
}

static void on_reach_timer(struct loop *loop, struct loop_timer *t, void *arg);

void srv_registry_init(struct srv *srv)
{
  hmap_init(&srv->by_ep);
  hmap_init(&srv->by_loc);
  hmap_init(&srv->reaching);
  loop_timer_init(&srv->reach_timer, on_reach_timer, srv);
}

static void reg_free(struct srv_reg *reg)
{
  if (reg->reaching)
    hmap_remove(&reg->srv->reaching, &reg->by_peer);
  if (reg->session) {
    if (coap_session_get_app_data(reg->session) == reg)
      coap_session_set_app_data(reg->session, NULL);
    coap_session_release(reg->session);
  }
  free(reg->ep);
  free(reg->alt_path);
  free(reg->ct_list);
  free(reg->sms);
  free(reg->identity);
  free(reg);
}

void srv_registry_free(struct srv *srv)
{
  for (size_t i = 0; i < srv->by_ep.nbuckets; i++) {
    struct hmap_node *n = srv->by_ep.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct srv_reg *reg = container_of(n, struct srv_reg, by_ep);

      loop_timer_disarm(srv->loop, &reg->expiry);
      reg_free(reg);
      n = next;
    }
  }
  hmap_destroy(&srv->by_ep);
  hmap_destroy(&srv->reaching);
  loop_timer_disarm(srv->loop, &srv->reach_timer);
  hmap_destroy(&srv->by_loc);
}

struct srv_reg *srv_reg_find(const struct srv *srv, const char *ep)
{
  uint64_t h = str_hash(ep);

  for (struct hmap_node *n = hmap_first(&srv->by_ep, h); n; n = n->next) {
    struct srv_reg *reg = container_of(n, struct srv_reg, by_ep);

    if (n->hash == h && strcmp(reg->ep, ep) == 0)
      return reg;
  }
  return NULL;
}

static struct srv_reg *find_loc(const struct srv *srv, const char *loc)
{
  uint64_t h = str_hash(loc);

  for (struct hmap_node *n = hmap_first(&srv->by_loc, h); n; n = n->next) {
    struct srv_reg *reg = container_of(n, struct srv_reg, by_loc);

    if (n->hash == h && strcmp(reg->location, loc) == 0)
      return reg;
  }
  return NULL;
}

bool srv_reg_awake(const struct srv_reg *reg)
{
  if (!reg->session)
    return false;
  if (!reg->queue_mode)
    return true;
  return loop_now(reg->srv->loop) < reg->awake_until;
}

/*
 * Chooses the content format for requests to a device: the best one it
 * lists in the root link's ct, else SenML CBOR for 1.1+ and TLV for 1.0.
 */
static uint16_t choose_format(const char *ct_list, const char *version)
{
  static const uint16_t pref[] = {LWM2M_CT_SENML_CBOR, LWM2M_CT_SENML_JSON,
                                  LWM2M_CT_TLV};

  if (ct_list) {
    for (size_t i = 0; i < ARRAY_SIZE(pref); i++) {
      const char *p = ct_list;

      while (*p) {
        char *end;
        long v;

        while (*p == ' ')
          p++;
        v = strtol(p, &end, 10);
        if (end == p)
          break;
        if (v == pref[i] && lwm2m_ct_supported(pref[i]))
          return pref[i];
        p = end;
      }
    }
  }
  return strcmp(version, "1.0") == 0 ? LWM2M_CT_TLV : LWM2M_CT_SENML_CBOR;
}

static void set_peer(struct srv_reg *reg, coap_session_t *session)
{
  const coap_address_t *a = coap_session_get_addr_remote(session);

  if (a)
    format_sockaddr(&a->addr.sa, reg->peer, sizeof(reg->peer));
}

static void reg_security(struct srv_reg *reg, const char *kind,
                         const char *identity)
{
  snprintf(reg->security, sizeof(reg->security), "%s", kind);
  free(reg->identity);
  reg->identity = identity ? xstrdup(identity) : NULL;
}

/* Moves the registration to the session the device spoke on last. */
static void attach_session(struct srv_reg *reg, coap_session_t *session)
{
  if (reg->session != session) {
    if (reg->session) {
      if (coap_session_get_app_data(reg->session) == reg)
        coap_session_set_app_data(reg->session, NULL);
      coap_session_release(reg->session);
    }
    reg->session = coap_session_reference(session);
  }
  coap_session_set_app_data(session, reg);
  set_peer(reg, session);
}

/*
 * Reaching devices after a restart. libcoap 4.3.1 has no way to open a
 * server session towards a peer: one only appears when the peer sends
 * something. A CoAP ping (an empty Confirmable message) sent from the
 * listening socket makes a device answer with a Reset, which opens the
 * session; srv_reg_session_new() then attaches it to the registration
 * and the reach timer sends what was queued for the device.
 */
#define REACH_RETRY_MS 10000

void srv_reg_reach(struct srv_reg *reg)
{
  struct srv *srv = reg->srv;
  int64_t now = loop_now(srv->loop);
  struct sockaddr_storage ss;
  socklen_t len;
  uint8_t ping[4] = {0x40, 0x00, 0, 0}; /* CON, empty */
  uint16_t mid;
  char err[128];

  if (reg->session || reg->queue_mode || srv->udp_fd < 0 ||
      strcmp(reg->security, "nosec") != 0 || !reg->peer[0] ||
      (reg->pinged_at > 0 && now - reg->pinged_at < REACH_RETRY_MS))
    return;
  if (parse_hostport(reg->peer, &ss, &len, err, sizeof(err)) < 0)
    return;
  crypto_random(&mid, sizeof(mid));
  ping[2] = (uint8_t)(mid >> 8);
  ping[3] = (uint8_t)mid;
  reg->pinged_at = now;
  if (sendto(srv->udp_fd, ping, sizeof(ping), 0, (struct sockaddr *)&ss, len) <
      0) {
    log_info("%s: cannot ping %s: %s", reg->ep, reg->peer, strerror(errno));
    return;
  }
  log_info("%s: not heard from since fotad started; pinged at %s", reg->ep,
           reg->peer);
  if (!reg->reaching) {
    reg->reaching = true;
    hmap_insert(&srv->reaching, &reg->by_peer, str_hash(reg->peer));
  }
}

void srv_reg_session_new(struct srv *srv, coap_session_t *session)
{
  const coap_address_t *a;
  char peer[64];
  uint64_t h;

  if (!srv || srv->reaching.len == 0 ||
      !(a = coap_session_get_addr_remote(session)))
    return;
  format_sockaddr(&a->addr.sa, peer, sizeof(peer));
  h = str_hash(peer);
  for (struct hmap_node *n = hmap_first(&srv->reaching, h); n; n = n->next) {
    struct srv_reg *reg = container_of(n, struct srv_reg, by_peer);

    if (n->hash != h || strcmp(reg->peer, peer) != 0 || reg->session)
      continue;
    /* Attached now, its queue sent from the loop (not from inside
     * libcoap's packet handling). */
    attach_session(reg, session);
    log_info("%s: reachable again at %s", reg->ep, peer);
    loop_timer_arm(srv->loop, &srv->reach_timer, 0);
    return;
  }
}

static void on_reach_timer(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct srv *srv = arg;

  for (size_t i = 0; i < srv->reaching.nbuckets; i++) {
    struct hmap_node *n = srv->reaching.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct srv_reg *reg = container_of(n, struct srv_reg, by_peer);

      if (reg->session) {
        hmap_remove(&srv->reaching, &reg->by_peer);
        reg->reaching = false;
        srv_queue_flush(reg);
        SRV_EMIT(srv, reached, reg->ep, reg->device_id);
      }
      n = next;
    }
  }
}

void srv_reg_seen(struct srv_reg *reg, coap_session_t *session)
{
  struct srv *srv = reg->srv;

  if (reg->reaching && session) {
    hmap_remove(&srv->reaching, &reg->by_peer);
    reg->reaching = false;
  }
  if (session)
    attach_session(reg, session);
  if (reg->queue_mode) {
    reg->awake_until =
        loop_now(srv->loop) + srv->cfg.queue_awake_window * 1000;
    srv_queue_flush(reg);
  } else if (session) {
    /* A device reached again after a restart may have requests waiting. */
    srv_queue_flush(reg);
  }
}

static void fill_db_reg(const struct srv_reg *reg, struct db_registration *r)
{
  *r = (struct db_registration){
      .device_id = reg->device_id,
      .endpoint = reg->ep,
      .location = reg->location,
      .lwm2m_version = reg->version,
      .binding = reg->binding,
      .sms = reg->sms,
      .alt_path = reg->alt_path,
      .content_format = reg->ct_list,
      .peer = reg->peer,
      .security = reg->security,
      .identity = reg->identity,
      .lifetime = reg->lifetime,
      .queue_mode = reg->queue_mode,
      .registered_at = reg->registered_at,
      .updated_at = reg->updated_at,
      .expires_at = reg->updated_at + reg->lifetime * 1000,
  };
}

static void timeline(struct srv_reg *reg, const char *type, const char *data)
{
  struct srv *srv = reg->srv;

  if (srv_txn(srv) < 0 ||
      db_timeline_add(srv->db, loop_wall(srv->loop), type, reg->device_id,
                      reg->ep, 0, 0, data) < 0)
    log_warn("%s: timeline event '%s' not stored", reg->ep, type);
}

/* Removes a registration: memory, database, requests and observations. */
static void reg_remove(struct srv_reg *reg, const char *why)
{
  struct srv *srv = reg->srv;
  char *ep = xstrdup(reg->ep);
  char data[64];

  srv_reg_drop_requests(reg, -ENOTCONN, why);
  loop_timer_disarm(srv->loop, &reg->expiry);
  hmap_remove(&srv->by_ep, &reg->by_ep);
  hmap_remove(&srv->by_loc, &reg->by_loc);
  if (srv_txn(srv) < 0 || db_registration_delete(srv->db, reg->device_id) < 0)
    log_err("%s: registration not removed from the database", ep);
  snprintf(data, sizeof(data), "{\"reason\":\"%s\"}", why);
  timeline(reg, "deregistered", data);
  log_info("%s: %s (location %s)", ep, why, reg->location);
  reg_free(reg);
  SRV_EMIT(srv, deregistered, ep, why);
  free(ep);
}

static void on_expiry(struct loop *loop, struct loop_timer *t, void *arg)
{
  reg_remove(arg, "expired");
}

static void arm_expiry(struct srv_reg *reg)
{
  struct srv *srv = reg->srv;
  int64_t left = reg->updated_at + reg->lifetime * 1000 - loop_wall(srv->loop);

  reg->expires_mono = loop_now(srv->loop) + (left > 0 ? left : 0);
  loop_timer_arm_at(srv->loop, &reg->expiry, reg->expires_mono);
}

static void new_location(struct srv *srv, char *loc)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

  do {
    uint8_t t[SRV_TOKEN_LEN];

    srv_fill_token(srv, t);
    for (int i = 0; i < SRV_LOCATION_LEN; i++)
      loc[i] = alphabet[(t[i % SRV_TOKEN_LEN] >> (i / SRV_TOKEN_LEN)) & 31];
    loc[SRV_LOCATION_LEN] = '\0';
  } while (find_loc(srv, loc));
}

/* The parsed query of a Register or Update. */
struct rd_query {
  char ep[SRV_EP_MAX + 1];
  bool has_ep, has_lt, has_b, has_lwm2m, has_sms, queue;
  int64_t lt;
  char lwm2m[8];
  char b[8];
  char sms[32];
};
_Static_assert(sizeof(((struct rd_query *)0)->b) ==
                   sizeof(((struct srv_reg *)0)->binding),
               "a binding is copied whole from the query");

/* Copies an option value into dst as a string; false if it does not fit
 * or holds bytes that have no place in a query value. */
static bool opt_string(const uint8_t *v, size_t len, char *dst, size_t dstlen)
{
  if (len >= dstlen)
    return false;
  for (size_t i = 0; i < len; i++)
    if (v[i] < 0x20 || v[i] == 0x7f)
      return false;
  memcpy(dst, v, len);
  dst[len] = '\0';
  return true;
}

static int parse_query(const coap_pdu_t *pdu, struct rd_query *q, char *err,
                       size_t errlen)
{
  coap_opt_iterator_t oi;
  coap_opt_t *opt;

  memset(q, 0, sizeof(*q));
  coap_option_iterator_init(pdu, &oi, COAP_OPT_ALL);
  while ((opt = coap_option_next(&oi)) != NULL) {
    const uint8_t *v = coap_opt_value(opt);
    size_t len = coap_opt_length(opt);
    const uint8_t *eq;
    size_t klen;
    char key[16], val[SRV_EP_MAX + 1];
    bool has_val;

    if (oi.number != COAP_OPTION_URI_QUERY)
      continue;
    eq = memchr(v, '=', len);
    klen = eq ? (size_t)(eq - v) : len;
    has_val = eq != NULL;
    if (!opt_string(v, klen, key, sizeof(key))) {
      snprintf(err, errlen, "bad query parameter name");
      return -EINVAL;
    }
    if (has_val && !opt_string(eq + 1, len - klen - 1, val, sizeof(val))) {
      snprintf(err, errlen, "query parameter %s: value too long or not text",
               key);
      return -EINVAL;
    }
    if (strcmp(key, "ep") == 0) {
      if (q->has_ep || !has_val || !val[0]) {
        snprintf(err, errlen, "ep: missing, empty or given twice");
        return -EINVAL;
      }
      memcpy(q->ep, val, strlen(val) + 1); /* same size */
      q->has_ep = true;
    } else if (strcmp(key, "lt") == 0) {
      if (q->has_lt || !has_val ||
          parse_int64(val, 1, UINT32_MAX, &q->lt) < 0) {
        snprintf(err, errlen, "lt: not a lifetime in seconds");
        return -EINVAL;
      }
      q->has_lt = true;
    } else if (strcmp(key, "lwm2m") == 0) {
      if (q->has_lwm2m || !has_val ||
          !opt_string((const uint8_t *)val, strlen(val), q->lwm2m,
                      sizeof(q->lwm2m))) {
        snprintf(err, errlen, "lwm2m: bad version");
        return -EINVAL;
      }
      q->has_lwm2m = true;
    } else if (strcmp(key, "b") == 0) {
      if (q->has_b || !has_val ||
          !opt_string((const uint8_t *)val, strlen(val), q->b, sizeof(q->b))) {
        snprintf(err, errlen, "b: bad binding");
        return -EINVAL;
      }
      q->has_b = true;
    } else if (strcmp(key, "sms") == 0) {
      if (q->has_sms || !has_val ||
          !opt_string((const uint8_t *)val, strlen(val), q->sms,
                      sizeof(q->sms))) {
        snprintf(err, errlen, "sms: bad number");
        return -EINVAL;
      }
      q->has_sms = true;
    } else if (strcmp(key, "Q") == 0) {
      if (has_val) {
        snprintf(err, errlen, "Q: takes no value");
        return -EINVAL;
      }
      q->queue = true;
    } else {
      log_debug("ignoring unknown registration parameter '%s'", key);
    }
  }
  return 0;
}

/*
 * Checks the binding letters for the version. 1.0 knows U, UQ, S, SQ, US,
 * UQS; 1.1+ combines U, T, S, N (queue mode is the Q parameter).
 */
static bool binding_valid(const char *b, const char *version, bool *queue)
{
  static const char *const v10[] = {"U", "UQ", "S", "SQ", "US", "UQS"};

  if (strcmp(version, "1.0") == 0) {
    for (size_t i = 0; i < ARRAY_SIZE(v10); i++) {
      if (strcmp(b, v10[i]) == 0) {
        *queue = strchr(b, 'Q') != NULL;
        return true;
      }
    }
    return false;
  }
  if (!b[0])
    return false;
  for (const char *p = b; *p; p++) {
    if (!strchr("UTSN", *p) || strchr(p + 1, *p))
      return false;
  }
  return true;
}

/* What a registration payload says: objects, alternate path, formats. */
struct rd_payload {
  struct db_object_link *links;
  size_t n;
  char *alt_path;
  char *ct;
  struct lwm2m_links parsed; /* owns the version strings */
};

static void payload_free(struct rd_payload *p)
{
  free(p->links);
  free(p->alt_path);
  free(p->ct);
  lwm2m_links_free(&p->parsed);
}

static int parse_payload(const uint8_t *data, size_t len, struct rd_payload *p,
                         char *err, size_t errlen)
{
  char why[160];
  size_t cap = 0;

  memset(p, 0, sizeof(*p));
  if (!data)
    data = (const uint8_t *)"";
  if (lwm2m_links_parse((const char *)data, len, &p->parsed, why,
                        sizeof(why)) < 0) {
    snprintf(err, errlen, "bad link format: %s", why);
    return -EINVAL;
  }
  if (p->parsed.len > RD_LINKS_MAX) {
    snprintf(err, errlen, "more than %d links", RD_LINKS_MAX);
    return -EINVAL;
  }
  for (size_t i = 0; i < p->parsed.len; i++) {
    const struct lwm2m_link *l = &p->parsed.v[i];
    const char *rt = lwm2m_link_attr(l, "rt", NULL);

    if (rt && strcmp(rt, "oma.lwm2m") == 0) {
      const char *ct = lwm2m_link_attr(l, "ct", NULL);
      size_t ul = strlen(l->uri);

      /* The alternate path: object links below are relative to it. */
      if (ul > 1) {
        free(p->alt_path);
        p->alt_path = xstrndup(l->uri, l->uri[ul - 1] == '/' ? ul - 1 : ul);
      }
      if (ct) {
        free(p->ct);
        p->ct = xstrdup(ct);
      }
    }
  }
  for (size_t i = 0; i < p->parsed.len; i++) {
    const struct lwm2m_link *l = &p->parsed.v[i];
    const char *uri = l->uri;
    struct lwm2m_path path;

    if (lwm2m_link_attr(l, "rt", NULL))
      continue;
    if (p->alt_path) {
      size_t al = strlen(p->alt_path);

      if (strncmp(uri, p->alt_path, al) != 0)
        continue;
      uri += al;
    }
    if (lwm2m_path_parse(uri, &path) < 0 || path.len < 1 || path.len > 2) {
      snprintf(err, errlen, "link <%s> is not an object or instance", l->uri);
      return -EINVAL;
    }
    if (p->n == cap) {
      cap = cap ? cap * 2 : 16;
      p->links = xrealloc(p->links, cap * sizeof(*p->links));
    }
    p->links[p->n++] = (struct db_object_link){
        .oid = path.id[0],
        .iid = path.len == 2 ? path.id[1] : -1,
        .version = lwm2m_link_attr(l, "ver", NULL),
    };
  }
  return 0;
}

/* The request body, whole (libcoap reassembles Block1 for us). */
static bool get_body(const coap_pdu_t *req, const uint8_t **data, size_t *len)
{
  size_t offset, total;

  *data = NULL;
  *len = 0;
  if (!coap_get_data_large(req, len, data, &offset, &total))
    return true; /* no payload */
  return offset == 0 && *len == total;
}

static void reply_error(coap_pdu_t *resp, coap_pdu_code_t code,
                        const char *msg)
{
  coap_pdu_set_code(resp, code);
  /* A diagnostic payload helps client developers see why. */
  coap_add_data(resp, strlen(msg), (const uint8_t *)msg);
}

static void handle_register(struct srv *srv, coap_session_t *session,
                            const coap_pdu_t *req, coap_pdu_t *resp)
{
  struct rd_query q;
  struct rd_payload p = {0};
  struct db_registration dr;
  struct srv_reg *reg = NULL, *old;
  int64_t device_id = 0;
  const uint8_t *data;
  size_t len;
  char err[256];
  bool queue = false, replaced = false;
  const char *kind, *identity;

  if (srv_session_identity(srv, session, &kind, &identity) < 0) {
    reply_error(resp, COAP_RESPONSE_CODE(403), "no proven identity");
    return;
  }
  if (parse_query(req, &q, err, sizeof(err)) < 0)
    goto bad;
  if (!q.has_ep) {
    snprintf(err, sizeof(err), "ep is required");
    goto bad;
  }
  if (!q.has_lwm2m)
    snprintf(q.lwm2m, sizeof(q.lwm2m), "1.0");
  if (strcmp(q.lwm2m, "1.0") && strcmp(q.lwm2m, "1.1") &&
      strcmp(q.lwm2m, "1.2")) {
    log_info("%s: refused: LwM2M version %s not supported", q.ep, q.lwm2m);
    reply_error(resp, COAP_RESPONSE_CODE(412), "unsupported lwm2m version");
    return;
  }
  if (!q.has_b)
    snprintf(q.b, sizeof(q.b), "U");
  if (!binding_valid(q.b, q.lwm2m, &queue)) {
    snprintf(err, sizeof(err), "b=%s is not a valid binding for LwM2M %s", q.b,
             q.lwm2m);
    goto bad;
  }
  if (q.queue && strcmp(q.lwm2m, "1.0") == 0) {
    snprintf(err, sizeof(err), "Q is not a 1.0 parameter (use b=UQ)");
    goto bad;
  }
  if (!q.has_lt)
    q.lt = srv->cfg.default_lifetime;
  if (q.lt < srv->cfg.min_lifetime || q.lt > srv->cfg.max_lifetime) {
    snprintf(err, sizeof(err), "lt=%lld outside %lld..%lld", (long long)q.lt,
             (long long)srv->cfg.min_lifetime,
             (long long)srv->cfg.max_lifetime);
    goto bad;
  }
  if (!get_body(req, &data, &len)) {
    snprintf(err, sizeof(err), "incomplete payload");
    goto bad;
  }
  if (len > RD_PAYLOAD_MAX) {
    log_info("%s: refused: registration payload of %zu bytes", q.ep, len);
    reply_error(resp, COAP_RESPONSE_CODE(413), "payload too large");
    return;
  }
  if (parse_payload(data, len, &p, err, sizeof(err)) < 0)
    goto bad;
  if (!srv_identity_allows(srv, kind, identity, q.ep)) {
    log_warn("%s: refused: %s identity '%s' may not register this endpoint",
             q.ep, kind, identity ? identity : "(none)");
    reply_error(resp, COAP_RESPONSE_CODE(403), "forbidden");
    payload_free(&p);
    return;
  }

  old = srv_reg_find(srv, q.ep);
  if (old) {
    replaced = true;
    device_id = old->device_id;
    reg_remove(old, "replaced");
  }

  reg = xcalloc(1, sizeof(*reg));
  reg->srv = srv;
  /* Saves the database a lookup of the device. */
  reg->device_id = device_id;
  reg->ep = xstrdup(q.ep);
  /* Checked above: "1.0", "1.1" or "1.2", and a binding of the same
   * size. */
  memcpy(reg->version, q.lwm2m, sizeof(reg->version));
  memcpy(reg->binding, q.b, sizeof(reg->binding));
  reg->queue_mode = queue || q.queue;
  reg->lifetime = q.lt;
  reg->sms = q.has_sms ? xstrdup(q.sms) : NULL;
  reg->alt_path = p.alt_path;
  p.alt_path = NULL;
  reg->ct_list = p.ct;
  p.ct = NULL;
  reg->format = choose_format(reg->ct_list, reg->version);
  reg->registered_at = reg->updated_at = loop_wall(srv->loop);
  reg_security(reg, kind, identity);
  loop_timer_init(&reg->expiry, on_expiry, reg);
  new_location(srv, reg->location);
  attach_session(reg, session);

  fill_db_reg(reg, &dr);
  if (srv_txn(srv) < 0 ||
      db_registration_save(srv->db, &dr, p.links, p.n) < 0) {
    reply_error(resp, COAP_RESPONSE_CODE(500), "cannot store registration");
    payload_free(&p);
    reg_free(reg);
    return;
  }
  reg->device_id = dr.device_id;
  hmap_insert(&srv->by_ep, &reg->by_ep, str_hash(reg->ep));
  hmap_insert(&srv->by_loc, &reg->by_loc, str_hash(reg->location));
  arm_expiry(reg);
  {
    /* 64 for the names and punctuation, 10 for the lifetime's digits. */
    char data_json[64 + sizeof(reg->location) + sizeof(reg->version) + 10 +
                   sizeof(reg->binding) + sizeof(reg->peer)];
    char *w = data_json;

    /* By hand, not snprintf(), which cost as much as the rest of a
     * Register outside SQLite. Every value is fotad's own text (location
     * letters, version, binding letters, address), which JSON takes as
     * it is; the lifetime was checked to fit 32 bits. */
    w = put_text(w, "{\"location\":\"");
    w = put_text(w, reg->location);
    w = put_text(w, "\",\"lwm2m\":\"");
    w = put_text(w, reg->version);
    w = put_text(w, "\",\"lifetime\":");
    w = put_decimal(w, (unsigned)reg->lifetime);
    w = put_text(w, ",\"binding\":\"");
    w = put_text(w, reg->binding);
    w = put_text(w, "\",\"peer\":\"");
    w = put_text(w, reg->peer);
    w = put_text(w, "\"}");
    *w = '\0';
    timeline(reg, "registered", data_json);
  }

  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CREATED);
  coap_add_option(resp, COAP_OPTION_LOCATION_PATH, 2, (const uint8_t *)"rd");
  coap_add_option(resp, COAP_OPTION_LOCATION_PATH, strlen(reg->location),
                  (const uint8_t *)reg->location);
  log_info("%s: registered at /rd/%s from %s (lwm2m %s, lt %lld, b=%s%s, "
           "%zu object links)",
           reg->ep, reg->location, reg->peer, reg->version,
           (long long)reg->lifetime, reg->binding,
           reg->queue_mode ? ", queue mode" : "", p.n);

  /* Awake before the listeners run, so their first requests go out now. */
  if (reg->queue_mode)
    reg->awake_until =
        loop_now(srv->loop) + srv->cfg.queue_awake_window * 1000;
  SRV_EMIT(srv, registered, q.ep, replaced, reg->device_id, p.links, p.n);
  payload_free(&p);
  reg = srv_reg_find(srv, q.ep);
  if (reg)
    srv_reg_seen(reg, NULL);
  return;
bad:
  log_info("%s: registration refused: %s", q.has_ep ? q.ep : "(no ep)", err);
  reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, err);
  payload_free(&p);
}

/* Update and De-register come from the identity that registered. */
static bool same_identity(struct srv *srv, const struct srv_reg *reg,
                          coap_session_t *session)
{
  const char *kind, *identity;

  if (srv_session_identity(srv, session, &kind, &identity) < 0 ||
      strcmp(kind, reg->security) != 0)
    return false;
  if (!identity || !reg->identity)
    return identity == reg->identity;
  return strcmp(identity, reg->identity) == 0;
}

static void handle_update(struct srv *srv, struct srv_reg *reg,
                          coap_session_t *session, const coap_pdu_t *req,
                          coap_pdu_t *resp)
{
  struct rd_query q;
  struct rd_payload p = {0};
  struct db_registration dr;
  const uint8_t *data;
  size_t len;
  char err[256];
  bool queue = reg->queue_mode;
  bool changed = false;

  if (parse_query(req, &q, err, sizeof(err)) < 0)
    goto bad;
  if (q.has_ep || q.has_lwm2m) {
    snprintf(err, sizeof(err), "ep and lwm2m are not Update parameters");
    goto bad;
  }
  if (q.has_b && !binding_valid(q.b, reg->version, &queue)) {
    snprintf(err, sizeof(err), "b=%s is not a valid binding", q.b);
    goto bad;
  }
  if (q.has_lt &&
      (q.lt < srv->cfg.min_lifetime || q.lt > srv->cfg.max_lifetime)) {
    snprintf(err, sizeof(err), "lt=%lld out of range", (long long)q.lt);
    goto bad;
  }
  if (!get_body(req, &data, &len)) {
    snprintf(err, sizeof(err), "incomplete payload");
    goto bad;
  }
  if (len > RD_PAYLOAD_MAX) {
    reply_error(resp, COAP_RESPONSE_CODE(413), "payload too large");
    return;
  }
  if (len > 0 && parse_payload(data, len, &p, err, sizeof(err)) < 0)
    goto bad;

  if (q.has_lt && q.lt != reg->lifetime) {
    reg->lifetime = q.lt;
    changed = true;
  }
  if (q.has_b && strcmp(q.b, reg->binding) != 0) {
    snprintf(reg->binding, sizeof(reg->binding), "%s", q.b);
    /* In 1.1+ the Q parameter says queue mode; in 1.0 the binding. */
    reg->queue_mode =
        strcmp(reg->version, "1.0") == 0 ? queue : reg->queue_mode;
    changed = true;
  }
  if (q.has_sms) {
    free(reg->sms);
    reg->sms = xstrdup(q.sms);
    changed = true;
  }
  reg->updated_at = loop_wall(srv->loop);
  attach_session(reg, session);
  fill_db_reg(reg, &dr);
  if (srv_txn(srv) < 0 || db_registration_update(srv->db, &dr) < 0 ||
      (len > 0 &&
       db_objects_replace(srv->db, reg->device_id, p.links, p.n) < 0)) {
    reply_error(resp, COAP_RESPONSE_CODE(500), "cannot store update");
    payload_free(&p);
    return;
  }
  arm_expiry(reg);
  if (changed || len > 0) {
    char data_json[128];

    snprintf(data_json, sizeof(data_json),
             "{\"lifetime\":%lld,\"binding\":\"%s\",\"objects\":%s}",
             (long long)reg->lifetime, reg->binding,
             len > 0 ? "true" : "false");
    timeline(reg, "updated", data_json);
  }
  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
  log_debug("%s: update from %s%s", reg->ep, reg->peer,
            len > 0 ? " with a new object list" : "");
  if (reg->queue_mode)
    reg->awake_until =
        loop_now(srv->loop) + srv->cfg.queue_awake_window * 1000;
  {
    char *ep = xstrdup(reg->ep);

    SRV_EMIT(srv, updated, ep, reg->device_id, len > 0 ? p.links : NULL,
             len > 0 ? p.n : 0);
    reg = srv_reg_find(srv, ep);
    if (reg)
      srv_reg_seen(reg, NULL);
    free(ep);
  }
  payload_free(&p);
  return;
bad:
  log_info("%s: update refused: %s", reg->ep, err);
  reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, err);
  payload_free(&p);
}

void srv_handle_rd(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp, const char *rest)
{
  coap_pdu_code_t method = coap_pdu_get_code(req);
  struct srv_reg *reg;

  if (coap_pdu_get_type(req) != COAP_MESSAGE_CON) {
    reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST,
                "registration requests must be confirmable");
    return;
  }
  if (rest[0] == '\0') {
    if (method != COAP_REQUEST_CODE_POST) {
      coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_ALLOWED);
      return;
    }
    handle_register(srv, session, req, resp);
    return;
  }
  reg = strchr(rest, '/') ? NULL : find_loc(srv, rest);
  if (!reg) {
    /* 4.04 makes the client register again. */
    log_debug("request for unknown registration /rd/%s", rest);
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
    return;
  }
  if (!same_identity(srv, reg, session)) {
    log_warn("%s: update or de-register from another security identity "
             "refused",
             reg->ep);
    reply_error(resp, COAP_RESPONSE_CODE(403), "forbidden");
    return;
  }
  if (method == COAP_REQUEST_CODE_POST) {
    handle_update(srv, reg, session, req, resp);
  } else if (method == COAP_REQUEST_CODE_DELETE) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_DELETED);
    reg_remove(reg, "deregistered");
  } else {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_ALLOWED);
  }
}

void srv_handle_dp(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp)
{
  struct srv_reg *reg = coap_session_get_app_data(session);
  struct lwm2m_records recs;
  coap_opt_iterator_t oi;
  coap_opt_t *opt;
  uint16_t ct = 0xffff;
  const uint8_t *data;
  size_t len;
  char err[200];
  char *json = NULL;

  if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_POST) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  if (!reg) {
    reply_error(resp, COAP_RESPONSE_CODE_NOT_FOUND, "not registered");
    return;
  }
  opt = coap_check_option(req, COAP_OPTION_CONTENT_FORMAT, &oi);
  if (opt)
    ct = (uint16_t)coap_decode_var_bytes(coap_opt_value(opt),
                                         coap_opt_length(opt));
  if (ct != LWM2M_CT_SENML_JSON && ct != LWM2M_CT_SENML_CBOR &&
      ct != LWM2M_CT_LWM2M_CBOR) {
    reply_error(resp, COAP_RESPONSE_CODE(415), "Send takes SenML");
    return;
  }
  if (!get_body(req, &data, &len) || len > (size_t)srv->cfg.max_payload) {
    reply_error(resp, COAP_RESPONSE_CODE(413), "payload too large");
    return;
  }
  lwm2m_records_init(&recs);
  if (lwm2m_decode(ct, data, len, &(struct lwm2m_path){.len = 0}, srv->model,
                   &recs, err, sizeof(err)) < 0) {
    log_info("%s: bad Send payload: %s", reg->ep, err);
    reply_error(resp, COAP_RESPONSE_CODE_BAD_REQUEST, err);
    goto out;
  }
  {
    json_t *j = lwm2m_records_to_json(&recs);

    json = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
  }
  if (!json || srv_txn(srv) < 0 ||
      db_sent_values_add(srv->db, reg->device_id, loop_wall(srv->loop), ct,
                         json) < 0) {
    reply_error(resp, COAP_RESPONSE_CODE(500), "cannot store the values");
    goto out;
  }
  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
  log_debug("%s: Send with %zu values", reg->ep, recs.len);
  {
    char *ep = xstrdup(reg->ep);

    SRV_EMIT(srv, send, ep, &recs);
    reg = srv_reg_find(srv, ep);
    if (reg)
      srv_reg_seen(reg, session);
    free(ep);
  }
out:
  free(json);
  lwm2m_records_free(&recs);
}

/* Restores one stored registration at start-up. */
static void load_one(void *arg, const struct db_registration *r,
                     const struct db_object_link *links, size_t n)
{
  struct srv *srv = arg;
  struct srv_reg *reg = xcalloc(1, sizeof(*reg));

  reg->srv = srv;
  reg->device_id = r->device_id;
  reg->ep = xstrdup(r->endpoint);
  snprintf(reg->location, sizeof(reg->location), "%s", r->location);
  snprintf(reg->version, sizeof(reg->version), "%s", r->lwm2m_version);
  snprintf(reg->binding, sizeof(reg->binding), "%s", r->binding);
  snprintf(reg->security, sizeof(reg->security), "%s", r->security);
  snprintf(reg->peer, sizeof(reg->peer), "%s", r->peer);
  reg->alt_path = r->alt_path ? xstrdup(r->alt_path) : NULL;
  reg->ct_list = r->content_format ? xstrdup(r->content_format) : NULL;
  reg->sms = r->sms ? xstrdup(r->sms) : NULL;
  reg->identity = r->identity ? xstrdup(r->identity) : NULL;
  reg->queue_mode = r->queue_mode;
  reg->lifetime = r->lifetime;
  reg->registered_at = r->registered_at;
  reg->updated_at = r->updated_at;
  reg->format = choose_format(reg->ct_list, reg->version);
  loop_timer_init(&reg->expiry, on_expiry, reg);
  hmap_insert(&srv->by_ep, &reg->by_ep, str_hash(reg->ep));
  hmap_insert(&srv->by_loc, &reg->by_loc, str_hash(reg->location));
  /* Expired while we were down: the timer fires at once. */
  arm_expiry(reg);
}

int srv_registry_load(struct srv *srv)
{
  int rc = db_registrations_load(srv->db, load_one, srv);

  if (rc == 0 && srv->by_ep.len > 0)
    log_info("restored %zu registrations", srv->by_ep.len);
  if (rc == 0)
    rc = db_requests_abandon(srv->db, loop_wall(srv->loop));
  return rc;
}

static void reg_info(const struct srv_reg *reg, struct srv_reg_info *info)
{
  *info = (struct srv_reg_info){
      .endpoint = reg->ep,
      .location = reg->location,
      .lwm2m_version = reg->version,
      .binding = reg->binding,
      .alt_path = reg->alt_path,
      .peer = reg->peer,
      .security = reg->security,
      .lifetime = reg->lifetime,
      .registered_at = reg->registered_at,
      .updated_at = reg->updated_at,
      .expires_at = reg->updated_at + reg->lifetime * 1000,
      .queue_mode = reg->queue_mode,
      .awake = srv_reg_awake(reg),
      .reachable = reg->session != NULL,
      .format = reg->format,
  };
}

int srv_reg_info(const struct srv *srv, const char *ep,
                 struct srv_reg_info *info)
{
  const struct srv_reg *reg = srv_reg_find(srv, ep);

  if (!reg)
    return -ENOENT;
  reg_info(reg, info);
  return 0;
}

void srv_reg_foreach(const struct srv *srv,
                     void (*fn)(void *arg, const struct srv_reg_info *info),
                     void *arg)
{
  for (size_t i = 0; i < srv->by_ep.nbuckets; i++) {
    for (struct hmap_node *n = srv->by_ep.buckets[i]; n; n = n->next) {
      struct srv_reg_info info;

      reg_info(container_of(n, struct srv_reg, by_ep), &info);
      fn(arg, &info);
    }
  }
}

void srv_get_stats(const struct srv *srv, struct srv_stats *st)
{
  int64_t queued = 0;

  memset(st, 0, sizeof(*st));
  st->registered = (int64_t)srv->by_ep.len;
  for (size_t i = 0; i < srv->by_ep.nbuckets; i++)
    for (struct hmap_node *n = srv->by_ep.buckets[i]; n; n = n->next)
      st->awake += srv_reg_awake(container_of(n, struct srv_reg, by_ep));
  st->observations = (int64_t)srv->obs_by_token.len;
  st->pending = (int64_t)srv->reqs_by_token.len;
  if (db_requests_count_queued(srv->db, &queued) == 0)
    st->queued = queued;
  st->dtls_handshakes = srv->dtls_handshakes;
  st->dtls_failures = srv->dtls_failures;
  st->blocks_served = srv->blocks_served;
  st->coap_codes = srv->coap_codes;
}
