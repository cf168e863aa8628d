/*
 * fotad-sim: a fleet of simulated LwM2M devices with multi-component
 * firmware (object 33629, optionally object 5) and faults on demand.
 *
 * The command line and the JSON profile share one option table: each
 * entry is a struct conf_desc (parsed by common/'s strict parsers), its
 * short option, its argument name and its --help text. A profile key is a
 * long option name; the command line overrides the profile.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_TAG "sim"

#define EXIT_SETUP 2

struct sim_opts {
  char *server;
  int64_t count;
  char *endpoint_pattern;
  int lwm2m;
  int64_t lifetime;
  int binding;
  char *components;
  bool object5;
  bool no_afu;
  char *protocols;
  int delivery;
  int64_t severity;
  int64_t max_defer;
  char *psk_identity_pattern;
  char *psk_key_pattern;
  int64_t duration;
  char *until;
  char *report;
  char *profile;
  int64_t reboot_time;
  char *register_rate;
  int64_t awake_time;
  int version_from;
  char *package_version;
  bool require_mcuboot;
  int64_t max_package_size;
  int64_t block_size;
  int64_t download_timeout;
  int64_t slow_delay;
  char *send;
  int64_t send_interval;
  int64_t seed;
  char *bind;
  bool no_deregister;
  bool http_insecure;
  bool strict_update_args;
  bool install_fail_idle;
  char *manufacturer;
  char *model;
  char *log_level;
  int64_t verbose;
  bool help, version;

  /* Collected separately: --fault repeats, profile components are rich. */
  struct sim_fault_spec *faults;
  size_t nfaults;
  json_t *profile_components;
};

static const char *const lwm2m_names[] = {"1.0", "1.1", "1.2", NULL};
static const char *const binding_names[] = {"U", "UQ", NULL};
static const char *const delivery_names[] = {"pull", "push", "both", NULL};
static const char *const version_from_names[] = {"auto", "uri", "filename",
                                                 "mcuboot", NULL};

enum opt_kind {
  OPT_VALUE, /* conf_desc stores it */
  OPT_FAULT, /* appended to the fault list */
  OPT_COUNT, /* -v: counted */
  OPT_FLAG,  /* --help, --version */
};

struct sim_option {
  struct conf_desc conf;
  enum opt_kind kind;
  int short_name;
  const char *metavar; /* NULL: no argument */
  const char *help;
};

#define OFF(f) offsetof(struct sim_opts, f)
#define STR(n, f, def)                                                        \
  {                                                                           \
    n, CONF_STRING, 0, 0, def, OFF(f), false, NULL                            \
  }
#define INT(n, f, min, max, def)                                              \
  {                                                                           \
    n, CONF_INT, min, max, def, OFF(f), false, NULL                           \
  }
#define DUR(n, f, min, max, def)                                              \
  {                                                                           \
    n, CONF_DURATION, min, max, def, OFF(f), false, NULL                      \
  }
#define SIZE(n, f, min, max, def)                                             \
  {                                                                           \
    n, CONF_SIZE, min, max, def, OFF(f), false, NULL                          \
  }
#define BOOL(n, f)                                                            \
  {                                                                           \
    n, CONF_BOOL, 0, 0, "no", OFF(f), false, NULL                             \
  }
#define ENUM(n, f, names, def)                                                \
  {                                                                           \
    n, CONF_ENUM, 0, 0, def, OFF(f), false, names                             \
  }

