/*
 * Unit tests of the simulator's pure parts: the 33629 / object 5 state
 * machine (tests/sim/afu.c), the package checker (pkg.c) and the small
 * parsers (util.c).
 */
#include "tests/sim/sim.h"

#include "common/common.h"
#include "tests/tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char err[256];
static const uint32_t all_protos =
    (1u << AFU_PROTO_COAP) | (1u << AFU_PROTO_COAPS) | (1u << AFU_PROTO_HTTP);

/* A device with components app 1.0, modem 2.1 and tee 0.9. */
static void three(struct afu *a)
{
  afu_init(a, "t", 1);
  afu_add(a, "app", "1.0", all_protos, AFU_BOTH, 1, 0, 100);
  afu_add(a, "modem", "2.1", all_protos, AFU_BOTH, 1, 0, 100);
  afu_add(a, "tee", "0.9", all_protos, AFU_BOTH, 1, 0, 100);
}

static struct pkg_info pkg(const char *name, const char *version)
{
  struct pkg_info p;

  memset(&p, 0, sizeof(p));
  snprintf(p.name, sizeof(p.name), "%s", name);
  snprintf(p.version, sizeof(p.version), "%s", version);
  p.size = 65536;
  return p;
}

/* Drives instance i from Idle to Downloaded with a package of version v. */
static void download(struct afu *a, unsigned i, const char *v, int64_t now)
{
  struct pkg_info p = pkg("pkg", v);

  afu_write_uri(a, &a->inst[i], "coap://127.0.0.1/fw/pkg.bin", now, err,
                sizeof(err));
  afu_download_done(a, &a->inst[i], &p, now);
  afu_take_effects(a);
}

static void test_nominal(void)
{
  struct afu a;
  struct afu_effects fx;
  struct pkg_info p = pkg("app", "1.1");
  uint32_t dirty;

  three(&a);
  is_int(a.inst[0].state, AFU_IDLE, "starts idle");
  is_int(afu_write_uri(&a, &a.inst[0], "coap://127.0.0.1:5683/fw/app-1.1.bin",
                       200, err, sizeof(err)),
         0, "URI write accepted");
  is_int(a.inst[0].state, AFU_DOWNLOADING, "idle -> downloading");
  is_int(a.inst[0].last_change, 200, "last state change stamped");
  fx = afu_take_effects(&a);
  is_int(fx.download, 1, "download started for instance 0");
  dirty = afu_take_dirty(&a.inst[0]);
  ok(dirty & (1u << AFU_RES_STATE), "state marked changed");
  ok(dirty & (1u << AFU_RES_URI), "URI marked changed");
  ok(dirty & (1u << AFU_RES_LAST_CHANGE), "/12 marked changed");

  afu_download_done(&a, &a.inst[0], &p, 210);
  is_int(a.inst[0].state, AFU_DOWNLOADED, "downloading -> downloaded");
  is_int(a.inst[0].result, 0, "result 0 when downloaded");
  is_str(a.inst[0].pkg_version, "1.1", "PkgVersion set");
  is_str(a.inst[0].pkg_name, "app", "PkgName set");
  is_int(a.inst[0].linked, 0, "nothing else downloaded: /16 empty");

  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 220, err, sizeof(err)), 0,
         "Update accepted");
  is_int(a.inst[0].state, AFU_UPDATING, "downloaded -> updating");
  fx = afu_take_effects(&a);
  is_int(fx.install, 1, "install batch is instance 0");

  afu_install_done(&a, fx.install, AFU_OUT_SUCCESS, 300);
  is_int(a.inst[0].state, AFU_IDLE, "updating -> idle");
  is_int(a.inst[0].result, AFU_R_SUCCESS, "result 1");
  is_str(a.inst[0].version, "1.1", "current version is the new one");
  is_str(a.inst[0].pkg_version, "", "PkgVersion cleared in idle");
  is_str(a.inst[1].version, "2.1", "other component untouched");
}

