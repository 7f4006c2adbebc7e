/*
 * schema_gen.c - the rule generator: one rule per *conjunction* of snodes.
 * JSON Schema keywords apply together ($ref + siblings, allOf, a chosen
 * anyOf branch with the schema around it), so a value position is described
 * by the set of snodes that all constrain it. A set is closed over $ref and
 * allOf, then its first unchosen anyOf/oneOf is expanded into one rule per
 * branch; once every union is chosen, schema_values.c merges the constraints
 * and writes the value grammar. Rules are memoised by (mode, set, chosen
 * unions), which is what makes recursive schemas finite. enum/const values
 * are filtered by the validator against the whole set, so type + enum, enum
 * inside allOf, ... come out exact.
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

/* ---- generation -------------------------------------------------------------------- */

int sg_fail(gctx *g, const char *fmt, ...)
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

const char *sg_use(gctx *g, unsigned f)
{
    int i = 0;
    while ((1u << i) != f)
        i++;
    if (!(g->fixed & f)) {
        g->fixed |= f;
        for (int j = 0; j < F_COUNT; j++)
            if (SG_FIXED[i].deps & (1u << j))
                sg_use(g, 1u << j);
    }
    return SG_FIXED[i].name;
}

/* Records that the alternative being built cannot match without `rule` (a
 * generated rule; the fixed ones always match something). */
void sg_need(gctx *g, ivec *needs, const char *rule)
{
    const json_t *i = rule ? json_object_get(g->name_index, rule) : NULL;
    if (i)
        ivec_push(needs, (int)json_integer_value(i));
}

void sg_conj_add(conj *c, snode *n)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->v = glm_realloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    c->v[c->n++] = n;
}

