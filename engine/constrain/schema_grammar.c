/*
 * schema_grammar.c - JSON Schema and GLM-5 tool calls -> GBNF text (see
 * schema_grammar.h).
 *
 *  1. compile: the schema JSON becomes a graph of snodes (one per subschema),
 *     checking the supported subset and limits; $ref names resolve to the
 *     snodes of the document's root or $defs entries, so recursion is a cycle.
 *  2. generate: one rule per *conjunction* of snodes. JSON Schema keywords
 *     apply together ($ref + siblings, allOf, a chosen anyOf branch with the
 *     schema around it), so a value position is described by the set of
 *     snodes that all constrain it. A set is closed over $ref and allOf, then
 *     its first unchosen anyOf/oneOf is expanded into one rule per branch;
 *     once every union is chosen, the constraints are merged (types
 *     intersected, bounds tightened, properties and items matched up by
 *     name/position) and the value grammar is written. Rules are memoised by
 *     (mode, set, chosen unions), which is what makes recursive schemas finite.
 *     enum/const values are filtered by a small validator against the whole
 *     set, so type + enum, enum inside allOf, ... come out exact.
 *  3. productivity: each alternative records the rules it cannot do without;
 *     a least fixpoint finds the rules that derive no finite text (a required
 *     property that requires itself). If there are any, generation runs once
 *     more treating them as empty, so that optional members, items and
 *     branches that need them are left out rather than becoming dead ends.
 *
 * Modes: JSON; TJSON (JSON inside a tool-call value: no "</" may appear);
 * RAW (the unquoted text of a string argument); ARGS (a tool's argument list).
 *
 * Apart from the generator: glm_schema_wellformed walks the schema JSON
 * itself (every keyword, no snodes), then resolves the local $refs; and
 * glm_tool_calls_or_content_gbnf joins a tool-call grammar with a content
 * grammar whose rule names it prefixes, reading the GBNF text token by token.
 */
#include "constrain/schema_grammar.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/grammar.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/utf8.h"
#include "core/util.h"

#define MAX_DEPTH 64                 /* schema nesting */
#define MAX_NODES 10000              /* subschemas per grammar */
#define MAX_COUNT 1000               /* minItems/maxItems/minLength/maxLength */
#define MAX_RULES 10000              /* generated rules */
#define MAX_OUT (1u << 20)           /* grammar text, bytes */
#define MAX_GEN_DEPTH 256            /* nested rule generation */
#define MAX_STEPS 10000000L          /* validator steps (enum/const filtering), per grammar */
#define MAX_CONJ 256                 /* subschemas that apply to one value */
#define MAX_FULL 10000               /* steps of the any-raw-text test, per argument */
#define MAX_VDEPTH 512               /* validator recursion */
#define INT_CAP 9999999999999999LL   /* 16 digits: the largest generated integer */
#define KEY_MAX 512                  /* output parser: raw bytes of an argument key */
#define NAME_MAX_BYTES 256           /* output parser: raw bytes of a tool name */

/* JSON types; "number" is INT | FRAC, so intersections come out right. */
enum { T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_STR = 16, T_INT = 32, T_FRAC = 64,
       T_ALL = 127 };
enum { ADDL_ANY, ADDL_FALSE, ADDL_SCHEMA };
enum { G_JSON, G_TJSON, G_RAW, G_ARGS };

/* The output parser's type mask bits (output_parser.c schema_mask). */
/* the output parser's type bits (glm_out_schema_types) */
enum { PM_STR = GLM_OUT_T_STR, PM_NUM = GLM_OUT_T_NUM, PM_BOOL = GLM_OUT_T_BOOL, PM_NULL = GLM_OUT_T_NULL,
       PM_OBJ = GLM_OUT_T_OBJ, PM_ARR = GLM_OUT_T_ARR };

/* Every text buffer here carries the grammar's size limit (core/buf.h): a
 * write past it is dropped and marks the buffer `over`, which fails the
 * grammar once, at the end. */
#define TEXT {.max_len = MAX_OUT - 1}

/* A growable list of ints. */
typedef struct {
    int *v;
    int n, cap;
} ivec;