static void test_uri_errors(void)
{
  struct afu a;
  char longuri[300];

  three(&a);
  is_int(afu_write_uri(&a, &a.inst[0], "ftp://host/x", 1, err, sizeof(err)), 0,
         "unknown scheme: Write succeeds");
  is_int(a.inst[0].result, AFU_R_BAD_PROTOCOL, "... with result 9");
  is_int(a.inst[0].state, AFU_IDLE, "... staying idle");
  is_int(afu_write_uri(&a, &a.inst[0], "https://host/x", 1, err, sizeof(err)),
         0, "scheme not in /8: Write succeeds");
  is_int(a.inst[0].result, AFU_R_BAD_PROTOCOL, "... with result 9");
  is_int(afu_write_uri(&a, &a.inst[0], "not a uri", 1, err, sizeof(err)), 0,
         "garbage URI: Write succeeds");
  is_int(a.inst[0].result, AFU_R_INVALID_URI, "... with result 7");
  memset(longuri, 'a', sizeof(longuri) - 1);
  longuri[sizeof(longuri) - 1] = '\0';
  memcpy(longuri, "coap://", 7);
  is_int(afu_write_uri(&a, &a.inst[0], longuri, 1, err, sizeof(err)), -EINVAL,
         "URI over 255 characters: 4.00");

  afu_write_uri(&a, &a.inst[0], "coap://h/x", 2, err, sizeof(err));
  is_int(afu_write_uri(&a, &a.inst[0], "coap://h/y", 3, err, sizeof(err)),
         -EINVAL, "second URI while downloading: 4.00");
  is_int(afu_write_uri(&a, &a.inst[0], "", 4, err, sizeof(err)), 0,
         "empty URI while downloading: accepted");
  is_int(a.inst[0].state, AFU_IDLE, "... back to idle");
  is_int(a.inst[0].result, 0, "... result 0");
  ok(afu_take_effects(&a).abort & 1, "... download aborted");

  a.inst[1].delivery = AFU_PUSH;
  is_int(afu_write_uri(&a, &a.inst[1], "coap://h/x", 5, err, sizeof(err)),
         -EPERM, "push-only instance refuses a URI");
}

static void test_download_failures(void)
{
  struct afu a;

  three(&a);
  afu_write_uri(&a, &a.inst[0], "coap://h/x", 1, err, sizeof(err));
  afu_download_failed(&a, &a.inst[0], AFU_R_CONN_LOST, 2);
  is_int(a.inst[0].state, AFU_IDLE, "connection lost: idle");
  is_int(a.inst[0].result, AFU_R_CONN_LOST, "... result 4");
  afu_write_uri(&a, &a.inst[0], "coap://h/x", 3, err, sizeof(err));
  is_int(a.inst[0].result, 0, "new download resets the result");
  afu_download_failed(&a, &a.inst[0], AFU_R_INTEGRITY, 4);
  is_int(a.inst[0].result, AFU_R_INTEGRITY, "integrity failure: result 5");

  download(&a, 1, "2.2", 5);
  afu_rebooted(&a, 6);
  is_int(a.inst[1].state, AFU_DOWNLOADED,
         "a downloaded package survives a reboot");
  afu_write_uri(&a, &a.inst[0], "coap://h/x", 7, err, sizeof(err));
  afu_take_effects(&a);
  afu_rebooted(&a, 8);
  is_int(a.inst[0].state, AFU_IDLE, "a reboot loses a running download");
  is_int(a.inst[0].result, AFU_R_CONN_LOST, "... with result 4");
}

static void test_cancel(void)
{
  struct afu a;

  three(&a);
  is_int(afu_cancel(&a, &a.inst[0], 1, err, sizeof(err)), -EPERM,
         "cancel in idle: 4.05");
  afu_write_uri(&a, &a.inst[0], "coap://h/x", 2, err, sizeof(err));
  afu_take_effects(&a);
  is_int(afu_cancel(&a, &a.inst[0], 3, err, sizeof(err)), 0,
         "cancel while downloading");
  is_int(a.inst[0].state, AFU_IDLE, "... idle");
  is_int(a.inst[0].result, AFU_R_CANCELLED, "... result 10");
  ok(afu_take_effects(&a).abort & 1, "... download aborted");
  download(&a, 0, "1.1", 4);
  is_int(afu_cancel(&a, &a.inst[0], 5, err, sizeof(err)), 0,
         "cancel when downloaded");
  is_int(a.inst[0].result, AFU_R_CANCELLED, "... result 10");
  download(&a, 0, "1.1", 6);
  afu_exec_update(&a, &a.inst[0], "", 0, 7, err, sizeof(err));
  is_int(afu_cancel(&a, &a.inst[0], 8, err, sizeof(err)), -EPERM,
         "cancel while updating: 4.05");
  is_int(afu_reset(&a, &a.inst[0], 8, err, sizeof(err)), -EPERM,
         "empty URI while updating: 4.05");
}

