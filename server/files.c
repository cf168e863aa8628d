/*
 * Package downloads over CoAP and CoAPS: GET /fw/<token> answered block by
 * block (Block2, RFC 7959) from content a provider maps for us. The blocks
 * are cut here rather than by libcoap's block mode so that every block a
 * device fetches is seen (download progress) and nothing is kept per
 * transfer: a block is computed from its number and size alone.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOG_TAG "fw"

/* Tokens are opaque to us, but bounded. */
#define FW_TOKEN_MAX 64

void srv_set_file_provider(struct srv *srv, srv_file_cb *cb, void *arg)
{
  srv->file_cb = cb;
  srv->file_arg = arg;
}

static void add_uint(coap_pdu_t *pdu, uint16_t num, uint32_t v)
{
  uint8_t buf[4];

  coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof(buf), v), buf);
}

void srv_handle_fw(struct srv *srv, coap_session_t *session,
                   const coap_pdu_t *req, coap_pdu_t *resp, const char *token)
{
  struct srv_file f = {0};
  struct srv_reg *reg = coap_session_get_app_data(session);
  coap_opt_iterator_t oi;
  coap_opt_t *opt;
  uint32_t num = 0, szx = 6;
  size_t bsize, off, len;
  bool more;
  char peer[64] = "";

  if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_GET) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  if (!srv->file_cb || strlen(token) == 0 || strlen(token) > FW_TOKEN_MAX ||
      strchr(token, '/') || srv->file_cb(srv->file_arg, token, &f) < 0) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
    return;
  }
  opt = coap_check_option(req, COAP_OPTION_BLOCK2, &oi);
  if (opt) {
    num = coap_opt_block_num(opt);
    szx = COAP_OPT_BLOCK_SZX(opt);
    /* SZX 7 is BERT, for CoAP over TCP only; answer with 1024. */
    if (szx > 6)
      szx = 6;
  }
  bsize = (size_t)1 << (szx + 4);
  off = (size_t)num * bsize;
  if (off > f.size || (off == f.size && f.size > 0)) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_BAD_REQUEST);
    coap_add_data(resp, 26, (const uint8_t *)"block number past the end");
    goto out;
  }
  len = f.size - off < bsize ? f.size - off : bsize;
  more = off + len < f.size;

  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
  /* Options in number order: ETag 4, Content-Format 12, Block2 23,
   * Size2 28. */
  coap_add_option(resp, COAP_OPTION_ETAG, f.etag_len, f.etag);
  add_uint(resp, COAP_OPTION_CONTENT_FORMAT, LWM2M_CT_OPAQUE);
  add_uint(resp, COAP_OPTION_BLOCK2, num << 4 | (more ? 8u : 0u) | szx);
  if (num == 0 || coap_check_option(req, COAP_OPTION_SIZE2, &oi))
    add_uint(resp, COAP_OPTION_SIZE2, (uint32_t)f.size);
  if (len > 0)
    coap_add_data(resp, len, f.data + off);

  if (reg)
    snprintf(peer, sizeof(peer), "%s", reg->peer);
  else {
    const coap_address_t *a = coap_session_get_addr_remote(session);

    if (a)
      format_sockaddr(&a->addr.sa, peer, sizeof(peer));
  }
  srv->blocks_served++;
  SRV_EMIT(srv, block_served, token, reg ? reg->ep : NULL, peer, num,
           (uint32_t)len, !more);
  if (num == 0 || !more)
    log_debug("%s: block %u of %s (%zu bytes)%s", reg ? reg->ep : peer, num,
              token, f.size, more ? "" : ", last");
out:
  if (f.release)
    f.release(f.release_arg);
}
