/*
 * OMA DDF XML object definitions (the OMNA registry's format) read with
 * expat: <LWM2M><Object> elements, each with ObjectID, Name,
 * ObjectVersion, MultipleInstances, Mandatory and Resources/Item entries.
 * Everything else (descriptions, ranges, units) is skipped.
 */
#include "server/lwm2m.h"
#include "server/lwm2m_int.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The deepest element we look into is LWM2M/Object/Resources/Item/Type. */
#define DEPTH_MAX 32
/* The text of the fields we keep; descriptions are not collected. */
#define TEXT_MAX 1024
#define OBJS_MAX 4096

enum field {
  F_NONE,
  F_OBJ_NAME,
  F_OBJ_ID,
  F_OBJ_VERSION,
  F_OBJ_MULTIPLE,
  F_OBJ_MANDATORY,
  F_RES_NAME,
  F_RES_OPS,
  F_RES_MULTIPLE,
  F_RES_MANDATORY,
  F_RES_TYPE,
};

struct ddf {
  XML_Parser xp;
  const char *name;
  char *err;
  size_t errlen;
  bool failed;
  int depth;
  /* The element whose text is being collected, and the text. */
  enum field field;
  char text[TEXT_MAX + 1];
  size_t tlen;
  /* Objects so far; the last is the one being read when in_obj. */
  struct lwm2m_obj_def *objs;
  size_t n, cap;
  bool in_obj, in_res, has_id, res_has_type, res_has_ops;
  struct lwm2m_res_def *res; /* the Item being read */
  size_t rcap;
};

