/*
 * Unit tests for common/: the config parser, strict number and address
 * parsing, time formatting, file helpers, logging and the event loop (with
 * a fake clock, so nothing here waits on real time).
 */
#include "common/common.h"
#include "tests/tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAG "test"

/* The folder every temporary file of this program goes into. */
static char tmpdir[512];

/* ---- config ---- */

struct tconf {
  char *name;
  int64_t port;
  int64_t timeout;
  int64_t cache;
  bool verbose;
  int mode;
  int64_t offset;
  char *motd;
  int64_t count;
};

static const char *const mode_names[] = {"fast", "safe", "paranoid", NULL};

static const struct conf_desc ttable[] = {
    {.name = "name",
     .type = CONF_STRING,
     .def = "fotad",
     .offset = offsetof(struct tconf, name)},
    {.name = "port",
     .type = CONF_INT,
     .min = 1,
     .max = 65535,
     .def = "5683",
     .offset = offsetof(struct tconf, port)},
    {.name = "timeout",
     .type = CONF_DURATION,
     .min = 1,
     .max = 7 * 86400,
     .def = "30s",
     .offset = offsetof(struct tconf, timeout),
     .reloadable = true},
    {.name = "cache",
     .type = CONF_SIZE,
     .min = 4096,
     .max = 1024 * 1024 * 1024,
     .def = "64k",
     .offset = offsetof(struct tconf, cache),
     .reloadable = true},
    {.name = "verbose",
     .type = CONF_BOOL,
     .def = "no",
     .offset = offsetof(struct tconf, verbose),
     .reloadable = true},
    {.name = "mode",
     .type = CONF_ENUM,
     .def = "safe",
     .offset = offsetof(struct tconf, mode),
     .reloadable = true,
     .names = mode_names},
    {.name = "offset",
     .type = CONF_INT,
     .min = -100,
     .max = 100,
     .def = "-5",
     .offset = offsetof(struct tconf, offset)},
    {.name = "motd",
     .type = CONF_STRING,
     .def = "",
     .offset = offsetof(struct tconf, motd),
     .reloadable = true},
    /* max 0: no upper bound. */
    {.name = "count",
     .type = CONF_INT,
     .min = 0,
     .max = 0,
     .def = "0",
     .offset = offsetof(struct tconf, count)},
};

#define NT ARRAY_SIZE(ttable)

/* Defaults, then the text; returns conf_load_buf()'s result. */
static int load(struct tconf *c, const char *text, char *err, size_t errlen)
{
  memset(c, 0, sizeof(*c));
  conf_defaults(ttable, NT, c);
  err[0] = '\0';
  return conf_load_buf(ttable, NT, c, "t.conf", text, err, errlen);
}

static void test_conf_defaults(void)
{
  struct tconf c;

  memset(&c, 0, sizeof(c));
  conf_defaults(ttable, NT, &c);
  is_str(c.name, "fotad", "default string");
  is_int(c.port, 5683, "default int");
  is_int(c.timeout, 30, "default duration 30s");
  is_int(c.cache, 65536, "default size 64k");
  ok(!c.verbose, "default bool no");
  is_int(c.mode, 1, "default enum safe");
  is_int(c.offset, -5, "default negative int");
  is_str(c.motd, "", "default empty string");
  is_int(c.count, 0, "default unbounded int");
  conf_free(ttable, NT, &c);
  ok(c.name == NULL && c.motd == NULL, "conf_free clears the strings");
  /* A second conf_free must be harmless. */
  conf_free(ttable, NT, &c);
}

static void test_conf_good(void)
{
  /* CRLF endings, comments, blanks, quoting, units, a final line without
   * newline; offset and count stay absent. */
  static const char text[] =
      "# fotad test config\r\n"
      "\r\n"
      "name   \"my # server \"   # comment after the quotes\r\n"
      "port 8683   # trailing comment\r\n"
      "  timeout\t5m\r\n"
      "\t\r\n"
      "   # indented comment\r\n"
      "cache 16M\r\n"
      "verbose yes\r\n"
      "mode paranoid\t# tab, then comment\r\n"
      "motd hello#world";
  struct tconf c;
  char err[256];
  int rc = load(&c, text, err, sizeof(err));

  is_int(rc, 0, "good file loads");
  is_str(err, "", "good file: no error text");
  is_str(c.name, "my # server ", "quoted value keeps '#' and blanks");
  is_int(c.port, 8683, "int with trailing comment");
  is_int(c.timeout, 300, "duration 5m after leading blanks and a tab");
  is_int(c.cache, 16 * 1024 * 1024, "size 16M");
  ok(c.verbose, "bool yes");
  is_int(c.mode, 2, "enum paranoid");
  is_str(c.motd, "hello#world", "'#' not after a blank is part of value");
  is_int(c.offset, -5, "absent key keeps its default (offset)");
  is_int(c.count, 0, "absent key keeps its default (count)");
  conf_free(ttable, NT, &c);

  rc = load(&c, "", err, sizeof(err));
  is_int(rc, 0, "empty text loads");
  is_int(c.port, 5683, "empty text keeps defaults");
  conf_free(ttable, NT, &c);

  rc = load(&c, "# only\n\n   \n\t# comments\n", err, sizeof(err));
  is_int(rc, 0, "comment-only text loads");
  conf_free(ttable, NT, &c);

  rc = load(&c, "motd \"\"\nname \"  padded\"\n", err, sizeof(err));
  is_int(rc, 0, "empty and padded quoted values load");
  is_str(c.motd, "", "empty quoted value");
  is_str(c.name, "  padded", "quoted leading blanks kept");
  conf_free(ttable, NT, &c);

  rc = load(&c, "motd   spaced   words   \n", err, sizeof(err));
  is_int(rc, 0, "unquoted value with inner blanks loads");
  is_str(c.motd, "spaced   words", "inner blanks kept, outer trimmed");
  conf_free(ttable, NT, &c);

  rc = load(&c, "offset -100\ncount 9223372036854775807\n", err, sizeof(err));
  is_int(rc, 0, "range limits load");
  is_int(c.offset, -100, "min of the range is accepted");
  ok(c.count == INT64_MAX, "no upper bound when max is 0");
  conf_free(ttable, NT, &c);
}

static void test_conf_units(void)
{
  static const struct {
    const char *key, *value;
    int64_t want;
  } cases[] = {
      {"timeout", "30", 30},       {"timeout", "30s", 30},
      {"timeout", "5m", 300},      {"timeout", "2h", 7200},
      {"timeout", "1d", 86400},    {"timeout", "7d", 604800},
      {"cache", "4096", 4096},     {"cache", "64k", 65536},
      {"cache", "64K", 65536},     {"cache", "16M", 16777216},
      {"cache", "1G", 1073741824}, {"port", "1", 1},
      {"port", "65535", 65535},    {"offset", "100", 100},
  };
  struct tconf c;
  char err[256];

  memset(&c, 0, sizeof(c));
  conf_defaults(ttable, NT, &c);
  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    const struct conf_desc *d = NULL;
    int rc;

    for (size_t j = 0; j < NT; j++)
      if (strcmp(ttable[j].name, cases[i].key) == 0)
        d = &ttable[j];
    rc = conf_set(ttable, NT, &c, cases[i].key, cases[i].value, err,
                  sizeof(err));
    is_int(rc, 0, "conf_set %s %s", cases[i].key, cases[i].value);
    is_int(*(int64_t *)((char *)&c + d->offset), cases[i].want, "%s %s = %lld",
           cases[i].key, cases[i].value, (long long)cases[i].want);
  }

  {
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
      c.verbose = false;
      is_int(conf_set(ttable, NT, &c, "verbose", yes[i], err, sizeof(err)), 0,
             "conf_set verbose %s", yes[i]);
      ok(c.verbose, "verbose %s is true", yes[i]);
      is_int(conf_set(ttable, NT, &c, "verbose", no[i], err, sizeof(err)), 0,
             "conf_set verbose %s", no[i]);
      ok(!c.verbose, "verbose %s is false", no[i]);
    }
  }
  for (int i = 0; mode_names[i]; i++) {
    is_int(conf_set(ttable, NT, &c, "mode", mode_names[i], err, sizeof(err)),
           0, "conf_set mode %s", mode_names[i]);
    is_int(c.mode, i, "mode %s is index %d", mode_names[i], i);
  }

  is_int(conf_set(ttable, NT, &c, "name", "other", err, sizeof(err)), 0,
         "conf_set replaces a string");
  is_str(c.name, "other", "string replaced (old one freed: ASan)");

  is_int(conf_set(ttable, NT, &c, "nope", "1", err, sizeof(err)), -EINVAL,
         "conf_set unknown key fails");
  is_str(err, "unknown key 'nope'", "conf_set unknown key message");
  is_int(conf_set(ttable, NT, &c, "port", "x", err, sizeof(err)), -EINVAL,
         "conf_set bad int fails");
  is_str(err, "port: 'x' is not a whole number from 1 to 65535",
         "conf_set error has no file position");
  is_int(conf_set(ttable, NT, &c, "port", "70000", err, sizeof(err)), -ERANGE,
         "conf_set out of range gives -ERANGE");
  is_int(c.port, 65535, "failed conf_set leaves the value alone");
  conf_free(ttable, NT, &c);
}

