/*
 * DTLS credentials: create (a PSK key may be generated and is shown only
 * in that answer), list and show without secrets, delete.
 */
#include "api/api_int.h"

#include <errno.h>
#include <mbedtls/base64.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define PSK_MAX 64
#define PSK_IDENTITY_MAX 64
#define RPK_MAX 512

static void add_credential(void *arg, const struct db_credential *c)
{
  json_t *arr = arg;
  json_t *j = json_pack("{s:s, s:s, s:s?, s:o}", "endpoint", c->endpoint,
                        "type", c->type, "identity", c->identity, "created_at",
                        api_time(c->created_at));

  if (c->public_key) {
    unsigned char b64[RPK_MAX * 2];
    size_t n = 0;

    if (mbedtls_base64_encode(b64, sizeof(b64), &n, c->public_key,
                              c->public_key_len) == 0)
      json_object_set_new(j, "public_key", json_stringn((char *)b64, n));
  }
  json_array_append_new(arr, j);
}

/* GET /api/v1/credentials?cursor=EP&limit=N: never shows keys. */
void api_list_credentials(struct api_req *req)
{
  json_t *arr = json_array();
  int limit;

  if (api_query_limit(req, 100, 1000, &limit) < 0) {
    json_decref(arr);
    return;
  }
  if (db_credentials_list(req->api->db, api_query(req, "cursor"), limit,
                          add_credential, arr) < 0) {
    json_decref(arr);
    api_reply_error(req, 500, "internal", "cannot list credentials");
    return;
  }
  {
    json_t *last = json_array_get(arr, json_array_size(arr) - 1);
    const char *next =
        json_array_size(arr) == (size_t)limit && last
            ? json_string_value(json_object_get(last, "endpoint"))
            : NULL;

    api_reply_json(
        req, 200,
        json_pack("{s:o, s:s?}", "credentials", arr, "next_cursor", next));
  }
}

/* GET /api/v1/credentials/{ep} */
void api_get_credential(struct api_req *req)
{
  json_t *arr = json_array();
  int rc = db_credential_by_endpoint(req->api->db, req->params[0],
                                     add_credential, arr);

  if (rc == -ENOENT) {
    json_decref(arr);
    api_reply_error(req, 404, "not_found", "no credential for '%s'",
                    req->params[0]);
    return;
  }
  if (rc < 0) {
    json_decref(arr);
    api_reply_error(req, 500, "internal", "cannot read the credential");
    return;
  }
  api_reply_json(req, 200, json_incref(json_array_get(arr, 0)));
  json_decref(arr);
}

/* Reads an optional string field; replies 400 if it has another type. */
static int opt_string(struct api_req *req, json_t *body, const char *key,
                      size_t max, const char **out)
{
  json_t *v = json_object_get(body, key);

  *out = NULL;
  if (!v)
    return 0;
  if (!json_is_string(v) || json_string_length(v) == 0 ||
      json_string_length(v) > max) {
    api_reply_invalid(req, key, "expected a string of 1 to %zu characters",
                      max);
    return -EINVAL;
  }
  *out = json_string_value(v);
  return 0;
}

/*
 * POST /api/v1/credentials
 *   {"endpoint": "dev-1", "type": "psk", "identity": "dev-1", "key": "hex"}
 *   {"endpoint": "dev-1", "type": "rpk", "public_key": "base64 DER SPKI"}
 *   {"endpoint": "dev-1", "type": "x509", "identity": "certificate CN"}
 * A PSK without "key" gets 16 random bytes, shown in this answer only.
 */
