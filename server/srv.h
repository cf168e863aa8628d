/*
 * server: the LwM2M side of fotad. Owns the libcoap context and its
 * listeners on the shared event loop: the registration interface (/rd),
 * device-management requests to devices, observations, queue mode and
 * Send (/dp). It reports upward through the callbacks in srv_events.
 */
#ifndef FOTAD_SRV_H
#define FOTAD_SRV_H

#include "common/common.h"
#include "db/db.h"
#include "server/lwm2m.h"

struct srv;

struct srv_config {
  const char *coap_listen;      /* "HOST:PORT" of plain CoAP; borrowed */
  const char *coaps_listen;     /* "HOST:PORT" of CoAP over DTLS, or "" */
  const char *dtls_cert_file;   /* PEM certificate (or key for RPK), or "" */
  const char *dtls_key_file;    /* PEM private key */
  const char *dtls_ca_file;     /* PEM CA that signs client certificates */
  bool dtls_rpk;                /* raw public keys instead of X.509 */
  const char *objects_dir;      /* extra object definitions, or NULL */
  int64_t default_lifetime;     /* s, when Register has no lt */
  int64_t min_lifetime;         /* s, smaller lt values are refused */
  int64_t max_lifetime;         /* s, larger lt values are refused */
  int64_t request_timeout_ms;   /* default time-out of a DM request */
  int64_t queue_awake_window;   /* s a queue-mode device stays reachable */
  int64_t queue_request_expiry; /* s a queued request waits at most */
  int64_t max_payload;          /* largest accepted CoAP body, bytes */
  int64_t udp_rcvbuf;           /* SO_RCVBUF for the listener, bytes */
  bool allow_nosec;             /* accept registrations without DTLS */
};

/* What the server tells the layers above. Every callback is optional. */
struct srv_events {
  /* A Register: the device's id and object links (borrowed). */
  void (*registered)(void *arg, const char *ep, bool replaced,
                     int64_t device_id, const struct db_object_link *links,
                     size_t n);
  /* An Update; links is NULL unless it carried a new object list. */
  void (*updated)(void *arg, const char *ep, int64_t device_id,
                  const struct db_object_link *links, size_t n);
  /* A device registered before fotad restarted, silent since, answered
   * a ping (see srv_reg_reach()): requests reach it again, but what it
   * observed for fotad is unknown. */
  void (*reached)(void *arg, const char *ep, int64_t device_id);
  /* why: "deregistered", "expired" or "replaced" */
  void (*deregistered)(void *arg, const char *ep, const char *why);
  /* A notification of an observation made with srv_observe(). */
  void (*notify)(void *arg, const char *ep, const struct lwm2m_path *path,
                 const struct lwm2m_records *values);
  /* Values a device pushed with the Send operation. */
  void (*send)(void *arg, const char *ep, const struct lwm2m_records *values);
  /* A block of a package served over CoAP: ep is NULL for a peer that is
   * not registered; last is true for the final block. */
  void (*block_served)(void *arg, const char *token, const char *ep,
                       const char *peer, uint32_t num, uint32_t len,
                       bool last);
};

/* Package content for GET /fw/<token>, as a provider hands it over. */
struct srv_file {
  const uint8_t *data; /* the whole content, borrowed until release */
  size_t size;
  uint8_t etag[8]; /* the same for every block of one content */
  size_t etag_len;
  void (*release)(void *arg); /* may be NULL */
  void *release_arg;
};

/* Fills f for a download token; a negative errno if there is none. */
typedef int srv_file_cb(void *arg, const char *token, struct srv_file *f);
/* Sets who resolves download tokens (the package repository). */
void srv_set_file_provider(struct srv *srv, srv_file_cb *cb, void *arg);

/*
 * Initialises libcoap (once per process), routes its log through ours,
 * reloads the persisted registrations from db, and creates the listeners
 * on loop. db is borrowed. Returns a new server, or NULL with err filled.
 */
struct srv *srv_new(struct loop *loop, struct db *db,
                    const struct srv_config *cfg, char *err, size_t errlen);
/* Closes every listener and session; NULL is a no-op. */
void srv_free(struct srv *srv);
/* Adds a listener (at most 8); ev is borrowed and must outlive srv. */
int srv_add_listener(struct srv *srv, const struct srv_events *ev, void *arg);
/* The UDP port the CoAP listener is bound to (useful with port 0). */
int srv_coap_port(const struct srv *srv);
/* The UDP port of the CoAPS listener, or -1 without one. */
int srv_coaps_port(const struct srv *srv);
/* Applies a new log level to libcoap's own messages. */
void srv_set_log_level(enum log_level level);
/* The object model (built-in plus loaded definitions); borrowed. */
const struct lwm2m_model *srv_model(const struct srv *srv);

/* Counters for health and metrics. */
struct srv_stats {
  int64_t registered;      /* live registrations */
  int64_t awake;           /* of those, reachable now (not sleeping) */
  int64_t observations;    /* live observations */
  int64_t pending;         /* requests in flight */
  int64_t queued;          /* requests waiting for a device to wake */
  int64_t dtls_handshakes; /* identities proven since start */
  int64_t dtls_failures;   /* handshakes refused since start */
  int64_t blocks_served;   /* package blocks sent over CoAP */
  /* Requests devices sent us, by the code we answered (index = code
   * byte, e.g. 0x41 for 2.01), since start; borrowed. */
  const uint64_t *coap_codes;
};
void srv_get_stats(const struct srv *srv, struct srv_stats *st);

