#include "tests/sim/sim.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOG_TAG "afu"

static const char *const state_names[] = {
    [AFU_IDLE] = "idle",
    [AFU_DOWNLOADING] = "downloading",
    [AFU_DOWNLOADED] = "downloaded",
    [AFU_UPDATING] = "updating",
};

static const char *const result_names[] = {
    [AFU_R_INITIAL] = "initial",
    [AFU_R_SUCCESS] = "success",
    [AFU_R_NO_FLASH] = "not-enough-flash",
    [AFU_R_NO_RAM] = "out-of-ram",
    [AFU_R_CONN_LOST] = "connection-lost",
    [AFU_R_INTEGRITY] = "integrity-failure",
    [AFU_R_UNSUPPORTED] = "unsupported-package",
    [AFU_R_INVALID_URI] = "invalid-uri",
    [AFU_R_FAILED] = "update-failed",
    [AFU_R_BAD_PROTOCOL] = "unsupported-protocol",
    [AFU_R_CANCELLED] = "cancelled",
    [AFU_R_DEFERRED] = "deferred",
    [AFU_R_CONFLICT] = "conflicting-state",
    [AFU_R_DEPENDENCY] = "dependency-error",
};

const char *afu_state_name(enum afu_state s)
{
  if ((unsigned)s >= ARRAY_SIZE(state_names))
    return "?";
  return state_names[s];
}

const char *afu_result_name(int result)
{
  if (result < 0 || (size_t)result >= ARRAY_SIZE(result_names))
    return "?";
  return result_names[result];
}

static uint32_t bit(unsigned index)
{
  return UINT32_C(1) << index;
}

static uint32_t rbit(unsigned rid)
{
  return UINT32_C(1) << rid;
}

/* The object and instance id of an instance, for log lines. */
static void inst_label(const struct afu_inst *in, char *buf, size_t len)
{
  if (in->obj5)
    snprintf(buf, len, "/5/0");
  else
    snprintf(buf, len, "/33629/%u", in->index);
}

static void set_str(struct afu_inst *in, char *dst, size_t dstlen,
                    const char *src, unsigned rid)
{
  if (strcmp(dst, src) == 0)
    return;
  snprintf(dst, dstlen, "%s", src);
  in->dirty |= rbit(rid);
}

static void set_result(struct afu_inst *in, int result)
{
  if (in->result == result)
    return;
  in->result = result;
  in->dirty |= rbit(AFU_RES_RESULT);
}

static void set_conflicting(struct afu_inst *in, uint32_t mask)
{
  if (in->conflicting == mask)
    return;
  in->conflicting = mask;
  in->dirty |= rbit(AFU_RES_CONFLICTING);
}

/*
 * The one place that changes an instance's State: it stamps Last State
 * Change Time first (the resource description asks for that order), logs
 * the transition and runs the enter-actions.
 */
static void set_state(struct afu *a, struct afu_inst *in, enum afu_state to,
                      int64_t now)
{
  char label[24];

  inst_label(in, label, sizeof(label));
  if (in->last_change != now) {
    in->last_change = now;
    in->dirty |= rbit(AFU_RES_LAST_CHANGE);
  }
  log_info("%s %s: %s -> [%s] (result %d %s)", a->tag, label,
           afu_state_name(in->state), afu_state_name(to), in->result,
           afu_result_name(in->result));
  if (in->state != to)
    in->dirty |= rbit(AFU_RES_STATE);
  in->state = to;
  switch (to) {
  case AFU_IDLE:
    /* PkgName and PkgVersion describe a downloaded package only. */
    set_str(in, in->pkg_name, sizeof(in->pkg_name), "", AFU_RES_PKG_NAME);
    set_str(in, in->pkg_version, sizeof(in->pkg_version), "",
            AFU_RES_PKG_VERSION);
    in->new_version[0] = '\0';
    in->ndeps = 0;
    in->push = false;
    a->deferred &= ~bit(in->index);
    break;
  case AFU_DOWNLOADING:
    set_str(in, in->pkg_name, sizeof(in->pkg_name), "", AFU_RES_PKG_NAME);
    set_str(in, in->pkg_version, sizeof(in->pkg_version), "",
            AFU_RES_PKG_VERSION);
    break;
  case AFU_DOWNLOADED:
  case AFU_UPDATING:
    break;
  }
}

