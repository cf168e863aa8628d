/*
 * The object model: built-in definitions of the objects the daemon works
 * with, loading of more from OMA DDF XML or our JSON form, and lookups.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Object definition files are small; this bounds a runaway one. */
#define MODEL_FILE_MAX (4 * 1024 * 1024)

struct lwm2m_model {
  struct lwm2m_obj_def *objs; /* sorted by id */
  size_t n, cap;
};

/*
 * Built-in definitions, from the OMNA registry XML (objects 0, 1, 3, 4 in
 * their latest versions, 5 v1.1) and Anjay's 33629.xml. Ops "" marks the
 * Security object's resources, which only a Bootstrap-Server touches.
 */
struct res_tpl {
  uint16_t id;
  const char *name;
  const char *ops;
  enum lwm2m_type type;
  bool multiple, mandatory;
};

struct obj_tpl {
  uint16_t id;
  const char *name, *version;
  bool multiple, mandatory;
  const struct res_tpl *res;
  size_t nres;
};

#define S false /* single instance */
#define M true  /* multiple instances */
#define OPT false
#define MAND true
#define T(x) LWM2M_T_##x

static const struct res_tpl security_res[] = {
    {0, "LwM2M Server URI", "", T(STRING), S, MAND},
    {1, "Bootstrap-Server", "", T(BOOLEAN), S, MAND},
    {2, "Security Mode", "", T(INTEGER), S, MAND},
    {3, "Public Key or Identity", "", T(OPAQUE), S, MAND},
    {4, "Server Public Key", "", T(OPAQUE), S, MAND},
    {5, "Secret Key", "", T(OPAQUE), S, MAND},
    {6, "SMS Security Mode", "", T(INTEGER), S, OPT},
    {7, "SMS Binding Key Parameters", "", T(OPAQUE), S, OPT},
    {8, "SMS Binding Secret Key(s)", "", T(OPAQUE), S, OPT},
    {9, "LwM2M Server SMS Number", "", T(STRING), S, OPT},
    {10, "Short Server ID", "", T(INTEGER), S, OPT},
    {11, "Client Hold Off Time", "", T(INTEGER), S, OPT},
    {12, "Bootstrap-Server Account Timeout", "", T(INTEGER), S, OPT},
    {13, "Matching Type", "", T(UNSIGNED), S, OPT},
    {14, "SNI", "", T(STRING), S, OPT},
    {15, "Certificate Usage", "", T(UNSIGNED), S, OPT},
    {16, "DTLS/TLS Ciphersuite", "", T(UNSIGNED), M, OPT},
    {17, "OSCORE Security Mode", "", T(OBJLNK), S, OPT},
    {18, "Groups To Use by Client", "", T(UNSIGNED), M, OPT},
    {19, "Signature Algorithms Supported by Server", "", T(UNSIGNED), M, OPT},
    {20, "Signature Algorithms To Use by Client", "", T(UNSIGNED), M, OPT},
    {21, "Signature Algorithm Certs Supported by Server", "", T(UNSIGNED), M,
     OPT},
    {22, "TLS 1.3 Features To Use by Client", "", T(UNSIGNED), S, OPT},
    {23, "TLS Extensions Supported by Server", "", T(UNSIGNED), S, OPT},
    {24, "TLS Extensions To Use by Client", "", T(UNSIGNED), S, OPT},
    {25, "Secondary LwM2M Server URI", "", T(STRING), M, OPT},
    {26, "MQTT Server", "", T(OBJLNK), S, OPT},
    {27, "LwM2M COSE Security", "", T(OBJLNK), M, OPT},
    {28, "RDS Destination Port", "", T(INTEGER), S, OPT},
    {29, "RDS Source Port", "", T(INTEGER), S, OPT},
    {30, "RDS Application ID", "", T(STRING), S, OPT},
};