static void test_conf_bad(void)
{
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"# c\n\nbogus 1\n", "t.conf:3: unknown key 'bogus'"},
      {"port 1\nname\n", "t.conf:2: name: missing value"},
      {"port 1\r\n\r\nname   \r\n", "t.conf:3: name: missing value"},
      {"\n\n\nname #x\n", "t.conf:4: name: missing value"},
      {"name\t  # comment only\n", "t.conf:1: name: missing value"},
      {"port 1\n\n# again\nport 2\n", "t.conf:4: port: set twice"},
      {"motd a\nport 12abc\n",
       "t.conf:2: port: '12abc' is not a whole number from 1 to 65535"},
      {"port \" 12\"\n",
       "t.conf:1: port: ' 12' is not a whole number from 1 to 65535"},
      {"port \"12 \"\n",
       "t.conf:1: port: '12 ' is not a whole number from 1 to 65535"},
      {"\nport +5\n",
       "t.conf:2: port: '+5' is not a whole number from 1 to 65535"},
      {"port 0\n", "t.conf:1: port: '0' is not a whole number from 1 to "
                   "65535"},
      {"port 65536\n",
       "t.conf:1: port: '65536' is not a whole number from 1 to 65535"},
      {"offset -101\n",
       "t.conf:1: offset: '-101' is not a whole number from -100 to 100"},
      {"#\n#\ncount 99999999999999999999\n",
       "t.conf:3: count: '99999999999999999999' is not a whole number of at "
       "least 0"},
      {"count -1\n", "t.conf:1: count: '-1' is not a whole number of at "
                     "least 0"},
      {"count 0x10\n", "t.conf:1: count: '0x10' is not a whole number of "
                       "at least 0"},
      {"port 1\ntimeout 5x\n",
       "t.conf:2: timeout: '5x' is not a duration (a number with an "
       "optional unit s, m, h or d) from 1 to 604800 seconds"},
      {"timeout 0\n", "t.conf:1: timeout: '0' is not a duration (a number "
                      "with an optional unit s, m, h or d) from 1 to 604800 "
                      "seconds"},
      {"timeout 8d\n", "t.conf:1: timeout: '8d' is not a duration (a "
                       "number with an optional unit s, m, h or d) from 1 "
                       "to 604800 seconds"},
      {"timeout 5ms\n", "t.conf:1: timeout: '5ms' is not a duration (a "
                        "number with an optional unit s, m, h or d) from 1 "
                        "to 604800 seconds"},
      {"cache 16m\n", "t.conf:1: cache: '16m' is not a size (a number with "
                      "an optional unit k, M or G) from 4096 to 1073741824 "
                      "bytes"},
      {"cache 2G\n", "t.conf:1: cache: '2G' is not a size (a number with "
                     "an optional unit k, M or G) from 4096 to 1073741824 "
                     "bytes"},
      {"cache 1k\n", "t.conf:1: cache: '1k' is not a size (a number with "
                     "an optional unit k, M or G) from 4096 to 1073741824 "
                     "bytes"},
      {"\n\n\n\n\nverbose maybe\n",
       "t.conf:6: verbose: 'maybe' is not yes or no"},
      {"verbose YES\n", "t.conf:1: verbose: 'YES' is not yes or no"},
      {"mode safe\nverbose on\nmode turbo\n", "t.conf:3: mode: set twice"},
      {"verbose on\n\nmode turbo\n",
       "t.conf:3: mode: 'turbo' is not one of fast, safe, paranoid"},
      {"motd ok\nname \"unterminated\n",
       "t.conf:2: name: unterminated quoted value"},
      {"name \"a\" b\n", "t.conf:1: name: text after the quoted value"},
      {"name \"a\"b\n", "t.conf:1: name: text after the quoted value"},
  };
  struct tconf c;
  char err[512];

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    int rc = load(&c, cases[i].text, err, sizeof(err));

    ok(rc < 0, "bad config %zu fails", i);
    is_str(err, cases[i].want, "bad config %zu message", i);
    conf_free(ttable, NT, &c);
  }

  /* Exactly CONF_LINE_MAX bytes is fine; one more is an error. */
  {
    size_t max = 4096;
    char *text = xmalloc(2 * max + 64);
    size_t off;
    int rc;

    off = (size_t)snprintf(text, 64, "port 1\nmotd ");
    memset(text + off, 'x', max - 5);
    off += max - 5;
    text[off] = '\0';
    rc = load(&c, text, err, sizeof(err));
    is_int(rc, 0, "line of exactly 4096 bytes loads");
    is_int(c.motd ? (long long)strlen(c.motd) : -1, max - 5,
           "4096-byte line value kept whole");
    conf_free(ttable, NT, &c);

    text[off++] = 'x';
    memcpy(text + off, "\nport 2\n", 9);
    rc = load(&c, text, err, sizeof(err));
    is_int(rc, -EINVAL, "line of 4097 bytes fails");
    is_str(err, "t.conf:2: line longer than 4096 bytes",
           "overlong line message");
    conf_free(ttable, NT, &c);

    /* A long unknown key: the message shows 64 bytes of it, no more. */
    memset(text, 'k', 300);
    memcpy(text + 300, " 1\n", 4);
    rc = load(&c, text, err, sizeof(err));
    is_int(rc, -EINVAL, "300-byte unknown key fails");
    ok(strncmp(err, "t.conf:1: unknown key 'kkkk", 27) == 0 &&
           strlen(err) == strlen("t.conf:1: unknown key ''") + 64,
       "long key cut to 64 bytes in the message");
    conf_free(ttable, NT, &c);
    free(text);
  }
}

static char *write_tmp(const char *name, const void *data, size_t len)
{
  char *path = xasprintf("%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");

  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
  return path;
}

static void test_conf_file(void)
{
  static const char good[] = "# file\nport 1234\ncache 1M\n";
  static const char bad[] = "port 1\n\n\n\n\n\nnokey 7\n";
  static const char nul[] = "port 1\n\0port 2\n";
  struct tconf c;
  char err[512], want[1024];
  char *path = NULL;
  int rc;

  memset(&c, 0, sizeof(c));
  conf_defaults(ttable, NT, &c);
  path = write_tmp("good.conf", good, sizeof(good) - 1);
  rc = conf_load_file(ttable, NT, &c, path, err, sizeof(err));
  is_int(rc, 0, "conf_load_file good file");
  is_int(c.port, 1234, "conf_load_file port");
  is_int(c.cache, 1048576, "conf_load_file cache");
  is_str(c.name, "fotad", "conf_load_file keeps defaults");
  conf_free(ttable, NT, &c);
  unlink(path);
  free(path);

  conf_defaults(ttable, NT, &c);
  path = write_tmp("bad.conf", bad, sizeof(bad) - 1);
  rc = conf_load_file(ttable, NT, &c, path, err, sizeof(err));
  is_int(rc, -EINVAL, "conf_load_file bad key fails");
  snprintf(want, sizeof(want), "%s:7: unknown key 'nokey'", path);
  is_str(err, want, "conf_load_file message names file and line 7");
  conf_free(ttable, NT, &c);
  unlink(path);
  free(path);

  conf_defaults(ttable, NT, &c);
  path = write_tmp("nul.conf", nul, sizeof(nul) - 1);
  rc = conf_load_file(ttable, NT, &c, path, err, sizeof(err));
  is_int(rc, -EINVAL, "conf_load_file with a NUL byte fails");
  snprintf(want, sizeof(want), "%s: contains a NUL byte", path);
  ok(strncmp(err, want, strlen(want)) == 0, "NUL byte message: %s", err);
  is_int(c.port, 5683, "NUL file did not half-load");
  conf_free(ttable, NT, &c);
  unlink(path);
  free(path);

  conf_defaults(ttable, NT, &c);
  path = xasprintf("%s/missing.conf", tmpdir);
  rc = conf_load_file(ttable, NT, &c, path, err, sizeof(err));
  is_int(rc, -ENOENT, "conf_load_file missing file gives -ENOENT");
  snprintf(want, sizeof(want), "%s: No such file", path);
  ok(strncmp(err, want, strlen(want)) == 0, "missing file message: %s", err);
  conf_free(ttable, NT, &c);
  free(path);
}

