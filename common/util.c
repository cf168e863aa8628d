#include "common/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The one strict number parser. strtoll alone accepts leading blanks, a
 * plus sign and trailing garbage; config files and REST bodies must not.
 */
static int parse_int_prefix(const char *s, int64_t *out, const char **end)
{
  char *e = NULL;
  long long v;

  if (!s || !(isdigit((unsigned char)s[0]) ||
              (s[0] == '-' && isdigit((unsigned char)s[1]))))
    return -EINVAL;
  errno = 0;
  v = strtoll(s, &e, 10);
  if (errno == ERANGE)
    return -ERANGE;
  *out = v;
  *end = e;
  return 0;
}

static int check_range(int64_t v, int64_t min, int64_t max, int64_t *out)
{
  if (v < min || (max > min && v > max))
    return -ERANGE;
  *out = v;
  return 0;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
  const char *end;
  int64_t v;
  int rc = parse_int_prefix(s, &v, &end);

  if (rc < 0)
    return rc;
  if (*end != '\0')
    return -EINVAL;
  return check_range(v, min, max, out);
}

/* Multiplies a number by the factor of its unit suffix, if any. */
static int parse_scaled(const char *s, const char *units,
                        const int64_t *factors, int64_t min, int64_t max,
                        int64_t *out)
{
  const char *end;
  int64_t v, f = 1;
  int rc = parse_int_prefix(s, &v, &end);

  if (rc < 0)
    return rc;
  if (*end != '\0') {
    const char *u = strchr(units, *end);

    if (!u || end[1] != '\0')
      return -EINVAL;
    f = factors[u - units];
  }
  if (v > INT64_MAX / f || v < INT64_MIN / f)
    return -ERANGE;
  return check_range(v * f, min, max, out);
}

int parse_duration(const char *s, int64_t min, int64_t max, int64_t *out)
{
  static const int64_t f[] = {1, 60, 3600, 86400};

  return parse_scaled(s, "smhd", f, min, max, out);
}

int parse_size(const char *s, int64_t min, int64_t max, int64_t *out)
{
  static const int64_t f[] = {1024, 1024, 1024 * 1024, 1024 * 1024 * 1024};

  return parse_scaled(s, "kKMG", f, min, max, out);
}

int parse_bool(const char *s, bool *out)
{
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};

  for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
    if (strcmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -EINVAL;
}

int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen)
{
  char host[INET6_ADDRSTRLEN + 1];
  const char *colon;
  const char *hs = s;
  size_t hlen;
  int64_t port;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');

    if (!close || close[1] != ':') {
      snprintf(err, errlen, "'%s': expected [IPV6]:PORT", s);
      return -EINVAL;
    }
    hs = s + 1;
    hlen = (size_t)(close - hs);
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) {
      snprintf(err, errlen, "'%s': expected HOST:PORT", s);
      return -EINVAL;
    }
    hlen = (size_t)(colon - s);
  }
  if (hlen == 0 || hlen >= sizeof(host)) {
    snprintf(err, errlen, "'%s': bad host", s);
    return -EINVAL;
  }
  memcpy(host, hs, hlen);
  host[hlen] = '\0';
  if (parse_int64(colon + 1, 0, 65535, &port) < 0) {
    snprintf(err, errlen, "'%s': port must be a number from 0 to 65535", s);
    return -EINVAL;
  }

  memset(ss, 0, sizeof(*ss));
  if (strcmp(host, "*") == 0 && s[0] != '[') {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    sin->sin_port = htons((uint16_t)port);
    *len = sizeof(*sin);
  } else if (s[0] != '[' &&
             inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) ==
                 1) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    *len = sizeof(*sin);
  } else if (s[0] == '[' &&
             inet_pton(AF_INET6, host,
                       &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*sin6);
  } else {
    snprintf(err, errlen,
             "'%s': host must be a numeric IPv4 address, '*' or [IPv6]", s);
    return -EINVAL;
  }
  return 0;
}

char *put_decimal(char *p, unsigned v)
{
  char t[10];
  int n = 0;

  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n > 0)
    *p++ = t[--n];
  return p;
}

char *put_text(char *p, const char *s)
{
  size_t len = strlen(s);

  memcpy(p, s, len);
  return p + len;
}

void format_sockaddr(const struct sockaddr *sa, char *buf, size_t buflen)
{
  char host[INET6_ADDRSTRLEN];

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    const uint8_t *b = (const uint8_t *)&sin->sin_addr;
    char out[sizeof("255.255.255.255:65535")], *p = out;

    /* By hand: every Register and Update formats its peer, and
     * inet_ntop() with snprintf() cost ten times this. */
    for (int i = 0; i < 4; i++) {
      p = put_decimal(p, b[i]);
      *p++ = i < 3 ? '.' : ':';
    }
    p = put_decimal(p, ntohs(sin->sin_port));
    if (buflen > 0) {
      size_t len = (size_t)(p - out) < buflen ? (size_t)(p - out) : buflen - 1;

      memcpy(buf, out, len);
      buf[len] = '\0';
    }
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

    inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
    snprintf(buf, buflen, "[%s]:%d", host, ntohs(sin6->sin6_port));
  } else {
    snprintf(buf, buflen, "(family %d)", sa->sa_family);
  }
}

int sockaddr_port(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return -1;
}

void format_iso8601(int64_t unix_ms, char *buf, size_t buflen)
{
  /* Floor division, so times before 1970 keep 0..999 milliseconds. */
  int64_t ms = ((unix_ms % 1000) + 1000) % 1000;
  time_t secs = (time_t)((unix_ms - ms) / 1000);
  struct tm tm;

  gmtime_r(&secs, &tm);
  snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, (int)ms);
}

static int open_parent(const char *path)
{
  const char *slash = strrchr(path, '/');
  char *dir = slash
                  ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path))
                  : xstrdup(".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  free(dir);
  return fd;
}

int write_file_atomic(const char *path, const void *data, size_t len, int mode)
{
  char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
  const char *p = data;
  int fd = -1;
  int rc = 0;

  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    rc = -errno;
    goto out;
  }
  while (len > 0) {
    ssize_t n = write(fd, p, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = -errno;
      goto out;
    }
    p += n;
    len -= (size_t)n;
  }
  if (fsync(fd) < 0) {
    rc = -errno;
    goto out;
  }
  if (close(fd) < 0) {
    fd = -1;
    rc = -errno;
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) < 0) {
    rc = -errno;
    goto out;
  }
  /* The rename itself is durable only once its folder is synced. */
  fd = open_parent(path);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
    fd = -1;
  }
out:
  if (fd >= 0)
    close(fd);
  if (rc < 0)
    unlink(tmp);
  free(tmp);
  return rc;
}

/*
 * Creates one folder. EEXIST alone does not mean success: a file or a
 * dangling link may be in the way, and the caller asked for a folder.
 */
static int mkdir_one(const char *path, int mode)
{
  struct stat st;

  if (mkdir(path, (mode_t)mode) == 0)
    return 0;
  if (errno != EEXIST)
    return -errno;
  if (stat(path, &st) < 0)
    return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int mkdir_p(const char *path, int mode)
{
  char *copy = NULL;
  int rc = 0;

  /* The loop below starts at the second byte, past the end of "". */
  if (path[0] == '\0')
    return -ENOENT;
  copy = xstrdup(path);
  for (char *p = copy + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    rc = mkdir_one(copy, mode);
    if (rc < 0)
      goto out;
    *p = '/';
  }
  rc = mkdir_one(copy, mode);
out:
  free(copy);
  return rc;
}
