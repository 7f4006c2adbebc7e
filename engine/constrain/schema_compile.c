/*
 * schema_compile.c - a JSON Schema document -> a graph of snodes (one per
 * subschema), checking the supported subset and the limits
 * (schema_grammar.h); $ref names resolve to the snodes of the document's root
 * or its $defs entries, so recursion is a cycle. In lenient mode (tools not
 * marked strict) validation keywords the generator cannot express are
 * skipped instead of refused.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/schema_internal.h"
#include "core/buf.h"
#include "core/util.h"

/* ---- snodes ------------------------------------------------------------------- */

void sg_arena_free(arena *a)
{
    for (int i = 0; i < a->n; i++) {
        snode *s = a->v[i];
        free(s->path);
        free(s->keys);
        free(s->props);
        json_decref(s->key_index);
        free(s->req);
        free(s->prefix);
        free(s->all);
        free(s->unions[0]);
        free(s->unions[1]);
        free(s);
    }
    free(a->v);
    memset(a, 0, sizeof *a);
}

static int in_list(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(k, *list) == 0)
            return 1;
    return 0;
}

/* Keywords that constrain values in ways the generator cannot follow. Every
 * other keyword is either handled or an annotation (title, description,
 * format, ... and anything JSON Schema does not define), which is ignored. */
static const char *const UNSUPPORTED[] = {
    "pattern", "multipleOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
    "unevaluatedProperties", "unevaluatedItems", "uniqueItems", "contains", "minContains",
    "maxContains", "dependentRequired", "dependentSchemas", "dependencies", "minProperties",
    "maxProperties", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", NULL};

static unsigned type_bits(const char *t)
{
    static const struct {
        const char *name;
        unsigned bits;
    } map[] = {{"null", T_NULL},     {"boolean", T_BOOL}, {"object", T_OBJ},
               {"array", T_ARR},     {"string", T_STR},   {"integer", T_INT},
               {"number", T_INT | T_FRAC}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(t, map[i].name) == 0)
            return map[i].bits;
    return 0;
}

/* path + suffix, truncated to fit. */
void sg_sub_path(char *out, size_t cap, const char *path, const char *fmt, ...)
{
    int k = snprintf(out, cap, "%s", path);
    if (k < 0 || (size_t)k >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + k, cap - (size_t)k, fmt, ap);
    va_end(ap);
}

static snode *compile(doc *d, const json_t *s, const char *path, int depth);

/* s[kw], when present, into *out: a count 0..MAX_COUNT. */
static int count_kw(doc *d, const json_t *s, const char *path, const char *kw, int *out)
{
    const json_t *v = json_object_get(s, kw);
    if (!v)
        return GLM_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return glm_err(d->err, d->errlen, "%s.%s: must be a non-negative integer", path, kw);
    if (json_integer_value(v) > MAX_COUNT)
        return glm_err(d->err, d->errlen, "%s.%s: over %d is not supported", path, kw, MAX_COUNT);
    *out = (int)json_integer_value(v);
    return GLM_OK;
}

/* A list of subschemas ("anyOf", "prefixItems", ...): a non-empty array unless
 * `may_be_empty`. */
static int schema_list(doc *d, const json_t *v, const char *path, const char *kw, int may_be_empty,
                       snode ***out, int *n, int depth)
{
    if (!json_is_array(v) || (!may_be_empty && json_array_size(v) == 0))
        return glm_err(d->err, d->errlen, "%s.%s: must be a%s array of schemas", path, kw,
                       may_be_empty ? "n" : " non-empty");
    if (json_array_size(v) > MAX_NODES)
        return glm_err(d->err, d->errlen, "%s.%s: too many schemas", path, kw);
    size_t m = json_array_size(v);
    *out = glm_calloc(m ? m : 1, sizeof **out);
    *n = (int)m;
    for (size_t i = 0; i < m; i++) {
        char p[PATH_CAP];
        sg_sub_path(p, sizeof p, path, ".%s[%zu]", kw, i);
        if (!((*out)[i] = compile(d, json_array_get(v, i), p, depth + 1)))
            return GLM_ERR;
    }
    return GLM_OK;
}

/* An integer bound: `v` rounded inward (up for a lower bound), exclusive ones
 * moved by one, clamped just outside +-INT_CAP so that the range stays exact. */
static int bound_kw(doc *d, const json_t *v, const char *path, const char *kw, int lower,
                    int exclusive, long long *out)
{
    if (!json_is_number(v))
        return glm_err(d->err, d->errlen, "%s.%s: must be a number", path, kw);
    long long r;
    int exact = 1; /* the bound itself is an integer */
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        r = i > INT_CAP ? INT_CAP + 1 : i < -INT_CAP ? -INT_CAP - 1 : (long long)i;
    } else {
        double x = json_real_value(v); /* |x| < 1e16: the conversion is exact */
        if (x >= 1e16)
            r = INT_CAP + 1;
        else if (x <= -1e16)
            r = -INT_CAP - 1;
        else {
            double f = lower ? ceil(x) : floor(x);
            r = (long long)f;
            exact = f == x;
        }
    }
    if (exclusive && exact)
        r += lower ? 1 : -1;
    *out = r;
    return GLM_OK;
}

