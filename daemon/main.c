/*
 * fotad: parse the command line and the config, open the database, start
 * the CoAP and HTTP listeners on one loop, and run until a signal says stop.
 */
#include "daemon/settings.h"

#include "api/api.h"
#include "db/db.h"
#include "orchestrator/orch.h"
#include "server/srv.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAG "fotad"

#define DEFAULT_CONFIG SYSCONFDIR "/fotad/fotad.conf"

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_reload;

struct daemon {
  struct settings cfg;
  const char *config_path; /* NULL: built-in defaults only */
  const char *portfile;
  bool foreground;
  bool verbose;
  struct loop *loop;
  struct db *db;
  struct srv *srv;
  struct orch *orch;
  struct api *api;
  int ready_fd; /* pipe to the waiting parent when daemonizing, or -1 */
};

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: fotad [OPTIONS]\n"
          "LwM2M server and firmware-update rollout daemon.\n"
          "\n"
          "  -c, --config FILE    read the config from FILE (default %s,\n"
          "                       built-in defaults if that does not exist)\n"
          "  -f, --foreground     stay in the foreground, log to stderr\n"
          "      --check-config   validate the config, then exit 0 or 1\n"
          "      --portfile FILE  once listening, write the bound ports to "
          "FILE\n"
          "                       as coap=N and http=N lines\n"
          "  -v, --verbose        log at debug level\n"
          "  -V, --version        print the version and exit\n"
          "  -h, --help           print this help and exit\n",
          DEFAULT_CONFIG);
}

static void on_signal(int sig)
{
  if (sig == SIGHUP)
    got_reload = 1;
  else
    got_stop = 1;
}

/* Loads the config file (if any) over the defaults into cfg. */
static int load_settings(const char *path, struct settings *cfg, char *err,
                         size_t errlen)
{
  conf_defaults(settings_table, settings_count, cfg);
  if (!path)
    return 0;
  return conf_load_file(settings_table, settings_count, cfg, path, err,
                        errlen);
}

/* Checks what the parser alone cannot: listen addresses are well formed. */
static int validate_settings(const struct settings *cfg, const char *path,
                             char *err, size_t errlen)
{
  const char *addrs[] = {cfg->coap_listen, cfg->http_listen,
                         cfg->coaps_listen};
  const char *keys[] = {"coap_listen", "http_listen", "coaps_listen"};
  struct sockaddr_storage ss;
  socklen_t len;
  char why[256];

  for (size_t i = 0; i < ARRAY_SIZE(addrs); i++) {
    if (i == 2 && addrs[i][0] == '\0')
      continue; /* CoAPS disabled */
    if (parse_hostport(addrs[i], &ss, &len, why, sizeof(why)) < 0) {
      snprintf(err, errlen, "%s: %s: %s", path ? path : "(defaults)", keys[i],
               why);
      return -EINVAL;
    }
  }
  if (cfg->dtls_cert_file[0] && !cfg->dtls_key_file[0]) {
    snprintf(err, errlen, "%s: dtls_key_file: required with dtls_cert_file",
             path ? path : "(defaults)");
    return -EINVAL;
  }
  if (!cfg->http_tls_cert_file[0] != !cfg->http_tls_key_file[0]) {
    snprintf(err, errlen, "%s: %s: required with %s",
             path ? path : "(defaults)",
             cfg->http_tls_cert_file[0] ? "http_tls_key_file"
                                        : "http_tls_cert_file",
             cfg->http_tls_cert_file[0] ? "http_tls_cert_file"
                                        : "http_tls_key_file");
    return -EINVAL;
  }
  if (cfg->api_token_file[0] == '\0') {
    snprintf(err, errlen, "%s: api_token_file: must not be empty",
             path ? path : "(defaults)");
    return -EINVAL;
  }
  if (cfg->state_dir[0] == '\0') {
    snprintf(err, errlen, "%s: state_dir: must not be empty",
             path ? path : "(defaults)");
    return -EINVAL;
  }
  if (cfg->mcuboot_keys_dir[0]) {
    /* Checked here too, so that --check-config catches a bad key. */
    struct orch_mcuboot_keys *trusted =
        orch_mcuboot_keys_load(cfg->mcuboot_keys_dir, why, sizeof(why));

    if (!trusted) {
      snprintf(err, errlen, "%s: %s", path ? path : "(defaults)", why);
      return -EINVAL;
    }
    orch_mcuboot_keys_free(trusted);
  }
  return 0;
}

