/*
 * MCUboot image verification, as MCUboot's bootloader would do it but on
 * the server, before an image may be rolled out (spec section 6): the
 * header, the TLV areas, the SHA256 TLV against the hash of header, body
 * and protected TLVs, and where trusted keys are configured the KEYHASH
 * and ECDSA P-256 signature TLVs.
 *
 * The verifier takes the image in pieces as an upload streams in, so that
 * no image is ever held in memory: the hashed region only passes through
 * SHA-256, and just the TLV areas (at most two 64 KiB areas, as their
 * lengths are 16-bit) are kept for the final checks.
 */
#include "orchestrator/orch_int.h"

#include <dirent.h>
#include <errno.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "mcuboot"

#define IMAGE_MAGIC 0x96f3b83du
#define IMAGE_MAGIC_V1 0x96f3b83cu
#define HEADER_SIZE 32
#define TLV_INFO_MAGIC 0x6907u
#define TLV_PROT_INFO_MAGIC 0x6908u

#define FLAG_ENCRYPTED_AES128 0x04u
#define FLAG_ENCRYPTED_AES256 0x08u

#define TLV_KEYHASH 0x01
#define TLV_PUBKEY 0x02
#define TLV_SHA256 0x10
#define TLV_SHA384 0x11
#define TLV_SHA512 0x12
#define TLV_RSA2048_PSS 0x20
#define TLV_ECDSA224 0x21
#define TLV_ECDSA_SIG 0x22
#define TLV_RSA3072_PSS 0x23
#define TLV_ED25519 0x24
#define TLV_SIG_PURE 0x25

/* At most this many trusted keys; each is a file to read at start-up. */
#define MAX_KEYS 64
/* A P-256 SubjectPublicKeyInfo is 91 bytes in DER. */
#define SPKI_MAX 256

struct mcuboot_key {
  char name[64]; /* the file name, for messages */
  mbedtls_pk_context pk;
  uint8_t hash[32]; /* SHA-256 of the DER SubjectPublicKeyInfo */
};

struct orch_mcuboot_keys {
  struct mcuboot_key *keys;
  size_t n;
};

struct orch_mcuboot {
  uint64_t off; /* bytes seen so far */
  uint8_t hdr[HEADER_SIZE];
  bool parsed;  /* the header is complete and was read */
  bool hashing; /* the header is sane enough to hash the region */
  uint32_t magic, img_size, flags, build;
  uint16_t hdr_size, prot_size, revision;
  uint8_t major, minor;
  uint64_t tlv_off;    /* where the TLV areas start: hdr_size + img_size */
  uint64_t region_end; /* the hashed region: [0, tlv_off + prot_size) */
  uint8_t *tlv;        /* bytes from tlv_off on, at most tlv_cap */
  size_t tlv_cap, tlv_len;
  mbedtls_sha256_context sha;
};

static uint16_t le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

const char *orch_mcuboot_verdict_name(enum orch_mcuboot_verdict v)
{
  switch (v) {
  case ORCH_MCUBOOT_VALID:
    return "valid";
  case ORCH_MCUBOOT_UNSIGNED:
    return "unsigned";
  case ORCH_MCUBOOT_INVALID:
    return "invalid";
  case ORCH_MCUBOOT_NONE:
    break;
  }
  return NULL;
}

/* Keys. */

size_t orch_mcuboot_keys_count(const struct orch_mcuboot_keys *keys)
{
  return keys ? keys->n : 0;
}

void orch_mcuboot_keys_free(struct orch_mcuboot_keys *keys)
{
  if (!keys)
    return;
  for (size_t i = 0; i < keys->n; i++)
    mbedtls_pk_free(&keys->keys[i].pk);
  free(keys->keys);
  free(keys);
}

struct orch_mcuboot_keys *orch_mcuboot_keys_new(void)
{
  return xcalloc(1, sizeof(struct orch_mcuboot_keys));
}

