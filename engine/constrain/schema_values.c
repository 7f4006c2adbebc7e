/*
 * schema_values.c - the alternatives of one conjunction whose unions are all
 * chosen: the constraints merged (types intersected, bounds tightened,
 * properties and items matched up by name and position) and written as
 * GBNF: enum/const values, null, booleans, integer ranges, strings (JSON,
 * tool-call JSON or raw, length-bounded through shared rule chains), arrays
 * (prefix items, then a repetition) and objects (declared order, required
 * members always, optional ones possibly). Mode G_ARGS hands objects to the
 * caller's writer (gctx.args).
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

/* ---- strings ------------------------------------------------------------------------ */

/* Raw text (no "</", no NUL) of min..max code points (max < 0: no limit).
 * Bounded lengths need a chain of rules qK-aI / qK-bI, shared by every value
 * with the same bounds: aI after I characters not ending in "<", bI after I
 * characters ending in "<". Writes the start into b. */
void sg_raw_bounded(gctx *g, glm_buf *b, int min, int max)
{
    int last = max >= 0 ? max : min; /* rules for positions 0..last-1 */
    if (max == 0) {
        glm_buf_puts(b, "\"\"");
        return;
    }
    if (last == 0) { /* max < 0, min == 0 */
        glm_buf_puts(b, sg_use(g, F_RAWA));
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
                glm_buf_printf(&g->out, " %s | \"<\" %s )", sg_use(g, F_RAWA), sg_use(g, F_RAWB));
            glm_buf_puts(&g->out, i >= min ? "?\n" : "\n");
        }
    }
}

/* ---- objects ----------------------------------------------------------------------- */

/* The members an object of conjunction c may have, in order: the declared
 * properties of each node, then its required names, except names that a node
 * with additionalProperties false does not declare. 0 when no object fits (a
 * required name is forbidden). *map gets the additionalProperties schemas
 * (used when nothing is declared), *closed whether some node forbids others. */
int sg_object_props(const conj *c, prop **out, int *n_out, conj *map, int *closed)
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
                if (c->v[q]->addl == ADDL_FALSE && sg_node_key(c->v[q], k) < 0)
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
            sg_conj_add(map, s->addl_schema);
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
            int j = sg_node_key(s, p[k].key);
            if (j >= 0)
                sg_conj_add(&p[k].set, s->props[j]);
            else if (s->addl == ADDL_SCHEMA)
                sg_conj_add(&p[k].set, s->addl_schema);
        }
    if (!ok) {
        free(p);
        sg_conj_free(map);
        return 0;
    }
    *out = p;
    *n_out = n;
    return 1;
}

void sg_props_free(prop *p, int n)
{
    for (int i = 0; i < n; i++)
        sg_conj_free(&p[i].set);
    free(p);
}


