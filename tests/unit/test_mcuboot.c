/*
 * The MCUboot verifier (orchestrator/mcuboot.c) on crafted images: plain
 * binaries, unsigned and signed images, tampered bodies, hashes and
 * signatures, keys that are not trusted, malformed headers and TLV areas,
 * encrypted images, and the same verdicts when the image arrives in small
 * pieces. Keys are generated here with mbedTLS.
 */
#include "orchestrator/orch.h"
#include "tests/tap.h"
#include "tests/tools/mcuboot_img.h"

#include <errno.h>
#include <mbedtls/ecp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_LEN 3000

static uint8_t body[BODY_LEN];

static int gen_key(mbedtls_pk_context *pk)
{
  mbedtls_pk_init(pk);
  if (mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0)
    return -1;
  return mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
                             img_rng, NULL);
}

/* The public half of pk as PEM, in buf. */
static int pub_pem(mbedtls_pk_context *pk, char *buf, size_t len)
{
  return mbedtls_pk_write_pubkey_pem(pk, (unsigned char *)buf, len);
}

static void verify(const uint8_t *img, size_t len,
                   const struct orch_mcuboot_keys *keys,
                   struct orch_mcuboot_result *r)
{
  orch_mcuboot_verify(img, len, keys, r);
}

static bool has(const struct orch_mcuboot_result *r, const char *what)
{
  return strstr(r->detail, what) != NULL;
}

/* Builds with o, or fails the test program (signing cannot fail here). */
static uint8_t *build(const struct img_opts *o, size_t *len)
{
  uint8_t *img = img_build(o, body, sizeof(body), len);

  if (!img) {
    printf("Bail out! cannot build an image\n");
    exit(1);
  }
  return img;
}

static void test_plain(void)
{
  struct orch_mcuboot_result r;

  verify(body, sizeof(body), NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_NONE, "a plain binary is not MCUboot");
  ok(orch_mcuboot_verdict_name(r.verdict) == NULL, "... and has no verdict");
  verify(body, 10, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_NONE, "shorter than a header: plain");
  verify((const uint8_t *)"", 0, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_NONE, "empty: plain");
}

static void test_unsigned(void)
{
  struct img_opts o = {.major = 1, .minor = 2, .revision = 3, .build = 4};
  struct orch_mcuboot_result r;
  uint8_t *img;
  size_t len;

  img = build(&o, &len);
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_UNSIGNED, "unsigned image: unsigned (%s)",
         r.detail);
  is_str(r.version, "1.2.3+4", "header version read");
  ok(has(&r, "hash matches") && has(&r, "not signed"), "detail: %s", r.detail);
  is_str(orch_mcuboot_verdict_name(r.verdict), "unsigned", "verdict name");

  /* One flipped bit in the body. */
  img[32 + 100] ^= 1;
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "tampered body: invalid");
  ok(has(&r, "hash mismatch"), "detail: %s", r.detail);
  img[32 + 100] ^= 1;

  /* The header is hashed too. */
  img[24] ^= 1;
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "tampered header: invalid");
  img[24] ^= 1;

  /* The hash TLV itself. */
  img[img_tlv_offset(&o, sizeof(body)) + 8] ^= 0x80;
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "tampered hash TLV: invalid");
  free(img);

  o.hdr_size = 512;
  o.protected_tlvs = true;
  img = build(&o, &len);
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_UNSIGNED,
         "512-byte header and protected TLVs: unsigned (%s)", r.detail);
  /* The protected area is hashed: change the security counter. */
  img[512 + sizeof(body) + 8] ^= 1;
  verify(img, len, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "tampered protected TLV: invalid");
  free(img);

  o.protected_tlvs = false;
  o.trailer = true;
  img = build(&o, &len);
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_UNSIGNED && has(&r, "16 bytes after"),
     "a slot trailer after the TLVs is ignored (%s)", r.detail);
  free(img);
}

