#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Running out of memory is not recoverable in a daemon that keeps its state
 * in SQLite: abort loudly so the supervisor restarts us and nothing is left
 * half-written.
 */
static void oom(size_t n)
{
  char msg[96];
  int len =
      snprintf(msg, sizeof(msg), "fotad: out of memory (%zu bytes)\n", n);

  if (len > 0 && write(2, msg, (size_t)len) < 0)
    abort();
  abort();
}

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);

  if (!p)
    oom(n);
  return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
  void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

  if (!p)
    oom(nmemb * size);
  return p;
}

void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);

  if (!q)
    oom(n);
  return q;
}

char *xstrdup(const char *s)
{
  char *p = strdup(s);

  if (!p)
    oom(strlen(s) + 1);
  return p;
}

char *xstrndup(const char *s, size_t n)
{
  char *p = strndup(s, n);

  if (!p)
    oom(n + 1);
  return p;
}

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  int n;

  va_start(ap, fmt);
  n = vasprintf(&p, fmt, ap);
  va_end(ap);
  if (n < 0)
    oom(0);
  return p;
}
