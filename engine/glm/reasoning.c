/* reasoning.c - see reasoning.h. */
#include "glm/reasoning.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "core/json_field.h"

/* One statement about thinking: which field said it, on or off, explicit or implied. */
typedef struct {
    const char *field;
    int on, explicit_;
} vote;

typedef struct {
    glm_reasoning *o;
    vote votes[8];
    int n_votes;
    const char *effort, *effort_field;
    int clear;
    const char *clear_field;
    int budget_set;
    const char *budget_field;
    int exclude_set;
    const char *exclude_field;
    char *err;
    size_t errlen;
} reader;

static int fail(reader *r, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(reader *r, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    snprintf(r->o->param, sizeof r->o->param, "%s", param);
    return GLM_ERR;
}

/* The top-level part of a dotted field name, for the error's "param". */
static const char *top(const char *field, char *buf, size_t n)
{
    size_t k = strcspn(field, ".");
    if (k >= n)
        k = n - 1;
    memcpy(buf, field, k);
    buf[k] = 0;
    return buf;
}

static void add_vote(reader *r, const char *field, int on, int explicit_)
{
    if (r->n_votes < (int)(sizeof r->votes / sizeof r->votes[0]))
        r->votes[r->n_votes++] = (vote){field, on, explicit_};
}

static const char *const efforts[] = {"none", "minimal", "low", "medium", "high", "xhigh", "max"};

static int set_effort(reader *r, const char *field, const json_t *v)
{
    char b[64];
    if (!json_is_string(v))
        return fail(r, top(field, b, sizeof b), "'%s' must be a string", field);
    const char *s = json_string_value(v);
    size_t k;
    for (k = 0; k < sizeof efforts / sizeof efforts[0]; k++)
        if (strcmp(s, efforts[k]) == 0)
            break;
    if (k == sizeof efforts / sizeof efforts[0])
        return fail(r, top(field, b, sizeof b),
                    "'%s' must be one of \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", \"max\"",
                    field);
    if (r->effort && strcmp(r->effort, s) != 0)
        return fail(r, top(field, b, sizeof b), "contradictory reasoning settings: '%s' is \"%s\" but '%s' is \"%s\"",
                    r->effort_field, r->effort, field, s);
    r->effort = s;
    r->effort_field = field;
    add_vote(r, field, strcmp(s, "none") != 0, strcmp(s, "none") == 0);
    return GLM_OK;
}

static int set_clear(reader *r, const char *field, const json_t *v)
{
    char b[64];
    if (!json_is_boolean(v))
        return fail(r, top(field, b, sizeof b), "'%s' must be a boolean", field);
    int c = json_is_true(v);
    if (r->clear >= 0 && r->clear != c)
        return fail(r, top(field, b, sizeof b), "contradictory reasoning settings: '%s' is %s but '%s' is %s",
                    r->clear_field, r->clear ? "true" : "false", field, c ? "true" : "false");
    r->clear = c;
    r->clear_field = field;
    return GLM_OK;
}

static int set_budget(reader *r, const char *field, const json_t *v)
{
    char b[64];
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!json_is_number(v) || d != floor(d) || d < 0 || d > 1e9)
        return fail(r, top(field, b, sizeof b), "'%s' must be an integer >= 0", field);
    int n = (int)d;
    if (r->budget_set && r->o->budget != n)
        return fail(r, top(field, b, sizeof b), "contradictory reasoning settings: '%s' is %d but '%s' is %d",
                    r->budget_field, r->o->budget, field, n);
    r->budget_set = 1;
    r->budget_field = field;
    r->o->budget = n;
    add_vote(r, field, 1, 0);
    return GLM_OK;
}

static int set_exclude(reader *r, const char *field, const json_t *v, int invert)
{
    char b[64];
    if (!json_is_boolean(v))
        return fail(r, top(field, b, sizeof b), "'%s' must be a boolean", field);
    int ex = json_is_true(v) ^ invert;
    if (r->exclude_set && r->o->exclude != ex)
        return fail(r, top(field, b, sizeof b), "contradictory reasoning settings: '%s' and '%s' disagree",
                    r->exclude_field, field);
    r->exclude_set = 1;
    r->exclude_field = field;
    r->o->exclude = ex;
    return GLM_OK;
}