static uint32_t valid_mask(const struct afu *a)
{
  return a->n >= 32 ? UINT32_MAX : (bit((unsigned)a->n) - 1);
}

static uint32_t mask_in_state(const struct afu *a, enum afu_state s)
{
  uint32_t m = 0;

  for (size_t i = 0; i < a->n; i++)
    if (a->inst[i].state == s)
      m |= bit((unsigned)i);
  return m;
}

/* Another instance than self to blame for an injected fault, or self. */
static uint32_t other_than(const struct afu *a, unsigned self)
{
  for (size_t i = 0; i < a->n; i++)
    if (i != self)
      return bit((unsigned)i);
  return bit(self);
}

/*
 * The version an instance will run after an update of batch: the one it
 * downloaded if it is part of the batch, else its current one.
 */
static const char *version_after(const struct afu *a, unsigned iid,
                                 uint32_t batch)
{
  const struct afu_inst *t = &a->inst[iid];

  if ((batch & bit(iid)) && t->new_version[0])
    return t->new_version;
  return t->version;
}

/* Instances whose version would not satisfy in's dependencies. */
static uint32_t unmet_deps(const struct afu *a, const struct afu_inst *in,
                           uint32_t batch)
{
  uint32_t m = 0;

  for (size_t d = 0; d < in->ndeps; d++) {
    unsigned iid = in->deps[d].iid;

    if (iid >= a->n || iid == in->index)
      continue;
    if (sim_version_cmp(version_after(a, iid, batch),
                        in->deps[d].min_version) < 0)
      m |= bit(iid);
  }
  return m;
}

/*
 * Linked Instances list the other Downloaded instances an Update without
 * argument takes along (all of them: the simulated device batches whatever
 * it has). Conflicting Instances keep what Result 12 or 13 named; otherwise
 * they list, ahead of any Execute, the instances whose version would break
 * a Downloaded package's dependencies.
 */
static void recompute_links(struct afu *a)
{
  uint32_t downloaded = mask_in_state(a, AFU_DOWNLOADED);

  for (size_t i = 0; i < a->n; i++) {
    struct afu_inst *in = &a->inst[i];
    uint32_t linked = 0;

    if (in->state == AFU_DOWNLOADED)
      linked = downloaded & ~bit((unsigned)i);
    if (in->linked != linked) {
      in->linked = linked;
      in->dirty |= rbit(AFU_RES_LINKED);
    }
    if (in->result == AFU_R_CONFLICT || in->result == AFU_R_DEPENDENCY)
      continue;
    set_conflicting(
        in, in->state == AFU_DOWNLOADED ? unmet_deps(a, in, downloaded) : 0);
  }
}

void afu_init(struct afu *a, const char *tag, int minor)
{
  memset(a, 0, sizeof(*a));
  a->tag = tag;
  a->minor = minor;
}

static void inst_init(struct afu_inst *in, unsigned index, uint32_t protocols,
                      int delivery, int64_t now)
{
  memset(in, 0, sizeof(*in));
  in->index = (uint16_t)index;
  in->state = AFU_IDLE;
  in->result = AFU_R_INITIAL;
  in->protocols = protocols;
  in->delivery = delivery;
  in->severity = 1;
  in->last_change = now;
}

struct afu_inst *afu_add(struct afu *a, const char *name, const char *version,
                         uint32_t protocols, int delivery, int severity,
                         int64_t max_defer, int64_t now)
{
  struct afu_inst *in;

  if (a->n == AFU_MAX_INST)
    return NULL;
  in = &a->inst[a->n];
  inst_init(in, (unsigned)a->n, protocols, delivery, now);
  a->n++;
  snprintf(in->name, sizeof(in->name), "%s", name);
  snprintf(in->version, sizeof(in->version), "%s", version);
  in->severity = severity;
  in->max_defer = max_defer;
  if (in->index == 0 && a->has_fw)
    snprintf(a->fw.version, sizeof(a->fw.version), "%s", version);
  return in;
}

void afu_enable_fw(struct afu *a, uint32_t protocols, int delivery,
                   int64_t now)
{
  inst_init(&a->fw, AFU_FW_INDEX, protocols, delivery, now);
  a->fw.obj5 = true;
  a->has_fw = true;
  if (a->n > 0)
    snprintf(a->fw.version, sizeof(a->fw.version), "%s", a->inst[0].version);
}

