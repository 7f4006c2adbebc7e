/*
 * json_limits.c - counting JSON values, nesting, members and string bytes
 * on text (a byte scanner that allocates nothing) and on trees; see
 * json_limits.h.
 */
#include "core/json_limits.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

/* Nesting the scanner follows at most (a zero or larger max_depth means this;
 * jansson's own parser stops at 2048). */
#define STACK 1024

/* The counting both walks share: one value at a time, the root object's
 * member being read, and the member that held the most values so far. */
typedef struct {
    glm_json_limits lim;
    glm_json_shape *out;
    int root_object;          /* the outermost value is an object */
    const char *cur;          /* name of the root member being read (NULL: none or not ASCII) */
    size_t cur_len, cur_values;
    char best[64];
    size_t best_values;
} counter;

static void counter_init(counter *c, const glm_json_limits *lim, glm_json_shape *out)
{
    memset(c, 0, sizeof *c);
    memset(out, 0, sizeof *out);
    if (lim)
        c->lim = *lim;
    if (c->lim.max_depth <= 0 || c->lim.max_depth > STACK)
        c->lim.max_depth = STACK;
    c->out = out;
}

static void set_field(char *dst, const char *name, size_t n)
{
    dst[0] = 0;
    if (!name || n >= 64)
        return;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\')
            return;
    memcpy(dst, name, n);
    dst[n] = 0;
}

/* A new member of the root object starts. */
static void root_member(counter *c, const char *name, size_t n)
{
    if (c->cur_values > c->best_values) {
        set_field(c->best, c->cur, c->cur_len);
        c->best_values = c->cur_values;
    }
    c->cur = name;
    c->cur_len = n;
    c->cur_values = 0;
}

static int excess(counter *c, glm_json_excess e)
{
    c->out->excess = e;
    if (e == GLM_JSON_TOO_MANY_VALUES && c->best_values > c->cur_values)
        memcpy(c->out->field, c->best, sizeof c->best);
    else
        set_field(c->out->field, c->cur, c->cur_len);
    return GLM_ERR;
}

/* One value inside a container of `*members` so far (NULL: the outermost). */
static int count_value(counter *c, size_t *members, int depth)
{
    c->out->values++;
    if (depth >= 1 && c->root_object)
        c->cur_values++;
    if (c->lim.max_values && c->out->values > c->lim.max_values)
        return excess(c, GLM_JSON_TOO_MANY_VALUES);
    if (members && ++*members > c->lim.max_members && c->lim.max_members)
        return excess(c, GLM_JSON_TOO_MANY_MEMBERS);
    return GLM_OK;
}

static int count_string(counter *c, size_t n)
{
    c->out->string_bytes += n;
    if (c->lim.max_string_bytes && c->out->string_bytes > c->lim.max_string_bytes)
        return excess(c, GLM_JSON_TOO_MANY_STRING_BYTES);
    return GLM_OK;
}

/* Opens a container at nesting `depth` (the outermost is 1). */
static int count_open(counter *c, int depth)
{
    if (depth > c->out->depth)
        c->out->depth = depth;
    if (depth > c->lim.max_depth)
        return excess(c, GLM_JSON_TOO_DEEP);
    return GLM_OK;
}

/* ---- text ---------------------------------------------------------------------------- */

/* Where a number or a literal ends. */
static int structural(char ch)
{
    switch (ch) {
    case ' ': case '\t': case '\n': case '\r': case ':': case ',': case '"': case '{': case '}': case '[': case ']':
        return 1;
    default:
        return 0;
    }
}