static const struct sim_option options[] = {
    {STR("server", server, "coap://127.0.0.1:5683"), OPT_VALUE, 's', "URI",
     "LwM2M server, coap://HOST[:PORT] or coaps://HOST[:PORT] (PSK)"},
    {INT("count", count, 1, 100000, "1"), OPT_VALUE, 'n', "N",
     "number of devices"},
    {STR("endpoint-pattern", endpoint_pattern, "sim-%05d"), OPT_VALUE, 'e',
     "PATTERN", "endpoint names; one %d (or %05d, %x...) takes 0..N-1"},
    {ENUM("lwm2m", lwm2m, lwm2m_names, "1.1"), OPT_VALUE, 0, "1.0|1.1|1.2",
     "LwM2M version; 1.0 answers in TLV, later ones in SenML CBOR"},
    {DUR("lifetime", lifetime, 1, 0, "300"), OPT_VALUE, 'l', "DURATION",
     "registration lifetime; Updates go out at 3/4 of it"},
    {ENUM("binding", binding, binding_names, "U"), OPT_VALUE, 'b', "U|UQ",
     "UQ is queue mode: the device sleeps between exchanges"},
    {STR("components", components, ""), OPT_VALUE, 'c', "NAME=VER,...",
     "33629 instances in order (default application=1.0)"},
    {BOOL("object5", object5), OPT_VALUE, 0, NULL,
     "also expose object 5 /5/0 (drives component 0)"},
    {BOOL("no-afu", no_afu), OPT_VALUE, 0, NULL,
     "do not expose object 33629 (with --object5: a classic device)"},
    {STR("protocols", protocols, "0,1,2,3"), OPT_VALUE, 0, "LIST",
     "/8 Firmware Update Protocol Support (0 coap, 1 coaps, 2 http, "
     "3 https)"},
    {ENUM("delivery", delivery, delivery_names, "both"), OPT_VALUE, 0,
     "pull|push|both", "/9 Firmware Update Delivery Method"},
    {INT("severity", severity, 0, 2, "1"), OPT_VALUE, 0, "0|1|2",
     "/11 Severity of every component (0 critical, 1 mandatory, 2 optional)"},
    {DUR("max-defer", max_defer, 0, UINT32_MAX, "0"), OPT_VALUE, 0, "DURATION",
     "/13 Maximum Defer Period (0 forbids deferral)"},
    {STR("psk-identity-pattern", psk_identity_pattern, "\"\""), OPT_VALUE, 0,
     "PATTERN", "PSK identity per device (default: the endpoint name)"},
    {STR("psk-key-pattern", psk_key_pattern, "\"\""), OPT_VALUE, 0, "PATTERN",
     "PSK per device, in hex after formatting, e.g. 0011%08x"},
    {DUR("duration", duration, 0, 0, "0"), OPT_VALUE, 'd', "DURATION",
     "stop after this long (0: run until a signal or --until)"},
    {STR("until", until, "\"\""), OPT_VALUE, 'u', "CONDITION",
     "stop with status 0 once all-registered, all-updated, "
     "all-updated:VERSION or all-updated:COMPONENT=VERSION holds"},
    {STR("report", report, "\"\""), OPT_VALUE, 'r', "FILE",
     "write a JSON report (fleet summary and every device) at exit"},
    {STR("profile", profile, "\"\""), OPT_VALUE, 'p', "FILE",
     "read options from a JSON profile first (keys are option names)"},
    {DUR("reboot-time", reboot_time, 0, 3600, "2"), OPT_VALUE, 0, "DURATION",
     "how long a reboot keeps the device silent"},
    {STR("register-rate", register_rate, "1000/s"), OPT_VALUE, 'R', "RATE",
     "Registers per second across the fleet (N/s, N/m, 0 = no limit)"},
    {DUR("awake-time", awake_time, 1, 0, "30"), OPT_VALUE, 0, "DURATION",
     "queue mode: time awake after the last exchange"},
    {ENUM("version-from", version_from, version_from_names, "auto"), OPT_VALUE,
     0, "auto|uri|filename|mcuboot",
     "where a package's version comes from (see below)"},
    {STR("package-version", package_version, "\"\""), OPT_VALUE, 0, "VERSION",
     "every package installs this version"},
    {BOOL("require-mcuboot", require_mcuboot), OPT_VALUE, 0, NULL,
     "refuse packages that are not MCUboot images (Result 6)"},
    {SIZE("max-package-size", max_package_size, 1, 1073741824, "16M"),
     OPT_VALUE, 0, "SIZE", "flash for a package; larger is Result 2"},
    {INT("block-size", block_size, 16, 1024, "1024"), OPT_VALUE, 0, "BYTES",
     "Block2 size asked for in CoAP downloads (16..1024, a power of 2)"},
    {DUR("download-timeout", download_timeout, 1, 3600, "60"), OPT_VALUE, 0,
     "DURATION", "give up a download (Result 4) after this long silent"},
    {INT("slow-delay", slow_delay, 1, 600000, "500"), OPT_VALUE, 0, "MS",
     "slow-download fault: milliseconds between blocks"},
    {STR("send", send, "\"\""), OPT_VALUE, 0, "PATHS",
     "LwM2M 1.1+: Send (POST /dp) these paths, comma-separated, after "
     "registering and on every firmware state change"},
    {DUR("send-interval", send_interval, 0, 0, "0"), OPT_VALUE, 0, "DURATION",
     "also Send periodically"},
    {INT("seed", seed, 0, INT64_MAX, "1"), OPT_VALUE, 0, "N",
     "seed choosing the devices of fractional faults"},
    {STR("bind", bind, "\"\""), OPT_VALUE, 0, "ADDR",
     "local address for device sockets (default: chosen by the kernel)"},
    {BOOL("no-deregister", no_deregister), OPT_VALUE, 0, NULL,
     "exit without De-registering"},
    {BOOL("http-insecure", http_insecure), OPT_VALUE, 0, NULL,
     "https downloads skip certificate checks"},
    {BOOL("strict-update-args", strict_update_args), OPT_VALUE, 0, NULL,
     "Update naming a non-Downloaded instance: 4.05 (Anjay) instead of "
     "Result 13"},
    {BOOL("install-fail-idle", install_fail_idle), OPT_VALUE, 0, NULL,
     "a failed installation goes to Idle instead of Downloaded"},
    {STR("manufacturer", manufacturer, "fotad"), OPT_VALUE, 0, "TEXT",
     "/3/0/0 Manufacturer"},
    {STR("model", model, "sim-1"), OPT_VALUE, 0, "TEXT",
     "/3/0/1 Model Number"},
    {STR("log-level", log_level, "\"\""), OPT_VALUE, 0, "LEVEL",
     "err, warn, notice (default), info or debug"},
    {STR("fault", faults, ""), OPT_FAULT, 'f', "KIND:SPEC",
     "inject a fault into a fraction (0.1, 10%) or a list of endpoints "
     "(EP,EP); repeatable"},
    {INT("verbose", verbose, 0, 0, "0"), OPT_COUNT, 'v', NULL,
     "more log output (-v info, -vv debug with each device's port)"},
    {BOOL("help", help), OPT_FLAG, 'h', NULL, "this text"},
    {BOOL("version", version), OPT_FLAG, 0, NULL, "print the version"},
};

