/*
 * The device's object tree: objects 1 (server), 3 (device), 5 (firmware
 * update, optional) and 33629 (advanced firmware update, one instance per
 * component). Values live in struct sim_dev and its struct afu; this file
 * turns them into records, applies writes and dispatches executes.
 */
#include "tests/sim/sim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TAG "obj"

#define R LWM2M_OP_R
#define W LWM2M_OP_W
#define E LWM2M_OP_E
#define T(x) LWM2M_T_##x

/* Sorted by object, then resource. Types follow the built-in model. */
static const struct sim_res resources[] = {
    {1, 0, T(INTEGER), R, false, 0},
    {1, 1, T(UNSIGNED), R | W, false, 0},
    {1, 2, T(INTEGER), R | W, false, 0},
    {1, 3, T(INTEGER), R | W, false, 0},
    {1, 4, T(NONE), E, false, 0},
    {1, 5, T(INTEGER), R | W, false, 0},
    {1, 6, T(BOOLEAN), R | W, false, 0},
    {1, 7, T(STRING), R | W, false, 0},
    {1, 8, T(NONE), E, false, 0},
    {1, 23, T(BOOLEAN), R | W, false, 1},
    {3, 0, T(STRING), R, false, 0},
    {3, 1, T(STRING), R, false, 0},
    {3, 2, T(STRING), R, false, 0},
    {3, 3, T(STRING), R, false, 0},
    {3, 4, T(NONE), E, false, 0},
    {3, 9, T(INTEGER), R, false, 0},
    {3, 11, T(INTEGER), R, true, 0},
    {3, 13, T(TIME), R | W, false, 0},
    {3, 14, T(STRING), R | W, false, 0},
    {3, 15, T(STRING), R | W, false, 0},
    {3, 16, T(STRING), R, false, 0},
    {3, 17, T(STRING), R, false, 0},
    {3, 18, T(STRING), R, false, 0},
    {3, 19, T(STRING), R, false, 0},
    {5, 0, T(OPAQUE), W, false, 0},
    {5, 1, T(STRING), R | W, false, 0},
    {5, 2, T(NONE), E, false, 0},
    {5, 3, T(INTEGER), R, false, 0},
    {5, 5, T(INTEGER), R, false, 0},
    {5, 6, T(STRING), R, false, 0},
    {5, 7, T(STRING), R, false, 0},
    {5, 8, T(INTEGER), R, true, 0},
    {5, 9, T(INTEGER), R, false, 0},
    {5, 10, T(NONE), E, false, 1},
    {5, 11, T(INTEGER), R | W, false, 1},
    {5, 12, T(TIME), R, false, 1},
    {5, 13, T(UNSIGNED), R | W, false, 1},
    {AFU_OID, 0, T(OPAQUE), W, false, 0},
    {AFU_OID, 1, T(STRING), R | W, false, 0},
    {AFU_OID, 2, T(NONE), E, false, 0},
    {AFU_OID, 3, T(INTEGER), R, false, 0},
    {AFU_OID, 5, T(INTEGER), R, false, 0},
    {AFU_OID, 6, T(STRING), R, false, 0},
    {AFU_OID, 7, T(STRING), R, false, 0},
    {AFU_OID, 8, T(INTEGER), R, true, 0},
    {AFU_OID, 9, T(INTEGER), R, false, 0},
    {AFU_OID, 10, T(NONE), E, false, 0},
    {AFU_OID, 11, T(INTEGER), R | W, false, 0},
    {AFU_OID, 12, T(TIME), R, false, 0},
    {AFU_OID, 13, T(UNSIGNED), R | W, false, 0},
    {AFU_OID, 14, T(STRING), R, false, 0},
    {AFU_OID, 15, T(STRING), R, false, 0},
    {AFU_OID, 16, T(OBJLNK), R, true, 0},
    {AFU_OID, 17, T(OBJLNK), R, true, 0},
};

#undef R
#undef W
#undef E

/* Objects in registration order. */
static const uint16_t object_ids[] = {1, 3, 5, AFU_OID};