int glm_json_scan(const char *text, size_t len, const glm_json_limits *lim, glm_json_shape *out)
{
    counter c;
    counter_init(&c, lim, out);
    struct {
        size_t members;
        int object;
    } st[STACK];
    int d = 0;           /* containers open */
    int expect_key = 0;  /* in an object, after '{' or ',' */
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)text[i];
        switch (ch) {
        case ' ': case '\t': case '\n': case '\r': case ':':
            i++;
            continue;
        case ',':
            expect_key = d > 0 && st[d - 1].object;
            i++;
            continue;
        case '"': { /* to the next quote not escaped by an odd run of backslashes */
            size_t j = i + 1;
            for (;;) {
                const char *q = j < len ? memchr(text + j, '"', len - j) : NULL;
                if (!q) {
                    j = len;
                    break;
                }
                j = (size_t)(q - text);
                size_t k = 0;
                while (j - k > i + 1 && text[j - k - 1] == '\\')
                    k++;
                if (k % 2 == 0)
                    break;
                j++;
            }
            size_t n = j - (i + 1);
            if (expect_key && d == 1 && c.root_object)
                root_member(&c, text + i + 1, n);
            if ((!expect_key && count_value(&c, d ? &st[d - 1].members : NULL, d) != GLM_OK) ||
                count_string(&c, n) != GLM_OK)
                return GLM_ERR;
            expect_key = 0;
            i = j + 1;
            continue;
        }
        case '{': case '[':
            if (count_value(&c, d ? &st[d - 1].members : NULL, d) != GLM_OK || count_open(&c, d + 1) != GLM_OK)
                return GLM_ERR;
            if (d == 0)
                c.root_object = ch == '{';
            st[d].members = 0;
            st[d].object = ch == '{';
            d++;
            expect_key = ch == '{';
            i++;
            continue;
        case '}': case ']':
            if (d > 0)
                d--;
            expect_key = 0;
            i++;
            continue;
        default: /* a number, a literal, or bytes jansson will refuse: one value */
            if (count_value(&c, d ? &st[d - 1].members : NULL, d) != GLM_OK)
                return GLM_ERR;
            do
                i++;
            while (i < len && !structural(text[i]));
            expect_key = 0;
            continue;
        }
    }
    return GLM_OK;
}

/* ---- trees --------------------------------------------------------------------------- */

static int walk(counter *c, const json_t *v, size_t *members, int depth)
{
    if (count_value(c, members, depth) != GLM_OK)
        return GLM_ERR;
    if (json_is_string(v))
        return count_string(c, json_string_length(v));
    if (!json_is_object(v) && !json_is_array(v))
        return GLM_OK;
    if (count_open(c, depth + 1) != GLM_OK)
        return GLM_ERR;
    size_t n = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (walk(c, json_array_get(v, i), &n, depth + 1) != GLM_OK)
                return GLM_ERR;
        return GLM_OK;
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        size_t kl = json_object_iter_key_len(json_object_key_to_iter(k));
        if (depth == 0)
            root_member(c, k, kl);
        if (count_string(c, kl) != GLM_OK || walk(c, x, &n, depth + 1) != GLM_OK)
            return GLM_ERR;
    }
    return GLM_OK;
}

int glm_json_measure(const json_t *v, const glm_json_limits *lim, glm_json_shape *out)
{
    counter c;
    counter_init(&c, lim, out);
    if (!v)
        return GLM_OK;
    c.root_object = json_is_object(v);
    return walk(&c, v, NULL, 0);
}

int glm_json_shape_error(const glm_json_shape *s, const glm_json_limits *lim, const char *what, char *err,
                         size_t errlen)
{
    char where[96] = "";
    if (s->field[0])
        snprintf(where, sizeof where, s->excess == GLM_JSON_TOO_MANY_VALUES ? " (most of them in '%s')" : " (in '%s')",
                 s->field);
    switch (s->excess) {
    case GLM_JSON_TOO_DEEP:
        return glm_err(err, errlen, "%s nests JSON deeper than %d levels%s", what,
                       lim->max_depth > 0 && lim->max_depth < STACK ? lim->max_depth : STACK, where);
    case GLM_JSON_TOO_MANY_VALUES:
        return glm_err(err, errlen, "%s holds more than %zu JSON values%s", what, lim->max_values, where);
    case GLM_JSON_TOO_MANY_MEMBERS:
        return glm_err(err, errlen, "%s holds an array or object of more than %zu members%s", what,
                       lim->max_members, where);
    case GLM_JSON_TOO_MANY_STRING_BYTES:
        return glm_err(err, errlen, "%s holds more than %zu bytes of strings%s", what, lim->max_string_bytes,
                       where);
    default:
        return glm_err(err, errlen, "%s is within its limits", what);
    }
}