/* Reads a whole pipe end (non-blocking) into buf; returns the text. */
static const char *drain(int fd, char *buf, size_t len)
{
  size_t off = 0;
  ssize_t n;

  while (off + 1 < len && (n = read(fd, buf + off, len - 1 - off)) > 0)
    off += (size_t)n;
  buf[off] = '\0';
  return buf;
}

static void test_conf_reload(void)
{
  struct tconf a, b;
  const char *key = NULL;
  char err[256], logbuf[4096];
  int p[2];
  int rc;

  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
    printf("Bail out! pipe2: %s\n", strerror(errno));
    exit(1);
  }
  unsetenv("JOURNAL_STREAM");
  log_set_fd(p[1]);
  log_set_level(LL_INFO);

  rc = load(&a, "", err, sizeof(err));
  rc |= load(&b, "timeout 1m\nmotd hi\nverbose on\nmode fast\ncache 1M\n", err,
             sizeof(err));
  is_int(rc, 0, "reload configs load");
  key = "unset";
  ok(!conf_static_changed(ttable, NT, &a, &b, &key),
     "only reloadable keys differ: no static change");
  is_str(key, "unset", "key untouched when nothing static changed");
  ok(!conf_static_changed(ttable, NT, &a, &a, &key), "same config");

  /* A static difference is reported whatever else changed. */
  b.port = 1;
  ok(conf_static_changed(ttable, NT, &a, &b, &key), "port change found");
  is_str(key, "port", "static key named: port");
  b.port = a.port;
  free(b.name);
  b.name = xstrdup("renamed");
  ok(conf_static_changed(ttable, NT, &a, &b, &key), "name change found");
  is_str(key, "name", "static key named: name");
  free(b.name);
  b.name = xstrdup(a.name);
  b.offset = 7;
  ok(conf_static_changed(ttable, NT, &a, &b, &key), "offset change found");
  is_str(key, "offset", "static key named: offset");
  b.count = 1;
  b.offset = a.offset;
  ok(conf_static_changed(ttable, NT, &a, &b, &key), "count change found");
  is_str(key, "count", "static key named: count");

  /* b's static keys differ; applying must copy only the reloadable ones. */
  drain(p[0], logbuf, sizeof(logbuf));
  conf_apply_reloadable(ttable, NT, &a, &b);
  is_int(a.timeout, 60, "apply: duration copied");
  is_int(a.cache, 1048576, "apply: size copied");
  ok(a.verbose, "apply: bool copied");
  is_int(a.mode, 0, "apply: enum copied");
  is_str(a.motd, "hi", "apply: string copied");
  ok(a.motd != b.motd, "apply: string duplicated, not shared");
  is_int(a.count, 0, "apply: static int not copied");
  drain(p[0], logbuf, sizeof(logbuf));
  ok(strstr(logbuf, "[config] reload: timeout changed") != NULL,
     "apply logs the changed key");
  ok(strstr(logbuf, "reload: motd changed") != NULL, "apply logs motd");
  ok(strstr(logbuf, "reload: name") == NULL, "unchanged key not logged");
  ok(strstr(logbuf, "reload: count") == NULL, "static key not logged");
  b.count = 0;
  ok(!conf_static_changed(ttable, NT, &a, &b, &key),
     "after apply nothing differs");

  conf_apply_reloadable(ttable, NT, &a, &b);
  drain(p[0], logbuf, sizeof(logbuf));
  is_str(logbuf, "", "second apply changes and logs nothing");

  conf_free(ttable, NT, &a);
  conf_free(ttable, NT, &b);
  log_set_fd(2);
  close(p[0]);
  close(p[1]);
}

/* ---- numbers ---- */

static void test_parse_int64(void)
{
  static const struct {
    const char *s;
    int64_t min, max;
    int rc;
    int64_t want;
  } cases[] = {
      {"0", INT64_MIN, INT64_MAX, 0, 0},
      {"-0", INT64_MIN, INT64_MAX, 0, 0},
      {"42", INT64_MIN, INT64_MAX, 0, 42},
      {"007", INT64_MIN, INT64_MAX, 0, 7},
      {"9223372036854775807", INT64_MIN, INT64_MAX, 0, INT64_MAX},
      {"-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN},
      {"9223372036854775808", INT64_MIN, INT64_MAX, -ERANGE, 0},
      {"-9223372036854775809", INT64_MIN, INT64_MAX, -ERANGE, 0},
      {"99999999999999999999", INT64_MIN, INT64_MAX, -ERANGE, 0},
      {"", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {" 1", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"1 ", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"\t1", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"+1", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"-", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"--1", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"- 1", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"12abc", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"0x10", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"1e3", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"1.5", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"abc", INT64_MIN, INT64_MAX, -EINVAL, 0},
      {"9", 0, 9, 0, 9},
      {"0", 0, 9, 0, 0},
      {"10", 0, 9, -ERANGE, 0},
      {"-1", 0, 9, -ERANGE, 0},
      {"-1", 0, 0, -ERANGE, 0},
      {"12345678901234", 0, 0, 0, 12345678901234LL},
      {"5", 10, 0, -ERANGE, 0},
      {"10", 10, 0, 0, 10},
  };

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    int64_t v = 77;
    int rc = parse_int64(cases[i].s, cases[i].min, cases[i].max, &v);

    is_int(rc, cases[i].rc, "parse_int64 \"%s\" [%lld, %lld] rc", cases[i].s,
           (long long)cases[i].min, (long long)cases[i].max);
    if (cases[i].rc == 0)
      ok(v == cases[i].want, "parse_int64 \"%s\" value", cases[i].s);
    else
      is_int(v, 77, "parse_int64 \"%s\" leaves out alone", cases[i].s);
  }
}

static void test_parse_scaled(void)
{
  static const struct {
    bool size;
    const char *s;
    int rc;
    int64_t want;
  } cases[] = {
      {false, "30", 0, 30},
      {false, "30s", 0, 30},
      {false, "5m", 0, 300},
      {false, "2h", 0, 7200},
      {false, "1d", 0, 86400},
      {false, "0d", 0, 0},
      {false, "-1m", 0, -60},
      {false, "106751991167300d", 0, 106751991167300LL * 86400},
      {false, "106751991167301d", -ERANGE, 0},
      {false, "-106751991167301d", -ERANGE, 0},
      {false, "99999999999999999999s", -ERANGE, 0},
      {false, "", -EINVAL, 0},
      {false, "s", -EINVAL, 0},
      {false, "5x", -EINVAL, 0},
      {false, "5ms", -EINVAL, 0},
      {false, "5 s", -EINVAL, 0},
      {false, "5S", -EINVAL, 0},
      {false, "5M", -EINVAL, 0},
      {false, "+5s", -EINVAL, 0},
      {false, " 5s", -EINVAL, 0},
      {true, "512", 0, 512},
      {true, "64k", 0, 65536},
      {true, "64K", 0, 65536},
      {true, "16M", 0, 16777216},
      {true, "1G", 0, 1073741824},
      {true, "8589934591G", 0, INT64_MAX - (1024 * 1024 * 1024 - 1)},
      {true, "8589934592G", -ERANGE, 0},
      {true, "-8589934592G", 0, INT64_MIN},
      {true, "-8589934593G", -ERANGE, 0},
      {true, "1g", -EINVAL, 0},
      {true, "1m", -EINVAL, 0},
      {true, "1kb", -EINVAL, 0},
      {true, "1s", -EINVAL, 0},
      {true, "k", -EINVAL, 0},
      {true, "", -EINVAL, 0},
  };

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    int64_t v = 77;
    int rc = cases[i].size
                 ? parse_size(cases[i].s, INT64_MIN, INT64_MAX, &v)
                 : parse_duration(cases[i].s, INT64_MIN, INT64_MAX, &v);
    const char *fn = cases[i].size ? "parse_size" : "parse_duration";

    is_int(rc, cases[i].rc, "%s \"%s\" rc", fn, cases[i].s);
    if (cases[i].rc == 0)
      ok(v == cases[i].want, "%s \"%s\" value", fn, cases[i].s);
    else
      is_int(v, 77, "%s \"%s\" leaves out alone", fn, cases[i].s);
  }

  {
    int64_t v = 0;

    /* The range applies to the scaled value, not the number written. */
    is_int(parse_duration("2h", 0, 3600, &v), -ERANGE,
           "parse_duration range checks seconds");
    is_int(parse_duration("1h", 0, 3600, &v), 0, "1h within [0, 3600]");
    is_int(v, 3600, "1h is 3600");
    is_int(parse_size("2k", 0, 2000, &v), -ERANGE,
           "parse_size range checks bytes");
    is_int(parse_size("1k", 1024, 2048, &v), 0, "1k within [1024, 2048]");
    is_int(v, 1024, "1k is 1024");
  }
}