static const struct res_tpl server_res[] = {
    {0, "Short Server ID", "R", T(INTEGER), S, MAND},
    {1, "Lifetime", "RW", T(UNSIGNED), S, MAND},
    {2, "Default Minimum Period", "RW", T(INTEGER), S, OPT},
    {3, "Default Maximum Period", "RW", T(INTEGER), S, OPT},
    {4, "Disable", "E", T(NONE), S, OPT},
    {5, "Disable Timeout", "RW", T(INTEGER), S, OPT},
    {6, "Notification Storing When Disabled or Offline", "RW", T(BOOLEAN), S,
     MAND},
    {7, "Binding", "RW", T(STRING), S, MAND},
    {8, "Registration Update Trigger", "E", T(NONE), S, MAND},
    {9, "Bootstrap-Request Trigger", "E", T(NONE), S, OPT},
    {10, "APN Link", "RW", T(OBJLNK), S, OPT},
    {11, "TLS-DTLS Alert Code", "R", T(UNSIGNED), S, OPT},
    {12, "Last Bootstrapped", "R", T(TIME), S, OPT},
    {13, "Registration Priority Order", "R", T(UNSIGNED), S, OPT},
    {14, "Initial Registration Delay Timer", "RW", T(UNSIGNED), S, OPT},
    {15, "Registration Failure Block", "R", T(BOOLEAN), S, OPT},
    {16, "Bootstrap on Registration Failure", "R", T(BOOLEAN), S, OPT},
    {17, "Communication Retry Count", "RW", T(UNSIGNED), S, OPT},
    {18, "Communication Retry Timer", "RW", T(UNSIGNED), S, OPT},
    {19, "Communication Sequence Delay Timer", "RW", T(UNSIGNED), S, OPT},
    {20, "Communication Sequence Retry Count", "RW", T(UNSIGNED), S, OPT},
    {21, "Trigger", "RW", T(BOOLEAN), S, OPT},
    {22, "Preferred Transport", "RW", T(STRING), S, OPT},
    {23, "Mute Send", "RW", T(BOOLEAN), S, OPT},
    {24, "Alternate APN Links", "RW", T(OBJLNK), M, OPT},
    {25, "Supported Server Versions", "RW", T(STRING), M, OPT},
    {26, "Default Notification Mode", "RW", T(INTEGER), S, OPT},
    {27, "Profile ID Hash Algorithm", "RW", T(UNSIGNED), S, OPT},
};

static const struct res_tpl device_res[] = {
    {0, "Manufacturer", "R", T(STRING), S, OPT},
    {1, "Model Number", "R", T(STRING), S, OPT},
    {2, "Serial Number", "R", T(STRING), S, OPT},
    {3, "Firmware Version", "R", T(STRING), S, OPT},
    {4, "Reboot", "E", T(NONE), S, MAND},
    {5, "Factory Reset", "E", T(NONE), S, OPT},
    {6, "Available Power Sources", "R", T(INTEGER), M, OPT},
    {7, "Power Source Voltage", "R", T(INTEGER), M, OPT},
    {8, "Power Source Current", "R", T(INTEGER), M, OPT},
    {9, "Battery Level", "R", T(INTEGER), S, OPT},
    {10, "Memory Free", "R", T(INTEGER), S, OPT},
    {11, "Error Code", "R", T(INTEGER), M, MAND},
    {12, "Reset Error Code", "E", T(NONE), S, OPT},
    {13, "Current Time", "RW", T(TIME), S, OPT},
    {14, "UTC Offset", "RW", T(STRING), S, OPT},
    {15, "Timezone", "RW", T(STRING), S, OPT},
    {16, "Supported Binding and Modes", "R", T(STRING), S, MAND},
    {17, "Device Type", "R", T(STRING), S, OPT},
    {18, "Hardware Version", "R", T(STRING), S, OPT},
    {19, "Software Version", "R", T(STRING), S, OPT},
    {20, "Battery Status", "R", T(INTEGER), S, OPT},
    {21, "Memory Total", "R", T(INTEGER), S, OPT},
    {22, "ExtDevInfo", "R", T(OBJLNK), M, OPT},
};

