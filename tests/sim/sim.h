/*
 * fotad-sim: the pure parts of the fleet simulator, with no networking,
 * so the unit tests drive them directly (tests/unit/test_sim.c).
 *
 *  - afu: the state machine of object 33629 (Advanced Firmware Update) and
 *    of object 5 (Firmware Update), per instance, as the spec's sections
 *    1.5 to 1.7 describe it. Events come in as function calls with the
 *    current time; what the device must do next (start or abort a
 *    download, install a batch) comes back in struct afu_effects.
 *  - pkg: a streaming package checker (size, SHA-256, MCUboot header and
 *    image hash TLV, version and dependencies) and the rules that say which
 *    version a package installs.
 *  - small parsers: endpoint and PSK patterns, fault specifications, the
 *    --until condition, version comparison.
 *
 * Networking lives behind sim_int.h.
 */
#ifndef FOTAD_SIM_H
#define FOTAD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/sha256.h>

/* Instances of 33629 a device may have; ids are 0..n-1 (bit i in masks). */
#define AFU_MAX_INST 16
/* The pseudo-index object 5 takes in instance masks. */
#define AFU_FW_INDEX 31
#define AFU_FW_BIT (UINT32_C(1) << AFU_FW_INDEX)
/* String resources: URI 0..255 characters, names and versions shorter. */
#define AFU_URI_MAX 256
#define AFU_NAME_MAX 64
#define AFU_VER_MAX 48
/* Dependencies one package may declare. */
#define AFU_MAX_DEPS 4

#define AFU_OID 33629
#define FW_OID 5

enum afu_state {
  AFU_IDLE = 0,
  AFU_DOWNLOADING = 1,
  AFU_DOWNLOADED = 2,
  AFU_UPDATING = 3,
};

/* Update Result (/5), spec 1.4. */
enum afu_result {
  AFU_R_INITIAL = 0,
  AFU_R_SUCCESS = 1,
  AFU_R_NO_FLASH = 2,
  AFU_R_NO_RAM = 3,
  AFU_R_CONN_LOST = 4,
  AFU_R_INTEGRITY = 5,
  AFU_R_UNSUPPORTED = 6,
  AFU_R_INVALID_URI = 7,
  AFU_R_FAILED = 8,
  AFU_R_BAD_PROTOCOL = 9,
  AFU_R_CANCELLED = 10,
  AFU_R_DEFERRED = 11,
  AFU_R_CONFLICT = 12,
  AFU_R_DEPENDENCY = 13,
};

/* Firmware Update Protocol Support (/8) values, as bits. */
enum afu_proto {
  AFU_PROTO_COAP = 0,
  AFU_PROTO_COAPS = 1,
  AFU_PROTO_HTTP = 2,
  AFU_PROTO_HTTPS = 3,
  AFU_PROTO_COAP_TCP = 4,
  AFU_PROTO_COAPS_TCP = 5,
};
/* The schemes this simulator can actually download from. */
#define AFU_PROTO_IMPLEMENTED                                                 \
  ((1u << AFU_PROTO_COAP) | (1u << AFU_PROTO_COAPS) |                         \
   (1u << AFU_PROTO_HTTP) | (1u << AFU_PROTO_HTTPS))

/* Firmware Update Delivery Method (/9). */
enum afu_delivery {
  AFU_PULL = 0,
  AFU_PUSH = 1,
  AFU_BOTH = 2,
};

/* Resource ids of object 33629 (object 5 shares 0..13). */
enum {
  AFU_RES_PACKAGE = 0,
  AFU_RES_URI = 1,
  AFU_RES_UPDATE = 2,
  AFU_RES_STATE = 3,
  AFU_RES_RESULT = 5,
  AFU_RES_PKG_NAME = 6,
  AFU_RES_PKG_VERSION = 7,
  AFU_RES_PROTOCOLS = 8,
  AFU_RES_DELIVERY = 9,
  AFU_RES_CANCEL = 10,
  AFU_RES_SEVERITY = 11,
  AFU_RES_LAST_CHANGE = 12,
  AFU_RES_MAX_DEFER = 13,
  AFU_RES_COMPONENT = 14,
  AFU_RES_VERSION = 15,
  AFU_RES_LINKED = 16,
  AFU_RES_CONFLICTING = 17,
};