static int compile_bounds(doc *d, snode *n, const json_t *s, const char *path)
{
    static const char *const kws[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (int k = 0; k < 4; k++) {
        const json_t *v = json_object_get(s, kws[k]);
        if (!v)
            continue;
        if ((n->types & T_FRAC) && d->lenient)
            return GLM_OK; /* bounds on numbers are not enforced */
        if (n->types & T_FRAC)
            return glm_err(d->err, d->errlen,
                           "%s: '%s' is only supported with \"type\": \"integer\"", path, kws[k]);
        int lower = k % 2 == 0;
        if (json_is_boolean(v)) { /* draft 4: exclusiveMinimum: true makes minimum exclusive */
            if (k < 2)
                return glm_err(d->err, d->errlen, "%s.%s: must be a number", path, kws[k]);
            continue;
        }
        int excl = k >= 2;
        if (k < 2 && json_is_true(json_object_get(s, lower ? "exclusiveMinimum" : "exclusiveMaximum")))
            excl = 1;
        long long b = 0;
        if (bound_kw(d, v, path, kws[k], lower, excl, &b) != GLM_OK)
            return GLM_ERR;
        if (lower) {
            if (!n->has_lo || b > n->lo)
                n->lo = b;
            n->has_lo = 1;
        } else {
            if (!n->has_hi || b < n->hi)
                n->hi = b;
            n->has_hi = 1;
        }
    }
    return GLM_OK;
}

int sg_compile_type(doc *d, snode *n, const json_t *t, const char *path)
{
    if (json_is_string(t)) {
        if (!(n->types = type_bits(json_string_value(t))))
            return glm_err(d->err, d->errlen, "%s.type: unknown type '%.64s'", path,
                           json_string_value(t));
        return GLM_OK;
    }
    if (!json_is_array(t) || json_array_size(t) == 0)
        return glm_err(d->err, d->errlen, "%s.type: must be a type name or a non-empty list of them",
                       path);
    n->types = 0;
    for (size_t i = 0; i < json_array_size(t); i++) {
        const json_t *e = json_array_get(t, i);
        unsigned b = json_is_string(e) ? type_bits(json_string_value(e)) : 0;
        if (!b)
            return json_is_string(e)
                       ? glm_err(d->err, d->errlen, "%s.type[%zu]: unknown type '%.64s'", path, i,
                                 json_string_value(e))
                       : glm_err(d->err, d->errlen, "%s.type[%zu]: must be a type name", path, i);
        n->types |= b;
    }
    return GLM_OK;
}

static int compile_object_kws(doc *d, snode *n, const json_t *s, const char *path, int depth)
{
    const json_t *props = json_object_get(s, "properties");
    if (props) {
        if (!json_is_object(props))
            return glm_err(d->err, d->errlen, "%s.properties: must be an object", path);
        size_t m = json_object_size(props);
        n->keys = glm_calloc(m ? m : 1, sizeof *n->keys);
        n->props = glm_calloc(m ? m : 1, sizeof *n->props);
        n->key_index = json_object();
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)props, k, v)
        {
            char p[PATH_CAP];
            sg_sub_path(p, sizeof p, path, ".properties.%s", k);
            n->keys[n->n_props] = k;
            json_object_set_new(n->key_index, k, json_integer(n->n_props));
            if (!(n->props[n->n_props++] = compile(d, v, p, depth + 1)))
                return GLM_ERR;
        }
    }
    const json_t *req = json_object_get(s, "required");
    if (req) {
        if (!json_is_array(req))
            return glm_err(d->err, d->errlen, "%s.required: must be an array of strings", path);
        n->req = glm_calloc(json_array_size(req) + 1, sizeof *n->req);
        for (size_t i = 0; i < json_array_size(req); i++) {
            const json_t *e = json_array_get(req, i);
            if (!json_is_string(e))
                return glm_err(d->err, d->errlen, "%s.required[%zu]: must be a string", path, i);
            n->req[n->n_req++] = json_string_value(e);
        }
    }
    const json_t *ap = json_object_get(s, "additionalProperties");
    if (ap) {
        if (json_is_false(ap))
            n->addl = ADDL_FALSE;
        else if (!json_is_true(ap)) {
            char p[PATH_CAP];
            sg_sub_path(p, sizeof p, path, ".additionalProperties");
            if (!(n->addl_schema = compile(d, ap, p, depth + 1)))
                return GLM_ERR;
            n->addl = ADDL_SCHEMA;
        }
    }
    return GLM_OK;
}