static const char help_tail[] =
    "\n"
    "Each device has its own UDP socket (or DTLS session), registers with\n"
    "objects 1, 3, 33629 (one instance per component) and optionally 5,\n"
    "answers Read (TLV, SenML JSON/CBOR, text), Write, Execute, Discover,\n"
    "Observe and Write-Attributes, and runs the 33629 state machine:\n"
    "a Package URI write downloads the package (coap, coaps, http, https),\n"
    "checks it, reaches Downloaded; Execute Update (optionally with\n"
    "0='</33629/1>,...') reboots the device for --reboot-time, after which\n"
    "it registers anew with the new Current Version, State 0, Result 1.\n"
    "\n"
    "Which version a package installs (--version-from auto tries in order):\n"
    "  uri       the ?v=VERSION query parameter of the Package URI\n"
    "  filename  a last path segment NAME-VERSION.EXT (app-1.2.0.bin)\n"
    "  mcuboot   an MCUboot header's iv_major.iv_minor.iv_revision\n"
    "None found: Result 6. --package-version fixes it for every package.\n"
    "Packages are checked for size (--max-package-size) and, when an\n"
    "MCUboot image, against its SHA256 TLV; a sha256=HEX query parameter\n"
    "or a component's \"sha256\" in the profile also check the whole file.\n"
    "Query with=1:2.0,2 makes a multi-component package; requires=1:3.0\n"
    "adds a dependency (MCUboot DEPENDENCY TLVs do the same).\n"
    "\n"
    "Faults (--fault KIND:0.1 or --fault KIND:sim-00003,sim-00007):\n";

static const char help_examples[] =
    "\n"
    "Examples:\n"
    "  fotad-sim --server coap://127.0.0.1:5683 --count 100 --duration 60s\n"
    "  fotad-sim -n 10000 --register-rate 2000/s --until all-registered\n"
    "  fotad-sim -n 50 --components application=1.0,modem=2.1 \\\n"
    "      --fault lost-download:0.1 --fault integrity:sim-00003 \\\n"
    "      --until all-updated:application=1.1 --report run.json\n"
    "  fotad-sim --server coaps://127.0.0.1:5684 \\\n"
    "      --psk-identity-pattern 'dev-%04d' --psk-key-pattern "
    "'0011223344%06x'\n"
    "\n"
    "Exit status: 0 when stopped by --duration, a signal or --until;\n"
    "1 on a runtime error; 2 on a bad command line or profile; 3 when\n"
    "--duration ran out before the --until condition held.\n"
    "See docs/fotad-sim.md for the profile format and every behaviour.\n";

/* Prints text from column col, wrapped before column 79. */
static void wrap(FILE *out, const char *text, int col)
{
  int pos = col;

  while (*text) {
    size_t n = strcspn(text, " ");

    if (pos > col && pos + 1 + (int)n > 79) {
      fprintf(out, "\n%*s", col, "");
      pos = col;
    } else if (pos > col) {
      fputc(' ', out);
      pos++;
    }
    fprintf(out, "%.*s", (int)n, text);
    pos += (int)n;
    text += n;
    while (*text == ' ')
      text++;
  }
  fputc('\n', out);
}

static void usage(FILE *out)
{
  fprintf(out, "Usage: fotad-sim [OPTION]...\n"
               "Simulates a fleet of LwM2M devices for fotad.\n\n");
  for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
    const struct sim_option *o = &options[i];
    char left[64];

    if (o->short_name)
      snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name,
               o->conf.name, o->metavar ? " " : "",
               o->metavar ? o->metavar : "");
    else
      snprintf(left, sizeof(left), "    --%s%s%s", o->conf.name,
               o->metavar ? " " : "", o->metavar ? o->metavar : "");
    if (strlen(left) > 30)
      fprintf(out, "  %s\n%33s", left, "");
    else
      fprintf(out, "  %-30s ", left);
    wrap(out, o->help, 33);
  }
  fputs(help_tail, out);
  for (int f = 0; f < FAULT_COUNT; f++) {
    fprintf(out, "  %-19s ", sim_fault_name((enum sim_fault)f));
    wrap(out, sim_fault_help((enum sim_fault)f), 22);
  }
  fputs(help_examples, out);
}