/*
 * Where implementations differ (spec 1.5) the simulator can behave either
 * way, so the server is tested against both.
 */
struct afu_quirks {
  /*
   * An Execute Update whose argument names an instance that is not
   * Downloaded: false (default) accepts it with 2.04 and fails with
   * Result 13 as the TS words it; true refuses it with 4.05 as Anjay does.
   */
  bool strict_update_args;
  /* A failed installation: false keeps Downloaded (Anjay), true -> Idle. */
  bool install_fail_idle;
};

/* A dependency: component iid must run at least min_version. */
struct afu_dep {
  uint16_t iid;
  char min_version[AFU_VER_MAX];
};

/* What a checked package is (filled by pkg_stream_finish()). */
struct pkg_info {
  size_t size;
  char name[AFU_NAME_MAX];
  char version[AFU_VER_MAX];
  bool mcuboot;
  uint8_t sha256[32]; /* of the whole file */
  /* Other instances the package also carries (multi-component), with the
   * version each of them installs. */
  uint32_t covers;
  char cover_version[AFU_MAX_INST][AFU_VER_MAX];
  size_t ndeps;
  struct afu_dep deps[AFU_MAX_DEPS];
};

struct afu_inst {
  uint16_t index; /* the instance id, or AFU_FW_INDEX for /5/0 */
  bool obj5;
  char name[AFU_NAME_MAX];       /* /14 */
  char version[AFU_VER_MAX];     /* /15 (for object 5: mirrors /3/0/3) */
  enum afu_state state;          /* /3 */
  int result;                    /* /5 */
  char uri[AFU_URI_MAX];         /* /1 */
  char pkg_name[AFU_NAME_MAX];   /* /6 */
  char pkg_version[AFU_VER_MAX]; /* /7 */
  uint32_t protocols;            /* /8, bit per enum afu_proto */
  int delivery;                  /* /9 */
  int severity;                  /* /11: 0 critical, 1 mandatory, 2 optional */
  int64_t last_change;           /* /12, Unix seconds */
  int64_t max_defer;             /* /13, seconds; 0 forbids deferral */
  uint32_t linked;               /* /16, bit per instance */
  uint32_t conflicting;          /* /17, bit per instance */

  /* Device-side state that is not a resource. */
  bool push;                     /* the current download is a push */
  char new_version[AFU_VER_MAX]; /* what Update installs */
  size_t ndeps;                  /* the downloaded package's dependencies */
  struct afu_dep deps[AFU_MAX_DEPS];
  uint32_t dirty; /* resources changed since afu_take_dirty(), bit per rid */
};

/* What the device layer must do after an event. Masks of instance bits. */
struct afu_effects {
  uint32_t download; /* start the pull download of /1 */
  uint32_t abort;    /* stop any download, forget the package */
  uint32_t install;  /* reboot and install this batch */
  bool defer_armed;  /* a deferral started: call afu_defer_expired() at
                        afu.defer_until */
};

/* How an installation ends, decided by the device layer (faults). */
enum afu_outcome {
  AFU_OUT_SUCCESS,
  AFU_OUT_FAILED,   /* Result 8 */
  AFU_OUT_ROLLBACK, /* silent: old version back, Idle, Result 0 */
};

struct afu {
  const char *tag; /* for log lines (the endpoint name); borrowed */
  int minor;       /* LwM2M 1.minor: object 5 in 1.0 has no Results 10, 11 */
  size_t n;
  struct afu_inst inst[AFU_MAX_INST];
  bool has_fw; /* object 5 present */
  struct afu_inst fw;
  struct afu_quirks quirks;

  /* Fault switches the device layer sets; read by the state machine. */
  bool fault_conflict;   /* a finished download reports Result 12 */
  bool fault_dependency; /* Execute Update reports Result 13 */
  bool user_defers;      /* the "user" postpones every deferrable update */

