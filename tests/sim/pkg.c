#include "tests/sim/sim.h"

#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "pkg"

/* MCUboot layout (spec 6). */
#define MCUBOOT_MAGIC 0x96f3b83du
#define MCUBOOT_MAGIC_V1 0x96f3b83cu
#define TLV_INFO_MAGIC 0x6907u
#define TLV_PROT_INFO_MAGIC 0x6908u
#define TLV_SHA256 0x10u
#define TLV_DEPENDENCY 0x40u
#define IMAGE_F_ENCRYPTED (0x04u | 0x08u)

static uint16_t le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

void pkg_stream_init(struct pkg_stream *s, bool hash_all)
{
  memset(s, 0, sizeof(*s));
  s->hash_all = hash_all;
  mbedtls_sha256_init(&s->all);
  mbedtls_sha256_init(&s->img);
  mbedtls_sha256_starts_ret(&s->all, 0);
  mbedtls_sha256_starts_ret(&s->img, 0);
}

void pkg_stream_free(struct pkg_stream *s)
{
  mbedtls_sha256_free(&s->all);
  mbedtls_sha256_free(&s->img);
  free(s->tail);
  s->tail = NULL;
}

/* Handles bytes at absolute offset off (>= 32) of an MCUboot image. */
static void mcuboot_bytes(struct pkg_stream *s, size_t off,
                          const uint8_t *data, size_t n)
{
  size_t end = off + n;

  if (off < s->hash_end) {
    size_t stop = end < s->hash_end ? end : s->hash_end;

    mbedtls_sha256_update_ret(&s->img, data, stop - off);
  }
  if (end > s->body_end) {
    size_t from = off > s->body_end ? off : s->body_end;
    size_t take = end - from;

    if (s->tail_len + take > PKG_TAIL_MAX) {
      s->tail_overflow = true;
      return;
    }
    if (!s->tail)
      s->tail = xmalloc(PKG_TAIL_MAX);
    memcpy(s->tail + s->tail_len, data + (from - off), take);
    s->tail_len += take;
  }
}

/* The first 32 bytes are in: decide whether this is an MCUboot image. */
static void detect_header(struct pkg_stream *s)
{
  uint32_t magic = le32(s->hdr);
  uint16_t hdr_size = le16(s->hdr + 8);
  uint16_t prot = le16(s->hdr + 10);
  uint32_t img_size = le32(s->hdr + 12);

  if ((magic != MCUBOOT_MAGIC && magic != MCUBOOT_MAGIC_V1) || hdr_size < 32)
    return;
  s->mcuboot = true;
  s->body_end = (size_t)hdr_size + img_size;
  s->hash_end = s->body_end + prot;
  mbedtls_sha256_update_ret(&s->img, s->hdr, sizeof(s->hdr));
}

int pkg_stream_feed(struct pkg_stream *s, const uint8_t *data, size_t len,
                    size_t max_size)
{
  if (len > max_size || s->len > max_size - len)
    return AFU_R_NO_FLASH;
  if (s->hash_all)
    mbedtls_sha256_update_ret(&s->all, data, len);
  if (s->len < sizeof(s->hdr)) {
    size_t take = sizeof(s->hdr) - s->len;

    if (take > len)
      take = len;
    memcpy(s->hdr + s->len, data, take);
    s->len += take;
    data += take;
    len -= take;
    if (s->len == sizeof(s->hdr))
      detect_header(s);
  }
  if (len > 0 && s->mcuboot)
    mcuboot_bytes(s, s->len, data, len);
  s->len += len;
  return 0;
}

/* Walks one TLV area starting at tail offset off; fills hash and deps. */
static int walk_tlvs(const struct pkg_stream *s, size_t off, uint16_t magic,
                     size_t *area_len, const uint8_t **hash,
                     struct pkg_info *out, char *err, size_t errlen)
{
  size_t total, p;

  if (off + 4 > s->tail_len || le16(s->tail + off) != magic) {
    snprintf(err, errlen, "MCUboot TLV area 0x%04x missing", magic);
    return -EINVAL;
  }
  total = le16(s->tail + off + 2);
  if (total < 4 || off + total > s->tail_len) {
    snprintf(err, errlen, "MCUboot TLV area 0x%04x truncated", magic);
    return -EINVAL;
  }
  for (p = off + 4; p + 4 <= off + total;) {
    uint16_t type = le16(s->tail + p);
    uint16_t len = le16(s->tail + p + 2);
    const uint8_t *v = s->tail + p + 4;

    if (p + 4 + len > off + total) {
      snprintf(err, errlen, "MCUboot TLV 0x%02x overruns its area", type);
      return -EINVAL;
    }
    if (type == TLV_SHA256 && len == 32) {
      *hash = v;
    } else if (type == TLV_DEPENDENCY && len == 12 &&
               out->ndeps < AFU_MAX_DEPS) {
      struct afu_dep *d = &out->deps[out->ndeps++];

      d->iid = v[0];
      snprintf(d->min_version, sizeof(d->min_version), "%u.%u.%u", v[4], v[5],
               le16(v + 6));
    }
    p += 4 + (size_t)len;
  }
  *area_len = total;
  return 0;
}