static const struct sim_option *find_option(const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE(options); i++)
    if (strcmp(options[i].conf.name, name) == 0)
      return &options[i];
  return NULL;
}

static void opts_init(struct sim_opts *o)
{
  memset(o, 0, sizeof(*o));
  for (size_t i = 0; i < ARRAY_SIZE(options); i++)
    if (options[i].kind == OPT_VALUE)
      conf_defaults(&options[i].conf, 1, o);
}

static void opts_free(struct sim_opts *o)
{
  for (size_t i = 0; i < ARRAY_SIZE(options); i++)
    if (options[i].kind == OPT_VALUE)
      conf_free(&options[i].conf, 1, o);
  for (size_t i = 0; i < o->nfaults; i++)
    sim_fault_spec_free(&o->faults[i]);
  free(o->faults);
  json_decref(o->profile_components);
}

/* Applies one option with its text value (NULL for a flag). */
static int apply(struct sim_opts *o, const struct sim_option *opt,
                 const char *value, char *err, size_t errlen)
{
  struct sim_fault_spec spec;

  switch (opt->kind) {
  case OPT_VALUE:
    return conf_set(&opt->conf, 1, o, opt->conf.name, value ? value : "yes",
                    err, errlen);
  case OPT_FAULT:
    if (sim_fault_spec_parse(value, &spec, err, errlen) < 0)
      return -EINVAL;
    o->faults = xrealloc(o->faults, (o->nfaults + 1) * sizeof(*o->faults));
    o->faults[o->nfaults++] = spec;
    return 0;
  case OPT_COUNT:
    o->verbose++;
    return 0;
  case OPT_FLAG:
    if (strcmp(opt->conf.name, "help") == 0)
      o->help = true;
    else
      o->version = true;
    return 0;
  }
  return -EINVAL;
}

/* A profile value as option text; arrays of strings join with ','. */
static int json_text(const json_t *v, char *buf, size_t len)
{
  size_t o = 0, i;
  json_t *item;

  switch (json_typeof(v)) {
  case JSON_STRING:
    snprintf(buf, len, "%s", json_string_value(v));
    return 0;
  case JSON_INTEGER:
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    return 0;
  case JSON_REAL:
    snprintf(buf, len, "%.17g", json_real_value(v));
    return 0;
  case JSON_TRUE:
    snprintf(buf, len, "yes");
    return 0;
  case JSON_FALSE:
    snprintf(buf, len, "no");
    return 0;
  case JSON_ARRAY:
    buf[0] = '\0';
    json_array_foreach(v, i, item)
    {
      if (!json_is_string(item) || o >= len)
        return -EINVAL;
      o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "",
                            json_string_value(item));
    }
    return o < len ? 0 : -ENOSPC;
  default:
    return -EINVAL;
  }
}

static int profile_faults(struct sim_opts *o, const json_t *v, char *err,
                          size_t errlen)
{
  const struct sim_option *opt = find_option("fault");
  char text[4096];
  const char *key;
  json_t *item;
  size_t i;

  if (json_is_array(v)) {
    json_array_foreach(v, i, item)
    {
      if (!json_is_string(item)) {
        snprintf(err, errlen, "\"fault\": expected strings KIND:SPEC");
        return -EINVAL;
      }
      if (apply(o, opt, json_string_value(item), err, errlen) < 0)
        return -EINVAL;
    }
    return 0;
  }
  if (!json_is_object(v)) {
    snprintf(err, errlen, "\"fault\": expected an array or an object");
    return -EINVAL;
  }
  json_object_foreach((json_t *)v, key, item)
  {
    char spec[4200];

    if (json_text(item, text, sizeof(text)) < 0) {
      snprintf(err, errlen,
               "\"fault\".\"%s\": expected a fraction or a "
               "list of endpoints",
               key);
      return -EINVAL;
    }
    snprintf(spec, sizeof(spec), "%s:%s", key, text);
    if (apply(o, opt, spec, err, errlen) < 0)
      return -EINVAL;
  }
  return 0;
}