/*
 * Makes state_dir absolute (relative to the directory fotad was started
 * in), so nothing depends on the working directory later.
 */
static int resolve_state_dir(struct settings *cfg)
{
  char cwd[PATH_MAX];

  if (cfg->state_dir[0] == '/')
    return 0;
  if (!getcwd(cwd, sizeof(cwd)))
    return -errno;
  const char *rel = cfg->state_dir;

  while (rel[0] == '.' && rel[1] == '/')
    rel += 2;
  char *abs = rel[0] ? xasprintf("%s/%s", cwd, rel) : xstrdup(cwd);

  free(cfg->state_dir);
  cfg->state_dir = abs;
  return 0;
}

static int write_portfile(struct daemon *d)
{
  char *text =
      srv_coaps_port(d->srv) >= 0
          ? xasprintf("coap=%d\ncoaps=%d\nhttp=%d\n", srv_coap_port(d->srv),
                      srv_coaps_port(d->srv), api_http_port(d->api))
          : xasprintf("coap=%d\nhttp=%d\n", srv_coap_port(d->srv),
                      api_http_port(d->api));
  int rc = write_file_atomic(d->portfile, text, strlen(text), 0644);

  if (rc < 0)
    log_err("cannot write the port file %s: %s", d->portfile, strerror(-rc));
  free(text);
  return rc;
}

/*
 * FOTAD_TEST_CLOCK_FILE names a file holding a number of seconds added to
 * the wall clock (not to the monotonic one), read again when it changes,
 * at most every 200 ms. It lets tests move fotad's calendar, for
 * schedules and maintenance windows; fotad says so at start.
 */
struct test_clock {
  const char *path;
  int64_t offset_ms, checked;
  struct timespec mtime;
};

static void test_clock(void *arg, int64_t *mono, int64_t *wall)
{
  struct test_clock *tc = arg;
  struct timespec ts;
  struct stat sb;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  *mono = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (*mono - tc->checked >= 200 || tc->checked == 0) {
    tc->checked = *mono;
    if (stat(tc->path, &sb) == 0 &&
        (sb.st_mtim.tv_sec != tc->mtime.tv_sec ||
         sb.st_mtim.tv_nsec != tc->mtime.tv_nsec)) {
      FILE *f = fopen(tc->path, "r");
      long long off;

      tc->mtime = sb.st_mtim;
      if (f && fscanf(f, "%lld", &off) == 1) {
        tc->offset_ms = (int64_t)off * 1000;
        log_notice("test clock: wall clock moved by %llds", off);
      }
      if (f)
        fclose(f);
    }
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  *wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + tc->offset_ms;
}

static void apply_log_level(struct daemon *d)
{
  enum log_level level = d->verbose ? LL_DEBUG : settings_log_level(&d->cfg);

  log_set_level(level);
  srv_set_log_level(level);
}

/*
 * SIGHUP: reread the config file. A bad file changes nothing; keys that
 * cannot change while running are reported, not applied.
 */
static void reload(struct daemon *d)
{
  struct settings fresh = {0};
  const char *key;
  char err[512];

  log_info("reloading the configuration");
  if (load_settings(d->config_path, &fresh, err, sizeof(err)) < 0 ||
      validate_settings(&fresh, d->config_path, err, sizeof(err)) < 0 ||
      resolve_state_dir(&fresh) < 0) {
    log_err("reload failed, keeping the running configuration: %s", err);
    goto out;
  }
  if (conf_static_changed(settings_table, settings_count, &d->cfg, &fresh,
                          &key))
    log_warn("%s changed: it takes effect only after a restart", key);
  conf_apply_reloadable(settings_table, settings_count, &d->cfg, &fresh);
  apply_log_level(d);
  api_reconfigure(d->api,
                  &(struct api_config){
                      .max_body = d->cfg.http_max_body,
                      .rate_limit = d->cfg.api_rate_limit,
                      .rate_burst = d->cfg.api_rate_burst,
                      .metrics_public = d->cfg.metrics_public,
                      .events_retention_s = d->cfg.events_retention,
                      .idempotency_window_s = d->cfg.idempotency_window,
                  });
out:
  conf_free(settings_table, settings_count, &fresh);
}

static void check_signals(struct loop *loop, void *arg)
{
  struct daemon *d = arg;

  if (got_reload) {
    got_reload = 0;
    reload(d);
  }
  if (got_stop) {
    log_info("stopping");
    loop_stop(loop);
  }
}

/*
 * Without -f, fork before opening anything: the parent waits on a pipe
 * until the child is listening (exit 0) or has failed (its error went to
 * the terminal), so "fotad && echo up" tells the truth. The child keeps
 * every descriptor it opens; nothing crosses the fork but the config.
 */
static int daemonize(struct daemon *d)
{
  int pipefd[2];
  pid_t pid;
  char c;

  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return -errno;
  pid = fork();
  if (pid < 0)
    return -errno;
  if (pid > 0) {
    close(pipefd[1]);
    _exit(read(pipefd[0], &c, 1) == 1 ? 0 : 1);
  }
  close(pipefd[0]);
  if (setsid() < 0)
    return -errno;
  d->ready_fd = pipefd[1];
  return 0;
}

static void detach_stdio(struct daemon *d)
{
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);

  log_use_syslog("fotad");
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
  }
  if (write(d->ready_fd, "R", 1) != 1)
    log_warn("cannot tell the parent process we are ready");
  close(d->ready_fd);
  d->ready_fd = -1;
}