static int read_request(reader *r, const json_t *req)
{
    const json_t *v, *x;
    if ((v = glm_json_field(req, "reasoning"))) {
        if (json_is_boolean(v)) {
            add_vote(r, "reasoning", json_is_true(v), 1);
        } else if (json_is_object(v)) {
            int any = 0;
            if ((x = glm_json_field(v, "enabled"))) {
                if (!json_is_boolean(x))
                    return fail(r, "reasoning", "'reasoning.enabled' must be a boolean");
                add_vote(r, "reasoning.enabled", json_is_true(x), 1);
                any = 1;
            }
            if ((x = glm_json_field(v, "effort"))) {
                if (set_effort(r, "reasoning.effort", x))
                    return GLM_ERR;
                any = 1;
            }
            if ((x = glm_json_field(v, "max_tokens"))) {
                if (set_budget(r, "reasoning.max_tokens", x))
                    return GLM_ERR;
                any = 1;
            }
            if ((x = glm_json_field(v, "exclude")) && set_exclude(r, "reasoning.exclude", x, 0))
                return GLM_ERR;
            /* OpenRouter: a reasoning object turns reasoning on; {"exclude": ...}
             * alone only says what to return */
            if (!any && !glm_json_field(v, "exclude"))
                add_vote(r, "reasoning", 1, 0);
        } else {
            return fail(r, "reasoning", "'reasoning' must be a boolean or an object");
        }
    }
    if ((v = glm_json_field(req, "thinking"))) {
        if (!json_is_object(v))
            return fail(r, "thinking", "'thinking' must be an object");
        if ((x = glm_json_field(v, "type"))) {
            const char *t = json_is_string(x) ? json_string_value(x) : "";
            if (strcmp(t, "enabled") != 0 && strcmp(t, "disabled") != 0)
                return fail(r, "thinking", "'thinking.type' must be \"enabled\" or \"disabled\"");
            add_vote(r, "thinking.type", strcmp(t, "enabled") == 0, 1);
        }
        if ((x = glm_json_field(v, "clear_thinking")) && set_clear(r, "thinking.clear_thinking", x))
            return GLM_ERR;
    }
    if ((v = glm_json_field(req, "reasoning_effort")) && set_effort(r, "reasoning_effort", v))
        return GLM_ERR;
    if ((v = glm_json_field(req, "thinking_token_budget")) && set_budget(r, "thinking_token_budget", v))
        return GLM_ERR;
    if ((v = glm_json_field(req, "include_reasoning")) && set_exclude(r, "include_reasoning", v, 1))
        return GLM_ERR;
    if ((v = glm_json_field(req, "chat_template_kwargs"))) {
        if (!json_is_object(v))
            return fail(r, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        if ((x = glm_json_field(v, "enable_thinking"))) {
            if (!json_is_boolean(x))
                return fail(r, "chat_template_kwargs", "'chat_template_kwargs.enable_thinking' must be a boolean");
            add_vote(r, "chat_template_kwargs.enable_thinking", json_is_true(x), 1);
        }
        if ((x = glm_json_field(v, "clear_thinking")) && json_is_boolean(x) &&
            set_clear(r, "chat_template_kwargs.clear_thinking", x))
            return GLM_ERR;
        if ((x = glm_json_field(v, "reasoning_effort")) && json_is_string(x) &&
            set_effort(r, "chat_template_kwargs.reasoning_effort", x))
            return GLM_ERR;
    }
    return GLM_OK;
}

int glm_reasoning_parse(const json_t *request, const json_t *defaults, glm_reasoning *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->budget = -1;
    reader r = {.o = o, .clear = -1, .err = err, .errlen = errlen};
    if (read_request(&r, request) != GLM_OK)
        return GLM_ERR;
    /* resolve the switch: explicit votes must agree; explicit off wins */
    const vote *on = NULL, *off = NULL, *implied = NULL;
    for (int i = 0; i < r.n_votes; i++) {
        const vote *v = &r.votes[i];
        if (v->explicit_ && v->on && !on)
            on = v;
        else if (v->explicit_ && !v->on && !off)
            off = v;
        else if (!v->explicit_ && v->on && !implied)
            implied = v;
    }
    if (on && off) {
        char b[64];
        return fail(&r, top(off->field, b, sizeof b),
                    "contradictory reasoning settings: '%s' turns thinking on but '%s' turns it off", on->field,
                    off->field);
    }
    int thinking = off ? 0 : on || implied ? 1 : -1;

    json_t *kw = json_is_object(defaults) ? json_deep_copy(defaults) : json_object();
    const json_t *ctk = glm_json_field(request, "chat_template_kwargs");
    if (ctk)
        json_object_update(kw, (json_t *)ctk);
    if (thinking >= 0)
        json_object_set_new(kw, "enable_thinking", json_boolean(thinking));
    if (r.clear >= 0)
        json_object_set_new(kw, "clear_thinking", json_boolean(r.clear));
    if (r.effort)
        json_object_set_new(kw, "reasoning_effort", json_string(r.effort));
    o->kwargs = kw;
    return GLM_OK;
}