static void test_parse_bool(void)
{
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};
  static const char *const bad[] = {"",     "maybe", "YES", "y",  "n",
                                    "yes ", " no",   "2",   "01", "truee"};
  bool b;

  for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
    b = false;
    is_int(parse_bool(yes[i], &b), 0, "parse_bool \"%s\"", yes[i]);
    ok(b, "\"%s\" is true", yes[i]);
  }
  for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
    b = true;
    is_int(parse_bool(no[i], &b), 0, "parse_bool \"%s\"", no[i]);
    ok(!b, "\"%s\" is false", no[i]);
  }
  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    b = true;
    is_int(parse_bool(bad[i], &b), -EINVAL, "parse_bool \"%s\" fails", bad[i]);
    ok(b, "failed parse_bool \"%s\" leaves out alone", bad[i]);
  }
}

/* ---- addresses and time ---- */

static void test_hostport(void)
{
  static const struct {
    const char *s;
    int family;
    int port;
    const char *formatted;
  } good[] = {
      {"127.0.0.1:0", AF_INET, 0, "127.0.0.1:0"},
      {"*:5683", AF_INET, 5683, "0.0.0.0:5683"},
      {"0.0.0.0:1", AF_INET, 1, "0.0.0.0:1"},
      {"192.0.2.55:65535", AF_INET, 65535, "192.0.2.55:65535"},
      {"255.255.255.255:65535", AF_INET, 65535, "255.255.255.255:65535"},
      {"10.0.100.9:10", AF_INET, 10, "10.0.100.9:10"},
      {"[::1]:8683", AF_INET6, 8683, "[::1]:8683"},
      {"[::]:5684", AF_INET6, 5684, "[::]:5684"},
      {"[2001:db8::a:1]:443", AF_INET6, 443, "[2001:db8::a:1]:443"},
      {"[::ffff:192.0.2.1]:80", AF_INET6, 80, "[::ffff:192.0.2.1]:80"},
  };
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"localhost:1", "host must be a numeric IPv4 address, '*' or [IPv6]"},
      {"1.2.3.4", "expected HOST:PORT"},
      {"1.2.3.4:70000", "port must be a number from 0 to 65535"},
      {"1.2.3.4:65536", "port must be a number from 0 to 65535"},
      {"1.2.3.4:-1", "port must be a number from 0 to 65535"},
      {"1.2.3.4:+80", "port must be a number from 0 to 65535"},
      {"1.2.3.4: 80", "port must be a number from 0 to 65535"},
      {"1.2.3.4:", "port must be a number from 0 to 65535"},
      {"1.2.3.4:http", "port must be a number from 0 to 65535"},
      {"[::1]5683", "expected [IPV6]:PORT"},
      {"[::1", "expected [IPV6]:PORT"},
      {"[::1]:", "port must be a number from 0 to 65535"},
      {"::1:5683", "host must be a numeric IPv4 address, '*' or [IPv6]"},
      {"[1.2.3.4]:80", "host must be a numeric IPv4 address, '*' or [IPv6]"},
      {"[*]:80", "host must be a numeric IPv4 address, '*' or [IPv6]"},
      {"1.2.3:80", "host must be a numeric IPv4 address, '*' or [IPv6]"},
      {":80", "bad host"},
      {"[]:80", "bad host"},
      {"", "expected HOST:PORT"},
  };
  struct sockaddr_storage ss;
  socklen_t len;
  char err[256], buf[128], want[256];

  for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    int rc;

    len = 0;
    err[0] = '\0';
    rc = parse_hostport(good[i].s, &ss, &len, err, sizeof(err));
    is_int(rc, 0, "parse_hostport \"%s\"", good[i].s);
    is_int(ss.ss_family, good[i].family, "\"%s\" family", good[i].s);
    is_int(len,
           good[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                     : sizeof(struct sockaddr_in6),
           "\"%s\" length", good[i].s);
    is_int(sockaddr_port(sa), good[i].port, "\"%s\" port", good[i].s);
    format_sockaddr(sa, buf, sizeof(buf));
    is_str(buf, good[i].formatted, "format_sockaddr \"%s\"", good[i].s);

    /* The formatted text parses back to the same address. */
    {
      struct sockaddr_storage ss2;
      socklen_t len2 = 0;

      rc = parse_hostport(buf, &ss2, &len2, err, sizeof(err));
      ok(rc == 0 && len2 == len && memcmp(&ss, &ss2, len) == 0,
         "\"%s\" round trips", buf);
    }
  }
  {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

    parse_hostport("127.0.0.1:9", &ss, &len, err, sizeof(err));
    is_int(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK,
           "127.0.0.1 in network order");
    parse_hostport("*:9", &ss, &len, err, sizeof(err));
    is_int(ntohl(sin->sin_addr.s_addr), INADDR_ANY, "'*' is INADDR_ANY");
  }

  for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
    int rc;

    err[0] = '\0';
    rc = parse_hostport(bad[i].s, &ss, &len, err, sizeof(err));
    is_int(rc, -EINVAL, "parse_hostport \"%s\" fails", bad[i].s);
    snprintf(want, sizeof(want), "'%s': %s", bad[i].s, bad[i].why);
    is_str(err, want, "parse_hostport \"%s\" message", bad[i].s);
  }

  {
    static const unsigned v[] = {0, 7, 10, 65535, 4294967295u};
    static const char *const want_dec[] = {"0", "7", "10", "65535",
                                           "4294967295"};

    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
      char *end = put_decimal(buf, v[i]);

      *end = '\0';
      is_str(buf, want_dec[i], "put_decimal %u", v[i]);
    }
  }

  {
    char small[8];

    /* Cut like snprintf(). */
    parse_hostport("127.0.0.1:5683", &ss, &len, err, sizeof(err));
    format_sockaddr((const struct sockaddr *)&ss, small, sizeof(small));
    is_str(small, "127.0.0", "format_sockaddr into a short buffer");
  }

  {
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    format_sockaddr((const struct sockaddr *)&sun, buf, sizeof(buf));
    snprintf(want, sizeof(want), "(family %d)", AF_UNIX);
    is_str(buf, want, "format_sockaddr of another family");
    is_int(sockaddr_port((const struct sockaddr *)&sun), -1,
           "sockaddr_port of another family");
  }
}

static void test_iso8601(void)
{
  static const struct {
    int64_t ms;
    const char *want;
  } cases[] = {
      {1700000000123LL, "2023-11-14T22:13:20.123Z"},
      {0, "1970-01-01T00:00:00.000Z"},
      {1, "1970-01-01T00:00:00.001Z"},
      {951782400000LL, "2000-02-29T00:00:00.000Z"},
      {4102444799999LL, "2099-12-31T23:59:59.999Z"},
      {1700000000999LL, "2023-11-14T22:13:20.999Z"},
  };
  char buf[64];

  for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
    format_iso8601(cases[i].ms, buf, sizeof(buf));
    is_str(buf, cases[i].want, "format_iso8601 %lld", (long long)cases[i].ms);
  }
}

/* ---- files ---- */

