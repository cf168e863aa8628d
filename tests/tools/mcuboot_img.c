#include "tests/tools/mcuboot_img.h"

#include "common/common.h"

#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

#define PROT_SIZE 12 /* info header, then SEC_CNT: 4 + 4 bytes */

int img_rng(void *arg, unsigned char *buf, size_t len)
{
  return crypto_random(buf, len) < 0 ? -1 : 0;
}

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
  put16(p, (uint16_t)v);
  put16(p + 2, (uint16_t)(v >> 16));
}

/* Appends one TLV entry at *off. */
static void tlv(uint8_t *img, size_t *off, uint16_t type, const void *val,
                uint16_t len)
{
  put16(img + *off, type);
  put16(img + *off + 2, len);
  memcpy(img + *off + 4, val, len);
  *off += 4 + (size_t)len;
}

size_t img_tlv_offset(const struct img_opts *o, size_t body_len)
{
  size_t hdr = o->hdr_size ? o->hdr_size : 32;

  return hdr + body_len + (o->protected_tlvs ? PROT_SIZE : 0);
}

uint8_t *img_build(const struct img_opts *o, const uint8_t *body,
                   size_t body_len, size_t *len)
{
  size_t hdr = o->hdr_size ? o->hdr_size : 32;
  size_t off, area;
  uint8_t *img = xcalloc(1, hdr + body_len + PROT_SIZE + 512 + 16);
  uint8_t hash[32];

  put32(img, o->magic ? o->magic : IMG_MAGIC);
  put16(img + 8, (uint16_t)hdr);
  put16(img + 10, o->protected_tlvs ? PROT_SIZE : 0);
  put32(img + 12, (uint32_t)body_len);
  put32(img + 16, o->flags);
  img[20] = o->major;
  img[21] = o->minor;
  put16(img + 22, o->revision);
  put32(img + 24, o->build);
  memcpy(img + hdr, body, body_len);
  off = hdr + body_len;
  if (o->protected_tlvs) {
    uint8_t cnt[4] = {7, 0, 0, 0};

    put16(img + off, 0x6908);
    put16(img + off + 2, PROT_SIZE);
    off += 4;
    tlv(img, &off, 0x50, cnt, sizeof(cnt));
  }
  /* The hash covers header, body and protected area. */
  mbedtls_sha256_ret(img, off, hash, 0);
  area = off;
  off += 4;
  tlv(img, &off, 0x10, hash, sizeof(hash));
  if (o->key) {
    unsigned char der[256], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    uint8_t keyhash[32];
    size_t siglen = 0;
    int n = mbedtls_pk_write_pubkey_der(o->key, der, sizeof(der));

    if (n <= 0 || mbedtls_pk_sign(o->key, MBEDTLS_MD_SHA256, hash, 32, sig,
                                  &siglen, img_rng, NULL) != 0) {
      free(img);
      return NULL;
    }
    mbedtls_sha256_ret(der + sizeof(der) - n, (size_t)n, keyhash, 0);
    tlv(img, &off, 0x01, keyhash, sizeof(keyhash));
    if (o->pad_sig && siglen < 72) {
      memset(sig + siglen, 0, 72 - siglen);
      siglen = 72;
    }
    tlv(img, &off, 0x22, sig, (uint16_t)siglen);
  }
  put16(img + area, 0x6907);
  put16(img + area + 2, (uint16_t)(off - area));
  if (o->trailer) {
    static const uint8_t boot_magic[16] = {0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2,
                                           0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f,
                                           0x2c, 0xb6, 0x79, 0x80};

    memcpy(img + off, boot_magic, sizeof(boot_magic));
    off += sizeof(boot_magic);
  }
  *len = off;
  return img;
}
