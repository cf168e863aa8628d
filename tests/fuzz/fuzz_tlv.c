/*
 * Fuzz target: OMA TLV. The first byte picks the request path (the level
 * the payload is read at), the rest is the payload. Whatever decodes must
 * encode back to TLV and to the other formats without trouble; the same
 * bytes also go through the text and opaque decoders.
 */
#include "tests/fuzz/fuzz.h"

static const char *const bases[] = {
    "/3",   "/3/0", "/3/0/11",  "/3/0/11/0", "/33629/0",   "/33629/0/16",
    "/1/0", "/5",   "/40000/0", "/0/1",      "/33629/0/3", "/3/0/13",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lwm2m_records r;
  struct lwm2m_path base;
  char err[256];
  json_t *j;

  if (size < 1)
    return 0;
  if (lwm2m_path_parse(bases[data[0] % (sizeof(bases) / sizeof(bases[0]))],
                       &base) < 0)
    abort();
  data++;
  size--;
  lwm2m_records_init(&r);
  if (lwm2m_decode(LWM2M_CT_TLV, data, size, &base, fuzz_model(), &r, err,
                   sizeof(err)) == 0) {
    fuzz_roundtrip(LWM2M_CT_TLV, &base, &r);
    fuzz_roundtrip(LWM2M_CT_SENML_CBOR, &base, &r);
    fuzz_roundtrip(LWM2M_CT_LWM2M_CBOR, &base, &r);
    fuzz_roundtrip(LWM2M_CT_SENML_JSON, &base, &r);
    j = lwm2m_records_to_json(&r);
    FUZZ_ASSERT(j != NULL);
    json_decref(j);
  } else {
    FUZZ_ASSERT(r.len == 0);
  }
  lwm2m_records_free(&r);
  if (base.len >= 3) {
    if (lwm2m_decode(LWM2M_CT_TEXT, data, size, &base, fuzz_model(), &r, err,
                     sizeof(err)) == 0)
      fuzz_roundtrip(LWM2M_CT_TEXT, &base, &r);
    lwm2m_records_free(&r);
    if (lwm2m_decode(LWM2M_CT_OPAQUE, data, size, &base, fuzz_model(), &r, err,
                     sizeof(err)) == 0)
      fuzz_roundtrip(LWM2M_CT_OPAQUE, &base, &r);
    lwm2m_records_free(&r);
  }
  return 0;
}
