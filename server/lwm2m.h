/*
 * lwm2m: the LwM2M data model and its codecs, with no dependency on the
 * rest of the daemon, so the simulator, the unit tests and the fuzzers link
 * them alone (server/liblwm2m.a).
 *
 * Values travel as a flat list of records, one per resource or resource
 * instance, each with its full path: the shape SenML already has, and one
 * every other format (TLV, text, CBOR, LwM2M JSON) converts to and from.
 */
#ifndef FOTAD_LWM2M_H
#define FOTAD_LWM2M_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* CoAP Content-Format numbers used by LwM2M. */
enum {
  LWM2M_CT_TEXT = 0,
  LWM2M_CT_LINK = 40,
  LWM2M_CT_OPAQUE = 42,
  LWM2M_CT_CBOR = 60,
  LWM2M_CT_SENML_JSON = 110,
  LWM2M_CT_SENML_CBOR = 112,
  LWM2M_CT_TLV = 11542,
  LWM2M_CT_OMA_JSON = 11543,
  LWM2M_CT_LWM2M_CBOR = 11544,
  /* Pre-1.0 numbers some old clients still send. */
  LWM2M_CT_OLD_TEXT = 1541,
  LWM2M_CT_OLD_TLV = 1542,
  LWM2M_CT_OLD_JSON = 1543,
  LWM2M_CT_OLD_OPAQUE = 1544,
};

/* Largest id at any path level; 65535 is reserved by the spec. */
#define LWM2M_ID_MAX 65534

/* Room lwm2m_path_format() needs for any path ("/65534/65534/65534/65534"). */
#define LWM2M_PATH_STRLEN 25

/*
 * Limits on untrusted input: decode() refuses a payload above
 * LWM2M_PAYLOAD_MAX bytes (TLV's 24-bit length bounds it anyway; 1 MiB for
 * the JSON and CBOR formats, which are parsed into a tree first) and a body
 * of more than LWM2M_RECORDS_MAX records; encode() refuses to produce more
 * than LWM2M_PAYLOAD_MAX bytes.
 */
#define LWM2M_PAYLOAD_MAX (16u * 1024 * 1024)
#define LWM2M_RECORDS_MAX 65536

/* A path /O/I/R/RI of len levels (0 is the root "/"). */
struct lwm2m_path {
  uint16_t id[4]; /* oid, iid, rid, riid */
  uint8_t len;
};

enum lwm2m_type {
  LWM2M_T_NONE = 0, /* executable resource, or type unknown */
  LWM2M_T_STRING,
  LWM2M_T_INTEGER,
  LWM2M_T_UNSIGNED,
  LWM2M_T_FLOAT,
  LWM2M_T_BOOLEAN,
  LWM2M_T_OPAQUE,
  LWM2M_T_TIME,
  LWM2M_T_OBJLNK,
  LWM2M_T_CORELNK,
};

struct lwm2m_value {
  enum lwm2m_type type;
  union {
    int64_t i;  /* INTEGER, TIME (Unix seconds) */
    uint64_t u; /* UNSIGNED */
    double f;   /* FLOAT */
    bool b;     /* BOOLEAN */
    struct {
      uint16_t oid, iid;
    } lnk; /* OBJLNK */
    struct {
      uint8_t *data; /* owned; NUL-terminated for STRING and CORELNK */
      size_t len;
    } bytes; /* STRING, OPAQUE, CORELNK */
  } u;
};

/* One resource (len 3) or resource instance (len 4) value. */
struct lwm2m_record {
  struct lwm2m_path path;
  struct lwm2m_value v;
  int64_t time; /* Unix ms of the SenML time, or 0 if none */
};

/* A growable list of records; owns their string and opaque data. */
struct lwm2m_records {
  struct lwm2m_record *v;
  size_t len, cap;
};

/* Paths. */
/* Parses "/3/0/1" (also "/", "" and a trailing '/'). Returns 0 or -EINVAL. */
int lwm2m_path_parse(const char *s, struct lwm2m_path *p);
/* Writes "/3/0/1" into buf. */
void lwm2m_path_format(const struct lwm2m_path *p, char *buf, size_t len);
/* True if p equals prefix or lies under it. */
bool lwm2m_path_under(const struct lwm2m_path *p,
                      const struct lwm2m_path *prefix);