static void test_exec_state(void)
{
  struct afu a;

  three(&a);
  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 1, err, sizeof(err)), -EPERM,
         "Update in idle: 4.05");
  afu_write_uri(&a, &a.inst[0], "coap://h/x", 1, err, sizeof(err));
  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 1, err, sizeof(err)), -EPERM,
         "Update while downloading: 4.05");
}

static void test_linked(void)
{
  struct afu a;
  struct afu_effects fx;

  three(&a);
  download(&a, 0, "1.1", 1);
  download(&a, 1, "2.2", 2);
  is_int(a.inst[0].linked, 1u << 1, "/33629/0/16 = [1]");
  is_int(a.inst[1].linked, 1u << 0, "/33629/1/16 = [0]");
  is_int(a.inst[2].linked, 0, "idle instance has no links");
  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 3, err, sizeof(err)), 0,
         "Update without argument");
  fx = afu_take_effects(&a);
  is_int(fx.install, 3, "batch = self + linked");
  is_int(a.inst[1].state, AFU_UPDATING, "linked instance updating too");
  afu_install_done(&a, fx.install, AFU_OUT_SUCCESS, 4);
  is_str(a.inst[1].version, "2.2", "linked instance installed");
  is_int(a.inst[0].linked, 0, "links cleared after install");
}

static void test_exec_args(void)
{
  struct afu a;
  struct afu_effects fx;
  uint32_t batch;
  bool only;

  three(&a);
  download(&a, 0, "1.1", 1);
  download(&a, 1, "2.2", 2);
  download(&a, 2, "1.0", 3);

  is_int(afu_parse_update_args(&a, 0, "0", 1, &batch, &only, err, sizeof(err)),
         0, "bare 0 parses");
  ok(only, "... as this instance only");
#define ARG(s) s, sizeof(s) - 1
  is_int(afu_parse_update_args(&a, 0, ARG("0='</33629/1>,</33629/2>'"), &batch,
                               &only, err, sizeof(err)),
         0, "link list parses");
  is_int(batch, 7, "... to self + 1 + 2");
  is_int(afu_parse_update_args(&a, 0, ARG("0='</33629/0>'"), &batch, &only,
                               err, sizeof(err)),
         -EINVAL, "self-reference refused");
  is_int(afu_parse_update_args(&a, 0, ARG("0='</33629/1>,</33629/1>'"), &batch,
                               &only, err, sizeof(err)),
         -EINVAL, "duplicate refused");
  is_int(afu_parse_update_args(&a, 0, ARG("0='</33629/9>'"), &batch, &only,
                               err, sizeof(err)),
         -EINVAL, "unknown instance refused");
  is_int(afu_parse_update_args(&a, 0, ARG("0='</3/0>'"), &batch, &only, err,
                               sizeof(err)),
         -EINVAL, "link to another object refused");
  is_int(
      afu_parse_update_args(&a, 0, ARG("1"), &batch, &only, err, sizeof(err)),
      -EINVAL, "argument 1 refused");
  is_int(afu_parse_update_args(&a, 0, ARG("0='</33629/1>,'"), &batch, &only,
                               err, sizeof(err)),
         -EINVAL, "trailing comma refused");
  is_int(afu_parse_update_args(&a, 0, ARG("0=''"), &batch, &only, err,
                               sizeof(err)),
         -EINVAL, "empty list refused");
  is_int(afu_exec_update(&a, &a.inst[0], ARG("0='</33629/9>'"), 4, err,
                         sizeof(err)),
         -EINVAL, "Execute with a bad list: 4.00");
  is_int(a.inst[0].state, AFU_DOWNLOADED, "... nothing changed");

  is_int(afu_exec_update(&a, &a.inst[0], ARG("0"), 5, err, sizeof(err)), 0,
         "Execute with 0");
  fx = afu_take_effects(&a);
  is_int(fx.install, 1, "... installs only this instance");
  is_int(a.inst[1].state, AFU_DOWNLOADED, "... others stay downloaded");
  afu_install_done(&a, fx.install, AFU_OUT_SUCCESS, 6);

  is_int(afu_exec_update(&a, &a.inst[1], ARG("0='</33629/2>'"), 7, err,
                         sizeof(err)),
         0, "Execute with an explicit list");
  fx = afu_take_effects(&a);
  is_int(fx.install, 6, "... installs exactly 1 and 2");
}

