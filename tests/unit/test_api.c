/*
 * The REST API's route table against its OpenAPI document (api/openapi.json,
 * compiled in): every route is documented, with its path parameters and
 * its scope, and every documented operation is a route. Then the small
 * pure helpers: scope names, ETags.
 */
#include "api/api_int.h"

#include "tests/tap.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static json_t *doc;

static void lower(const char *in, char *out, size_t len)
{
  size_t i = 0;

  for (; in[i] && i + 1 < len; i++)
    out[i] = (char)tolower((unsigned char)in[i]);
  out[i] = '\0';
}

/* A parameter object, following a $ref into components/parameters. */
static json_t *deref_param(json_t *p)
{
  const char *ref = json_string_value(json_object_get(p, "$ref"));
  const char *prefix = "#/components/parameters/";

  if (!ref)
    return p;
  if (strncmp(ref, prefix, strlen(prefix)) != 0)
    return NULL;
  return json_object_get(
      json_object_get(json_object_get(doc, "components"), "parameters"),
      ref + strlen(prefix));
}

static bool has_param(json_t *opn, const char *in, const char *name)
{
  json_t *params = json_object_get(opn, "parameters"), *p;
  size_t i;

  json_array_foreach(params, i, p)
  {
    json_t *d = deref_param(p);

    if (d && strcmp(json_string_value(json_object_get(d, "in")), in) == 0 &&
        strcmp(json_string_value(json_object_get(d, "name")), name) == 0)
      return true;
  }
  return false;
}

/* Every "{name}" of the pattern is a documented path parameter. */
static bool path_params_documented(const char *pattern, json_t *opn)
{
  const char *p = pattern;

  while ((p = strchr(p, '{')) != NULL) {
    const char *end = strchr(p, '}');
    char name[32];

    if (!end || (size_t)(end - p) >= sizeof(name))
      return false;
    memcpy(name, p + 1, (size_t)(end - p - 1));
    name[end - p - 1] = '\0';
    if (!has_param(opn, "path", name)) {
      printf("# %s: path parameter %s undocumented\n", pattern, name);
      return false;
    }
    p = end;
  }
  return true;
}

/* A 2xx reply, and the 500 error in the Error schema (every route may
 * fail). */
static bool responses_ok(json_t *opn)
{
  json_t *resp = json_object_get(opn, "responses");
  const char *code, *ref;
  json_t *r;
  bool two = false;

  json_object_foreach(resp, code, r)
  {
    if (code[0] == '2')
      two = true;
  }
  ref =
      json_string_value(json_object_get(json_object_get(resp, "500"), "$ref"));
  return two && ref && strcmp(ref, "#/components/responses/Internal") == 0;
}

static void check_routes(void)
{
  json_t *paths = json_object_get(doc, "paths");

  ok(json_is_object(paths), "the document has paths");
  for (size_t i = 0; i < api_nroutes; i++) {
    const struct api_route *r = &api_routes[i];
    char method[16];
    json_t *opn;
    const char *scope;

    lower(r->method, method, sizeof(method));
    opn = json_object_get(json_object_get(paths, r->pattern), method);
    ok(opn != NULL, "%s %s is documented", r->method, r->pattern);
    if (!opn)
      continue;
    ok(r->scope != API_SCOPE_UNSET, "%s %s declares a scope", r->method,
       r->pattern);
    scope = json_string_value(json_object_get(opn, "x-fotad-scope"));
    is_str(scope, api_scope_name(r->scope), "%s %s: documented scope",
           r->method, r->pattern);
    ok(path_params_documented(r->pattern, opn),
       "%s %s: path parameters documented", r->method, r->pattern);
    ok(responses_ok(opn), "%s %s: a 2xx reply and errors documented",
       r->method, r->pattern);
    ok(has_param(opn, "header", "Idempotency-Key") ==
           ((r->flags & API_IDEMPOTENT) != 0),
       "%s %s: Idempotency-Key documented iff honoured", r->method,
       r->pattern);
    ok(json_is_string(json_object_get(opn, "operationId")),
       "%s %s: has an operationId", r->method, r->pattern);
  }
}

static bool is_route(const char *path, const char *method)
{
  for (size_t i = 0; i < api_nroutes; i++) {
    char m[16];

    lower(api_routes[i].method, m, sizeof(m));
    if (strcmp(api_routes[i].pattern, path) == 0 && strcmp(m, method) == 0)
      return true;
  }
  return false;
}

static void check_documented_are_routes(void)
{
  static const char *const methods[] = {"get",   "put",  "post",    "delete",
                                        "patch", "head", "options", "trace"};
  json_t *paths = json_object_get(doc, "paths"), *item;
  const char *path;

  json_object_foreach(paths, path, item)
  {
    const char *key;
    json_t *v;

    json_object_foreach(item, key, v)
    {
      bool is_method = false;

      for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
        is_method = is_method || strcmp(key, methods[i]) == 0;
      if (!is_method)
        continue;
      ok(is_route(path, key), "documented %s %s is a route", key, path);
    }
  }
}

static void check_helpers(void)
{
  static const char *const names[] = {"read", "operator", "admin"};
  enum api_scope s;
  char a[40], b[40];

  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    ok(api_scope_parse(names[i], &s) == 0 &&
           strcmp(api_scope_name(s), names[i]) == 0,
       "scope %s parses and prints back", names[i]);
  }
  ok(api_scope_parse("public", &s) < 0 && api_scope_parse("Admin", &s) < 0 &&
         api_scope_parse("", &s) < 0,
     "only token scopes parse");
  ok(API_SCOPE_READ < API_SCOPE_OPERATOR &&
         API_SCOPE_OPERATOR < API_SCOPE_ADMIN,
     "scopes are ordered read < operator < admin");
  api_etag_of("{}\n", 3, a);
  api_etag_of("{}\n", 3, b);
  ok(strcmp(a, b) == 0 && a[0] == '"' && a[strlen(a) - 1] == '"' &&
         strlen(a) == 34,
     "an ETag is a quoted, stable digest (%s)", a);
  api_etag_of("{} \n", 4, b);
  ok(strcmp(a, b) != 0, "another representation has another ETag");
}

int main(void)
{
  json_error_t jerr;

  doc = json_loadb((const char *)api_openapi_json, api_openapi_json_len, 0,
                   &jerr);
  ok(doc != NULL, "api/openapi.json parses (%s at line %d)", jerr.text,
     jerr.line);
  if (!doc)
    return tap_done();
  is_str(json_string_value(json_object_get(doc, "openapi")), "3.0.3",
         "it is an OpenAPI 3 document");
  is_str(json_string_value(
             json_object_get(json_object_get(doc, "info"), "version")),
         PACKAGE_VERSION, "its version is fotad's");
  ok(json_is_object(json_object_get(
         json_object_get(json_object_get(doc, "components"), "schemas"),
         "Error")),
     "it defines the Error schema");
  check_routes();
  check_documented_are_routes();
  check_helpers();
  json_decref(doc);
  return tap_done();
}