  uint32_t deferred;     /* batch waiting for the user, 0 if none */
  int64_t defer_until;   /* Unix seconds when it installs anyway */
  struct afu_effects fx; /* accumulated until afu_take_effects() */
};

/* "idle", "downloading", "downloaded", "updating". */
const char *afu_state_name(enum afu_state s);
/* A short text for an Update Result ("success", "integrity"...). */
const char *afu_result_name(int result);

/* Starts an empty device; tag is borrowed for log lines. */
void afu_init(struct afu *a, const char *tag, int minor);
/*
 * Adds the next 33629 instance (Idle, Result 0) with a component name and
 * current version; protocols, delivery, severity and max_defer take the
 * given values. Returns it, or NULL when AFU_MAX_INST are in use.
 */
struct afu_inst *afu_add(struct afu *a, const char *name, const char *version,
                         uint32_t protocols, int delivery, int severity,
                         int64_t max_defer, int64_t now);
/* Enables object 5, which drives the main component (instance 0). */
void afu_enable_fw(struct afu *a, uint32_t protocols, int delivery,
                   int64_t now);
/* Instance by object and instance id, or NULL. */
struct afu_inst *afu_get(struct afu *a, int oid, int iid);
/* Instance by mask index (AFU_FW_INDEX for object 5), or NULL. */
struct afu_inst *afu_by_index(struct afu *a, unsigned index);

/*
 * Events. Each returns 0 when the CoAP request that caused it succeeds
 * (2.04), -EINVAL for 4.00 (bad value), -EPERM for 4.05 (not allowed in
 * this state or on this device); err says why. A refused event changes
 * nothing.
 */
/* Write /1. Empty resets; otherwise starts a pull in Idle. */
int afu_write_uri(struct afu *a, struct afu_inst *in, const char *uri,
                  int64_t now, char *err, size_t errlen);
/* First block of a push Write to /0 (Idle -> Downloading). */
int afu_push_begin(struct afu *a, struct afu_inst *in, int64_t now, char *err,
                   size_t errlen);
/* Write NULL to /0 or "" to /1: back to Idle with Result 0. */
int afu_reset(struct afu *a, struct afu_inst *in, int64_t now, char *err,
              size_t errlen);
/* The download (pull or push) failed with a Result (2..7, 9). */
void afu_download_failed(struct afu *a, struct afu_inst *in, int result,
                         int64_t now);
/* The download finished and the package passed its checks. */
void afu_download_done(struct afu *a, struct afu_inst *in,
                       const struct pkg_info *pkg, int64_t now);
/* Execute /2 with its argument text (may be empty). */
int afu_exec_update(struct afu *a, struct afu_inst *in, const char *args,
                    size_t len, int64_t now, char *err, size_t errlen);
/* Execute /10. */
int afu_cancel(struct afu *a, struct afu_inst *in, int64_t now, char *err,
               size_t errlen);
/* Write /11 and /13. */
int afu_write_severity(struct afu *a, struct afu_inst *in, int64_t v,
                       char *err, size_t errlen);
int afu_write_max_defer(struct afu *a, struct afu_inst *in, int64_t v,
                        char *err, size_t errlen);
/* The deferral period ran out: install the deferred batch now. */
void afu_defer_expired(struct afu *a, int64_t now);
/* The device rebooted after installing batch; outcome says how it went. */
void afu_install_done(struct afu *a, uint32_t batch, enum afu_outcome outcome,
                      int64_t now);
/*
 * The device rebooted for another reason: a download in progress is lost
 * (Result 4); Downloaded packages survive in flash.
 */
void afu_rebooted(struct afu *a, int64_t now);

/* Returns and clears the accumulated effects. */
struct afu_effects afu_take_effects(struct afu *a);
/* Returns and clears the changed-resource mask of one instance. */
uint32_t afu_take_dirty(struct afu_inst *in);

/*
 * Parses the argument of Execute Update on instance self: fills *batch
 * with the instances named by 0='</33629/N>,...' plus self, or sets *only
 * when the argument is a bare 0. An empty argument gives *batch = 0 and
 * *only = false. Returns 0 or -EINVAL with err.
 */