static int run(struct daemon *d)
{
  struct srv_config scfg = {
      .coap_listen = d->cfg.coap_listen,
      .coaps_listen = d->cfg.coaps_listen,
      .dtls_cert_file = d->cfg.dtls_cert_file,
      .dtls_key_file = d->cfg.dtls_key_file,
      .dtls_ca_file = d->cfg.dtls_ca_file,
      .dtls_rpk = d->cfg.dtls_rpk,
      .objects_dir = d->cfg.objects_dir,
      .default_lifetime = d->cfg.lifetime_default,
      .min_lifetime = d->cfg.lifetime_min,
      .max_lifetime = d->cfg.lifetime_max,
      .request_timeout_ms = d->cfg.request_timeout * 1000,
      .queue_awake_window = d->cfg.queue_awake_window,
      .queue_request_expiry = d->cfg.queue_request_expiry,
      .max_payload = d->cfg.coap_max_payload,
      .udp_rcvbuf = d->cfg.coap_udp_rcvbuf,
      .allow_nosec = d->cfg.coap_allow_nosec,
  };
  struct api_config acfg = {
      .http_listen = d->cfg.http_listen,
      .max_body = d->cfg.http_max_body,
      .max_connections = d->cfg.http_max_connections,
      .conn_timeout_s = d->cfg.http_connection_timeout,
      .tls_cert_file = d->cfg.http_tls_cert_file,
      .tls_key_file = d->cfg.http_tls_key_file,
      .rate_limit = d->cfg.api_rate_limit,
      .rate_burst = d->cfg.api_rate_burst,
      .metrics_public = d->cfg.metrics_public,
      .events_retention_s = d->cfg.events_retention,
      .events_heartbeat_s = d->cfg.events_heartbeat,
      .events_max_streams = d->cfg.events_max_streams,
      .idempotency_window_s = d->cfg.idempotency_window,
  };
  struct orch_config ocfg = {
      .reconcile_interval = d->cfg.component_reconcile_interval,
      .observe_pmax = d->cfg.component_observe_pmax,
      .state_dir = d->cfg.state_dir,
      .package_max_size = d->cfg.package_max_size,
      .mcuboot_keys_dir = d->cfg.mcuboot_keys_dir,
      .download_host = d->cfg.download_host,
      .job_download_timeout = d->cfg.job_download_timeout,
      .job_update_timeout = d->cfg.job_update_timeout,
      .job_reboot_timeout = d->cfg.job_reboot_timeout,
      .job_push_max_size = d->cfg.job_push_max_size,
  };
  struct sigaction sa = {.sa_handler = on_signal};
  sigset_t block, wait_mask;
  char err[512] = "";
  char *db_file = NULL, *token_file = NULL;
  int rc = 1;
  int r;

  /*
   * The stop and reload signals stay blocked except while the loop
   * waits, so one that arrives between two checks is not missed.
   */
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGINT);
  sigdelset(&wait_mask, SIGHUP);
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  r = mkdir_p(d->cfg.state_dir, 0700);
  if (r < 0) {
    log_err("cannot create the state folder %s: %s", d->cfg.state_dir,
            strerror(-r));
    goto out;
  }
  db_file = d->cfg.database[0] == '/'
                ? xstrdup(d->cfg.database)
                : xasprintf("%s/%s", d->cfg.state_dir, d->cfg.database);
  token_file =
      d->cfg.api_token_file[0] == '/'
          ? xstrdup(d->cfg.api_token_file)
          : xasprintf("%s/%s", d->cfg.state_dir, d->cfg.api_token_file);
  acfg.token_file = token_file;
  d->db =
      db_open(db_file, (int)d->cfg.db_busy_timeout * 1000, err, sizeof(err));
  if (!d->db) {
    log_err("%s", err);
    goto out;
  }
  d->loop = loop_new();
  if (!d->loop)
    goto out;
  loop_set_wait_sigmask(d->loop, &wait_mask);
  if (getenv("FOTAD_TEST_CLOCK_FILE")) {
    static struct test_clock tc;

    tc.path = getenv("FOTAD_TEST_CLOCK_FILE");
    log_warn("FOTAD_TEST_CLOCK_FILE is set: the wall clock follows %s",
             tc.path);
    loop_set_clock(d->loop, test_clock, &tc);
  }
  d->srv = srv_new(d->loop, d->db, &scfg, err, sizeof(err));
  if (!d->srv) {
    log_err("%s", err);
    goto out;
  }
  d->orch = orch_new(d->loop, d->db, d->srv, &ocfg, err, sizeof(err));
  if (!d->orch) {
    log_err("%s", err);
    goto out;
  }
  acfg.orch = d->orch;
  d->api = api_new(d->loop, d->db, d->srv, &acfg, err, sizeof(err));
  if (!d->api) {
    log_err("%s", err);
    goto out;
  }
  /* Package URIs name the HTTP listener, known only now. */
  orch_set_http_port(d->orch, api_http_port(d->api),
                     d->cfg.http_tls_cert_file[0] != '\0');
  if (loop_hook_add(d->loop, check_signals, d) < 0)
    goto out;
  if (d->portfile && write_portfile(d) < 0)
    goto out;
  log_info("fotad %s ready (state in %s)", PACKAGE_VERSION, d->cfg.state_dir);
  if (d->ready_fd >= 0)
    detach_stdio(d);

  if (loop_run(d->loop) < 0)
    goto out;
  rc = 0;