static int compile_array_kws(doc *d, snode *n, const json_t *s, const char *path, int depth)
{
    const json_t *items = json_object_get(s, "items"), *pre = json_object_get(s, "prefixItems");
    char p[PATH_CAP];
    if (json_is_array(items)) { /* draft 7 tuple: items [..] + additionalItems */
        if (pre)
            return glm_err(d->err, d->errlen, "%s: 'prefixItems' and a list in 'items' together",
                           path);
        if (schema_list(d, items, path, "items", 1, &n->prefix, &n->n_prefix, depth) != GLM_OK)
            return GLM_ERR;
        const json_t *more = json_object_get(s, "additionalItems");
        if (more) {
            sg_sub_path(p, sizeof p, path, ".additionalItems");
            if (!(n->items = compile(d, more, p, depth + 1)))
                return GLM_ERR;
        }
    } else {
        if (pre &&
            schema_list(d, pre, path, "prefixItems", 1, &n->prefix, &n->n_prefix, depth) != GLM_OK)
            return GLM_ERR;
        if (items) {
            sg_sub_path(p, sizeof p, path, ".items");
            if (!(n->items = compile(d, items, p, depth + 1)))
                return GLM_ERR;
        }
    }
    if (count_kw(d, s, path, "minItems", &n->min_items) != GLM_OK ||
        count_kw(d, s, path, "maxItems", &n->max_items) != GLM_OK)
        return GLM_ERR;
    return GLM_OK;
}

static int compile_defs(doc *d, const json_t *s, const char *path, int depth)
{
    static const char *const kinds[] = {"$defs", "definitions"};
    for (int k = 0; k < 2; k++) {
        const json_t *defs = json_object_get(s, kinds[k]);
        if (!defs)
            continue;
        if (depth > 0)
            return glm_err(d->err, d->errlen, "%s: '%s' is only supported at the top level", path,
                           kinds[k]);
        if (!json_is_object(defs))
            return glm_err(d->err, d->errlen, "%s.%s: must be an object", path, kinds[k]);
        const char *name;
        const json_t *v;
        json_object_foreach((json_t *)defs, name, v)
        {
            char p[PATH_CAP];
            sg_sub_path(p, sizeof p, path, ".%s.%s", kinds[k], name);
            snode *dn = compile(d, v, p, depth + 1);
            if (!dn)
                return GLM_ERR;
            json_t *names = json_object_get(d->def_nodes, kinds[k]);
            if (!names) {
                names = json_object();
                json_object_set_new(d->def_nodes, kinds[k], names);
            }
            json_object_set_new(names, name, json_integer(dn->id));
        }
    }
    return GLM_OK;
}