static void test_exec_unready(void)
{
  struct afu a;

  three(&a);
  download(&a, 0, "1.1", 1);
  is_int(afu_exec_update(&a, &a.inst[0], ARG("0='</33629/1>'"), 2, err,
                         sizeof(err)),
         0, "listed instance not downloaded: 2.04 (TS)");
  is_int(a.inst[0].result, AFU_R_DEPENDENCY, "... result 13");
  is_int(a.inst[0].conflicting, 1u << 1, "... /17 names instance 1");
  is_int(a.inst[0].state, AFU_DOWNLOADED, "... stays downloaded");
  is_int(afu_take_effects(&a).install, 0, "... nothing installs");

  three(&a);
  a.quirks.strict_update_args = true;
  download(&a, 0, "1.1", 1);
  is_int(afu_exec_update(&a, &a.inst[0], ARG("0='</33629/1>'"), 2, err,
                         sizeof(err)),
         -EPERM, "strict quirk: 4.05 (Anjay)");
}

static void test_dependencies(void)
{
  struct afu a;
  struct pkg_info p = pkg("app", "2.0");
  struct afu_effects fx;

  three(&a);
  p.ndeps = 1;
  p.deps[0].iid = 1;
  snprintf(p.deps[0].min_version, sizeof(p.deps[0].min_version), "3.0");
  afu_write_uri(&a, &a.inst[0], "coap://h/app", 1, err, sizeof(err));
  afu_download_done(&a, &a.inst[0], &p, 2);
  is_int(a.inst[0].conflicting, 1u << 1,
         "proactive /17: modem too old for app 2.0");
  is_int(afu_exec_update(&a, &a.inst[0], ARG("0"), 3, err, sizeof(err)), 0,
         "Update of app alone");
  is_int(a.inst[0].result, AFU_R_DEPENDENCY, "... result 13");
  is_int(afu_take_effects(&a).install, 0, "... nothing installs");
  download(&a, 1, "3.1", 4);
  is_int(a.inst[0].conflicting, 1u << 1, "/17 kept while result is 13");
  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 5, err, sizeof(err)), 0,
         "Update with the modem linked");
  fx = afu_take_effects(&a);
  is_int(fx.install, 3, "... installs app and modem together");
  is_int(a.inst[0].conflicting, 0, "... /17 empty");

  three(&a);
  a.fault_dependency = true;
  download(&a, 0, "1.1", 1);
  afu_exec_update(&a, &a.inst[0], "", 0, 2, err, sizeof(err));
  is_int(a.inst[0].result, AFU_R_DEPENDENCY, "dependency fault: result 13");
  is_int(a.inst[0].conflicting, 1u << 1, "... blames another instance");
}

static void test_conflict(void)
{
  struct afu a;
  struct pkg_info p = pkg("bundle", "3.0");

  three(&a);
  download(&a, 1, "2.2", 1);
  p.covers = 1u << 1 | 1u << 2;
  snprintf(p.cover_version[2], sizeof(p.cover_version[2]), "1.5");
  afu_write_uri(&a, &a.inst[0], "coap://h/bundle", 2, err, sizeof(err));
  afu_download_done(&a, &a.inst[0], &p, 3);
  is_int(a.inst[0].state, AFU_IDLE, "bundle touching a busy instance: idle");
  is_int(a.inst[0].result, AFU_R_CONFLICT, "... result 12");
  is_int(a.inst[0].conflicting, 1u << 1, "... /17 names instance 1");
  is_int(a.inst[1].state, AFU_DOWNLOADED, "... instance 1 keeps its state");

  three(&a);
  afu_write_uri(&a, &a.inst[0], "coap://h/bundle", 2, err, sizeof(err));
  afu_download_done(&a, &a.inst[0], &p, 3);
  is_int(a.inst[0].state, AFU_DOWNLOADED, "bundle: instance 0 downloaded");
  is_int(a.inst[1].state, AFU_DOWNLOADED, "... instance 1 too");
  is_int(a.inst[2].state, AFU_DOWNLOADED, "... instance 2 too");
  is_str(a.inst[2].pkg_version, "1.5", "... with its own version");
  is_str(a.inst[1].pkg_version, "3.0", "... or the package's");
  is_int(a.inst[0].linked, 6, "... all linked");

  three(&a);
  a.fault_conflict = true;
  download(&a, 2, "1.0", 1);
  is_int(a.inst[2].result, AFU_R_CONFLICT, "conflict fault: result 12");
  is_int(a.inst[2].conflicting, 1u << 0, "... blames another instance");
}