static void ivec_push(ivec *a, int x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = glm_realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* ---- snodes ------------------------------------------------------------------- */

typedef struct snode snode;
struct snode {
    int id;
    char *path;                /* "schema.properties.x", for messages */
    int is_false;              /* the schema `false` */
    unsigned types;            /* T_* allowed by "type" (T_ALL when absent) */
    const json_t *enum_vals;   /* "enum" array, or NULL */
    const json_t *const_val;   /* "const", or NULL */
    int min_len, max_len;      /* max_len < 0: none */
    int has_lo, has_hi;        /* integer bounds, inclusive, clamped */
    long long lo, hi;
    int n_props;               /* "properties" in order */
    const char **keys;         /* [n_props] */
    snode **props;             /* [n_props] */
    json_t *key_index;         /* key -> index in keys, or NULL */
    int n_req;
    const char **req;          /* [n_req] */
    int addl;                  /* ADDL_* */
    snode *addl_schema;        /* ADDL_SCHEMA */
    int n_prefix;
    snode **prefix;            /* [n_prefix] */
    snode *items;              /* beyond the prefix; NULL: any */
    int min_items, max_items;  /* max_items < 0: none */
    const char *ref_str;       /* "$ref" as written */
    snode *ref;                /* resolved */
    int n_all;
    snode **all;               /* allOf */
    int n_union[2];            /* anyOf, oneOf */
    snode **unions[2];
    unsigned mark;             /* closure epoch */
};

typedef struct {
    snode **v;
    int n, cap;
} arena;

static void arena_free(arena *a)
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

/* One schema document: its root and $defs/definitions, for $ref. */
typedef struct {
    arena *a;
    char *err;
    size_t errlen;
    snode *root;
    json_t *def_nodes; /* {"$defs": {NAME: node id}, "definitions": {...}} */
    int first;         /* id of the document's first node */
    int lenient;       /* unsupported validation keywords are ignored, not errors */
} doc;

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
static void sub_path(char *out, size_t cap, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sub_path(char *out, size_t cap, const char *path, const char *fmt, ...)
{
    int k = snprintf(out, cap, "%s", path);
    if (k < 0 || (size_t)k >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + k, cap - (size_t)k, fmt, ap);
    va_end(ap);
}

#define PATH_CAP 256

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
        sub_path(p, sizeof p, path, ".%s[%zu]", kw, i);
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

static int compile_type(doc *d, snode *n, const json_t *t, const char *path)
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
            sub_path(p, sizeof p, path, ".properties.%s", k);
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
            sub_path(p, sizeof p, path, ".additionalProperties");
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
            sub_path(p, sizeof p, path, ".additionalItems");
            if (!(n->items = compile(d, more, p, depth + 1)))
                return GLM_ERR;
        }
    } else {
        if (pre &&
            schema_list(d, pre, path, "prefixItems", 1, &n->prefix, &n->n_prefix, depth) != GLM_OK)
            return GLM_ERR;
        if (items) {
            sub_path(p, sizeof p, path, ".items");
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
            sub_path(p, sizeof p, path, ".%s.%s", kinds[k], name);
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
    if ((v = json_object_get(s, "type")) && compile_type(d, n, v, path) != GLM_OK)
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
static snode *compile_doc(arena *a, const json_t *schema, const char *path, int lenient, char *err,
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

/* ---- well-formed schemas: every keyword ---------------------------------------------- */

/* A set of JSON values by address (open addressing, at most half full). */
typedef struct {
    const json_t **v;
    size_t n, cap;
} pset;

static size_t pset_slot(const pset *s, const json_t *p)
{
    size_t h = (size_t)glm_mix64((uint64_t)(uintptr_t)p) & (s->cap - 1);
    while (s->v[h] && s->v[h] != p)
        h = (h + 1) & (s->cap - 1);
    return h;
}

static int pset_has(const pset *s, const json_t *p) { return s->cap && s->v[pset_slot(s, p)] == p; }

static void pset_add(pset *s, const json_t *p)
{
    if (2 * (s->n + 1) > s->cap) {
        pset old = *s;
        s->cap = old.cap ? 2 * old.cap : 64;
        s->v = glm_calloc(s->cap, sizeof *s->v);
        s->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.v[i]) {
                s->v[pset_slot(s, old.v[i])] = old.v[i];
                s->n++;
            }
        free(old.v);
    }
    size_t h = pset_slot(s, p);
    if (!s->v[h]) {
        s->v[h] = p;
        s->n++;
    }
}

/* A "$ref", checked once the whole document has been read. */
typedef struct {
    const char *ref;     /* as written */
    char *path;          /* of the schema that holds it */
    const json_t *base;  /* the nearest schema around it with an "$id" (its resource), or NULL */
    char *base_path;
} wref;

typedef struct {
    char *err;
    size_t errlen;
    int nodes;
    const json_t *root;
    pset seen;       /* the values checked as schemas */
    json_t *anchors; /* names of "$anchor", "$dynamicAnchor" and "$id": "...#name" */
    wref *refs;
    int n_refs, cap_refs;
} wfctx;

/* What each keyword's value must be. Keywords not listed are annotations or
 * unknown: any value (glm_schema_check does not read them either). */
enum {
    W_SCHEMA,       /* a schema */
    W_MAP,          /* an object of schemas */
    W_LIST,         /* a non-empty array of schemas */
    W_LIST0,        /* an array of schemas */
    W_ITEMS,        /* a schema, or (draft 7) an array of schemas */
    W_ADDL_ITEMS,   /* a schema, when "items" is an array (a keyword only then) */
    W_TYPE,         /* a type name or a non-empty array of them */
    W_ARRAY,        /* an array */
    W_STRINGS,      /* an array of strings */
    W_DEP_REQUIRED, /* an object of arrays of strings */
    W_DEPENDENCIES, /* an object of schemas or arrays of strings (draft 7) */
    W_COUNT,        /* a non-negative integer (2.0 is one) */
    W_NUMBER,       /* a number */
    W_NUMBER_BOOL,  /* a number, or (draft 4) a boolean */
    W_POSITIVE,     /* a number above 0 */
    W_STRING,       /* a string */
    W_BOOL,         /* a boolean */
    W_REF           /* a string; "#..." must resolve in the document */
};

static const struct {
    const char *kw;
    int kind;
} WF_KEYWORDS[] = {
    {"type", W_TYPE},
    {"enum", W_ARRAY},
    {"minLength", W_COUNT},
    {"maxLength", W_COUNT},
    {"pattern", W_STRING},
    {"minimum", W_NUMBER},
    {"maximum", W_NUMBER},
    {"exclusiveMinimum", W_NUMBER_BOOL},
    {"exclusiveMaximum", W_NUMBER_BOOL},
    {"multipleOf", W_POSITIVE},
    {"properties", W_MAP},
    {"required", W_STRINGS},
    {"additionalProperties", W_SCHEMA},
    {"patternProperties", W_MAP},
    {"propertyNames", W_SCHEMA},
    {"minProperties", W_COUNT},
    {"maxProperties", W_COUNT},
    {"dependentRequired", W_DEP_REQUIRED},
    {"dependentSchemas", W_MAP},
    {"dependencies", W_DEPENDENCIES},
    {"unevaluatedProperties", W_SCHEMA},
    {"items", W_ITEMS},
    {"prefixItems", W_LIST0},
    {"additionalItems", W_ADDL_ITEMS},
    {"minItems", W_COUNT},
    {"maxItems", W_COUNT},
    {"uniqueItems", W_BOOL},
    {"contains", W_SCHEMA},
    {"minContains", W_COUNT},
    {"maxContains", W_COUNT},
    {"unevaluatedItems", W_SCHEMA},
    {"anyOf", W_LIST},
    {"oneOf", W_LIST},
    {"allOf", W_LIST},
    {"not", W_SCHEMA},
    {"if", W_SCHEMA},
    {"then", W_SCHEMA},
    {"else", W_SCHEMA},
    {"$ref", W_REF},
    {"$dynamicRef", W_STRING},
    {"$recursiveRef", W_STRING},
    {"$dynamicAnchor", W_STRING},
    {"$recursiveAnchor", W_BOOL},
    {"$defs", W_MAP},
    {"definitions", W_MAP},
};

static int wf_schema(wfctx *w, const json_t *s, const char *path, int depth, const json_t *base,
                     const char *base_path);

static int wf_count(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) >= 0;
    if (json_is_real(v)) {
        double x = json_real_value(v);
        return x >= 0 && x == floor(x);
    }
    return 0;
}

/* v, at `path`, as an array of strings. */
static int wf_strings(wfctx *w, const json_t *v, const char *path)
{
    if (!json_is_array(v))
        return glm_err(w->err, w->errlen, "%s: must be an array of strings", path);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return glm_err(w->err, w->errlen, "%s[%zu]: must be a string", path, i);
    return GLM_OK;
}

/* path.kw, an array of schemas (non-empty unless may_be_empty). */
static int wf_list(wfctx *w, const json_t *v, const char *path, const char *kw, int may_be_empty,
                   int depth, const json_t *base, const char *base_path)
{
    if (!json_is_array(v) || (!may_be_empty && json_array_size(v) == 0))
        return glm_err(w->err, w->errlen, "%s.%s: must be a%s array of schemas", path, kw,
                       may_be_empty ? "n" : " non-empty");
    for (size_t i = 0; i < json_array_size(v); i++) {
        char p[PATH_CAP];
        sub_path(p, sizeof p, path, ".%s[%zu]", kw, i);
        if (wf_schema(w, json_array_get(v, i), p, depth + 1, base, base_path) != GLM_OK)
            return GLM_ERR;
    }
    return GLM_OK;
}

/* path.kw, an object whose members are schemas (or, with `strings`, arrays of
 * strings; both with `either`). */
static int wf_map(wfctx *w, const json_t *v, const char *path, const char *kw, int strings, int either,
                  int depth, const json_t *base, const char *base_path)
{
    if (!json_is_object(v))
        return glm_err(w->err, w->errlen, "%s.%s: must be an object", path, kw);
    const char *k;
    const json_t *m;
    json_object_foreach((json_t *)v, k, m)
    {
        char p[PATH_CAP];
        sub_path(p, sizeof p, path, ".%s.%s", kw, k);
        int rc = strings && (!either || json_is_array(m))
                     ? wf_strings(w, m, p)
                     : wf_schema(w, m, p, depth + 1, base, base_path);
        if (rc != GLM_OK)
            return GLM_ERR;
    }
    return GLM_OK;
}

static void wf_add_ref(wfctx *w, const char *ref, const char *path, const json_t *base,
                       const char *base_path)
{
    if (w->n_refs == w->cap_refs) {
        w->cap_refs = w->cap_refs ? 2 * w->cap_refs : 16;
        w->refs = glm_realloc(w->refs, (size_t)w->cap_refs * sizeof *w->refs);
    }
    wref *r = &w->refs[w->n_refs++];
    r->ref = ref;
    r->path = glm_strdup(path);
    r->base = base;
    r->base_path = base ? glm_strdup(base_path) : NULL;
}

/* One keyword's value, at `path` (the schema's) + "." + kw. */
static int wf_keyword(wfctx *w, const json_t *s, const char *kw, int kind, const char *path, int depth,
                      const json_t *base, const char *base_path)
{
    const json_t *v = json_object_get(s, kw);
    char p[PATH_CAP];
    sub_path(p, sizeof p, path, ".%s", kw);
    switch (kind) {
    case W_ADDL_ITEMS:
        if (!json_is_array(json_object_get(s, "items")))
            return GLM_OK;
        /* fall through */
    case W_SCHEMA: return wf_schema(w, v, p, depth + 1, base, base_path);
    case W_ITEMS:
        return json_is_array(v) ? wf_list(w, v, path, kw, 1, depth, base, base_path)
                                : wf_schema(w, v, p, depth + 1, base, base_path);
    case W_LIST:
    case W_LIST0: return wf_list(w, v, path, kw, kind == W_LIST0, depth, base, base_path);
    case W_MAP: return wf_map(w, v, path, kw, 0, 0, depth, base, base_path);
    case W_DEP_REQUIRED: return wf_map(w, v, path, kw, 1, 0, depth, base, base_path);
    case W_DEPENDENCIES: return wf_map(w, v, path, kw, 1, 1, depth, base, base_path);
    case W_TYPE: {
        doc d = {.err = w->err, .errlen = w->errlen};
        snode n = {0};
        return compile_type(&d, &n, v, path);
    }
    case W_ARRAY:
        return json_is_array(v) ? GLM_OK : glm_err(w->err, w->errlen, "%s: must be an array", p);
    case W_STRINGS: return wf_strings(w, v, p);
    case W_COUNT:
        return wf_count(v) ? GLM_OK
                           : glm_err(w->err, w->errlen, "%s: must be a non-negative integer", p);
    case W_NUMBER:
    case W_NUMBER_BOOL:
        return json_is_number(v) || (kind == W_NUMBER_BOOL && json_is_boolean(v))
                   ? GLM_OK
                   : glm_err(w->err, w->errlen, "%s: must be a number", p);
    case W_POSITIVE:
        return json_is_number(v) && json_number_value(v) > 0
                   ? GLM_OK
                   : glm_err(w->err, w->errlen, "%s: must be a number greater than 0", p);
    case W_STRING:
        return json_is_string(v) ? GLM_OK : glm_err(w->err, w->errlen, "%s: must be a string", p);
    case W_BOOL:
        return json_is_boolean(v) ? GLM_OK : glm_err(w->err, w->errlen, "%s: must be a boolean", p);
    case W_REF:
        if (!json_is_string(v))
            return glm_err(w->err, w->errlen, "%s: must be a string", p);
        wf_add_ref(w, json_string_value(v), path, base, base_path);
        return GLM_OK;
    }
    return GLM_OK;
}

static int wf_schema(wfctx *w, const json_t *s, const char *path, int depth, const json_t *base,
                     const char *base_path)
{
    if (depth > MAX_DEPTH)
        return glm_err(w->err, w->errlen, "%s: schema nests deeper than %d levels", path, MAX_DEPTH);
    if (w->nodes >= MAX_NODES)
        return glm_err(w->err, w->errlen, "%s: schema has more than %d subschemas", path, MAX_NODES);
    if (!json_is_object(s) && !json_is_boolean(s))
        return glm_err(w->err, w->errlen, "%s: a schema must be an object or a boolean", path);
    w->nodes++;
    pset_add(&w->seen, s);
    if (json_is_boolean(s))
        return GLM_OK;
    /* identifiers: "$id" (draft 4: "id") other than a bare fragment starts a
       resource, which "#/..." references inside may be relative to; a fragment
       that is a name, "$anchor" and "$dynamicAnchor" name this schema */
    static const char *const ids[] = {"$id", "id", "$anchor", "$dynamicAnchor"};
    for (int k = 0; k < 4; k++) {
        const json_t *id = json_object_get(s, ids[k]);
        if (!json_is_string(id))
            continue;
        const char *x = json_string_value(id), *name = x;
        if (k < 2) {
            if (x[0] != '#') {
                base = s;
                base_path = path;
            }
            name = strchr(x, '#');
            name = name && name[1] != '/' ? name + 1 : NULL;
        }
        if (name && *name)
            json_object_set_new(w->anchors, name, json_true());
    }
    for (size_t k = 0; k < sizeof WF_KEYWORDS / sizeof WF_KEYWORDS[0]; k++)
        if (json_object_get(s, WF_KEYWORDS[k].kw) &&
            wf_keyword(w, s, WF_KEYWORDS[k].kw, WF_KEYWORDS[k].kind, path, depth, base, base_path) !=
                GLM_OK)
            return GLM_ERR;
    return GLM_OK;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The value at the JSON pointer `ptr` ("/a/b", a URI fragment after its "#")
 * below start, or NULL. With `pct`, %XX escapes are decoded first (as in a
 * URI); "~0" and "~1" are "~" and "/", another "~" stays as written. path gets
 * start_path + ".a.b", truncated to cap. */
static const json_t *wf_pointer(const json_t *start, const char *ptr, int pct, const char *start_path,
                                char *path, size_t cap)
{
    size_t n = strlen(ptr), m = 0;
    char *s = glm_malloc(n + 1), *tok = glm_malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (pct && ptr[i] == '%') {
            if ((hi = hex_digit(ptr[i + 1])) < 0 || (lo = hex_digit(ptr[i + 2])) < 0) {
                free(s);
                free(tok);
                return NULL;
            }
            s[m++] = (char)(hi << 4 | lo);
            i += 2;
        } else
            s[m++] = ptr[i];
    }
    snprintf(path, cap, "%s", start_path);
    size_t plen = strlen(path), i = 0;
    const json_t *cur = start;
    while (cur && i < m && s[i] == '/') {
        size_t k = 0;
        for (i++; i < m && s[i] != '/'; i++) {
            if (s[i] == '~' && i + 1 < m && (s[i + 1] == '0' || s[i + 1] == '1')) {
                tok[k++] = s[i + 1] == '0' ? '~' : '/';
                i++;
            } else
                tok[k++] = s[i];
        }
        if (json_is_object(cur))
            cur = json_object_getn(cur, tok, k);
        else if (json_is_array(cur)) {
            size_t idx = 0, d = 0;
            while (d < k && d < 18 && tok[d] >= '0' && tok[d] <= '9')
                idx = idx * 10 + (size_t)(tok[d++] - '0');
            cur = k > 0 && d == k && (k == 1 || tok[0] != '0') ? json_array_get(cur, idx) : NULL;
        } else
            cur = NULL;
        if (plen + 1 < cap) {
            int w = snprintf(path + plen, cap - plen, ".%.*s", (int)GLM_MIN(k, cap), tok);
            plen = w < 0 ? cap : GLM_MIN(plen + (size_t)w, cap);
        }
    }
    if (i < m)
        cur = NULL; /* a pointer that does not start with "/" */
    free(s);
    free(tok);
    return cur;
}

/* The "$ref"s: "#/pointer" must reach a schema in its resource or in the
 * document, "#name" an anchor. A value reached that was not checked as a
 * schema (under an unknown keyword) is checked now; once. Other references
 * (another document) are not followed. */
static int wf_refs(wfctx *w, const char *root_path)
{
    for (int pass = 0; pass < 2; pass++) /* pointers (which may add anchors), then names */
        for (int i = 0; i < w->n_refs; i++) {
            const char *ref = w->refs[i].ref, *path = w->refs[i].path;
            if (ref[0] != '#' || ref[1] == 0 || (ref[1] == '/') != (pass == 0))
                continue;
            if (pass == 1) {
                if (json_object_get(w->anchors, ref + 1))
                    continue;
                char dec[PATH_CAP];
                const char *r = ref + 1;
                size_t o = 0;
                for (; *r && o + 1 < sizeof dec; r++) {
                    int hi, lo;
                    if (*r == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0) {
                        dec[o++] = (char)(hi << 4 | lo);
                        r += 2;
                    } else
                        dec[o++] = *r;
                }
                if (!*r && json_object_getn(w->anchors, dec, o))
                    continue;
                return glm_err(w->err, w->errlen, "%s.$ref: '%.64s' points to nothing in the schema",
                               path, ref);
            }
            const json_t *starts[2] = {w->refs[i].base, w->root}, *t = NULL, *start = NULL;
            const char *start_paths[2] = {w->refs[i].base_path, root_path};
            char tp[PATH_CAP];
            for (int b = 0; b < 2 && !t; b++)
                for (int pct = 1; pct >= 0 && starts[b] && !t; pct--)
                    if ((t = wf_pointer(starts[b], ref + 1, pct, start_paths[b], tp, sizeof tp)))
                        start = starts[b];
            if (!t)
                return glm_err(w->err, w->errlen, "%s.$ref: '%.64s' points to nothing in the schema",
                               path, ref);
            if (!json_is_object(t) && !json_is_boolean(t))
                return glm_err(w->err, w->errlen, "%s.$ref: '%.64s' does not point to a schema", path,
                               ref);
            if (!pset_has(&w->seen, t) &&
                wf_schema(w, t, tp, 1, start, start == w->root ? root_path : w->refs[i].base_path) !=
                    GLM_OK)
                return GLM_ERR;
        }
    return GLM_OK;
}

int glm_schema_wellformed(const json_t *schema, char *err, size_t errlen)
{
    wfctx w = {.err = err, .errlen = errlen, .root = schema, .anchors = json_object()};
    int rc = wf_schema(&w, schema, "schema", 0, NULL, NULL);
    if (rc == GLM_OK)
        rc = wf_refs(&w, "schema");
    for (int i = 0; i < w.n_refs; i++) {
        free(w.refs[i].path);
        free(w.refs[i].base_path);
    }
    free(w.refs);
    free(w.seen.v);
    json_decref(w.anchors);
    return rc;
}

/* ---- JSON values: equality, the validator ---------------------------------------- */

static unsigned value_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return T_OBJ;
    case JSON_ARRAY: return T_ARR;
    case JSON_STRING: return T_STR;
    case JSON_INTEGER: return T_INT;
    case JSON_REAL: {
        double x = json_real_value(v);
        return x == floor(x) ? T_INT : T_FRAC;
    }
    case JSON_TRUE:
    case JSON_FALSE: return T_BOOL;
    default: return T_NULL;
    }
}

