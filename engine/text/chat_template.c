/*
 * chat_template.c - loads a checkpoint's chat template (chat_template.jinja or
 * tokenizer_config.json) and renders conversations with it the way
 * transformers' apply_chat_template does (see chat_template.h for the steps it
 * repeats). The Jinja work is done by jinja.c.
 */
#include "text/chat_template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/util.h"

#define MAX_TEMPLATE_BYTES ((size_t)4 << 20)

static const char *const SPECIAL_NAMES[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                            "pad_token", "cls_token", "mask_token"};
#define N_SPECIAL (sizeof SPECIAL_NAMES / sizeof SPECIAL_NAMES[0])

struct glm_chat_template {
    glm_jinja *def;      /* "default"; NULL when only a tool_use template exists */
    glm_jinja *tool_use; /* may be NULL */
    char *special[N_SPECIAL];
    glm_jinja_limits limits;
};

void glm_chat_template_free(glm_chat_template *ct)
{
    if (!ct)
        return;
    glm_jinja_free(ct->def);
    glm_jinja_free(ct->tool_use);
    for (size_t i = 0; i < N_SPECIAL; i++)
        free(ct->special[i]);
    free(ct);
}

void glm_chat_template_set_limits(glm_chat_template *ct, const glm_jinja_limits *limits)
{
    if (limits)
        ct->limits = *limits;
    else
        memset(&ct->limits, 0, sizeof ct->limits);
}

const char *glm_chat_template_special_token(const glm_chat_template *ct, const char *name)
{
    for (size_t i = 0; i < N_SPECIAL; i++)
        if (!strcmp(SPECIAL_NAMES[i], name))
            return ct->special[i];
    return NULL;
}

/* Special tokens are strings or serialized AddedTokens ({"content": ...}). */
static int read_special_tokens(glm_chat_template *ct, const json_t *cfg, const char *path, char *err,
                               size_t errlen)
{
    if (!cfg)
        return GLM_OK;
    for (size_t i = 0; i < N_SPECIAL; i++) {
        const json_t *v = json_object_get(cfg, SPECIAL_NAMES[i]);
        if (!v || json_is_null(v))
            continue;
        if (json_is_object(v))
            v = json_object_get(v, "content");
        if (!json_is_string(v))
            return glm_err(err, errlen, "%s: \"%s\" must be a string or an object with a \"content\" string",
                           path, SPECIAL_NAMES[i]);
        ct->special[i] = glm_strdup(json_string_value(v));
    }
    return GLM_OK;
}

static int compile(const char *text, size_t len, const char *name, glm_jinja **out, char *err,
                   size_t errlen)
{
    if (len > MAX_TEMPLATE_BYTES)
        return glm_err(err, errlen, "%s: chat template larger than %zu bytes", name, MAX_TEMPLATE_BYTES);
    return glm_jinja_compile(text, len, name, out, err, errlen);
}

int glm_chat_template_from_string(const char *text, size_t len, const json_t *tokenizer_config,
                                  glm_chat_template **out, char *err, size_t errlen)
{
    *out = NULL;
    glm_chat_template *ct = glm_calloc(1, sizeof *ct);
    if (compile(text, len, "chat_template", &ct->def, err, errlen) != GLM_OK ||
        read_special_tokens(ct, tokenizer_config, "tokenizer_config", err, errlen) != GLM_OK) {
        glm_chat_template_free(ct);
        return GLM_ERR;
    }
    *out = ct;
    return GLM_OK;
}

/* Reads a whole file into a malloc'd NUL-terminated buffer. 1 = read, 0 = the
 * file does not exist, -1 = error (message in err). */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        glm_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        fclose(f);
        glm_err(err, errlen, "%s: not a regular file of at most %zu bytes", path, max);
        return -1;
    }
    glm_buf b = {0};
    int rc = glm_buf_read(&b, f, (size_t)st.st_size);
    fclose(f);
    if (rc != GLM_OK || b.len != (size_t)st.st_size) {
        glm_buf_free(&b);
        glm_err(err, errlen, "%s: read error", path);
        return -1;
    }
    *out = glm_buf_take(&b, len);
    return 1;
}

