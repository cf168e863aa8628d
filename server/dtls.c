/*
 * DTLS on the CoAPS listener: pre-shared keys looked up per identity in
 * the credentials table, and certificates (X.509 or raw public keys)
 * checked against the configured CA or the stored keys. The identity a
 * handshake proved is remembered per peer address, for the registration
 * interface to check against the endpoint name.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "dtls"

/* One proven identity, keyed by the peer address of its DTLS session. */
struct peer_id {
  struct hmap_node node;
  char addr[64];
  char kind[8];   /* "psk", "rpk", "x509" */
  char *identity; /* PSK identity, CN, or the endpoint of a raw key */
};

static uint64_t addr_hash(const char *a)
{
  return hash_bytes(a, strlen(a));
}

static struct peer_id *peer_find(const struct srv *srv, const char *addr)
{
  uint64_t h = addr_hash(addr);

  for (struct hmap_node *n = hmap_first(&srv->peer_ids, h); n; n = n->next) {
    struct peer_id *p = container_of(n, struct peer_id, node);

    if (n->hash == h && strcmp(p->addr, addr) == 0)
      return p;
  }
  return NULL;
}

static void session_addr(coap_session_t *session, char *buf, size_t len)
{
  const coap_address_t *a = coap_session_get_addr_remote(session);

  buf[0] = '\0';
  if (a)
    format_sockaddr(&a->addr.sa, buf, len);
}

static void remember(struct srv *srv, coap_session_t *session,
                     const char *kind, const char *identity)
{
  char addr[64];
  struct peer_id *p;

  session_addr(session, addr, sizeof(addr));
  p = peer_find(srv, addr);
  if (!p) {
    p = xcalloc(1, sizeof(*p));
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    hmap_insert(&srv->peer_ids, &p->node, addr_hash(addr));
  }
  snprintf(p->kind, sizeof(p->kind), "%s", kind);
  free(p->identity);
  p->identity = xstrdup(identity);
}

int srv_session_identity(struct srv *srv, coap_session_t *session,
                         const char **kind, const char **identity)
{
  char addr[64];
  const struct peer_id *p;

  if (coap_session_get_proto(session) != COAP_PROTO_DTLS) {
    *kind = "nosec";
    *identity = NULL;
    return 0;
  }
  session_addr(session, addr, sizeof(addr));
  p = peer_find(srv, addr);
  if (!p)
    return -ENOENT;
  *kind = p->kind;
  *identity = p->identity;
  return 0;
}

struct key_ctx {
  uint8_t key[COAP_DTLS_MAX_PSK];
  size_t len;
  bool found;
};

static void got_psk(void *arg, const struct db_credential *c)
{
  struct key_ctx *k = arg;

  if (strcmp(c->type, "psk") != 0 || !c->secret ||
      c->secret_len > sizeof(k->key))
    return;
  memcpy(k->key, c->secret, c->secret_len);
  k->len = c->secret_len;
  k->found = true;
}

/*
 * libcoap asks for the key of the identity a client presented. An unknown
 * identity gets no key, which fails the handshake.
 */
static const coap_bin_const_t *psk_for_identity(coap_bin_const_t *identity,
                                                coap_session_t *session,
                                                void *arg)
{
  struct srv *srv = arg;
  struct key_ctx k = {0};
  char id[COAP_DTLS_MAX_PSK_IDENTITY + 1];
  char addr[64];

  session_addr(session, addr, sizeof(addr));
  if (!identity || identity->length == 0 || identity->length >= sizeof(id) ||
      memchr(identity->s, '\0', identity->length)) {
    log_warn("%s: PSK handshake with an empty or invalid identity refused",
             addr);
    srv->dtls_failures++;
    return NULL;
  }
  memcpy(id, identity->s, identity->length);
  id[identity->length] = '\0';
  if (db_credential_by_identity(srv->db, id, got_psk, &k) < 0 || !k.found) {
    log_warn("%s: PSK identity '%s' is unknown; handshake refused", addr, id);
    srv->dtls_failures++;
    return NULL;
  }
  memcpy(srv->psk_buf, k.key, k.len);
  srv->psk_bin.s = srv->psk_buf;
  srv->psk_bin.length = k.len;
  remember(srv, session, "psk", id);
  srv->dtls_handshakes++;
  return &srv->psk_bin;
}

struct rpk_ctx {
  char *endpoint;
};

static void got_rpk(void *arg, const struct db_credential *c)
{
  struct rpk_ctx *r = arg;

  if (strcmp(c->type, "rpk") == 0)
    r->endpoint = xstrdup(c->endpoint);
}

/*
 * Called for each certificate of the client's chain (depth 0 is the
 * client's own) once libcoap has checked it against the CA; or with the
 * raw public key in RPK mode. Returns 1 to accept.
 */
static int check_cert(const char *cn, const uint8_t *der, size_t der_len,
                      coap_session_t *session, unsigned int depth,
                      int validated, void *arg)
{
  struct srv *srv = arg;
  char addr[64];

  session_addr(session, addr, sizeof(addr));
  if (depth > 0)
    return validated;
  if (srv->pki_rpk) {
    struct rpk_ctx r = {0};

    /* A raw key is trusted only when stored for an endpoint. */
    if (db_credential_by_key(srv->db, der, der_len, got_rpk, &r) < 0 ||
        !r.endpoint) {
      log_warn("%s: raw public key not registered for any endpoint; "
               "handshake refused",
               addr);
      srv->dtls_failures++;
      return 0;
    }
    remember(srv, session, "rpk", r.endpoint);
    free(r.endpoint);
    srv->dtls_handshakes++;
    return 1;
  }
  if (!validated || !cn || !cn[0]) {
    log_warn("%s: client certificate not valid for the configured CA%s", addr,
             cn ? "" : " (no CN)");
    srv->dtls_failures++;
    return 0;
  }
  remember(srv, session, "x509", cn);
  srv->dtls_handshakes++;
  return 1;
}