static void test_install_outcomes(void)
{
  struct afu a;
  struct afu_effects fx;

  three(&a);
  download(&a, 0, "1.1", 1);
  afu_exec_update(&a, &a.inst[0], "", 0, 2, err, sizeof(err));
  fx = afu_take_effects(&a);
  afu_install_done(&a, fx.install, AFU_OUT_FAILED, 3);
  is_int(a.inst[0].state, AFU_DOWNLOADED, "install failure: downloaded");
  is_int(a.inst[0].result, AFU_R_FAILED, "... result 8");
  is_str(a.inst[0].version, "1.0", "... old version");

  a.quirks.install_fail_idle = true;
  afu_exec_update(&a, &a.inst[0], "", 0, 4, err, sizeof(err));
  fx = afu_take_effects(&a);
  afu_install_done(&a, fx.install, AFU_OUT_FAILED, 5);
  is_int(a.inst[0].state, AFU_IDLE, "install failure with quirk: idle");

  three(&a);
  download(&a, 0, "1.1", 1);
  afu_exec_update(&a, &a.inst[0], "", 0, 2, err, sizeof(err));
  fx = afu_take_effects(&a);
  afu_install_done(&a, fx.install, AFU_OUT_ROLLBACK, 3);
  is_int(a.inst[0].state, AFU_IDLE, "rollback: idle");
  is_int(a.inst[0].result, 0, "... result 0");
  is_str(a.inst[0].version, "1.0", "... old version");
}

static void test_defer(void)
{
  struct afu a;
  struct afu_effects fx;

  three(&a);
  a.user_defers = true;
  a.inst[0].max_defer = 60;
  download(&a, 0, "1.1", 100);
  is_int(afu_exec_update(&a, &a.inst[0], "", 0, 110, err, sizeof(err)), 0,
         "deferred Update answers 2.04");
  is_int(a.inst[0].state, AFU_DOWNLOADED, "... stays downloaded");
  is_int(a.inst[0].result, AFU_R_DEFERRED, "... result 11");
  fx = afu_take_effects(&a);
  ok(fx.defer_armed, "... deferral armed");
  is_int(a.defer_until, 170, "... until now + max defer");
  afu_exec_update(&a, &a.inst[0], "", 0, 130, err, sizeof(err));
  is_int(a.defer_until, 170, "second Update keeps the deadline");
  afu_defer_expired(&a, 170);
  is_int(a.inst[0].state, AFU_UPDATING, "deadline: installs anyway");
  is_int(afu_take_effects(&a).install, 1, "... instance 0");

  three(&a);
  a.user_defers = true;
  a.inst[0].max_defer = 60;
  a.inst[0].severity = 0;
  download(&a, 0, "1.1", 100);
  afu_exec_update(&a, &a.inst[0], "", 0, 110, err, sizeof(err));
  is_int(a.inst[0].state, AFU_UPDATING, "critical update is not deferred");

  three(&a);
  a.user_defers = true;
  download(&a, 0, "1.1", 100);
  afu_exec_update(&a, &a.inst[0], "", 0, 110, err, sizeof(err));
  is_int(a.inst[0].state, AFU_UPDATING, "max defer 0 forbids deferral");

  is_int(afu_write_severity(&a, &a.inst[1], 3, err, sizeof(err)), -EINVAL,
         "severity 3 refused");
  is_int(afu_write_max_defer(&a, &a.inst[1], -1, err, sizeof(err)), -EINVAL,
         "negative max defer refused");
}