/* Compiles `path` into *out if the file exists (1), 0 if it does not, -1 on error. */
static int compile_file(const char *path, glm_jinja **out, char *err, size_t errlen)
{
    char *text;
    size_t len;
    int r = read_file(path, MAX_TEMPLATE_BYTES, &text, &len, err, errlen);
    if (r <= 0)
        return r;
    const char *base = strrchr(path, '/');
    r = compile(text, len, base ? base + 1 : path, out, err, errlen) == GLM_OK ? 1 : -1;
    free(text);
    return r;
}

/* tokenizer_config.json's chat_template: a string or [{"name", "template"}]. */
static int templates_from_config(glm_chat_template *ct, const json_t *tpl, const char *path, char *err,
                                 size_t errlen)
{
    if (json_is_string(tpl))
        return compile(json_string_value(tpl), json_string_length(tpl), "chat_template", &ct->def, err,
                       errlen);
    if (!json_is_array(tpl))
        return glm_err(err, errlen, "%s: \"chat_template\" must be a string or a list of named templates", path);
    size_t i;
    json_t *e;
    json_array_foreach(tpl, i, e)
    {
        const json_t *name = json_object_get(e, "name"), *text = json_object_get(e, "template");
        if (!json_is_string(name) || !json_is_string(text))
            return glm_err(err, errlen, "%s: chat_template[%zu] needs string \"name\" and \"template\"", path, i);
        glm_jinja **slot = !strcmp(json_string_value(name), "default") ? &ct->def
                           : !strcmp(json_string_value(name), "tool_use") ? &ct->tool_use : NULL;
        if (!slot || *slot)
            continue;
        char label[96];
        snprintf(label, sizeof label, "chat_template[%s]", json_string_value(name));
        if (compile(json_string_value(text), json_string_length(text), label, slot, err, errlen) != GLM_OK)
            return GLM_ERR;
    }
    return GLM_OK;
}

int glm_chat_template_load(const char *dir, glm_chat_template **out, char *err, size_t errlen)
{
    *out = NULL;
    glm_chat_template *ct = glm_calloc(1, sizeof *ct);
    json_t *cfg = NULL;
    char path[4096];

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *text;
    size_t len;
    int r = read_file(path, (size_t)256 << 20, &text, &len, err, errlen);
    if (r < 0)
        goto fail;
    if (r > 0) {
        json_error_t je;
        cfg = json_loadb(text, len, JSON_DECODE_ANY, &je);
        free(text);
        if (!json_is_object(cfg)) {
            glm_err(err, errlen, "%s: %s", path, cfg ? "not a JSON object" : je.text);
            goto fail;
        }
        if (read_special_tokens(ct, cfg, path, err, errlen) != GLM_OK)
            goto fail;
    }

    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    r = compile_file(path, &ct->def, err, errlen);
    if (r < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/additional_chat_templates/tool_use.jinja", dir);
    int rt = compile_file(path, &ct->tool_use, err, errlen);
    if (rt < 0)
        goto fail;
    if (r == 0 && rt == 0 && cfg && json_object_get(cfg, "chat_template")) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        if (templates_from_config(ct, json_object_get(cfg, "chat_template"), path, err, errlen) != GLM_OK)
            goto fail;
    }
    if (!ct->def && !ct->tool_use) {
        glm_err(err, errlen, "%s: no chat template (neither chat_template.jinja nor a \"chat_template\" "
                "in tokenizer_config.json)", dir);
        goto fail;
    }
    json_decref(cfg);
    *out = ct;
    return GLM_OK;
fail:
    json_decref(cfg);
    glm_chat_template_free(ct);
    return GLM_ERR;
}