/* JSON Schema equality: numbers by value (1 == 1.0), objects ignoring order. */
static int json_eq(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            const json_t *w = json_object_get(b, k);
            if (!w || !json_eq(v, w))
                return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

/* Index of property k in s->keys, or -1. */
static int node_key(const snode *s, const char *k)
{
    const json_t *i = s->key_index ? json_object_get(s->key_index, k) : NULL;
    return i ? (int)json_integer_value(i) : -1;
}

typedef struct {
    long steps;          /* shared by every check of one grammar */
    int failed;          /* the budget ran out */
    const json_t *cand;  /* the value being checked, an element of */
    const json_t *src;   /* this enum: membership in it is known */
} vstate;

/* The nodes already being checked against the current value: a $ref cycle that
 * comes back to one of them without descending adds nothing. */
typedef struct vstack {
    const snode *n;
    const struct vstack *up;
} vstack;

static int valid(vstate *vs, const json_t *v, const snode *n, const vstack *up, int depth);

static int valid_child(vstate *vs, const json_t *v, const snode *n, int depth)
{
    return valid(vs, v, n, NULL, depth + 1);
}

static int valid_object(vstate *vs, const json_t *v, const snode *n, int depth)
{
    for (int i = 0; i < n->n_req; i++)
        if (!json_object_get(v, n->req[i]))
            return 0;
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m)
    {
        int i = node_key(n, k);
        const snode *s = i >= 0 ? n->props[i]
                         : n->addl == ADDL_SCHEMA ? n->addl_schema
                                                  : NULL;
        if (!s && n->addl == ADDL_FALSE)
            return 0;
        if (s && !valid_child(vs, m, s, depth))
            return 0;
    }
    return 1;
}

static int valid_array(vstate *vs, const json_t *v, const snode *n, int depth)
{
    size_t m = json_array_size(v);
    if (m < (size_t)n->min_items || (n->max_items >= 0 && m > (size_t)n->max_items))
        return 0;
    for (size_t i = 0; i < m; i++) {
        const snode *s = i < (size_t)n->n_prefix ? n->prefix[i] : n->items;
        if (s && !valid_child(vs, json_array_get(v, i), s, depth))
            return 0;
    }
    return 1;
}

static int valid(vstate *vs, const json_t *v, const snode *n, const vstack *up, int depth)
{
    if (vs->failed || ++vs->steps > MAX_STEPS || depth > MAX_VDEPTH) {
        vs->failed = 1;
        return 0;
    }
    for (const vstack *s = up; s; s = s->up)
        if (s->n == n)
            return 1;
    vstack here = {n, up};
    unsigned t = value_type(v);
    if (n->is_false || !(n->types & t))
        return 0;
    if (n->enum_vals && !(v == vs->cand && n->enum_vals == vs->src)) {
        vs->steps += (long)json_array_size(n->enum_vals);
        size_t i = 0;
        while (i < json_array_size(n->enum_vals) && !json_eq(v, json_array_get(n->enum_vals, i)))
            i++;
        if (i == json_array_size(n->enum_vals))
            return 0;
    }
    if (n->const_val && !json_eq(v, n->const_val))
        return 0;
    if (t == T_STR) {
        size_t len = glm_utf8_count(json_string_value(v), json_string_length(v));
        if (len < (size_t)n->min_len || (n->max_len >= 0 && len > (size_t)n->max_len))
            return 0;
    }
    if (t == T_INT) {
        double x = json_number_value(v);
        if ((n->has_lo && x < (double)n->lo) || (n->has_hi && x > (double)n->hi))
            return 0;
        if (json_is_integer(v) && ((n->has_lo && json_integer_value(v) < n->lo) ||
                                   (n->has_hi && json_integer_value(v) > n->hi)))
            return 0;
    }
    if (t == T_OBJ && !valid_object(vs, v, n, depth))
        return 0;
    if (t == T_ARR && !valid_array(vs, v, n, depth))
        return 0;
    if (n->ref && !valid(vs, v, n->ref, &here, depth + 1))
        return 0;
    for (int i = 0; i < n->n_all; i++)
        if (!valid(vs, v, n->all[i], &here, depth + 1))
            return 0;
    for (int u = 0; u < 2; u++) {
        if (!n->n_union[u])
            continue;
        int i = 0;
        while (i < n->n_union[u] && !valid(vs, v, n->unions[u][i], &here, depth + 1))
            i++;
        if (i == n->n_union[u])
            return 0;
    }
    return 1;
}

/* ---- GBNF text ---------------------------------------------------------------- */

/* A GBNF string literal of the bytes s[0..n): quotes, backslashes and control
 * characters escaped, UTF-8 kept. */
static void lit(glm_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    glm_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            glm_buf_put(b, e, 2);
        } else if (c == '\n')
            glm_buf_puts(b, "\\n");
        else if (c == '\r')
            glm_buf_puts(b, "\\r");
        else if (c == '\t')
            glm_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7F) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            glm_buf_put(b, e, 4);
        } else
            glm_buf_put(b, (const char *)&c, 1);
    }
    glm_buf_put(b, "\"", 1);
}

static void lits(glm_buf *b, const char *s) { lit(b, s, strlen(s)); }

/* The GBNF literal of s as a JSON string. */
static void lit_json_string(glm_buf *b, const char *s, size_t n, int tool)
{
    glm_buf t = TEXT;
    glm_buf_put(&t, "\"", 1);
    /* minimal escapes; with `tool`, "</" is written "<\/" */
    glm_buf_json_escape(&t, s, n, tool ? GLM_JSON_NO_ETAG : 0);
    glm_buf_put(&t, "\"", 1);
    if (t.over)
        b->over = 1;
    else
        lit(b, t.p, t.len);
    glm_buf_free(&t);
}

/* Repetition suffix for {lo,hi} (hi < 0: unbounded). */
static void rep(glm_buf *b, int lo, int hi)
{
    if (lo == 0 && hi < 0)
        glm_buf_puts(b, "*");
    else if (lo == 1 && hi < 0)
        glm_buf_puts(b, "+");
    else if (lo == 0 && hi == 1)
        glm_buf_puts(b, "?");
    else if (hi < 0)
        glm_buf_printf(b, "{%d,}", lo);
    else if (lo == hi)
        glm_buf_printf(b, "{%d}", lo);
    else
        glm_buf_printf(b, "{%d,%d}", lo, hi);
}

/* The right-hand side of a rule that matches nothing: an empty character class. */
#define NEVER "[^\\x00-\\U0010FFFF]"

/* Shared fixed rules, written once at the end when used. */
enum {
    F_WS = 1 << 0, F_ESC = 1 << 1, F_JCHAR = 1 << 2, F_JSTRING = 1 << 3, F_JINT = 1 << 4,
    F_JNUMBER = 1 << 5, F_JVALUE = 1 << 6, F_JOBJECT = 1 << 7, F_JARRAY = 1 << 8,
    F_TCHAR = 1 << 9, F_TSTRING = 1 << 10, F_TVALUE = 1 << 11, F_TOBJECT = 1 << 12,
    F_TARRAY = 1 << 13, F_RAWA = 1 << 14, F_RAWB = 1 << 15, F_NL = 1 << 16, F_COUNT = 17
};

static const struct {
    const char *text;
    unsigned deps;
} FIXED[F_COUNT] = {
    {"ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n", 0},
    /* \u escapes: a BMP non-surrogate, or a high + low surrogate pair */
    {"jesc ::= \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] "
     "[0-9a-fA-F]{2} | [dD] [89abAB] [0-9a-fA-F]{2} \"\\\\u\" [dD] [c-fC-F] [0-9a-fA-F]{2} ) )\n",
     0},
    {"jchar ::= [^\"\\\\\\x00-\\x1F] | jesc\n", F_ESC},
    {"jstring ::= \"\\\"\" jchar* \"\\\"\"\n", F_JCHAR},
    {"jint ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n", 0},
    {"jnumber ::= jint ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?\n", F_JINT},
    {"jvalue ::= jobject | jarray | jstring | jnumber | \"true\" | \"false\" | \"null\"\n",
     F_JOBJECT | F_JARRAY | F_JSTRING | F_JNUMBER},
    {"jobject ::= \"{\" ws ( jstring ws \":\" ws jvalue ( ws \",\" ws jstring ws \":\" ws jvalue )* "
     "ws )? \"}\"\n",
     F_WS | F_JSTRING | F_JVALUE},
    {"jarray ::= \"[\" ws ( jvalue ( ws \",\" ws jvalue )* ws )? \"]\"\n", F_WS | F_JVALUE},
    /* tool-call JSON: a string never holds "</" (a run of "<" is followed by
       anything but "/"); tchar, for length-bounded strings, has no "<" at all */
    {"tchar ::= [^\"\\\\\\x00-\\x1F<] | jesc\n", F_ESC},
    {"tstring ::= \"\\\"\" ( tchar | \"<\"+ ( [^\"\\\\\\x00-\\x1F</] | jesc ) )* \"<\"* \"\\\"\"\n",
     F_TCHAR},
    {"tvalue ::= tobject | tarray | tstring | jnumber | \"true\" | \"false\" | \"null\"\n",
     F_TOBJECT | F_TARRAY | F_TSTRING | F_JNUMBER},
    {"tobject ::= \"{\" ws ( tstring ws \":\" ws tvalue ( ws \",\" ws tstring ws \":\" ws tvalue )* "
     "ws )? \"}\"\n",
     F_WS | F_TSTRING | F_TVALUE},
    {"tarray ::= \"[\" ws ( tvalue ( ws \",\" ws tvalue )* ws )? \"]\"\n", F_WS | F_TVALUE},
    /* raw text without "</" (and without NUL); raw-b: the same after a "<" */
    {"raw-a ::= ( [^<\\x00] | \"<\"+ [^</\\x00] )* \"<\"*\n", 0},
    {"raw-b ::= \"<\"* ( [^</\\x00] raw-a )?\n", F_RAWA},
    {"nl ::= \"\\n\"?\n", 0},
};