static snode *compile(doc *d, const json_t *s, const char *path, int depth)
{
    if (depth > MAX_DEPTH) {
        glm_err(d->err, d->errlen, "%s: schema nests deeper than %d levels", path, MAX_DEPTH);
        return NULL;
    }
    if (d->a->n >= MAX_NODES) {
        glm_err(d->err, d->errlen, "%s: schema has more than %d subschemas", path, MAX_NODES);
        return NULL;
    }
    if (!json_is_object(s) && !json_is_boolean(s)) {
        glm_err(d->err, d->errlen, "%s: a schema must be an object or a boolean", path);
        return NULL;
    }
    snode *n = glm_calloc(1, sizeof *n);
    if (d->a->n == d->a->cap) {
        d->a->cap = d->a->cap ? 2 * d->a->cap : 64;
        d->a->v = glm_realloc(d->a->v, (size_t)d->a->cap * sizeof *d->a->v);
    }
    n->id = d->a->n;
    d->a->v[d->a->n++] = n;
    n->path = glm_strdup(path);
    n->types = T_ALL;
    n->max_len = -1;
    n->max_items = -1;
    if (json_is_boolean(s)) {
        n->is_false = json_is_false(s);
        return n;
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)s, k, v)
    {
        if (in_list(k, UNSUPPORTED) && !d->lenient) {
            glm_err(d->err, d->errlen, "%s: '%s' is not supported", path, k);
            return NULL;
        }
    }
    if ((v = json_object_get(s, "type")) && sg_compile_type(d, n, v, path) != GLM_OK)
        return NULL;
    if ((v = json_object_get(s, "enum"))) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            glm_err(d->err, d->errlen, "%s.enum: must be a non-empty array", path);
            return NULL;
        }
        n->enum_vals = v;
    }
    n->const_val = json_object_get(s, "const");
    if (count_kw(d, s, path, "minLength", &n->min_len) != GLM_OK ||
        count_kw(d, s, path, "maxLength", &n->max_len) != GLM_OK)
        return NULL;
    if (compile_bounds(d, n, s, path) != GLM_OK || compile_object_kws(d, n, s, path, depth) != GLM_OK ||
        compile_array_kws(d, n, s, path, depth) != GLM_OK)
        return NULL;
    static const char *const unions[] = {"anyOf", "oneOf"};
    for (int u = 0; u < 2; u++)
        if ((v = json_object_get(s, unions[u])) &&
            schema_list(d, v, path, unions[u], 0, &n->unions[u], &n->n_union[u], depth) != GLM_OK)
            return NULL;
    if ((v = json_object_get(s, "allOf")) &&
        schema_list(d, v, path, "allOf", 0, &n->all, &n->n_all, depth) != GLM_OK)
        return NULL;
    if ((v = json_object_get(s, "$ref"))) {
        if (!json_is_string(v)) {
            glm_err(d->err, d->errlen, "%s.$ref: must be a string", path);
            return NULL;
        }
        n->ref_str = json_string_value(v);
    }
    if (compile_defs(d, s, path, depth) != GLM_OK)
        return NULL;
    return n;
}

/* Resolves "#", "#/$defs/NAME", "#/definitions/NAME" (JSON pointer ~0 ~1). */
static int resolve_refs(doc *d)
{
    for (int i = d->first; i < d->a->n; i++) {
        snode *n = d->a->v[i];
        if (!n->ref_str)
            continue;
        const char *r = n->ref_str, *name = NULL;
        int kind = -1;
        if (strcmp(r, "#") == 0) {
            n->ref = d->root;
            continue;
        }
        if (strncmp(r, "#/$defs/", 8) == 0)
            kind = 0, name = r + 8;
        else if (strncmp(r, "#/definitions/", 14) == 0)
            kind = 1, name = r + 14;
        if (!name || strchr(name, '/'))
            return glm_err(d->err, d->errlen,
                           "%s.$ref: '%.64s' is not supported (only \"#\", \"#/$defs/NAME\", "
                           "\"#/definitions/NAME\")",
                           n->path, r);
        char dec[PATH_CAP];
        size_t o = 0;
        for (const char *c = name; *c && o + 1 < sizeof dec; c++) {
            if (c[0] == '~' && (c[1] == '0' || c[1] == '1')) {
                dec[o++] = c[1] == '0' ? '~' : '/';
                c++;
            } else
                dec[o++] = *c;
        }
        dec[o] = 0;
        const json_t *names = json_object_get(d->def_nodes, kind ? "definitions" : "$defs");
        const json_t *idx = json_object_get(names, dec);
        if (!idx)
            return glm_err(d->err, d->errlen, "%s.$ref: '%.64s' names no definition", n->path, r);
        n->ref = d->a->v[json_integer_value(idx)];
    }
    return GLM_OK;
}

/* Compiles one document into a; its root, or NULL with err set. lenient:
 * validation keywords the grammar cannot express are ignored. */
snode *sg_compile_doc(arena *a, const json_t *schema, const char *path, int lenient, char *err,
                          size_t errlen)
{
    doc d = {a, err, errlen, NULL, json_object(), a->n, lenient};
    snode *root = compile(&d, schema, path, 0);
    d.root = root;
    if (root && resolve_refs(&d) != GLM_OK)
        root = NULL;
    json_decref(d.def_nodes);
    return root;
}