static bool object_present(const struct sim_dev *d, uint16_t oid)
{
  switch (oid) {
  case 1:
  case 3:
    return true;
  case 5:
    return d->afu.has_fw;
  case AFU_OID:
    return d->sim->cfg->afu && d->afu.n > 0;
  default:
    return false;
  }
}

static size_t instance_count(const struct sim_dev *d, uint16_t oid)
{
  if (!object_present(d, oid))
    return 0;
  return oid == AFU_OID ? d->afu.n : 1;
}

const struct sim_res *obj_res(const struct sim_dev *d, uint16_t oid,
                              uint16_t rid)
{
  if (!object_present(d, oid))
    return NULL;
  for (size_t i = 0; i < ARRAY_SIZE(resources); i++) {
    const struct sim_res *r = &resources[i];

    if (r->oid == oid && r->rid == rid)
      return r->min_minor <= d->sim->cfg->minor ? r : NULL;
  }
  return NULL;
}

bool obj_res_numeric(const struct sim_res *r)
{
  return r->type == LWM2M_T_INTEGER || r->type == LWM2M_T_UNSIGNED ||
         r->type == LWM2M_T_FLOAT || r->type == LWM2M_T_TIME;
}

/* The AFU instance behind an object 5 or 33629 instance, or NULL. */
static struct afu_inst *inst_of(struct sim_dev *d, uint16_t oid, uint16_t iid)
{
  if (oid != FW_OID && oid != AFU_OID)
    return NULL;
  return afu_get(&d->afu, oid, iid);
}

/* How many instances a multiple resource has right now. */
static size_t multi_count(struct sim_dev *d, uint16_t oid, uint16_t iid,
                          uint16_t rid)
{
  struct afu_inst *in = inst_of(d, oid, iid);
  uint32_t m = 0;

  if (oid == 3 && rid == 11)
    return 1;
  if (!in)
    return 0;
  if (rid == AFU_RES_PROTOCOLS)
    m = in->protocols;
  else if (rid == AFU_RES_LINKED)
    m = in->linked;
  else if (rid == AFU_RES_CONFLICTING)
    m = in->conflicting;
  return (size_t)__builtin_popcount(m);
}

bool obj_exists(const struct sim_dev *d, const struct lwm2m_path *p)
{
  const struct sim_res *r;

  if (p->len == 0)
    return true;
  if (!object_present(d, p->id[0]))
    return false;
  if (p->len == 1)
    return true;
  if (p->id[1] >= instance_count(d, p->id[0]))
    return false;
  if (p->len == 2)
    return true;
  r = obj_res(d, p->id[0], p->id[2]);
  if (!r)
    return false;
  if (p->len == 3)
    return true;
  return r->multi && p->id[3] < multi_count((struct sim_dev *)d, p->id[0],
                                            p->id[1], p->id[2]);
}

static void add_int(struct lwm2m_records *out, const struct lwm2m_path *p,
                    enum lwm2m_type t, int64_t v)
{
  struct lwm2m_value val = {.type = t};

  if (t == LWM2M_T_UNSIGNED)
    val.u.u = v < 0 ? 0 : (uint64_t)v;
  else
    val.u.i = v;
  lwm2m_records_add(out, p, &val);
}

static void add_str(struct lwm2m_records *out, const struct lwm2m_path *p,
                    const char *s)
{
  struct lwm2m_value val = {.type = LWM2M_T_STRING};

  lwm2m_value_set_bytes(&val, LWM2M_T_STRING, s, strlen(s));
  lwm2m_records_add(out, p, &val);
}

static void add_bool(struct lwm2m_records *out, const struct lwm2m_path *p,
                     bool b)
{
  struct lwm2m_value val = {.type = LWM2M_T_BOOLEAN};

  val.u.b = b;
  lwm2m_records_add(out, p, &val);
}

