/*
 * The daemon's config table against etc/fotad.conf: every key is listed
 * there, commented out, with the built-in default, and every default
 * parses.
 */
#include "daemon/settings.h"

#include "tests/tap.h"

#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "r");
  char *buf;
  size_t n;

  if (!f)
    return NULL;
  buf = xmalloc(1 << 20);
  n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

int main(void)
{
  const char *srcdir = getenv("top_srcdir");
  char *path = xasprintf("%s/etc/fotad.conf", srcdir ? srcdir : ".");
  char *text = slurp(path);
  struct settings s = {0};
  char err[512];

  ok(text != NULL, "read %s", path);
  if (!text)
    return tap_done();

  conf_defaults(settings_table, settings_count, &s);
  ok(1, "every built-in default parses");
  ok(settings_log_level(&s) == LL_INFO, "log_level defaults to info");

  for (size_t i = 0; i < settings_count; i++) {
    char *line =
        xasprintf("\n#%s %s\n", settings_table[i].name, settings_table[i].def);

    ok(strstr(text, line) != NULL, "fotad.conf documents '%s %s'",
       settings_table[i].name, settings_table[i].def);
    free(line);
  }

  /* Uncommenting every key must give a valid file equal to the defaults. */
  for (char *p = text; (p = strstr(p, "\n#")) != NULL; p++) {
    if (p[2] >= 'a' && p[2] <= 'z')
      p[1] = ' ';
  }
  struct settings u = {0};
  conf_defaults(settings_table, settings_count, &u);
  is_int(conf_load_buf(settings_table, settings_count, &u, path, text, err,
                       sizeof(err)),
         0, "fotad.conf with every key uncommented parses (%s)", err);
  ok(!conf_static_changed(settings_table, settings_count, &s, &u,
                          &(const char *){NULL}),
     "and its values are the defaults");

  conf_free(settings_table, settings_count, &s);
  conf_free(settings_table, settings_count, &u);
  free(text);
  free(path);
  return tap_done();
}