struct afu_inst *afu_get(struct afu *a, int oid, int iid)
{
  if (oid == FW_OID)
    return a->has_fw && iid == 0 ? &a->fw : NULL;
  if (oid == AFU_OID && iid >= 0 && (size_t)iid < a->n)
    return &a->inst[iid];
  return NULL;
}

struct afu_inst *afu_by_index(struct afu *a, unsigned index)
{
  if (index == AFU_FW_INDEX)
    return a->has_fw ? &a->fw : NULL;
  return index < a->n ? &a->inst[index] : NULL;
}

struct afu_effects afu_take_effects(struct afu *a)
{
  struct afu_effects fx = a->fx;

  memset(&a->fx, 0, sizeof(a->fx));
  return fx;
}

uint32_t afu_take_dirty(struct afu_inst *in)
{
  uint32_t d = in->dirty;

  in->dirty = 0;
  return d;
}

/*
 * Object 5 and instance 0 of 33629 describe the same component; only one
 * of them may drive an update at a time.
 */
static bool other_driver_busy(const struct afu *a, const struct afu_inst *in)
{
  if (in->obj5)
    return a->n > 0 && a->inst[0].state != AFU_IDLE;
  return in->index == 0 && a->has_fw && a->fw.state != AFU_IDLE;
}

int afu_reset(struct afu *a, struct afu_inst *in, int64_t now, char *err,
              size_t errlen)
{
  if (in->state == AFU_UPDATING) {
    snprintf(err, errlen, "cannot reset while updating");
    return -EPERM;
  }
  if (in->state == AFU_DOWNLOADING || in->state == AFU_DOWNLOADED)
    a->fx.abort |= bit(in->index);
  set_str(in, in->uri, sizeof(in->uri), "", AFU_RES_URI);
  set_result(in, AFU_R_INITIAL);
  if (in->state != AFU_IDLE)
    set_state(a, in, AFU_IDLE, now);
  recompute_links(a);
  return 0;
}

int afu_write_uri(struct afu *a, struct afu_inst *in, const char *uri,
                  int64_t now, char *err, size_t errlen)
{
  size_t len = strlen(uri);
  int proto;

  if (len >= AFU_URI_MAX) {
    snprintf(err, errlen, "Package URI longer than %d characters",
             AFU_URI_MAX - 1);
    return -EINVAL;
  }
  if (len == 0)
    return afu_reset(a, in, now, err, errlen);
  if (in->state != AFU_IDLE) {
    snprintf(err, errlen, "a package is already %s",
             afu_state_name(in->state));
    return -EINVAL;
  }
  if (in->delivery == AFU_PUSH) {
    snprintf(err, errlen, "this device only accepts push delivery");
    return -EPERM;
  }
  if (other_driver_busy(a, in)) {
    snprintf(err, errlen, "the component is being updated through %s",
             in->obj5 ? "/33629/0" : "/5/0");
    return -EPERM;
  }
  set_str(in, in->uri, sizeof(in->uri), uri, AFU_RES_URI);
  proto = pkg_uri_proto(uri);
  /* A Write that stores the URI succeeds; the Update Result reports what
   * is wrong with it (spec 1.5: errors go through /5). */
  if (proto == -EINVAL) {
    set_result(in, AFU_R_INVALID_URI);
    return 0;
  }
  if (proto < 0 || !(in->protocols & bit((unsigned)proto)) ||
      !(AFU_PROTO_IMPLEMENTED & bit((unsigned)proto))) {
    set_result(in, AFU_R_BAD_PROTOCOL);
    return 0;
  }
  set_result(in, AFU_R_INITIAL);
  in->push = false;
  set_state(a, in, AFU_DOWNLOADING, now);
  a->fx.download |= bit(in->index);
  recompute_links(a);
  return 0;
}

int afu_push_begin(struct afu *a, struct afu_inst *in, int64_t now, char *err,
                   size_t errlen)
{
  if (in->delivery == AFU_PULL) {
    snprintf(err, errlen, "this device only accepts pull delivery");
    return -EPERM;
  }
  if (in->state != AFU_IDLE) {
    snprintf(err, errlen, "a package is already %s",
             afu_state_name(in->state));
    return -EPERM;
  }
  if (other_driver_busy(a, in)) {
    snprintf(err, errlen, "the component is being updated through %s",
             in->obj5 ? "/33629/0" : "/5/0");
    return -EPERM;
  }
  set_result(in, AFU_R_INITIAL);
  in->push = true;
  set_state(a, in, AFU_DOWNLOADING, now);
  recompute_links(a);
  return 0;
}

