/*
 * lwm2m internals shared by the lwm2m_*.c files: the error helper, a
 * bounded output buffer, base64, number and Objlnk text forms, the
 * model-typed conversion of numbers, the per-format codec entry points and
 * the CBOR loader that makes libcbor safe on untrusted input.
 */
#ifndef FOTAD_LWM2M_INT_H
#define FOTAD_LWM2M_INT_H

#include "server/lwm2m.h"

#include <cbor.h>

#include "common/common.h"

/* Deepest CBOR nesting any LwM2M format needs, with room to spare. */
#define LWM2M_CBOR_DEPTH_MAX 16
/*
 * The JSON and CBOR formats are parsed into a tree (jansson, libcbor)
 * before they are read, at tens of bytes per item: their payloads get a
 * smaller limit than TLV's, and CBOR a cap on data items, to bound that.
 */
#define LWM2M_TREE_PAYLOAD_MAX (1024 * 1024)
#define LWM2M_CBOR_ITEMS_MAX (256 * 1024)

/* Fills err (if not NULL) like snprintf. */
void lwm2m_errf(char *err, size_t errlen, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* A growable output buffer that refuses to grow past LWM2M_PAYLOAD_MAX. */
struct lwm2m_buf {
  uint8_t *data;
  size_t len, cap;
};

/* Append bytes; -EMSGSIZE when the buffer would pass the limit. */
int lwm2m_buf_put(struct lwm2m_buf *b, const void *p, size_t n);
int lwm2m_buf_putc(struct lwm2m_buf *b, uint8_t c);
/* Appends one CBOR head written by a libcbor cbor_encode_* call. */
int lwm2m_buf_cbor_uint(struct lwm2m_buf *b, uint64_t v);
int lwm2m_buf_cbor_int(struct lwm2m_buf *b, int64_t v);
int lwm2m_buf_cbor_text(struct lwm2m_buf *b, const void *p, size_t n);
int lwm2m_buf_cbor_bytes(struct lwm2m_buf *b, const void *p, size_t n);
int lwm2m_buf_cbor_float(struct lwm2m_buf *b, double f);
int lwm2m_buf_cbor_bool(struct lwm2m_buf *b, bool v);
int lwm2m_buf_cbor_array(struct lwm2m_buf *b, size_t n);
int lwm2m_buf_cbor_map(struct lwm2m_buf *b, size_t n);
void lwm2m_buf_free(struct lwm2m_buf *b);

/*
 * Base64: url selects base64url without padding (SenML JSON), otherwise
 * the standard alphabet with padding. Encoding returns a new string.
 * Decoding accepts exactly that alphabet, padding optional for the
 * standard one and refused for url; -EINVAL on anything else, with the
 * offset of the bad character in *bad.
 */
char *lwm2m_base64_encode(const uint8_t *p, size_t n, bool url);
int lwm2m_base64_decode(const char *s, size_t n, bool url, uint8_t **out,
                        size_t *outlen, size_t *bad);

/* Strict text forms: whole string, no blanks, no sign on unsigned. */
int lwm2m_parse_u64(const char *s, size_t n, uint64_t *out);
int lwm2m_parse_i64(const char *s, size_t n, int64_t *out);
int lwm2m_parse_double(const char *s, size_t n, double *out);
/* "OID:IID", each 0..65535. */
int lwm2m_parse_objlnk(const char *s, size_t n, uint16_t *oid, uint16_t *iid);
/* Shortest decimal form that reads back as the same double. */
void lwm2m_format_double(double f, char *buf, size_t len);
/* True if f survives a round trip through a 32-bit float. */
bool lwm2m_float_fits_single(double f);
bool lwm2m_utf8_valid(const uint8_t *p, size_t n);
/* Length of the valid UTF-8 sequence at p (n > 0 bytes left), or 0. */
size_t lwm2m_utf8_seq(const uint8_t *p, size_t n);
/*
 * Copies untrusted bytes into an error message: printable ASCII only
 * (anything else becomes '?', so the text is safe in a JSON body), cut
 * with "..." to fit buf.
 */
void lwm2m_snippet(const void *p, size_t n, char *buf, size_t len);

/* Moves every record of src to the end of dst, leaving src empty. */
void lwm2m_records_move(struct lwm2m_records *dst, struct lwm2m_records *src);

/* The model's definition of a path's resource, or NULL when unknown. */
const struct lwm2m_res_def *lwm2m_res_for(const struct lwm2m_model *m,
                                          const struct lwm2m_path *p);

/*
 * A number as a format carried it. lwm2m_num_to_value() turns it into the
 * model's type want (NONE: INTEGER or FLOAT by the number's own kind), or
 * fills err ("<where>: ...") and returns -EINVAL when it does not fit.
 */
enum lwm2m_num_kind {
  LWM2M_NUM_INT,
  LWM2M_NUM_UINT, /* only for values above INT64_MAX */
  LWM2M_NUM_FLOAT,
};

struct lwm2m_num {
  enum lwm2m_num_kind kind;
  int64_t i;
  uint64_t u;
  double f;
};

int lwm2m_num_to_value(const struct lwm2m_num *n, enum lwm2m_type want,
                       struct lwm2m_value *v, const char *where, char *err,
                       size_t errlen);

/*
 * Checks what every encoder needs: each record lies under base and names
 * a resource or resource instance with a value. prefix starts messages.
 */
int lwm2m_encode_check(const char *prefix, const struct lwm2m_path *base,
                       const struct lwm2m_records *in, char *err,
                       size_t errlen);
/* A new array of pointers to the records of in, sorted by path (stable). */
const struct lwm2m_record **
lwm2m_records_sorted(const struct lwm2m_records *in);

/*
 * Parses one CBOR data item filling all of buf, after a streaming pass
 * with libcbor's allocation-free decoder has checked that nesting stays
 * within LWM2M_CBOR_DEPTH_MAX and no array or map claims more elements
 * than bytes remain. That keeps cbor_load() from allocating for huge
 * claimed counts and its recursive release from running deep. Returns a
 * new item (cbor_decref() it), or NULL with err prefixed by prefix.
 */
cbor_item_t *lwm2m_cbor_load(const char *prefix, const uint8_t *buf,
                             size_t len, char *err, size_t errlen);
/* An item's text or byte string contents joined into a new buffer. */
uint8_t *lwm2m_cbor_string(const cbor_item_t *it, size_t *len);
/* Reads an integer or float item (tags removed); -EINVAL otherwise. */
int lwm2m_cbor_num(const cbor_item_t *it, struct lwm2m_num *n);
/*
 * Converts a CBOR value to the model's type want (NONE: by the item's own
 * type): numbers, text (String, Corelnk, Objlnk "OID:IID"), bytes
 * (Opaque), booleans; tag 1 (epoch time) around a Time is accepted.
 */
int lwm2m_cbor_to_value(const cbor_item_t *it, enum lwm2m_type want,
                        struct lwm2m_value *v, const char *where, char *err,
                        size_t errlen);
/* cbor_is_bool() that does not assert on a float. */
bool lwm2m_cbor_is_bool(const cbor_item_t *it);
/*
 * Appends one value in CBOR (Objlnk as text "OID:IID"); -EILSEQ for a
 * String or Corelnk that is not UTF-8, -EMSGSIZE past the limit.
 */
int lwm2m_cbor_put_value(struct lwm2m_buf *b, const struct lwm2m_value *v);

/*
 * SenML-shaped records, shared by SenML JSON, SenML CBOR and OMA LwM2M
 * JSON: each decoder fills one lwm2m_senml_rec per record (owned copies)
 * and lwm2m_senml_apply() resolves the name, types the value from the
 * model and appends it to out (or, for paths-only bodies, to paths).
 */
enum lwm2m_senml_kind {
  LWM2M_SV_NONE,
  LWM2M_SV_NUM,  /* v */
  LWM2M_SV_STR,  /* vs (sv in OMA JSON) */
  LWM2M_SV_BOOL, /* vb (bv) */
  LWM2M_SV_DATA, /* vd, decoded */
  LWM2M_SV_LNK,  /* vlo (ov) */
};

struct lwm2m_senml_rec {
  char *bn, *n; /* NULL when absent; may hold NUL bytes */
  size_t bnlen, nlen;
  bool has_bt, has_t;
  double bt, t;
  enum lwm2m_senml_kind kind;
  int nvalues;
  struct lwm2m_num num;
  uint8_t *data; /* STR, DATA, LNK */
  size_t dlen;
  bool b;
};

struct lwm2m_senml_ctx {
  const char *prefix; /* "SenML JSON" ... */
  const struct lwm2m_path *base;
  const struct lwm2m_model *m;
  struct lwm2m_records *out;
  bool sv_base64; /* OMA JSON: a String value of an Opaque is base64 */
  /* Paths-only mode when paths is not NULL. */
  struct lwm2m_path **paths;
  size_t *npaths;
  size_t pcap;
  /* Base values carried over to the records that follow. */
  char *bn;
  size_t bnlen;
  double bt;
  size_t index; /* 1-based record number, for messages */
  char *err;
  size_t errlen;
};

int lwm2m_senml_apply(struct lwm2m_senml_ctx *c, struct lwm2m_senml_rec *r);
void lwm2m_senml_rec_clear(struct lwm2m_senml_rec *r);
void lwm2m_senml_ctx_clear(struct lwm2m_senml_ctx *c);

/*
 * Name compression for encoders: base names the request path, with a
 * trailing '/' unless every record is the base path itself; n is the rest.
 * At the root there is no base name and each n is the full path.
 */
struct lwm2m_names {
  const struct lwm2m_path *base;
  char bn[LWM2M_PATH_STRLEN + 1];
  bool has_bn;
};

void lwm2m_names_init(struct lwm2m_names *nm, const struct lwm2m_path *base,
                      const struct lwm2m_records *in);
/* Writes a record's n into buf; false when the record needs none. */
bool lwm2m_names_n(const struct lwm2m_names *nm, const struct lwm2m_path *p,
                   char *buf, size_t len);
/* A JSON number for a numeric value, or NULL (NaN, infinity). */
json_t *lwm2m_json_number(const struct lwm2m_value *v);
/* A JSON string for bytes, or NULL if they are not valid UTF-8. */
json_t *lwm2m_json_string(const uint8_t *p, size_t n);

/* Per-format codecs, dispatched from lwm2m_codec.c. */
int lwm2m_tlv_decode(const uint8_t *buf, size_t len,
                     const struct lwm2m_path *base,
                     const struct lwm2m_model *m, struct lwm2m_records *out,
                     char *err, size_t errlen);
int lwm2m_tlv_encode(const struct lwm2m_path *base,
                     const struct lwm2m_records *in,
                     const struct lwm2m_model *m, struct lwm2m_buf *out,
                     char *err, size_t errlen);
int lwm2m_text_decode(const uint8_t *buf, size_t len,
                      const struct lwm2m_path *base,
                      const struct lwm2m_model *m, struct lwm2m_records *out,
                      char *err, size_t errlen);
int lwm2m_text_encode(const struct lwm2m_path *base,
                      const struct lwm2m_records *in,
                      const struct lwm2m_model *m, struct lwm2m_buf *out,
                      char *err, size_t errlen);
int lwm2m_opaque_decode(const uint8_t *buf, size_t len,
                        const struct lwm2m_path *base,
                        const struct lwm2m_model *m, struct lwm2m_records *out,
                        char *err, size_t errlen);
int lwm2m_opaque_encode(const struct lwm2m_path *base,
                        const struct lwm2m_records *in,
                        const struct lwm2m_model *m, struct lwm2m_buf *out,
                        char *err, size_t errlen);
int lwm2m_cbor1_decode(const uint8_t *buf, size_t len,
                       const struct lwm2m_path *base,
                       const struct lwm2m_model *m, struct lwm2m_records *out,
                       char *err, size_t errlen);
int lwm2m_cbor1_encode(const struct lwm2m_path *base,
                       const struct lwm2m_records *in,
                       const struct lwm2m_model *m, struct lwm2m_buf *out,
                       char *err, size_t errlen);
int lwm2m_senml_json_decode(const uint8_t *buf, size_t len,
                            const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen);
int lwm2m_senml_json_encode(const struct lwm2m_path *base,
                            const struct lwm2m_records *in,
                            const struct lwm2m_model *m, struct lwm2m_buf *out,
                            char *err, size_t errlen);
int lwm2m_senml_cbor_decode(const uint8_t *buf, size_t len,
                            const struct lwm2m_path *base,
                            const struct lwm2m_model *m,
                            struct lwm2m_records *out, char *err,
                            size_t errlen);
int lwm2m_senml_cbor_encode(const struct lwm2m_path *base,
                            const struct lwm2m_records *in,
                            const struct lwm2m_model *m, struct lwm2m_buf *out,
                            char *err, size_t errlen);
int lwm2m_senml_encode_paths(bool cbor, const struct lwm2m_path *paths,
                             size_t n, struct lwm2m_buf *out);
int lwm2m_senml_decode_paths(bool cbor, const uint8_t *buf, size_t len,
                             struct lwm2m_path **paths, size_t *n, char *err,
                             size_t errlen);
int lwm2m_omajson_decode(const uint8_t *buf, size_t len,
                         const struct lwm2m_path *base,
                         const struct lwm2m_model *m,
                         struct lwm2m_records *out, char *err, size_t errlen);
int lwm2m_omajson_encode(const struct lwm2m_path *base,
                         const struct lwm2m_records *in,
                         const struct lwm2m_model *m, struct lwm2m_buf *out,
                         char *err, size_t errlen);
int lwm2m_lwcbor_decode(const uint8_t *buf, size_t len,
                        const struct lwm2m_path *base,
                        const struct lwm2m_model *m, struct lwm2m_records *out,
                        char *err, size_t errlen);
int lwm2m_lwcbor_encode(const struct lwm2m_path *base,
                        const struct lwm2m_records *in,
                        const struct lwm2m_model *m, struct lwm2m_buf *out,
                        char *err, size_t errlen);

/* The model's DDF XML reader (lwm2m_ddf.c) and JSON reader. */
int lwm2m_ddf_parse(const char *name, const char *buf, size_t len,
                    struct lwm2m_obj_def **objs, size_t *n, char *err,
                    size_t errlen);
int lwm2m_objjson_parse(const char *name, const char *buf, size_t len,
                        struct lwm2m_obj_def **objs, size_t *n, char *err,
                        size_t errlen);
/* Sorts an object's resources, rejecting a duplicate id. */
int lwm2m_obj_def_finish(struct lwm2m_obj_def *o, char *err, size_t errlen);
void lwm2m_obj_def_clear(struct lwm2m_obj_def *o);
/* Type and operation names as DDF files write them (case-insensitive). */
int lwm2m_type_parse(const char *s, enum lwm2m_type *t);
int lwm2m_ops_parse(const char *s, uint8_t *ops);

#endif
