/*
 * schema_validate.c - JSON values against compiled snodes, with JSON
 * Schema's equality (1 == 1.0, objects in any order): the generator uses it
 * to keep only the enum/const values that every schema applying to a
 * position allows. Work is bounded per grammar (MAX_STEPS).
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
#include "core/utf8.h"

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
int sg_node_key(const snode *s, const char *k)
{
    const json_t *i = s->key_index ? json_object_get(s->key_index, k) : NULL;
    return i ? (int)json_integer_value(i) : -1;
}


static int valid_child(vstate *vs, const json_t *v, const snode *n, int depth)
{
    return sg_valid(vs, v, n, NULL, depth + 1);
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
        int i = sg_node_key(n, k);
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

int sg_valid(vstate *vs, const json_t *v, const snode *n, const vstack *up, int depth)
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
    if (n->ref && !sg_valid(vs, v, n->ref, &here, depth + 1))
        return 0;
    for (int i = 0; i < n->n_all; i++)
        if (!sg_valid(vs, v, n->all[i], &here, depth + 1))
            return 0;
    for (int u = 0; u < 2; u++) {
        if (!n->n_union[u])
            continue;
        int i = 0;
        while (i < n->n_union[u] && !sg_valid(vs, v, n->unions[u][i], &here, depth + 1))
            i++;
        if (i == n->n_union[u])
            return 0;
    }
    return 1;
}