/* ---- generation -------------------------------------------------------------------- */

typedef struct {
    arena nodes;
    glm_buf out;            /* generated rules */
    json_t *memo;       /* key -> rule index (-1 once known empty) */
    char **names;       /* [n_rules] */
    int n_rules, cap_rules;
    unsigned fixed;     /* F_* used */
    unsigned char *rstate; /* per rule: R_BUSY, R_BUSY_USED (referenced while built), R_DONE */
    vstate vs;
    int full_steps;
    char **bodies;      /* per rule: its right-hand side, NULL when not written */
    size_t body_bytes;  /* their total length */
    char **keys;        /* per rule: its memo key */
    json_t *skip;       /* memo keys of rules known to derive no finite text */
    ivec *needs;        /* per rule: rbuild.needs */
    json_t *name_index; /* rule name -> index */
    json_t *raw_chains; /* "min,max" -> K of the rules qK-aI / qK-bI */
    unsigned epoch;
    int depth;
    int failed;
    char *err;
    size_t errlen;
    /* tool calls */
    const glm_out_tags *tags;
    const json_t *params; /* the current tool's "parameters", for the parser's masks */
    int tool;             /* its index, part of ARGS memo keys */
    const char *root_name; /* of the start rule */
} gctx;

static int fail(gctx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(gctx *g, const char *fmt, ...)
{
    if (!g->failed && g->err && g->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->err, g->errlen, fmt, ap);
        va_end(ap);
    }
    g->failed = 1;
    return GLM_ERR;
}

static const char *use(gctx *g, unsigned f)
{
    static const char *const names[F_COUNT] = {
        "ws", "jesc", "jchar", "jstring", "jint", "jnumber", "jvalue", "jobject", "jarray",
        "tchar", "tstring", "tvalue", "tobject", "tarray", "raw-a", "raw-b", "nl"};
    int i = 0;
    while ((1u << i) != f)
        i++;
    if (!(g->fixed & f)) {
        g->fixed |= f;
        for (int j = 0; j < F_COUNT; j++)
            if (FIXED[i].deps & (1u << j))
                use(g, 1u << j);
    }
    return names[i];
}

/* Records that the alternative being built cannot match without `rule` (a
 * generated rule; the fixed ones always match something). */
static void need(gctx *g, ivec *needs, const char *rule)
{
    const json_t *i = rule ? json_object_get(g->name_index, rule) : NULL;
    if (i)
        ivec_push(needs, (int)json_integer_value(i));
}

/* A conjunction: the snodes that all constrain one value (sorted by id, only
 * those with constraints of their own), and the unions already chosen. */
typedef struct {
    snode **v;
    int n, cap;
    int *res;
    int nres;
} conj;

enum { R_BUSY, R_BUSY_USED, R_DONE };

/* A rule being built: its alternatives, and for each the generated rules it
 * cannot do without (its mandatory references), each list closed by -1. */
typedef struct {
    glm_buf body;
    int nalt;
    ivec needs;
} rbuild;

static void conj_add(conj *c, snode *n)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->v = glm_realloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    c->v[c->n++] = n;
}

static void conj_free(conj *c)
{
    free(c->v);
    free(c->res);
    memset(c, 0, sizeof *c);
}

static int has_constraints(const snode *n)
{
    return n->is_false || n->types != T_ALL || n->enum_vals || n->const_val || n->min_len > 0 ||
           n->max_len >= 0 || n->has_lo || n->has_hi || n->n_props || n->n_req ||
           n->addl != ADDL_ANY || n->n_prefix || n->items || n->min_items || n->max_items >= 0 ||
           n->n_union[0] || n->n_union[1];
}

static int cmp_node(const void *a, const void *b)
{
    const snode *x = *(snode *const *)a, *y = *(snode *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* out = closure of in's nodes + `extra` over $ref and allOf; chosen unions
 * are in's plus `extra_res` (-1: none). */
static void closure(gctx *g, const conj *in, snode *extra, int extra_res, conj *out)
{
    memset(out, 0, sizeof *out);
    conj work = {0};
    g->epoch++;
    for (int i = 0; i < in->n; i++)
        conj_add(&work, in->v[i]);
    if (extra)
        conj_add(&work, extra);
    while (work.n) {
        snode *n = work.v[--work.n];
        if (n->mark == g->epoch)
            continue;
        n->mark = g->epoch;
        if (has_constraints(n))
            conj_add(out, n);
        if (n->ref)
            conj_add(&work, n->ref);
        for (int i = 0; i < n->n_all; i++)
            conj_add(&work, n->all[i]);
    }
    conj_free(&work);
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_node);
    out->res = glm_malloc((size_t)(in->nres + 1) * sizeof *out->res);
    if (in->nres)
        memcpy(out->res, in->res, (size_t)in->nres * sizeof *out->res);
    out->nres = in->nres;
    if (extra_res >= 0)
        out->res[out->nres++] = extra_res;
    if (out->nres > 1)
        qsort(out->res, (size_t)out->nres, sizeof *out->res, cmp_int);
}

static int chosen(const conj *c, int uid)
{
    for (int i = 0; i < c->nres; i++)
        if (c->res[i] == uid)
            return 1;
    return 0;
}

static const char *gen(gctx *g, const conj *in, snode *extra, int extra_res, int mode,
                       const char *hint);

/* The rule for a set of nodes given as an array (a property's or an item's). */
static const char *gen_set(gctx *g, snode **v, int n, int mode, const char *hint)
{
    conj c = {v, n, n, NULL, 0};
    return gen(g, &c, NULL, -1, mode, hint);
}

static unsigned conj_types(const conj *c)
{
    unsigned t = T_ALL;
    for (int i = 0; i < c->n; i++)
        t &= c->v[i]->types;
    return t;
}

/* The enum/const candidates of a conjunction: the first node's list. */
static const json_t *conj_candidates(const conj *c, json_t **owned)
{
    *owned = NULL;
    for (int i = 0; i < c->n; i++) {
        if (c->v[i]->enum_vals)
            return c->v[i]->enum_vals;
        if (c->v[i]->const_val) {
            *owned = json_array();
            json_array_append(*owned, (json_t *)c->v[i]->const_val);
            return *owned;
        }
    }
    return NULL;
}

static int conj_valid(gctx *g, const conj *c, const json_t *v, const json_t *src)
{
    vstate *vs = &g->vs;
    vs->cand = v;
    vs->src = src;
    for (int i = 0; i < c->n; i++)
        if (!valid(vs, v, c->v[i], NULL, 0)) {
            if (vs->failed)
                fail(g, "%s: too much work to check enum/const values", c->v[i]->path);
            return 0;
        }
    return 1;
}

/* The shortest %.17g-style spelling that reads back as x. */
static void real_text(char *out, size_t cap, double x)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, x);
        if (strtod(out, NULL) == x)
            return;
    }
}

/* A JSON value as a GBNF sequence, whitespace allowed between tokens. */
static void lit_value(gctx *g, glm_buf *b, const json_t *v, int tool)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: glm_buf_puts(b, "\"null\""); break;
    case JSON_TRUE: glm_buf_puts(b, "\"true\""); break;
    case JSON_FALSE: glm_buf_puts(b, "\"false\""); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        lits(b, num);
        break;
    case JSON_REAL:
        real_text(num, sizeof num, json_real_value(v));
        lits(b, num);
        break;
    case JSON_STRING:
        lit_json_string(b, json_string_value(v), json_string_length(v), tool);
        break;
    case JSON_ARRAY: {
        const char *ws = use(g, F_WS);
        glm_buf_printf(b, "\"[\" %s ", ws);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                glm_buf_printf(b, " %s \",\" %s ", ws, ws);
            lit_value(g, b, json_array_get(v, i), tool);
            if (i + 1 == json_array_size(v))
                glm_buf_printf(b, " %s", ws);
        }
        glm_buf_puts(b, " \"]\"");
        break;
    }
    case JSON_OBJECT: {
        const char *ws = use(g, F_WS), *k;
        json_t *m;
        size_t i = 0;
        glm_buf_printf(b, "\"{\" %s ", ws);
        json_object_foreach((json_t *)v, k, m)
        {
            if (i++)
                glm_buf_printf(b, " %s \",\" %s ", ws, ws);
            lit_json_string(b, k, strlen(k), tool);
            glm_buf_printf(b, " %s \":\" %s ", ws, ws);
            lit_value(g, b, m, tool);
            if (i == json_object_size(v))
                glm_buf_printf(b, " %s", ws);
        }
        glm_buf_puts(b, " \"}\"");
        break;
    }
    }
}

/* ---- integers in a range --------------------------------------------------------- */

static int all_char(const char *s, int n, char c)
{
    for (int i = 0; i < n; i++)
        if (s[i] != c)
            return 0;
    return 1;
}

static void digit_class(glm_buf *b, char lo, char hi)
{
    if (lo == hi)
        glm_buf_printf(b, "\"%c\"", lo);
    else
        glm_buf_printf(b, "[%c-%c]", lo, hi);
}

/* Digit strings of length L from x to y (x <= y, same length). */
static void digits_range(glm_buf *b, const char *x, const char *y, int L)
{
    static const char nines[] = "9999999999999999", zeros[] = "0000000000000000";
    if (L == 0)
        return;
    if (x[0] == y[0]) {
        glm_buf_printf(b, "\"%c\"", x[0]);
        if (L > 1) {
            glm_buf_puts(b, " ");
            digits_range(b, x + 1, y + 1, L - 1);
        }
        return;
    }
    int x0 = all_char(x + 1, L - 1, '0'), y9 = all_char(y + 1, L - 1, '9'), parts = 0;
    char lo = x0 ? x[0] : (char)(x[0] + 1), hi = y9 ? y[0] : (char)(y[0] - 1);
    glm_buf_puts(b, "( ");
    if (!x0) {
        glm_buf_printf(b, "\"%c\" ", x[0]);
        digits_range(b, x + 1, nines, L - 1);
        parts++;
    }
    if (lo <= hi) {
        if (parts++)
            glm_buf_puts(b, " | ");
        digit_class(b, lo, hi);
        if (L > 1) {
            glm_buf_puts(b, " [0-9]");
            if (L > 2)
                glm_buf_printf(b, "{%d}", L - 1);
        }
    }
    if (!y9) {
        if (parts++)
            glm_buf_puts(b, " | ");
        glm_buf_printf(b, "\"%c\" ", y[0]);
        digits_range(b, zeros, y + 1, L - 1);
    }
    glm_buf_puts(b, " )");
}

/* Canonical decimals from a to z, 0 <= a <= z <= INT_CAP, as one group. */
static void uint_range(glm_buf *b, long long a, long long z)
{
    char sa[24], sz[24];
    int la = snprintf(sa, sizeof sa, "%lld", a), lz = snprintf(sz, sizeof sz, "%lld", z), parts = 0;
    glm_buf_puts(b, "( ");
    for (int L = la; L <= lz; L++) {
        char x[24], y[24];
        if (L == la)
            memcpy(x, sa, (size_t)L + 1);
        else {
            x[0] = '1';
            memset(x + 1, '0', (size_t)L - 1);
            x[L] = 0;
        }
        if (L == lz)
            memcpy(y, sz, (size_t)L + 1);
        else {
            memset(y, '9', (size_t)L);
            y[L] = 0;
        }
        if (parts++)
            glm_buf_puts(b, " | ");
        digits_range(b, x, y, L);
    }
    glm_buf_puts(b, " )");
}

