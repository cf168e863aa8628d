/*
 * fotad-sim internals: the fleet, its libcoap shards, the simulated devices
 * and their downloads. Private to tests/sim/.
 *
 * One process, one thread, the common/ epoll loop. Devices are spread over
 * shards of SIM_SHARD_SIZE devices, each shard a libcoap context of its own:
 * libcoap 4.3.1 walks every session of a context on each I/O call, so small
 * contexts keep that walk short, and only a shard with traffic is
 * processed. Each device has its own client session (its own UDP socket),
 * which libcoap also uses to deliver the server's requests to the shard's
 * catch-all resource (dm.c).
 */
#ifndef FOTAD_SIM_INT_H
#define FOTAD_SIM_INT_H

#include "tests/sim/sim.h"

#include "common/common.h"
#include "server/lwm2m.h"

#include <coap3/coap.h>
#include <curl/curl.h>

#define SIM_EP_MAX 64            /* endpoint names, PSK identities */
#define SIM_PSK_MAX 64           /* PSK bytes */
#define SIM_SHARD_SIZE 64        /* devices per libcoap context */
#define SIM_MAX_OBS 32           /* observations per device */
#define SIM_MAX_ATTRS 32         /* Write-Attributes entries per device */
#define SIM_HISTORY 32           /* state transitions kept per device */
#define SIM_LOC_MAX 4            /* Location-Path segments kept */
#define SIM_LOC_SEG 64           /* bytes per segment */
#define SIM_BODY_MAX 16384       /* a Block1 Write other than a package */
#define SIM_MAX_SEND 16          /* paths in --send */
#define SIM_FW_SLOT AFU_MAX_INST /* download slot of object 5 */

struct sim;
struct sim_dev;
struct sim_dl;

/* What a libcoap session's app data points at. */
enum sim_peer_kind {
  PEER_DEV, /* a device's registration / DM session */
  PEER_DL,  /* a CoAP download */
};

struct sim_peer {
  enum sim_peer_kind kind;
  void *owner;
};

/* One component (33629 instance) as configured. */
struct sim_component {
  char *name;
  char *version;
  int severity;
  int64_t max_defer;
  bool has_sha256;
  uint8_t sha256[32];
};

/* The validated configuration (command line and profile). */
struct sim_config {
  char *server_uri;
  coap_address_t server_addr;
  coap_proto_t proto; /* COAP_PROTO_UDP or COAP_PROTO_DTLS */
  bool have_bind;
  coap_address_t bind;
  size_t count;
  char *endpoint_pattern;
  int minor; /* LwM2M 1.minor */
  int64_t lifetime;
  bool queue;
  size_t ncomp;
  struct sim_component comp[AFU_MAX_INST];
  bool object5;
  bool afu;
  uint32_t protocols;
  int delivery;
  char *psk_identity_pattern;
  char *psk_key_pattern;
  int64_t duration_ms; /* 0: no limit */
  struct sim_until until;
  char *report;
  int64_t reboot_ms;
  int64_t awake_ms;
  int64_t download_timeout_ms;
  int64_t slow_delay_ms;
  int64_t send_interval_ms; /* 0: Send only on registration and change */
  double register_rate;     /* per second; 0: unlimited */
  struct pkg_policy pkg;
  unsigned block_szx;
  size_t nsend;
  struct lwm2m_path send[SIM_MAX_SEND];
  uint64_t seed;
  bool deregister;
  bool http_insecure;
  struct afu_quirks quirks;
  char *manufacturer;
  char *model_number;
  size_t nfaults;
  struct sim_fault_spec *faults;
};

/* A libcoap context holding up to SIM_SHARD_SIZE devices. */
struct sim_shard {
  struct sim *sim;
  coap_context_t *ctx;
  int fd;
  struct loop_timer timer; /* libcoap's next retransmission or time-out */
  bool dirty;              /* on sim->dirty, to prepare before sleeping */
};

/* Write-Attributes of one path (spec 3.3). */
enum {
  ATTR_PMIN = 1 << 0,
  ATTR_PMAX = 1 << 1,
  ATTR_GT = 1 << 2,
  ATTR_LT = 1 << 3,
  ATTR_ST = 1 << 4,
  ATTR_EPMIN = 1 << 5,
  ATTR_EPMAX = 1 << 6,
};