/* One record per set bit, resource instances numbered from 0. */
static void add_mask(struct lwm2m_records *out, struct lwm2m_path p,
                     uint32_t mask, bool links)
{
  uint16_t riid = 0;

  p.len = 4;
  for (unsigned i = 0; i < 32; i++) {
    struct lwm2m_value val;

    if (!(mask & (UINT32_C(1) << i)))
      continue;
    p.id[3] = riid++;
    memset(&val, 0, sizeof(val));
    if (links) {
      val.type = LWM2M_T_OBJLNK;
      val.u.lnk.oid = AFU_OID;
      val.u.lnk.iid = (uint16_t)i;
    } else {
      val.type = LWM2M_T_INTEGER;
      val.u.i = i;
    }
    lwm2m_records_add(out, &p, &val);
  }
}

static void read_server(struct sim_dev *d, const struct lwm2m_path *p,
                        struct lwm2m_records *out)
{
  switch (p->id[2]) {
  case 0:
    add_int(out, p, LWM2M_T_INTEGER, 1);
    break;
  case 1:
    add_int(out, p, LWM2M_T_UNSIGNED, d->lifetime);
    break;
  case 2:
    add_int(out, p, LWM2M_T_INTEGER, d->pmin_def);
    break;
  case 3:
    add_int(out, p, LWM2M_T_INTEGER, d->pmax_def);
    break;
  case 5:
    add_int(out, p, LWM2M_T_INTEGER, d->disable_timeout);
    break;
  case 6:
    add_bool(out, p, d->notif_storing);
    break;
  case 7:
    add_str(out, p, d->queue ? "UQ" : "U");
    break;
  case 23:
    add_bool(out, p, d->mute_send);
    break;
  }
}

static void read_device(struct sim_dev *d, const struct lwm2m_path *p,
                        struct lwm2m_records *out)
{
  const struct sim_config *cfg = d->sim->cfg;
  char buf[64];

  switch (p->id[2]) {
  case 0:
    add_str(out, p, cfg->manufacturer);
    break;
  case 1:
    add_str(out, p, cfg->model_number);
    break;
  case 2:
    snprintf(buf, sizeof(buf), "SIM%08u", d->idx);
    add_str(out, p, buf);
    break;
  case 3:
    add_str(out, p, d->afu.n > 0 ? d->afu.inst[0].version : "");
    break;
  case 9:
    add_int(out, p, LWM2M_T_INTEGER, d->battery);
    break;
  case 11: {
    struct lwm2m_path q = *p;

    q.len = 4;
    q.id[3] = 0;
    if (p->len == 4 && p->id[3] != 0)
      break;
    add_int(out, &q, LWM2M_T_INTEGER, 0);
    break;
  }
  case 13:
    add_int(out, p, LWM2M_T_TIME, sim_wall_s(d->sim) + d->time_offset);
    break;
  case 14:
    add_str(out, p, d->utc_offset);
    break;
  case 15:
    add_str(out, p, d->timezone);
    break;
  case 16:
    add_str(out, p, "UQ");
    break;
  case 17:
    add_str(out, p, "fotad-sim");
    break;
  case 18:
    add_str(out, p, "1.0");
    break;
  case 19:
#ifdef PACKAGE_VERSION
    add_str(out, p, PACKAGE_VERSION);
#else
    add_str(out, p, "dev");
#endif
    break;
  }
}

static void read_afu(struct afu_inst *in, const struct lwm2m_path *p,
                     struct lwm2m_records *out)
{
  struct lwm2m_path r = *p;