static int load_profile(struct sim_opts *o, const char *path, char *err,
                        size_t errlen)
{
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  const char *key;
  json_t *v;
  int rc = 0;

  if (!root) {
    if (jerr.line > 0)
      snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
    else
      snprintf(err, errlen, "%s", jerr.text);
    return -EINVAL;
  }
  if (!json_is_object(root)) {
    snprintf(err, errlen, "%s: expected a JSON object", path);
    json_decref(root);
    return -EINVAL;
  }
  json_object_foreach(root, key, v)
  {
    char name[64], text[4096], why[256];
    const struct sim_option *opt;

    snprintf(name, sizeof(name), "%s", key);
    for (char *p = name; *p; p++)
      if (*p == '_')
        *p = '-';
    opt = find_option(name);
    if (!opt || opt->kind == OPT_FLAG || strcmp(name, "profile") == 0) {
      snprintf(err, errlen, "%s: unknown key \"%s\"", path, key);
      rc = -EINVAL;
      break;
    }
    if (opt->kind == OPT_FAULT) {
      rc = profile_faults(o, v, why, sizeof(why));
    } else if (strcmp(name, "components") == 0 && json_is_array(v)) {
      json_decref(o->profile_components);
      o->profile_components = json_incref(v);
      rc = 0;
    } else if (opt->kind == OPT_COUNT) {
      rc = json_is_integer(v) ? 0 : -EINVAL;
      if (rc == 0)
        o->verbose = json_integer_value(v);
      snprintf(why, sizeof(why), "\"verbose\" takes a number");
    } else if (json_text(v, text, sizeof(text)) < 0) {
      snprintf(why, sizeof(why), "\"%s\": unsupported value type", key);
      rc = -EINVAL;
    } else {
      rc = apply(o, opt, text, why, sizeof(why));
    }
    if (rc < 0) {
      snprintf(err, errlen, "%s: %s", path, why);
      break;
    }
  }
  json_decref(root);
  return rc;
}

/* getopt_long's table, built from ours. */
static struct option *long_options(char *shorts, size_t slen)
{
  struct option *lo = xcalloc(ARRAY_SIZE(options) + 1, sizeof(*lo));
  size_t s = 0;

  for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
    lo[i].name = options[i].conf.name;
    lo[i].has_arg = options[i].metavar ? required_argument : no_argument;
    lo[i].val = 256 + (int)i;
    if (options[i].short_name && s + 3 < slen) {
      shorts[s++] = (char)options[i].short_name;
      if (options[i].metavar)
        shorts[s++] = ':';
    }
  }
  shorts[s] = '\0';
  return lo;
}

static const struct sim_option *option_for(int c)
{
  if (c >= 256 && (size_t)(c - 256) < ARRAY_SIZE(options))
    return &options[c - 256];
  for (size_t i = 0; i < ARRAY_SIZE(options); i++)
    if (options[i].short_name == c)
      return &options[i];
  return NULL;
}

/*
 * Two passes: the first only looks for --profile (and --help), so the
 * profile loads before the command line overrides it.
 */
static int parse_args(int argc, char **argv, struct sim_opts *o, char *err,
                      size_t errlen)
{
  char shorts[128];
  struct option *lo = long_options(shorts, sizeof(shorts));
  int c, rc = 0;

  opterr = 0;
  optind = 0;
  for (c = getopt_long(argc, argv, shorts, lo, NULL); c != -1;
       c = getopt_long(argc, argv, shorts, lo, NULL)) {
    const struct sim_option *opt = option_for(c);

    if (opt && strcmp(opt->conf.name, "profile") == 0 && optarg[0]) {
      rc = load_profile(o, optarg, err, errlen);
      if (rc < 0)
        goto out;
    }
  }
  opterr = 1;
  optind = 0;
  for (c = getopt_long(argc, argv, shorts, lo, NULL); c != -1;
       c = getopt_long(argc, argv, shorts, lo, NULL)) {
    const struct sim_option *opt = option_for(c);

    if (!opt) {
      snprintf(err, errlen, "see fotad-sim --help");
      rc = -EINVAL;
      goto out;
    }
    if (strcmp(opt->conf.name, "profile") == 0)
      continue;
    rc = apply(o, opt, optarg, err, errlen);
    if (rc < 0)
      goto out;
  }
  if (optind < argc) {
    snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
    rc = -EINVAL;
  }
out:
  free(lo);
  return rc;
}

static int to_address(const struct sockaddr *sa, socklen_t len,
                      coap_address_t *out)
{
  coap_address_init(out);
  if (len > sizeof(out->addr))
    return -EINVAL;
  memcpy(&out->addr, sa, len);
  out->size = len;
  return 0;
}

static int resolve_server(struct sim_config *cfg, char *err, size_t errlen)
{
  coap_uri_t uri;
  char host[256], port[8];
  struct addrinfo hints, *res = NULL;
  int rc;

  if (coap_split_uri((const uint8_t *)cfg->server_uri, strlen(cfg->server_uri),
                     &uri) < 0 ||
      (uri.scheme != COAP_URI_SCHEME_COAP &&
       uri.scheme != COAP_URI_SCHEME_COAPS)) {
    snprintf(err, errlen, "--server '%s': expected coap:// or coaps://",
             cfg->server_uri);
    return -EINVAL;
  }
  if (uri.host.length == 0 || uri.host.length >= sizeof(host)) {
    snprintf(err, errlen, "--server '%s': no host", cfg->server_uri);
    return -EINVAL;
  }
  cfg->proto =
      uri.scheme == COAP_URI_SCHEME_COAPS ? COAP_PROTO_DTLS : COAP_PROTO_UDP;
  memcpy(host, uri.host.s, uri.host.length);
  host[uri.host.length] = '\0';
  snprintf(port, sizeof(port), "%u", uri.port);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || !res) {
    snprintf(err, errlen, "--server: cannot resolve '%s': %s", host,
             gai_strerror(rc));
    return -EINVAL;
  }
  rc = to_address(res->ai_addr, res->ai_addrlen, &cfg->server_addr);
  freeaddrinfo(res);
  return rc;
}