static void test_push_and_obj5(void)
{
  struct afu a;
  struct pkg_info p = pkg("fw", "1.2");
  struct afu_effects fx;

  afu_init(&a, "t", 0);
  afu_add(&a, "app", "1.0", all_protos, AFU_BOTH, 1, 0, 1);
  afu_enable_fw(&a, all_protos, AFU_BOTH, 1);
  is_str(a.fw.version, "1.0", "/5/0 mirrors instance 0");
  is_int(afu_push_begin(&a, &a.fw, 2, err, sizeof(err)), 0, "push begins");
  is_int(a.fw.state, AFU_DOWNLOADING, "... downloading");
  is_int(afu_write_uri(&a, &a.inst[0], "coap://h/x", 3, err, sizeof(err)),
         -EPERM, "33629/0 busy while /5 updates");
  is_int(afu_push_begin(&a, &a.fw, 3, err, sizeof(err)), -EPERM,
         "second push refused");
  afu_download_done(&a, &a.fw, &p, 4);
  is_int(a.fw.state, AFU_DOWNLOADED, "push done: downloaded");
  is_int(afu_exec_update(&a, &a.fw, "", 0, 5, err, sizeof(err)), 0,
         "object 5 Update");
  fx = afu_take_effects(&a);
  is_int(fx.install, AFU_FW_BIT, "... batch is object 5");
  afu_install_done(&a, fx.install, AFU_OUT_SUCCESS, 6);
  is_str(a.fw.version, "1.2", "object 5 updated");
  is_str(a.inst[0].version, "1.2", "... and the main component");
  is_int(a.fw.result, AFU_R_SUCCESS, "... result 1");

  a.inst[0].delivery = AFU_PULL;
  is_int(afu_push_begin(&a, &a.inst[0], 7, err, sizeof(err)), -EPERM,
         "pull-only instance refuses a push");
  a.fw.max_defer = 10;
  a.user_defers = true;
  afu_push_begin(&a, &a.fw, 8, err, sizeof(err));
  afu_download_done(&a, &a.fw, &p, 9);
  afu_exec_update(&a, &a.fw, "", 0, 10, err, sizeof(err));
  is_int(a.fw.state, AFU_UPDATING, "object 5 of 1.0 never defers");
}

/* Builds an MCUboot image: 32-byte header, body, unprotected TLVs. */
static uint8_t *mcuboot(size_t body, bool good_hash, bool dep, size_t *len)
{
  size_t prot = dep ? 4 + 4 + 12 : 0;
  size_t n = 32 + body + prot + 4 + 4 + 32;
  uint8_t *p = calloc(1, n), *t;
  uint8_t digest[32];

  p[0] = 0x3d;
  p[1] = 0xb8;
  p[2] = 0xf3;
  p[3] = 0x96;
  p[8] = 32;
  p[10] = (uint8_t)prot;
  p[12] = (uint8_t)(body & 0xff);
  p[13] = (uint8_t)(body >> 8);
  p[20] = 2;
  p[21] = 3;
  p[22] = 4;
  for (size_t i = 0; i < body; i++)
    p[32 + i] = (uint8_t)(i * 7);
  t = p + 32 + body;
  if (dep) {
    t[0] = 0x08;
    t[1] = 0x69;
    t[2] = (uint8_t)prot;
    t[4] = 0x40;
    t[6] = 12;
    t[8] = 1;  /* image 1 */
    t[12] = 3; /* >= 3.0.0 */
    t += prot;
  }
  mbedtls_sha256_ret(p, 32 + body + prot, digest, 0);
  t[0] = 0x07;
  t[1] = 0x69;
  t[2] = 4 + 4 + 32;
  t[4] = 0x10;
  t[6] = 32;
  memcpy(t + 8, digest, 32);
  if (!good_hash)
    t[8] ^= 1;
  *len = n;
  return p;
}