static const struct res_tpl connmon_res[] = {
    {0, "Network Bearer", "R", T(INTEGER), S, MAND},
    {1, "Available Network Bearer", "R", T(INTEGER), M, MAND},
    {2, "Radio Signal Strength", "R", T(INTEGER), S, MAND},
    {3, "Link Quality", "R", T(INTEGER), S, OPT},
    {4, "IP Addresses", "R", T(STRING), M, MAND},
    {5, "Router IP Addresses", "R", T(STRING), M, OPT},
    {6, "Link Utilization", "R", T(INTEGER), S, OPT},
    {7, "APN", "R", T(STRING), M, OPT},
    {8, "Cell ID", "R", T(INTEGER), S, OPT},
    {9, "SMNC", "R", T(INTEGER), S, OPT},
    {10, "SMCC", "R", T(INTEGER), S, OPT},
    {11, "SignalSNR", "R", T(INTEGER), S, OPT},
    {12, "LAC", "R", T(INTEGER), S, OPT},
    {13, "Coverage Enhancement Level", "R", T(INTEGER), S, OPT},
};

static const struct res_tpl fwupdate_res[] = {
    {0, "Package", "W", T(OPAQUE), S, MAND},
    {1, "Package URI", "RW", T(STRING), S, MAND},
    {2, "Update", "E", T(NONE), S, MAND},
    {3, "State", "R", T(INTEGER), S, MAND},
    {5, "Update Result", "R", T(INTEGER), S, MAND},
    {6, "PkgName", "R", T(STRING), S, OPT},
    {7, "PkgVersion", "R", T(STRING), S, OPT},
    {8, "Firmware Update Protocol Support", "R", T(INTEGER), M, OPT},
    {9, "Firmware Update Delivery Method", "R", T(INTEGER), S, MAND},
    {10, "Cancel", "E", T(NONE), S, OPT},
    {11, "Severity", "RW", T(INTEGER), S, OPT},
    {12, "Last State Change Time", "R", T(TIME), S, OPT},
    {13, "Maximum Defer Period", "RW", T(UNSIGNED), S, OPT},
};

/* Object 5's resources plus the AFU ones (spec digest section 1.2). */
static const struct res_tpl afu_res[] = {
    {0, "Package", "W", T(OPAQUE), S, MAND},
    {1, "Package URI", "RW", T(STRING), S, MAND},
    {2, "Update", "E", T(NONE), S, MAND},
    {3, "State", "R", T(INTEGER), S, MAND},
    {5, "Update Result", "R", T(INTEGER), S, MAND},
    {6, "PkgName", "R", T(STRING), S, OPT},
    {7, "PkgVersion", "R", T(STRING), S, OPT},
    {8, "Firmware Update Protocol Support", "R", T(INTEGER), M, OPT},
    {9, "Firmware Update Delivery Method", "R", T(INTEGER), S, MAND},
    {10, "Cancel", "E", T(NONE), S, OPT},
    {11, "Severity", "RW", T(INTEGER), S, OPT},
    {12, "Last State Change Time", "R", T(TIME), S, OPT},
    {13, "Maximum Defer Period", "RW", T(UNSIGNED), S, OPT},
    {14, "Component Name", "R", T(STRING), S, MAND},
    {15, "Current Version", "R", T(STRING), S, MAND},
    {16, "Linked Instances", "R", T(OBJLNK), M, OPT},
    {17, "Conflicting Instances", "R", T(OBJLNK), M, OPT},
};

static const struct obj_tpl builtin[] = {
    {0, "LwM2M Security", "1.2", M, MAND, security_res,
     ARRAY_SIZE(security_res)},
    {1, "LwM2M Server", "1.2", M, MAND, server_res, ARRAY_SIZE(server_res)},
    {3, "Device", "1.2", S, MAND, device_res, ARRAY_SIZE(device_res)},
    {4, "Connectivity Monitoring", "1.3", S, OPT, connmon_res,
     ARRAY_SIZE(connmon_res)},
    {5, "Firmware Update", "1.1", S, OPT, fwupdate_res,
     ARRAY_SIZE(fwupdate_res)},
    {33629, "Advanced Firmware Update", "1.0", M, OPT, afu_res,
     ARRAY_SIZE(afu_res)},
};

