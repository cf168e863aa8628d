/* The object model fotad decodes with: built-in and loaded definitions. */
#include "api/api_int.h"

#include <string.h>

#define LOG_TAG "api"

/* GET /api/v1/objects: every known object, id and name, in id order. */
void api_list_objects(struct api_req *req)
{
  const struct lwm2m_model *m = srv_model(req->api->srv);
  const struct lwm2m_obj_def *o;
  json_t *arr = json_array();

  for (size_t i = 0; (o = lwm2m_model_obj_at(m, i)) != NULL; i++)
    json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:b, s:I}", "id",
                                         o->id, "name", o->name, "version",
                                         o->version, "multiple", o->multiple,
                                         "resources", (json_int_t)o->nres));
  api_reply_json(req, 200, json_pack("{s:o}", "objects", arr));
}

/* GET /api/v1/objects/{id}: one definition with all its resources. */
void api_get_object(struct api_req *req)
{
  const struct lwm2m_obj_def *o;
  int64_t id;

  if (parse_int64(req->params[0], 0, 65535, &id) < 0 ||
      !(o = lwm2m_model_obj(srv_model(req->api->srv), (uint16_t)id))) {
    api_reply_error(req, 404, "not_found", "no definition of object '%s'",
                    req->params[0]);
    return;
  }
  api_reply_json(req, 200, lwm2m_obj_def_to_json(o));
}