static void test_pkg(void)
{
  struct pkg_policy pol = {.version_from = PKG_VER_AUTO, .max_size = 1 << 20};
  struct pkg_info info;
  struct pkg_stream s;
  uint8_t raw[100] = {1, 2, 3};
  uint8_t *img;
  size_t len;

  is_int(pkg_check(raw, sizeof(raw), "coap://h/fw/app-1.2.3.bin", &pol, &info,
                   err, sizeof(err)),
         0, "raw package accepted");
  is_str(info.version, "1.2.3", "version from the file name");
  is_str(info.name, "app", "name from the file name");
  is_int(pkg_check(raw, sizeof(raw), "coap://h/fw/x?v=9.9&with=1:2.0,2", &pol,
                   &info, err, sizeof(err)),
         0, "query parameters");
  is_str(info.version, "9.9", "version from ?v=");
  is_int(info.covers, 6, "with= covers instances 1 and 2");
  is_str(info.cover_version[1], "2.0", "... instance 1 gets 2.0");
  is_int(pkg_check(raw, sizeof(raw), "coap://h/fw/blob", &pol, &info, err,
                   sizeof(err)),
         AFU_R_UNSUPPORTED, "no version anywhere: result 6");
  pol.max_size = 50;
  is_int(pkg_check(raw, sizeof(raw), "coap://h/fw/app-1.bin", &pol, &info, err,
                   sizeof(err)),
         AFU_R_NO_FLASH, "too large: result 2");
  pol.max_size = 1 << 20;

  img = mcuboot(1000, true, true, &len);
  is_int(
      pkg_check(img, len, "coap://h/fw/blob", &pol, &info, err, sizeof(err)),
      0, "MCUboot image accepted");
  ok(info.mcuboot, "... recognised");
  is_str(info.version, "2.3.4", "... version from the header");
  is_int(info.ndeps, 1, "... one dependency");
  is_str(info.deps[0].min_version, "3.0.0", "... on version 3.0.0");
  is_int(info.deps[0].iid, 1, "... of image 1");

  /* The same, fed in awkward pieces. */
  pkg_stream_init(&s, false);
  for (size_t o = 0; o < len; o += 7)
    pkg_stream_feed(&s, img + o, len - o < 7 ? len - o : 7, pol.max_size);
  is_int(pkg_stream_finish(&s, NULL, &pol, &info, err, sizeof(err)), 0,
         "streamed in 7-byte pieces");
  pkg_stream_free(&s);
  free(img);

  img = mcuboot(1000, false, false, &len);
  is_int(pkg_check(img, len, "coap://h/fw/app-1.0.bin", &pol, &info, err,
                   sizeof(err)),
         AFU_R_INTEGRITY, "MCUboot hash mismatch: result 5");
  is_int(pkg_check(img, len - 10, "coap://h/fw/app-1.0.bin", &pol, &info, err,
                   sizeof(err)),
         AFU_R_INTEGRITY, "truncated MCUboot image: result 5");
  free(img);

  pol.require_mcuboot = true;
  is_int(pkg_check(raw, sizeof(raw), "coap://h/app-1.0.bin", &pol, &info, err,
                   sizeof(err)),
         AFU_R_UNSUPPORTED, "profile wants MCUboot: result 6");
  pol.require_mcuboot = false;
  pol.has_sha256 = true;
  is_int(pkg_check(raw, sizeof(raw), "coap://h/app-1.0.bin", &pol, &info, err,
                   sizeof(err)),
         AFU_R_INTEGRITY, "profile SHA-256 mismatch: result 5");
  pol.has_sha256 = false;
  is_int(pkg_check(raw, sizeof(raw),
                   "coap://h/app-1.0.bin?sha256=00000000000000000000000000000"
                   "00000000000000000000000000000000000",
                   &pol, &info, err, sizeof(err)),
         AFU_R_INTEGRITY, "URI sha256= mismatch: result 5");

  is_int(pkg_uri_proto("coap://h/x"), AFU_PROTO_COAP, "coap scheme");
  is_int(pkg_uri_proto("COAPS://h"), AFU_PROTO_COAPS, "coaps scheme");
  is_int(pkg_uri_proto("https://h/x"), AFU_PROTO_HTTPS, "https scheme");
  is_int(pkg_uri_proto("coap+tcp://h/x"), AFU_PROTO_COAP_TCP,
         "coap+tcp scheme");
  is_int(pkg_uri_proto("gopher://h/x"), -EPROTONOSUPPORT, "unknown scheme");
  is_int(pkg_uri_proto("coap:///x"), -EINVAL, "no host");
  is_int(pkg_uri_proto("coap://h/a b"), -EINVAL, "space in URI");
}