int lwm2m_path_cmp(const struct lwm2m_path *a, const struct lwm2m_path *b);

/* Records. */
void lwm2m_records_init(struct lwm2m_records *r);
void lwm2m_records_free(struct lwm2m_records *r);
/*
 * Appends a record (time 0), taking ownership of v's bytes; returns it,
 * borrowed and valid until the list next grows.
 */
struct lwm2m_record *lwm2m_records_add(struct lwm2m_records *r,
                                       const struct lwm2m_path *p,
                                       const struct lwm2m_value *v);
/* Deep copy / release of a single value's bytes. */
void lwm2m_value_copy(struct lwm2m_value *dst, const struct lwm2m_value *src);
void lwm2m_value_clear(struct lwm2m_value *v);
/*
 * Sets v to a STRING, OPAQUE or CORELNK value holding a new NUL-terminated
 * copy of data (v's old bytes are not freed).
 */
void lwm2m_value_set_bytes(struct lwm2m_value *v, enum lwm2m_type type,
                           const void *data, size_t len);
/* "String", "Unsigned Integer"... as in OMA DDF files; "none" for NONE. */
const char *lwm2m_type_name(enum lwm2m_type t);
/* Sorts by path (stable for equal paths). */
void lwm2m_records_sort(struct lwm2m_records *r);

/*
 * The object model: which resources an object has and their types, needed
 * to decode TLV and to turn JSON from the API into typed values.
 */
enum {
  LWM2M_OP_R = 1,
  LWM2M_OP_W = 2,
  LWM2M_OP_E = 4,
};

struct lwm2m_res_def {
  uint16_t id;
  char *name;
  enum lwm2m_type type;
  bool multiple;
  bool mandatory;
  uint8_t ops; /* LWM2M_OP_* */
};

struct lwm2m_obj_def {
  uint16_t id;
  char *name;
  char *version; /* "1.0" */
  bool multiple;
  bool mandatory;
  size_t nres;
  struct lwm2m_res_def *res; /* sorted by id */
};

struct lwm2m_model;

/* Returns a new model holding the built-in objects 0, 1, 3, 4, 5, 33629. */
struct lwm2m_model *lwm2m_model_new(void);
void lwm2m_model_free(struct lwm2m_model *m);
/*
 * Loads every *.xml (OMA DDF) and *.json object definition in dir, in name
 * order; a later definition of the same object replaces the earlier or
 * built-in one. All or nothing: on any error m is left unchanged.
 * Returns the number of objects loaded, or -EINVAL with err naming file and
 * reason (a negative errno if dir or a file cannot be read).
 */
int lwm2m_model_load_dir(struct lwm2m_model *m, const char *dir, char *err,
                         size_t errlen);
/*
 * Loads one OMA DDF XML (may hold several objects) or JSON definition (one
 * object or an array; see docs/object-model.md) from a buffer, telling
 * them apart by the first non-blank byte; name is used in messages. Same
 * returns as lwm2m_model_load_dir(), and m is unchanged on error.
 */
int lwm2m_model_load_buf(struct lwm2m_model *m, const char *name,
                         const char *buf, size_t len, char *err,
                         size_t errlen);
/*
 * Borrowed definitions, or NULL when unknown (or m is NULL: every function
 * taking a model accepts NULL and then treats all resources as unknown).
 * They stay valid until the next load into m.
 */
const struct lwm2m_obj_def *lwm2m_model_obj(const struct lwm2m_model *m,
                                            uint16_t oid);
const struct lwm2m_res_def *lwm2m_model_res(const struct lwm2m_model *m,
                                            uint16_t oid, uint16_t rid);
/* The i-th object in id order (borrowed), or NULL past the end. */
const struct lwm2m_obj_def *lwm2m_model_obj_at(const struct lwm2m_model *m,
                                               size_t i);
/* A new JSON object in the form lwm2m_model_load_buf() reads. */
json_t *lwm2m_obj_def_to_json(const struct lwm2m_obj_def *o);

/*
 * Codecs. decode() appends the records found in buf to out; base is the
 * path the request was made on (TLV and text need it; records outside it
 * are rejected). Values are typed from the model m; a resource TLV cannot
 * type is kept as OPAQUE. Malformed input returns -EINVAL (-EMSGSIZE above
 * the limits, -ENOTSUP for a format not decodable here) with err saying
 * what and where; out is then left as it was.
 * encode() writes the records in one format into a new buffer (*out, free
 * it with free()). Every record must lie under base and be a resource or
 * resource instance. Text, opaque and CBOR (60) take exactly one record.
 * Returns 0, -EINVAL (err says why), -EMSGSIZE or -ENOTSUP.
 */