/* Canonical JSON integers from lo to hi (no "-0"), both within +-INT_CAP. */
static void int_range(glm_buf *b, long long lo, long long hi)
{
    int neg = lo < 0, pos = hi >= 0;
    glm_buf_puts(b, "( ");
    if (neg) {
        glm_buf_puts(b, "\"-\" ");
        uint_range(b, hi < 0 ? -hi : 1, -lo);
    }
    if (pos) {
        if (neg)
            glm_buf_puts(b, " | ");
        uint_range(b, lo > 0 ? lo : 0, hi);
    }
    glm_buf_puts(b, " )");
}

/* ---- strings ------------------------------------------------------------------------ */

/* Raw text (no "</", no NUL) of min..max code points (max < 0: no limit).
 * Bounded lengths need a chain of rules qK-aI / qK-bI, shared by every value
 * with the same bounds: aI after I characters not ending in "<", bI after I
 * characters ending in "<". Writes the start into b. */
static void raw_bounded(gctx *g, glm_buf *b, int min, int max)
{
    int last = max >= 0 ? max : min; /* rules for positions 0..last-1 */
    if (max == 0) {
        glm_buf_puts(b, "\"\"");
        return;
    }
    if (last == 0) { /* max < 0, min == 0 */
        glm_buf_puts(b, use(g, F_RAWA));
        return;
    }
    char key[32];
    snprintf(key, sizeof key, "%d,%d", min, max);
    const json_t *known = json_object_get(g->raw_chains, key);
    int q = known ? (int)json_integer_value(known) : (int)json_object_size(g->raw_chains);
    glm_buf_printf(b, "q%d-a0", q);
    if (known)
        return;
    json_object_set_new(g->raw_chains, key, json_integer(q));
    for (int i = 0; i < last; i++) {
        for (int st = 0; st < 2; st++) {
            glm_buf_printf(&g->out, "q%d-%c%d ::= ( %s", q, st ? 'b' : 'a', i, st ? "[^</\\x00]" : "[^<\\x00]");
            if (i + 1 < last)
                glm_buf_printf(&g->out, " q%d-a%d | \"<\" q%d-b%d )", q, i + 1, q, i + 1);
            else if (max >= 0)
                glm_buf_puts(&g->out, " | \"<\" )");
            else
                glm_buf_printf(&g->out, " %s | \"<\" %s )", use(g, F_RAWA), use(g, F_RAWB));
            glm_buf_puts(&g->out, i >= min ? "?\n" : "\n");
        }
    }
}

/* ---- objects ----------------------------------------------------------------------- */

typedef struct {
    const char *key;
    conj set;     /* the schemas of its value */
    int required;
    const char *rule;
} prop;

/* The members an object of conjunction c may have, in order: the declared
 * properties of each node, then its required names, except names that a node
 * with additionalProperties false does not declare. 0 when no object fits (a
 * required name is forbidden). *map gets the additionalProperties schemas
 * (used when nothing is declared), *closed whether some node forbids others. */
static int object_props(const conj *c, prop **out, int *n_out, conj *map, int *closed)
{
    prop *p = NULL;
    int n = 0, cap = 0, ok = 1;
    json_t *index = json_object(); /* key -> index in p */
    *closed = 0;
    memset(map, 0, sizeof *map);
    for (int i = 0; i < c->n; i++)
        *closed |= c->v[i]->addl == ADDL_FALSE;
    for (int i = 0; i < c->n; i++) {
        const snode *s = c->v[i];
        for (int j = 0; j < s->n_props + s->n_req; j++) {
            const char *k = j < s->n_props ? s->keys[j] : s->req[j - s->n_props];
            if (json_object_get(index, k))
                continue;
            int allowed = 1;
            for (int q = 0; q < c->n && allowed; q++)
                if (c->v[q]->addl == ADDL_FALSE && node_key(c->v[q], k) < 0)
                    allowed = 0;
            if (!allowed)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                p = glm_realloc(p, (size_t)cap * sizeof *p);
            }
            memset(&p[n], 0, sizeof p[n]);
            p[n].key = k;
            json_object_set_new(index, k, json_integer(n));
            n++;
        }
        if (s->addl == ADDL_SCHEMA)
            conj_add(map, s->addl_schema);
    }
    for (int i = 0; i < c->n && ok; i++)
        for (int j = 0; j < c->v[i]->n_req && ok; j++) {
            const json_t *k = json_object_get(index, c->v[i]->req[j]);
            if (k)
                p[json_integer_value(k)].required = 1;
            else
                ok = 0;
        }
    json_decref(index);
    for (int k = 0; k < n && ok; k++)
        for (int i = 0; i < c->n; i++) {
            const snode *s = c->v[i];
            int j = node_key(s, p[k].key);
            if (j >= 0)
                conj_add(&p[k].set, s->props[j]);
            else if (s->addl == ADDL_SCHEMA)
                conj_add(&p[k].set, s->addl_schema);
        }
    if (!ok) {
        free(p);
        conj_free(map);
        return 0;
    }
    *out = p;
    *n_out = n;
    return 1;
}

static void props_free(prop *p, int n)
{
    for (int i = 0; i < n; i++)
        conj_free(&p[i].set);
    free(p);
}

static int accepts_mask(gctx *g, const conj *set, unsigned mask);

/* The rule of an argument's value, by what the output parser will make of it. */
static const char *arg_value_rule(gctx *g, prop *pr)
{
    const json_t *props = json_object_get(g->params, "properties");
    const json_t *ps = json_is_object(props) ? json_object_get(props, pr->key) : NULL;
    unsigned mask = ps ? glm_out_schema_types(ps) : 0;
    if (mask == PM_STR)
        return gen_set(g, pr->set.v, pr->set.n, G_RAW, pr->key);
    if (accepts_mask(g, &pr->set, mask))
        return use(g, F_RAWA);
    return gen_set(g, pr->set.v, pr->set.n, G_TJSON, pr->key);
}