int afu_parse_update_args(const struct afu *a, unsigned self, const char *args,
                          size_t len, uint32_t *batch, bool *only, char *err,
                          size_t errlen);

/*
 * Packages. A download or push is fed through pkg_stream as it arrives,
 * so no device keeps a whole image in memory: the stream hashes the whole
 * file, and for MCUboot images the hash region, and keeps only the header
 * and the TLV areas.
 */
#define PKG_TAIL_MAX 8192 /* TLV bytes kept after the image body */

enum pkg_version_from {
  PKG_VER_AUTO,     /* ?v= query, then file name, then MCUboot header */
  PKG_VER_URI,      /* ?v= query only */
  PKG_VER_FILENAME, /* NAME-VERSION.EXT file name only */
  PKG_VER_MCUBOOT,  /* MCUboot header only */
  PKG_VER_FIXED,    /* always pkg_policy.fixed_version */
};

struct pkg_policy {
  enum pkg_version_from version_from;
  char fixed_version[AFU_VER_MAX];
  bool require_mcuboot; /* other packages are "unsupported" (Result 6) */
  bool has_sha256;      /* the profile names the expected SHA-256 */
  uint8_t sha256[32];
  size_t max_size; /* flash for the package; larger is Result 2 */
};

struct pkg_stream {
  size_t len;
  uint8_t hdr[32];
  bool hash_all;              /* the whole-file SHA-256 is wanted */
  mbedtls_sha256_context all; /* whole file */
  mbedtls_sha256_context img; /* MCUboot hash region */
  bool mcuboot;
  size_t body_end; /* hdr_size + img_size */
  size_t hash_end; /* body_end + protected TLV size */
  uint8_t *tail;   /* bytes from body_end on, at most PKG_TAIL_MAX */
  size_t tail_len;
  bool tail_overflow;
};

/*
 * Starts a stream. hash_all asks for the SHA-256 of the whole file, which
 * costs more than the rest of a download; pkg_needs_sha256() tells when a
 * check needs it.
 */
void pkg_stream_init(struct pkg_stream *s, bool hash_all);
bool pkg_needs_sha256(const char *uri, const struct pkg_policy *pol);
/* Feeds the next bytes. Returns 0, or AFU_R_NO_FLASH beyond max_size. */
int pkg_stream_feed(struct pkg_stream *s, const uint8_t *data, size_t len,
                    size_t max_size);
/*
 * Checks the complete package downloaded from uri (NULL for a push) and
 * fills out (sha256 is zero unless the stream hashed the whole file).
 * Returns 0 (accepted) or the Update Result that rejects it (2, 5, 6, or
 * 7 for a malformed query parameter), with err saying why.
 */
int pkg_stream_finish(struct pkg_stream *s, const char *uri,
                      const struct pkg_policy *pol, struct pkg_info *out,
                      char *err, size_t errlen);
void pkg_stream_free(struct pkg_stream *s);
/* All of the above for a package in one buffer. */
int pkg_check(const uint8_t *data, size_t len, const char *uri,
              const struct pkg_policy *pol, struct pkg_info *out, char *err,
              size_t errlen);

/*
 * Splits a download URI into the scheme's protocol (enum afu_proto) and
 * checks it has a host. Returns the protocol, -EPROTONOSUPPORT for an
 * unknown scheme, or -EINVAL for a URI that is not one.
 */
int pkg_uri_proto(const char *uri);
/* Copies the value of query parameter key of uri into buf; false if none. */
bool pkg_uri_param(const char *uri, const char *key, char *buf, size_t len);

/*
 * Compares dotted versions ("1.10.2" > "1.9"): numeric parts numerically,
 * others as text. Returns <0, 0, >0.
 */
int sim_version_cmp(const char *a, const char *b);

/*
 * Patterns with one integer conversion (%d, %5d, %05d, %x, %08X, %u) and
 * %% escapes, e.g. "sim-%05d"; with optional, the conversion may be left
 * out (the same text for every device). Returns 0 or -EINVAL with err.
 */