static void test_util(void)
{
  char buf[32];
  struct sim_fault_spec f;
  struct sim_until u;
  uint8_t pick[100];
  size_t n = 0;
  double rate;
  char *names[4], *versions[4];

  ok(sim_version_cmp("1.10", "1.9") > 0, "1.10 > 1.9");
  ok(sim_version_cmp("1.0", "1.0.0") == 0, "1.0 == 1.0.0");
  ok(sim_version_cmp("2.0.1", "2.0.10") < 0, "2.0.1 < 2.0.10");
  ok(sim_version_cmp("1.0-rc", "1.0") != 0, "1.0-rc != 1.0");

  is_int(sim_pattern_check("sim-%05d", false, err, sizeof(err)), 0,
         "pattern ok");
  is_int(sim_pattern_check("sim-%s", false, err, sizeof(err)), -EINVAL,
         "%%s refused");
  is_int(sim_pattern_check("sim", false, err, sizeof(err)), -EINVAL,
         "no conversion refused");
  is_int(sim_pattern_check("00112233", true, err, sizeof(err)), 0,
         "no conversion allowed when optional");
  is_int(sim_pattern_check("%d-%d", true, err, sizeof(err)), -EINVAL,
         "two conversions refused");
  sim_pattern_format("sim-%05d", 42, buf, sizeof(buf));
  is_str(buf, "sim-00042", "pattern formats");
  sim_pattern_format("k%%%08x", 255, buf, sizeof(buf));
  is_str(buf, "k%000000ff", "hex pattern with %%");
  is_int(sim_pattern_format("sim-%05d", 42, buf, 5), -ENOSPC,
         "short buffer detected");

  is_int(sim_fault_spec_parse("lost-download:0.1", &f, err, sizeof(err)), 0,
         "fraction fault parses");
  is_int(f.kind, FAULT_LOST_DOWNLOAD, "... kind");
  ok(f.fraction > 0.09 && f.fraction < 0.11, "... fraction");
  sim_fault_spec_free(&f);
  is_int(sim_fault_spec_parse("integrity:sim-0003,sim-0007", &f, err,
                              sizeof(err)),
         0, "endpoint fault parses");
  is_int(f.nendpoints, 2, "... two endpoints");
  is_str(f.endpoints[1], "sim-0007", "... second one");
  sim_fault_spec_free(&f);
  is_int(sim_fault_spec_parse("bogus:0.1", &f, err, sizeof(err)), -EINVAL,
         "unknown kind refused");
  is_int(sim_fault_spec_parse("integrity:1.5", &f, err, sizeof(err)), -EINVAL,
         "fraction above 1 refused");

  sim_fault_pick(0.1, 100, 7, FAULT_INTEGRITY, pick);
  for (size_t i = 0; i < 100; i++)
    n += pick[i];
  is_int(n, 10, "fraction 0.1 of 100 picks exactly 10");

  is_int(sim_until_parse("all-updated:modem=2.2", &u, err, sizeof(err)), 0,
         "until parses");
  is_str(u.component, "modem", "... component");
  is_str(u.version, "2.2", "... version");
  is_int(sim_until_parse("forever", &u, err, sizeof(err)), -EINVAL,
         "unknown until refused");
  is_int(sim_rate_parse("200/s", &rate, err, sizeof(err)), 0, "rate parses");
  ok(rate == 200, "... 200/s");
  is_int(sim_rate_parse("-1/s", &rate, err, sizeof(err)), -EINVAL,
         "negative rate refused");
  is_int(sim_components_parse("application=1.0,modem=2.1", names, versions, 4,
                              err, sizeof(err)),
         2, "components parse");
  is_str(names[1], "modem", "... second name");
  is_str(versions[1], "2.1", "... second version");
  for (int i = 0; i < 2; i++) {
    free(names[i]);
    free(versions[i]);
  }
  is_int(sim_components_parse("app", names, versions, 4, err, sizeof(err)),
         -EINVAL, "component without version refused");
}

int main(void)
{
  log_set_level(LL_WARN);
  test_nominal();
  test_uri_errors();
  test_download_failures();
  test_cancel();
  test_exec_state();
  test_linked();
  test_exec_args();
  test_exec_unready();
  test_dependencies();
  test_conflict();
  test_install_outcomes();
  test_defer();
  test_push_and_obj5();
  test_pkg();
  test_util();
  return tap_done();
}