static void test_malformed(void)
{
  struct img_opts o = {.major = 1};
  struct orch_mcuboot_result r;
  size_t len, t;
  uint8_t *img = build(&o, &len);

  t = img_tlv_offset(&o, sizeof(body));

  verify(img, len - 1, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "truncated TLV area: invalid");
  verify(img, t + 2, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "truncated"),
     "truncated before the TLV info: invalid (%s)", r.detail);
  verify(img, 200, NULL, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "truncated body: invalid");

  img[t] = 0x00;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "0x6907"),
     "bad TLV info magic: invalid (%s)", r.detail);
  img[t] = 0x07;

  /* The SHA256 entry claims more bytes than the area has. */
  img[t + 6] = 0xff;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "overruns"),
     "a TLV overrunning its area: invalid (%s)", r.detail);
  img[t + 6] = 32;

  /* A SHA256 entry of 31 bytes in an area 1 byte shorter. */
  img[t + 2] = (uint8_t)(img[t + 2] - 1);
  img[t + 6] = 31;
  verify(img, len - 1, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "not 32"),
     "a SHA256 TLV of 31 bytes: invalid (%s)", r.detail);
  img[t + 2] = (uint8_t)(img[t + 2] + 1);
  img[t + 6] = 32;

  /* Another TLV type in place of the hash. */
  img[t + 4] = 0x11;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "SHA384"),
     "a SHA384 image hash is not supported: invalid (%s)", r.detail);
  img[t + 4] = 0x30;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "no SHA256"),
     "no hash TLV: invalid (%s)", r.detail);
  img[t + 4] = 0x10;

  /* Header size below 32. */
  img[8] = 16;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "below 32"),
     "header size 16: invalid (%s)", r.detail);
  img[8] = 32;

  /* Protected size announced, no protected area. */
  img[10] = 12;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "0x6908"),
     "missing protected area: invalid (%s)", r.detail);
  img[10] = 0;

  img[0] = 0x3c;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "v1"),
     "v1 magic: recognised, invalid (%s)", r.detail);
  img[0] = 0x96;
  img[1] = 0xf3;
  img[2] = 0xb8;
  img[3] = 0x3d;
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "big-endian"),
     "big-endian magic: recognised, invalid (%s)", r.detail);
  free(img);
}

static void test_signed(void)
{
  mbedtls_pk_context k1, k2;
  struct orch_mcuboot_keys *keys1 = orch_mcuboot_keys_new();
  struct orch_mcuboot_keys *keys2 = orch_mcuboot_keys_new();
  struct orch_mcuboot_keys *both = orch_mcuboot_keys_new();
  struct img_opts o = {.major = 2, .key = &k1};
  struct orch_mcuboot_result r, piecewise;
  struct orch_mcuboot *m;
  char pem[1024], err[256] = "";
  uint8_t *img;
  size_t len, t;

  ok(gen_key(&k1) == 0 && gen_key(&k2) == 0, "two P-256 keys generated");
  ok(pub_pem(&k1, pem, sizeof(pem)) == 0 &&
         orch_mcuboot_keys_add_pem(keys1, "k1.pem", pem, err, sizeof(err)) ==
             0 &&
         orch_mcuboot_keys_add_pem(both, "k1.pem", pem, err, sizeof(err)) == 0,
     "key 1 trusted (%s)", err);
  ok(pub_pem(&k2, pem, sizeof(pem)) == 0 &&
         orch_mcuboot_keys_add_pem(keys2, "k2.pem", pem, err, sizeof(err)) ==
             0 &&
         orch_mcuboot_keys_add_pem(both, "k2.pem", pem, err, sizeof(err)) == 0,
     "key 2 trusted (%s)", err);
  is_int(orch_mcuboot_keys_count(both), 2, "two keys in one set");
  is_int(orch_mcuboot_keys_add_pem(keys1, "junk.pem", "-----BEGIN nothing",
                                   err, sizeof(err)),
         -EINVAL, "junk is not a key");

  img = build(&o, &len);
  verify(img, len, keys1, &r);
  ok(r.verdict == ORCH_MCUBOOT_VALID && has(&r, "k1.pem"),
     "signed with a trusted key: valid (%s)", r.detail);
  verify(img, len, both, &r);
  is_int(r.verdict, ORCH_MCUBOOT_VALID, "... among several keys: valid");
  verify(img, len, NULL, &r);
  ok(r.verdict == ORCH_MCUBOOT_UNSIGNED && has(&r, "no keys"),
     "signed, no keys configured: unsigned (%s)", r.detail);
  verify(img, len, keys2, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "not configured"),
     "signed with another key: invalid (%s)", r.detail);

  /* The same image, a byte at a time. */
  m = orch_mcuboot_new();
  for (size_t i = 0; i < len; i++)
    orch_mcuboot_update(m, img + i, 1);
  orch_mcuboot_finish(m, keys1, &piecewise);
  orch_mcuboot_free(m);
  is_int(piecewise.verdict, ORCH_MCUBOOT_VALID,
         "fed a byte at a time: valid too");

  /* Tampering after signing. */
  t = img_tlv_offset(&o, sizeof(body));
  img[len - 3] ^= 0x01;
  verify(img, len, keys1, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "does not verify"),
     "tampered signature: invalid (%s)", r.detail);
  img[len - 3] ^= 0x01;
  img[40] ^= 0x01;
  verify(img, len, keys1, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID, "tampered body: invalid");
  img[40] ^= 0x01;
  /* A KEYHASH naming no trusted key. */
  img[t + 4 + 36 + 4] ^= 0x01;
  verify(img, len, keys1, &r);
  ok(r.verdict == ORCH_MCUBOOT_INVALID && has(&r, "not configured"),
     "unknown KEYHASH: invalid (%s)", r.detail);
  free(img);

  o.pad_sig = true;
  o.protected_tlvs = true;
  o.hdr_size = 256;
  img = build(&o, &len);
  verify(img, len, keys1, &r);
  ok(r.verdict == ORCH_MCUBOOT_VALID,
     "signature padded to 72 bytes, protected TLVs: valid (%s)", r.detail);
  free(img);

  o = (struct img_opts){
      .major = 1, .key = &k2, .flags = IMG_FLAG_ENCRYPTED_AES128};
  img = build(&o, &len);
  img[50] ^= 0xff; /* ciphertext: the hash cannot be checked */
  verify(img, len, keys2, &r);
  ok(r.verdict == ORCH_MCUBOOT_UNSIGNED && has(&r, "encrypted") &&
         has(&r, "k2.pem"),
     "encrypted, signed: unsigned, signature of the stated hash checked "
     "(%s)",
     r.detail);
  verify(img, len, keys1, &r);
  is_int(r.verdict, ORCH_MCUBOOT_INVALID,
         "encrypted, signed by an untrusted key: invalid");
  free(img);

  orch_mcuboot_keys_free(keys1);
  orch_mcuboot_keys_free(keys2);
  orch_mcuboot_keys_free(both);
  mbedtls_pk_free(&k1);
  mbedtls_pk_free(&k2);
}

