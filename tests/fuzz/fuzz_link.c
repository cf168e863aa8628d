/*
 * Fuzz target: CoRE link format. What parses must format and parse again
 * to the same links (formatting is then a fixed point). The same bytes go
 * through the Execute argument check.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lwm2m_links l, again;
  char err[256];
  char *s, *s2;

  (void)lwm2m_exec_args_check((const char *)data, size, err, sizeof(err));
  if (lwm2m_links_parse((const char *)data, size, &l, err, sizeof(err)) < 0) {
    FUZZ_ASSERT(l.len == 0 && l.v == NULL);
    return 0;
  }
  for (size_t i = 0; i < l.len; i++)
    for (size_t k = 0; k < l.v[i].nattrs; k++)
      (void)lwm2m_link_attr(&l.v[i], l.v[i].attrs[k].name, NULL);
  s = lwm2m_links_format(&l);
  FUZZ_ASSERT(s != NULL);
  FUZZ_ASSERT(lwm2m_links_parse(s, strlen(s), &again, err, sizeof(err)) == 0);
  FUZZ_ASSERT(again.len == l.len);
  s2 = lwm2m_links_format(&again);
  FUZZ_ASSERT(s2 != NULL && strcmp(s, s2) == 0);
  free(s2);
  free(s);
  lwm2m_links_free(&again);
  lwm2m_links_free(&l);
  return 0;
}