  r.len = 3;
  switch (p->id[2]) {
  case AFU_RES_URI:
    add_str(out, p, in->uri);
    break;
  case AFU_RES_STATE:
    add_int(out, p, LWM2M_T_INTEGER, in->state);
    break;
  case AFU_RES_RESULT:
    add_int(out, p, LWM2M_T_INTEGER, in->result);
    break;
  case AFU_RES_PKG_NAME:
    add_str(out, p, in->pkg_name);
    break;
  case AFU_RES_PKG_VERSION:
    add_str(out, p, in->pkg_version);
    break;
  case AFU_RES_PROTOCOLS:
    add_mask(out, r, in->protocols, false);
    break;
  case AFU_RES_DELIVERY:
    add_int(out, p, LWM2M_T_INTEGER, in->delivery);
    break;
  case AFU_RES_SEVERITY:
    add_int(out, p, LWM2M_T_INTEGER, in->severity);
    break;
  case AFU_RES_LAST_CHANGE:
    add_int(out, p, LWM2M_T_TIME, in->last_change);
    break;
  case AFU_RES_MAX_DEFER:
    add_int(out, p, LWM2M_T_UNSIGNED, in->max_defer);
    break;
  case AFU_RES_COMPONENT:
    add_str(out, p, in->name);
    break;
  case AFU_RES_VERSION:
    add_str(out, p, in->version);
    break;
  case AFU_RES_LINKED:
    add_mask(out, r, in->linked, true);
    break;
  case AFU_RES_CONFLICTING:
    add_mask(out, r, in->conflicting, true);
    break;
  }
}

/* Appends the value(s) of one readable resource p (len 3). */
static void read_res(struct sim_dev *d, const struct lwm2m_path *p,
                     struct lwm2m_records *out)
{
  struct afu_inst *in;

  switch (p->id[0]) {
  case 1:
    read_server(d, p, out);
    break;
  case 3:
    read_device(d, p, out);
    break;
  case FW_OID:
  case AFU_OID:
    in = inst_of(d, p->id[0], p->id[1]);
    if (in)
      read_afu(in, p, out);
    break;
  }
}

static void read_instance(struct sim_dev *d, uint16_t oid, uint16_t iid,
                          struct lwm2m_records *out)
{
  for (size_t i = 0; i < ARRAY_SIZE(resources); i++) {
    const struct sim_res *r = &resources[i];
    struct lwm2m_path p = {.id = {oid, iid, r->rid, 0}, .len = 3};

    if (r->oid != oid || !(r->ops & LWM2M_OP_R) ||
        r->min_minor > d->sim->cfg->minor)
      continue;
    read_res(d, &p, out);
  }
}

int obj_read(struct sim_dev *d, const struct lwm2m_path *p,
             struct lwm2m_records *out)
{
  const struct sim_res *r;

  if (p->len == 0)
    return -EPERM;
  if (!obj_exists(d, p))
    return -ENOENT;
  if (p->len == 1) {
    for (size_t i = 0; i < instance_count(d, p->id[0]); i++)
      read_instance(d, p->id[0], (uint16_t)i, out);
    return 0;
  }
  if (p->len == 2) {
    read_instance(d, p->id[0], p->id[1], out);
    return 0;
  }
  r = obj_res(d, p->id[0], p->id[2]);
  if (!(r->ops & LWM2M_OP_R))
    return -EPERM;
  if (p->len == 3) {
    read_res(d, p, out);
    return 0;
  }
  /* A resource instance: read the resource, keep the one asked for. */
  {
    struct lwm2m_records all;
    struct lwm2m_path rp = *p;

    rp.len = 3;
    lwm2m_records_init(&all);
    read_res(d, &rp, &all);
    for (size_t i = 0; i < all.len; i++)
      if (lwm2m_path_cmp(&all.v[i].path, p) == 0) {
        struct lwm2m_value v;

        lwm2m_value_copy(&v, &all.v[i].v);
        lwm2m_records_add(out, p, &v);
      }
    lwm2m_records_free(&all);
  }
  return 0;
}

/* An integer out of any numeric value, within [min, max]. */
static int value_int(const struct lwm2m_value *v, int64_t min, int64_t max,
                     int64_t *out)
{
  int64_t x;

  switch (v->type) {
  case LWM2M_T_INTEGER:
  case LWM2M_T_TIME:
    x = v->u.i;
    break;
  case LWM2M_T_UNSIGNED:
    if (v->u.u > INT64_MAX)
      return -ERANGE;
    x = (int64_t)v->u.u;
    break;
  case LWM2M_T_FLOAT:
    if (v->u.f != v->u.f || v->u.f < (double)INT64_MIN ||
        v->u.f > (double)INT64_MAX || v->u.f != (double)(int64_t)v->u.f)
      return -EINVAL;
    x = (int64_t)v->u.f;
    break;
  default:
    return -EINVAL;
  }
  if (x < min || x > max)
    return -ERANGE;
  *out = x;
  return 0;
}

