/*
 * schema_wellformed.c - glm_schema_wellformed: every keyword of draft
 * 2020-12 (and the 2019-09, 7 and 4 spellings) checked for the shape of its
 * value on the schema JSON itself, without snodes; then every local $ref is
 * resolved (JSON pointers, anchors, $id scopes). Accepts what the generator
 * does not support: it says whether a schema is a schema.
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
#include "core/hash.h"

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
        sg_sub_path(p, sizeof p, path, ".%s[%zu]", kw, i);
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
        sg_sub_path(p, sizeof p, path, ".%s.%s", kw, k);
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
    sg_sub_path(p, sizeof p, path, ".%s", kw);
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
        return sg_compile_type(&d, &n, v, path);
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

