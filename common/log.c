#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LL_INFO;
static int log_fd = 2;
static bool to_syslog;
/* -1 until the first message decides whether journald reads stderr. */
static int journal = -1;

static const char *const level_names[] = {
    [LL_ERR] = "err",   [LL_WARN] = "warn",   [LL_NOTICE] = "notice",
    [LL_INFO] = "info", [LL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
  cur_level = level;
}

enum log_level log_get_level(void)
{
  return cur_level;
}

bool log_enabled(enum log_level level)
{
  return level <= cur_level;
}

void log_use_syslog(const char *ident)
{
  openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  to_syslog = true;
}

void log_set_fd(int fd)
{
  log_fd = fd;
  journal = -1;
}

const char *log_level_name(enum log_level level)
{
  if (level < LL_ERR || level > LL_DEBUG)
    return "?";
  return level_names[level];
}

int log_level_parse(const char *s, enum log_level *out)
{
  for (int i = LL_ERR; i <= LL_DEBUG; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

void log_vmsg(enum log_level level, const char *tag, const char *fmt,
              va_list ap)
{
  char msg[2048];
  char line[2200];
  int len;

  if (!log_enabled(level))
    return;
  vsnprintf(msg, sizeof(msg), fmt, ap);
  /* Trailing newlines (libcoap adds them) would print empty lines. */
  len = (int)strlen(msg);
  while (len > 0 && msg[len - 1] == '\n')
    msg[--len] = '\0';

  if (to_syslog) {
    syslog((int)level, "[%s] %s", tag, msg);
    return;
  }
  if (journal < 0)
    journal = getenv("JOURNAL_STREAM") != NULL;
  if (journal) {
    len = snprintf(line, sizeof(line), "<%d>[%s] %s\n", (int)level, tag, msg);
  } else {
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = snprintf(line, sizeof(line),
                   "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-6s [%s] %s\n",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   log_level_name(level), tag, msg);
  }
  if (len > (int)sizeof(line) - 1) {
    len = (int)sizeof(line) - 1;
    line[len - 1] = '\n';
  }
  /* One write per message keeps lines whole when several processes log. */
  if (len > 0 && write(log_fd, line, (size_t)len) < 0)
    return;
}

void log_msg(enum log_level level, const char *tag, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  log_vmsg(level, tag, fmt, ap);
  va_end(ap);
}
