/*
 * jinja_value.c - the value model of the Jinja interpreter and the Python
 * semantics templates can observe: str() and repr() (including Python's
 * shortest float repr), truthiness, ==, ordering, hashing, len(), iteration,
 * dicts that keep insertion order, conversion from jansson values and JSON
 * output like Python's json.dumps. Strings are UTF-8 bytes (core/utf8.h),
 * while Python indexes, slices and strips them by code point.
 */
#include "text/jinja/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/util.h"

#define MAX_VALUE_DEPTH 512

/* ---- Python's view of UTF-8 strings ----------------------------------- */

bool py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool str_ascii(jstr *s)
{
    if (s->ascii < 0) {
        s->ascii = 1;
        for (size_t i = 0; i < s->len; i++)
            if ((unsigned char)s->p[i] >= 0x80) {
                s->ascii = 0;
                break;
            }
    }
    return s->ascii == 1;
}

size_t jstr_nchars(jstr *s)
{
    if (str_ascii(s))
        return s->len;
    return glm_utf8_count(s->p, s->len);
}

size_t jstr_byte_offset(jstr *s, size_t ci)
{
    if (str_ascii(s))
        return ci < s->len ? ci : s->len;
    size_t i = 0, k = 0;
    while (i < s->len) {
        if (((unsigned char)s->p[i] & 0xC0) != 0x80) {
            if (k == ci)
                return i;
            k++;
        }
        i++;
    }
    return s->len;
}

/* Simple case pairs: ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic. */
uint32_t py_toupper(uint32_t c)
{
    if (c < 0x80)
        return c >= 'a' && c <= 'z' ? c - 32 : c;
    if (c == 0xB5)
        return 0x39C;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7))
        return c - 32;
    if (c == 0xFF)
        return 0x178;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x131)
            return 'I';
        if (c == 0x17F)
            return 'S';
        if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
            return c & 1 ? c - 1 : c;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
            return c & 1 ? c : c - 1;
        return c;
    }
    if (c >= 0x3B1 && c <= 0x3C9)
        return c == 0x3C2 ? 0x3A3 : c - 32;
    if (c == 0x3AC)
        return 0x386;
    if (c >= 0x3AD && c <= 0x3AF)
        return c - 37;
    if (c == 0x3CC)
        return 0x38C;
    if (c == 0x3CD || c == 0x3CE)
        return c - 63;
    if (c >= 0x430 && c <= 0x44F)
        return c - 32;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF))
        return c & 1 ? c - 1 : c;
    return c;
}

uint32_t py_tolower(uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x100 && c <= 0x17F) {
        if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
            return c & 1 ? c : c + 1;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
            return c & 1 ? c + 1 : c;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        return c + 32;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF))
        return c & 1 ? c : c + 1;
    return c;
}

bool py_iscased_upper(uint32_t c)
{
    return py_tolower(c) != c;
}

bool py_iscased_lower(uint32_t c)
{
    return py_toupper(c) != c || c == 0xDF;
}

/* ---- constructors ---------------------------------------------------------- */

jv jv_str_ref(jx *x, const char *p, size_t n)
{
    jstr *s = jx_alloc(x, sizeof *s);
    s->p = p;
    s->len = n;
    s->ascii = -1;
    jv v = {0};
    v.t = JV_STR;
    v.u.s = s;
    return v;
}

jv jv_str(jx *x, const char *p, size_t n)
{
    char *c = jx_alloc(x, n + 1);
    if (n)
        jcopy(c, p, n);
    return jv_str_ref(x, c, n);
}

jv jv_undef_named(jx *x, int kind, jtype owner, const char *name, size_t n)
{
    jv v = jv_undef();
    v.sub = (uint8_t)kind;
    v.aux = owner;
    if (name)
        v.u.s = jv_str(x, name, n).u.s;
    return v;
}

jv jv_list_new(jx *x, size_t cap, int kind)
{
    jlist *l = jx_alloc(x, sizeof *l);
    if (cap) {
        if (cap > x->arena.limit / sizeof(jv))
            jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
        l->v = jx_alloc(x, cap * sizeof(jv));
        l->cap = cap;
    }
    jv v = {0};
    v.t = JV_LIST;
    v.sub = (uint8_t)kind;
    v.u.l = l;
    return v;
}

