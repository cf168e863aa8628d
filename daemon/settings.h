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
  char *http_listen;
  int64_t http_max_body;
  int64_t http_max_connections;
  int64_t http_connection_timeout;
};

extern const struct conf_desc settings_table[];
extern const size_t settings_count;

/* The log level the log_level key names. */
enum log_level settings_log_level(const struct settings *s);

#endif