/* Returns the file's contents (new string), or NULL. */
static char *slurp(const char *path)
{
  FILE *f = fopen(path, "r");
  char *buf = NULL;
  size_t n;

  if (!f)
    return NULL;
  buf = xmalloc(4096);
  n = fread(buf, 1, 4095, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Counts the entries of a folder other than "." and "..". */
static int count_entries(const char *path)
{
  DIR *d = opendir(path);
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

static int mode_of(const char *path)
{
  struct stat st;

  if (stat(path, &st) < 0)
    return -1;
  return (int)(st.st_mode & 07777);
}

static bool is_dir(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_files(void)
{
  char *a = xasprintf("%s/a", tmpdir);
  char *ab = xasprintf("%s/a/b", tmpdir);
  char *abc = xasprintf("%s/a/b/c", tmpdir);
  char *abc_slash = xasprintf("%s/a/b/c/", tmpdir);
  char *file = xasprintf("%s/a/b/c/f.txt", tmpdir);
  char *under_file = xasprintf("%s/a/b/c/f.txt/sub", tmpdir);
  char *nodir = xasprintf("%s/nonexistent/f.txt", tmpdir);
  char *s = NULL;
  mode_t old = umask(022);

  is_int(mkdir_p(abc, 0750), 0, "mkdir_p nested path");
  ok(is_dir(a) && is_dir(ab) && is_dir(abc), "every level created");
  is_int(mode_of(a), 0750, "mkdir_p mode on a parent");
  is_int(mode_of(abc), 0750, "mkdir_p mode on the leaf");
  is_int(mkdir_p(abc, 0750), 0, "mkdir_p on an existing folder is ok");
  is_int(mkdir_p(abc_slash, 0750), 0, "mkdir_p with a trailing slash");
  is_int(mkdir_p("", 0750), -ENOENT, "mkdir_p of \"\" fails");

  is_int(write_file_atomic(file, "hello\n", 6, 0640), 0,
         "write_file_atomic new file");
  s = slurp(file);
  is_str(s, "hello\n", "contents written");
  free(s);
  is_int(mode_of(file), 0640, "mode respected");
  is_int(count_entries(abc), 1, "no temporary file left behind");

  is_int(write_file_atomic(file, "bye", 3, 0600), 0,
         "write_file_atomic replaces a file");
  s = slurp(file);
  is_str(s, "bye", "replaced contents (shorter, no leftover bytes)");
  free(s);
  is_int(mode_of(file), 0600, "replacement has the new mode");
  is_int(count_entries(abc), 1, "still no temporary file");

  is_int(write_file_atomic(file, "", 0, 0600), 0, "empty write");
  s = slurp(file);
  is_str(s, "", "empty file");
  free(s);

  is_int(mkdir_p(file, 0750), -ENOTDIR,
         "mkdir_p over an existing regular file fails");
  is_int(mkdir_p(under_file, 0750), -ENOTDIR,
         "mkdir_p through a regular file fails");

  is_int(write_file_atomic(nodir, "x", 1, 0600), -ENOENT,
         "write_file_atomic into a missing folder fails");
  is_int(write_file_atomic(abc, "x", 1, 0600), -EISDIR,
         "write_file_atomic over a folder fails");
  is_int(count_entries(ab), 1, "failed write leaves no temporary file");
  ok(is_dir(abc), "the folder is untouched");

  umask(old);
  free(a);
  free(ab);
  free(abc);
  free(abc_slash);
  free(file);
  free(under_file);
  free(nodir);
}

/* ---- logging ---- */

static void test_log(void)
{
  static const char *const names[] = {"err", "warn", "notice", "info",
                                      "debug"};
  enum log_level saved = log_get_level();
  enum log_level lv;
  char buf[8192];
  int p[2];

  for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
    lv = (enum log_level)0;
    is_int(log_level_parse(names[i], &lv), 0, "log_level_parse %s", names[i]);
    is_int(lv, LL_ERR + (int)i, "%s is level %d", names[i], 3 + (int)i);
    is_str(log_level_name(lv), names[i], "log_level_name round trip %s",
           names[i]);
  }
  lv = LL_INFO;
  is_int(log_level_parse("warning", &lv), -EINVAL, "\"warning\" rejected");
  is_int(log_level_parse("", &lv), -EINVAL, "\"\" rejected");
  is_int(log_level_parse("?", &lv), -EINVAL, "\"?\" rejected");
  is_int(lv, LL_INFO, "failed parse leaves out alone");
  is_str(log_level_name((enum log_level)2), "?", "level 2 has no name");
  is_str(log_level_name((enum log_level)8), "?", "level 8 has no name");

  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
    printf("Bail out! pipe2: %s\n", strerror(errno));
    exit(1);
  }
  unsetenv("JOURNAL_STREAM");
  log_set_fd(p[1]);
  log_set_level(LL_INFO);
  is_int(log_get_level(), LL_INFO, "log_get_level");
  ok(log_enabled(LL_INFO) && log_enabled(LL_ERR), "info and err enabled");
  ok(!log_enabled(LL_DEBUG), "debug disabled at info");

  log_msg(LL_INFO, "tagx", "hello %d", 42);
  log_debug("hidden %d", 1);
  log_msg(LL_DEBUG, "tagx", "hidden too");
  log_warn("careful\n\n");
  drain(p[0], buf, sizeof(buf));
  ok(strstr(buf, " info   [tagx] hello 42\n") != NULL,
     "info message with level and tag");
  ok(strstr(buf, "hidden") == NULL, "debug suppressed at info");
  ok(strstr(buf, " warn   [test] careful\n") != NULL,
     "log_warn uses LOG_TAG and level");
  ok(strstr(buf, "careful\n\n") == NULL, "trailing newlines trimmed");
  /* "2023-11-14T22:13:20.123Z info   [tagx] hello 42" */
  ok(strlen(buf) > 25 && buf[4] == '-' && buf[10] == 'T' && buf[19] == '.' &&
         buf[23] == 'Z' && buf[24] == ' ',
     "line starts with an ISO 8601 timestamp: %.30s", buf);
  {
    int lines = 0;

    for (const char *c = buf; *c; c++)
      lines += *c == '\n';
    is_int(lines, 2, "exactly two lines written");
  }

  log_set_level(LL_DEBUG);
  log_debug("visible %s", "now");
  drain(p[0], buf, sizeof(buf));
  ok(strstr(buf, " debug  [test] visible now\n") != NULL,
     "debug shown at debug level");

  log_set_level(LL_ERR);
  log_warn("quiet");
  log_err("loud");
  drain(p[0], buf, sizeof(buf));
  ok(strstr(buf, "quiet") == NULL, "warn suppressed at err");
  ok(strstr(buf, " err    [test] loud\n") != NULL, "err shown at err");

  /* Under systemd the line carries a syslog priority prefix instead. */
  setenv("JOURNAL_STREAM", "8:12345", 1);
  log_set_fd(p[1]);
  log_set_level(LL_INFO);
  log_warn("journal %d", 7);
  drain(p[0], buf, sizeof(buf));
  is_str(buf, "<4>[test] journal 7\n", "journald format");
  unsetenv("JOURNAL_STREAM");

  log_set_fd(2);
  log_set_level(saved);
  close(p[0]);
  close(p[1]);
}

/* ---- event loop ---- */

struct fake_clock {
  int64_t mono, wall;
  int64_t step; /* added to mono after each read, to simulate a wait */
  int reads;
};

static void fake_read(void *arg, int64_t *mono, int64_t *wall)
{
  struct fake_clock *fc = arg;

  fc->reads++;
  *mono = fc->mono;
  *wall = fc->wall;
  fc->mono += fc->step;
}

static struct loop *fake_loop(struct fake_clock *fc)
{
  struct loop *loop = loop_new();

  if (!loop) {
    printf("Bail out! loop_new failed\n");
    exit(1);
  }
  loop_set_clock(loop, fake_read, fc);
  return loop;
}

/* A log of what fired, shared by the small timer tests. */
static int fired[64];
static int nfired;

struct ttimer {
  struct loop_timer t;
  int id;
  int rearm;                 /* re-arm this many more times */
  int64_t delay;             /* with this delay */
  struct loop_timer *victim; /* disarmed when this fires */
};

static void ttimer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct ttimer *tt = arg;

  /* -1000 marks a callback handed the wrong timer. */
  if (nfired < (int)ARRAY_SIZE(fired))
    fired[nfired++] = t == &tt->t ? tt->id : -1000;
  if (tt->victim)
    loop_timer_disarm(loop, tt->victim);
  if (tt->rearm > 0) {
    tt->rearm--;
    loop_timer_arm(loop, t, tt->delay);
  }
}

static void ttimer_init(struct ttimer *tt, int id)
{
  memset(tt, 0, sizeof(*tt));
  tt->id = id;
  loop_timer_init(&tt->t, ttimer_cb, tt);
}

/* Checks that fired[] is exactly want[0..n). */
static void is_fired(const int *want, int n, const char *what)
{
  bool same = nfired == n;

  for (int i = 0; same && i < n; i++)
    same = fired[i] == want[i];
  ok(same, "%s", what);
  if (!same) {
    printf("#   fired:");
    for (int i = 0; i < nfired; i++)
      printf(" %d", fired[i]);
    printf("\n#   want: ");
    for (int i = 0; i < n; i++)
      printf(" %d", want[i]);
    printf("\n");
  }
  nfired = 0;
}

static void test_loop_clock(void)
{
  struct fake_clock fc = {.mono = 1000, .wall = 1700000000000LL};
  struct loop *loop = fake_loop(&fc);
  int64_t real;

  is_int(loop_now(loop), 1000, "loop_now from the fake clock");
  ok(loop_wall(loop) == 1700000000000LL, "loop_wall from the fake clock");
  fc.mono = 2500;
  fc.wall = 1700000001500LL;
  is_int(loop_now(loop), 1000, "time is not reread behind our back");
  is_int(loop_run_once(loop, 0), 0, "loop_run_once with nothing to do");
  is_int(loop_now(loop), 2500, "loop_run_once rereads the clock");
  ok(loop_wall(loop) == 1700000001500LL, "wall reread with it");
  fc.mono = 3000;
  loop_update_time(loop);
  is_int(loop_now(loop), 3000, "loop_update_time rereads the clock");

  loop_set_clock(loop, NULL, NULL);
  real = (int64_t)time(NULL) * 1000;
  ok(loop_wall(loop) > real - 5000 && loop_wall(loop) < real + 5000,
     "NULL clock restores the real wall clock");
  ok(loop_now(loop) != 3000 && loop_now(loop) > 0,
     "NULL clock restores the real monotonic clock");
  fc.reads = 0;
  loop_run_once(loop, 0);
  is_int(fc.reads, 0, "the fake clock is no longer read");
  loop_free(loop);
}

static void test_loop_timers(void)
{
  struct fake_clock fc = {.mono = 0, .wall = 0};
  struct loop *loop = fake_loop(&fc);
  struct ttimer t[10];

  nfired = 0;
  /* Deadline order, ties in arm order. */
  {
    static const int64_t delays[] = {50, 10, 30, 10, 20};

    for (int i = 0; i < 5; i++) {
      ttimer_init(&t[i], i);
      ok(!loop_timer_armed(&t[i].t), "timer %d not armed after init", i);
      loop_timer_arm(loop, &t[i].t, delays[i]);
      ok(loop_timer_armed(&t[i].t), "timer %d armed", i);
    }
    fc.mono = 9;
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "nothing fires before its deadline");
    fc.mono = 10;
    loop_run_once(loop, 0);
    is_fired((const int[]){1, 3}, 2, "deadline 10: timers 1, 3");
    ok(!loop_timer_armed(&t[1].t) && !loop_timer_armed(&t[3].t),
       "fired timers are disarmed");
    ok(loop_timer_armed(&t[0].t), "later timer still armed");
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "a fired timer does not fire again");
    fc.mono = 1000;
    loop_run_once(loop, 0);
    is_fired((const int[]){4, 2, 0}, 3, "later ones in deadline order");
  }

  /* Equal deadlines fire in arm order, whatever the ids; re-arming moves
   * a timer behind the others. */
  {
    static const int order[] = {7, 2, 9, 0, 5, 3, 8, 1, 6, 4};

    for (int i = 0; i < 10; i++)
      ttimer_init(&t[i], i);
    for (int i = 0; i < 10; i++)
      loop_timer_arm(loop, &t[order[i]].t, 5);
    loop_timer_arm(loop, &t[7].t, 5);
    fc.mono = 1005;
    loop_run_once(loop, 0);
    is_fired((const int[]){2, 9, 0, 5, 3, 8, 1, 6, 4, 7}, 10,
             "equal deadlines fire in arm order");
  }

  /* Disarm, also twice, and a negative delay. */
  {
    for (int i = 0; i < 4; i++)
      ttimer_init(&t[i], i);
    loop_timer_arm(loop, &t[0].t, 1);
    loop_timer_arm(loop, &t[1].t, 2);
    loop_timer_arm(loop, &t[2].t, 0);
    loop_timer_arm(loop, &t[3].t, -50);
    loop_timer_disarm(loop, &t[1].t);
    ok(!loop_timer_armed(&t[1].t), "disarmed timer not armed");
    loop_timer_disarm(loop, &t[1].t);
    ok(!loop_timer_armed(&t[1].t), "second disarm harmless");
    loop_run_once(loop, 0);
    is_fired((const int[]){2, 3}, 2, "negative delay means now, not earlier");
    fc.mono += 2;
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1, "disarmed timer never fires");
  }

  /* loop_timer_arm_at is absolute; re-arming an armed timer moves it. */
  {
    ttimer_init(&t[0], 0);
    ttimer_init(&t[1], 1);
    loop_timer_arm_at(loop, &t[0].t, fc.mono + 100);
    loop_timer_arm(loop, &t[1].t, 50);
    loop_timer_arm(loop, &t[0].t, 10);
    fc.mono += 10;
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1, "re-armed timer fires at its new time");
    fc.mono += 40;
    loop_run_once(loop, 0);
    is_fired((const int[]){1}, 1, "other timer at its time");
    fc.mono += 100;
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "old deadline of a re-armed timer is gone");
  }

  /* Re-arming from the callback: once per iteration, at the new time. */
  {
    int64_t base = fc.mono;

    ttimer_init(&t[0], 0);
    t[0].rearm = 2;
    t[0].delay = 10;
    loop_timer_arm(loop, &t[0].t, 10);
    fc.mono = base + 10;
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1, "periodic timer fires");
    ok(loop_timer_armed(&t[0].t), "re-armed from its callback");
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "not again at the same time");
    fc.mono = base + 100;
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1,
             "a late periodic timer fires once per iteration");
    fc.mono = base + 109;
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "next period counts from the late firing");
    fc.mono = base + 110;
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1, "third firing");
    ok(!loop_timer_armed(&t[0].t), "done re-arming");
  }

  /* Delay 0 from the callback waits for the next iteration, behind the
   * timers already due. */
  {
    ttimer_init(&t[0], 0);
    ttimer_init(&t[1], 1);
    t[0].rearm = 1000;
    t[0].delay = 0;
    loop_timer_arm(loop, &t[0].t, 0);
    loop_timer_arm(loop, &t[1].t, 0);
    loop_run_once(loop, 0);
    is_fired((const int[]){0, 1}, 2,
             "zero-delay re-arm does not fire twice in one iteration");
    loop_run_once(loop, 0);
    is_fired((const int[]){0}, 1, "it fires in the next iteration");
    loop_timer_disarm(loop, &t[0].t);
    loop_run_once(loop, 0);
    is_fired(NULL, 0, "disarmed for good");
  }

  /* A callback that disarms a timer due in the same iteration. */
  {
    ttimer_init(&t[0], 0);
    ttimer_init(&t[1], 1);
    ttimer_init(&t[2], 2);
    t[0].victim = &t[1].t;
    loop_timer_arm(loop, &t[0].t, 5);
    loop_timer_arm(loop, &t[1].t, 5);
    loop_timer_arm(loop, &t[2].t, 5);
    fc.mono += 5;
    loop_run_once(loop, 0);
    is_fired((const int[]){0, 2}, 2,
             "timer disarmed by an earlier callback does not fire");
  }

  /* loop_free forgets armed timers. */
  {
    ttimer_init(&t[0], 0);
    loop_timer_arm(loop, &t[0].t, 10);
    loop_free(loop);
    ok(!loop_timer_armed(&t[0].t), "loop_free disarms its timers");
  }
}