/* 1 when s holds the first byte of one of the tags (the parser would stop there). */
static int has_tag_byte(const char *s, const glm_out_tags *tags)
{
    const char *tl[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(tags, tl);
    for (int i = 0; i < GLM_OUT_TAG_COUNT; i++)
        if (strchr(s, tl[i][0]))
            return 1;
    return 0;
}

static int key_ok(gctx *g, const char *k)
{
    size_t n = strlen(k);
    if (n > KEY_MAX)
        return 0;
    if (n && (strchr(" \t\n\r", k[0]) || strchr(" \t\n\r", k[n - 1])))
        return 0;
    return !has_tag_byte(k, g->tags);
}

/* The argument list of a tool call (mode ARGS) as one alternative. */
static int gen_args(gctx *g, const conj *c, glm_buf *alt, ivec *needs)
{
    prop *p;
    int n, closed;
    conj map;
    if (!object_props(c, &p, &n, &map, &closed))
        return 0;
    conj_free(&map);
    int ok = 1, items = 0;
    const char *nl = use(g, F_NL);
    for (int i = 0; i < n && ok && !g->failed; i++) {
        if (!key_ok(g, p[i].key)) {
            fail(g, "%s: argument name '%.64s' cannot be written in a tool call (over %d bytes, "
                    "whitespace at an end, or a tag character)",
                 c->n ? c->v[0]->path : "parameters", p[i].key, KEY_MAX);
            break;
        }
        p[i].rule = arg_value_rule(g, &p[i]);
        if (!p[i].rule && p[i].required)
            ok = 0;
    }
    if (ok && !g->failed) {
        for (int i = 0; i < n; i++) {
            if (!p[i].rule)
                continue;
            if (items++)
                glm_buf_puts(alt, " ");
            if (p[i].required)
                need(g, needs, p[i].rule);
            else
                glm_buf_puts(alt, "( ");
            lits(alt, g->tags->arg_key_start);
            glm_buf_puts(alt, " ");
            lits(alt, p[i].key);
            glm_buf_puts(alt, " ");
            lits(alt, g->tags->arg_key_end);
            glm_buf_printf(alt, " %s ", nl);
            lits(alt, g->tags->arg_value_start);
            glm_buf_printf(alt, " %s ", p[i].rule);
            lits(alt, g->tags->arg_value_end);
            glm_buf_printf(alt, " %s", nl);
            if (!p[i].required)
                glm_buf_puts(alt, " )?");
        }
        if (!items)
            glm_buf_puts(alt, "\"\"");
    }
    props_free(p, n);
    return ok && !g->failed;
}

/* A JSON object of conjunction c (modes JSON/TJSON) as one alternative. */
static int gen_object(gctx *g, const conj *c, int mode, const char *name, glm_buf *alt, ivec *needs)
{
    prop *p;
    int n, closed, tool = mode == G_TJSON;
    conj map;
    if (!object_props(c, &p, &n, &map, &closed))
        return 0;
    const char *ws = use(g, F_WS);
    int ok = 1;
    if (n == 0) {
        if (closed)
            glm_buf_printf(alt, "\"{\" %s \"}\"", ws);
        else if (map.n) {
            const char *v = gen_set(g, map.v, map.n, mode, "value");
            const char *ks = use(g, tool ? F_TSTRING : F_JSTRING);
            if (v)
                glm_buf_printf(alt,
                           "\"{\" %s ( %s %s \":\" %s %s ( %s \",\" %s %s %s \":\" %s %s )* %s )? \"}\"",
                           ws, ks, ws, ws, v, ws, ws, ks, ws, ws, v, ws);
            else
                glm_buf_printf(alt, "\"{\" %s \"}\"", ws);
        } else
            glm_buf_puts(alt, use(g, tool ? F_TOBJECT : F_JOBJECT));
        conj_free(&map);
        free(p);
        return !g->failed;
    }
    conj_free(&map);
    for (int i = 0; i < n && ok && !g->failed; i++) {
        p[i].rule = gen_set(g, p[i].set.v, p[i].set.n, mode, p[i].key);
        if (!p[i].rule && p[i].required)
            ok = 0;
    }
    if (!ok || g->failed) {
        props_free(p, n);
        return 0;
    }
    /* kv[i]: "\"key\"" ws ":" ws VALUE */
    glm_buf *kv = glm_calloc((size_t)n, sizeof *kv);
    for (int i = 0; i < n; i++)
        kv[i].max_len = MAX_OUT - 1;
    int m = 0, first_req = -1;
    for (int i = 0; i < n; i++) {
        if (!p[i].rule)
            continue;
        lit_json_string(&kv[m], p[i].key, strlen(p[i].key), tool);
        glm_buf_printf(&kv[m], " %s \":\" %s %s", ws, ws, p[i].rule);
        p[m].required = p[i].required;
        if (p[i].required)
            need(g, needs, p[i].rule);
        if (p[i].required && first_req < 0)
            first_req = m;
        m++;
    }
    if (m == 0)
        glm_buf_printf(alt, "\"{\" %s \"}\"", ws);
    else if (first_req >= 0) {
        /* optional members before the first required one carry their comma
           after them, the others before them */
        glm_buf_printf(alt, "\"{\" %s", ws);
        for (int i = 0; i < m; i++) {
            if (i < first_req)
                glm_buf_printf(alt, " ( %s %s \",\" %s )?", glm_buf_str(&kv[i]), ws, ws);
            else if (i == first_req)
                glm_buf_printf(alt, " %s", glm_buf_str(&kv[i]));
            else if (p[i].required)
                glm_buf_printf(alt, " %s \",\" %s %s", ws, ws, glm_buf_str(&kv[i]));
            else
                glm_buf_printf(alt, " ( %s \",\" %s %s )?", ws, ws, glm_buf_str(&kv[i]));
        }
        glm_buf_printf(alt, " %s \"}\"", ws);
    } else {
        /* all optional: the first member present, then a chain of optional
           ", member" rules name-rJ for the ones after it */
        for (int j = m - 1; j >= 1; j--) {
            glm_buf_printf(&g->out, "%s-r%d ::= ( %s \",\" %s %s )?", name, j, ws, ws, glm_buf_str(&kv[j]));
            if (j + 1 < m)
                glm_buf_printf(&g->out, " %s-r%d", name, j + 1);
            glm_buf_puts(&g->out, "\n");
        }
        glm_buf_printf(alt, "\"{\" %s ( ( ", ws);
        for (int i = 0; i < m; i++) {
            if (i)
                glm_buf_puts(alt, " | ");
            glm_buf_puts(alt, glm_buf_str(&kv[i]));
            if (i + 1 < m)
                glm_buf_printf(alt, " %s-r%d", name, i + 1);
        }
        glm_buf_printf(alt, " ) %s )? \"}\"", ws);
    }
    for (int i = 0; i < n; i++)
        glm_buf_free(&kv[i]);
    free(kv);
    props_free(p, n);
    return 1;
}

/* ---- arrays ------------------------------------------------------------------------ */

/* A JSON array of conjunction c as one alternative. Items past minItems are
 * optional: the prefix positions through a chain of rules name-pI ("," item
 * I and the rest), the items after the prefix through a repetition. */
static int gen_array(gctx *g, const conj *c, int mode, const char *name, glm_buf *alt, ivec *needs)
{
    int P = 0, min = 0, max = -1;
    for (int i = 0; i < c->n; i++) {
        const snode *s = c->v[i];
        P = GLM_MAX(P, s->n_prefix);
        min = GLM_MAX(min, s->min_items);
        if (s->max_items >= 0 && (max < 0 || s->max_items < max))
            max = s->max_items;
    }
    if (max >= 0 && min > max)
        return 0;
    int K = max >= 0 ? GLM_MIN(P, max) : P; /* prefix positions that may be used */
    const char **el = glm_calloc((size_t)K + 1, sizeof *el), *tail = NULL;
    conj set = {0};
    for (int i = 0; i < K && !g->failed; i++) {
        set.n = 0;
        for (int j = 0; j < c->n; j++) {
            const snode *s = c->v[j];
            if (i < s->n_prefix)
                conj_add(&set, s->prefix[i]);
            else if (s->items)
                conj_add(&set, s->items);
        }
        if (!(el[i] = gen_set(g, set.v, set.n, mode, "item"))) {
            K = i;
            max = i;
        }
    }
    if (!g->failed && (max < 0 || max > P)) {
        set.n = 0;
        for (int j = 0; j < c->n; j++)
            if (c->v[j]->items)
                conj_add(&set, c->v[j]->items);
        if (!(tail = gen_set(g, set.v, set.n, mode, "item")))
            max = P;
    }
    conj_free(&set);
    if (g->failed || (max >= 0 && min > max)) {
        free(el);
        return 0;
    }
    const char *ws = use(g, F_WS);
    if (max == 0) {
        glm_buf_printf(alt, "\"[\" %s \"]\"", ws);
        free(el);
        return 1;
    }
    for (int i = 0; i < GLM_MIN(K, min); i++)
        need(g, needs, el[i]);
    if (min > P)
        need(g, needs, tail);
    /* the items after the prefix */
    glm_buf rest = TEXT;
    if (tail && (max < 0 || max > P)) {
        int lo = GLM_MAX(0, min - P), hi = max < 0 ? -1 : max - P;
        if (P > 0) {
            glm_buf_printf(&rest, " ( %s \",\" %s %s )", ws, ws, tail);
            rep(&rest, lo, hi);
        } else {
            glm_buf_puts(&rest, tail);
            if (hi != 1) {
                glm_buf_printf(&rest, " ( %s \",\" %s %s )", ws, ws, tail);
                rep(&rest, lo > 0 ? lo - 1 : 0, hi < 0 ? -1 : hi - 1);
            }
        }
    }
    /* the prefix: mandatory items, then the optional ones as a chain */
    glm_buf body = TEXT;
    int start = GLM_MAX(min, 1); /* item 0 is optional through the brackets */
    for (int i = 0; i < GLM_MIN(K, start); i++) {
        if (i)
            glm_buf_printf(&body, " %s \",\" %s ", ws, ws);
        glm_buf_puts(&body, el[i]);
    }
    if (start < K) {
        glm_buf_printf(&body, " %s-p%d", name, start);
        for (int i = start; i < K; i++) {
            glm_buf_printf(&g->out, "%s-p%d ::= ( %s \",\" %s %s", name, i, ws, ws, el[i]);
            if (i + 1 < K)
                glm_buf_printf(&g->out, " %s-p%d )?\n", name, i + 1);
            else
                glm_buf_printf(&g->out, "%s )?\n", glm_buf_str(&rest));
        }
    } else
        glm_buf_put(&body, glm_buf_str(&rest), rest.len);
    if (min == 0)
        glm_buf_printf(alt, "\"[\" %s ( %s %s )? \"]\"", ws, glm_buf_str(&body), ws);
    else
        glm_buf_printf(alt, "\"[\" %s %s %s \"]\"", ws, glm_buf_str(&body), ws);
    if (body.over || rest.over)
        alt->over = 1;
    glm_buf_free(&body);
    glm_buf_free(&rest);
    free(el);
    return 1;
}

/* ---- one conjunction with every union chosen -------------------------------------------- */

/* Adds alt (needing the rules in `needs`, may be NULL) to the rule. */
static void add_alt(rbuild *rb, const glm_buf *alt, const ivec *needs)
{
    if (rb->nalt++)
        glm_buf_puts(&rb->body, " | ");
    glm_buf_put(&rb->body, glm_buf_str(alt), alt->len);
    if (alt->over)
        rb->body.over = 1;
    for (int i = 0; needs && i < needs->n; i++)
        ivec_push(&rb->needs, needs->v[i]);
    ivec_push(&rb->needs, -1);
}

static void gen_string(gctx *g, const conj *c, int mode, const char *name, rbuild *rb)
{
    int min = 0, max = -1;
    for (int i = 0; i < c->n; i++) {
        min = GLM_MAX(min, c->v[i]->min_len);
        if (c->v[i]->max_len >= 0 && (max < 0 || c->v[i]->max_len < max))
            max = c->v[i]->max_len;
    }
    if (max >= 0 && min > max)
        return;
    glm_buf alt = TEXT;
    if (mode == G_RAW)
        raw_bounded(g, &alt, min, max);
    else if (min == 0 && max < 0)
        glm_buf_puts(&alt, use(g, mode == G_TJSON ? F_TSTRING : F_JSTRING));
    else {
        glm_buf_printf(&alt, "\"\\\"\" %s", use(g, mode == G_TJSON ? F_TCHAR : F_JCHAR));
        rep(&alt, min, max);
        glm_buf_puts(&alt, " \"\\\"\"");
    }
    add_alt(rb, &alt, NULL);
    glm_buf_free(&alt);
}

/* The alternatives of a conjunction whose unions are all chosen. */
static void gen_merged(gctx *g, const conj *c, int mode, const char *name, rbuild *rb)
{
    unsigned t = conj_types(c);
    json_t *owned;
    const json_t *cand = conj_candidates(c, &owned);
    glm_buf alt = TEXT;
    ivec needs = {0};
    if (mode == G_ARGS) {
        if (cand) {
            fail(g, "%s: 'enum'/'const' on tool parameters is not supported", c->v[0]->path);
        } else if ((t & T_OBJ) && gen_args(g, c, &alt, &needs))
            add_alt(rb, &alt, &needs);
        glm_buf_free(&alt);
        free(needs.v);
        json_decref(owned);
        return;
    }
    if (cand) {
        for (size_t i = 0; i < json_array_size(cand) && !g->failed; i++) {
            const json_t *v = json_array_get(cand, i);
            if (!conj_valid(g, c, v, cand))
                continue;
            glm_buf_clear(&alt);
            if (mode == G_RAW) {
                if (!json_is_string(v))
                    continue;
                const char *s = json_string_value(v);
                size_t n = json_string_length(v);
                if (strlen(s) != n || strstr(s, "</"))
                    continue; /* not expressible as raw text */
                lit(&alt, s, n);
            } else
                lit_value(g, &alt, v, mode == G_TJSON);
            add_alt(rb, &alt, NULL);
        }
        glm_buf_free(&alt);
        json_decref(owned);
        return;
    }
    if (mode == G_RAW) {
        if (t & T_STR)
            gen_string(g, c, mode, name, rb);
        return;
    }
    if (t & T_NULL) {
        glm_buf_puts(&alt, "\"null\"");
        add_alt(rb, &alt, NULL);
    }
    if (t & T_BOOL) {
        glm_buf_clear(&alt);
        glm_buf_puts(&alt, "\"true\" | \"false\"");
        add_alt(rb, &alt, NULL);
    }
    if (t & T_INT) {
        glm_buf_clear(&alt);
        if (t & T_FRAC)
            glm_buf_puts(&alt, use(g, F_JNUMBER));
        else {
            long long lo = -INT_CAP, hi = INT_CAP;
            int bounded = 0;
            for (int i = 0; i < c->n; i++) {
                if (c->v[i]->has_lo && c->v[i]->lo > lo)
                    lo = c->v[i]->lo, bounded = 1;
                if (c->v[i]->has_hi && c->v[i]->hi < hi)
                    hi = c->v[i]->hi, bounded = 1;
            }
            if (!bounded)
                glm_buf_puts(&alt, use(g, F_JINT));
            else if (lo <= hi)
                int_range(&alt, lo, hi);
        }
        if (alt.len)
            add_alt(rb, &alt, NULL);
    }
    if (t & T_STR)
        gen_string(g, c, mode, name, rb);
    if (t & T_ARR) {
        glm_buf_clear(&alt);
        needs.n = 0;
        if (gen_array(g, c, mode, name, &alt, &needs))
            add_alt(rb, &alt, &needs);
    }
    if ((t & T_OBJ) && !g->failed) {
        glm_buf_clear(&alt);
        needs.n = 0;
        if (gen_object(g, c, mode, name, &alt, &needs))
            add_alt(rb, &alt, &needs);
    }
    free(needs.v);
    glm_buf_free(&alt);
}

/* ---- the memoised rule generator ----------------------------------------------------- */

static void rule_name(gctx *g, char *out, size_t cap, const char *hint)
{
    int k = snprintf(out, cap, "c%d", g->n_rules);
    if (hint && *hint && (size_t)k + 2 < cap) {
        out[k++] = '-';
        for (const char *h = hint; *h && (size_t)k + 1 < cap && h - hint < 16; h++) {
            char ch = *h;
            out[k++] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
                           ? ch
                           : '_';
        }
        out[k] = 0;
    }
}

/*
 * The rule for the values (mode) satisfying every node of in + extra, with
 * in's chosen unions + extra_res. Returns its name, or NULL when no value fits
 * (or on failure: check g->failed). Names stay valid until the gctx is freed.
 */
static const char *gen(gctx *g, const conj *in, snode *extra, int extra_res, int mode,
                       const char *hint)
{
    if (g->failed)
        return NULL;
    conj c;
    closure(g, in, extra, extra_res, &c);
    if (c.n == 0 && mode != G_ARGS) {
        conj_free(&c);
        return use(g, mode == G_JSON ? F_JVALUE : mode == G_TJSON ? F_TVALUE : F_RAWA);
    }
    glm_buf key = TEXT;
    glm_buf_printf(&key, "%d.%d:", mode, mode == G_ARGS ? g->tool : 0);
    for (int i = 0; i < c.n; i++)
        glm_buf_printf(&key, "%d,", c.v[i]->id);
    glm_buf_puts(&key, "|");
    for (int i = 0; i < c.nres; i++)
        glm_buf_printf(&key, "%d,", c.res[i]);
    if (json_object_get(g->skip, glm_buf_str(&key))) {
        glm_buf_free(&key);
        conj_free(&c);
        return NULL;
    }
    const json_t *hit = json_object_get(g->memo, glm_buf_str(&key));
    if (hit || key.over) {
        glm_buf_free(&key);
        conj_free(&c);
        if (!hit) {
            fail(g, "schema is too large");
            return NULL;
        }
        json_int_t idx = json_integer_value(hit);
        if (idx >= 0 && g->rstate[idx] == R_BUSY)
            g->rstate[idx] = R_BUSY_USED;
        return idx >= 0 ? g->names[idx] : NULL;
    }
    if (c.n > MAX_CONJ || g->out.over || g->body_bytes + g->out.len > MAX_OUT) {
        fail(g, c.n > MAX_CONJ ? "%s: more than 256 subschemas apply to one value"
                               : "%s: the grammar would be over 1 MB",
             c.n ? c.v[0]->path : "schema");
        glm_buf_free(&key);
        conj_free(&c);
        return NULL;
    }
    if (g->n_rules >= MAX_RULES || g->depth >= MAX_GEN_DEPTH) {
        fail(g, "%s: schema needs %s", c.n ? c.v[0]->path : "schema",
             g->depth >= MAX_GEN_DEPTH ? "too deeply nested grammar rules" : "too many grammar rules");
        glm_buf_free(&key);
        conj_free(&c);
        return NULL;
    }
    if (g->n_rules == g->cap_rules) {
        g->cap_rules = g->cap_rules ? 2 * g->cap_rules : 64;
        g->names = glm_realloc(g->names, (size_t)g->cap_rules * sizeof *g->names);
        g->rstate = glm_realloc(g->rstate, (size_t)g->cap_rules);
        g->bodies = glm_realloc(g->bodies, (size_t)g->cap_rules * sizeof *g->bodies);
        g->keys = glm_realloc(g->keys, (size_t)g->cap_rules * sizeof *g->keys);
        g->needs = glm_realloc(g->needs, (size_t)g->cap_rules * sizeof *g->needs);
    }
    char name[48];
    rule_name(g, name, sizeof name, hint);
    int idx = g->n_rules++;
    g->names[idx] = glm_strdup(name);
    g->rstate[idx] = R_BUSY;
    g->bodies[idx] = NULL;
    memset(&g->needs[idx], 0, sizeof g->needs[idx]);
    json_object_set_new(g->name_index, name, json_integer(idx));
    json_t *slot = json_integer(idx);
    json_object_set_new(g->memo, glm_buf_str(&key), slot);
    g->keys[idx] = key.p;
    key.p = NULL;
    glm_buf_free(&key);

    g->depth++;
    rbuild rb = {TEXT, 0, {0}};
    int dead = 0, u_node = -1, u = 0;
    for (int i = 0; i < c.n; i++)
        dead |= c.v[i]->is_false;
    for (int i = 0; i < c.n && u_node < 0 && !dead; i++)
        for (u = 0; u < 2; u++)
            if (c.v[i]->n_union[u] && !chosen(&c, c.v[i]->id * 2 + u)) {
                u_node = i;
                break;
            }
    if (!dead && u_node >= 0) {
        const snode *s = c.v[u_node];
        const char **seen = glm_calloc((size_t)s->n_union[u], sizeof *seen);
        int n_seen = 0;
        for (int b = 0; b < s->n_union[u] && !g->failed; b++) {
            const char *r = gen(g, &c, s->unions[u][b], s->id * 2 + u, mode, hint);
            int dup = 0;
            for (int k = 0; k < n_seen; k++)
                dup |= r && seen[k] == r;
            if (!r || dup)
                continue;
            seen[n_seen++] = r;
            glm_buf alt = TEXT;
            ivec nd = {0};
            glm_buf_puts(&alt, r);
            need(g, &nd, r);
            add_alt(&rb, &alt, &nd);
            glm_buf_free(&alt);
            free(nd.v);
        }
        free(seen);
    } else if (!dead)
        gen_merged(g, &c, mode, g->names[idx], &rb);
    g->depth--;
    g->body_bytes += rb.body.len;
    if (rb.body.over || g->body_bytes + g->out.len > MAX_OUT)
        fail(g, "the grammar would be over 1 MB");
    /* a rule that matches nothing is kept only when a recursive reference to
       it was made while it was being built */
    if (rb.nalt) {
        g->bodies[idx] = rb.body.p ? rb.body.p : glm_strdup("");
        rb.body.p = NULL;
        g->needs[idx] = rb.needs;
    } else {
        if (g->rstate[idx] == R_BUSY_USED)
            g->bodies[idx] = glm_strdup(NEVER);
        json_integer_set(slot, -1);
        free(rb.needs.v);
    }
    g->rstate[idx] = R_DONE;
    glm_buf_free(&rb.body);
    conj_free(&c);
    return rb.nalt ? g->names[idx] : NULL;
}

/* ---- what the output parser will read ------------------------------------------------ */

/* Types every value of which satisfies the conjunction (an under-estimate). */
static unsigned full_types(gctx *g, const conj *in, snode *extra, int depth)
{
    if (depth > 8 || ++g->full_steps > MAX_FULL)
        return 0;
    conj c;
    closure(g, in, extra, -1, &c);
    unsigned full = T_ALL;
    for (int i = 0; i < c.n; i++) {
        const snode *s = c.v[i];
        unsigned f = s->types;
        if (s->is_false || s->enum_vals || s->const_val)
            f = 0;
        if (s->min_len > 0 || s->max_len >= 0)
            f &= ~(unsigned)T_STR;
        if (s->has_lo || s->has_hi)
            f &= ~(unsigned)T_INT;
        if (s->n_props || s->n_req || s->addl != ADDL_ANY)
            f &= ~(unsigned)T_OBJ;
        if (s->n_prefix || s->items || s->min_items || s->max_items >= 0)
            f &= ~(unsigned)T_ARR;
        full &= f;
    }
    /* the union constraints, each branch on its own */
    for (int i = 0; i < c.n && full; i++)
        for (int u = 0; u < 2; u++) {
            if (!c.v[i]->n_union[u])
                continue;
            unsigned any = 0;
            conj none = {0};
            for (int b = 0; b < c.v[i]->n_union[u]; b++)
                any |= full_types(g, &none, c.v[i]->unions[u][b], depth + 1);
            full &= any;
        }
    conj_free(&c);
    return full;
}

/* 1 when any raw text yields a valid value: every value of every type the
 * parser may produce for `mask` (a raw string included) satisfies `set`. */
static int accepts_mask(gctx *g, const conj *set, unsigned mask)
{
    g->full_steps = 0;
    unsigned full = full_types(g, set, NULL, 0);
    if (mask == 0)
        return full == T_ALL;
    if (!(mask & PM_STR))
        return 0;
    static const struct {
        unsigned pm, t;
    } map[] = {{PM_STR, T_STR},   {PM_NUM, T_INT | T_FRAC}, {PM_BOOL, T_BOOL},
               {PM_NULL, T_NULL}, {PM_OBJ, T_OBJ},          {PM_ARR, T_ARR}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if ((mask & map[i].pm) && (full & map[i].t) != map[i].t)
            return 0;
    return 1;
}

/* ---- public ----------------------------------------------------------------------------- */

static void gctx_init(gctx *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->err = err;
    g->errlen = errlen;
    g->memo = json_object();
    g->name_index = json_object();
    g->skip = json_object();
    g->raw_chains = json_object();
    g->root_name = "root";
    g->out.max_len = MAX_OUT - 1;
}

/* Drops everything generated (the compiled schemas and the skip set stay). */
static void gctx_reset(gctx *g)
{
    glm_buf_free(&g->out);
    g->out.max_len = MAX_OUT - 1;
    json_object_clear(g->memo);
    json_object_clear(g->name_index);
    json_object_clear(g->raw_chains);
    for (int i = 0; i < g->n_rules; i++) {
        free(g->names[i]);
        free(g->bodies[i]);
        free(g->keys[i]);
        free(g->needs[i].v);
    }
    g->n_rules = 0;
    g->body_bytes = 0;
    g->fixed = 0;
    g->vs.steps = 0;
}

static void gctx_free(gctx *g)
{
    gctx_reset(g);
    arena_free(&g->nodes);
    json_decref(g->memo);
    json_decref(g->name_index);
    json_decref(g->skip);
    json_decref(g->raw_chains);
    free(g->names);
    free(g->bodies);
    free(g->keys);
    free(g->needs);
    free(g->rstate);
}

/* Which rules derive some finite text: the least fixpoint of "some
 * alternative has all its needed rules productive". A schema that requires
 * itself ({"properties": {"a": {"$ref": "#"}}, "required": ["a"]}) has none;
 * such rules are written as NEVER, so a matcher cannot wander into them. */
static unsigned char *productive(const gctx *g)
{
    unsigned char *p = glm_calloc((size_t)g->n_rules + 1, 1);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int r = g->n_rules - 1; r >= 0; r--) {
            if (p[r] || !g->bodies[r])
                continue;
            int ok = 1;
            for (int i = 0; i < g->needs[r].n && !p[r]; i++) {
                int x = g->needs[r].v[i];
                if (x < 0) {
                    if (ok)
                        p[r] = 1, changed = 1;
                    ok = 1;
                } else if (!p[x])
                    ok = 0;
            }
        }
    }
    return p;
}

