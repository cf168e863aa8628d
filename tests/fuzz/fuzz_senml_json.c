/*
 * Fuzz target: SenML JSON, read at the root and at an instance path (names
 * resolve differently), plus the Composite paths reader, OMA LwM2M JSON
 * and the REST view's records_from_json() on the same text.
 */
#include "tests/fuzz/fuzz.h"

static void one(const uint8_t *data, size_t size, const char *path)
{
  struct lwm2m_records r;
  struct lwm2m_path base;
  char err[256];

  if (lwm2m_path_parse(path, &base) < 0)
    abort();
  lwm2m_records_init(&r);
  if (lwm2m_decode(LWM2M_CT_SENML_JSON, data, size, &base, fuzz_model(), &r,
                   err, sizeof(err)) == 0) {
    fuzz_roundtrip(LWM2M_CT_SENML_JSON, &base, &r);
    fuzz_roundtrip(LWM2M_CT_SENML_CBOR, &base, &r);
    fuzz_roundtrip(LWM2M_CT_OMA_JSON, &base, &r);
  }
  lwm2m_records_free(&r);
  if (lwm2m_decode(LWM2M_CT_OMA_JSON, data, size, &base, fuzz_model(), &r, err,
                   sizeof(err)) == 0) {
    fuzz_roundtrip(LWM2M_CT_OMA_JSON, &base, &r);
    if (base.len > 0)
      fuzz_roundtrip(LWM2M_CT_TLV, &base, &r);
  }
  lwm2m_records_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lwm2m_records r;
  struct lwm2m_path base, *paths = NULL;
  size_t n = 0;
  char err[256];
  json_t *j;

  one(data, size, "/");
  one(data, size, "/3/0");
  if (lwm2m_decode_paths(LWM2M_CT_SENML_JSON, data, size, &paths, &n, err,
                         sizeof(err)) == 0) {
    uint8_t *out = NULL;
    size_t outlen = 0;

    FUZZ_ASSERT(
        lwm2m_encode_paths(LWM2M_CT_SENML_JSON, paths, n, &out, &outlen) == 0);
    free(out);
    free(paths);
  }
  j = json_loadb((const char *)data, size, 0, NULL);
  if (j) {
    if (lwm2m_path_parse("/", &base) < 0)
      abort();
    lwm2m_records_init(&r);
    if (lwm2m_records_from_json(j, &base, fuzz_model(), &r, err,
                                sizeof(err)) == 0) {
      json_t *back = lwm2m_records_to_json(&r);

      FUZZ_ASSERT(back != NULL);
      json_decref(back);
    }
    lwm2m_records_free(&r);
    json_decref(j);
  }
  return 0;
}