static int parse_protocols(const char *s, uint32_t *out, char *err,
                           size_t errlen)
{
  *out = 0;
  while (*s) {
    size_t n = strcspn(s, ",");
    char num[8];
    int64_t v;

    if (n == 0 || n >= sizeof(num)) {
      snprintf(err, errlen, "--protocols: expected numbers 0..5");
      return -EINVAL;
    }
    memcpy(num, s, n);
    num[n] = '\0';
    if (parse_int64(num, 0, 5, &v) < 0) {
      snprintf(err, errlen, "--protocols: '%s' is not 0..5", num);
      return -EINVAL;
    }
    *out |= 1u << v;
    s += n;
    if (*s == ',')
      s++;
  }
  if (*out == 0) {
    snprintf(err, errlen, "--protocols: empty");
    return -EINVAL;
  }
  return 0;
}

static int parse_send(struct sim_config *cfg, const char *s, char *err,
                      size_t errlen)
{
  while (*s) {
    size_t n = strcspn(s, ",");
    char path[32];

    if (cfg->nsend == SIM_MAX_SEND || n == 0 || n >= sizeof(path)) {
      snprintf(err, errlen, "--send: at most %d paths like /3/0",
               SIM_MAX_SEND);
      return -EINVAL;
    }
    memcpy(path, s, n);
    path[n] = '\0';
    if (lwm2m_path_parse(path, &cfg->send[cfg->nsend]) < 0 ||
        cfg->send[cfg->nsend].len == 0) {
      snprintf(err, errlen, "--send: '%s' is not an LwM2M path", path);
      return -EINVAL;
    }
    cfg->nsend++;
    s += n;
    if (*s == ',')
      s++;
  }
  return 0;
}

/* Components from the profile's array of objects. */
static int profile_components(struct sim_config *cfg, const json_t *arr,
                              const struct sim_opts *o, char *err,
                              size_t errlen)
{
  size_t i;
  json_t *c;

  json_array_foreach(arr, i, c)
  {
    struct sim_component *sc;
    const char *name, *version, *sha;
    json_t *sev, *defer;
    int64_t d;

    if (i == AFU_MAX_INST) {
      snprintf(err, errlen, "profile: at most %d components", AFU_MAX_INST);
      return -EINVAL;
    }
    name = json_string_value(json_object_get(c, "name"));
    version = json_string_value(json_object_get(c, "version"));
    if (!json_is_object(c) || !name || !version || !*name || !*version ||
        strlen(name) >= AFU_NAME_MAX || strlen(version) >= AFU_VER_MAX) {
      snprintf(err, errlen,
               "profile: components[%zu] needs \"name\" and \"version\"", i);
      return -EINVAL;
    }
    sc = &cfg->comp[cfg->ncomp++];
    sc->name = xstrdup(name);
    sc->version = xstrdup(version);
    sc->severity = (int)o->severity;
    sc->max_defer = o->max_defer;
    sev = json_object_get(c, "severity");
    if (sev) {
      if (!json_is_integer(sev) || json_integer_value(sev) < 0 ||
          json_integer_value(sev) > 2) {
        snprintf(err, errlen, "profile: components[%zu].severity: 0..2", i);
        return -EINVAL;
      }
      sc->severity = (int)json_integer_value(sev);
    }
    defer = json_object_get(c, "max_defer");
    if (defer) {
      char text[32];

      if (json_text(defer, text, sizeof(text)) < 0 ||
          parse_duration(text, 0, UINT32_MAX, &d) < 0) {
        snprintf(err, errlen,
                 "profile: components[%zu].max_defer: a "
                 "duration",
                 i);
        return -EINVAL;
      }
      sc->max_defer = d;
    }
    sha = json_string_value(json_object_get(c, "sha256"));
    if (sha) {
      if (strlen(sha) != 64 || sim_hex_decode(sha, sc->sha256, 32) != 32) {
        snprintf(err, errlen,
                 "profile: components[%zu].sha256: 64 hex "
                 "digits",
                 i);
        return -EINVAL;
      }
      sc->has_sha256 = true;
    }
  }
  return 0;
}

