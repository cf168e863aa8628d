/* The daemon's configuration: every key of fotad.conf, in one table. */
#ifndef FOTAD_SETTINGS_H
#define FOTAD_SETTINGS_H

#include "common/common.h"

struct settings {
  char *state_dir;
  char *database;
  int log_level; /* index into log_level_names; see settings_log_level() */
  int64_t db_busy_timeout;
  char *coap_listen;
  char *coaps_listen;
  char *dtls_cert_file;
  char *dtls_key_file;
  char *dtls_ca_file;
  bool dtls_rpk;
  int64_t coap_udp_rcvbuf;
  int64_t coap_max_payload;
  bool coap_allow_nosec;
  char *objects_dir;
  int64_t lifetime_default;
  int64_t lifetime_min;
  int64_t lifetime_max;
  int64_t request_timeout;
  int64_t queue_awake_window;
  int64_t queue_request_expiry;
  int64_t component_reconcile_interval;
  int64_t component_observe_pmax;
  int64_t package_max_size;
  char *mcuboot_keys_dir;
  char *download_host;
  int64_t job_download_timeout;
  int64_t job_update_timeout;
  int64_t job_reboot_timeout;
  int64_t job_push_max_size;
  char *http_listen;
  int64_t http_max_body;
  int64_t http_max_connections;
  int64_t http_connection_timeout;
  char *http_tls_cert_file;
  char *http_tls_key_file;
  char *api_token_file;
  int64_t api_rate_limit;
  int64_t api_rate_burst;
  bool metrics_public;
  int64_t events_retention;
  int64_t events_heartbeat;
  int64_t events_max_streams;
  int64_t idempotency_window;
};

extern const struct conf_desc settings_table[];
extern const size_t settings_count;

/* The log level the log_level key names. */
enum log_level settings_log_level(const struct settings *s);

#endif