#undef S
#undef M
#undef OPT
#undef MAND
#undef T

static const struct {
  const char *name;
  enum lwm2m_type type;
} type_names[] = {
    {"", LWM2M_T_NONE},
    {"none", LWM2M_T_NONE},
    {"string", LWM2M_T_STRING},
    {"integer", LWM2M_T_INTEGER},
    {"unsigned integer", LWM2M_T_UNSIGNED},
    {"unsigned", LWM2M_T_UNSIGNED},
    {"float", LWM2M_T_FLOAT},
    {"boolean", LWM2M_T_BOOLEAN},
    {"opaque", LWM2M_T_OPAQUE},
    {"time", LWM2M_T_TIME},
    {"objlnk", LWM2M_T_OBJLNK},
    {"corelnk", LWM2M_T_CORELNK},
};

int lwm2m_type_parse(const char *s, enum lwm2m_type *t)
{
  for (size_t i = 0; i < ARRAY_SIZE(type_names); i++) {
    if (strcasecmp(s, type_names[i].name) == 0) {
      *t = type_names[i].type;
      return 0;
    }
  }
  return -EINVAL;
}

/* "", "R", "W", "RW", "E" as DDF writes them; E goes with nothing else. */
int lwm2m_ops_parse(const char *s, uint8_t *ops)
{
  uint8_t v = 0;

  for (; *s; s++) {
    uint8_t bit;

    switch (*s) {
    case 'R':
    case 'r':
      bit = LWM2M_OP_R;
      break;
    case 'W':
    case 'w':
      bit = LWM2M_OP_W;
      break;
    case 'E':
    case 'e':
      bit = LWM2M_OP_E;
      break;
    default:
      return -EINVAL;
    }
    if (v & bit)
      return -EINVAL;
    v |= bit;
  }
  if ((v & LWM2M_OP_E) && v != LWM2M_OP_E)
    return -EINVAL;
  *ops = v;
  return 0;
}

void lwm2m_obj_def_clear(struct lwm2m_obj_def *o)
{
  for (size_t i = 0; i < o->nres; i++)
    free(o->res[i].name);
  free(o->res);
  free(o->name);
  free(o->version);
  memset(o, 0, sizeof(*o));
}

static int res_cmp(const void *a, const void *b)
{
  const struct lwm2m_res_def *x = a, *y = b;

  return (x->id > y->id) - (x->id < y->id);
}

int lwm2m_obj_def_finish(struct lwm2m_obj_def *o, char *err, size_t errlen)
{
  qsort(o->res, o->nres, sizeof(*o->res), res_cmp);
  for (size_t i = 1; i < o->nres; i++) {
    if (o->res[i].id == o->res[i - 1].id) {
      lwm2m_errf(err, errlen, "object %u: resource %u is defined twice",
                 (unsigned)o->id, (unsigned)o->res[i].id);
      return -EINVAL;
    }
  }
  if (!o->version)
    o->version = xstrdup("1.0");
  return 0;
}

static void obj_from_tpl(struct lwm2m_obj_def *o, const struct obj_tpl *t)
{
  memset(o, 0, sizeof(*o));
  o->id = t->id;
  o->name = xstrdup(t->name);
  o->version = xstrdup(t->version);
  o->multiple = t->multiple;
  o->mandatory = t->mandatory;
  o->nres = t->nres;
  o->res = xcalloc(t->nres, sizeof(*o->res));
  for (size_t i = 0; i < t->nres; i++) {
    struct lwm2m_res_def *r = &o->res[i];

    r->id = t->res[i].id;
    r->name = xstrdup(t->res[i].name);
    r->type = t->res[i].type;
    r->multiple = t->res[i].multiple;
    r->mandatory = t->res[i].mandatory;
    (void)lwm2m_ops_parse(t->res[i].ops, &r->ops);
  }
}

/* Index of oid, or of where it would go. */
static size_t model_find(const struct lwm2m_model *m, uint16_t oid,
                         bool *found)
{
  size_t lo = 0, hi = m->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (m->objs[mid].id < oid)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < m->n && m->objs[lo].id == oid;
  return lo;
}