static int build_config(const struct sim_opts *o, struct sim_config *cfg,
                        char *err, size_t errlen)
{
  char probe[256];
  uint8_t key[SIM_PSK_MAX];
  char *names[AFU_MAX_INST], *versions[AFU_MAX_INST];
  int n;

  memset(cfg, 0, sizeof(*cfg));
  cfg->server_uri = xstrdup(o->server);
  if (resolve_server(cfg, err, errlen) < 0)
    return -EINVAL;
  cfg->count = (size_t)o->count;
  if (sim_pattern_check(o->endpoint_pattern, false, err, errlen) < 0 ||
      sim_pattern_format(o->endpoint_pattern, (long)o->count - 1, probe,
                         SIM_EP_MAX) < 0) {
    if (!err[0])
      snprintf(err, errlen, "--endpoint-pattern: names too long");
    return -EINVAL;
  }
  cfg->endpoint_pattern = xstrdup(o->endpoint_pattern);
  cfg->minor = o->lwm2m;
  cfg->lifetime = o->lifetime;
  cfg->queue = o->binding == 1;

  if (o->components[0] || !o->profile_components) {
    n = sim_components_parse(o->components[0] ? o->components
                                              : "application=1.0",
                             names, versions, AFU_MAX_INST, err, errlen);
    if (n < 0)
      return -EINVAL;
    for (int i = 0; i < n; i++) {
      cfg->comp[i].name = names[i];
      cfg->comp[i].version = versions[i];
      cfg->comp[i].severity = (int)o->severity;
      cfg->comp[i].max_defer = o->max_defer;
    }
    cfg->ncomp = (size_t)n;
  } else if (profile_components(cfg, o->profile_components, o, err, errlen) <
             0) {
    return -EINVAL;
  }
  if (cfg->ncomp == 0) {
    snprintf(err, errlen, "at least one component is needed");
    return -EINVAL;
  }
  cfg->object5 = o->object5;
  cfg->afu = !o->no_afu;
  if (!cfg->afu && !cfg->object5) {
    snprintf(err, errlen, "--no-afu needs --object5");
    return -EINVAL;
  }
  if (parse_protocols(o->protocols, &cfg->protocols, err, errlen) < 0)
    return -EINVAL;
  cfg->delivery = o->delivery;

  if (o->psk_identity_pattern[0]) {
    if (sim_pattern_check(o->psk_identity_pattern, true, err, errlen) < 0)
      return -EINVAL;
    cfg->psk_identity_pattern = xstrdup(o->psk_identity_pattern);
  }
  if (o->psk_key_pattern[0]) {
    if (sim_pattern_check(o->psk_key_pattern, true, err, errlen) < 0)
      return -EINVAL;
    cfg->psk_key_pattern = xstrdup(o->psk_key_pattern);
  }
  /* Every device's identity and key must come out right, not just one:
   * "%x" gives hex of varying length. */
  for (int64_t i = 0; i < o->count; i++) {
    if (cfg->psk_identity_pattern &&
        sim_pattern_format(cfg->psk_identity_pattern, (long)i, probe,
                           SIM_EP_MAX) < 0) {
      snprintf(err, errlen, "--psk-identity-pattern: identity %lld too long",
               (long long)i);
      return -EINVAL;
    }
    if (cfg->psk_key_pattern &&
        (sim_pattern_format(cfg->psk_key_pattern, (long)i, probe,
                            sizeof(probe)) < 0 ||
         sim_hex_decode(probe, key, sizeof(key)) <= 0)) {
      snprintf(err, errlen,
               "--psk-key-pattern: key %lld is not 2..%d hex digits ('%s')",
               (long long)i, 2 * SIM_PSK_MAX, probe);
      return -EINVAL;
    }
  }
  if (cfg->proto == COAP_PROTO_DTLS && !cfg->psk_key_pattern) {
    snprintf(err, errlen, "coaps:// needs --psk-key-pattern");
    return -EINVAL;
  }

  cfg->duration_ms = o->duration * 1000;
  if (o->until[0] && sim_until_parse(o->until, &cfg->until, err, errlen) < 0)
    return -EINVAL;
  if (o->report[0])
    cfg->report = xstrdup(o->report);
  cfg->reboot_ms = o->reboot_time * 1000;
  cfg->awake_ms = o->awake_time * 1000;
  cfg->download_timeout_ms = o->download_timeout * 1000;
  cfg->slow_delay_ms = o->slow_delay;
  cfg->send_interval_ms = o->send_interval * 1000;
  if (strcmp(o->register_rate, "0") == 0)
    cfg->register_rate = 0;
  else if (sim_rate_parse(o->register_rate, &cfg->register_rate, err, errlen) <
           0)
    return -EINVAL;

  cfg->pkg.version_from = (enum pkg_version_from)o->version_from;
  if (o->package_version[0]) {
    if (strlen(o->package_version) >= AFU_VER_MAX) {
      snprintf(err, errlen, "--package-version: too long");
      return -EINVAL;
    }
    cfg->pkg.version_from = PKG_VER_FIXED;
    snprintf(cfg->pkg.fixed_version, sizeof(cfg->pkg.fixed_version), "%s",
             o->package_version);
  }
  cfg->pkg.require_mcuboot = o->require_mcuboot;
  cfg->pkg.max_size = (size_t)o->max_package_size;
  for (cfg->block_szx = 0;
       cfg->block_szx < 6 && (16 << cfg->block_szx) != o->block_size;
       cfg->block_szx++)
    ;
  if ((16 << cfg->block_szx) != o->block_size) {
    snprintf(err, errlen, "--block-size: 16, 32, 64, 128, 256, 512 or 1024");
    return -EINVAL;
  }
  if (o->send[0]) {
    if (cfg->minor < 1) {
      snprintf(err, errlen, "--send needs LwM2M 1.1 or later");
      return -EINVAL;
    }
    if (parse_send(cfg, o->send, err, errlen) < 0)
      return -EINVAL;
  }
  cfg->seed = (uint64_t)o->seed;
  if (o->bind[0]) {
    struct sockaddr_storage ss;
    socklen_t len;
    char hp[80];

    snprintf(hp, sizeof(hp),
             strchr(o->bind, ':') && o->bind[0] != '[' ? "[%s]:0" : "%s:0",
             o->bind);
    if (parse_hostport(hp, &ss, &len, err, errlen) < 0 ||
        to_address((struct sockaddr *)&ss, len, &cfg->bind) < 0)
      return -EINVAL;
    cfg->have_bind = true;
  }
  cfg->deregister = !o->no_deregister;
  cfg->http_insecure = o->http_insecure;
  cfg->quirks.strict_update_args = o->strict_update_args;
  cfg->quirks.install_fail_idle = o->install_fail_idle;
  cfg->manufacturer = xstrdup(o->manufacturer);
  cfg->model_number = xstrdup(o->model);
  cfg->nfaults = o->nfaults;
  cfg->faults = xcalloc(o->nfaults ? o->nfaults : 1, sizeof(*cfg->faults));
  for (size_t i = 0; i < o->nfaults; i++) {
    cfg->faults[i] = o->faults[i];
    cfg->faults[i].endpoints = xcalloc(
        o->faults[i].nendpoints ? o->faults[i].nendpoints : 1, sizeof(char *));
    for (size_t e = 0; e < o->faults[i].nendpoints; e++)
      cfg->faults[i].endpoints[e] = xstrdup(o->faults[i].endpoints[e]);
  }
  return 0;
}