void afu_download_failed(struct afu *a, struct afu_inst *in, int result,
                         int64_t now)
{
  if (in->state != AFU_DOWNLOADING)
    return;
  set_result(in, result);
  set_state(a, in, AFU_IDLE, now);
  recompute_links(a);
}

/* Marks an instance Downloaded with a package's name and version. */
static void take_package(struct afu *a, struct afu_inst *in,
                         const struct pkg_info *pkg, const char *version,
                         int64_t now)
{
  set_str(in, in->pkg_name, sizeof(in->pkg_name), pkg->name, AFU_RES_PKG_NAME);
  set_str(in, in->pkg_version, sizeof(in->pkg_version), version,
          AFU_RES_PKG_VERSION);
  snprintf(in->new_version, sizeof(in->new_version), "%s", version);
  in->ndeps = pkg->ndeps;
  memcpy(in->deps, pkg->deps, sizeof(in->deps));
  set_result(in, AFU_R_INITIAL);
  set_state(a, in, AFU_DOWNLOADED, now);
}

void afu_download_done(struct afu *a, struct afu_inst *in,
                       const struct pkg_info *pkg, int64_t now)
{
  uint32_t covers = 0, busy = 0;

  if (in->state != AFU_DOWNLOADING) {
    log_debug("%s: a download finished after its instance left "
              "downloading",
              a->tag);
    return;
  }
  if (!in->obj5) {
    covers = pkg->covers & valid_mask(a) & ~bit(in->index);
    for (size_t i = 0; i < a->n; i++)
      if ((covers & bit((unsigned)i)) && a->inst[i].state != AFU_IDLE)
        busy |= bit((unsigned)i);
    if ((covers & bit(0)) && a->has_fw && a->fw.state != AFU_IDLE)
      busy |= bit(0);
    if (a->fault_conflict)
      busy |= other_than(a, in->index);
  }
  if (busy) {
    /* Spec 1.5: the downloading instance goes back to Idle with 12 and
     * names the culprits; the others keep their state. */
    set_conflicting(in, busy);
    set_result(in, AFU_R_CONFLICT);
    set_state(a, in, AFU_IDLE, now);
    recompute_links(a);
    return;
  }
  take_package(a, in, pkg, pkg->version, now);
  for (size_t i = 0; i < a->n; i++) {
    if (!(covers & bit((unsigned)i)))
      continue;
    take_package(
        a, &a->inst[i], pkg,
        pkg->cover_version[i][0] ? pkg->cover_version[i] : pkg->version, now);
  }
  recompute_links(a);
}

static int parse_link(const char *s, size_t len, unsigned *iid)
{
  static const char prefix[] = "</33629/";
  size_t plen = sizeof(prefix) - 1;
  unsigned v = 0;

  if (len < plen + 2 || memcmp(s, prefix, plen) != 0 || s[len - 1] != '>')
    return -EINVAL;
  for (size_t i = plen; i < len - 1; i++) {
    if (s[i] < '0' || s[i] > '9' || v > 65535)
      return -EINVAL;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535)
    return -EINVAL;
  *iid = v;
  return 0;
}

int afu_parse_update_args(const struct afu *a, unsigned self, const char *args,
                          size_t len, uint32_t *batch, bool *only, char *err,
                          size_t errlen)
{
  const char *p, *end;
  uint32_t m = 0;

  *batch = 0;
  *only = false;
  if (len == 0)
    return 0;
  if (args[0] != '0') {
    snprintf(err, errlen, "Update takes only argument 0");
    return -EINVAL;
  }
  if (len == 1) {
    *only = true;
    return 0;
  }
  if (len < 4 || args[1] != '=' || args[2] != '\'' || args[len - 1] != '\'') {
    snprintf(err, errlen, "expected 0 or 0='</33629/N>,...'");
    return -EINVAL;
  }
  p = args + 3;
  end = args + len - 1;
  if (p == end) {
    snprintf(err, errlen, "empty instance list");
    return -EINVAL;
  }
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    unsigned iid;

    if (parse_link(p, (size_t)(stop - p), &iid) < 0) {
      snprintf(err, errlen, "'%.*s' is not a </33629/N> link", (int)(stop - p),
               p);
      return -EINVAL;
    }
    if (iid >= a->n) {
      snprintf(err, errlen, "no instance /33629/%u", iid);
      return -EINVAL;
    }
    if (iid == self) {
      snprintf(err, errlen, "the list names the executed instance itself");
      return -EINVAL;
    }
    if (m & bit(iid)) {
      snprintf(err, errlen, "/33629/%u listed twice", iid);
      return -EINVAL;
    }
    m |= bit(iid);
    if (comma && comma + 1 == end) {
      snprintf(err, errlen, "trailing comma");
      return -EINVAL;
    }
    p = comma ? comma + 1 : end;
  }
  *batch = m | bit(self);
  return 0;
}