/* Takes o's contents, replacing any definition with the same id. */
static void model_put(struct lwm2m_model *m, struct lwm2m_obj_def *o)
{
  bool found;
  size_t i = model_find(m, o->id, &found);

  if (found) {
    lwm2m_obj_def_clear(&m->objs[i]);
  } else {
    if (m->n == m->cap) {
      m->cap = m->cap ? 2 * m->cap : 16;
      m->objs = xrealloc(m->objs, m->cap * sizeof(*m->objs));
    }
    memmove(&m->objs[i + 1], &m->objs[i], (m->n - i) * sizeof(*m->objs));
    m->n++;
  }
  m->objs[i] = *o;
  memset(o, 0, sizeof(*o));
}

struct lwm2m_model *lwm2m_model_new(void)
{
  struct lwm2m_model *m = xcalloc(1, sizeof(*m));

  for (size_t i = 0; i < ARRAY_SIZE(builtin); i++) {
    struct lwm2m_obj_def o;

    obj_from_tpl(&o, &builtin[i]);
    model_put(m, &o);
  }
  return m;
}

void lwm2m_model_free(struct lwm2m_model *m)
{
  if (!m)
    return;
  for (size_t i = 0; i < m->n; i++)
    lwm2m_obj_def_clear(&m->objs[i]);
  free(m->objs);
  free(m);
}

const struct lwm2m_obj_def *lwm2m_model_obj(const struct lwm2m_model *m,
                                            uint16_t oid)
{
  bool found;
  size_t i;

  if (!m)
    return NULL;
  i = model_find(m, oid, &found);
  return found ? &m->objs[i] : NULL;
}

const struct lwm2m_res_def *lwm2m_model_res(const struct lwm2m_model *m,
                                            uint16_t oid, uint16_t rid)
{
  const struct lwm2m_obj_def *o = lwm2m_model_obj(m, oid);
  size_t lo = 0, hi;

  if (!o)
    return NULL;
  hi = o->nres;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (o->res[mid].id < rid)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < o->nres && o->res[lo].id == rid ? &o->res[lo] : NULL;
}

const struct lwm2m_obj_def *lwm2m_model_obj_at(const struct lwm2m_model *m,
                                               size_t i)
{
  return m && i < m->n ? &m->objs[i] : NULL;
}

/* A list of parsed definitions waiting to be merged into a model. */
struct obj_list {
  struct lwm2m_obj_def *v;
  size_t n;
};