/* After a pass: 1 when some written rule derives no finite text; their keys go
 * to g->skip so that the next pass treats them as matching nothing (an optional
 * member, item or branch that needs one is left out instead of becoming a dead
 * end for the matcher). */
static int mark_unproductive(gctx *g, const unsigned char *prod)
{
    int any = 0;
    for (int i = 0; i < g->n_rules; i++)
        if (g->bodies[i] && !prod[i]) {
            json_object_set_new(g->skip, g->keys[i], json_true());
            any = 1;
        }
    return any;
}

/* 1 when `rule` (a generated or fixed rule name) derives some text. */
static int rule_productive(const gctx *g, const unsigned char *prod, const char *rule)
{
    const json_t *i = json_object_get(g->name_index, rule);
    return !i || prod[json_integer_value(i)];
}

/* "ROOT ::= start\n" (ROOT: g->root_name) + the rules + the fixed rules used,
 * or NULL on failure. */
static char *assemble(gctx *g, const char *root_body, const unsigned char *prod)
{
    glm_buf b = TEXT;
    glm_buf_printf(&b, "%s ::= ", g->root_name);
    glm_buf_puts(&b, root_body);
    glm_buf_puts(&b, "\n");
    glm_buf_put(&b, glm_buf_str(&g->out), g->out.len);
    for (int i = 0; i < g->n_rules; i++) {
        if (!g->bodies[i])
            continue;
        glm_buf_puts(&b, g->names[i]);
        glm_buf_puts(&b, " ::= ");
        glm_buf_puts(&b, prod && prod[i] ? g->bodies[i] : NEVER);
        glm_buf_puts(&b, "\n");
    }
    for (int i = 0; i < F_COUNT; i++)
        if (g->fixed & (1u << i))
            glm_buf_puts(&b, FIXED[i].text);
    if (b.over || g->out.over) {
        glm_buf_free(&b);
        fail(g, "the grammar would be over 1 MB");
        return NULL;
    }
    return b.p;
}

