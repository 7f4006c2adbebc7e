/*
 * json_field.h - reading request fields: a member that is absent and one
 * that is JSON null mean the same thing in OpenAI's API ("not given").
 */
#ifndef GLM_JSON_FIELD_H
#define GLM_JSON_FIELD_H

#include <jansson.h>

/* o's member k, or NULL when it is absent or null (or o is not an object). */
static inline const json_t *glm_json_field(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

#endif