void sg_conj_free(conj *c)
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
void sg_closure(gctx *g, const conj *in, snode *extra, int extra_res, conj *out)
{
    memset(out, 0, sizeof *out);
    conj work = {0};
    g->epoch++;
    for (int i = 0; i < in->n; i++)
        sg_conj_add(&work, in->v[i]);
    if (extra)
        sg_conj_add(&work, extra);
    while (work.n) {
        snode *n = work.v[--work.n];
        if (n->mark == g->epoch)
            continue;
        n->mark = g->epoch;
        if (has_constraints(n))
            sg_conj_add(out, n);
        if (n->ref)
            sg_conj_add(&work, n->ref);
        for (int i = 0; i < n->n_all; i++)
            sg_conj_add(&work, n->all[i]);
    }
    sg_conj_free(&work);
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

int sg_chosen(const conj *c, int uid)
{
    for (int i = 0; i < c->nres; i++)
        if (c->res[i] == uid)
            return 1;
    return 0;
}

/* The rule for a set of nodes given as an array (a property's or an item's). */
const char *sg_gen_set(gctx *g, snode **v, int n, int mode, const char *hint)
{
    conj c = {v, n, n, NULL, 0};
    return sg_gen(g, &c, NULL, -1, mode, hint);
}

unsigned sg_conj_types(const conj *c)
{
    unsigned t = T_ALL;
    for (int i = 0; i < c->n; i++)
        t &= c->v[i]->types;
    return t;
}

/* The enum/const candidates of a conjunction: the first node's list. */
const json_t *sg_conj_candidates(const conj *c, json_t **owned)
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

int sg_conj_valid(gctx *g, const conj *c, const json_t *v, const json_t *src)
{
    vstate *vs = &g->vs;
    vs->cand = v;
    vs->src = src;
    for (int i = 0; i < c->n; i++)
        if (!sg_valid(vs, v, c->v[i], NULL, 0)) {
            if (vs->failed)
                sg_fail(g, "%s: too much work to check enum/const values", c->v[i]->path);
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
void sg_lit_value(gctx *g, glm_buf *b, const json_t *v, int tool)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL: glm_buf_puts(b, "\"null\""); break;
    case JSON_TRUE: glm_buf_puts(b, "\"true\""); break;
    case JSON_FALSE: glm_buf_puts(b, "\"false\""); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        sg_lits(b, num);
        break;
    case JSON_REAL:
        real_text(num, sizeof num, json_real_value(v));
        sg_lits(b, num);
        break;
    case JSON_STRING:
        sg_lit_json_string(b, json_string_value(v), json_string_length(v), tool);
        break;
    case JSON_ARRAY: {
        const char *ws = sg_use(g, F_WS);
        glm_buf_printf(b, "\"[\" %s ", ws);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                glm_buf_printf(b, " %s \",\" %s ", ws, ws);
            sg_lit_value(g, b, json_array_get(v, i), tool);
            if (i + 1 == json_array_size(v))
                glm_buf_printf(b, " %s", ws);
        }
        glm_buf_puts(b, " \"]\"");
        break;
    }
    case JSON_OBJECT: {
        const char *ws = sg_use(g, F_WS), *k;
        json_t *m;
        size_t i = 0;
        glm_buf_printf(b, "\"{\" %s ", ws);
        json_object_foreach((json_t *)v, k, m)
        {
            if (i++)
                glm_buf_printf(b, " %s \",\" %s ", ws, ws);
            sg_lit_json_string(b, k, strlen(k), tool);
            glm_buf_printf(b, " %s \":\" %s ", ws, ws);
            sg_lit_value(g, b, m, tool);
            if (i == json_object_size(v))
                glm_buf_printf(b, " %s", ws);
        }
        glm_buf_puts(b, " \"}\"");
        break;
    }
    }
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
const char *sg_gen(gctx *g, const conj *in, snode *extra, int extra_res, int mode,
                       const char *hint)
{
    if (g->failed)
        return NULL;
    conj c;
    sg_closure(g, in, extra, extra_res, &c);
    if (c.n == 0 && mode != G_ARGS) {
        sg_conj_free(&c);
        return sg_use(g, mode == G_JSON ? F_JVALUE : mode == G_TJSON ? F_TVALUE : F_RAWA);
    }
    glm_buf key = TEXT;
    glm_buf_printf(&key, "%d.%d:", mode, mode == G_ARGS ? g->args_key : 0);
    for (int i = 0; i < c.n; i++)
        glm_buf_printf(&key, "%d,", c.v[i]->id);
    glm_buf_puts(&key, "|");
    for (int i = 0; i < c.nres; i++)
        glm_buf_printf(&key, "%d,", c.res[i]);
    if (json_object_get(g->skip, glm_buf_str(&key))) {
        glm_buf_free(&key);
        sg_conj_free(&c);
        return NULL;
    }
    const json_t *hit = json_object_get(g->memo, glm_buf_str(&key));
    if (hit || key.over) {
        glm_buf_free(&key);
        sg_conj_free(&c);
        if (!hit) {
            sg_fail(g, "schema is too large");
            return NULL;
        }
        json_int_t idx = json_integer_value(hit);
        if (idx >= 0 && g->rstate[idx] == R_BUSY)
            g->rstate[idx] = R_BUSY_USED;
        return idx >= 0 ? g->names[idx] : NULL;
    }
    if (c.n > MAX_CONJ || g->out.over || g->body_bytes + g->out.len > MAX_OUT) {
        sg_fail(g, c.n > MAX_CONJ ? "%s: more than 256 subschemas apply to one value"
                               : "%s: the grammar would be over 1 MB",
             c.n ? c.v[0]->path : "schema");
        glm_buf_free(&key);
        sg_conj_free(&c);
        return NULL;
    }
    if (g->n_rules >= MAX_RULES || g->depth >= MAX_GEN_DEPTH) {
        sg_fail(g, "%s: schema needs %s", c.n ? c.v[0]->path : "schema",
             g->depth >= MAX_GEN_DEPTH ? "too deeply nested grammar rules" : "too many grammar rules");
        glm_buf_free(&key);
        sg_conj_free(&c);
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
            if (c.v[i]->n_union[u] && !sg_chosen(&c, c.v[i]->id * 2 + u)) {
                u_node = i;
                break;
            }
    if (!dead && u_node >= 0) {
        const snode *s = c.v[u_node];
        const char **seen = glm_calloc((size_t)s->n_union[u], sizeof *seen);
        int n_seen = 0;
        for (int b = 0; b < s->n_union[u] && !g->failed; b++) {
            const char *r = sg_gen(g, &c, s->unions[u][b], s->id * 2 + u, mode, hint);
            int dup = 0;
            for (int k = 0; k < n_seen; k++)
                dup |= r && seen[k] == r;
            if (!r || dup)
                continue;
            seen[n_seen++] = r;
            glm_buf alt = TEXT;
            ivec nd = {0};
            glm_buf_puts(&alt, r);
            sg_need(g, &nd, r);
            sg_add_alt(&rb, &alt, &nd);
            glm_buf_free(&alt);
            free(nd.v);
        }
        free(seen);
    } else if (!dead)
        sg_gen_merged(g, &c, mode, g->names[idx], &rb);
    g->depth--;
    g->body_bytes += rb.body.len;
    if (rb.body.over || g->body_bytes + g->out.len > MAX_OUT)
        sg_fail(g, "the grammar would be over 1 MB");
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
    sg_conj_free(&c);
    return rb.nalt ? g->names[idx] : NULL;
}

/* ---- types every value of which fits ------------------------------------------------ */

/* Types every value of which satisfies the conjunction (an under-estimate). */
unsigned sg_full_types(gctx *g, const conj *in, snode *extra, int depth)
{
    if (depth > 8 || ++g->full_steps > MAX_FULL)
        return 0;
    conj c;
    sg_closure(g, in, extra, -1, &c);
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
                any |= sg_full_types(g, &none, c.v[i]->unions[u][b], depth + 1);
            full &= any;
        }
    sg_conj_free(&c);
    return full;
}

