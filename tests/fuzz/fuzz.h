/*
 * What the fuzz targets share: the libFuzzer entry point, a model with the
 * built-in objects, and the round-trip property every codec must keep:
 * whatever a decoder accepted and an encoder then wrote, the decoder
 * accepts again, with as many records.
 */
#ifndef FOTAD_FUZZ_H
#define FOTAD_FUZZ_H

#include "server/lwm2m.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                         \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* Built once and kept for the life of the process (still reachable). */
static inline const struct lwm2m_model *fuzz_model(void)
{
  static struct lwm2m_model *m;

  if (!m)
    m = lwm2m_model_new();
  return m;
}

/* Encodes r in ct at base; if that works, decoding must work again. */
static inline void fuzz_roundtrip(uint16_t ct, const struct lwm2m_path *base,
                                  const struct lwm2m_records *r)
{
  struct lwm2m_records back;
  uint8_t *out = NULL;
  size_t outlen = 0;
  char err[256];
  int rc;

  rc =
      lwm2m_encode(ct, base, r, fuzz_model(), &out, &outlen, err, sizeof(err));
  if (rc < 0)
    return;
  lwm2m_records_init(&back);
  rc = lwm2m_decode(ct, out, outlen, base, fuzz_model(), &back, err,
                    sizeof(err));
  if (rc < 0)
    fprintf(stderr, "re-decoding %s failed: %s\n", lwm2m_ct_name(ct), err);
  FUZZ_ASSERT(rc == 0);
  FUZZ_ASSERT(back.len == r->len);
  lwm2m_records_free(&back);
  free(out);
}

#endif