/* A registration as the API shows it; strings are borrowed. */
struct srv_reg_info {
  const char *endpoint;
  const char *location;
  const char *lwm2m_version;
  const char *binding;
  const char *alt_path; /* NULL when "/" */
  const char *peer;     /* "IP:PORT" of the last message */
  const char *security; /* "nosec", "psk", "rpk", "x509" */
  int64_t lifetime;
  int64_t registered_at, updated_at, expires_at; /* Unix ms */
  bool queue_mode;
  bool awake;
  bool reachable;  /* a session exists to send requests on */
  uint16_t format; /* content format chosen for this device */
};
/* Fills info for ep; returns 0, or -ENOENT if ep is not registered. */
int srv_reg_info(const struct srv *srv, const char *ep,
                 struct srv_reg_info *info);
/* Calls fn for every live registration, in no particular order. */
void srv_reg_foreach(const struct srv *srv,
                     void (*fn)(void *arg, const struct srv_reg_info *info),
                     void *arg);

/* Device-management operations. */
enum srv_op {
  SRV_OP_READ,
  SRV_OP_DISCOVER,
  SRV_OP_WRITE,         /* PUT: replace */
  SRV_OP_WRITE_PARTIAL, /* POST: partial update */
  SRV_OP_WRITE_ATTRS,
  SRV_OP_EXECUTE,
  SRV_OP_CREATE,
  SRV_OP_DELETE,
  SRV_OP_OBSERVE,
  SRV_OP_CANCEL_OBSERVE,
  SRV_OP_READ_COMPOSITE,
  SRV_OP_OBSERVE_COMPOSITE,
  SRV_OP_CANCEL_OBSERVE_COMPOSITE,
  SRV_OP_WRITE_COMPOSITE,
};

const char *srv_op_name(enum srv_op op);
int srv_op_parse(const char *name, enum srv_op *op);

struct srv_request {
  enum srv_op op;
  struct lwm2m_path path;
  /* WRITE*, CREATE, WRITE_COMPOSITE: the values; borrowed. */
  const struct lwm2m_records *values;
  /* EXECUTE: the argument string, or NULL. */
  const char *args;
  /* WRITE_ATTRS: "pmin=10&pmax=60" (validated), borrowed. */
  const char *attrs;
  /* *_COMPOSITE reads and observes: the paths; borrowed. */
  const struct lwm2m_path *paths;
  size_t npaths;
  uint16_t format;    /* content format to use, when has_format */
  bool has_format;    /* else the device's default */
  int64_t timeout_ms; /* 0: the configured default */
  /* Queue the request if the device sleeps (else fail with -EAGAIN). */
  bool allow_queue;
  /* CANCEL_OBSERVE*: forget the observation without a request; the
   * device's next notification is answered with RST, which ends it. */
  bool cancel_by_rst;
};

struct srv_result {
  /* 0 when the device answered (see code); otherwise -ENOENT (not
   * registered), -ETIMEDOUT, -ENOTCONN (device went away or
   * deregistered), -EPROTO (the answer could not be decoded), -EINVAL
   * (the request cannot be encoded), -EAGAIN (sleeping, not queued). */
  int status;
  uint8_t code;                /* CoAP response code, e.g. 0x45 for 2.05 */
  uint16_t format;             /* Content-Format of the answer, or 0xffff */
  struct lwm2m_records values; /* decoded READ/OBSERVE answers */
  char *links;                 /* DISCOVER answer, NUL-terminated */
  char *error;                 /* what went wrong, for humans */
  int64_t queued_id;           /* > 0 when the request was queued */
};

typedef void srv_result_cb(void *arg, const struct srv_result *res);

/*
 * Sends a DM request to ep's device. cb is called exactly once with the
 * outcome (possibly before srv_send returns, for immediate failures),
 * unless srv_forget() is called first. If the device is asleep and
 * req->allow_queue is set, the request is persisted, cb is called at once
 * with status 0, code 0 and queued_id set, and the request goes out when
 * the device next wakes; its fate is then kept in the database. Returns a
 * handle for srv_forget(), or 0 if cb was already called.
 */
uint64_t srv_send(struct srv *srv, const char *ep,
                  const struct srv_request *req, srv_result_cb *cb, void *arg);
/* The caller lost interest: cb will not be called for handle. */
void srv_forget(struct srv *srv, uint64_t handle);
/* The CoAP code as "2.05". */
void srv_code_format(uint8_t code, char *buf, size_t len);

/*
 * The queue of a device: requests persisted while it sleeps, with their
 * fate. As JSON arrays of objects, for the REST API; new references.
 */
json_t *srv_queue_json(struct srv *srv, const char *ep, int64_t after_id,
                       int limit);
json_t *srv_request_json(struct srv *srv, int64_t id);

#endif