struct sim_attrs {
  struct lwm2m_path path;
  unsigned set; /* ATTR_* */
  int64_t pmin, pmax, epmin, epmax;
  double gt, lt, st;
};

/* An observation the server holds on the device. */
struct sim_obs {
  uint8_t token[8];
  size_t token_len;
  bool composite;
  size_t npaths;
  struct lwm2m_path *paths; /* owned */
  uint16_t ct;
  uint32_t seq;
  int64_t last_sent; /* monotonic ms */
  bool changed;
  bool has_num; /* a single numeric resource: gt/lt/st apply */
  double last_num;
};

/* A Block1 Write in progress (spec 5.2). */
struct sim_block1 {
  struct lwm2m_path path;
  uint8_t code; /* PUT or POST */
  uint16_t ct;
  uint32_t next_num;
  size_t offset;
  bool package;       /* streaming into resource 0 */
  unsigned afu_index; /* when package */
  struct pkg_stream pkg;
  size_t lose_at; /* lost-download fault: stop here (0: never) */
  uint8_t *buf;   /* other writes, up to SIM_BODY_MAX */
  struct loop_timer timer;
};

enum dev_state {
  DEV_OFF,
  DEV_WAIT_REGISTER, /* queued behind --register-rate */
  DEV_REGISTERING,
  DEV_REGISTERED,
  DEV_ASLEEP, /* queue mode, socket closed */
  DEV_REBOOTING,
  DEV_OFFLINE,       /* offline fault */
  DEV_DISABLED,      /* /1/0/4 executed */
  DEV_DEAD,          /* no-return fault */
  DEV_DEREGISTERING, /* shutting down */
  DEV_STOPPED,
  DEV_STATE_COUNT
};

enum reg_op {
  REG_NONE,
  REG_REGISTER,
  REG_UPDATE,
  REG_DEREGISTER,
};

/* Why a device reboots. */
enum reboot_kind {
  REBOOT_PLAIN,   /* /3/0/4 */
  REBOOT_INSTALL, /* Execute Update */
  REBOOT_CRASH,   /* reboot-loop fault */
};

struct sim_event {
  int64_t wall_ms;
  uint16_t index; /* AFU index, AFU_FW_INDEX for /5/0 */
  uint8_t state;
  uint8_t result;
};

struct sim_dev {
  struct sim *sim;
  struct sim_shard *shard;
  unsigned idx;
  char ep[SIM_EP_MAX];
  struct sim_peer peer;
  enum dev_state state;
  uint32_t faults; /* bit per enum sim_fault */

  /* Transport. */
  coap_session_t *session;
  coap_address_t local; /* last bound address, to wake on the same port */
  bool have_local;
  int port;
  char psk_id[SIM_EP_MAX];
  uint8_t psk_key[SIM_PSK_MAX];
  size_t psk_key_len;

  /* Registration. */
  char loc[SIM_LOC_MAX][SIM_LOC_SEG];
  size_t nloc;
  enum reg_op reg_op;
  uint8_t reg_token[8];
  size_t reg_token_len;
  bool update_again; /* another Update was asked for while one ran */
  bool update_lt, update_b;
  unsigned reg_failures;
  struct loop_timer reg_timer;   /* next Update, or Register retry */
  struct loop_timer sleep_timer; /* queue mode: end of the awake window */
  struct loop_timer life_timer;  /* reboot, offline, disable, crash */
  struct loop_timer defer_timer;
  struct loop_timer send_timer;
  struct sim_dev *pace_next;
  bool paced;

  /* Send (POST /dp). */
  uint8_t send_token[8];
  size_t send_token_len;
  bool send_wanted;

  /* Object 1 and 3 values. */
  int64_t lifetime;
  bool queue;
  int64_t pmin_def, pmax_def;
  bool notif_storing;
  int64_t disable_timeout;
  bool mute_send;
  int64_t time_offset; /* /3/0/13 written minus the clock */
  char utc_offset[16];
  char timezone[48];
  int battery;