/* The text of a String value (TLV without a model gives Opaque). */
static int value_str(const struct lwm2m_value *v, char *buf, size_t len)
{
  if (v->type != LWM2M_T_STRING && v->type != LWM2M_T_OPAQUE &&
      v->type != LWM2M_T_CORELNK)
    return -EINVAL;
  if (v->u.bytes.len >= len || memchr(v->u.bytes.data, 0, v->u.bytes.len))
    return -ERANGE;
  memcpy(buf, v->u.bytes.data, v->u.bytes.len);
  buf[v->u.bytes.len] = '\0';
  return 0;
}

static int value_bool(const struct lwm2m_value *v, bool *out)
{
  int64_t x;

  if (v->type == LWM2M_T_BOOLEAN) {
    *out = v->u.b;
    return 0;
  }
  if (value_int(v, 0, 1, &x) < 0)
    return -EINVAL;
  *out = x == 1;
  return 0;
}

/* Checks a record can be written, without changing anything. */
static int check_record(struct sim_dev *d, const struct lwm2m_path *base,
                        const struct lwm2m_record *rec, char *err,
                        size_t errlen)
{
  const struct lwm2m_path *p = &rec->path;
  const struct sim_res *r;
  char ps[LWM2M_PATH_STRLEN];

  lwm2m_path_format(p, ps, sizeof(ps));
  if (p->len < 3 || !lwm2m_path_under(p, base)) {
    snprintf(err, errlen, "%s: not a resource under the request path", ps);
    return -EINVAL;
  }
  if (p->id[1] >= instance_count(d, p->id[0])) {
    snprintf(err, errlen, "%s: no such instance", ps);
    return -ENOENT;
  }
  r = obj_res(d, p->id[0], p->id[2]);
  if (!r) {
    snprintf(err, errlen, "%s: no such resource", ps);
    return -ENOENT;
  }
  if (!(r->ops & LWM2M_OP_W)) {
    snprintf(err, errlen, "%s: not writable", ps);
    return -EPERM;
  }
  if (p->len == 4 && !r->multi) {
    snprintf(err, errlen, "%s: not a multiple resource", ps);
    return -ENOENT;
  }
  if (r->type == LWM2M_T_OPAQUE && rec->v.type != LWM2M_T_OPAQUE &&
      rec->v.type != LWM2M_T_STRING) {
    snprintf(err, errlen, "%s: expects opaque data", ps);
    return -EINVAL;
  }
  return 0;
}

static int write_server(struct sim_dev *d, const struct lwm2m_record *rec,
                        bool *lt, bool *b, char *err, size_t errlen)
{
  const struct lwm2m_value *v = &rec->v;
  char s[8];
  int64_t x;
  bool flag;

  switch (rec->path.id[2]) {
  case 1:
    if (value_int(v, 1, UINT32_MAX, &x) < 0)
      goto bad;
    if (x != d->lifetime) {
      d->lifetime = x;
      *lt = true;
    }
    return 0;
  case 2:
  case 3:
  case 5:
    if (value_int(v, 0, UINT32_MAX, &x) < 0)
      goto bad;
    if (rec->path.id[2] == 2)
      d->pmin_def = x;
    else if (rec->path.id[2] == 3)
      d->pmax_def = x;
    else
      d->disable_timeout = x;
    return 0;
  case 6:
  case 23:
    if (value_bool(v, &flag) < 0)
      goto bad;
    if (rec->path.id[2] == 6)
      d->notif_storing = flag;
    else
      d->mute_send = flag;
    return 0;
  case 7:
    if (value_str(v, s, sizeof(s)) < 0)
      goto bad;
    if (strcmp(s, "U") != 0 && strcmp(s, "UQ") != 0) {
      snprintf(err, errlen, "binding '%s' not supported (U or UQ)", s);
      return -EINVAL;
    }
    if (d->queue != (s[1] == 'Q')) {
      d->queue = s[1] == 'Q';
      *b = true;
    }
    return 0;
  }
bad:
  snprintf(err, errlen, "/1/0/%u: bad value", rec->path.id[2]);
  return -EINVAL;
}

