/*
 * GET /api/v1/openapi.json: the API's OpenAPI 3 description. The document
 * is api/openapi.json in the source tree, compiled into the binary by the
 * build (api/openapi-json.c), so it is served the same from a build
 * folder, an installed fotad or a release tarball, and cannot drift from
 * the binary that serves it. tests/unit/test_api.c checks that it
 * describes exactly the routes of api_routes[].
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

void api_get_openapi(struct api_req *req)
{
  char *text = xmalloc(api_openapi_json_len);

  memcpy(text, api_openapi_json, api_openapi_json_len);
  api_reply_text(req, 200, text, api_openapi_json_len, "application/json");
}