static int mcuboot_verify(struct pkg_stream *s, struct pkg_info *out,
                          char *err, size_t errlen)
{
  uint8_t digest[32];
  const uint8_t *hash = NULL;
  size_t prot = s->hash_end - s->body_end, area = 0;
  uint32_t flags = le32(s->hdr + 16);

  if (s->tail_overflow) {
    snprintf(err, errlen, "MCUboot TLV areas larger than %d bytes",
             PKG_TAIL_MAX);
    return AFU_R_UNSUPPORTED;
  }
  if (s->len < s->hash_end + 4) {
    snprintf(err, errlen,
             "MCUboot image truncated (%zu of at least %zu "
             "bytes)",
             s->len, s->hash_end + 4);
    return AFU_R_INTEGRITY;
  }
  if (prot > 0 &&
      walk_tlvs(s, 0, TLV_PROT_INFO_MAGIC, &area, &hash, out, err, errlen) < 0)
    return AFU_R_INTEGRITY;
  if (prot > 0 && area != prot) {
    snprintf(err, errlen, "protected TLV size %zu, header says %zu", area,
             prot);
    return AFU_R_INTEGRITY;
  }
  if (walk_tlvs(s, prot, TLV_INFO_MAGIC, &area, &hash, out, err, errlen) < 0)
    return AFU_R_INTEGRITY;
  snprintf(out->version, sizeof(out->version), "%u.%u.%u", s->hdr[20],
           s->hdr[21], le16(s->hdr + 22));
  if (flags & IMAGE_F_ENCRYPTED) {
    /* imgtool hashes the plaintext; without the device key there is
     * nothing to compare, so an encrypted image is taken on trust. */
    log_debug("encrypted MCUboot image: hash not checked");
    return 0;
  }
  if (!hash) {
    snprintf(err, errlen, "MCUboot image without a SHA256 TLV");
    return AFU_R_INTEGRITY;
  }
  mbedtls_sha256_finish_ret(&s->img, digest);
  if (memcmp(digest, hash, sizeof(digest)) != 0) {
    snprintf(err, errlen, "MCUboot image hash mismatch");
    return AFU_R_INTEGRITY;
  }
  return 0;
}