static void config_free(struct sim_config *cfg)
{
  free(cfg->server_uri);
  free(cfg->endpoint_pattern);
  free(cfg->psk_identity_pattern);
  free(cfg->psk_key_pattern);
  free(cfg->report);
  free(cfg->manufacturer);
  free(cfg->model_number);
  for (size_t i = 0; i < cfg->ncomp; i++) {
    free(cfg->comp[i].name);
    free(cfg->comp[i].version);
  }
  for (size_t i = 0; i < cfg->nfaults; i++)
    sim_fault_spec_free(&cfg->faults[i]);
  free(cfg->faults);
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  stop_flag = 1;
}

int main(int argc, char **argv)
{
  struct sim_opts o;
  struct sim_config cfg;
  struct loop *loop = NULL;
  struct sim *sim = NULL;
  sigset_t block, old;
  struct sigaction sa;
  enum log_level level = LL_NOTICE;
  char err[512] = "";
  int rc = EXIT_SETUP;

  memset(&cfg, 0, sizeof(cfg));
  opts_init(&o);
  if (parse_args(argc, argv, &o, err, sizeof(err)) < 0) {
    fprintf(stderr, "fotad-sim: %s\n", err);
    goto out;
  }
  if (o.help) {
    usage(stdout);
    rc = 0;
    goto out;
  }
  if (o.version) {
#ifdef PACKAGE_VERSION
    printf("fotad-sim %s\n", PACKAGE_VERSION);
#else
    printf("fotad-sim (development build)\n");
#endif
    rc = 0;
    goto out;
  }
  if (o.verbose == 1)
    level = LL_INFO;
  else if (o.verbose >= 2)
    level = LL_DEBUG;
  if (o.log_level[0] && log_level_parse(o.log_level, &level) < 0) {
    fprintf(stderr, "fotad-sim: --log-level: '%s' is not a level\n",
            o.log_level);
    goto out;
  }
  log_set_level(level);
  if (build_config(&o, &cfg, err, sizeof(err)) < 0) {
    fprintf(stderr, "fotad-sim: %s\n", err);
    goto out;
  }

  /* Signals are only delivered while the loop waits, so a stop request
   * cannot slip in between a check and the wait. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &old);

  loop = loop_new();
  if (!loop) {
    rc = 1;
    goto out;
  }
  loop_set_wait_sigmask(loop, &old);
  sim = sim_new(&cfg, loop, err, sizeof(err));
  if (!sim) {
    fprintf(stderr, "fotad-sim: %s\n", err);
    goto out;
  }
  rc = sim_run(sim, &stop_flag);
  report_print(sim);
  if (cfg.report && report_write(sim, cfg.report, err, sizeof(err)) < 0) {
    fprintf(stderr, "fotad-sim: report: %s\n", err);
    rc = 1;
  }
out:
  sim_free(sim);
  loop_free(loop);
  config_free(&cfg);
  opts_free(&o);
  return rc;
}