/* A JSON object of conjunction c (modes JSON/TJSON) as one alternative. */
int sg_gen_object(gctx *g, const conj *c, int mode, const char *name, glm_buf *alt, ivec *needs)
{
    prop *p;
    int n, closed, tool = mode == G_TJSON;
    conj map;
    if (!sg_object_props(c, &p, &n, &map, &closed))
        return 0;
    const char *ws = sg_use(g, F_WS);
    int ok = 1;
    if (n == 0) {
        if (closed)
            glm_buf_printf(alt, "\"{\" %s \"}\"", ws);
        else if (map.n) {
            const char *v = sg_gen_set(g, map.v, map.n, mode, "value");
            const char *ks = sg_use(g, tool ? F_TSTRING : F_JSTRING);
            if (v)
                glm_buf_printf(alt,
                           "\"{\" %s ( %s %s \":\" %s %s ( %s \",\" %s %s %s \":\" %s %s )* %s )? \"}\"",
                           ws, ks, ws, ws, v, ws, ws, ks, ws, ws, v, ws);
            else
                glm_buf_printf(alt, "\"{\" %s \"}\"", ws);
        } else
            glm_buf_puts(alt, sg_use(g, tool ? F_TOBJECT : F_JOBJECT));
        sg_conj_free(&map);
        free(p);
        return !g->failed;
    }
    sg_conj_free(&map);
    for (int i = 0; i < n && ok && !g->failed; i++) {
        p[i].rule = sg_gen_set(g, p[i].set.v, p[i].set.n, mode, p[i].key);
        if (!p[i].rule && p[i].required)
            ok = 0;
    }
    if (!ok || g->failed) {
        sg_props_free(p, n);
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
        sg_lit_json_string(&kv[m], p[i].key, strlen(p[i].key), tool);
        glm_buf_printf(&kv[m], " %s \":\" %s %s", ws, ws, p[i].rule);
        p[m].required = p[i].required;
        if (p[i].required)
            sg_need(g, needs, p[i].rule);
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
    sg_props_free(p, n);
    return 1;
}

/* ---- arrays ------------------------------------------------------------------------ */

/* A JSON array of conjunction c as one alternative. Items past minItems are
 * optional: the prefix positions through a chain of rules name-pI ("," item
 * I and the rest), the items after the prefix through a repetition. */
int sg_gen_array(gctx *g, const conj *c, int mode, const char *name, glm_buf *alt, ivec *needs)
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
                sg_conj_add(&set, s->prefix[i]);
            else if (s->items)
                sg_conj_add(&set, s->items);
        }
        if (!(el[i] = sg_gen_set(g, set.v, set.n, mode, "item"))) {
            K = i;
            max = i;
        }
    }
    if (!g->failed && (max < 0 || max > P)) {
        set.n = 0;
        for (int j = 0; j < c->n; j++)
            if (c->v[j]->items)
                sg_conj_add(&set, c->v[j]->items);
        if (!(tail = sg_gen_set(g, set.v, set.n, mode, "item")))
            max = P;
    }
    sg_conj_free(&set);
    if (g->failed || (max >= 0 && min > max)) {
        free(el);
        return 0;
    }
    const char *ws = sg_use(g, F_WS);
    if (max == 0) {
        glm_buf_printf(alt, "\"[\" %s \"]\"", ws);
        free(el);
        return 1;
    }
    for (int i = 0; i < GLM_MIN(K, min); i++)
        sg_need(g, needs, el[i]);
    if (min > P)
        sg_need(g, needs, tail);
    /* the items after the prefix */
    glm_buf rest = TEXT;
    if (tail && (max < 0 || max > P)) {
        int lo = GLM_MAX(0, min - P), hi = max < 0 ? -1 : max - P;
        if (P > 0) {
            glm_buf_printf(&rest, " ( %s \",\" %s %s )", ws, ws, tail);
            sg_rep(&rest, lo, hi);
        } else {
            glm_buf_puts(&rest, tail);
            if (hi != 1) {
                glm_buf_printf(&rest, " ( %s \",\" %s %s )", ws, ws, tail);
                sg_rep(&rest, lo > 0 ? lo - 1 : 0, hi < 0 ? -1 : hi - 1);
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
void sg_add_alt(rbuild *rb, const glm_buf *alt, const ivec *needs)
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
        sg_raw_bounded(g, &alt, min, max);
    else if (min == 0 && max < 0)
        glm_buf_puts(&alt, sg_use(g, mode == G_TJSON ? F_TSTRING : F_JSTRING));
    else {
        glm_buf_printf(&alt, "\"\\\"\" %s", sg_use(g, mode == G_TJSON ? F_TCHAR : F_JCHAR));
        sg_rep(&alt, min, max);
        glm_buf_puts(&alt, " \"\\\"\"");
    }
    sg_add_alt(rb, &alt, NULL);
    glm_buf_free(&alt);
}

/* The alternatives of a conjunction whose unions are all chosen. */
void sg_gen_merged(gctx *g, const conj *c, int mode, const char *name, rbuild *rb)
{
    unsigned t = sg_conj_types(c);
    json_t *owned;
    const json_t *cand = sg_conj_candidates(c, &owned);
    glm_buf alt = TEXT;
    ivec needs = {0};
    if (mode == G_ARGS) {
        if (cand) {
            sg_fail(g, "%s: 'enum'/'const' on tool parameters is not supported", c->v[0]->path);
        } else if ((t & T_OBJ) && g->args(g, c, &alt, &needs))
            sg_add_alt(rb, &alt, &needs);
        glm_buf_free(&alt);
        free(needs.v);
        json_decref(owned);
        return;
    }
    if (cand) {
        for (size_t i = 0; i < json_array_size(cand) && !g->failed; i++) {
            const json_t *v = json_array_get(cand, i);
            if (!sg_conj_valid(g, c, v, cand))
                continue;
            glm_buf_clear(&alt);
            if (mode == G_RAW) {
                if (!json_is_string(v))
                    continue;
                const char *s = json_string_value(v);
                size_t n = json_string_length(v);
                if (strlen(s) != n || strstr(s, "</"))
                    continue; /* not expressible as raw text */
                sg_lit(&alt, s, n);
            } else
                sg_lit_value(g, &alt, v, mode == G_TJSON);
            sg_add_alt(rb, &alt, NULL);
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
        sg_add_alt(rb, &alt, NULL);
    }
    if (t & T_BOOL) {
        glm_buf_clear(&alt);
        glm_buf_puts(&alt, "\"true\" | \"false\"");
        sg_add_alt(rb, &alt, NULL);
    }
    if (t & T_INT) {
        glm_buf_clear(&alt);
        if (t & T_FRAC)
            glm_buf_puts(&alt, sg_use(g, F_JNUMBER));
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
                glm_buf_puts(&alt, sg_use(g, F_JINT));
            else if (lo <= hi)
                sg_int_range(&alt, lo, hi);
        }
        if (alt.len)
            sg_add_alt(rb, &alt, NULL);
    }
    if (t & T_STR)
        gen_string(g, c, mode, name, rb);
    if (t & T_ARR) {
        glm_buf_clear(&alt);
        needs.n = 0;
        if (sg_gen_array(g, c, mode, name, &alt, &needs))
            sg_add_alt(rb, &alt, &needs);
    }
    if ((t & T_OBJ) && !g->failed) {
        glm_buf_clear(&alt);
        needs.n = 0;
        if (sg_gen_object(g, c, mode, name, &alt, &needs))
            sg_add_alt(rb, &alt, &needs);
    }
    free(needs.v);
    glm_buf_free(&alt);
}