static int write_device(struct sim_dev *d, const struct lwm2m_record *rec,
                        char *err, size_t errlen)
{
  const struct lwm2m_value *v = &rec->v;
  int64_t x;

  switch (rec->path.id[2]) {
  case 13:
    if (value_int(v, 0, INT64_MAX / 2, &x) < 0)
      break;
    d->time_offset = x - sim_wall_s(d->sim);
    return 0;
  case 14:
    if (value_str(v, d->utc_offset, sizeof(d->utc_offset)) < 0)
      break;
    return 0;
  case 15:
    if (value_str(v, d->timezone, sizeof(d->timezone)) < 0)
      break;
    return 0;
  }
  snprintf(err, errlen, "/3/0/%u: bad value", rec->path.id[2]);
  return -EINVAL;
}

static int write_afu(struct sim_dev *d, const struct lwm2m_record *rec,
                     char *err, size_t errlen)
{
  struct afu_inst *in = inst_of(d, rec->path.id[0], rec->path.id[1]);
  const struct lwm2m_value *v = &rec->v;
  int64_t now = sim_wall_s(d->sim);
  char uri[AFU_URI_MAX + 1];
  int64_t x;

  switch (rec->path.id[2]) {
  case AFU_RES_PACKAGE:
    return obj_push_whole(d, in, v->u.bytes.data, v->u.bytes.len, err, errlen);
  case AFU_RES_URI:
    if (value_str(v, uri, sizeof(uri)) < 0) {
      snprintf(err, errlen, "Package URI must be a string of 0..255 bytes");
      return -EINVAL;
    }
    return afu_write_uri(&d->afu, in, uri, now, err, errlen);
  case AFU_RES_SEVERITY:
    if (value_int(v, INT64_MIN, INT64_MAX, &x) < 0)
      break;
    return afu_write_severity(&d->afu, in, x, err, errlen);
  case AFU_RES_MAX_DEFER:
    if (value_int(v, INT64_MIN, INT64_MAX, &x) < 0)
      break;
    return afu_write_max_defer(&d->afu, in, x, err, errlen);
  }
  snprintf(err, errlen, "resource %u: bad value", rec->path.id[2]);
  return -EINVAL;
}

int obj_write(struct sim_dev *d, const struct lwm2m_path *base,
              const struct lwm2m_records *recs, bool replace, char *err,
              size_t errlen)
{
  bool lt = false, b = false;
  int rc = 0;

  /* Replace and partial update differ only for resources a write leaves
   * out; the simulated instances are static and keep those (see
   * docs/fotad-sim.md). */
  (void)replace;
  if (recs->len == 0) {
    snprintf(err, errlen, "no values in the payload");
    return -EINVAL;
  }
  for (size_t i = 0; i < recs->len; i++) {
    rc = check_record(d, base, &recs->v[i], err, errlen);
    if (rc < 0)
      return rc;
  }
  for (size_t i = 0; i < recs->len && rc == 0; i++) {
    const struct lwm2m_record *rec = &recs->v[i];

    switch (rec->path.id[0]) {
    case 1:
      rc = write_server(d, rec, &lt, &b, err, errlen);
      break;
    case 3:
      rc = write_device(d, rec, err, errlen);
      break;
    default:
      rc = write_afu(d, rec, err, errlen);
      break;
    }
    if (rc == 0)
      obs_changed(d, &rec->path);
  }
  dev_afu_changed(d);
  /* A new lifetime or binding goes to the server in an Update. */
  if (lt || b)
    dev_request_update(d, lt, b);
  return rc;
}