int pkg_uri_proto(const char *uri)
{
  static const struct {
    const char *scheme;
    int proto;
  } schemes[] = {
      {"coap", AFU_PROTO_COAP},         {"coaps", AFU_PROTO_COAPS},
      {"http", AFU_PROTO_HTTP},         {"https", AFU_PROTO_HTTPS},
      {"coap+tcp", AFU_PROTO_COAP_TCP}, {"coaps+tcp", AFU_PROTO_COAPS_TCP},
  };
  const char *sep = strstr(uri, "://");
  const char *host;
  size_t slen;

  for (const char *p = uri; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return -EINVAL;
  if (!sep || sep == uri)
    return -EINVAL;
  slen = (size_t)(sep - uri);
  for (size_t i = 0; i < slen; i++)
    if (!isalnum((unsigned char)uri[i]) && uri[i] != '+' && uri[i] != '-' &&
        uri[i] != '.')
      return -EINVAL;
  host = sep + 3;
  if (*host == '\0' || *host == '/' || *host == '?' || *host == ':')
    return -EINVAL;
  for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
    if (strlen(schemes[i].scheme) == slen &&
        strncasecmp(uri, schemes[i].scheme, slen) == 0)
      return schemes[i].proto;
  return -EPROTONOSUPPORT;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool pkg_uri_param(const char *uri, const char *key, char *buf, size_t len)
{
  const char *q = strchr(uri, '?');
  size_t klen = strlen(key);

  if (!q || len == 0)
    return false;
  q++;
  while (*q && *q != '#') {
    const char *end = q + strcspn(q, "&#");

    if ((size_t)(end - q) > klen && strncmp(q, key, klen) == 0 &&
        q[klen] == '=') {
      size_t o = 0;

      /* Percent-decoding, so "v=1.0%2Brc1" gives "1.0+rc1". */
      for (const char *p = q + klen + 1; p < end && o + 1 < len; p++) {
        if (*p == '%' && end - p >= 3 && hexval(p[1]) >= 0 &&
            hexval(p[2]) >= 0) {
          buf[o++] = (char)(hexval(p[1]) * 16 + hexval(p[2]));
          p += 2;
        } else {
          buf[o++] = *p;
        }
      }
      buf[o] = '\0';
      return true;
    }
    q = *end == '&' ? end + 1 : end;
  }
  return false;
}

/* The last path segment of uri (without query or fragment). */
static void uri_filename(const char *uri, char *buf, size_t len)
{
  const char *sep = strstr(uri, "://");
  const char *path = sep ? strchr(sep + 3, '/') : NULL;
  size_t n;
  const char *seg;

  buf[0] = '\0';
  if (!path)
    return;
  n = strcspn(path, "?#");
  seg = path;
  for (size_t i = 0; i < n; i++)
    if (path[i] == '/')
      seg = path + i + 1;
  n = (size_t)(path + n - seg);
  if (n >= len)
    n = len - 1;
  memcpy(buf, seg, n);
  buf[n] = '\0';
}

static bool all_alpha(const char *s)
{
  if (!*s)
    return false;
  for (; *s; s++)
    if (!isalpha((unsigned char)*s))
      return false;
  return true;
}

/*
 * "app-2.1.0.bin" -> name "app", version "2.1.0": extensions made only of
 * letters come off the end, then the name ends at the last '-' that is
 * followed by a digit.
 */
static bool filename_version(const char *file, char *name, size_t nlen,
                             char *version, size_t vlen)
{
  char stem[AFU_URI_MAX];
  char *dot, *dash = NULL;

  snprintf(stem, sizeof(stem), "%s", file);
  for (dot = strrchr(stem, '.'); dot && dot != stem && all_alpha(dot + 1);
       dot = strrchr(stem, '.'))
    *dot = '\0';
  for (char *p = stem; *p; p++)
    if (*p == '-' && isdigit((unsigned char)p[1]))
      dash = p;
  if (!dash || dash == stem)
    return false;
  *dash = '\0';
  snprintf(name, nlen, "%s", stem);
  snprintf(version, vlen, "%s", dash + 1);
  return true;
}

/*
 * Calls fn for each comma-separated item of s (copied, so fn may cut it).
 * Items are at most AFU_URI_MAX bytes, as s is.
 */
static int each_item(const char *s, struct pkg_info *out, char *err,
                     size_t errlen,
                     int (*fn)(char *item, struct pkg_info *out, char *err,
                               size_t errlen))
{
  while (*s) {
    size_t n = strcspn(s, ",");
    char item[AFU_URI_MAX];
    int rc;

    if (n == 0 || n >= sizeof(item)) {
      snprintf(err, errlen, "empty or overlong list item");
      return -EINVAL;
    }
    memcpy(item, s, n);
    item[n] = '\0';
    rc = fn(item, out, err, errlen);
    if (rc < 0)
      return rc;
    s += n;
    if (*s == ',')
      s++;
  }
  return 0;
}

/* with=1:2.1,2 -> covers instances 1 and 2, instance 1 installs "2.1". */
static int cover_item(char *item, struct pkg_info *out, char *err,
                      size_t errlen)
{
  char *colon = strchr(item, ':');
  int64_t iid;

  if (colon)
    *colon = '\0';
  if (parse_int64(item, 0, AFU_MAX_INST - 1, &iid) < 0) {
    snprintf(err, errlen, "bad instance '%s' in with=", item);
    return -EINVAL;
  }
  out->covers |= UINT32_C(1) << iid;
  if (colon)
    snprintf(out->cover_version[iid], sizeof(out->cover_version[iid]), "%s",
             colon + 1);
  return 0;
}

/* requires=1:2.0 -> instance 1 must run at least 2.0. */
static int require_item(char *item, struct pkg_info *out, char *err,
                        size_t errlen)
{
  char *colon = strchr(item, ':');
  int64_t iid;
  struct afu_dep *d;

  if (!colon || out->ndeps == AFU_MAX_DEPS) {
    snprintf(err, errlen, "requires= takes at most %d IID:VERSION items",
             AFU_MAX_DEPS);
    return -EINVAL;
  }
  *colon = '\0';
  if (parse_int64(item, 0, AFU_MAX_INST - 1, &iid) < 0) {
    snprintf(err, errlen, "bad instance '%s' in requires=", item);
    return -EINVAL;
  }
  d = &out->deps[out->ndeps++];
  d->iid = (uint16_t)iid;
  snprintf(d->min_version, sizeof(d->min_version), "%s", colon + 1);
  return 0;
}

static int pick_version(const struct pkg_stream *s, const char *uri,
                        const struct pkg_policy *pol, const char *fname_ver,
                        struct pkg_info *out, const char *mcu_ver)
{
  char v[AFU_VER_MAX];
  bool auto_ = pol->version_from == PKG_VER_AUTO;

  if (pol->version_from == PKG_VER_FIXED) {
    snprintf(out->version, sizeof(out->version), "%s", pol->fixed_version);
    return 0;
  }
  if ((auto_ || pol->version_from == PKG_VER_URI) && uri &&
      pkg_uri_param(uri, "v", v, sizeof(v)) && v[0]) {
    snprintf(out->version, sizeof(out->version), "%s", v);
    return 0;
  }
  if ((auto_ || pol->version_from == PKG_VER_FILENAME) && fname_ver[0]) {
    snprintf(out->version, sizeof(out->version), "%s", fname_ver);
    return 0;
  }
  if ((auto_ || pol->version_from == PKG_VER_MCUBOOT) && s->mcuboot &&
      mcu_ver[0]) {
    snprintf(out->version, sizeof(out->version), "%s", mcu_ver);
    return 0;
  }
  return -ENOENT;
}

int pkg_stream_finish(struct pkg_stream *s, const char *uri,
                      const struct pkg_policy *pol, struct pkg_info *out,
                      char *err, size_t errlen)
{
  char file[AFU_URI_MAX] = "", fname[AFU_NAME_MAX] = "",
       fver[AFU_VER_MAX] = "", mcu_ver[AFU_VER_MAX] = "", param[AFU_URI_MAX];
  uint8_t want[32];
  int rc;

  memset(out, 0, sizeof(*out));
  out->size = s->len;
  if (s->hash_all)
    mbedtls_sha256_finish_ret(&s->all, out->sha256);
  if (!s->hash_all && pkg_needs_sha256(uri, pol)) {
    snprintf(err, errlen, "the whole-file SHA-256 was not computed");
    return AFU_R_INTEGRITY;
  }

  if (pol->has_sha256 &&
      memcmp(out->sha256, pol->sha256, sizeof(out->sha256)) != 0) {
    snprintf(err, errlen, "SHA-256 differs from the profile's");
    return AFU_R_INTEGRITY;
  }
  if (uri && pkg_uri_param(uri, "sha256", param, sizeof(param))) {
    if (strlen(param) != 64 ||
        sim_hex_decode(param, want, sizeof(want)) != 32) {
      snprintf(err, errlen, "sha256= in the URI is not 64 hex digits");
      return AFU_R_INVALID_URI;
    }
    if (memcmp(out->sha256, want, sizeof(want)) != 0) {
      snprintf(err, errlen, "SHA-256 differs from the URI's sha256=");
      return AFU_R_INTEGRITY;
    }
  }
  if (s->mcuboot) {
    rc = mcuboot_verify(s, out, err, errlen);
    if (rc != 0)
      return rc;
    snprintf(mcu_ver, sizeof(mcu_ver), "%s", out->version);
    out->version[0] = '\0';
    out->mcuboot = true;
  } else if (pol->require_mcuboot) {
    snprintf(err, errlen, "not an MCUboot image");
    return AFU_R_UNSUPPORTED;
  }

  if (uri) {
    uri_filename(uri, file, sizeof(file));
    filename_version(file, fname, sizeof(fname), fver, sizeof(fver));
  }
  if (pick_version(s, uri, pol, fver, out, mcu_ver) < 0) {
    snprintf(err, errlen, "cannot tell which version the package installs");
    return AFU_R_UNSUPPORTED;
  }
  if (fname[0])
    snprintf(out->name, sizeof(out->name), "%s", fname);
  else if (file[0])
    snprintf(out->name, sizeof(out->name), "%s", file);
  else
    snprintf(out->name, sizeof(out->name), "package");

  if (uri && pkg_uri_param(uri, "with", param, sizeof(param)) &&
      each_item(param, out, err, errlen, cover_item) < 0)
    return AFU_R_INVALID_URI;
  if (uri && pkg_uri_param(uri, "requires", param, sizeof(param)) &&
      each_item(param, out, err, errlen, require_item) < 0)
    return AFU_R_INVALID_URI;
  return 0;
}

bool pkg_needs_sha256(const char *uri, const struct pkg_policy *pol)
{
  char v[72];

  return pol->has_sha256 ||
         (uri && pkg_uri_param(uri, "sha256", v, sizeof(v)));
}

int pkg_check(const uint8_t *data, size_t len, const char *uri,
              const struct pkg_policy *pol, struct pkg_info *out, char *err,
              size_t errlen)
{
  struct pkg_stream s;
  int rc;

  pkg_stream_init(&s, true);
  rc = pkg_stream_feed(&s, data, len, pol->max_size);
  if (rc == 0)
    rc = pkg_stream_finish(&s, uri, pol, out, err, errlen);
  else
    snprintf(err, errlen, "package larger than %zu bytes", pol->max_size);
  pkg_stream_free(&s);
  return rc;
}