/* The randomised heap test. */
#define NH 1000

struct htimer {
  struct loop_timer t;
  int id;
  bool live;
  int64_t deadline;
  uint64_t armseq;
  int fired;
  int64_t fired_at, prev_now;
};

static struct htimer ht[NH];
static int hfired[NH * 2];
static int nhfired;
static int64_t hprev_now; /* the time of the previous iteration */

static void htimer_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
  struct htimer *h = arg;

  h->fired++;
  h->fired_at = loop_now(loop);
  h->prev_now = hprev_now;
  if (nhfired < (int)ARRAY_SIZE(hfired))
    hfired[nhfired++] = h->id;
}

static uint32_t rng_state;

/* A fixed generator, so failures reproduce on every libc. */
static uint32_t rnd(void)
{
  rng_state = rng_state * 1103515245u + 12345u;
  return rng_state >> 8;
}

static int cmp_htimer(const void *a, const void *b)
{
  const struct htimer *x = *(struct htimer *const *)a;
  const struct htimer *y = *(struct htimer *const *)b;

  if (x->deadline != y->deadline)
    return x->deadline < y->deadline ? -1 : 1;
  return x->armseq < y->armseq ? -1 : x->armseq > y->armseq;
}

static void test_loop_heap(uint32_t seed, bool one_jump)
{
  struct fake_clock fc = {.mono = 0, .wall = 0};
  struct loop *loop = fake_loop(&fc);
  struct htimer *expect[NH];
  uint64_t armseq = 0;
  int nlive = 0, disarmed = 0, bad_order = 0, bad_time = 0, iters = 0;
  bool dead_fired = false, twice = false;
  int pick[3], npick = 0;

  rng_state = seed;
  nhfired = 0;
  for (int i = 0; i < NH; i++) {
    ht[i] = (struct htimer){.id = i, .live = true};
    loop_timer_init(&ht[i].t, htimer_cb, &ht[i]);
    /* A small range, so many deadlines are equal. */
    ht[i].deadline = 1 + (int64_t)(rnd() % 400);
    ht[i].armseq = armseq++;
    loop_timer_arm(loop, &ht[i].t, ht[i].deadline);
  }
  /* Disarm the root, a middle entry and the last entry of the heap (which
   * take different paths through the sift code), then a third of the
   * rest. heap_ix is private, but the test may look to pick them. */
  for (int i = 0; i < NH; i++) {
    size_t ix = ht[i].t.heap_ix;

    if (ix == 0 || ix == NH / 2 || ix == NH - 1)
      pick[npick++] = i;
  }
  is_int(npick, 3, "heap %u: root, middle and last found", seed);
  for (int i = 0; i < npick; i++) {
    loop_timer_disarm(loop, &ht[pick[i]].t);
    ht[pick[i]].live = false;
    disarmed++;
  }
  for (int i = 0; i < NH; i++) {
    if (ht[i].live && rnd() % 3 == 0) {
      loop_timer_disarm(loop, &ht[i].t);
      ht[i].live = false;
      disarmed++;
    }
  }
  /* Re-arm some, live or not, to new deadlines. */
  for (int i = 0; i < NH; i++) {
    if (rnd() % 5 != 0)
      continue;
    ht[i].deadline = 1 + (int64_t)(rnd() % 400);
    ht[i].armseq = armseq++;
    ht[i].live = true;
    loop_timer_arm(loop, &ht[i].t, ht[i].deadline);
  }
  for (int i = 0; i < NH; i++) {
    if (ht[i].live != loop_timer_armed(&ht[i].t))
      bad_order++;
    if (ht[i].live)
      expect[nlive++] = &ht[i];
  }
  is_int(bad_order, 0, "heap %u: loop_timer_armed matches", seed);
  ok(disarmed > NH / 4 && nlive > NH / 2, "heap %u: %d live, %d disarmed",
     seed, nlive, disarmed);
  qsort(expect, (size_t)nlive, sizeof(expect[0]), cmp_htimer);

  hprev_now = 0;
  while (nhfired < nlive && iters < 10000) {
    fc.mono = one_jump ? 1000 : fc.mono + (int64_t)(rnd() % 25);
    loop_run_once(loop, 0);
    hprev_now = loop_now(loop);
    iters++;
  }
  fc.mono = 100000;
  loop_run_once(loop, 0);

  is_int(nhfired, nlive, "heap %u: every live timer fired", seed);
  bad_order = 0;
  for (int i = 0; i < nhfired && i < nlive; i++)
    if (hfired[i] != expect[i]->id)
      bad_order++;
  is_int(bad_order, 0, "heap %u: fired in (deadline, arm order)", seed);
  for (int i = 0; i < NH; i++) {
    if (!ht[i].live && ht[i].fired)
      dead_fired = true;
    if (ht[i].fired > 1)
      twice = true;
    if (ht[i].live && (ht[i].fired_at < ht[i].deadline ||
                       (!one_jump && ht[i].prev_now >= ht[i].deadline)))
      bad_time++;
  }
  ok(!dead_fired, "heap %u: disarmed timers never fired", seed);
  ok(!twice, "heap %u: no timer fired twice", seed);
  is_int(bad_time, 0, "heap %u: each fired in the first iteration due", seed);
  if (one_jump)
    is_int(iters, 1, "heap %u: all fired in one iteration", seed);
  loop_free(loop);
}

