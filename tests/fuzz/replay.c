/*
 * Runs a fuzz target over its seed corpus as an ordinary TAP test, for
 * builds without --enable-fuzzers (knot does the same). The corpus is
 * tests/fuzz/corpus/<name> under $top_srcdir (the test harness exports
 * it; "." otherwise), where <name> is this program's name without its
 * "replay_" prefix; a folder given as the first argument overrides that.
 * Each input goes in a buffer of exactly its size, so an overread trips
 * the sanitizers. A crash fails the test; anything else is "ok".
 */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seeds are small; anything bigger is a mistake in the corpus. */
#define SEED_MAX (1024 * 1024)

static int name_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_seed(const char *path, uint8_t **buf, size_t *len)
{
  FILE *f = fopen(path, "rb");
  uint8_t *p;
  size_t n;

  if (!f)
    return -1;
  p = malloc(SEED_MAX);
  if (!p) {
    fclose(f);
    return -1;
  }
  n = fread(p, 1, SEED_MAX, f);
  fclose(f);
  if (n == SEED_MAX) {
    free(p);
    return -1;
  }
  /* Exactly n bytes, so reading one past the end is caught. */
  *buf = malloc(n ? n : 1);
  if (!*buf) {
    free(p);
    return -1;
  }
  memcpy(*buf, p, n);
  free(p);
  *len = n;
  return 0;
}

int main(int argc, char **argv)
{
  const char *top = getenv("top_srcdir");
  const char *prog = strrchr(argv[0], '/');
  char dir[PATH_MAX];
  char **names = NULL;
  size_t n = 0;
  struct dirent *de;
  int failed = 0;
  DIR *d;

  prog = prog ? prog + 1 : argv[0];
  if (strncmp(prog, "replay_", 7) == 0)
    prog += 7;
  if (argc > 1)
    snprintf(dir, sizeof(dir), "%s", argv[1]);
  else
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s",
             top && *top ? top : ".", prog);
  d = opendir(dir);
  if (!d) {
    printf("Bail out! cannot open corpus %s\n", dir);
    return 1;
  }
  for (;;) {
    char **grown;

    de = readdir(d);
    if (!de)
      break;
    if (de->d_name[0] == '.')
      continue;
    grown = realloc(names, (n + 1) * sizeof(*names));
    if (!grown) {
      printf("Bail out! out of memory\n");
      return 1;
    }
    names = grown;
    names[n] = strdup(de->d_name);
    if (!names[n]) {
      printf("Bail out! out of memory\n");
      return 1;
    }
    n++;
  }
  closedir(d);
  if (n > 0)
    qsort(names, n, sizeof(*names), name_cmp);
  for (size_t i = 0; i < n; i++) {
    char path[PATH_MAX + 256];
    uint8_t *buf = NULL;
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    if (read_seed(path, &buf, &len) < 0) {
      printf("not ok %zu - corpus file %s (cannot read)\n", i + 1, names[i]);
      failed = 1;
    } else {
      LLVMFuzzerTestOneInput(buf, len);
      printf("ok %zu - corpus file %s\n", i + 1, names[i]);
      free(buf);
    }
    fflush(stdout);
    free(names[i]);
  }
  free(names);
  printf("1..%zu\n", n);
  return failed;
}