void jv_list_push(jx *x, jv list, jv item)
{
    jlist *l = list.u.l;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > x->arena.limit / sizeof(jv))
            jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
        jv *nv = jx_alloc(x, cap * sizeof(jv));
        if (l->n)
            jcopy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = item;
}

jv jv_dict_new(jx *x, size_t cap)
{
    jdict *d = jx_alloc(x, sizeof *d);
    if (cap) {
        if (cap > x->arena.limit / (2 * sizeof(jv)))
            jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
        d->k = jx_alloc(x, cap * sizeof(jv));
        d->v = jx_alloc(x, cap * sizeof(jv));
        d->cap = cap;
    }
    jv v = {0};
    v.t = JV_DICT;
    v.u.d = d;
    return v;
}

/* ---- hashing and dict index ------------------------------------------------ */

/* Returns false for unhashable values (lists, dicts, namespaces). */
static bool hash_rec(jv v, uint64_t *h, int depth)
{
    switch (v.t) {
    case JV_STR: *h = glm_hash_bytes(v.u.s->p, v.u.s->len); return true;
    case JV_BOOL:
    case JV_INT: *h = glm_mix64((uint64_t)v.u.i); return true;
    case JV_FLOAT:
        if (v.u.f == floor(v.u.f) && fabs(v.u.f) < 9.2e18)
            *h = glm_mix64((uint64_t)(int64_t)v.u.f);
        else
            *h = glm_mix64((uint64_t)v.u.i ^ 0x5bd1e995u);
        return true;
    case JV_NONE: *h = 0x9e3779b97f4a7c15ull; return true;
    case JV_UNDEF: *h = 0x12345; return true;
    case JV_LIST:
        if (v.sub != JL_TUPLE || depth > MAX_VALUE_DEPTH)
            return false;
        *h = 0x345678;
        for (size_t i = 0; i < v.u.l->n; i++) {
            uint64_t e;
            if (!hash_rec(v.u.l->v[i], &e, depth + 1))
                return false;
            *h = glm_mix64(*h ^ e) + i;
        }
        return true;
    case JV_DICT:
    case JV_NS: return false;
    default: *h = glm_mix64((uint64_t)(uintptr_t)v.u.m); return true;
    }
}

uint64_t jv_hash(jx *x, jv v)
{
    uint64_t h;
    if (!hash_rec(v, &h, 0))
        jx_fail(x, "unhashable type: '%s'", jv_type_name(v));
    return h;
}

static void dict_reindex(jx *x, jdict *d)
{
    size_t icap = 16;
    while (icap < d->n * 2 + 2)
        icap *= 2;
    d->index = jx_alloc(x, icap * sizeof *d->index);
    d->icap = icap;
    for (size_t i = 0; i < d->n; i++) {
        size_t j = jv_hash(x, d->k[i]) & (icap - 1);
        while (d->index[j])
            j = (j + 1) & (icap - 1);
        d->index[j] = (uint32_t)(i + 1);
    }
}

jv *jv_dict_get(jx *x, jv dict, jv key)
{
    jdict *d = dict.u.d;
    if (key.t == JV_STR)
        return jv_dict_get_str(dict, key.u.s->p, key.u.s->len);
    uint64_t h = jv_hash(x, key);
    if (d->index) {
        for (size_t j = h & (d->icap - 1); d->index[j]; j = (j + 1) & (d->icap - 1))
            if (jv_eq(x, d->k[d->index[j] - 1], key))
                return &d->v[d->index[j] - 1];
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t != JV_STR && jv_eq(x, d->k[i], key))
            return &d->v[i];
    return NULL;
}

jv *jv_dict_get_str(jv dict, const char *p, size_t n)
{
    jdict *d = dict.u.d;
    if (d->index) {
        uint64_t h = glm_hash_bytes(p, n);
        for (size_t j = h & (d->icap - 1); d->index[j]; j = (j + 1) & (d->icap - 1)) {
            jv *k = &d->k[d->index[j] - 1];
            if (k->t == JV_STR && k->u.s->len == n && memcmp(k->u.s->p, p, n) == 0)
                return &d->v[d->index[j] - 1];
        }
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++) {
        jv *k = &d->k[i];
        if (k->t == JV_STR && k->u.s->len == n && (n == 0 || memcmp(k->u.s->p, p, n) == 0))
            return &d->v[i];
    }
    return NULL;
}