struct fdstate {
  int calls;
  int fd;
  uint32_t events;
  int64_t now;
  int other; /* fd to remove from the loop when called, or -1 */
};

static void fd_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
  struct fdstate *st = arg;
  char buf[64];

  st->calls++;
  st->fd = fd;
  st->events = events;
  st->now = loop_now(loop);
  if (events & EPOLLIN)
    while (read(fd, buf, sizeof(buf)) > 0)
      ;
  if (st->other >= 0)
    loop_fd_del(loop, st->other);
}

static void test_loop_fds(void)
{
  struct fake_clock fc = {.mono = 0, .wall = 0};
  struct loop *loop = fake_loop(&fc);
  struct fdstate st = {.other = -1}, st2 = {.other = -1};
  int p[2], q[2];
  int big = -1, regular = -1;
  char *regpath = NULL;

  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 ||
      pipe2(q, O_NONBLOCK | O_CLOEXEC) < 0) {
    printf("Bail out! pipe2: %s\n", strerror(errno));
    exit(1);
  }
  is_int(loop_fd_add(loop, p[0], EPOLLIN, fd_cb, &st), 0, "loop_fd_add");
  is_int(loop_fd_add(loop, p[0], EPOLLIN, fd_cb, &st), -EEXIST,
         "loop_fd_add twice gives -EEXIST");
  is_int(loop_fd_add(loop, -1, EPOLLIN, fd_cb, &st), -EBADF,
         "loop_fd_add -1 gives -EBADF");
  loop_run_once(loop, 0);
  is_int(st.calls, 0, "no data: no callback");
  is_int(write(p[1], "x", 1), 1, "write to the pipe");
  loop_run_once(loop, 0);
  is_int(st.calls, 1, "data: callback called once");
  is_int(st.fd, p[0], "callback gets its fd");
  ok(st.events & EPOLLIN, "callback gets EPOLLIN");
  loop_run_once(loop, 0);
  is_int(st.calls, 1, "drained: no further callback");

  /* The clock is reread after the wait, before the fd callbacks. */
  fc.mono = 5000;
  fc.step = 100;
  fc.reads = 0;
  is_int(write(p[1], "t", 1), 1, "write for the time check");
  loop_run_once(loop, 0);
  fc.step = 0;
  is_int(fc.reads, 2, "clock read twice: before timers, after the wait");
  is_int(st.now, 5100, "fd callback sees the time after the wait");

  is_int(loop_fd_del(loop, p[0]), 0, "loop_fd_del");
  is_int(write(p[1], "y", 1), 1, "write again");
  loop_run_once(loop, 0);
  is_int(st.calls, 2, "removed fd: no callback");
  is_int(loop_fd_del(loop, p[0]), -ENOENT, "loop_fd_del twice: -ENOENT");
  is_int(loop_fd_del(loop, 100000), -ENOENT, "loop_fd_del unknown fd");
  is_int(loop_fd_mod(loop, p[0], EPOLLIN), -ENOENT, "loop_fd_mod unknown fd");
  is_int(loop_fd_add(loop, p[0], EPOLLIN, fd_cb, &st), 0,
         "fd can be added again after removal");
  loop_run_once(loop, 0);
  is_int(st.calls, 3, "re-added fd sees the pending data");

  /* The write end: nothing with EPOLLIN, then writable with EPOLLOUT. */
  is_int(loop_fd_add(loop, p[1], EPOLLIN, fd_cb, &st2), 0,
         "add the write end");
  loop_run_once(loop, 0);
  is_int(st2.calls, 0, "write end is never readable");
  is_int(loop_fd_mod(loop, p[1], EPOLLOUT), 0, "loop_fd_mod to EPOLLOUT");
  loop_run_once(loop, 0);
  ok(st2.calls == 1 && (st2.events & EPOLLOUT), "EPOLLOUT delivered");
  is_int(loop_fd_del(loop, p[1]), 0, "remove the write end");

  /* A high fd number grows the table. */
  big = dup2(q[0], 300);
  if (big == 300) {
    struct fdstate st3 = {.other = -1};

    is_int(loop_fd_add(loop, big, EPOLLIN, fd_cb, &st3), 0,
           "loop_fd_add fd 300");
    is_int(loop_fd_add(loop, p[0], EPOLLIN, fd_cb, &st), -EEXIST,
           "low fds survive the table growth");
    is_int(write(q[1], "z", 1), 1, "write to the second pipe");
    loop_run_once(loop, 0);
    ok(st3.calls == 1 && st3.fd == 300, "fd 300 callback");
    loop_fd_del(loop, big);
    close(big);
  } else {
    ok(0, "dup2 to fd 300: %s", strerror(errno));
  }

  /* Two ready fds; the first callback removes the other. */
  {
    struct fdstate a = {.other = q[0]}, b = {.other = p[0]};

    loop_fd_del(loop, p[0]);
    is_int(loop_fd_add(loop, p[0], EPOLLIN, fd_cb, &a), 0, "add p");
    is_int(loop_fd_add(loop, q[0], EPOLLIN, fd_cb, &b), 0, "add q");
    if (write(p[1], "1", 1) != 1 || write(q[1], "2", 1) != 1)
      ok(0, "write: %s", strerror(errno));
    loop_run_once(loop, 0);
    is_int(a.calls + b.calls, 1,
           "an fd removed by an earlier callback in the batch is skipped");
    loop_fd_del(loop, p[0]);
    loop_fd_del(loop, q[0]);
  }

  /* EPOLLHUP once the write end is closed. */
  st = (struct fdstate){.other = -1};
  is_int(loop_fd_add(loop, q[0], EPOLLIN, fd_cb, &st), 0, "add q again");
  close(q[1]);
  loop_run_once(loop, 0);
  ok(st.calls == 1 && (st.events & EPOLLHUP), "EPOLLHUP after close");
  /* Closing removed it from epoll; loop_fd_del still forgets it. */
  close(q[0]);
  is_int(loop_fd_del(loop, q[0]), 0, "loop_fd_del after close");

  /* epoll refuses regular files; the loop must not remember the fd. */
  regpath = write_tmp("regular", "x", 1);
  regular = open(regpath, O_RDONLY | O_CLOEXEC);
  is_int(loop_fd_add(loop, regular, EPOLLIN, fd_cb, &st), -EPERM,
         "loop_fd_add of a regular file gives -EPERM");
  is_int(loop_fd_add(loop, regular, EPOLLIN, fd_cb, &st), -EPERM,
         "and is not half-registered");
  close(regular);
  unlink(regpath);
  free(regpath);

  close(p[0]);
  close(p[1]);
  loop_free(loop);
}

