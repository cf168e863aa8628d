/*
 * Idempotency-Key on the POSTs that create things: a client that retries
 * after a lost reply gets the first reply again instead of a duplicate (or
 * a 409), for idempotency_window after the first request.
 *
 * The reply is stored encrypted (AES-256-GCM) under a key derived from the
 * caller's own bearer token, which fotad does not store: a reply that
 * shows a secret once (a new token, a generated PSK) does not sit in the
 * database readable by whoever copies it.
 */
#include "api/api_int.h"

#include <errno.h>
#include <mbedtls/gcm.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "api"

#define IDEM_KEY_MAX 255
#define NONCE_LEN 12
#define TAG_LEN 16

/* "POST /api/v1/credentials": what a key is scoped to, with the token. */
static char *request_name(struct api_req *req)
{
  return xasprintf("%s %s", req->method, req->path);
}

/* SHA-256 of the fields, each with its NUL so that none runs into the
 * next: "fotad idempotency v1", the bearer token, the key, the request. */
static void derive_key(struct api_req *req, const char *request,
                       uint8_t key[32])
{
  const char *parts[] = {"fotad idempotency v1", req->bearer, req->idem_key,
                         request};
  size_t len = 0, off = 0;
  char *material;

  for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
    len += strlen(parts[i]) + 1;
  material = xmalloc(len);
  for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
    size_t n = strlen(parts[i]) + 1;

    memcpy(material + off, parts[i], n);
    off += n;
  }
  crypto_sha256(material, len, key);
  explicit_bzero(material, len);
  free(material);
}

/* Encrypts or decrypts text in place of out (len bytes, plus the tag). */
static int seal(bool encrypt, const uint8_t key[32], const uint8_t *nonce,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
  mbedtls_gcm_context gcm;
  int rc;

  mbedtls_gcm_init(&gcm);
  rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256);
  if (rc == 0 && encrypt)
    rc = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce,
                                   NONCE_LEN, NULL, 0, in, out, TAG_LEN, tag);
  else if (rc == 0)
    rc = mbedtls_gcm_auth_decrypt(&gcm, len, nonce, NONCE_LEN, NULL, 0, tag,
                                  TAG_LEN, in, out);
  mbedtls_gcm_free(&gcm);
  return rc == 0 ? 0 : -EIO;
}

struct stored {
  bool found;
  bool same_body;
  int status;
  uint8_t nonce[NONCE_LEN];
  uint8_t *sealed; /* ciphertext, then the tag */
  size_t sealed_len;
  const uint8_t *want_hash;
};

static void got_stored(void *arg, const struct db_idem *r)
{
  struct stored *st = arg;

  st->found = true;
  st->same_body = memcmp(r->request_hash, st->want_hash, 32) == 0;
  st->status = r->status;
  if (r->nonce_len == NONCE_LEN && r->response_len >= TAG_LEN) {
    memcpy(st->nonce, r->nonce, NONCE_LEN);
    st->sealed = xmalloc(r->response_len);
    memcpy(st->sealed, r->response, r->response_len);
    st->sealed_len = r->response_len;
  }
}

/* Sends the stored reply again; returns 1, or -1 after an error reply. */
static int replay(struct api_req *req, const char *request, struct stored *st)
{
  uint8_t key[32];
  size_t len;
  char *text;

  if (!st->sealed) {
    api_reply_error(req, 500, "internal", "the stored reply is damaged");
    return -1;
  }
  len = st->sealed_len - TAG_LEN;
  text = xmalloc(len + 1);
  derive_key(req, request, key);
  if (seal(false, key, st->nonce, st->sealed, len, (uint8_t *)text,
           st->sealed + len) < 0) {
    explicit_bzero(key, sizeof(key));
    free(text);
    api_reply_error(req, 500, "internal", "the stored reply is damaged");
    return -1;
  }
  explicit_bzero(key, sizeof(key));
  text[len] = '\0';
  log_debug("%s: replaying the reply to Idempotency-Key '%s'", request,
            req->idem_key);
  api_add_header(req, "Idempotent-Replayed", "true");
  api_reply_text(req, (unsigned)st->status, text, len, "application/json");
  return 1;
}

int api_idem_check(struct api_req *req)
{
  const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                "Idempotency-Key");
  struct stored st = {0};
  char *request = NULL;
  size_t klen;
  int rc = 0;

  /* Public routes have no caller to scope a key to. */
  if (!key || req->caller.token_id == 0)
    return 0;
  klen = strlen(key);
  if (klen == 0 || klen > IDEM_KEY_MAX ||
      strspn(key, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWX"
                  "YZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~") != klen) {
    api_reply_invalid(req, "Idempotency-Key",
                      "expected 1 to %d printable ASCII characters",
                      IDEM_KEY_MAX);
    return -1;
  }
  crypto_sha256(req->body ? req->body : "", req->body_len, req->idem_hash);
  req->idem_key = xstrdup(key);
  request = request_name(req);
  st.want_hash = req->idem_hash;
  rc = db_idem_get(req->api->db, req->caller.token_id, key, request,
                   loop_wall(req->api->loop) -
                       req->api->idempotency_window_s * 1000,
                   got_stored, &st);
  if (rc == -ENOENT) {
    rc = 0; /* first time: the reply is stored by api_reply_json() */
    goto out;
  }
  if (rc < 0) {
    api_reply_error(req, 503, "unavailable",
                    "cannot look up the Idempotency-Key now");
    rc = -1;
    goto out;
  }
  if (!st.same_body) {
    free(req->idem_key);
    req->idem_key = NULL;
    api_reply_error(req, 422, "idempotency_key_reused",
                    "Idempotency-Key '%s' was used for a different request "
                    "body; use a new key for a new request",
                    key);
    rc = -1;
    goto out;
  }
  rc = replay(req, request, &st);
  free(req->idem_key);
  req->idem_key = NULL;
out:
  free(st.sealed);
  free(request);
  return rc;
}

void api_idem_store(struct api_req *req, unsigned status, const char *text,
                    size_t len)
{
  uint8_t key[32], nonce[NONCE_LEN];
  uint8_t *sealed = NULL;
  char *request = NULL;
  struct db_idem r;

  /* A retry should try again after a failure that was not its fault. */
  if (status >= 500 || status == 429)
    return;
  request = request_name(req);
  sealed = xmalloc(len + TAG_LEN);
  derive_key(req, request, key);
  if (crypto_random(nonce, sizeof(nonce)) < 0 ||
      seal(true, key, nonce, (const uint8_t *)text, len, sealed,
           sealed + len) < 0) {
    log_warn("%s: cannot seal the reply for Idempotency-Key '%s'", request,
             req->idem_key);
    goto out;
  }
  r = (struct db_idem){
      .token_id = req->caller.token_id,
      .key = req->idem_key,
      .request = request,
      .request_hash = req->idem_hash,
      .status = (int)status,
      .nonce = nonce,
      .nonce_len = sizeof(nonce),
      .response = sealed,
      .response_len = len + TAG_LEN,
      .created_at = loop_wall(req->api->loop),
  };
  if (db_idem_put(req->api->db, &r) < 0)
    log_warn("%s: the reply for Idempotency-Key '%s' was not kept", request,
             req->idem_key);
out:
  explicit_bzero(key, sizeof(key));
  free(sealed);
  free(request);
}