/* Fails the Execute of in with Result 13, naming the blockers in /17. */
static void dependency_error(struct afu *a, struct afu_inst *in,
                             uint32_t blockers)
{
  char label[24];

  inst_label(in, label, sizeof(label));
  log_info("%s %s: update refused, dependency error (0x%x)", a->tag, label,
           (unsigned)blockers);
  set_result(in, AFU_R_DEPENDENCY);
  set_conflicting(in, blockers);
  recompute_links(a);
}

static const struct afu_inst *by_index_c(const struct afu *a, unsigned i)
{
  if (i == AFU_FW_INDEX)
    return a->has_fw ? &a->fw : NULL;
  return i < a->n ? &a->inst[i] : NULL;
}

static bool batch_deferrable(const struct afu *a, uint32_t batch,
                             const struct afu_inst *in)
{
  if (!a->user_defers || in->max_defer <= 0)
    return false;
  if (in->obj5 && a->minor == 0)
    return false; /* object 5 of LwM2M 1.0 has no Result 11 */
  for (unsigned i = 0; i < 32; i++) {
    const struct afu_inst *b = by_index_c(a, i);

    if ((batch & bit(i)) && b && b->severity == 0)
      return false; /* critical updates cannot wait */
  }
  return true;
}

int afu_exec_update(struct afu *a, struct afu_inst *in, const char *args,
                    size_t len, int64_t now, char *err, size_t errlen)
{
  uint32_t batch, listed = 0, blockers = 0;
  bool only = false;

  if (in->state != AFU_DOWNLOADED) {
    snprintf(err, errlen, "Update needs state downloaded, not %s",
             afu_state_name(in->state));
    return -EPERM;
  }
  if (in->obj5) {
    batch = bit(in->index);
  } else {
    uint32_t downloaded = mask_in_state(a, AFU_DOWNLOADED);
    int rc = afu_parse_update_args(a, in->index, args, len, &listed, &only,
                                   err, errlen);

    if (rc < 0)
      return rc;
    if (only)
      batch = bit(in->index);
    else if (listed)
      batch = listed;
    else
      batch = bit(in->index) | in->linked;
    if (listed & ~downloaded) {
      if (a->quirks.strict_update_args) {
        snprintf(err, errlen, "a listed instance is not downloaded");
        return -EPERM;
      }
      dependency_error(a, in, listed & ~downloaded);
      return 0;
    }
    for (size_t i = 0; i < a->n; i++)
      if (batch & bit((unsigned)i))
        blockers |= unmet_deps(a, &a->inst[i], batch) & ~batch;
    if (a->fault_dependency)
      blockers |= other_than(a, in->index);
    if (blockers) {
      dependency_error(a, in, blockers);
      return 0;
    }
  }

  if (batch_deferrable(a, batch, in)) {
    if (!a->deferred) {
      a->deferred = batch;
      a->defer_until = now + in->max_defer;
      a->fx.defer_armed = true;
    }
    for (unsigned i = 0; i < 32; i++) {
      struct afu_inst *b = afu_by_index(a, i);

      if ((batch & bit(i)) && b)
        set_result(b, AFU_R_DEFERRED);
    }
    recompute_links(a);
    return 0;
  }

  for (unsigned i = 0; i < 32; i++) {
    struct afu_inst *b = afu_by_index(a, i);

    if (!(batch & bit(i)) || !b)
      continue;
    set_result(b, AFU_R_INITIAL);
    set_state(a, b, AFU_UPDATING, now);
  }
  a->deferred = 0;
  a->fx.install |= batch;
  recompute_links(a);
  return 0;
}