static void obj_list_free(struct obj_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    lwm2m_obj_def_clear(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int parse_buf(struct obj_list *l, const char *name, const char *buf,
                     size_t len, char *err, size_t errlen)
{
  struct lwm2m_obj_def *objs = NULL;
  size_t n = 0, i = 0;
  int rc;

  while (i < len &&
         (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
    i++;
  /* A UTF-8 byte order mark, then XML starts with '<'. */
  if (len - i >= 3 && memcmp(buf + i, "\xef\xbb\xbf", 3) == 0)
    i += 3;
  if (i < len && buf[i] == '<')
    rc = lwm2m_ddf_parse(name, buf, len, &objs, &n, err, errlen);
  else if (i < len && (buf[i] == '{' || buf[i] == '['))
    rc = lwm2m_objjson_parse(name, buf, len, &objs, &n, err, errlen);
  else {
    lwm2m_errf(err, errlen, "%s: neither OMA DDF XML nor a JSON object", name);
    return -EINVAL;
  }
  if (rc < 0)
    return rc;
  l->v = xrealloc(l->v, (l->n + n + 1) * sizeof(*l->v));
  memcpy(l->v + l->n, objs, n * sizeof(*objs));
  l->n += n;
  free(objs);
  return 0;
}

static int merge(struct lwm2m_model *m, struct obj_list *l)
{
  int n = (int)l->n;

  for (size_t i = 0; i < l->n; i++)
    model_put(m, &l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
  return n;
}

int lwm2m_model_load_buf(struct lwm2m_model *m, const char *name,
                         const char *buf, size_t len, char *err, size_t errlen)
{
  struct obj_list l = {NULL, 0};
  int rc;

  if (!name)
    name = "(buffer)";
  if (len > MODEL_FILE_MAX) {
    lwm2m_errf(err, errlen, "%s: larger than %d bytes", name, MODEL_FILE_MAX);
    return -EINVAL;
  }
  rc = parse_buf(&l, name, buf, len, err, errlen);
  if (rc < 0) {
    obj_list_free(&l);
    return rc;
  }
  return merge(m, &l);
}

/* Reads a whole file of at most MODEL_FILE_MAX bytes into a new buffer. */
static int read_small_file(const char *path, char **out, size_t *len,
                           char *err, size_t errlen)
{
  struct stat st;
  char *buf = NULL;
  size_t got = 0;
  int fd, rc = 0;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
    lwm2m_errf(err, errlen, "%s: %s", path, strerror(errno));
    return rc;
  }
  if (fstat(fd, &st) < 0) {
    rc = -errno;
    lwm2m_errf(err, errlen, "%s: %s", path, strerror(errno));
    goto out;
  }
  if (st.st_size > MODEL_FILE_MAX) {
    rc = -EINVAL;
    lwm2m_errf(err, errlen, "%s: larger than %d bytes", path, MODEL_FILE_MAX);
    goto out;
  }
  buf = xmalloc((size_t)st.st_size + 1);
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = -errno;
      lwm2m_errf(err, errlen, "%s: %s", path, strerror(errno));
      goto out;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  buf[got] = '\0';
  *out = buf;
  *len = got;
  buf = NULL;
out:
  free(buf);
  close(fd);
  return rc;
}

static bool has_suffix(const char *s, const char *suffix)
{
  size_t a = strlen(s), b = strlen(suffix);

  return a > b && strcmp(s + a - b, suffix) == 0;
}

static int name_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int lwm2m_model_load_dir(struct lwm2m_model *m, const char *dir, char *err,
                         size_t errlen)
{
  struct obj_list l = {NULL, 0};
  char **names = NULL;
  size_t nnames = 0;
  struct dirent *de;
  DIR *d;
  int rc = 0;

  d = opendir(dir);
  if (!d) {
    rc = -errno;
    lwm2m_errf(err, errlen, "%s: %s", dir, strerror(errno));
    return rc;
  }
  /* readdir() order is arbitrary; name order makes "later replaces
   * earlier" predictable. */
  for (;;) {
    de = readdir(d);
    if (!de)
      break;
    if (de->d_name[0] == '.' ||
        !(has_suffix(de->d_name, ".xml") || has_suffix(de->d_name, ".json")))
      continue;
    names = xrealloc(names, (nnames + 1) * sizeof(*names));
    names[nnames++] = xstrdup(de->d_name);
  }
  closedir(d);
  if (nnames > 0)
    qsort(names, nnames, sizeof(*names), name_cmp);
  for (size_t i = 0; rc == 0 && i < nnames; i++) {
    char *path = xasprintf("%s/%s", dir, names[i]);
    char *buf = NULL;
    size_t len = 0;

    rc = read_small_file(path, &buf, &len, err, errlen);
    if (rc == 0)
      rc = parse_buf(&l, path, buf, len, err, errlen);
    free(buf);
    free(path);
  }
  for (size_t i = 0; i < nnames; i++)
    free(names[i]);
  free(names);
  if (rc < 0) {
    obj_list_free(&l);
    return rc;
  }
  return merge(m, &l);
}

/* The JSON form (docs/object-model.md). */
static const char *const obj_keys[] = {
    "id",        "name",        "version", "multiple",     "mandatory",
    "resources", "description", "urn",     "lwm2m_version"};
static const char *const res_keys[] = {"id",          "name",     "type",
                                       "operations",  "multiple", "mandatory",
                                       "description", "units",    "range"};

static bool key_known(const char *key, const char *const *keys, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(key, keys[i]) == 0)
      return true;
  return false;
}

static int json_id(const json_t *o, const char *what, const char *name,
                   uint16_t *id, char *err, size_t errlen)
{
  const json_t *j = json_object_get(o, "id");

  if (!json_is_integer(j) || json_integer_value(j) < 0 ||
      json_integer_value(j) > LWM2M_ID_MAX) {
    lwm2m_errf(err, errlen, "%s: %s \"id\" must be an integer 0..%d", name,
               what, LWM2M_ID_MAX);
    return -EINVAL;
  }
  *id = (uint16_t)json_integer_value(j);
  return 0;
}

/* Reads an optional boolean key (default false). */
static int json_flag(const json_t *o, const char *key, bool *out,
                     const char *where, char *err, size_t errlen)
{
  const json_t *j = json_object_get(o, key);

  *out = false;
  if (!j)
    return 0;
  if (!json_is_boolean(j)) {
    lwm2m_errf(err, errlen, "%s: \"%s\" must be true or false", where, key);
    return -EINVAL;
  }
  *out = json_is_true(j);
  return 0;
}

static int json_res(const json_t *o, const char *where,
                    struct lwm2m_res_def *r, char *err, size_t errlen)
{
  const json_t *name = json_object_get(o, "name");
  const json_t *type = json_object_get(o, "type");
  const json_t *ops = json_object_get(o, "operations");
  char at[300];
  const char *key;
  json_t *v;
  int rc;

  if (!json_is_object(o)) {
    lwm2m_errf(err, errlen, "%s: each resource must be an object", where);
    return -EINVAL;
  }
  rc = json_id(o, "resource", where, &r->id, err, errlen);
  if (rc < 0)
    return rc;
  snprintf(at, sizeof(at), "%s: resource %u", where, (unsigned)r->id);
  json_object_foreach((json_t *)o, key, v)
  {
    if (!key_known(key, res_keys, ARRAY_SIZE(res_keys))) {
      lwm2m_errf(err, errlen, "%s: unknown key \"%s\"", at, key);
      return -EINVAL;
    }
  }
  if (!json_is_string(name) || json_string_length(name) == 0) {
    lwm2m_errf(err, errlen, "%s: \"name\" must be a non-empty string", at);
    return -EINVAL;
  }
  if (!json_is_string(ops) ||
      lwm2m_ops_parse(json_string_value(ops), &r->ops) < 0) {
    lwm2m_errf(err, errlen,
               "%s: \"operations\" must be \"\", \"R\", \"W\", \"RW\" or "
               "\"E\"",
               at);
    return -EINVAL;
  }
  r->type = LWM2M_T_NONE;
  if (type && (!json_is_string(type) ||
               lwm2m_type_parse(json_string_value(type), &r->type) < 0)) {
    lwm2m_errf(err, errlen, "%s: unknown \"type\"", at);
    return -EINVAL;
  }
  if (r->ops & LWM2M_OP_E) {
    r->type = LWM2M_T_NONE;
  } else if (r->type == LWM2M_T_NONE) {
    lwm2m_errf(err, errlen,
               "%s: a resource that is not executable needs "
               "a \"type\"",
               at);
    return -EINVAL;
  }
  rc = json_flag(o, "multiple", &r->multiple, at, err, errlen);
  if (rc == 0)
    rc = json_flag(o, "mandatory", &r->mandatory, at, err, errlen);
  if (rc == 0)
    r->name = xstrdup(json_string_value(name));
  return rc;
}

static int json_obj(const json_t *o, const char *file, struct lwm2m_obj_def *d,
                    char *err, size_t errlen)
{
  const json_t *name = json_object_get(o, "name");
  const json_t *ver = json_object_get(o, "version");
  const json_t *res = json_object_get(o, "resources");
  char where[300];
  const char *key;
  json_t *v;
  int rc;

  if (!json_is_object(o)) {
    lwm2m_errf(err, errlen, "%s: an object definition must be a JSON object",
               file);
    return -EINVAL;
  }
  rc = json_id(o, "object", file, &d->id, err, errlen);
  if (rc < 0)
    return rc;
  snprintf(where, sizeof(where), "%s: object %u", file, (unsigned)d->id);
  json_object_foreach((json_t *)o, key, v)
  {
    if (!key_known(key, obj_keys, ARRAY_SIZE(obj_keys))) {
      lwm2m_errf(err, errlen, "%s: unknown key \"%s\"", where, key);
      return -EINVAL;
    }
  }
  if (!json_is_string(name) || json_string_length(name) == 0) {
    lwm2m_errf(err, errlen, "%s: \"name\" must be a non-empty string", where);
    return -EINVAL;
  }
  if (ver && !json_is_string(ver)) {
    lwm2m_errf(err, errlen, "%s: \"version\" must be a string", where);
    return -EINVAL;
  }
  if (!json_is_array(res)) {
    lwm2m_errf(err, errlen, "%s: \"resources\" must be an array", where);
    return -EINVAL;
  }
  rc = json_flag(o, "multiple", &d->multiple, where, err, errlen);
  if (rc == 0)
    rc = json_flag(o, "mandatory", &d->mandatory, where, err, errlen);
  if (rc < 0)
    return rc;
  d->name = xstrdup(json_string_value(name));
  d->version = ver ? xstrdup(json_string_value(ver)) : NULL;
  d->res = xcalloc(json_array_size(res) + 1, sizeof(*d->res));
  for (size_t i = 0; i < json_array_size(res); i++) {
    rc =
        json_res(json_array_get(res, i), where, &d->res[d->nres], err, errlen);
    /* Counted even on failure, so the caller frees a half-filled one. */
    d->nres++;
    if (rc < 0)
      return rc;
  }
  rc = lwm2m_obj_def_finish(d, err, errlen);
  if (rc < 0) {
    char tmp[200];

    snprintf(tmp, sizeof(tmp), "%s", err ? err : "");
    lwm2m_errf(err, errlen, "%s: %s", file, tmp);
  }
  return rc;
}

int lwm2m_objjson_parse(const char *name, const char *buf, size_t len,
                        struct lwm2m_obj_def **objs, size_t *n, char *err,
                        size_t errlen)
{
  struct lwm2m_obj_def *v = NULL;
  json_error_t je;
  json_t *top;
  size_t count, i;
  int rc = 0;

  top = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
  if (!top) {
    lwm2m_errf(err, errlen, "%s: line %d: %s", name, je.line, je.text);
    return -EINVAL;
  }
  count = json_is_array(top) ? json_array_size(top) : 1;
  v = xcalloc(count + 1, sizeof(*v));
  for (i = 0; rc == 0 && i < count; i++)
    rc = json_obj(json_is_array(top) ? json_array_get(top, i) : top, name,
                  &v[i], err, errlen);
  json_decref(top);
  if (rc < 0) {
    for (size_t k = 0; k < i; k++)
      lwm2m_obj_def_clear(&v[k]);
    free(v);
    return rc;
  }
  *objs = v;
  *n = count;
  return 0;
}

static const char *ops_name(uint8_t ops)
{
  switch (ops) {
  case LWM2M_OP_R:
    return "R";
  case LWM2M_OP_W:
    return "W";
  case LWM2M_OP_R | LWM2M_OP_W:
    return "RW";
  case LWM2M_OP_E:
    return "E";
  }
  return "";
}

json_t *lwm2m_obj_def_to_json(const struct lwm2m_obj_def *o)
{
  json_t *res = json_array(), *j;

  if (!res)
    return NULL;
  for (size_t i = 0; i < o->nres; i++) {
    const struct lwm2m_res_def *r = &o->res[i];
    json_t *e = json_pack("{s:i, s:s, s:s, s:s, s:b, s:b}", "id", (int)r->id,
                          "name", r->name, "type", lwm2m_type_name(r->type),
                          "operations", ops_name(r->ops), "multiple",
                          r->multiple, "mandatory", r->mandatory);

    if (json_array_append_new(res, e) < 0) {
      json_decref(res);
      return NULL;
    }
  }
  j = json_pack("{s:i, s:s, s:s, s:b, s:b, s:o}", "id", (int)o->id, "name",
                o->name, "version", o->version ? o->version : "1.0",
                "multiple", o->multiple, "mandatory", o->mandatory,
                "resources", res);
  return j;
}