static void ddf_fail(struct ddf *d, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void ddf_fail(struct ddf *d, const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  if (d->failed)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  lwm2m_errf(d->err, d->errlen, "%s: line %lu: %s", d->name,
             (unsigned long)XML_GetCurrentLineNumber(d->xp), msg);
  d->failed = true;
  XML_StopParser(d->xp, XML_FALSE);
}

static struct lwm2m_obj_def *cur_obj(struct ddf *d)
{
  return &d->objs[d->n - 1];
}

static enum field field_for(const char *el, bool in_res)
{
  static const struct {
    const char *name;
    enum field obj, res;
  } map[] = {
      {"Name", F_OBJ_NAME, F_RES_NAME},
      {"ObjectID", F_OBJ_ID, F_NONE},
      {"ObjectVersion", F_OBJ_VERSION, F_NONE},
      {"MultipleInstances", F_OBJ_MULTIPLE, F_RES_MULTIPLE},
      {"Mandatory", F_OBJ_MANDATORY, F_RES_MANDATORY},
      {"Operations", F_NONE, F_RES_OPS},
      {"Type", F_NONE, F_RES_TYPE},
  };

  for (size_t i = 0; i < ARRAY_SIZE(map); i++)
    if (strcmp(el, map[i].name) == 0)
      return in_res ? map[i].res : map[i].obj;
  return F_NONE;
}

static void XMLCALL on_start(void *ud, const XML_Char *el,
                             const XML_Char **attrs)
{
  struct ddf *d = ud;

  if (d->failed)
    return;
  if (++d->depth > DEPTH_MAX) {
    ddf_fail(d, "elements nested too deep");
    return;
  }
  d->field = F_NONE;
  if (d->depth == 2 && strcmp(el, "Object") == 0) {
    if (d->n == OBJS_MAX) {
      ddf_fail(d, "more than %d objects", OBJS_MAX);
      return;
    }
    if (d->n == d->cap) {
      d->cap = d->cap ? 2 * d->cap : 4;
      d->objs = xrealloc(d->objs, d->cap * sizeof(*d->objs));
    }
    memset(&d->objs[d->n++], 0, sizeof(*d->objs));
    d->in_obj = true;
    d->has_id = false;
    d->rcap = 0;
  } else if (d->in_obj && d->depth == 4 && strcmp(el, "Item") == 0) {
    struct lwm2m_obj_def *o = cur_obj(d);
    const char *id = NULL;
    int64_t v;

    for (size_t i = 0; attrs[i]; i += 2)
      if (strcmp(attrs[i], "ID") == 0)
        id = attrs[i + 1];
    if (!id || parse_int64(id, 0, LWM2M_ID_MAX, &v) < 0) {
      ddf_fail(d, "Item needs an ID attribute 0..%d", LWM2M_ID_MAX);
      return;
    }
    if (o->nres == d->rcap) {
      d->rcap = d->rcap ? 2 * d->rcap : 16;
      o->res = xrealloc(o->res, d->rcap * sizeof(*o->res));
    }
    d->res = &o->res[o->nres++];
    memset(d->res, 0, sizeof(*d->res));
    d->res->id = (uint16_t)v;
    d->in_res = true;
    d->res_has_type = false;
    d->res_has_ops = false;
  } else if (d->in_obj && (d->depth == 3 || (d->in_res && d->depth == 5))) {
    d->field = field_for(el, d->in_res);
    d->tlen = 0;
  }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
  struct ddf *d = ud;

  if (d->failed || d->field == F_NONE || len <= 0)
    return;
  if ((size_t)len > TEXT_MAX - d->tlen) {
    ddf_fail(d, "element text longer than %d bytes", TEXT_MAX);
    return;
  }
  memcpy(d->text + d->tlen, s, (size_t)len);
  d->tlen += (size_t)len;
}

/* The element's text with surrounding blanks removed. */
static char *trimmed(struct ddf *d)
{
  char *s = d->text;
  size_t n = d->tlen;

  while (n > 0 && strchr(" \t\r\n", s[n - 1]))
    n--;
  s[n] = '\0';
  while (*s && strchr(" \t\r\n", *s))
    s++;
  return s;
}

static int yes_no(const char *s, const char *yes, const char *no, bool *out)
{
  if (strcasecmp(s, yes) == 0)
    *out = true;
  else if (strcasecmp(s, no) == 0)
    *out = false;
  else
    return -EINVAL;
  return 0;
}

static void end_field(struct ddf *d)
{
  struct lwm2m_obj_def *o = cur_obj(d);
  struct lwm2m_res_def *r = d->res;
  char *s = trimmed(d);
  int64_t v;

  switch (d->field) {
  case F_NONE:
    break;
  case F_OBJ_NAME:
    free(o->name);
    o->name = xstrdup(s);
    break;
  case F_OBJ_ID:
    if (parse_int64(s, 0, LWM2M_ID_MAX, &v) < 0) {
      ddf_fail(d, "ObjectID \"%.32s\" is not 0..%d", s, LWM2M_ID_MAX);
      break;
    }
    o->id = (uint16_t)v;
    d->has_id = true;
    break;
  case F_OBJ_VERSION:
    free(o->version);
    o->version = *s ? xstrdup(s) : NULL;
    break;
  case F_OBJ_MULTIPLE:
    if (yes_no(s, "Multiple", "Single", &o->multiple) < 0)
      ddf_fail(d, "MultipleInstances must be Multiple or Single");
    break;
  case F_OBJ_MANDATORY:
    if (yes_no(s, "Mandatory", "Optional", &o->mandatory) < 0)
      ddf_fail(d, "Mandatory must be Mandatory or Optional");
    break;
  case F_RES_NAME:
    free(r->name);
    r->name = xstrdup(s);
    break;
  case F_RES_OPS:
    if (lwm2m_ops_parse(s, &r->ops) < 0)
      ddf_fail(d,
               "resource %u: Operations \"%.16s\" is not R, W, RW, E or "
               "empty",
               (unsigned)r->id, s);
    d->res_has_ops = true;
    break;
  case F_RES_MULTIPLE:
    if (yes_no(s, "Multiple", "Single", &r->multiple) < 0)
      ddf_fail(d, "resource %u: MultipleInstances must be Multiple or Single",
               (unsigned)r->id);
    break;
  case F_RES_MANDATORY:
    if (yes_no(s, "Mandatory", "Optional", &r->mandatory) < 0)
      ddf_fail(d, "resource %u: Mandatory must be Mandatory or Optional",
               (unsigned)r->id);
    break;
  case F_RES_TYPE:
    if (lwm2m_type_parse(s, &r->type) < 0)
      ddf_fail(d, "resource %u: unknown Type \"%.32s\"", (unsigned)r->id, s);
    d->res_has_type = true;
    break;
  }
  d->field = F_NONE;
}

static void XMLCALL on_end(void *ud, const XML_Char *el)
{
  struct ddf *d = ud;

  if (d->failed)
    return;
  if (d->field != F_NONE) {
    end_field(d);
  } else if (d->in_res && d->depth == 4) {
    struct lwm2m_res_def *r = d->res;

    d->in_res = false;
    if (!r->name || !*r->name)
      ddf_fail(d, "resource %u has no Name", (unsigned)r->id);
    else if (!d->res_has_ops)
      ddf_fail(d, "resource %u has no Operations", (unsigned)r->id);
    /* Executables have no value; a Type given anyway is ignored. */
    else if (r->ops & LWM2M_OP_E)
      r->type = LWM2M_T_NONE;
    else if (r->type == LWM2M_T_NONE)
      ddf_fail(d, "resource %u has no Type", (unsigned)r->id);
  } else if (d->in_obj && d->depth == 2) {
    struct lwm2m_obj_def *o = cur_obj(d);

    d->in_obj = false;
    if (!d->has_id)
      ddf_fail(d, "Object without ObjectID");
    else if (!o->name || !*o->name)
      ddf_fail(d, "object %u has no Name", (unsigned)o->id);
    else if (lwm2m_obj_def_finish(o, NULL, 0) < 0)
      ddf_fail(d, "object %u defines a resource twice", (unsigned)o->id);
  }
  d->depth--;
}

/* Internal entities are how "billion laughs" documents grow; DDF files
 * never need them. */
static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param,
                              const XML_Char *value, int value_len,
                              const XML_Char *base, const XML_Char *sysid,
                              const XML_Char *pubid, const XML_Char *notation)
{
  ddf_fail(ud, "entity declarations are not allowed");
}