void afu_defer_expired(struct afu *a, int64_t now)
{
  uint32_t batch = 0;

  for (unsigned i = 0; i < 32; i++) {
    struct afu_inst *b = afu_by_index(a, i);

    if ((a->deferred & bit(i)) && b && b->state == AFU_DOWNLOADED)
      batch |= bit(i);
  }
  a->deferred = 0;
  if (!batch)
    return;
  log_info("%s: maximum defer period over, installing 0x%x", a->tag,
           (unsigned)batch);
  for (unsigned i = 0; i < 32; i++) {
    struct afu_inst *b = afu_by_index(a, i);

    if (!(batch & bit(i)) || !b)
      continue;
    set_result(b, AFU_R_INITIAL);
    set_state(a, b, AFU_UPDATING, now);
  }
  a->fx.install |= batch;
  recompute_links(a);
}

int afu_cancel(struct afu *a, struct afu_inst *in, int64_t now, char *err,
               size_t errlen)
{
  if (in->state != AFU_DOWNLOADING && in->state != AFU_DOWNLOADED) {
    snprintf(err, errlen, "nothing to cancel in state %s",
             afu_state_name(in->state));
    return -EPERM;
  }
  a->fx.abort |= bit(in->index);
  set_result(in, AFU_R_CANCELLED);
  set_state(a, in, AFU_IDLE, now);
  recompute_links(a);
  return 0;
}

int afu_write_severity(struct afu *a, struct afu_inst *in, int64_t v,
                       char *err, size_t errlen)
{
  if (v < 0 || v > 2) {
    snprintf(err, errlen, "Severity must be 0, 1 or 2");
    return -EINVAL;
  }
  if (in->severity != (int)v) {
    in->severity = (int)v;
    in->dirty |= rbit(AFU_RES_SEVERITY);
  }
  return 0;
}

int afu_write_max_defer(struct afu *a, struct afu_inst *in, int64_t v,
                        char *err, size_t errlen)
{
  if (v < 0 || v > UINT32_MAX) {
    snprintf(err, errlen, "Maximum Defer Period must be 0..4294967295");
    return -EINVAL;
  }
  if (in->max_defer != v) {
    in->max_defer = v;
    in->dirty |= rbit(AFU_RES_MAX_DEFER);
  }
  return 0;
}

void afu_install_done(struct afu *a, uint32_t batch, enum afu_outcome outcome,
                      int64_t now)
{
  for (unsigned i = 0; i < 32; i++) {
    struct afu_inst *b = afu_by_index(a, i);

    if (!(batch & bit(i)) || !b || b->state != AFU_UPDATING)
      continue;
    switch (outcome) {
    case AFU_OUT_SUCCESS:
      set_str(b, b->version, sizeof(b->version), b->new_version,
              AFU_RES_VERSION);
      /* Object 5 and instance 0 are the same component. */
      if (b->obj5 && a->n > 0)
        set_str(&a->inst[0], a->inst[0].version, sizeof(a->inst[0].version),
                b->new_version, AFU_RES_VERSION);
      if (!b->obj5 && b->index == 0 && a->has_fw)
        set_str(&a->fw, a->fw.version, sizeof(a->fw.version), b->new_version,
                AFU_RES_VERSION);
      set_result(b, AFU_R_SUCCESS);
      set_state(a, b, AFU_IDLE, now);
      break;
    case AFU_OUT_FAILED:
      set_result(b, AFU_R_FAILED);
      set_state(a, b, a->quirks.install_fail_idle ? AFU_IDLE : AFU_DOWNLOADED,
                now);
      break;
    case AFU_OUT_ROLLBACK:
      set_result(b, AFU_R_INITIAL);
      set_state(a, b, AFU_IDLE, now);
      break;
    }
  }
  recompute_links(a);
}

void afu_rebooted(struct afu *a, int64_t now)
{
  for (unsigned i = 0; i < 32; i++) {
    struct afu_inst *b = afu_by_index(a, i);

    if (b && b->state == AFU_DOWNLOADING) {
      a->fx.abort |= bit(i);
      set_result(b, AFU_R_CONN_LOST);
      set_state(a, b, AFU_IDLE, now);
    }
  }
  recompute_links(a);
}
