/*
 * mkmcuboot: wraps a body into an MCUboot image for the integration tests,
 * without imgtool. Signs with an EC P-256 private key in PEM (as openssl
 * ecparam -genkey writes it) when -k is given.
 *
 *   mkmcuboot [-k KEY.pem] [-V 1.2.3+4] [-H HDR_SIZE] [-p] [-P] [-e] [-t]
 *             BODY OUTPUT
 */
#include "tests/tools/mcuboot_img.h"

#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (64 << 20)

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: mkmcuboot [OPTIONS] BODY OUTPUT\n"
          "  -k KEY.pem   sign (KEYHASH + ECDSA_SIG) with this P-256 key\n"
          "  -V VERSION   header version MAJOR.MINOR.REVISION+BUILD "
          "(1.0.0+0)\n"
          "  -H SIZE      header size, padding included (32)\n"
          "  -p           add a protected TLV area (a security counter)\n"
          "  -P           pad the signature to 72 bytes, as old imgtool did\n"
          "  -e           set the ENCRYPTED_AES128 flag (body as given)\n"
          "  -t           append a boot trailer magic (a padded slot)\n");
}

static uint8_t *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf;

  if (!f)
    return NULL;
  buf = xmalloc(BODY_MAX);
  *len = fread(buf, 1, BODY_MAX, f);
  if (ferror(f) || !feof(f)) {
    fclose(f);
    free(buf);
    return NULL;
  }
  fclose(f);
  return buf;
}

/* "1.2.3+4" into the header's version fields. */
static int parse_version(const char *s, struct img_opts *o)
{
  char buf[64], *parts[4];
  int64_t v[4];
  size_t n = 0;

  if (strlen(s) >= sizeof(buf))
    return -EINVAL;
  memcpy(buf, s, strlen(s) + 1);
  parts[n++] = buf;
  for (char *p = buf; *p; p++) {
    if ((*p == '.' && n < 3) || (*p == '+' && n == 3)) {
      *p = '\0';
      parts[n++] = p + 1;
    }
  }
  if (n != 4 || parse_int64(parts[0], 0, 255, &v[0]) < 0 ||
      parse_int64(parts[1], 0, 255, &v[1]) < 0 ||
      parse_int64(parts[2], 0, 65535, &v[2]) < 0 ||
      parse_int64(parts[3], 0, UINT32_MAX, &v[3]) < 0)
    return -EINVAL;
  o->major = (uint8_t)v[0];
  o->minor = (uint8_t)v[1];
  o->revision = (uint16_t)v[2];
  o->build = (uint32_t)v[3];
  return 0;
}

int main(int argc, char **argv)
{
  struct img_opts o = {.major = 1};
  mbedtls_pk_context pk;
  const char *keyfile = NULL;
  uint8_t *body = NULL, *img = NULL;
  size_t body_len = 0, len = 0;
  int64_t hdr;
  FILE *out = NULL;
  int c, rc = 1;

  mbedtls_pk_init(&pk);
  while ((c = getopt(argc, argv, "k:V:H:pPeth")) != -1) {
    switch (c) {
    case 'k':
      keyfile = optarg;
      break;
    case 'V':
      if (parse_version(optarg, &o) < 0) {
        fprintf(stderr, "mkmcuboot: bad version %s\n", optarg);
        goto out;
      }
      break;
    case 'H':
      if (parse_int64(optarg, 32, 65535, &hdr) < 0) {
        fprintf(stderr, "mkmcuboot: bad header size %s\n", optarg);
        goto out;
      }
      o.hdr_size = (uint16_t)hdr;
      break;
    case 'p':
      o.protected_tlvs = true;
      break;
    case 'P':
      o.pad_sig = true;
      break;
    case 'e':
      o.flags |= IMG_FLAG_ENCRYPTED_AES128;
      break;
    case 't':
      o.trailer = true;
      break;
    case 'h':
      usage(stdout);
      rc = 0;
      goto out;
    default:
      usage(stderr);
      goto out;
    }
  }
  if (argc - optind != 2) {
    usage(stderr);
    goto out;
  }
  if (keyfile) {
    if (mbedtls_pk_parse_keyfile(&pk, keyfile, NULL) != 0 ||
        mbedtls_pk_get_type(&pk) != MBEDTLS_PK_ECKEY) {
      fprintf(stderr, "mkmcuboot: %s: not an EC private key\n", keyfile);
      goto out;
    }
    o.key = &pk;
  }
  body = slurp(argv[optind], &body_len);
  if (!body) {
    fprintf(stderr, "mkmcuboot: cannot read %s (at most %d bytes)\n",
            argv[optind], BODY_MAX);
    goto out;
  }
  img = img_build(&o, body, body_len, &len);
  if (!img) {
    fprintf(stderr, "mkmcuboot: cannot sign the image\n");
    goto out;
  }
  out = fopen(argv[optind + 1], "wb");
  if (!out || fwrite(img, 1, len, out) != len) {
    fprintf(stderr, "mkmcuboot: cannot write %s\n", argv[optind + 1]);
    goto out;
  }
  rc = 0;
out:
  if (out && fclose(out) != 0)
    rc = 1;
  free(img);
  free(body);
  mbedtls_pk_free(&pk);
  return rc;
}