/* Checks that pk is an EC P-256 public key and adds it under name. */
static int add_key(struct orch_mcuboot_keys *keys, const char *name,
                   mbedtls_pk_context *pk, char *err, size_t errlen)
{
  unsigned char der[SPKI_MAX];
  struct mcuboot_key *k;
  int n;

  if (keys->n == MAX_KEYS) {
    snprintf(err, errlen, "%s: more than %d keys", name, MAX_KEYS);
    return -E2BIG;
  }
  if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY ||
      mbedtls_pk_ec(*pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
    snprintf(err, errlen, "%s: not an EC P-256 (prime256v1) public key", name);
    return -EINVAL;
  }
  /* mbedtls writes DER at the end of the buffer. */
  n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));
  if (n <= 0) {
    snprintf(err, errlen, "%s: cannot encode the public key", name);
    return -EINVAL;
  }
  keys->keys = xrealloc(keys->keys, (keys->n + 1) * sizeof(*keys->keys));
  k = &keys->keys[keys->n++];
  snprintf(k->name, sizeof(k->name), "%s", name);
  k->pk = *pk; /* the context moves into the set */
  mbedtls_sha256_ret(der + sizeof(der) - (size_t)n, (size_t)n, k->hash, 0);
  return 0;
}

int orch_mcuboot_keys_add_pem(struct orch_mcuboot_keys *keys, const char *name,
                              const char *pem, char *err, size_t errlen)
{
  mbedtls_pk_context pk;
  int rc;

  mbedtls_pk_init(&pk);
  /* mbedtls wants the length with the terminating NUL for PEM. */
  if (mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem,
                                  strlen(pem) + 1) != 0) {
    snprintf(err, errlen, "%s: not a PEM public key", name);
    mbedtls_pk_free(&pk);
    return -EINVAL;
  }
  rc = add_key(keys, name, &pk, err, errlen);
  if (rc < 0)
    mbedtls_pk_free(&pk);
  return rc;
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

struct orch_mcuboot_keys *orch_mcuboot_keys_load(const char *dir, char *err,
                                                 size_t errlen)
{
  struct orch_mcuboot_keys *keys = orch_mcuboot_keys_new();
  char **names = NULL;
  size_t n = 0;
  DIR *d = NULL;
  struct dirent *e;

  if (!dir || !dir[0])
    return keys;
  d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "mcuboot_keys_dir %s: %s", dir, strerror(errno));
    goto fail;
  }
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);

    if (len <= 4 || strcmp(e->d_name + len - 4, ".pem") != 0)
      continue;
    if (n == MAX_KEYS) {
      snprintf(err, errlen, "mcuboot_keys_dir %s: more than %d keys", dir,
               MAX_KEYS);
      goto fail;
    }
    names = xrealloc(names, (n + 1) * sizeof(*names));
    names[n++] = xstrdup(e->d_name);
  }
  /* A fixed order, so that messages name keys the same way every time. */
  qsort(names, n, sizeof(*names), cmp_names);
  for (size_t i = 0; i < n; i++) {
    char *path = xasprintf("%s/%s", dir, names[i]);
    mbedtls_pk_context pk;
    int rc;

    mbedtls_pk_init(&pk);
    rc = mbedtls_pk_parse_public_keyfile(&pk, path);
    free(path);
    if (rc != 0) {
      snprintf(err, errlen, "mcuboot_keys_dir: %s/%s: not a PEM public key",
               dir, names[i]);
      mbedtls_pk_free(&pk);
      goto fail;
    }
    if (add_key(keys, names[i], &pk, err, errlen) < 0) {
      mbedtls_pk_free(&pk);
      goto fail;
    }
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  closedir(d);
  return keys;
fail:
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  if (d)
    closedir(d);
  orch_mcuboot_keys_free(keys);
  return NULL;
}

/* Streaming. */

struct orch_mcuboot *orch_mcuboot_new(void)
{
  struct orch_mcuboot *m = xcalloc(1, sizeof(*m));

  mbedtls_sha256_init(&m->sha);
  return m;
}

void orch_mcuboot_free(struct orch_mcuboot *m)
{
  if (!m)
    return;
  mbedtls_sha256_free(&m->sha);
  free(m->tlv);
  free(m);
}