int lwm2m_decode(uint16_t ct, const uint8_t *buf, size_t len,
                 const struct lwm2m_path *base, const struct lwm2m_model *m,
                 struct lwm2m_records *out, char *err, size_t errlen);
int lwm2m_encode(uint16_t ct, const struct lwm2m_path *base,
                 const struct lwm2m_records *in, const struct lwm2m_model *m,
                 uint8_t **out, size_t *outlen, char *err, size_t errlen);
/*
 * True if this build can encode and decode the format through
 * lwm2m_decode() and lwm2m_encode() (link format, 40, has its own
 * functions and gives false).
 */
bool lwm2m_ct_supported(uint16_t ct);
/* "application/vnd.oma.lwm2m+tlv" and so on; "?" if unknown. */
const char *lwm2m_ct_name(uint16_t ct);

/*
 * Paths-only SenML bodies (Read-Composite / Observe-Composite requests):
 * encode a list of paths (0, -ENOTSUP for a ct other than SenML JSON or
 * CBOR, -EMSGSIZE), or decode one into paths (*paths is a new array, free
 * it with free(); values in the records are ignored).
 */
int lwm2m_encode_paths(uint16_t ct, const struct lwm2m_path *paths, size_t n,
                       uint8_t **out, size_t *outlen);
int lwm2m_decode_paths(uint16_t ct, const uint8_t *buf, size_t len,
                       struct lwm2m_path **paths, size_t *n, char *err,
                       size_t errlen);

/* CoRE Link Format (RFC 6690) as LwM2M uses it. */
struct lwm2m_link_attr {
  char *name;
  char *value; /* unquoted; NULL for a bare attribute ("Q", "obs") */
};

struct lwm2m_link {
  char *uri;              /* as written between < and > */
  struct lwm2m_path path; /* valid when is_path */
  bool is_path;           /* uri is a /O[/I[/R[/RI]]] path */
  struct lwm2m_link_attr *attrs;
  size_t nattrs;
};

struct lwm2m_links {
  struct lwm2m_link *v;
  size_t len;
};

/*
 * Parses a link-format payload into out (overwritten, release it with
 * lwm2m_links_free()); "</>" gives is_path with path.len 0. Returns 0, or
 * -EINVAL with err on malformed input (out then holds no links).
 */
int lwm2m_links_parse(const char *buf, size_t len, struct lwm2m_links *out,
                      char *err, size_t errlen);
void lwm2m_links_free(struct lwm2m_links *l);
/*
 * The attribute's value (borrowed) or NULL; *present (may be NULL) tells a
 * bare attribute apart from a missing one.
 */
const char *lwm2m_link_attr(const struct lwm2m_link *l, const char *name,
                            bool *present);
/*
 * Writes links in link format into a new NUL-terminated string (free()
 * it); NULL only if it would pass LWM2M_PAYLOAD_MAX bytes.
 */
char *lwm2m_links_format(const struct lwm2m_links *l);

/*
 * Execute arguments (the TS grammar: digit[='value'] joined by ','). Fills
 * err and returns -EINVAL when s is not valid; an empty s is valid.
 */
int lwm2m_exec_args_check(const char *s, size_t len, char *err, size_t errlen);

/*
 * JSON views for the REST API: records as {"/3/0/1": value, ...} (a new
 * reference). Strings and Corelnk are JSON strings (invalid UTF-8 replaced
 * by U+FFFD), Opaque standard padded base64, Objlnk "3:0", Integer, Time
 * and Unsigned numbers (an Unsigned above INT64_MAX becomes a real),
 * Float a real (NaN and infinities null), Boolean true/false.
 * from_json() reads the same shape back, typing each value from the model
 * (unknown resources from the JSON type; a string is then a String). Keys
 * are absolute paths under base or relative to it ("1", "7/0"); each must
 * name a resource or resource instance. Appends to out; -EINVAL with err
 * naming the key, out unchanged, on error.
 */
json_t *lwm2m_records_to_json(const struct lwm2m_records *r);
int lwm2m_records_from_json(const json_t *j, const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen);

#endif
