/* Private to server/: the server, registrations and requests in flight. */
#ifndef FOTAD_SRV_INT_H
#define FOTAD_SRV_INT_H

#include "server/srv.h"

#include <coap3/coap.h>

#define SRV_TOKEN_LEN 8
#define SRV_LOCATION_LEN 10
#define SRV_EP_MAX 255

struct srv_req;
struct srv_obs;

/* One live registration. */
struct srv_reg {
  struct hmap_node by_ep;
  struct hmap_node by_loc;
  struct srv *srv;
  int64_t device_id;
  char *ep;
  char location[SRV_LOCATION_LEN + 1];
  char *alt_path; /* NULL for "/" */
  char *ct_list;  /* the root link's ct attribute as sent, or NULL */
  char *sms;
  char *identity;  /* DTLS identity it registered with, or NULL */
  char version[4]; /* "1.0", "1.1", "1.2" */
  char binding[8];
  char security[8];
  bool queue_mode;
  uint16_t format;  /* preferred content format for requests */
  int64_t lifetime; /* s */
  int64_t registered_at, updated_at; /* Unix ms */
  int64_t expires_mono;              /* loop time of expiry */
  int64_t awake_until;               /* loop time; queue mode only */
  coap_session_t *session;           /* referenced while registered */
  char peer[64];
  struct loop_timer expiry;
  struct srv_req *reqs; /* in flight, linked through reg_next */
  struct srv_obs *obs;  /* observations, linked through next */
  bool flushing;        /* sending its queue now */
  /* Reaching a device that has not spoken since fotad restarted: it was
   * pinged at pinged_at (loop time) and waits in srv->reaching. */
  struct hmap_node by_peer;
  bool reaching;
  int64_t pinged_at;
};

/* One request in flight, keyed by token. */
struct srv_req {
  struct hmap_node by_token;
  struct hmap_node by_handle;
  struct srv_req *reg_next;
  struct srv *srv;
  struct srv_reg *reg;
  uint64_t handle;
  uint8_t token[SRV_TOKEN_LEN];
  enum srv_op op;
  struct lwm2m_path path;
  int64_t queued_id; /* the requests row when sent from the queue */
  srv_result_cb *cb;
  void *cb_arg;
  struct loop_timer timeout;
};

/* An observation; lives until cancelled or the registration ends. */
struct srv_obs {
  struct srv_obs *next;
  struct hmap_node by_token;
  struct srv_reg *reg;
  uint8_t token[SRV_TOKEN_LEN];
  struct lwm2m_path path;   /* single observation */
  struct lwm2m_path *paths; /* composite observation, or NULL */
  size_t npaths;
  bool established;
};

struct srv {
  struct loop *loop;
  struct db *db;
  struct srv_config cfg;
  struct lwm2m_model *model;
  coap_context_t *ctx;
  coap_endpoint_t *udp, *dtls;
  int coap_fd;
  int udp_fd; /* the CoAP (not DTLS) listening socket, or -1 */
  int udp_port, dtls_port;
  bool pki_rpk;
  struct hmap peer_ids;        /* DTLS identities by peer address (dtls.c) */
  uint8_t *rpk_cert, *rpk_key; /* PEM buffers for raw public keys */
  size_t rpk_cert_len, rpk_key_len;
  uint8_t psk_buf[64];
  coap_bin_const_t psk_bin;
  int64_t dtls_handshakes, dtls_failures;
  struct loop_timer io_timer;
  struct loop_timer sweep_timer; /* expires queued requests */
  struct {
    const struct srv_events *ev;
    void *arg;
  } listeners[8];
  size_t nlisteners;
  srv_file_cb *file_cb;
  void *file_arg;
  struct hmap by_ep, by_loc, reqs_by_token, reqs_by_handle, obs_by_token;
  struct hmap reaching;          /* struct srv_reg by peer, pinged */
  struct loop_timer reach_timer; /* flushes the queues of those reached */
  uint64_t next_token;
  uint64_t token_salt;
  uint64_t next_handle;
  bool in_txn;        /* a write transaction is open (see srv_txn) */
  int64_t txn_since;  /* loop time it was opened */
  int64_t txn_writes; /* srv_txn() calls since */
  struct loop_timer commit_timer;
  uint64_t rx_count;        /* messages handed to us by libcoap */
  uint64_t coap_codes[256]; /* answers to device requests, by code */
  int64_t blocks_served;
  size_t read_batch; /* reads per ready socket in one libcoap call */
};

/* Calls fn of every listener that has it, with the arguments given. */
#define SRV_EMIT(srv, fn, ...)                                                \
  do {                                                                        \
    for (size_t l_ = 0; l_ < (srv)->nlisteners; l_++)                         \
      if ((srv)->listeners[l_].ev->fn)                                        \
        (srv)->listeners[l_].ev->fn((srv)->listeners[l_].arg, __VA_ARGS__);   \
  } while (0)

/* server.c */
/* Opens the shared write transaction if none is open yet. It is
 * committed SRV_COMMIT_MS after it opened (or sooner when it grew large),
 * so a burst of registrations costs one commit. Returns 0 or a negative
 * errno. */
int srv_txn(struct srv *srv);
void srv_fill_token(struct srv *srv, uint8_t *token);
/* Turns a request's outcome into JSON for the requests table. */
char *srv_result_json(const struct srv_result *res);

/* dtls.c */
int srv_dtls_setup(struct srv *srv, char *err, size_t errlen);
void srv_dtls_free(struct srv *srv);
/* The security kind ("nosec", "psk", "rpk", "x509") and identity the
 * session's handshake proved; -ENOENT if none is known. */
int srv_session_identity(struct srv *srv, coap_session_t *session,
                         const char **kind, const char **identity);
/* May a session with this proven identity use endpoint name ep? */
bool srv_identity_allows(struct srv *srv, const char *kind,
                         const char *identity, const char *ep);

/* files.c */
void srv_handle_fw(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp, const char *token);

/* registry.c */
void srv_registry_init(struct srv *srv);
void srv_registry_free(struct srv *srv);
int srv_registry_load(struct srv *srv);
void srv_handle_rd(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp, const char *rest);
void srv_handle_dp(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp);
struct srv_reg *srv_reg_find(const struct srv *srv, const char *ep);
/* A device registered before fotad restarted that has not spoken since
 * has no session to send on: ping it from the listening socket (NoSec
 * only), so that its answer opens one. At most every few seconds. */
void srv_reg_reach(struct srv_reg *reg);
/* libcoap opened a server session: attach it to the device pinged from
 * that address, if any, and send its queued requests. */
void srv_reg_session_new(struct srv *srv, coap_session_t *session);
/* The device spoke: refresh its peer and, in queue mode, wake it. */
void srv_reg_seen(struct srv_reg *reg, coap_session_t *session);
bool srv_reg_awake(const struct srv_reg *reg);

/* request.c */
void srv_requests_init(struct srv *srv);
void srv_requests_free(struct srv *srv);
/* Fails every request and drops every observation of reg. */
void srv_reg_drop_requests(struct srv_reg *reg, int status, const char *why);
coap_response_t srv_on_response(coap_session_t *session,
                                const coap_pdu_t *sent,
                                const coap_pdu_t *received,
                                const coap_mid_t mid);
void srv_on_nack(coap_session_t *session, const coap_pdu_t *sent,
                 const coap_nack_reason_t reason, const coap_mid_t mid);
/* Sends the queued requests of an awake device. */
void srv_queue_flush(struct srv_reg *reg);
/* Expires queued requests past their time. */
void srv_queue_sweep(struct srv *srv);

#endif