/* Reads a (small) PEM file into a new NUL-terminated buffer. */
static int read_pem(const char *path, uint8_t **buf, size_t *len, char *err,
                    size_t errlen)
{
  const size_t max = 64 * 1024;
  FILE *f = fopen(path, "re");
  size_t n;

  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -errno;
  }
  *buf = xmalloc(max + 1);
  n = fread(*buf, 1, max + 1, f);
  fclose(f);
  if (n == 0 || n > max) {
    snprintf(err, errlen, "%s: empty or larger than %zu bytes", path, max);
    free(*buf);
    *buf = NULL;
    return -EINVAL;
  }
  (*buf)[n] = '\0';
  /* libcoap wants the length to count the terminating NUL. */
  *len = n + 1;
  return 0;
}

int srv_dtls_setup(struct srv *srv, char *err, size_t errlen)
{
  coap_dtls_spsk_t psk;
  coap_dtls_pki_t pki;

  if (!srv->cfg.coaps_listen || !srv->cfg.coaps_listen[0])
    return 0;
  if (!coap_dtls_is_supported()) {
    snprintf(err, errlen,
             "this libcoap has no DTLS support: set "
             "coaps_listen \"\" or link libcoap-3-gnutls");
    return -ENOTSUP;
  }
  memset(&psk, 0, sizeof(psk));
  psk.version = COAP_DTLS_SPSK_SETUP_VERSION;
  psk.validate_id_call_back = psk_for_identity;
  psk.id_call_back_arg = srv;
  if (!coap_context_set_psk2(srv->ctx, &psk)) {
    snprintf(err, errlen, "cannot set up DTLS PSK");
    return -EIO;
  }
  if (srv->cfg.dtls_cert_file && srv->cfg.dtls_cert_file[0]) {
    memset(&pki, 0, sizeof(pki));
    pki.version = COAP_DTLS_PKI_SETUP_VERSION;
    pki.verify_peer_cert = 1;
    pki.check_common_ca = !srv->pki_rpk;
    pki.cert_chain_validation = 1;
    pki.cert_chain_verify_depth = 4;
    pki.is_rpk_not_cert = srv->pki_rpk;
    pki.validate_cn_call_back = check_cert;
    pki.cn_call_back_arg = srv;
    if (srv->pki_rpk) {
      /* libcoap takes raw public keys only from memory. */
      if (read_pem(srv->cfg.dtls_cert_file, &srv->rpk_cert, &srv->rpk_cert_len,
                   err, errlen) < 0 ||
          read_pem(srv->cfg.dtls_key_file, &srv->rpk_key, &srv->rpk_key_len,
                   err, errlen) < 0)
        return -EINVAL;
      pki.pki_key.key_type = COAP_PKI_KEY_PEM_BUF;
      pki.pki_key.key.pem_buf.public_cert = srv->rpk_cert;
      pki.pki_key.key.pem_buf.public_cert_len = srv->rpk_cert_len;
      pki.pki_key.key.pem_buf.private_key = srv->rpk_key;
      pki.pki_key.key.pem_buf.private_key_len = srv->rpk_key_len;
    } else {
      pki.pki_key.key_type = COAP_PKI_KEY_PEM;
      pki.pki_key.key.pem.public_cert = srv->cfg.dtls_cert_file;
      pki.pki_key.key.pem.private_key = srv->cfg.dtls_key_file;
      pki.pki_key.key.pem.ca_file = srv->cfg.dtls_ca_file;
    }
    if (!coap_context_set_pki(srv->ctx, &pki)) {
      snprintf(err, errlen,
               "cannot load the DTLS certificate %s / key %s (see above)",
               srv->cfg.dtls_cert_file, srv->cfg.dtls_key_file);
      return -EINVAL;
    }
  }
  return 0;
}

void srv_dtls_free(struct srv *srv)
{
  free(srv->rpk_cert);
  free(srv->rpk_key);
  for (size_t i = 0; i < srv->peer_ids.nbuckets; i++) {
    struct hmap_node *n = srv->peer_ids.buckets[i];

    while (n) {
      struct hmap_node *next = n->next;
      struct peer_id *p = container_of(n, struct peer_id, node);

      free(p->identity);
      free(p);
      n = next;
    }
  }
  hmap_destroy(&srv->peer_ids);
}

struct cred_check {
  const char *kind;
  const char *identity;
  bool ok;
};

static void check_cred(void *arg, const struct db_credential *c)
{
  struct cred_check *cc = arg;

  if (strcmp(c->type, cc->kind) != 0)
    return;
  if (strcmp(cc->kind, "rpk") == 0)
    cc->ok = true; /* the key itself was matched to this endpoint */
  else
    cc->ok = c->identity && strcmp(c->identity, cc->identity) == 0;
}

bool srv_identity_allows(struct srv *srv, const char *kind,
                         const char *identity, const char *ep)
{
  struct cred_check cc = {.kind = kind, .identity = identity};

  if (strcmp(kind, "nosec") == 0)
    return srv->cfg.allow_nosec;
  if (strcmp(kind, "rpk") == 0)
    return strcmp(identity, ep) == 0;
  if (strcmp(kind, "x509") == 0 && strcmp(identity, ep) == 0)
    return true; /* the certificate's CN is the endpoint name */
  /* PSK: the identity must be the one stored for this endpoint; X.509:
   * a stored binding of this endpoint to the certificate's CN. */
  if (db_credential_by_endpoint(srv->db, ep, check_cred, &cc) < 0)
    return false;
  return cc.ok;
}