void jv_dict_set(jx *x, jv dict, jv key, jv val)
{
    jdict *d = dict.u.d;
    jv *slot = jv_dict_get(x, dict, key);
    if (slot) {
        *slot = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        if (cap > x->arena.limit / (2 * sizeof(jv)) || cap > UINT32_MAX / 2)
            jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
        jv *nk = jx_alloc(x, cap * sizeof(jv)), *nv = jx_alloc(x, cap * sizeof(jv));
        if (d->n) {
            jcopy(nk, d->k, d->n * sizeof(jv));
            jcopy(nv, d->v, d->n * sizeof(jv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = val;
    d->n++;
    if (d->n > 8 && (!d->index || d->n * 2 + 2 > d->icap)) {
        dict_reindex(x, d);
    } else if (d->index) {
        size_t j = jv_hash(x, key) & (d->icap - 1);
        while (d->index[j])
            j = (j + 1) & (d->icap - 1);
        d->index[j] = (uint32_t)d->n;
    }
}

/* ---- type names, truth, equality, ordering --------------------------------- */

const char *jv_type_name(jv v)
{
    switch ((jtype)v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST:
        return v.sub == JL_TUPLE ? "tuple" : v.sub == JL_ITEMS ? "dict_items"
               : v.sub == JL_KEYS ? "dict_keys" : v.sub == JL_VALUES ? "dict_values" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "builtin_function_or_method";
    case JV_RANGE: return "range";
    case JV_LOOP: return "LoopContext";
    case JV_CYCLER: return "Cycler";
    case JV_JOINER: return "Joiner";
    }
    return "object";
}

/* Number of items of a range (clamped to INT64_MAX). */
int64_t jrange_len(const jrange *r)
{
    uint64_t n = 0;
    if (r->step > 0 && r->start < r->stop)
        n = ((uint64_t)r->stop - (uint64_t)r->start - 1) / (uint64_t)r->step + 1;
    else if (r->step < 0 && r->start > r->stop)
        n = ((uint64_t)r->start - (uint64_t)r->stop - 1) / ((uint64_t)0 - (uint64_t)r->step) + 1;
    return n > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

bool jv_truthy(jv v)
{
    switch ((jtype)v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL:
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    case JV_RANGE: return jrange_len(v.u.r) != 0;
    default: return true;
    }
}

double jv_as_float(jv v)
{
    return v.t == JV_FLOAT ? v.u.f : (double)v.u.i;
}

/* Exact comparison of two numbers: -1, 0, 1, or 2 when unordered (NaN). */
static int num_cmp(jv a, jv b)
{
    if (a.t != JV_FLOAT && b.t != JV_FLOAT)
        return a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
    long double x = a.t == JV_FLOAT ? (long double)a.u.f : (long double)a.u.i;
    long double y = b.t == JV_FLOAT ? (long double)b.u.f : (long double)b.u.i;
    if (isnan(x) || isnan(y))
        return 2;
    return x < y ? -1 : x > y;
}

static bool eq_rec(jx *x, jv a, jv b, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        jx_fail(x, "value nested too deeply");
    if (jv_is_num(a) && jv_is_num(b))
        return num_cmp(a, b) == 0;
    if (a.t != b.t)
        return false;
    switch ((jtype)a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR:
        return a.u.s->len == b.u.s->len && (a.u.s->len == 0 || memcmp(a.u.s->p, b.u.s->p, a.u.s->len) == 0);
    case JV_LIST: {
        if (a.sub != b.sub)
            return false;
        if (a.sub == JL_VALUES)
            return a.u.l == b.u.l;
        if (a.u.l->n != b.u.l->n)
            return false;
        if (a.sub == JL_KEYS || a.sub == JL_ITEMS) {
            /* set-like: every element of a is in b */
            for (size_t i = 0; i < a.u.l->n; i++) {
                bool found = false;
                for (size_t j = 0; j < b.u.l->n && !found; j++)
                    found = eq_rec(x, a.u.l->v[i], b.u.l->v[j], depth + 1);
                if (!found)
                    return false;
            }
            return true;
        }
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq_rec(x, a.u.l->v[i], b.u.l->v[i], depth + 1))
                return false;
        return true;
    }
    case JV_DICT: {
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jv_dict_get(x, b, a.u.d->k[i]);
            if (!o || !eq_rec(x, a.u.d->v[i], *o, depth + 1))
                return false;
        }
        return true;
    }
    case JV_RANGE: {
        int64_t la = jrange_len(a.u.r), lb = jrange_len(b.u.r);
        if (la != lb)
            return false;
        if (la == 0)
            return true;
        return a.u.r->start == b.u.r->start && (la == 1 || a.u.r->step == b.u.r->step);
    }
    default: return a.u.m == b.u.m;
    }
}

bool jv_eq(jx *x, jv a, jv b)
{
    return eq_rec(x, a, b, 0);
}

/* -1/0/1 for orderable pairs, 2 when the comparison is false both ways (NaN),
 * 3 when the types cannot be ordered. */
static int order_rec(jx *x, jv a, jv b, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        jx_fail(x, "value nested too deeply");
    if (jv_is_num(a) && jv_is_num(b))
        return num_cmp(a, b);
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = GLM_MIN(a.u.s->len, b.u.s->len);
        int c = n ? memcmp(a.u.s->p, b.u.s->p, n) : 0;
        if (c)
            return c < 0 ? -1 : 1;
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && a.sub == b.sub && (a.sub == JL_LIST || a.sub == JL_TUPLE)) {
        size_t n = GLM_MIN(a.u.l->n, b.u.l->n);
        for (size_t i = 0; i < n; i++) {
            if (eq_rec(x, a.u.l->v[i], b.u.l->v[i], depth + 1))
                continue;
            return order_rec(x, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    return 3;
}

bool jv_order(jx *x, jv a, jv b, int op)
{
    if (a.t == JV_UNDEF || b.t == JV_UNDEF) {
        jv u = a.t == JV_UNDEF ? a : b;
        if (u.u.s)
            jx_fail(x, "'%.*s' is undefined", (int)GLM_MIN(u.u.s->len, 100), u.u.s->p);
        jx_fail(x, "undefined value used in a comparison");
    }
    int c = order_rec(x, a, b, 0);
    if (c == 3) {
        static const char *const sym[] = {"==", "!=", "<", "<=", ">", ">="};
        jx_fail(x, "'%s' not supported between instances of '%s' and '%s'", sym[op],
                jv_type_name(a), jv_type_name(b));
    }
    if (c == 2)
        return false;
    switch (op) {
    case CMP_LT: return c < 0;
    case CMP_LE: return c <= 0;
    case CMP_GT: return c > 0;
    case CMP_GE: return c >= 0;
    }
    return false;
}

int jv_cmp(jx *x, jv a, jv b)
{
    if (jv_order(x, a, b, CMP_LT))
        return -1;
    if (jv_order(x, b, a, CMP_LT))
        return 1;
    return 0;
}

int64_t jv_len(jx *x, jv v)
{
    switch ((jtype)v.t) {
    case JV_UNDEF: return 0;
    case JV_STR: return (int64_t)jstr_nchars(v.u.s);
    case JV_LIST: return (int64_t)v.u.l->n;
    case JV_DICT: return (int64_t)v.u.d->n;
    case JV_RANGE: return jrange_len(v.u.r);
    default: jx_fail(x, "object of type '%s' has no len()", jv_type_name(v));
    }
}

/* ---- str() and repr() --------------------------------------------------------- */

void py_float_repr(double f, char out[32])
{
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        strcpy(out, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* shortest digits that round-trip */
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    /* buf = [-]d.ddde[+-]XX ; collect digits and exponent */
    const char *s = buf;
    bool neg = *s == '-';
    if (neg)
        s++;
    char digits[20];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int exp10 = atoi(s + 1);
    int decpt = exp10 + 1; /* value = 0.DIGITS x 10^decpt */
    char *o = out;
    if (neg)
        *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = digits[i];
        } else {
            for (int i = 0; i < decpt; i++)
                *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > decpt) {
                for (int i = decpt; i < nd; i++)
                    *o++ = digits[i];
            } else {
                *o++ = '0';
            }
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++)
                *o++ = digits[i];
        }
        int e = decpt - 1;
        sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

static void repr_str(jx *x, jsb *b, const jstr *s)
{
    bool has_sq = memchr(s->p, '\'', s->len) != NULL, has_dq = memchr(s->p, '"', s->len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jsb_putc(x, b, q);
    const char *p = s->p, *end = s->p + s->len;
    while (p < end) {
        uint32_t c;
        size_t k = glm_utf8_decode_valid(p, end, &c);
        if (c == (uint32_t)q || c == '\\') {
            jsb_putc(x, b, '\\');
            jsb_putc(x, b, (char)c);
        } else if (c == '\t') {
            jsb_puts(x, b, "\\t");
        } else if (c == '\n') {
            jsb_puts(x, b, "\\n");
        } else if (c == '\r') {
            jsb_puts(x, b, "\\r");
        } else if (!py_isprintable(c)) {
            if (c < 0x100)
                jsb_printf(x, b, "\\x%02x", c);
            else if (c < 0x10000)
                jsb_printf(x, b, "\\u%04x", c);
            else
                jsb_printf(x, b, "\\U%08x", c);
        } else {
            jsb_put(x, b, p, k);
        }
        p += k;
    }
    jsb_putc(x, b, q);
}

static void repr_rec(jx *x, jsb *b, jv v, int depth);

static void str_rec(jx *x, jsb *b, jv v, int depth)
{
    char num[32];
    switch ((jtype)v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jsb_put(x, b, "None", 4); return;
    case JV_BOOL: jsb_puts(x, b, v.u.i ? "True" : "False"); return;
    case JV_INT: jsb_printf(x, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: py_float_repr(v.u.f, num); jsb_puts(x, b, num); return;
    case JV_STR: jsb_put(x, b, v.u.s->p, v.u.s->len); return;
    case JV_RANGE:
        if (v.u.r->step == 1)
            jsb_printf(x, b, "range(%lld, %lld)", (long long)v.u.r->start, (long long)v.u.r->stop);
        else
            jsb_printf(x, b, "range(%lld, %lld, %lld)", (long long)v.u.r->start,
                       (long long)v.u.r->stop, (long long)v.u.r->step);
        return;
    case JV_LOOP:
        jsb_printf(x, b, "<LoopContext %lld/%lld>", (long long)v.u.lp->index0 + 1,
                   (long long)v.u.lp->length);
        return;
    case JV_NS: {
        jsb_puts(x, b, "<Namespace ");
        jv d = v;
        d.t = JV_DICT;
        repr_rec(x, b, d, depth + 1);
        jsb_putc(x, b, '>');
        return;
    }
    case JV_MACRO: jsb_printf(x, b, "<Macro '%.100s'>", v.u.m->name); return;
    case JV_FUNC: jsb_puts(x, b, "<built-in function>"); return;
    case JV_CYCLER: jsb_puts(x, b, "<Cycler>"); return;
    case JV_JOINER: jsb_puts(x, b, "<Joiner>"); return;
    case JV_LIST:
    case JV_DICT: repr_rec(x, b, v, depth); return;
    }
}

static void repr_rec(jx *x, jsb *b, jv v, int depth)
{
    if (depth > MAX_VALUE_DEPTH)
        jx_fail(x, "value nested too deeply");
    jx_charge(x, 1);
    switch ((jtype)v.t) {
    case JV_UNDEF: jsb_puts(x, b, "Undefined"); return;
    case JV_STR: repr_str(x, b, v.u.s); return;
    case JV_LIST: {
        const char *open = "[", *close = "]";
        switch (v.sub) {
        case JL_TUPLE: open = "(", close = v.u.l->n == 1 ? ",)" : ")"; break;
        case JL_ITEMS: open = "dict_items([", close = "])"; break;
        case JL_KEYS: open = "dict_keys([", close = "])"; break;
        case JL_VALUES: open = "dict_values([", close = "])"; break;
        }
        jsb_puts(x, b, open);
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                jsb_put(x, b, ", ", 2);
            repr_rec(x, b, v.u.l->v[i], depth + 1);
        }
        jsb_puts(x, b, close);
        return;
    }
    case JV_DICT: {
        jsb_putc(x, b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                jsb_put(x, b, ", ", 2);
            repr_rec(x, b, v.u.d->k[i], depth + 1);
            jsb_put(x, b, ": ", 2);
            repr_rec(x, b, v.u.d->v[i], depth + 1);
        }
        jsb_putc(x, b, '}');
        return;
    }
    default: str_rec(x, b, v, depth); return;
    }
}

void jv_to_str(jx *x, jsb *b, jv v)
{
    str_rec(x, b, v, 0);
}

void jv_to_repr(jx *x, jsb *b, jv v)
{
    repr_rec(x, b, v, 0);
}

jv jv_as_string(jx *x, jv v)
{
    if (v.t == JV_STR)
        return v;
    jsb b;
    jsb_init(&b);
    jv_to_str(x, &b, v);
    return jsb_value(x, &b);
}

/* ---- JSON ----------------------------------------------------------------- */

static jv from_json_rec(jx *x, const json_t *j, int depth)
{
    if (depth > 4 * MAX_VALUE_DEPTH)
        jx_fail(x, "input JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jv d = jv_dict_new(x, json_object_size(j));
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)j, k, val)
        {
#if JANSSON_VERSION_HEX >= 0x020e00
            size_t klen = json_object_iter_key_len(json_object_key_to_iter(k)); /* keys may hold NULs */
#else
            size_t klen = strlen(k);
#endif
            jv key = jv_str_ref(x, k, klen);
            jv_dict_set(x, d, key, from_json_rec(x, val, depth + 1));
        }
        return d;
    }
    case JSON_ARRAY: {
        jv l = jv_list_new(x, json_array_size(j), JL_LIST);
        for (size_t i = 0; i < json_array_size(j); i++)
            l.u.l->v[i] = from_json_rec(x, json_array_get(j, i), depth + 1);
        l.u.l->n = json_array_size(j);
        return l;
    }
    case JSON_STRING: return jv_str_ref(x, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return jv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_TRUE: return jv_bool(true);
    case JSON_FALSE: return jv_bool(false);
    case JSON_NULL: return jv_none();
    }
    return jv_none();
}

jv jv_from_json(jx *x, const json_t *j)
{
    return from_json_rec(x, j, 0);
}

typedef struct {
    jx *x;
    jsb *b;
} jsb_sink;

static void sink_put(void *ctx, const char *p, size_t n)
{
    jsb_sink *k = ctx;
    jsb_put(k->x, k->b, p, n);
}

static void json_str(jx *x, jsb *b, const jstr *s, bool ensure_ascii)
{
    jsb_sink k = {x, b};
    jsb_putc(x, b, '"');
    glm_json_escape(sink_put, &k, s->p, s->len, ensure_ascii ? GLM_JSON_ASCII : 0);
    jsb_putc(x, b, '"');
}

static void json_newline(jx *x, jsb *b, const jjson_opts *o, int level)
{
    jsb_putc(x, b, '\n');
    for (int i = 0; i < level; i++)
        jsb_put(x, b, o->indent, o->indent_len);
}

static void json_key(jx *x, jsb *b, jv k, const jjson_opts *o)
{
    char num[32];
    switch (k.t) {
    case JV_STR: json_str(x, b, k.u.s, o->ensure_ascii); return;
    case JV_INT: jsb_printf(x, b, "\"%lld\"", (long long)k.u.i); return;
    case JV_FLOAT:
        py_float_repr(k.u.f, num);
        if (isnan(k.u.f))
            strcpy(num, "NaN");
        else if (isinf(k.u.f))
            strcpy(num, k.u.f < 0 ? "-Infinity" : "Infinity");
        jsb_printf(x, b, "\"%s\"", num);
        return;
    case JV_BOOL: jsb_puts(x, b, k.u.i ? "\"true\"" : "\"false\""); return;
    case JV_NONE: jsb_puts(x, b, "\"null\""); return;
    default: jx_fail(x, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
    }
}

static int cmp_key_idx(jx *x, jdict *d, size_t a, size_t b)
{
    return jv_cmp(x, d->k[a], d->k[b]);
}

void jv_to_json(jx *x, jsb *b, jv v, const jjson_opts *o, int level)
{
    if (level > MAX_VALUE_DEPTH)
        jx_fail(x, "value nested too deeply for tojson");
    jx_charge(x, 1);
    char num[32];
    switch ((jtype)v.t) {
    case JV_NONE: jsb_put(x, b, "null", 4); return;
    case JV_BOOL: jsb_puts(x, b, v.u.i ? "true" : "false"); return;
    case JV_INT: jsb_printf(x, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT:
        if (isnan(v.u.f))
            jsb_puts(x, b, "NaN");
        else if (isinf(v.u.f))
            jsb_puts(x, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else {
            py_float_repr(v.u.f, num);
            jsb_puts(x, b, num);
        }
        return;
    case JV_STR: json_str(x, b, v.u.s, o->ensure_ascii); return;
    case JV_LIST:
        if (v.sub == JL_LIST || v.sub == JL_TUPLE) {
            if (v.u.l->n == 0) {
                jsb_put(x, b, "[]", 2);
                return;
            }
            jsb_putc(x, b, '[');
            for (size_t i = 0; i < v.u.l->n; i++) {
                if (i)
                    jsb_put(x, b, o->item_sep, o->item_sep_len);
                if (o->indent)
                    json_newline(x, b, o, level + 1);
                jv_to_json(x, b, v.u.l->v[i], o, level + 1);
            }
            if (o->indent)
                json_newline(x, b, o, level);
            jsb_putc(x, b, ']');
            return;
        }
        break;
    case JV_DICT: {
        jdict *d = v.u.d;
        if (d->n == 0) {
            jsb_put(x, b, "{}", 2);
            return;
        }
        size_t *order = jx_alloc(x, d->n * sizeof *order);
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        if (o->sort_keys) /* insertion sort keeps it stable; charge the work */
            for (size_t i = 1; i < d->n; i++) {
                size_t cur = order[i], j = i;
                jx_charge(x, i);
                while (j > 0 && cmp_key_idx(x, d, order[j - 1], cur) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = cur;
            }
        jsb_putc(x, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                jsb_put(x, b, o->item_sep, o->item_sep_len);
            if (o->indent)
                json_newline(x, b, o, level + 1);
            json_key(x, b, d->k[order[i]], o);
            jsb_put(x, b, o->key_sep, o->key_sep_len);
            jv_to_json(x, b, d->v[order[i]], o, level + 1);
        }
        if (o->indent)
            json_newline(x, b, o, level);
        jsb_putc(x, b, '}');
        return;
    }
    default: break;
    }
    jx_fail(x, "Object of type %s is not JSON serializable", jv_type_name(v));
}

/* ---- iteration and slicing --------------------------------------------------------- */

void jv_iterate(jx *x, jv v, const jv **items, size_t *n)
{
    switch ((jtype)v.t) {
    case JV_UNDEF:
        *items = NULL;
        *n = 0;
        return;
    case JV_LIST:
        *items = v.u.l->v;
        *n = v.u.l->n;
        return;
    case JV_DICT:
        *items = v.u.d->k;
        *n = v.u.d->n;
        return;
    case JV_STR: {
        jstr *s = v.u.s;
        size_t nc = jstr_nchars(s);
        jx_charge(x, nc / 16);
        jv *out = jx_alloc(x, (nc ? nc : 1) * sizeof *out);
        const char *p = s->p, *end = s->p + s->len;
        for (size_t i = 0; i < nc; i++) {
            uint32_t cp;
            size_t k = glm_utf8_decode_valid(p, end, &cp);
            out[i] = jv_str_ref(x, p, k);
            p += k;
        }
        *items = out;
        *n = nc;
        return;
    }
    case JV_RANGE: {
        int64_t len = jrange_len(v.u.r);
        if ((uint64_t)len > x->arena.limit / sizeof(jv))
            jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
        jx_charge(x, (uint64_t)len / 16);
        jv *out = jx_alloc(x, (size_t)(len ? len : 1) * sizeof *out);
        for (int64_t i = 0; i < len; i++)
            out[i] = jv_int(jrange_at(v.u.r, i));
        *items = out;
        *n = (size_t)len;
        return;
    }
    default: jx_fail(x, "'%s' object is not iterable", jv_type_name(v));
    }
}

jv jv_str_slice_chars(jx *x, jv s, size_t from, size_t to)
{
    if (to <= from)
        return jv_str_ref(x, "", 0);
    size_t a = jstr_byte_offset(s.u.s, from), b = jstr_byte_offset(s.u.s, to);
    jv r = jv_str_ref(x, s.u.s->p + a, b - a);
    if (s.u.s->ascii == 1)
        r.u.s->ascii = 1;
    return r;
}

/* ---- conversions used by filters and methods ---------------------------------------- */

jv jv_list_of(jx *x, jv v)
{
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    jv out = jv_list_new(x, n, JL_LIST);
    if (n)
        jcopy(out.u.l->v, items, n * sizeof(jv));
    out.u.l->n = n;
    return out;
}

jv jv_items_of(jx *x, jv d)
{
    jv out = jv_list_new(x, d.u.d->n, JL_LIST);
    for (size_t i = 0; i < d.u.d->n; i++) {
        jv t = jv_list_new(x, 2, JL_TUPLE);
        t.u.l->v[0] = d.u.d->k[i];
        t.u.l->v[1] = d.u.d->v[i];
        t.u.l->n = 2;
        out.u.l->v[i] = t;
    }
    out.u.l->n = d.u.d->n;
    return out;
}
