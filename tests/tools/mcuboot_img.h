/*
 * Building MCUboot images for tests (spec section 6), as imgtool lays them
 * out: header, body, optional protected TLV area, then the TLV area with
 * the SHA256 hash and, when a key is given, KEYHASH and ECDSA_SIG. Shared
 * by tests/tools/mkmcuboot and tests/unit/test_mcuboot.
 */
#ifndef FOTAD_MCUBOOT_IMG_H
#define FOTAD_MCUBOOT_IMG_H

#include <mbedtls/pk.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMG_MAGIC 0x96f3b83du
#define IMG_FLAG_ENCRYPTED_AES128 0x04u

struct img_opts {
  uint32_t magic;    /* 0: IMG_MAGIC */
  uint16_t hdr_size; /* 0: 32 */
  uint8_t major, minor;
  uint16_t revision;
  uint32_t build;
  uint32_t flags;
  bool protected_tlvs;     /* add a protected area with a SEC_CNT */
  bool pad_sig;            /* pad the signature to 72 bytes (old imgtool) */
  bool trailer;            /* append a 16-byte boot magic (a --pad'ded slot) */
  mbedtls_pk_context *key; /* EC P-256 private key; NULL: unsigned */
};

/* The RNG callback mbedTLS wants, on fotad's crypto_random(). */
int img_rng(void *arg, unsigned char *buf, size_t len);

/*
 * Builds an image around body. Returns a new buffer with its length in
 * *len, or NULL if signing failed.
 */
uint8_t *img_build(const struct img_opts *o, const uint8_t *body,
                   size_t body_len, size_t *len);

/* Where the TLV area (after body and protected TLVs) starts in an image
 * built with o around body_len bytes. */
size_t img_tlv_offset(const struct img_opts *o, size_t body_len);

#endif