/* The header is complete: read it and get ready to hash and capture. */
static void parse_header(struct orch_mcuboot *m)
{
  const uint8_t *h = m->hdr;

  m->parsed = true;
  m->magic = le32(h);
  m->hdr_size = le16(h + 8);
  m->prot_size = le16(h + 10);
  m->img_size = le32(h + 12);
  m->flags = le32(h + 16);
  m->major = h[20];
  m->minor = h[21];
  m->revision = le16(h + 22);
  m->build = le32(h + 24);
  if (m->magic != IMAGE_MAGIC || m->hdr_size < HEADER_SIZE)
    return;
  m->tlv_off = (uint64_t)m->hdr_size + m->img_size;
  m->region_end = m->tlv_off + m->prot_size;
  /* The protected area, then an unprotected one of at most 64 KiB. */
  m->tlv_cap = (size_t)m->prot_size + 0xffff;
  m->tlv = xmalloc(m->tlv_cap);
  m->hashing = mbedtls_sha256_starts_ret(&m->sha, 0) == 0 &&
               mbedtls_sha256_update_ret(&m->sha, m->hdr, HEADER_SIZE) == 0;
}

void orch_mcuboot_update(struct orch_mcuboot *m, const void *data, size_t len)
{
  const uint8_t *p = data;
  uint64_t pos = m->off;

  m->off += len;
  if (pos < HEADER_SIZE) {
    size_t n = len < HEADER_SIZE - pos ? len : (size_t)(HEADER_SIZE - pos);

    memcpy(m->hdr + pos, p, n);
    p += n;
    len -= n;
    pos += n;
    if (pos == HEADER_SIZE)
      parse_header(m);
  }
  if (!m->tlv || len == 0)
    return;
  /* What falls in the hashed region goes through SHA-256... */
  if (m->hashing && pos < m->region_end) {
    uint64_t n = m->region_end - pos < len ? m->region_end - pos : len;

    if (mbedtls_sha256_update_ret(&m->sha, p, (size_t)n) != 0)
      m->hashing = false;
  }
  /* ...and what falls in the TLV areas is kept. */
  if (pos + len > m->tlv_off && m->tlv_len < m->tlv_cap) {
    /* Data comes in order, so the kept bytes are contiguous: they end
     * where this piece starts, or this piece reaches tlv_off first. */
    uint64_t from = pos > m->tlv_off ? pos : m->tlv_off;
    uint64_t n = pos + len - from;

    if (n > m->tlv_cap - m->tlv_len)
      n = m->tlv_cap - m->tlv_len;
    memcpy(m->tlv + m->tlv_len, p + (from - pos), (size_t)n);
    m->tlv_len += (size_t)n;
  }
}

/* One TLV entry, pointing into the captured area. */
struct tlv {
  uint16_t type;
  uint16_t len;
  const uint8_t *val;
};

#define MAX_TLVS 64

/*
 * Walks a TLV area of total bytes (info header included) at p: fills
 * out[] and *n, or returns -EINVAL with the reason in why.
 */
static int walk_area(const uint8_t *p, size_t total, const char *which,
                     struct tlv *out, size_t *n, char *why, size_t whylen)
{
  size_t off = 4;

  while (off < total) {
    uint16_t type, len;

    if (total - off < 4) {
      snprintf(why, whylen, "%s TLV area: a truncated entry at offset %zu",
               which, off);
      return -EINVAL;
    }
    type = le16(p + off);
    len = le16(p + off + 2);
    if (total - off - 4 < len) {
      snprintf(why, whylen,
               "%s TLV area: entry 0x%02x of %u bytes overruns the area",
               which, type, len);
      return -EINVAL;
    }
    if (*n == MAX_TLVS) {
      snprintf(why, whylen, "more than %d TLVs", MAX_TLVS);
      return -EINVAL;
    }
    out[*n].type = type;
    out[*n].len = len;
    out[*n].val = p + off + 4;
    (*n)++;
    off += 4 + (size_t)len;
  }
  return 0;
}

static const char *sig_name(uint16_t type)
{
  switch (type) {
  case TLV_RSA2048_PSS:
    return "RSA2048_PSS";
  case TLV_ECDSA224:
    return "ECDSA224";
  case TLV_RSA3072_PSS:
    return "RSA3072_PSS";
  case TLV_ED25519:
    return "ED25519";
  case TLV_SIG_PURE:
    return "SIG_PURE";
  default:
    return "ECDSA_SIG";
  }
}

