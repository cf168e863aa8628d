#include "daemon/settings.h"

#include <stddef.h>

#define OFF(f) offsetof(struct settings, f)

/* In the order of etc/fotad.conf; its lines must match these defaults. */
static const char *const level_names[] = {"err",  "warn",  "notice",
                                          "info", "debug", NULL};

const struct conf_desc settings_table[] = {
    {"state_dir", CONF_STRING, 0, 0, "./fotad-state", OFF(state_dir), false,
     NULL},
    {"database", CONF_STRING, 0, 0, "fotad.db", OFF(database), false, NULL},
    {"db_busy_timeout", CONF_DURATION, 1, 3600, "5s", OFF(db_busy_timeout),
     false, NULL},
    {"log_level", CONF_ENUM, 0, 0, "info", OFF(log_level), true, level_names},
    {"coap_listen", CONF_STRING, 0, 0, "*:5683", OFF(coap_listen), false,
     NULL},
    {"coaps_listen", CONF_STRING, 0, 0, "*:5684", OFF(coaps_listen), false,
     NULL},
    {"dtls_cert_file", CONF_STRING, 0, 0, "\"\"", OFF(dtls_cert_file), false,
     NULL},
    {"dtls_key_file", CONF_STRING, 0, 0, "\"\"", OFF(dtls_key_file), false,
     NULL},
    {"dtls_ca_file", CONF_STRING, 0, 0, "\"\"", OFF(dtls_ca_file), false,
     NULL},
    {"dtls_rpk", CONF_BOOL, 0, 0, "no", OFF(dtls_rpk), false, NULL},
    {"coap_udp_rcvbuf", CONF_SIZE, 0, (int64_t)1 << 30, "4M",
     OFF(coap_udp_rcvbuf), false, NULL},
    {"coap_max_payload", CONF_SIZE, 1024, (int64_t)1 << 30, "1M",
     OFF(coap_max_payload), false, NULL},
    {"coap_allow_nosec", CONF_BOOL, 0, 0, "yes", OFF(coap_allow_nosec), false,
     NULL},
    {"objects_dir", CONF_STRING, 0, 0, "\"\"", OFF(objects_dir), false, NULL},
    {"lifetime_default", CONF_DURATION, 1, UINT32_MAX, "86400s",
     OFF(lifetime_default), false, NULL},
    {"lifetime_min", CONF_DURATION, 1, UINT32_MAX, "1s", OFF(lifetime_min),
     false, NULL},
    {"lifetime_max", CONF_DURATION, 1, UINT32_MAX, "365d", OFF(lifetime_max),
     false, NULL},
    {"request_timeout", CONF_DURATION, 1, 3600, "30s", OFF(request_timeout),
     false, NULL},
    {"queue_awake_window", CONF_DURATION, 1, 86400, "93s",
     OFF(queue_awake_window), false, NULL},
    {"queue_request_expiry", CONF_DURATION, 1, 365 * 86400, "1d",
     OFF(queue_request_expiry), false, NULL},
    {"component_reconcile_interval", CONF_DURATION, 0, 30 * 86400, "1h",
     OFF(component_reconcile_interval), false, NULL},
    {"component_observe_pmax", CONF_DURATION, 1, 86400, "300s",
     OFF(component_observe_pmax), false, NULL},
    {"http_listen", CONF_STRING, 0, 0, "127.0.0.1:8683", OFF(http_listen),
     false, NULL},
    {"http_max_body", CONF_SIZE, 1024, (int64_t)1 << 40, "1M",
     OFF(http_max_body), true, NULL},
    {"http_max_connections", CONF_INT, 1, 65536, "256",
     OFF(http_max_connections), false, NULL},
    {"http_connection_timeout", CONF_DURATION, 1, 86400, "60s",
     OFF(http_connection_timeout), false, NULL},
    {"http_tls_cert_file", CONF_STRING, 0, 0, "\"\"", OFF(http_tls_cert_file),
     false, NULL},
    {"http_tls_key_file", CONF_STRING, 0, 0, "\"\"", OFF(http_tls_key_file),
     false, NULL},
    {"api_token_file", CONF_STRING, 0, 0, "api-token", OFF(api_token_file),
     false, NULL},
    {"api_rate_limit", CONF_INT, 0, 1000000, "100", OFF(api_rate_limit), true,
     NULL},
    {"api_rate_burst", CONF_INT, 1, 1000000, "200", OFF(api_rate_burst), true,
     NULL},
    {"metrics_public", CONF_BOOL, 0, 0, "no", OFF(metrics_public), true, NULL},
    {"events_retention", CONF_DURATION, 60, 3650 * 86400, "30d",
     OFF(events_retention), true, NULL},
    {"events_heartbeat", CONF_DURATION, 1, 3600, "15s", OFF(events_heartbeat),
     false, NULL},
    {"events_max_streams", CONF_INT, 1, 65536, "64", OFF(events_max_streams),
     false, NULL},
    {"idempotency_window", CONF_DURATION, 60, 30 * 86400, "24h",
     OFF(idempotency_window), true, NULL},
};
const size_t settings_count = ARRAY_SIZE(settings_table);

enum log_level settings_log_level(const struct settings *s)
{
  return (enum log_level)(LL_ERR + s->log_level);
}
