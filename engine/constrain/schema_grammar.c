/*
 * schema_grammar.c - the entry points of the JSON Schema -> GBNF compiler
 * (schema_grammar.h) and what runs around the generator (schema_gen.c):
 *
 *  1. compile: the schema becomes snodes (schema_compile.c);
 *  2. generate: the root's rule, and through it every rule it needs;
 *  3. productivity: each alternative records the rules it cannot do without;
 *     a least fixpoint finds the rules that derive no finite text (a required
 *     property that requires itself). If there are any, generation runs once
 *     more treating them as empty, so that optional members, items and
 *     branches that need them are left out rather than becoming dead ends;
 *  4. assembly: the start rule, the generated rules, the fixed rules used.
 *
 * The parts and their shared internals: schema_internal.h.
 */
#include "constrain/schema_grammar.h"
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/schema_internal.h"
#include "core/buf.h"
#include "core/util.h"

/* ---- passes and assembly ------------------------------------------------------------- */

void sg_gctx_init(gctx *g, char *err, size_t errlen)
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
void sg_gctx_reset(gctx *g)
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

void sg_gctx_free(gctx *g)
{
    sg_gctx_reset(g);
    sg_arena_free(&g->nodes);
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
unsigned char *sg_productive(const gctx *g)
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
int sg_mark_unproductive(gctx *g, const unsigned char *prod)
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
int sg_rule_productive(const gctx *g, const unsigned char *prod, const char *rule)
{
    const json_t *i = json_object_get(g->name_index, rule);
    return !i || prod[json_integer_value(i)];
}

/* "ROOT ::= start\n" (ROOT: g->root_name) + the rules + the fixed rules used,
 * or NULL on failure. */
char *sg_assemble(gctx *g, const char *root_body, const unsigned char *prod)
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
            glm_buf_puts(&b, SG_FIXED[i].text);
    if (b.over || g->out.over) {
        glm_buf_free(&b);
        sg_fail(g, "the grammar would be over 1 MB");
        return NULL;
    }
    return b.p;
}

char *glm_schema_gbnf(const json_t *schema, char *err, size_t errlen)
{
    gctx g;
    sg_gctx_init(&g, err, errlen);
    char *text = NULL;
    snode *root = sg_compile_doc(&g.nodes, schema, "schema", 0, err, errlen);
    for (int pass = 0; root && pass < 2 && !g.failed && !text; pass++) {
        conj c = {0};
        const char *r = sg_gen(&g, &c, root, -1, G_JSON, "root");
        unsigned char *prod = sg_productive(&g);
        if (!g.failed && (!r || !sg_rule_productive(&g, prod, r)))
            sg_fail(&g, "schema: no JSON value satisfies the schema");
        if (!g.failed && (pass == 1 || !sg_mark_unproductive(&g, prod)))
            text = sg_assemble(&g, r, prod);
        free(prod);
        if (!text)
            sg_gctx_reset(&g);
    }
    sg_gctx_free(&g);
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
    sg_gctx_init(&g, NULL, 0);
    const char *r = sg_use(&g, F_JOBJECT);
    char *text = sg_assemble(&g, r, NULL);
    GLM_ASSERT(text);
    sg_gctx_free(&g);
    return text;
}