/* A message as transformers passes it: null-valued keys dropped, reasoning
 * aliased to `thinking` and `reasoning_content` ({"thinking": r, **m,
 * "reasoning_content": r} in Python, whose key order this keeps). m itself
 * when that changes nothing, else a new object sharing m's values: the
 * caller's JSON is never modified, only referenced (jansson's reference
 * counts are atomic), so one request's JSON may be rendered from several
 * threads, and a conversation is not copied to be rendered. */
static json_t *normalize_message(json_t *m)
{
    static const char *const REASONING[] = {"reasoning_content", "thinking", "reasoning"};
    json_t *reasoning = NULL;
    for (size_t i = 0; i < 3 && !reasoning; i++) {
        json_t *v = json_object_get(m, REASONING[i]);
        if (v && !json_is_null(v))
            reasoning = v;
    }
    const char *k;
    json_t *v;
    int nulls = 0;
    json_object_foreach(m, k, v)
        nulls |= json_is_null(v);
    if (!reasoning && !nulls)
        return json_incref(m);
    json_t *out = json_object();
    if (reasoning)
        json_object_set(out, "thinking", reasoning);
    json_object_foreach(m, k, v)
    {
        if (!json_is_null(v))
            json_object_set(out, k, v);
    }
    if (reasoning)
        json_object_set(out, "reasoning_content", reasoning);
    return out;
}

int glm_chat_render(const glm_chat_template *ct, const json_t *messages, const json_t *tools,
                    bool add_generation_prompt, const json_t *kwargs, char **prompt, size_t *len,
                    char *err, size_t errlen)
{
    static const char *const RESERVED[] = {"messages", "tools", "documents", "add_generation_prompt",
                                           "chat_template"};
    *prompt = NULL;
    if (len)
        *len = 0;
    if (!json_is_array(messages))
        return glm_err(err, errlen, "chat template: messages must be an array");
    if (json_array_size(messages) == 0)
        return glm_err(err, errlen, "chat template: cannot apply the chat template to an empty conversation");
    if (tools && !json_is_array(tools))
        return glm_err(err, errlen, "chat template: tools must be an array");
    if (kwargs && !json_is_object(kwargs))
        return glm_err(err, errlen, "chat template: chat_template_kwargs must be an object");
    for (size_t i = 0; kwargs && i < sizeof RESERVED / sizeof RESERVED[0]; i++)
        if (json_object_get(kwargs, RESERVED[i]))
            return glm_err(err, errlen, "chat template: chat_template_kwargs may not set \"%s\"", RESERVED[i]);
    size_t i;
    json_t *e;
    json_array_foreach(tools, i, e)
    {
        if (!json_is_object(e))
            return glm_err(err, errlen, "chat template: tools[%zu] must be an object", i);
    }

    const glm_jinja *t = tools && ct->tool_use ? ct->tool_use : ct->def;
    if (!t)
        return glm_err(err, errlen, "chat template: this model has only a \"tool_use\" chat template and "
                       "the request has no tools");

    json_t *ctx = json_object();
    for (size_t s = 0; s < N_SPECIAL; s++)
        if (ct->special[s])
            json_object_set_new(ctx, SPECIAL_NAMES[s], json_string(ct->special[s]));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)kwargs, k, v)
        json_object_set(ctx, k, v);
    json_t *msgs = json_array();
    json_array_foreach(messages, i, e)
    {
        if (!json_is_object(e)) {
            json_decref(msgs);
            json_decref(ctx);
            return glm_err(err, errlen, "chat template: messages[%zu] must be an object", i);
        }
        json_array_append_new(msgs, normalize_message(e));
    }
    json_object_set_new(ctx, "messages", msgs);
    json_object_set(ctx, "tools", tools ? (json_t *)tools : json_null());
    json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));

    int rc = glm_jinja_render(t, ctx, &ct->limits, prompt, len, err, errlen);
    json_decref(ctx);
    return rc;
}