  /* Firmware update. */
  struct afu afu;
  uint8_t last_state[AFU_MAX_INST + 1];
  uint8_t last_result[AFU_MAX_INST + 1];
  struct sim_dl *dl[AFU_MAX_INST + 1]; /* per slot; object 5 last */
  struct sim_block1 *b1;
  uint32_t install_batch;
  enum reboot_kind reboot_kind;
  bool offline_done, rebind_done;
  int life_phase; /* what life_timer does next (device.c) */
  unsigned crashes;
  unsigned downloads_lost; /* by the flaky-download fault */

  /* Observe. */
  struct sim_obs *obs[SIM_MAX_OBS];
  size_t nobs;
  struct sim_attrs attrs[SIM_MAX_ATTRS];
  size_t nattrs;
  struct loop_timer obs_timer;

  /* Statistics and report. */
  int64_t first_reg_ms; /* latency of the first registration, -1 if none */
  int64_t reg_sent_ms;
  unsigned registrations, reg_retries, updates, reboots;
  unsigned installs, install_failures; /* installs: successful ones */
  unsigned notifications, dropped_notifications, requests;
  unsigned downloads_ok, downloads_failed;
  struct sim_event hist[SIM_HISTORY];
  size_t nhist; /* total; the last SIM_HISTORY are kept */
  bool until_ok;
  enum dev_state stop_state; /* state when the run ended */
};

/* A package download (pull). */
struct sim_dl {
  struct sim_peer peer;
  struct sim_dev *dev;
  unsigned slot; /* AFU index, or SIM_FW_SLOT */
  char uri[AFU_URI_MAX];
  int proto;
  bool started;   /* holds a socket from the budget */
  bool begun;     /* the transfer itself has started */
  bool slow_wait; /* the timer paces the next block (slow-download) */
  struct sim_dl *wait_next;
  struct loop_timer timer; /* stall time-out or slow-down delay */
  struct pkg_stream pkg;
  size_t size2; /* announced size, 0 if unknown */
  size_t lose_at;
  /* CoAP. */
  coap_session_t *session;
  coap_optlist_t *opts;
  uint8_t token[8];
  size_t token_len;
  uint32_t num;
  unsigned szx;
  uint8_t etag[8];
  size_t etag_len;
  bool have_etag;
  /* HTTP. */
  CURL *easy;
  int result; /* a failure decided inside a curl callback */
};

struct sim {
  struct sim_config *cfg;
  struct loop *loop;
  struct lwm2m_model *model;
  struct sim_shard *shards;
  size_t nshards;
  struct sim_dev *devs;
  size_t ndev;

  /* --register-rate: devices waiting to send Register. */
  struct sim_dev *pace_head, *pace_tail;
  double tokens;
  int64_t pace_last;
  struct loop_timer pace_timer;

  /* Sessions to free once libcoap has returned to the loop. */
  coap_session_t **grave;
  size_t ngrave, gravecap;
  /* Shards that sent outside their own I/O processing. */
  struct sim_shard **dirty;
  size_t ndirty;

  /* Downloads. */
  CURLM *curlm;
  struct loop_timer curl_timer;
  size_t dl_active, dl_max;
  struct sim_dl *dl_wait_head, *dl_wait_tail;

  /* Run control. */
  struct loop_timer end_timer;
  struct loop_timer stop_timer;
  bool stopping;
  bool finished;
  bool timed_out; /* --duration ran out */
  size_t pending_deregister;
  const char *stop_reason;
  int64_t start_ms;
  int64_t start_wall_ms;
  int64_t all_registered_ms; /* -1 until then */
  size_t n_registered;       /* devices that registered at least once */
  size_t n_until_ok;         /* devices meeting --until */
  size_t n_until_needed;     /* devices --until waits for */
  bool until_met;
};

/* fleet.c */
struct sim *sim_new(struct sim_config *cfg, struct loop *loop, char *err,
                    size_t errlen);
/* Starts every device; runs until a stop condition; returns the exit
 * status: 0, 1 on a loop failure, 3 when --duration ran out before the
 * --until condition held. */
int sim_run(struct sim *sim, volatile sig_atomic_t *stop_flag);
void sim_free(struct sim *sim);
/* A new client session on shard to remote (DTLS with the PSK when psk_id
 * is not NULL), its app data set to peer; NULL with a log line. */
