/*
 * serve_config.c - `glm-server serve --config FILE`: a JSON object whose keys
 * are the long flags of `serve` (with '-' or '_': "max_model_len" or
 * "max-model-len"), turned into command-line arguments placed before the real
 * ones, so that flags given on the command line win (getopt keeps the last
 * value). Values: strings and numbers as the flag's argument; true/false for
 * switches (false on "enable_prefix_caching" means --no-enable-prefix-caching);
 * an array repeats a repeatable flag (api_key); null is ignored, and so is a
 * key starting with '_' (comments, settings planned for later). An unknown
 * key or a value of the wrong kind is an error naming the file and the key.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_config.h"
#include "core/util.h"

static void push(char ***v, int *n, const char *s)
{
    *v = glm_realloc(*v, sizeof(char *) * ((size_t)*n + 2));
    (*v)[(*n)++] = glm_strdup(s);
    (*v)[*n] = NULL;
}

static int value_arg(const json_t *x, char *buf, size_t n)
{
    if (json_is_string(x))
        snprintf(buf, n, "%s", json_string_value(x));
    else if (json_is_integer(x))
        snprintf(buf, n, "%lld", (long long)json_integer_value(x));
    else if (json_is_real(x))
        snprintf(buf, n, "%.17g", json_real_value(x));
    else if (json_is_object(x)) { /* --default-chat-template-kwargs, --speculative-config: the object as JSON text */
        char *s = json_dumps(x, JSON_COMPACT);
        if (!s || strlen(s) >= n) {
            free(s);
            return GLM_ERR;
        }
        snprintf(buf, n, "%s", s);
        free(s);
    } else
        return GLM_ERR;
    return GLM_OK;
}

int glm_serve_config_args(const char *path, const struct option *opts, char ***out, int *n_out, char *err,
                          size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return glm_err(err, errlen, "--config %s: %s (line %d)", path, je.text, je.line);
    if (!json_is_object(root)) {
        json_decref(root);
        return glm_err(err, errlen, "--config %s: must hold a JSON object", path);
    }
    char **v = NULL;
    int n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        char flag[128], arg[4096];
        size_t kl = strlen(key);
        if (kl == 0 || kl >= sizeof flag - 8)
            goto bad_key;
        for (size_t i = 0; i <= kl; i++)
            flag[i] = key[i] == '_' ? '-' : key[i];
        if (json_is_null(val) || key[0] == '_')
            continue;
        const struct option *o = NULL;
        for (const struct option *p = opts; p->name; p++)
            if (strcmp(p->name, flag) == 0)
                o = p;
        if (!o || strcmp(flag, "config") == 0 || strcmp(flag, "help") == 0 ||
            strncmp(flag, "no-", 3) == 0)
            goto bad_key;
        char opt[160];
        if (o->has_arg == no_argument) { /* a switch: true or false */
            if (!json_is_boolean(val)) {
                glm_err(err, errlen, "--config %s: \"%s\" must be true or false", path, key);
                goto fail;
            }
            snprintf(opt, sizeof opt, "--%s%s", json_is_true(val) ? "" : "no-", flag);
            const struct option *neg = NULL;
            for (const struct option *p = opts; p->name; p++)
                if (strcmp(p->name, opt + 2) == 0)
                    neg = p;
            if (!neg) {
                glm_err(err, errlen, "--config %s: \"%s\" can only be true", path, key);
                goto fail;
            }
            push(&v, &n, opt);
            continue;
        }
        snprintf(opt, sizeof opt, "--%s", flag);
        if (json_is_array(val) && strcmp(flag, "api-key") == 0) {
            size_t i;
            json_t *x;
            json_array_foreach(val, i, x) {
                if (!json_is_string(x)) {
                    glm_err(err, errlen, "--config %s: \"%s\" must hold strings", path, key);
                    goto fail;
                }
                push(&v, &n, opt);
                push(&v, &n, json_string_value(x));
            }
            continue;
        }
        if (value_arg(val, arg, sizeof arg) != GLM_OK) {
            glm_err(err, errlen, "--config %s: \"%s\" must be a string or a number (or an object of at most 4 KiB for default_chat_template_kwargs and speculative_config)", path, key);
            goto fail;
        }
        push(&v, &n, opt);
        push(&v, &n, arg);
    }
    json_decref(root);
    *out = v;
    *n_out = n;
    return GLM_OK;
bad_key:
    glm_err(err, errlen, "--config %s: unknown key \"%s\" (keys are the flags of glm-server serve)", path, key);
fail:
    glm_serve_config_free(v, n);
    json_decref(root);
    return GLM_ERR;
}

void glm_serve_config_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
