/* chat_request.c - see chat_request.h. */
#include "chat_request.h"

#include <string.h>

#include "util.h"

static int set_thinking_from(json_t *kw, const json_t *req, char *err, size_t errlen)
{
    json_t *th = json_object_get(req, "thinking");
    if (th && !json_is_null(th)) {
        if (!json_is_object(th))
            return glm_err(err, errlen, "'thinking' must be an object");
        json_t *type = json_object_get(th, "type");
        if (type) {
            if (!json_is_string(type) || (strcmp(json_string_value(type), "enabled") != 0 &&
                                          strcmp(json_string_value(type), "disabled") != 0))
                return glm_err(err, errlen, "'thinking.type' must be \"enabled\" or \"disabled\"");
            json_object_set_new(kw, "enable_thinking",
                                json_boolean(strcmp(json_string_value(type), "enabled") == 0));
        }
        json_t *ct = json_object_get(th, "clear_thinking");
        if (ct && !json_is_null(ct)) {
            if (!json_is_boolean(ct))
                return glm_err(err, errlen, "'thinking.clear_thinking' must be a boolean");
            json_object_set(kw, "clear_thinking", ct);
        }
    }
    json_t *rs = json_object_get(req, "reasoning");
    if (rs && !json_is_null(rs)) {
        if (json_is_boolean(rs)) {
            json_object_set(kw, "enable_thinking", rs);
        } else if (json_is_object(rs)) {
            json_t *en = json_object_get(rs, "enabled");
            json_t *eff = json_object_get(rs, "effort");
            if (en && !json_is_null(en)) {
                if (!json_is_boolean(en))
                    return glm_err(err, errlen, "'reasoning.enabled' must be a boolean");
                json_object_set(kw, "enable_thinking", en);
            } else if (eff && json_is_string(eff)) {
                json_object_set_new(kw, "enable_thinking", json_boolean(strcmp(json_string_value(eff), "none") != 0));
            } else if (!json_object_get(rs, "exclude")) {
                json_object_set_new(kw, "enable_thinking", json_true()); /* {} or {"max_tokens": N} */
            }
            if (eff && !json_is_null(eff)) {
                if (!json_is_string(eff))
                    return glm_err(err, errlen, "'reasoning.effort' must be a string");
                json_object_set(kw, "reasoning_effort", eff);
            }
        } else {
            return glm_err(err, errlen, "'reasoning' must be a boolean or an object");
        }
    }
    json_t *re = json_object_get(req, "reasoning_effort");
    if (re && !json_is_null(re)) {
        if (!json_is_string(re))
            return glm_err(err, errlen, "'reasoning_effort' must be a string");
        json_object_set(kw, "reasoning_effort", re);
        if (strcmp(json_string_value(re), "none") == 0)
            json_object_set_new(kw, "enable_thinking", json_false());
    }
    return GLM_OK;
}

json_t *glm_chat_template_kwargs(const json_t *request, char *err, size_t errlen)
{
    json_t *kw = json_object();
    if (set_thinking_from(kw, request, err, errlen) != GLM_OK) {
        json_decref(kw);
        return NULL;
    }
    json_t *ctk = json_object_get(request, "chat_template_kwargs");
    if (ctk && !json_is_null(ctk)) {
        if (!json_is_object(ctk)) {
            json_decref(kw);
            glm_err(err, errlen, "'chat_template_kwargs' must be an object");
            return NULL;
        }
        json_object_update(kw, ctk);
    }
    return kw;
}

json_t *glm_chat_messages_for_template(const json_t *messages, char *err, size_t errlen)
{
    if (!json_is_array(messages)) {
        glm_err(err, errlen, "'messages' must be an array");
        return NULL;
    }
    json_t *out = json_deep_copy(messages);
    size_t i, k;
    json_t *m, *tc;
    json_array_foreach(out, i, m) {
        json_t *calls = json_is_object(m) ? json_object_get(m, "tool_calls") : NULL;
        if (!json_is_array(calls))
            continue;
        json_array_foreach(calls, k, tc) {
            json_t *fn = json_is_object(tc) ? json_object_get(tc, "function") : NULL;
            json_t *args = json_is_object(fn) ? json_object_get(fn, "arguments") : NULL;
            if (!json_is_string(args))
                continue;
            json_error_t je;
            json_t *obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
            if (!obj) {
                json_decref(out);
                glm_err(err, errlen, "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON: %s", i,
                        k, je.text);
                return NULL;
            }
            if (json_is_object(obj))
                json_object_set_new(fn, "arguments", obj);
            else
                json_decref(obj);
        }
    }
    return out;
}