coap_session_t *sim_session_open(struct sim_shard *sh,
                                 const coap_address_t *local,
                                 const coap_address_t *remote,
                                 coap_proto_t proto, const char *psk_id,
                                 const uint8_t *key, size_t keylen,
                                 struct sim_peer *peer);
/* Detaches a session now and frees it after the current libcoap call. */
void sim_session_close(struct sim *sim, coap_session_t *s);
/* Sends pdu on s (owned); marks the shard for libcoap's timers. */
int sim_send(struct sim_shard *sh, coap_session_t *s, coap_pdu_t *pdu);
/* The local port of a session, 0 if unknown. */
int sim_session_port(const coap_session_t *s);
void sim_pace_add(struct sim *sim, struct sim_dev *d);
void sim_pace_remove(struct sim *sim, struct sim_dev *d);
/* Re-evaluates the --until condition for d. */
void sim_until_update(struct sim *sim, struct sim_dev *d);
void sim_stop(struct sim *sim, const char *reason);
/* Unix seconds and monotonic ms of the current loop iteration. */
int64_t sim_wall_s(const struct sim *sim);
int64_t sim_now(const struct sim *sim);

/* device.c */
const char *dev_state_name(enum dev_state s);
/* Sets up device idx; d->faults must be set already. */
void dev_init(struct sim *sim, struct sim_dev *d, unsigned idx);
void dev_free(struct sim_dev *d);
/* Boots the device: opens its session and queues the Register. */
void dev_boot(struct sim_dev *d);
/* The pacer let d go: send Register now. */
void dev_register(struct sim_dev *d);
void dev_on_response(struct sim_dev *d, const coap_pdu_t *sent,
                     const coap_pdu_t *rcv);
void dev_on_nack(struct sim_dev *d, const coap_pdu_t *sent,
                 coap_nack_reason_t reason);
/* Something was sent: queue mode keeps the device awake a while longer. */
void dev_uplink(struct sim_dev *d);
/* Opens the session if the device sleeps; false if it cannot talk now. */
bool dev_wake(struct sim_dev *d);
/* Asks for a registration Update, carrying lt and/or b when they changed. */
void dev_request_update(struct sim_dev *d, bool lt, bool b);
void dev_reboot(struct sim_dev *d, enum reboot_kind kind, uint32_t batch);
void dev_disable(struct sim_dev *d);
/* Applies what the AFU state machine asked for, then notifies. */
void dev_afu_changed(struct sim_dev *d);
/* A download of slot ended: result 0 with pkg, or an Update Result. */
void dev_download_finished(struct sim_dev *d, unsigned slot, int result,
                           const struct pkg_info *pkg, const char *why);
/* Sends the configured paths with Send (POST /dp). */
void dev_send(struct sim_dev *d);
/* Deregisters for shutdown; false if there is nothing to wait for. */
bool dev_shutdown(struct sim_dev *d);
/* The content format of the device's payloads when none is asked for. */
uint16_t dev_default_ct(const struct sim_dev *d);
bool dev_has_fault(const struct sim_dev *d, enum sim_fault f);
/* Does the download starting now lose its connection half-way
 * (lost-download, or the first download under flaky-download)? */
bool dev_loses_download(struct sim_dev *d);
/* The AFU instance for a download slot. */
struct afu_inst *dev_slot_inst(struct sim_dev *d, unsigned slot);
unsigned dev_inst_slot(const struct afu_inst *in);
/* The package rules for a slot (the profile may set a SHA-256). */
void dev_pkg_policy(const struct sim_dev *d, unsigned slot,
                    struct pkg_policy *pol);

/* objects.c */
/* A resource the simulated device implements. */
struct sim_res {
  uint16_t oid, rid;
  enum lwm2m_type type;
  uint8_t ops; /* LWM2M_OP_* */
  bool multi;
  uint8_t min_minor; /* exists from LwM2M 1.min_minor on */
};

/* The resource definition if this device implements it, else NULL. */
const struct sim_res *obj_res(const struct sim_dev *d, uint16_t oid,
                              uint16_t rid);
