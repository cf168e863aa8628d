#include "common/common.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>
#include <string.h>

#define LOG_TAG "crypto"

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static bool seeded;

int crypto_random(void *buf, size_t len)
{
  unsigned char *p = buf;

  if (!seeded) {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                              (const unsigned char *)"fotad", 5) != 0) {
      log_err("cannot seed the random generator");
      return -EIO;
    }
    seeded = true;
  }
  /* The DRBG hands out at most MBEDTLS_CTR_DRBG_MAX_REQUEST per call. */
  while (len > 0) {
    size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST
                   ? len
                   : MBEDTLS_CTR_DRBG_MAX_REQUEST;

    if (mbedtls_ctr_drbg_random(&drbg, p, n) != 0)
      return -EIO;
    p += n;
    len -= n;
  }
  return 0;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
  mbedtls_sha256_ret(data, len, out, 0);
}

void hex_encode(const uint8_t *in, size_t len, char *out)
{
  static const char digits[] = "0123456789abcdef";

  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * len] = '\0';
}

static int nibble(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t outlen, size_t *len)
{
  size_t n = strlen(in);

  if (n % 2 || n / 2 > outlen)
    return -EINVAL;
  for (size_t i = 0; i < n / 2; i++) {
    int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return -EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  *len = n / 2;
  return 0;
}