out:
  /* The server calls back into the orchestrator while it fails the
   * requests still in flight, so the orchestrator goes last. */
  api_free(d->api);
  srv_free(d->srv);
  orch_free(d->orch);
  db_close(d->db);
  loop_free(d->loop);
  free(db_file);
  free(token_file);
  if (rc == 0)
    log_info("stopped");
  return rc;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"foreground", no_argument, NULL, 'f'},
      {"check-config", no_argument, NULL, 'C'},
      {"portfile", required_argument, NULL, 'p'},
      {"verbose", no_argument, NULL, 'v'},
      {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct daemon d = {.ready_fd = -1};
  bool check_only = false;
  char err[512] = "";
  int opt, rc;

  while ((opt = getopt_long(argc, argv, "c:fvVh", opts, NULL)) != -1) {
    switch (opt) {
    case 'c':
      d.config_path = optarg;
      break;
    case 'f':
      d.foreground = true;
      break;
    case 'C':
      check_only = true;
      break;
    case 'p':
      d.portfile = optarg;
      break;
    case 'v':
      d.verbose = true;
      break;
    case 'V':
      printf("fotad %s\n", PACKAGE_VERSION);
      return 0;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "fotad: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  if (!d.config_path && access(DEFAULT_CONFIG, F_OK) == 0)
    d.config_path = DEFAULT_CONFIG;

  if (load_settings(d.config_path, &d.cfg, err, sizeof(err)) < 0 ||
      validate_settings(&d.cfg, d.config_path, err, sizeof(err)) < 0) {
    fprintf(stderr, "fotad: %s\n", err);
    rc = 1;
    goto out;
  }
  if (check_only) {
    printf("%s: configuration OK\n",
           d.config_path ? d.config_path : "(built-in defaults)");
    rc = 0;
    goto out;
  }
  if (resolve_state_dir(&d.cfg) < 0) {
    fprintf(stderr, "fotad: cannot resolve the state folder: %s\n",
            strerror(errno));
    rc = 1;
    goto out;
  }
  apply_log_level(&d);
  if (!d.config_path)
    log_notice("no config file (%s absent): using built-in defaults",
               DEFAULT_CONFIG);
  if (!d.foreground && daemonize(&d) < 0) {
    fprintf(stderr, "fotad: cannot daemonize: %s\n", strerror(errno));
    rc = 1;
    goto out;
  }
  rc = run(&d);
out:
  conf_free(settings_table, settings_count, &d.cfg);
  return rc;
}