char *glm_schema_gbnf(const json_t *schema, char *err, size_t errlen)
{
    gctx g;
    gctx_init(&g, err, errlen);
    char *text = NULL;
    snode *root = compile_doc(&g.nodes, schema, "schema", 0, err, errlen);
    for (int pass = 0; root && pass < 2 && !g.failed && !text; pass++) {
        conj c = {0};
        const char *r = gen(&g, &c, root, -1, G_JSON, "root");
        unsigned char *prod = productive(&g);
        if (!g.failed && (!r || !rule_productive(&g, prod, r)))
            fail(&g, "schema: no JSON value satisfies the schema");
        if (!g.failed && (pass == 1 || !mark_unproductive(&g, prod)))
            text = assemble(&g, r, prod);
        free(prod);
        if (!text)
            gctx_reset(&g);
    }
    gctx_free(&g);
    return text;
}

int glm_schema_check(const json_t *schema, char *err, size_t errlen)
{
    char *t = glm_schema_gbnf(schema, err, errlen);
    free(t);
    return t ? GLM_OK : GLM_ERR;
}

char *glm_json_object_gbnf(void)
{
    gctx g;
    gctx_init(&g, NULL, 0);
    const char *r = use(&g, F_JOBJECT);
    char *text = assemble(&g, r, NULL);
    GLM_ASSERT(text);
    gctx_free(&g);
    return text;
}

static int name_ok(const char *s, const glm_out_tags *t)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_BYTES)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7F || c == '<' || c == '>')
            return 0;
    }
    return !has_tag_byte(s, t);
}

/* One function that may be called. */
typedef struct {
    int index;             /* in tools */
    const char *name;
    char path[PATH_CAP];   /* "tools[i].function" */
    const json_t *params;  /* "parameters", or NULL */
    snode *root;           /* compiled params, or NULL */
} callable;

/* Appends the rule callN (N = f->index) of one function's call to calls; NULL
 * args_rule when it takes no arguments. */
static int gen_call(gctx *g, const callable *f, glm_buf *calls, const char **args_rule)
{
    const char *args = NULL;
    if (f->root) {
        g->params = f->params;
        g->tool = f->index;
        conj c = {0};
        args = gen(g, &c, f->root, -1, G_ARGS, f->name);
        if (!args && !g->failed)
            fail(g, "%s.parameters: no arguments satisfy the schema", f->path);
        if (!args)
            return GLM_ERR;
    }
    *args_rule = args;
    glm_buf_printf(calls, "call%d ::= ", f->index);
    lits(calls, g->tags->tool_call_start);
    glm_buf_puts(calls, " ");
    lits(calls, f->name);
    glm_buf_printf(calls, " %s ", use(g, F_NL));
    if (args)
        glm_buf_printf(calls, "%s ", args);
    lits(calls, g->tags->tool_call_end);
    glm_buf_puts(calls, "\n");
    return GLM_OK;
}

/* The functions of `tools` that may be called, compiled; NULL (err set) on a
 * malformed entry. */
static callable *callables(gctx *g, const json_t *tools, const char *only_name, int *n_out)
{
    const glm_out_tags *tags = g->tags;
    size_t nt = json_array_size(tools);
    callable *fs = glm_calloc(nt + 1, sizeof *fs);
    int n = 0;
    json_t *names = json_object();
    for (size_t i = 0; i < nt && !g->failed; i++) {
        const json_t *tool = json_array_get(tools, i), *fn;
        callable *f = &fs[n];
        if (!json_is_object(tool)) {
            fail(g, "tools[%zu]: must be an object", i);
            break;
        }
        const json_t *type = json_object_get(tool, "type");
        if (type && !(json_is_string(type) && strcmp(json_string_value(type), "function") == 0))
            continue;
        fn = json_object_get(tool, "function");
        if (json_is_object(fn))
            snprintf(f->path, sizeof f->path, "tools[%zu].function", i);
        else {
            fn = tool; /* Responses API shape: the tool is the function */
            snprintf(f->path, sizeof f->path, "tools[%zu]", i);
        }
        const json_t *nm = json_object_get(fn, "name");
        if (!json_is_string(nm)) {
            fail(g, "%s.name: missing", f->path);
            break;
        }
        f->name = json_string_value(nm);
        if (json_object_get(names, f->name))
            continue; /* the parser reads a name's first function */
        json_object_set_new(names, f->name, json_true());
        if (only_name && strcmp(only_name, f->name) != 0)
            continue;
        if (!name_ok(f->name, tags)) {
            fail(g, "%s.name: '%.64s' cannot be written in a tool call", f->path, f->name);
            break;
        }
        f->index = (int)i;
        f->params = json_object_get(fn, "parameters");
        if (f->params && !json_is_null(f->params)) {
            char ppath[PATH_CAP];
            sub_path(ppath, sizeof ppath, f->path, ".parameters");
            /* a function marked "strict" must get exactly its schema; others get its shape
             * and types, validation keywords the grammar cannot express left out */
            int lenient = !json_is_true(json_object_get(fn, "strict"));
            if (!(f->root = compile_doc(&g->nodes, f->params, ppath, lenient, g->err, g->errlen))) {
                g->failed = 1;
                break;
            }
        }
        n++;
    }
    json_decref(names);
    if (!g->failed && n == 0) {
        if (only_name)
            fail(g, "tools: no function named '%.64s'", only_name);
        else
            fail(g, "tools: no function to call");
    }
    if (g->failed) {
        free(fs);
        return NULL;
    }
    *n_out = n;
    return fs;
}

/* glm_tool_calls_gbnf with the start rule named root_name. */
static char *tool_calls_text(const json_t *tools, const char *only_name, int parallel,
                             const glm_out_tags *tags, const char *root_name, char *err, size_t errlen)
{
    glm_out_tags defaults;
    if (!tags) {
        glm_out_tags_default(&defaults);
        tags = &defaults;
    }
    gctx g;
    gctx_init(&g, err, errlen);
    g.tags = tags;
    g.root_name = root_name;
    char *text = NULL;
    callable *fs = NULL;
    int n = 0;
    const char *tl[GLM_OUT_TAG_COUNT];
    glm_out_tag_list(tags, tl);
    for (int i = 0; i < GLM_OUT_TAG_COUNT; i++)
        if (!tl[i] || !tl[i][0]) {
            fail(&g, "tags: a tag is missing");
            goto out;
        }
    if (strncmp(tags->arg_value_end, "</", 2) != 0 || strncmp(tags->tool_call_end, "</", 2) != 0) {
        fail(&g, "tags: the arg_value_end and tool_call_end tags must start with \"</\"");
        goto out;
    }
    if (!json_is_array(tools) || json_array_size(tools) == 0) {
        fail(&g, "tools: must be a non-empty array");
        goto out;
    }
    if (!(fs = callables(&g, tools, only_name, &n)))
        goto out;
    for (int pass = 0; pass < 2 && !g.failed && !text; pass++) {
        glm_buf calls = TEXT, alts = TEXT, r = TEXT;
        const char **args = glm_calloc((size_t)n, sizeof *args);
        for (int i = 0; i < n && !g.failed; i++) {
            if (gen_call(&g, &fs[i], &calls, &args[i]) != GLM_OK)
                break;
            glm_buf_printf(&alts, "%scall%d", i ? " | " : "", fs[i].index);
        }
        unsigned char *prod = g.failed ? NULL : productive(&g);
        for (int i = 0; i < n && !g.failed; i++)
            if (args[i] && !rule_productive(&g, prod, args[i]))
                fail(&g, "%s.parameters: no arguments satisfy the schema", fs[i].path);
        if (!g.failed && (pass == 1 || !mark_unproductive(&g, prod))) {
            if (parallel)
                glm_buf_printf(&r, "( %s ) ( %s ( %s ) )*", glm_buf_str(&alts), use(&g, F_NL), glm_buf_str(&alts));
            else
                glm_buf_puts(&r, glm_buf_str(&alts));
            glm_buf_put(&g.out, glm_buf_str(&calls), calls.len);
            if (calls.over || r.over)
                g.out.over = 1;
            text = assemble(&g, glm_buf_str(&r), prod);
        }
        free(prod);
        free(args);
        glm_buf_free(&calls);
        glm_buf_free(&alts);
        glm_buf_free(&r);
        if (!text)
            gctx_reset(&g);
    }
out:
    free(fs);
    gctx_free(&g);
    return text;
}

char *glm_tool_calls_gbnf(const json_t *tools, const char *only_name, int parallel,
                          const glm_out_tags *tags, char *err, size_t errlen)
{
    return tool_calls_text(tools, only_name, parallel, tags, "root", err, errlen);
}

/* ---- tool calls or content ------------------------------------------------------------ */

/* The start rule of the tool calls and the prefix of every content rule name
 * in glm_tool_calls_or_content_gbnf. No rule of a tool-call grammar starts with
 * the prefix: its rules are root, callN, cN-..., qN-... and the FIXED ones. */
#define TOOLS_ROOT "tool-calls"
#define CONTENT_PREFIX "content-"

static int gbnf_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* GBNF text t[0..n) (a grammar that parses) with `prefix` put before every rule
 * name: at its definition and at each reference, not inside "literals",
 * [classes], # comments or {m,n} counts. Writes into out unless it is NULL;
 * returns the length of the result. */
static size_t prefix_rule_names(const char *t, size_t n, const char *prefix, char *out)
{
    size_t pl = strlen(prefix), o = 0, i = 0;
    while (i < n) {
        char c = t[i];
        size_t j = i + 1;
        if (c == '"' || c == '[') { /* to the closing quote or bracket; "\" escapes one */
            char close = c == '"' ? '"' : ']';
            while (j < n && t[j] != close)
                j += t[j] == '\\' && j + 1 < n ? 2 : 1;
            j += j < n;
        } else if (c == '#') {
            while (j < n && t[j] != '\n' && t[j] != '\r')
                j++;
        } else if (c == '{') { /* digits, ",", spaces, comments */
            while (j < n && t[j] != '}') {
                if (t[j] == '#')
                    while (j < n && t[j] != '\n' && t[j] != '\r')
                        j++;
                else
                    j++;
            }
            j += j < n;
        } else if (gbnf_word(c)) {
            while (j < n && gbnf_word(t[j]))
                j++;
            if (out)
                memcpy(out + o, prefix, pl);
            o += pl;
        }
        if (out)
            memcpy(out + o, t + i, j - i);
        o += j - i;
        i = j;
    }
    return o;
}

char *glm_tool_calls_or_content_gbnf(const json_t *tools, int parallel, const glm_out_tags *tags,
                                     const char *content_gbnf, char *err, size_t errlen)
{
    if (!content_gbnf) {
        glm_err(err, errlen, "content: no grammar");
        return NULL;
    }
    size_t cn = strlen(content_gbnf);
    char cerr[GLM_ERRLEN];
    glm_grammar *cg = glm_grammar_parse(content_gbnf, cn, "root", cerr, sizeof cerr);
    if (!cg) {
        glm_err(err, errlen, "content: %s", cerr);
        return NULL;
    }
    glm_grammar_free(cg);
    char *calls = tool_calls_text(tools, NULL, parallel, tags, TOOLS_ROOT, err, errlen);
    if (!calls)
        return NULL;
    static const char head[] = "root ::= " TOOLS_ROOT " | " CONTENT_PREFIX "root\n";
    size_t hn = sizeof head - 1, tn = strlen(calls);
    size_t rn = prefix_rule_names(content_gbnf, cn, CONTENT_PREFIX, NULL);
    if (hn + tn + rn > GLM_GRAMMAR_MAX_TEXT) {
        free(calls);
        glm_err(err, errlen, "content: the grammar with the tool calls would be over %zu bytes",
                (size_t)GLM_GRAMMAR_MAX_TEXT);
        return NULL;
    }
    char *text = glm_malloc(hn + tn + rn + 1);
    memcpy(text, head, hn);
    memcpy(text + hn, calls, tn); /* ends with "\n" */
    prefix_rule_names(content_gbnf, cn, CONTENT_PREFIX, text + hn + tn);
    text[hn + tn + rn] = 0;
    free(calls);
    return text;
}