/* True for Integer, Unsigned, Float and Time resources. */
bool obj_res_numeric(const struct sim_res *r);
/* True if p names something that exists on d (any level). */
bool obj_exists(const struct sim_dev *d, const struct lwm2m_path *p);
/*
 * Appends the readable values under p to out. Returns 0, -ENOENT (4.04) or
 * -EPERM (4.05, p is not readable).
 */
int obj_read(struct sim_dev *d, const struct lwm2m_path *p,
             struct lwm2m_records *out);
/*
 * Writes records (decoded under base). replace is PUT. All records are
 * checked before any is applied. Returns 0, -ENOENT, -EPERM or -EINVAL
 * with err.
 */
int obj_write(struct sim_dev *d, const struct lwm2m_path *base,
              const struct lwm2m_records *recs, bool replace, char *err,
              size_t errlen);
/* Executes resource p with its argument text. Same returns. */
int obj_execute(struct sim_dev *d, const struct lwm2m_path *p,
                const char *args, size_t len, char *err, size_t errlen);
/* Discover (link format with attributes) of p, new string; NULL if p does
 * not exist. */
char *obj_discover(struct sim_dev *d, const struct lwm2m_path *p);
/* The Register / Update payload, new string. */
char *obj_register_links(const struct sim_dev *d);
/* Writes a complete package (Write with the whole image) to resource 0. */
int obj_push_whole(struct sim_dev *d, struct afu_inst *in, const uint8_t *data,
                   size_t len, char *err, size_t errlen);
/* Feeds the end of a push (block-wise or whole) to the state machine. */
void obj_push_finish(struct sim_dev *d, struct afu_inst *in,
                     struct pkg_stream *pkg, char *err, size_t errlen);

/* observe.c */
/* Applies Write-Attributes from the Uri-Query options of a request. */
int obs_write_attrs(struct sim_dev *d, const struct lwm2m_path *p,
                    const coap_pdu_t *req, char *err, size_t errlen);
/* The attributes set on exactly p, or NULL. */
const struct sim_attrs *obs_attrs_get(const struct sim_dev *d,
                                      const struct lwm2m_path *p);
/* Starts an observation; returns its first sequence number, or -ENOSPC. */
int obs_add(struct sim_dev *d, const uint8_t *token, size_t token_len,
            const struct lwm2m_path *paths, size_t npaths, bool composite,
            uint16_t ct);
void obs_cancel(struct sim_dev *d, const uint8_t *token, size_t token_len);
/* Marks observations covering p changed. */
void obs_changed(struct sim_dev *d, const struct lwm2m_path *p);
/* Sends due notifications; force ignores pmin (before a reboot). */
void obs_flush(struct sim_dev *d, bool force);
void obs_clear(struct sim_dev *d);
/* Encodes the current value of an observation (or a Read-Composite). */
int obs_encode(struct sim_dev *d, const struct lwm2m_path *paths,
               size_t npaths, bool composite, uint16_t ct, uint8_t **out,
               size_t *outlen);

/* dm.c */
/* The request handler libcoap calls for every method and path. */
void dm_handle(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
               const coap_string_t *query, coap_pdu_t *resp);
void dm_block1_free(struct sim_dev *d);
/*
 * Adds the options and payload of a 2.05 to pdu: Observe (observe >= 0),
 * Content-Format, and Block2 with ETag and Size2 when the payload does not
 * fit one block (req's Block2 picks the block). Returns 0, or -ERANGE when
 * req asks for a block past the end (pdu is then a 4.00).
 */
int dm_add_payload(coap_pdu_t *pdu, const coap_pdu_t *req, int64_t observe,
                   uint16_t ct, const uint8_t *data, size_t len,
                   size_t max_pdu);

/* download.c */
int dl_global_init(struct sim *sim, char *err, size_t errlen);
void dl_global_free(struct sim *sim);
void dl_start(struct sim_dev *d, unsigned slot);
/* Stops a download without reporting a result. */
void dl_abort(struct sim_dev *d, unsigned slot);
void dl_on_response(struct sim_dl *dl, const coap_pdu_t *rcv);
void dl_on_nack(struct sim_dl *dl, coap_nack_reason_t reason);

/* report.c */
void report_print(const struct sim *sim);
int report_write(const struct sim *sim, const char *path, char *err,
                 size_t errlen);

#endif