void api_create_credential(struct api_req *req)
{
  static const char *const fields[] = {"endpoint", "type",       "identity",
                                       "key",      "public_key", NULL};
  struct db_credential c = {0};
  uint8_t key[PSK_MAX], pub[RPK_MAX];
  char hex[2 * PSK_MAX + 1] = "";
  const char *ep, *type, *identity, *keyhex, *pubb64;
  bool generated = false;
  json_t *body = api_body_json(req);
  int rc;

  if (!body)
    return;
  if (api_check_fields(req, body, fields) < 0 ||
      opt_string(req, body, "endpoint", 255, &ep) < 0 ||
      opt_string(req, body, "type", 8, &type) < 0 ||
      opt_string(req, body, "identity", PSK_IDENTITY_MAX, &identity) < 0 ||
      opt_string(req, body, "key", 2 * PSK_MAX, &keyhex) < 0 ||
      opt_string(req, body, "public_key", RPK_MAX * 2, &pubb64) < 0)
    goto out;
  if (!ep || !type) {
    api_reply_invalid(req, ep ? "type" : "endpoint", "required");
    goto out;
  }
  c.endpoint = ep;
  c.type = type;
  c.created_at = loop_wall(req->api->loop);
  if (strcmp(type, "psk") == 0) {
    c.identity = identity ? identity : ep;
    if (keyhex) {
      if (hex_decode(keyhex, key, sizeof(key), &c.secret_len) < 0 ||
          c.secret_len < 8) {
        api_reply_invalid(req, "key", "expected 8 to %d bytes in hex",
                          PSK_MAX);
        goto out;
      }
    } else {
      c.secret_len = 16;
      if (crypto_random(key, c.secret_len) < 0) {
        api_reply_error(req, 500, "internal", "no random source");
        goto out;
      }
      generated = true;
    }
    c.secret = key;
  } else if (strcmp(type, "rpk") == 0) {
    if (!pubb64 ||
        mbedtls_base64_decode(pub, sizeof(pub), &c.public_key_len,
                              (const unsigned char *)pubb64,
                              strlen(pubb64)) != 0 ||
        c.public_key_len == 0) {
      api_reply_invalid(req, "public_key",
                        "expected the DER SubjectPublicKeyInfo in base64");
      goto out;
    }
    c.public_key = pub;
  } else if (strcmp(type, "x509") == 0) {
    if (!identity) {
      api_reply_invalid(req, "identity", "the certificate CN is required");
      goto out;
    }
    c.identity = identity;
  } else {
    api_reply_invalid(req, "type", "expected psk, rpk or x509");
    goto out;
  }
  /* The credential and its audit row go in together, or not at all. */
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot store the credential");
    goto out;
  }
  rc = db_credential_add(req->api->db, &c);
  if (rc == 0) {
    char *target = xasprintf("/api/v1/credentials/%s", ep);

    rc = api_audit(req, "credential.create", target,
                   json_pack("{s:s, s:s?, s:b}", "type", type, "identity",
                             c.identity, "generated", generated));
    free(target);
  }
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0)
    db_action_end(req->api->db, false);
  if (rc == -EEXIST) {
    api_reply_error(req, 409, "conflict",
                    "a credential for this endpoint or identity exists");
    goto out;
  }
  if (rc < 0) {
    api_reply_error(req, 500, "internal", "cannot store the credential");
    goto out;
  }
  log_info("credential (%s) created for %s", type, ep);
  {
    json_t *j = json_pack("{s:s, s:s, s:s?, s:o}", "endpoint", ep, "type",
                          type, "identity", c.identity, "created_at",
                          api_time(c.created_at));

    if (generated) {
      /* The only time a key leaves fotad: the caller provisions it. */
      hex_encode(key, c.secret_len, hex);
      json_object_set_new(j, "key", json_string(hex));
    }
    api_reply_json(req, 201, j);
  }
out:
  json_decref(body);
}

/* DELETE /api/v1/credentials/{ep}, with If-Match if the caller wants to
 * be sure it deletes what it last saw. */
void api_delete_credential(struct api_req *req)
{
  json_t *arr = json_array(), *cur;
  char *target = NULL;
  int rc = db_credential_by_endpoint(req->api->db, req->params[0],
                                     add_credential, arr);

  if (rc == -ENOENT) {
    api_reply_error(req, 404, "not_found", "no credential for '%s'",
                    req->params[0]);
    goto out;
  }
  cur = json_array_get(arr, 0);
  if (rc < 0 || !cur) {
    api_reply_error(req, 500, "internal", "cannot read the credential");
    goto out;
  }
  if (api_check_if_match(req, cur, false) < 0)
    goto out;
  if (db_action_begin(req->api->db) < 0) {
    api_reply_error(req, 500, "internal", "cannot delete the credential");
    goto out;
  }
  target = xasprintf("/api/v1/credentials/%s", req->params[0]);
  rc = db_credential_delete(req->api->db, req->params[0]);
  if (rc == 0)
    rc = api_audit(req, "credential.delete", target,
                   json_pack("{s:O}", "type", json_object_get(cur, "type")));
  if (rc == 0)
    rc = db_action_end(req->api->db, true);
  if (rc < 0) {
    db_action_end(req->api->db, false);
    api_reply_error(req, 500, "internal", "cannot delete the credential");
    goto out;
  }
  log_info("credential of %s deleted", req->params[0]);
  api_reply_json(req, 200, json_pack("{s:s}", "deleted", req->params[0]));
out:
  free(target);
  json_decref(arr);
}