int sim_pattern_check(const char *pattern, bool optional, char *err,
                      size_t errlen);
/*
 * Formats a checked pattern with n into buf, always NUL-terminated.
 * Returns 0, or -ENOSPC when it had to cut the text.
 */
int sim_pattern_format(const char *pattern, long n, char *buf, size_t len);
/* Decodes hex into out; returns the byte count or -EINVAL. */
int sim_hex_decode(const char *hex, uint8_t *out, size_t outlen);

/* Fault kinds (--fault KIND:SPEC). */
enum sim_fault {
  FAULT_LOST_DOWNLOAD,  /* connection lost mid-download: Result 4 */
  FAULT_INTEGRITY,      /* package check fails: Result 5 */
  FAULT_UNSUPPORTED,    /* package type refused: Result 6 */
  FAULT_INSTALL_FAIL,   /* installation fails: Result 8 */
  FAULT_ROLLBACK,       /* silently comes back with the old version */
  FAULT_NO_RETURN,      /* never comes back after Update */
  FAULT_REBOOT_LOOP,    /* keeps rebooting after Update */
  FAULT_CONFLICT,       /* Result 12 when the download completes */
  FAULT_DEPENDENCY,     /* Result 13 on Execute Update */
  FAULT_SLOW_DOWNLOAD,  /* throttled download */
  FAULT_LOST_NOTIFY,    /* notifications are never sent */
  FAULT_NAT_REBIND,     /* new source port mid-update */
  FAULT_OFFLINE,        /* offline for longer than the lifetime */
  FAULT_DEFER,          /* the user postpones deferrable updates */
  FAULT_FLAKY_DOWNLOAD, /* the first download is lost: Result 4 once */
  FAULT_COUNT
};

/* Names as used on the command line, "lost-download" etc. */
const char *sim_fault_name(enum sim_fault f);
/* One line describing the fault, for --help. */
const char *sim_fault_help(enum sim_fault f);
int sim_fault_parse(const char *name, size_t len, enum sim_fault *out);
/* Faults that keep a device from ever finishing an update. */
bool sim_fault_is_failure(enum sim_fault f);

/* A parsed --fault: a fraction of the fleet or a list of endpoints. */
struct sim_fault_spec {
  enum sim_fault kind;
  double fraction;  /* when nendpoints == 0 */
  char **endpoints; /* owned */
  size_t nendpoints;
};

/* Parses "KIND:FRACTION" or "KIND:EP,EP,...". Returns 0 or -EINVAL. */
int sim_fault_spec_parse(const char *s, struct sim_fault_spec *out, char *err,
                         size_t errlen);
void sim_fault_spec_free(struct sim_fault_spec *f);
/*
 * Picks round(fraction * count) distinct devices out of count, the same
 * ones for the same seed and kind, and sets their bits in pick (a byte per
 * device, 1 when chosen).
 */
void sim_fault_pick(double fraction, size_t count, uint64_t seed,
                    enum sim_fault kind, uint8_t *pick);

/* --until: all devices registered, or all updated (optionally to a
 * version, optionally of one component). */
enum sim_until_kind {
  UNTIL_NONE,
  UNTIL_ALL_REGISTERED,
  UNTIL_ALL_UPDATED,
};

struct sim_until {
  enum sim_until_kind kind;
  char component[AFU_NAME_MAX]; /* empty: any component */
  char version[AFU_VER_MAX];    /* empty: any new version */
};

/* Parses "all-registered", "all-updated", "all-updated:1.2",
 * "all-updated:modem=2.2". Returns 0 or -EINVAL. */
int sim_until_parse(const char *s, struct sim_until *out, char *err,
                    size_t errlen);

/* Parses a rate "N", "N/s", "N/m". Returns 0 or -EINVAL; *per_s > 0. */
int sim_rate_parse(const char *s, double *per_s, char *err, size_t errlen);

/* Parses "name=version,name=version". Fills at most max pairs of newly
 * allocated strings. Returns the count or -EINVAL with err. */
int sim_components_parse(const char *s, char **names, char **versions,
                         size_t max, char *err, size_t errlen);

#endif