int lwm2m_ddf_parse(const char *name, const char *buf, size_t len,
                    struct lwm2m_obj_def **objs, size_t *n, char *err,
                    size_t errlen)
{
  struct ddf d;
  int rc = 0;

  memset(&d, 0, sizeof(d));
  d.name = name;
  d.err = err;
  d.errlen = errlen;
  d.xp = XML_ParserCreate(NULL);
  if (!d.xp) {
    lwm2m_errf(err, errlen, "%s: out of memory", name);
    return -ENOMEM;
  }
  XML_SetUserData(d.xp, &d);
  XML_SetElementHandler(d.xp, on_start, on_end);
  XML_SetCharacterDataHandler(d.xp, on_text);
  XML_SetEntityDeclHandler(d.xp, on_entity);
  if (len > INT32_MAX) {
    lwm2m_errf(err, errlen, "%s: too large", name);
    rc = -EINVAL;
  } else if (XML_Parse(d.xp, buf, (int)len, XML_TRUE) == XML_STATUS_ERROR &&
             !d.failed) {
    lwm2m_errf(err, errlen, "%s: line %lu: %s", name,
               (unsigned long)XML_GetCurrentLineNumber(d.xp),
               XML_ErrorString(XML_GetErrorCode(d.xp)));
    rc = -EINVAL;
  }
  if (rc == 0 && d.failed)
    rc = -EINVAL;
  if (rc == 0 && d.n == 0) {
    lwm2m_errf(err, errlen, "%s: no <Object> definition", name);
    rc = -EINVAL;
  }
  XML_ParserFree(d.xp);
  if (rc < 0) {
    for (size_t i = 0; i < d.n; i++)
      lwm2m_obj_def_clear(&d.objs[i]);
    free(d.objs);
    return rc;
  }
  *objs = d.objs;
  *n = d.n;
  return 0;
}