/* Writes text to dir/name. */
static int put_file(const char *dir, const char *name, const char *text)
{
  char *path = xasprintf("%s/%s", dir, name);
  int rc = write_file_atomic(path, text, strlen(text), 0600);

  free(path);
  return rc;
}

static void test_keys_dir(void)
{
  static const char *const names[] = {"a.pem", "b.pem", "c.pem", "README"};
  char dir[] = "/tmp/test_mcuboot.XXXXXX";
  struct orch_mcuboot_keys *keys;
  mbedtls_pk_context k;
  char pem[1024], err[256] = "";

  if (!mkdtemp(dir)) {
    ok(0, "a temporary folder");
    return;
  }
  keys = orch_mcuboot_keys_load("", err, sizeof(err));
  ok(keys && orch_mcuboot_keys_count(keys) == 0, "\"\": no keys");
  orch_mcuboot_keys_free(keys);

  ok(gen_key(&k) == 0 && pub_pem(&k, pem, sizeof(pem)) == 0, "a key");
  ok(put_file(dir, "a.pem", pem) == 0 && put_file(dir, "b.pem", pem) == 0 &&
         put_file(dir, "README", "not a key") == 0,
     "a folder with two keys and a README");
  keys = orch_mcuboot_keys_load(dir, err, sizeof(err));
  ok(keys && orch_mcuboot_keys_count(keys) == 2,
     "*.pem files are loaded, others ignored (%s)", err);
  orch_mcuboot_keys_free(keys);

  ok(put_file(dir, "c.pem", "garbage") == 0, "and a bad .pem");
  keys = orch_mcuboot_keys_load(dir, err, sizeof(err));
  ok(!keys && strstr(err, "c.pem"), "a bad key is refused: %s", err);

  keys = orch_mcuboot_keys_load("/nonexistent/keys", err, sizeof(err));
  ok(!keys && strstr(err, "/nonexistent/keys"), "a missing folder: %s", err);

  mbedtls_pk_free(&k);
  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    char *p = xasprintf("%s/%s", dir, names[i]);

    unlink(p);
    free(p);
  }
  rmdir(dir);
}

int main(void)
{
  for (size_t i = 0; i < sizeof(body); i++)
    body[i] = (uint8_t)(i * 7 + 3);
  test_plain();
  test_unsigned();
  test_malformed();
  test_signed();
  test_keys_dir();
  return tap_done();
}
