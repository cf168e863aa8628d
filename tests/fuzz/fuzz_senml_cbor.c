/*
 * Fuzz target: SenML CBOR, plus the other readers built on the same
 * guarded libcbor loader: LwM2M CBOR (11544), a single CBOR value (60)
 * and Composite path lists.
 */
#include "tests/fuzz/fuzz.h"

static const char *const bases[] = {"/", "/3/0", "/33629/0/16", "/33629/0/3"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lwm2m_path base, *paths = NULL;
  struct lwm2m_records r;
  size_t n = 0;
  char err[256];

  for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
    if (lwm2m_path_parse(bases[b], &base) < 0)
      abort();
    lwm2m_records_init(&r);
    if (lwm2m_decode(LWM2M_CT_SENML_CBOR, data, size, &base, fuzz_model(), &r,
                     err, sizeof(err)) == 0) {
      fuzz_roundtrip(LWM2M_CT_SENML_CBOR, &base, &r);
      fuzz_roundtrip(LWM2M_CT_LWM2M_CBOR, &base, &r);
      if (base.len > 0)
        fuzz_roundtrip(LWM2M_CT_TLV, &base, &r);
    }
    lwm2m_records_free(&r);
    if (lwm2m_decode(LWM2M_CT_LWM2M_CBOR, data, size, &base, fuzz_model(), &r,
                     err, sizeof(err)) == 0) {
      fuzz_roundtrip(LWM2M_CT_LWM2M_CBOR, &base, &r);
      fuzz_roundtrip(LWM2M_CT_SENML_CBOR, &base, &r);
    }
    lwm2m_records_free(&r);
    if (base.len >= 3 && lwm2m_decode(LWM2M_CT_CBOR, data, size, &base,
                                      fuzz_model(), &r, err, sizeof(err)) == 0)
      fuzz_roundtrip(LWM2M_CT_CBOR, &base, &r);
    lwm2m_records_free(&r);
  }
  if (lwm2m_decode_paths(LWM2M_CT_SENML_CBOR, data, size, &paths, &n, err,
                         sizeof(err)) == 0) {
    uint8_t *out = NULL;
    size_t outlen = 0;

    FUZZ_ASSERT(
        lwm2m_encode_paths(LWM2M_CT_SENML_CBOR, paths, n, &out, &outlen) == 0);
    free(out);
    free(paths);
  }
  return 0;
}