int obj_execute(struct sim_dev *d, const struct lwm2m_path *p,
                const char *args, size_t len, char *err, size_t errlen)
{
  const struct sim_res *r;
  struct afu_inst *in;
  int64_t now = sim_wall_s(d->sim);
  int rc;

  if (p->len != 3) {
    snprintf(err, errlen, "Execute needs a resource path");
    return -EPERM;
  }
  if (!obj_exists(d, p))
    return -ENOENT;
  r = obj_res(d, p->id[0], p->id[2]);
  if (!(r->ops & LWM2M_OP_E)) {
    snprintf(err, errlen, "not executable");
    return -EPERM;
  }
  if (lwm2m_exec_args_check(args, len, err, errlen) < 0)
    return -EINVAL;
  switch (p->id[0]) {
  case 1:
    if (p->id[2] == 4)
      dev_disable(d);
    else
      dev_request_update(d, false, false);
    return 0;
  case 3:
    dev_reboot(d, REBOOT_PLAIN, 0);
    return 0;
  default:
    in = inst_of(d, p->id[0], p->id[1]);
    if (p->id[2] == AFU_RES_UPDATE)
      rc = afu_exec_update(&d->afu, in, args, len, now, err, errlen);
    else
      rc = afu_cancel(&d->afu, in, now, err, errlen);
    dev_afu_changed(d);
    return rc;
  }
}

/* Appends ";pmin=10;pmax=60..." for the attributes set on p. */
static void format_attrs(const struct sim_dev *d, const struct lwm2m_path *p,
                         char *buf, size_t len)
{
  const struct sim_attrs *a = obs_attrs_get(d, p);
  size_t o = strlen(buf);

  if (!a)
    return;
#define ATTR_INT(bitv, name, field)                                           \
  if ((a->set & (bitv)) && o < len)                                           \
  o += (size_t)snprintf(buf + o, len - o, ";" name "=%lld",                   \
                        (long long)a->field)
#define ATTR_DBL(bitv, name, field)                                           \
  if ((a->set & (bitv)) && o < len)                                           \
  o += (size_t)snprintf(buf + o, len - o, ";" name "=%g", a->field)
  ATTR_INT(ATTR_PMIN, "pmin", pmin);
  ATTR_INT(ATTR_PMAX, "pmax", pmax);
  ATTR_DBL(ATTR_GT, "gt", gt);
  ATTR_DBL(ATTR_LT, "lt", lt);
  ATTR_DBL(ATTR_ST, "st", st);
  ATTR_INT(ATTR_EPMIN, "epmin", epmin);
  ATTR_INT(ATTR_EPMAX, "epmax", epmax);
#undef ATTR_INT
#undef ATTR_DBL
}

/* A growable string with a hard cap (every payload is bounded). */
struct sbuf {
  char *s;
  size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *text)
{
  size_t n = strlen(text);

  if (b->len + n + 1 > b->cap) {
    while (b->len + n + 1 > b->cap)
      b->cap = b->cap ? b->cap * 2 : 256;
    b->s = xrealloc(b->s, b->cap);
  }
  memcpy(b->s + b->len, text, n + 1);
  b->len += n;
}

static void discover_link(struct sim_dev *d, struct sbuf *b,
                          const struct lwm2m_path *p, bool inherit)
{
  char item[256];
  char ps[LWM2M_PATH_STRLEN];
  const struct sim_res *r =
      p->len >= 3 ? obj_res(d, p->id[0], p->id[2]) : NULL;

  lwm2m_path_format(p, ps, sizeof(ps));
  snprintf(item, sizeof(item), "%s<%s>", b->len ? "," : "", ps);
  if (p->len == 1 && p->id[0] == AFU_OID)
    snprintf(item + strlen(item), sizeof(item) - strlen(item), ";ver=1.0");
  if (r && r->multi)
    snprintf(item + strlen(item), sizeof(item) - strlen(item), ";dim=%zu",
             multi_count(d, p->id[0], p->id[1], p->id[2]));
  if (inherit) {
    /* Discover on a resource shows what it inherits too (1.1). */
    struct lwm2m_path up = *p;

    for (up.len = 1; up.len < p->len; up.len++)
      format_attrs(d, &up, item, sizeof(item));
  }
  format_attrs(d, p, item, sizeof(item));
  sb_add(b, item);
}