struct hookstate {
  int calls;
  int stop_at;
  int seen_fired;          /* nfired when the hook ran */
  struct loop_timer *spin; /* armed at delay 0 so loop_run never blocks */
};

static void hook_cb(struct loop *loop, void *arg)
{
  struct hookstate *hs = arg;

  hs->calls++;
  hs->seen_fired = nfired;
  if (hs->spin)
    loop_timer_arm(loop, hs->spin, 0);
  if (hs->stop_at && hs->calls == hs->stop_at)
    loop_stop(loop);
}

static void noop_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
}

/* Re-arms itself at delay 0 and stops the loop on its third run. */
static void stop_cb(struct loop *loop, struct loop_timer *t, void *arg)
{
  int *n = arg;

  if (++*n == 3)
    loop_stop(loop);
  else
    loop_timer_arm(loop, t, 0);
}

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
  got_usr1 = 1;
}

static void test_loop_hooks(void)
{
  struct fake_clock fc = {.mono = 0, .wall = 0};
  struct loop *loop = fake_loop(&fc);
  struct hookstate hs = {0}, hs2 = {0};
  struct ttimer t;
  struct loop_timer spin;

  is_int(loop_hook_add(loop, hook_cb, &hs), 0, "loop_hook_add");
  is_int(loop_hook_add(loop, hook_cb, &hs2), 0, "second hook");
  loop_run_once(loop, 0);
  loop_run_once(loop, 0);
  loop_run_once(loop, 0);
  ok(hs.calls == 3 && hs2.calls == 3, "hooks run once per iteration");

  nfired = 0;
  ttimer_init(&t, 5);
  loop_timer_arm(loop, &t.t, 0);
  loop_run_once(loop, 0);
  is_int(hs.seen_fired, 1, "hooks run after the timers");
  nfired = 0;

  loop_free(loop);

  /* loop_stop from a hook ends loop_run after that iteration. The hook
   * re-arms a do-nothing timer at delay 0, so no wait ever blocks. */
  loop = fake_loop(&fc);
  {
    int n = 0;

    loop_timer_init(&spin, noop_cb, NULL);
    hs = (struct hookstate){.stop_at = 5, .spin = &spin};
    is_int(loop_hook_add(loop, hook_cb, &hs), 0, "hook for loop_run");
    is_int(loop_run(loop), 0, "loop_run returns 0 after loop_stop");
    is_int(hs.calls, 5, "loop_run ran exactly 5 iterations");
    hs.spin = NULL;
    hs.stop_at = 0;
    loop_timer_disarm(loop, &spin);

    /* loop_stop from a timer callback works too; loop_run starts afresh
     * even though the previous run was stopped. */
    hs.calls = 0;
    loop_timer_init(&spin, stop_cb, &n);
    loop_timer_arm(loop, &spin, 0);
    is_int(loop_run(loop), 0, "loop_run stopped by a timer");
    is_int(n, 3, "timer ran 3 times before stopping");
    is_int(hs.calls, 3, "hooks ran in each of those iterations");
  }
  loop_free(loop);

  /* At most 16 hooks. */
  loop = fake_loop(&fc);
  {
    int added = 0;

    while (added < 100 && loop_hook_add(loop, hook_cb, &hs2) == 0)
      added++;
    is_int(added, 16, "16 hooks fit");
    is_int(loop_hook_add(loop, hook_cb, &hs2), -ENOSPC,
           "the 17th gives -ENOSPC");
  }
  loop_free(loop);

  /* A signal blocked outside the wait is delivered inside it. */
  loop = fake_loop(&fc);
  {
    sigset_t block, old, none;
    struct sigaction sa, olds;
    int rc;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &olds);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    sigemptyset(&none);
    loop_set_wait_sigmask(loop, &none);
    got_usr1 = 0;
    raise(SIGUSR1);
    is_int(got_usr1, 0, "SIGUSR1 blocked outside the wait");
    /* If the mask were not applied this would wait the full 2 s. */
    rc = loop_run_once(loop, 2000);
    is_int(rc, 0, "EINTR is not an error");
    is_int(got_usr1, 1, "SIGUSR1 delivered during the wait");
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGUSR1, &olds, NULL);
    loop_set_wait_sigmask(loop, NULL);
  }
  loop_free(loop);
  loop_free(NULL);
  ok(1, "loop_free(NULL) is a no-op");
}

/* ---- setup ---- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  return remove(path);
}

int main(void)
{
  const char *base = getenv("TMPDIR");

  /* A hung loop test fails instead of blocking make check. */
  alarm(60);
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(tmpdir, sizeof(tmpdir), "%s/test_common.XXXXXX",
           base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp %s: %s\n", tmpdir, strerror(errno));
    return 1;
  }

  test_conf_defaults();
  test_conf_good();
  test_conf_units();
  test_conf_bad();
  test_conf_file();
  test_conf_reload();
  test_parse_int64();
  test_parse_scaled();
  test_parse_bool();
  test_hostport();
  test_iso8601();
  test_files();
  test_log();
  test_loop_clock();
  test_loop_timers();
  test_loop_heap(1, false);
  test_loop_heap(20240601, false);
  test_loop_heap(7, true);
  test_loop_fds();
  test_loop_hooks();

  if (nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
    printf("# cannot remove %s: %s\n", tmpdir, strerror(errno));
  ok(access(tmpdir, F_OK) < 0, "temporary folder removed");
  return tap_done();
}