static void set(struct orch_mcuboot_result *r, enum orch_mcuboot_verdict v,
                const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set(struct orch_mcuboot_result *r, enum orch_mcuboot_verdict v,
                const char *fmt, ...)
{
  va_list ap;

  r->verdict = v;
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
  va_end(ap);
}

/* The key whose SubjectPublicKeyInfo hashes to hash, or NULL. */
static const struct mcuboot_key *
key_by_hash(const struct orch_mcuboot_keys *keys, const uint8_t *hash)
{
  for (size_t i = 0; keys && i < keys->n; i++) {
    if (memcmp(keys->keys[i].hash, hash, 32) == 0)
      return &keys->keys[i];
  }
  return NULL;
}

/*
 * Verifies one ECDSA_SIG TLV over digest. The signing key is named by the
 * KEYHASH (or PUBKEY) entry before it; without one every key is tried.
 * Returns the key that verifies, or NULL with the reason in why.
 */
static const struct mcuboot_key *
check_sig(const struct orch_mcuboot_keys *keys, const struct tlv *sig,
          const uint8_t *keyhash, const uint8_t digest[32], char *why,
          size_t whylen)
{
  const struct mcuboot_key *k = NULL;
  size_t len = sig->len;
  char hex[17];

  /* Older imgtool padded the DER signature to 72 bytes with zeros. */
  if (len >= 2 && sig->val[0] == 0x30 && (size_t)sig->val[1] + 2 <= len)
    len = (size_t)sig->val[1] + 2;
  if (keyhash) {
    k = key_by_hash(keys, keyhash);
    if (!k) {
      hex_encode(keyhash, 8, hex);
      snprintf(why, whylen,
               "signed with a key that is not configured (KEYHASH %s...)",
               hex);
      return NULL;
    }
    if (mbedtls_pk_verify((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256,
                          digest, 32, sig->val, len) == 0)
      return k;
    snprintf(why, whylen, "the ECDSA signature does not verify with key %s",
             k->name);
    return NULL;
  }
  for (size_t i = 0; i < keys->n; i++) {
    k = &keys->keys[i];
    if (mbedtls_pk_verify((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256,
                          digest, 32, sig->val, len) == 0)
      return k;
  }
  snprintf(why, whylen,
           "the ECDSA signature (no KEYHASH) verifies with none of the %zu "
           "configured keys",
           keys->n);
  return NULL;
}

/* Checks the signatures once the hash is settled; hash_note says what the
 * hash check found, for the detail text. */
static void check_signatures(const struct orch_mcuboot_keys *keys,
                             const struct tlv *t, size_t nt,
                             const uint8_t *digest, bool encrypted,
                             const char *hash_note,
                             struct orch_mcuboot_result *r)
{
  const uint8_t *keyhash = NULL;
  uint8_t pubhash[32];
  const struct mcuboot_key *good = NULL;
  uint16_t other = 0;
  size_t nsigs = 0, nkeys = orch_mcuboot_keys_count(keys);
  char why[160] = "", why_next[160];

  for (size_t i = 0; i < nt && !good; i++) {
    switch (t[i].type) {
    case TLV_KEYHASH:
      keyhash = t[i].len == 32 ? t[i].val : NULL;
      break;
    case TLV_PUBKEY:
      mbedtls_sha256_ret(t[i].val, t[i].len, pubhash, 0);
      keyhash = pubhash;
      break;
    case TLV_ECDSA_SIG:
      nsigs++;
      if (nkeys > 0) {
        good = check_sig(keys, &t[i], keyhash, digest, why_next,
                         sizeof(why_next));
        /* Only the first failure is reported: a later signature, by
         * another key, may still verify. */
        if (!good && !why[0])
          memcpy(why, why_next, sizeof(why));
      }
      keyhash = NULL;
      break;
    case TLV_RSA2048_PSS:
    case TLV_ECDSA224:
    case TLV_RSA3072_PSS:
    case TLV_ED25519:
      other = t[i].type;
      break;
    default:
      break;
    }
  }
  if (good) {
    if (encrypted)
      set(r, ORCH_MCUBOOT_UNSIGNED,
          "%s; the ECDSA P-256 signature of the stated hash verifies with "
          "key %s",
          hash_note, good->name);
    else
      set(r, ORCH_MCUBOOT_VALID,
          "%s; the ECDSA P-256 signature verifies with key %s", hash_note,
          good->name);
    return;
  }
  if (nsigs > 0 && nkeys > 0) {
    set(r, ORCH_MCUBOOT_INVALID, "%s", why);
    return;
  }
  if (nsigs > 0) {
    set(r, ORCH_MCUBOOT_UNSIGNED,
        "%s; the ECDSA signature is not checked: no keys are configured "
        "(mcuboot_keys_dir)",
        hash_note);
    return;
  }
  if (other && nkeys > 0) {
    set(r, ORCH_MCUBOOT_INVALID,
        "signed with %s, which fotad cannot check (only ECDSA P-256)",
        sig_name(other));
    return;
  }
  if (other) {
    set(r, ORCH_MCUBOOT_UNSIGNED,
        "%s; the %s signature is not checked: no keys are configured",
        hash_note, sig_name(other));
    return;
  }
  set(r, ORCH_MCUBOOT_UNSIGNED, "%s; the image is not signed", hash_note);
}

void orch_mcuboot_finish(struct orch_mcuboot *m,
                         const struct orch_mcuboot_keys *keys,
                         struct orch_mcuboot_result *r)
{
  struct tlv t[MAX_TLVS];
  size_t nt = 0, unprot_total;
  const uint8_t *hash_tlv = NULL, *u;
  uint16_t hash_other = 0;
  bool encrypted, pure = false;
  uint8_t digest[32];
  char why[160], hash_note[160], hex_a[65], hex_b[65];
  uint64_t end;

  memset(r, 0, sizeof(*r));
  if (!m->parsed)
    return; /* shorter than a header: a plain binary */
  if (m->magic != IMAGE_MAGIC && m->magic != IMAGE_MAGIC_V1) {
    /* imgtool can write big-endian headers; fotad reads little-endian
     * only, but should say so rather than call the image plain. */
    if (m->hdr[0] == 0x96 && m->hdr[1] == 0xf3 && m->hdr[2] == 0xb8 &&
        (m->hdr[3] == 0x3d || m->hdr[3] == 0x3c))
      set(r, ORCH_MCUBOOT_INVALID,
          "a big-endian MCUboot image, which fotad cannot verify");
    return;
  }
  snprintf(r->version, sizeof(r->version), "%u.%u.%u+%u", m->major, m->minor,
           m->revision, m->build);
  if (m->magic == IMAGE_MAGIC_V1) {
    set(r, ORCH_MCUBOOT_INVALID,
        "an MCUboot v1 image (magic 0x96f3b83c), which fotad cannot verify");
    return;
  }
  if (m->hdr_size < HEADER_SIZE) {
    set(r, ORCH_MCUBOOT_INVALID, "header size %u is below %d", m->hdr_size,
        HEADER_SIZE);
    return;
  }
  if (m->region_end + 4 > m->off) {
    set(r, ORCH_MCUBOOT_INVALID,
        "truncated: header, body and protected TLVs take %llu bytes, the "
        "TLV area at least 4 more, and the file has %llu",
        (unsigned long long)m->region_end, (unsigned long long)m->off);
    return;
  }
  encrypted =
      (m->flags & (FLAG_ENCRYPTED_AES128 | FLAG_ENCRYPTED_AES256)) != 0;

  /* The protected area, when present, comes first and is hashed. */
  if (m->prot_size) {
    if (m->prot_size < 4 || le16(m->tlv) != TLV_PROT_INFO_MAGIC ||
        le16(m->tlv + 2) != m->prot_size) {
      set(r, ORCH_MCUBOOT_INVALID,
          "the protected TLV area does not start with magic 0x6908 and "
          "its size %u",
          m->prot_size);
      return;
    }
    if (walk_area(m->tlv, m->prot_size, "protected", t, &nt, why,
                  sizeof(why)) < 0) {
      set(r, ORCH_MCUBOOT_INVALID, "%s", why);
      return;
    }
    /* Only its entries' structure matters here: the signature TLVs are
     * all in the unprotected area. */
    nt = 0;
  }
  u = m->tlv + m->prot_size;
  if (le16(u) != TLV_INFO_MAGIC) {
    set(r, ORCH_MCUBOOT_INVALID,
        "no TLV area (magic 0x6907) after the body%s: found 0x%04x",
        m->prot_size ? " and the protected TLVs" : "", le16(u));
    return;
  }
  unprot_total = le16(u + 2);
  end = m->region_end + unprot_total;
  if (unprot_total < 4 || end > m->off) {
    set(r, ORCH_MCUBOOT_INVALID,
        "the TLV area of %zu bytes does not fit in the file", unprot_total);
    return;
  }
  if (walk_area(u, unprot_total, "unprotected", t, &nt, why, sizeof(why)) <
      0) {
    set(r, ORCH_MCUBOOT_INVALID, "%s", why);
    return;
  }
  for (size_t i = 0; i < nt; i++) {
    if (t[i].type == TLV_SHA256) {
      if (t[i].len != 32) {
        set(r, ORCH_MCUBOOT_INVALID, "the SHA256 TLV has %u bytes, not 32",
            t[i].len);
        return;
      }
      hash_tlv = t[i].val;
    } else if (t[i].type == TLV_SHA384 || t[i].type == TLV_SHA512) {
      hash_other = t[i].type;
    } else if (t[i].type == TLV_SIG_PURE) {
      pure = true;
    }
  }
  if (!hash_tlv) {
    if (pure)
      set(r, ORCH_MCUBOOT_INVALID,
          "a pure signature (SIG_PURE) with no image hash, which fotad "
          "cannot verify");
    else if (hash_other)
      set(r, ORCH_MCUBOOT_INVALID,
          "the image hash is %s, which fotad cannot verify (only SHA256)",
          hash_other == TLV_SHA384 ? "SHA384" : "SHA512");
    else
      set(r, ORCH_MCUBOOT_INVALID, "no SHA256 TLV");
    return;
  }

  if (encrypted) {
    /* imgtool hashes and signs the plaintext, then encrypts: without the
     * key the hash cannot be recomputed, only the signature of the hash
     * the image states. */
    snprintf(hash_note, sizeof(hash_note),
             "encrypted image (AES-%d): header and TLVs checked, the image "
             "hash covers the plaintext and is not checked",
             (m->flags & FLAG_ENCRYPTED_AES256) ? 256 : 128);
  } else {
    if (!m->hashing || mbedtls_sha256_finish_ret(&m->sha, digest) != 0) {
      set(r, ORCH_MCUBOOT_INVALID, "cannot compute the image hash");
      return;
    }
    m->hashing = false;
    if (memcmp(digest, hash_tlv, 32) != 0) {
      hex_encode(hash_tlv, 32, hex_a);
      hex_encode(digest, 32, hex_b);
      set(r, ORCH_MCUBOOT_INVALID,
          "image hash mismatch: the SHA256 TLV says %s, the image hashes "
          "to %s",
          hex_a, hex_b);
      return;
    }
    snprintf(hash_note, sizeof(hash_note), "the SHA256 image hash matches");
  }
  if (end < m->off) {
    size_t len = strlen(hash_note);

    /* A --pad'ded image ends in a slot trailer: not image data. */
    snprintf(hash_note + len, sizeof(hash_note) - len,
             " (%llu bytes after the TLV area ignored)",
             (unsigned long long)(m->off - end));
  }
  check_signatures(keys, t, nt, hash_tlv, encrypted, hash_note, r);
}

void orch_mcuboot_verify(const void *image, size_t len,
                         const struct orch_mcuboot_keys *keys,
                         struct orch_mcuboot_result *r)
{
  struct orch_mcuboot *m = orch_mcuboot_new();

  orch_mcuboot_update(m, image, len);
  orch_mcuboot_finish(m, keys, r);
  orch_mcuboot_free(m);
}