char *obj_discover(struct sim_dev *d, const struct lwm2m_path *p)
{
  struct sbuf b = {0};
  struct lwm2m_path q;

  if (p->len == 0 || !obj_exists(d, p))
    return NULL;
  if (p->len >= 3) {
    discover_link(d, &b, p, true);
    return b.s;
  }
  discover_link(d, &b, p, false);
  for (size_t i = 0; i < instance_count(d, p->id[0]); i++) {
    if (p->len == 2 && i != p->id[1])
      continue;
    q = (struct lwm2m_path){.id = {p->id[0], (uint16_t)i, 0, 0}, .len = 2};
    if (p->len == 1)
      discover_link(d, &b, &q, false);
    for (size_t k = 0; k < ARRAY_SIZE(resources); k++) {
      const struct sim_res *r = &resources[k];

      if (r->oid != p->id[0] || r->min_minor > d->sim->cfg->minor)
        continue;
      q.len = 3;
      q.id[2] = r->rid;
      discover_link(d, &b, &q, false);
    }
  }
  return b.s;
}

char *obj_register_links(const struct sim_dev *d)
{
  struct sbuf b = {0};
  char item[64];

  if (d->sim->cfg->minor >= 1) {
    /* The root link names the formats beyond the mandatory ones. */
    sb_add(&b, lwm2m_ct_supported(LWM2M_CT_CBOR)
                   ? "</>;rt=\"oma.lwm2m\";ct=\"60 110 112 11542\""
                   : "</>;rt=\"oma.lwm2m\";ct=\"110 112 11542\"");
  }
  for (size_t o = 0; o < ARRAY_SIZE(object_ids); o++) {
    uint16_t oid = object_ids[o];

    if (!object_present(d, oid))
      continue;
    if (oid == AFU_OID) {
      snprintf(item, sizeof(item), "%s</%u>;ver=1.0", b.len ? "," : "", oid);
      sb_add(&b, item);
    }
    for (size_t i = 0; i < instance_count(d, oid); i++) {
      snprintf(item, sizeof(item), "%s</%u/%zu>", b.len ? "," : "", oid, i);
      sb_add(&b, item);
    }
  }
  return b.s;
}

int obj_push_whole(struct sim_dev *d, struct afu_inst *in, const uint8_t *data,
                   size_t len, char *err, size_t errlen)
{
  int64_t now = sim_wall_s(d->sim);
  struct pkg_policy pol;
  struct pkg_stream s;
  int rc;

  /* A single NUL byte is the "reset" Write of spec 1.5. */
  if (len == 1 && data[0] == 0)
    return afu_reset(&d->afu, in, now, err, errlen);
  if (len == 0) {
    snprintf(err, errlen, "empty package");
    return -EINVAL;
  }
  rc = afu_push_begin(&d->afu, in, now, err, errlen);
  if (rc < 0)
    return rc;
  dev_afu_changed(d);
  dev_pkg_policy(d, dev_inst_slot(in), &pol);
  pkg_stream_init(&s, pkg_needs_sha256(NULL, &pol));
  if (pkg_stream_feed(&s, data, len, pol.max_size) != 0) {
    snprintf(err, errlen, "package larger than %zu bytes", pol.max_size);
    dev_download_finished(d, dev_inst_slot(in), AFU_R_NO_FLASH, NULL, err);
    pkg_stream_free(&s);
    return -EFBIG;
  }
  obj_push_finish(d, in, &s, err, errlen);
  pkg_stream_free(&s);
  return 0;
}

void obj_push_finish(struct sim_dev *d, struct afu_inst *in,
                     struct pkg_stream *pkg, char *err, size_t errlen)
{
  unsigned slot = dev_inst_slot(in);
  struct pkg_policy pol;
  struct pkg_info info;
  int rc;

  dev_pkg_policy(d, slot, &pol);
  err[0] = '\0';
  rc = pkg_stream_finish(pkg, NULL, &pol, &info, err, errlen);
  dev_download_finished(d, slot, rc, rc == 0 ? &info : NULL, err);
}
