/*
 * jinja_eval.c - the evaluator of the Jinja interpreter: statements (output,
 * if, for with loop variables / else / filter / break / continue, set, block
 * set, macros, call blocks, filter blocks, with) and expressions (names,
 * literals, attribute and item access, slicing, calls, filters, tests,
 * arithmetic, comparison chains, and/or/not, ~ and conditional expressions).
 *
 * Scoping follows jinja2: each for-loop iteration, for-else block, macro
 * call, with / set / filter / generation block gets a fresh scope whose
 * writes do not leak out (hence namespace()); `if` blocks do not open one.
 * Macros see the variables of the scope they were defined in as they are when
 * called. A frame starts with the names jinja2 makes undefined locals bound to
 * Undefined (see jnode.undef). Lookups fall back to the template globals
 * (range, namespace, dict, raise_exception, ...), then to Undefined.
 *
 * Every node evaluated and every loop iteration costs a step; the C stack use
 * of nested macro calls is bounded as well (see jinja.h for the limits).
 */
#include "text/jinja/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define STACK_LIMIT ((size_t)1 << 20) /* bytes of C stack a render may use */

struct jscope {
    jscope *parent;
    int n, cap;
    int *sym;
    jv *val;
};

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

static jv eval(jx *x, jscope *s, const jnode *n);
static int exec_body(jx *x, jscope *s, const jnodes *body);

static inline void step(jx *x)
{
    if (++x->steps > x->max_steps)
        jx_charge(x, 0);
}

static void check_stack(jx *x)
{
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    size_t used = here < x->stack_base ? x->stack_base - here : here - x->stack_base;
    if (used > STACK_LIMIT)
        jx_fail(x, "template nested or recursed too deeply");
}

_Noreturn static void fail_undefined(jx *x, jv u)
{
    if (u.sub == JU_MSG && u.u.s)
        jx_fail(x, "%.*s", (int)GLM_MIN(u.u.s->len, 200), u.u.s->p);
    if (!u.u.s)
        jx_fail(x, "undefined value");
    int n = (int)GLM_MIN(u.u.s->len, 100);
    jv owner = {0};
    owner.t = (uint8_t)u.aux;
    switch (u.sub) {
    case JU_ATTR:
        jx_fail(x, "'%s object' has no attribute '%.*s'", jv_type_name(owner), n, u.u.s->p);
    case JU_ITEM:
        jx_fail(x, "'%s object' has no element %.*s", jv_type_name(owner), n, u.u.s->p);
    default: jx_fail(x, "'%.*s' is undefined", n, u.u.s->p);
    }
}

/* ---- scopes -------------------------------------------------------------- */

static jscope *scope_new(jx *x, jscope *parent)
{
    jscope *s = jx_alloc(x, sizeof *s);
    s->parent = parent;
    return s;
}

static jv *scope_find_local(jscope *s, int sym)
{
    for (int i = s->n - 1; i >= 0; i--)
        if (s->sym[i] == sym)
            return &s->val[i];
    return NULL;
}

static void scope_set(jx *x, jscope *s, int sym, jv v)
{
    jv *slot = scope_find_local(s, sym);
    if (slot) {
        *slot = v;
        return;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 8;
        int *ns = jx_alloc(x, (size_t)cap * sizeof *ns);
        jv *nv = jx_alloc(x, (size_t)cap * sizeof *nv);
        if (s->n) {
            jcopy(ns, s->sym, (size_t)s->n * sizeof *ns);
            jcopy(nv, s->val, (size_t)s->n * sizeof *nv);
        }
        s->sym = ns;
        s->val = nv;
        s->cap = cap;
    }
    s->sym[s->n] = sym;
    s->val[s->n] = v;
    s->n++;
}

/* Binds the frame's declared-undefined names (see jnode.undef) in s. */
static void bind_undef(jx *x, jscope *s, const int *syms, int n)
{
    for (int i = 0; i < n; i++) {
        jv u = jv_undef();
        u.sub = JU_VAR;
        u.u.s = (jstr *)&x->t->syms[syms[i]]; /* read-only use */
        scope_set(x, s, syms[i], u);
    }
}

/* A new scope for a frame of the template (loop iteration, macro call, block). */
static jscope *frame_scope(jx *x, jscope *parent, const int *undef, int nundef)
{
    jscope *s = scope_new(x, parent);
    bind_undef(x, s, undef, nundef);
    return s;
}

static jv lookup(jx *x, jscope *s, int sym)
{
    for (; s; s = s->parent) {
        jv *v = scope_find_local(s, sym);
        if (v)
            return *v;
    }
    int g = x->t->sym_global[sym];
    if (g >= 0) {
        jfunc *f = jx_alloc(x, sizeof *f);
        f->kind = JF_GLOBAL;
        f->id = g;
        jv v = {0};
        v.t = JV_FUNC;
        v.u.fn = f;
        return v;
    }
    const jstr *name = &x->t->syms[sym];
    jv u = jv_undef();
    u.sub = JU_VAR;
    u.u.s = (jstr *)name; /* read-only use */
    return u;
}

/* ---- arguments ------------------------------------------------------------ */

void jargs_bind(jx *x, const jargs *a, const char *fname, const char *const *names, int nnames,
                int nreq, jv *out)
{
    for (int i = 0; i < nnames; i++) {
        out[i] = jv_undef();
        out[i].sub = JU_MSG;
    }
    if (a->n > nnames)
        jx_fail(x, "%s() takes at most %d argument%s (%d given)", fname, nnames,
                nnames == 1 ? "" : "s", a->n);
    for (int i = 0; i < a->n; i++)
        out[i] = a->v[i];
    for (int k = 0; k < a->nkw; k++) {
        int i;
        for (i = 0; i < nnames; i++)
            if (strlen(names[i]) == a->kwn[k]->len && memcmp(names[i], a->kwn[k]->p, a->kwn[k]->len) == 0)
                break;
        if (i == nnames)
            jx_fail(x, "%s() got an unexpected keyword argument '%.*s'", fname,
                    (int)GLM_MIN(a->kwn[k]->len, 60), a->kwn[k]->p);
        if (i < a->n || jarg_given(out[i]))
            jx_fail(x, "%s() got multiple values for argument '%s'", fname, names[i]);
        out[i] = a->kwv[k];
    }
    for (int i = 0; i < nreq; i++)
        if (!jarg_given(out[i]))
            jx_fail(x, "%s() missing required argument '%s'", fname, names[i]);
}

/* ---- attribute and item access -------------------------------------------------- */

static jv make_method(jx *x, jv self, int id)
{
    jfunc *f = jx_alloc(x, sizeof *f);
    f->kind = JF_METHOD;
    f->id = id;
    f->self = self;
    jv v = {0};
    v.t = JV_FUNC;
    v.u.fn = f;
    return v;
}

static jv loop_attr(jx *x, jv obj, const jstr *name, bool *found)
{
    jloop *lp = obj.u.lp;
    const char *p = name->p;
    size_t n = name->len;
    *found = true;
#define IS(s) (n == sizeof(s) - 1 && memcmp(p, s, n) == 0)
    if (IS("index"))
        return jv_int(lp->index0 + 1);
    if (IS("index0"))
        return jv_int(lp->index0);
    if (IS("revindex"))
        return jv_int(lp->length - lp->index0);
    if (IS("revindex0"))
        return jv_int(lp->length - lp->index0 - 1);
    if (IS("first"))
        return jv_bool(lp->index0 == 0);
    if (IS("last"))
        return jv_bool(lp->index0 == lp->length - 1);
    if (IS("length"))
        return jv_int(lp->length);
    if (IS("depth"))
        return jv_int(1);
    if (IS("depth0"))
        return jv_int(0);
    if (IS("previtem")) {
        if (lp->index0 > 0)
            return jloop_item(lp, lp->index0 - 1);
        return jv_undef_named(x, JU_MSG, JV_LOOP, "there is no previous item", 25);
    }
    if (IS("nextitem")) {
        if (lp->index0 + 1 < lp->length)
            return jloop_item(lp, lp->index0 + 1);
        return jv_undef_named(x, JU_MSG, JV_LOOP, "there is no next item", 21);
    }
#undef IS
    *found = false;
    return jv_undef();
}

jv jloop_item(jloop *lp, int64_t i)
{
    if (lp->items)
        return lp->items[i];
    return jv_int(jrange_at(&lp->range, i));
}

jv jx_getattr(jx *x, jv obj, const jstr *name)
{
    if (obj.t == JV_UNDEF)
        fail_undefined(x, obj);
    int mid = jb_method_id(obj, name->p, name->len);
    if (mid >= 0)
        return make_method(x, obj, mid);
    if (mid == -2) {
        char msg[160];
        int k = snprintf(msg, sizeof msg, "access to attribute '%.*s' of '%s' object is unsafe",
                         (int)GLM_MIN(name->len, 60), name->p, jv_type_name(obj));
        return jv_undef_named(x, JU_MSG, (jtype)obj.t, msg, (size_t)k);
    }
    switch ((jtype)obj.t) {
    case JV_DICT: {
        jv *v = jv_dict_get_str(obj, name->p, name->len);
        if (v)
            return *v;
        break;
    }
    case JV_NS: {
        jv d = obj;
        d.t = JV_DICT;
        jv *v = jv_dict_get_str(d, name->p, name->len);
        if (v)
            return *v;
        break;
    }
    case JV_LOOP: {
        bool found;
        jv v = loop_attr(x, obj, name, &found);
        if (found)
            return v;
        break;
    }
    case JV_CYCLER:
        if (name->len == 7 && memcmp(name->p, "current", 7) == 0) {
            jcycler *c = obj.u.cy;
            return c->items->n ? c->items->v[c->pos] : jv_none();
        }
        break;
    default: break;
    }
    return jv_undef_named(x, JU_ATTR, (jtype)obj.t, name->p, name->len);
}

/* Python index normalisation; false when out of range. */
static bool norm_index(jv key, int64_t len, int64_t *idx)
{
    int64_t i = key.u.i;
    if (i < 0)
        i += len;
    if (i < 0 || i >= len)
        return false;
    *idx = i;
    return true;
}

static jv undef_item(jx *x, jv obj, jv key)
{
    jsb b;
    jsb_init(&b);
    jv_to_repr(x, &b, key);
    return jv_undef_named(x, key.t == JV_STR ? JU_ATTR : JU_ITEM, (jtype)obj.t, b.p, b.len);
}

jv jx_getitem(jx *x, jv obj, jv key)
{
    if (obj.t == JV_UNDEF)
        fail_undefined(x, obj);
    bool int_key = key.t == JV_INT || key.t == JV_BOOL;
    int64_t i;
    switch ((jtype)obj.t) {
    case JV_DICT: {
        if (key.t == JV_LIST && key.sub != JL_TUPLE)
            jx_fail(x, "unhashable type: '%s'", jv_type_name(key));
        if (key.t == JV_DICT || key.t == JV_NS)
            jx_fail(x, "unhashable type: '%s'", jv_type_name(key));
        jv *v = jv_dict_get(x, obj, key);
        if (v)
            return *v;
        break;
    }
    case JV_LIST:
        if (int_key && (obj.sub == JL_LIST || obj.sub == JL_TUPLE)) {
            if (norm_index(key, (int64_t)obj.u.l->n, &i))
                return obj.u.l->v[i];
            return undef_item(x, obj, key);
        }
        break;
    case JV_STR:
        if (int_key) {
            jstr *s = obj.u.s;
            if (!norm_index(key, (int64_t)jstr_nchars(s), &i))
                return undef_item(x, obj, key);
            return jv_str_slice_chars(x, obj, (size_t)i, (size_t)i + 1);
        }
        break;
    case JV_RANGE:
        if (int_key) {
            if (norm_index(key, jrange_len(obj.u.r), &i))
                return jv_int(jrange_at(obj.u.r, i));
            return undef_item(x, obj, key);
        }
        break;
    default: break;
    }
    if (key.t == JV_STR)
        return jx_getattr(x, obj, key.u.s);
    return undef_item(x, obj, key);
}

/* "a.b.0" paths of filters' attribute= arguments (jinja2 make_attrgetter). */
jv jx_attr_path(jx *x, jv obj, jv path)
{
    if (path.t != JV_STR)
        return jx_getitem(x, obj, path);
    const char *p = path.u.s->p, *end = p + path.u.s->len;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *e = dot ? dot : end;
        bool digits = e > p;
        for (const char *q = p; q < e; q++)
            digits &= *q >= '0' && *q <= '9';
        jv key;
        if (digits && e - p < 18) {
            int64_t v = 0;
            for (const char *q = p; q < e; q++)
                v = v * 10 + (*q - '0');
            key = jv_int(v);
        } else {
            key = jv_str_ref(x, p, (size_t)(e - p));
        }
        obj = jx_getitem(x, obj, key);
        if (!dot)
            return obj;
        p = dot + 1;
    }
}

/* ---- slicing ---------------------------------------------------------------- */

static bool slice_index(jx *x, jv v, int64_t *out)
{
    if (v.t == JV_NONE || v.t == JV_UNDEF)
        return false;
    if (v.t != JV_INT && v.t != JV_BOOL)
        jx_fail(x, "slice indices must be integers or None");
    *out = v.u.i;
    return true;
}

/* Python PySlice_AdjustIndices; returns the item count. */
static int64_t adjust_slice(int64_t len, bool has_start, int64_t start, bool has_stop, int64_t stop,
                            int64_t stepv, int64_t *ostart)
{
    if (!has_start)
        start = stepv < 0 ? len - 1 : 0;
    else if (start < 0) {
        start += len;
        if (start < 0)
            start = stepv < 0 ? -1 : 0;
    } else if (start >= len) {
        start = stepv < 0 ? len - 1 : len;
    }
    if (!has_stop)
        stop = stepv < 0 ? -1 : len;
    else if (stop < 0) {
        stop += len;
        if (stop < 0)
            stop = stepv < 0 ? -1 : 0;
    } else if (stop >= len) {
        stop = stepv < 0 ? len - 1 : len;
    }
    *ostart = start;
    if (stepv > 0)
        return start < stop ? (stop - start - 1) / stepv + 1 : 0;
    return stop < start ? (start - stop - 1) / (-stepv) + 1 : 0;
}

static jv do_slice(jx *x, jscope *s, jv obj, const jnode *sl)
{
    int64_t start = 0, stop = 0, stepv = 1;
    bool hs = sl->a && slice_index(x, eval(x, s, sl->a), &start);
    bool he = sl->b && slice_index(x, eval(x, s, sl->b), &stop);
    if (sl->c && slice_index(x, eval(x, s, sl->c), &stepv) && stepv == 0)
        jx_fail(x, "slice step cannot be zero");
    if (stepv == INT64_MIN)
        stepv = INT64_MIN + 1;
    if (obj.t == JV_UNDEF)
        fail_undefined(x, obj);
    if (obj.t == JV_STR) {
        jstr *str = obj.u.s;
        size_t nc = jstr_nchars(str);
        int64_t first, cnt = adjust_slice((int64_t)nc, hs, start, he, stop, stepv, &first);
        if (stepv == 1)
            return jv_str_slice_chars(x, obj, (size_t)first, (size_t)(first + cnt));
        jx_charge(x, (uint64_t)nc / 64);
        /* code point offsets, then gather */
        size_t *off = jx_alloc(x, (nc + 1) * sizeof *off);
        size_t k = 0;
        for (size_t i = 0; i < str->len; i++)
            if (((unsigned char)str->p[i] & 0xC0) != 0x80)
                off[k++] = i;
        off[nc] = str->len;
        jsb b;
        jsb_init(&b);
        for (int64_t i = 0, pos = first; i < cnt; i++, pos += stepv)
            jsb_put(x, &b, str->p + off[pos], off[pos + 1] - off[pos]);
        return jsb_value(x, &b);
    }
    if (obj.t == JV_LIST || obj.t == JV_RANGE) {
        const jv *items;
        size_t n;
        jv_iterate(x, obj, &items, &n);
        int64_t first, cnt = adjust_slice((int64_t)n, hs, start, he, stop, stepv, &first);
        jx_charge(x, (uint64_t)cnt / 16);
        jv out = jv_list_new(x, (size_t)cnt, obj.t == JV_LIST && obj.sub == JL_TUPLE ? JL_TUPLE : JL_LIST);
        for (int64_t i = 0, pos = first; i < cnt; i++, pos += stepv)
            out.u.l->v[i] = items[pos];
        out.u.l->n = (size_t)cnt;
        return out;
    }
    /* jinja2 compiles slices to a plain Python subscript (no Undefined fallback) */
    if (obj.t == JV_DICT)
        jx_fail(x, "unhashable type: 'slice'");
    jx_fail(x, "'%s' object is not subscriptable", jv_type_name(obj));
}

/* ---- arithmetic --------------------------------------------------------------- */

static void need_defined(jx *x, jv v)
{
    if (v.t == JV_UNDEF)
        fail_undefined(x, v);
}

_Noreturn static void bad_operands(jx *x, const char *op, jv a, jv b)
{
    jx_fail(x, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
            jv_type_name(b));
}

static jv repeat(jx *x, jv seq, jv count)
{
    int64_t k = count.u.i < 0 ? 0 : count.u.i;
    if (seq.t == JV_STR) {
        size_t len = seq.u.s->len;
        if (len && (uint64_t)k > x->max_output / len)
            jx_fail(x, "template output exceeded %zu bytes", x->max_output);
        jx_charge(x, (uint64_t)k * len / 256);
        jsb b;
        jsb_init(&b);
        for (int64_t i = 0; i < k; i++)
            jsb_put(x, &b, seq.u.s->p, len);
        return jsb_value(x, &b);
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)k > x->arena.limit / sizeof(jv) / n)
        jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
    jx_charge(x, (uint64_t)k * n / 16);
    jv out = jv_list_new(x, (size_t)k * n, seq.sub == JL_TUPLE ? JL_TUPLE : JL_LIST);
    for (int64_t i = 0; i < k; i++)
        jcopy(out.u.l->v + (size_t)i * n, seq.u.l->v, n * sizeof(jv));
    out.u.l->n = (size_t)k * n;
    return out;
}

static bool is_seq(jv v)
{
    return v.t == JV_LIST && (v.sub == JL_LIST || v.sub == JL_TUPLE);
}

/* Python float divmod (Objects/floatobject.c). */
static void float_divmod(double vx, double wx, double *floordiv, double *mod)
{
    double m = fmod(vx, wx);
    double div = (vx - m) / wx;
    if (m != 0) {
        if ((wx < 0) != (m < 0)) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = copysign(0.0, wx);
    }
    double fd;
    if (div != 0) {
        fd = floor(div);
        if (div - fd > 0.5)
            fd += 1.0;
    } else {
        fd = copysign(0.0, vx / wx);
    }
    *floordiv = fd;
    *mod = m;
}

static jv arith(jx *x, int op, jv a, jv b)
{
    static const char *const opname[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (op == OP_MOD && a.t == JV_STR)
        return jb_percent_format(x, a, b);
    need_defined(x, a);
    need_defined(x, b);
    bool na = jv_is_num(a), nb = jv_is_num(b);
    bool ints = na && nb && a.t != JV_FLOAT && b.t != JV_FLOAT;
    int64_t r;
    switch (op) {
    case OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(a.u.i, b.u.i, &r))
                jx_fail(x, "integer overflow");
            return jv_int(r);
        }
        if (na && nb)
            return jv_float(jv_as_float(a) + jv_as_float(b));
        if (a.t == JV_STR && b.t == JV_STR) {
            jx_charge(x, (a.u.s->len + b.u.s->len) / 256);
            jsb sb;
            jsb_init(&sb);
            jsb_put(x, &sb, a.u.s->p, a.u.s->len);
            jsb_put(x, &sb, b.u.s->p, b.u.s->len);
            jv v = jsb_value(x, &sb);
            if (a.u.s->ascii == 1 && b.u.s->ascii == 1)
                v.u.s->ascii = 1;
            return v;
        }
        if (is_seq(a) && is_seq(b) && a.sub == b.sub) {
            size_t n = a.u.l->n + b.u.l->n;
            jx_charge(x, n / 16);
            jv out = jv_list_new(x, n, a.sub);
            if (a.u.l->n)
                jcopy(out.u.l->v, a.u.l->v, a.u.l->n * sizeof(jv));
            if (b.u.l->n)
                jcopy(out.u.l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(jv));
            out.u.l->n = n;
            return out;
        }
        if (a.t == JV_STR)
            jx_fail(x, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
        bad_operands(x, "+", a, b);
    case OP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(a.u.i, b.u.i, &r))
                jx_fail(x, "integer overflow");
            return jv_int(r);
        }
        if (na && nb)
            return jv_float(jv_as_float(a) - jv_as_float(b));
        bad_operands(x, "-", a, b);
    case OP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(a.u.i, b.u.i, &r))
                jx_fail(x, "integer overflow");
            return jv_int(r);
        }
        if (na && nb)
            return jv_float(jv_as_float(a) * jv_as_float(b));
        if ((a.t == JV_STR || is_seq(a)) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(x, a, b);
        if ((b.t == JV_STR || is_seq(b)) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(x, b, a);
        bad_operands(x, "*", a, b);
    case OP_DIV:
        if (na && nb) {
            if (jv_as_float(b) == 0)
                jx_fail(x, "division by zero");
            if (ints)
                return jv_float((double)a.u.i / (double)b.u.i);
            return jv_float(jv_as_float(a) / jv_as_float(b));
        }
        bad_operands(x, "/", a, b);
    case OP_FLOORDIV:
    case OP_MOD:
        if (op == OP_MOD && a.t == JV_STR)
            return jb_percent_format(x, a, b);
        if (ints) {
            if (b.u.i == 0)
                jx_fail(x, "integer division or modulo by zero");
            if (a.u.i == INT64_MIN && b.u.i == -1) {
                if (op == OP_MOD)
                    return jv_int(0);
                jx_fail(x, "integer overflow");
            }
            int64_t q = a.u.i / b.u.i, m = a.u.i % b.u.i;
            if (m != 0 && ((m < 0) != (b.u.i < 0))) {
                q -= 1;
                m += b.u.i;
            }
            return jv_int(op == OP_FLOORDIV ? q : m);
        }
        if (na && nb) {
            double fb = jv_as_float(b);
            if (fb == 0)
                jx_fail(x, "float divmod()");
            double fd, fm;
            float_divmod(jv_as_float(a), fb, &fd, &fm);
            return jv_float(op == OP_FLOORDIV ? fd : fm);
        }
        bad_operands(x, opname[op], a, b);
    case OP_POW:
        if (ints && b.u.i >= 0) {
            int64_t base = a.u.i, e = b.u.i, acc = 1;
            while (e > 0) {
                if (e & 1 && __builtin_mul_overflow(acc, base, &acc))
                    jx_fail(x, "integer overflow");
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base))
                    jx_fail(x, "integer overflow");
            }
            return jv_int(acc);
        }
        if (na && nb) {
            double fa = jv_as_float(a), fb = jv_as_float(b);
            if (fa == 0 && fb < 0)
                jx_fail(x, "0.0 cannot be raised to a negative power");
            return jv_float(pow(fa, fb));
        }
        bad_operands(x, "** or pow()", a, b);
    }
    GLM_ASSERT(!"bad operator");
    return jv_none();
}

/* Python `a in b`. */
static bool contains(jx *x, jv item, jv seq)
{
    switch ((jtype)seq.t) {
    case JV_UNDEF: return false;
    case JV_STR:
        if (item.t == JV_UNDEF)
            fail_undefined(x, item);
        if (item.t != JV_STR)
            jx_fail(x, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        jx_charge(x, seq.u.s->len / 256);
        if (item.u.s->len == 0)
            return true;
        return memmem(seq.u.s->p, seq.u.s->len, item.u.s->p, item.u.s->len) != NULL;
    case JV_DICT:
        if ((item.t == JV_LIST && item.sub != JL_TUPLE) || item.t == JV_DICT || item.t == JV_NS)
            jx_fail(x, "unhashable type: '%s'", jv_type_name(item));
        return jv_dict_get(x, seq, item) != NULL;
    case JV_LIST:
        jx_charge(x, seq.u.l->n / 16);
        for (size_t i = 0; i < seq.u.l->n; i++)
            if (jv_eq(x, seq.u.l->v[i], item))
                return true;
        return false;
    case JV_RANGE: {
        if (item.t != JV_INT && item.t != JV_BOOL &&
            !(item.t == JV_FLOAT && item.u.f == floor(item.u.f) && fabs(item.u.f) < 9e18))
            return false;
        int64_t v = item.t == JV_FLOAT ? (int64_t)item.u.f : item.u.i;
        const jrange *r = seq.u.r;
        if (r->step > 0 ? (v < r->start || v >= r->stop) : (v > r->start || v <= r->stop))
            return false;
        uint64_t dist = r->step > 0 ? (uint64_t)v - (uint64_t)r->start : (uint64_t)r->start - (uint64_t)v;
        uint64_t stride = r->step > 0 ? (uint64_t)r->step : (uint64_t)0 - (uint64_t)r->step;
        return dist % stride == 0;
    }
    default: jx_fail(x, "argument of type '%s' is not iterable", jv_type_name(seq));
    }
}

static bool compare(jx *x, int op, jv a, jv b)
{
    switch (op) {
    case CMP_EQ: return jv_eq(x, a, b);
    case CMP_NE: return !jv_eq(x, a, b);
    case CMP_IN: return contains(x, a, b);
    case CMP_NOTIN: return !contains(x, a, b);
    default: return jv_order(x, a, b, op);
    }
}

/* ---- calls ------------------------------------------------------------------ */

static void eval_args(jx *x, jscope *s, const jnode *n, jargs *a, int extra_kw)
{
    const jv *dyn = NULL;
    size_t ndyn = 0;
    jv dynkw = {0};
    if (n->dynargs)
        jv_iterate(x, eval(x, s, n->dynargs), &dyn, &ndyn);
    if (n->dynkw) {
        dynkw = eval(x, s, n->dynkw);
        if (dynkw.t != JV_DICT)
            jx_fail(x, "argument after ** must be a mapping, not %s", jv_type_name(dynkw));
    }
    size_t np = (size_t)n->args.n + ndyn;
    size_t nk = (size_t)n->kwvals.n + (n->dynkw ? dynkw.u.d->n : 0) + (size_t)extra_kw;
    if (np > 100000 || nk > 100000)
        jx_fail(x, "too many arguments");
    a->v = jx_alloc(x, (np ? np : 1) * sizeof(jv));
    a->kwv = jx_alloc(x, (nk ? nk : 1) * sizeof(jv));
    a->kwn = jx_alloc(x, (nk ? nk : 1) * sizeof(jstr *));
    a->n = 0;
    a->nkw = 0;
    for (int i = 0; i < n->args.n; i++)
        a->v[a->n++] = eval(x, s, n->args.v[i]);
    for (size_t i = 0; i < ndyn; i++)
        a->v[a->n++] = dyn[i];
    for (int i = 0; i < n->kwvals.n; i++) {
        a->kwn[a->nkw] = &x->t->syms[n->kwsyms[i]];
        a->kwv[a->nkw++] = eval(x, s, n->kwvals.v[i]);
    }
    if (n->dynkw)
        for (size_t i = 0; i < dynkw.u.d->n; i++) {
            jv k = dynkw.u.d->k[i];
            if (k.t != JV_STR)
                jx_fail(x, "keywords must be strings");
            for (int j = 0; j < a->nkw; j++)
                if (a->kwn[j]->len == k.u.s->len && memcmp(a->kwn[j]->p, k.u.s->p, k.u.s->len) == 0)
                    jx_fail(x, "got multiple values for keyword argument '%.*s'",
                            (int)GLM_MIN(k.u.s->len, 60), k.u.s->p);
            a->kwn[a->nkw] = k.u.s;
            a->kwv[a->nkw++] = dynkw.u.d->v[i];
        }
}

static jv capture(jx *x, jscope *s, const jnodes *body)
{
    jsb buf;
    jsb_init(&buf);
    jsb *saved = x->out;
    x->out = &buf;
    exec_body(x, s, body);
    x->out = saved;
    return jsb_value(x, &buf);
}

static const char *sym_name(jx *x, int sym)
{
    return x->t->syms[sym].p;
}

static jv call_macro(jx *x, jmacro *m, const jargs *a)
{
    const jnode *node = m->node;
    const char *mname = node->type == N_MACRO ? sym_name(x, node->sym) : "caller";
    if (x->depth >= x->max_depth)
        jx_fail(x, "macro calls nested deeper than %d (endless recursion?)", x->max_depth);
    check_stack(x);
    int np = node->nparams, ndef = node->kwvals.n, first_def = np - ndef;
    jscope *s = frame_scope(x, m->closure, node->undef, node->nundef);
    if (a->n > np && !node->catch_varargs)
        jx_fail(x, "macro '%s' takes not more than %d argument(s)", mname, np);
    bool *bound = jx_alloc(x, (size_t)(np ? np : 1) * sizeof *bound);
    bool *used = jx_alloc(x, (size_t)(a->nkw ? a->nkw : 1) * sizeof *used);
    for (int i = 0; i < np && i < a->n; i++) {
        scope_set(x, s, node->kwsyms[i], a->v[i]);
        bound[i] = true;
    }
    for (int i = a->n; i < np; i++) {
        const jstr *pn = &x->t->syms[node->kwsyms[i]];
        for (int k = 0; k < a->nkw; k++)
            if (!used[k] && a->kwn[k]->len == pn->len && memcmp(a->kwn[k]->p, pn->p, pn->len) == 0) {
                scope_set(x, s, node->kwsyms[i], a->kwv[k]);
                bound[i] = used[k] = true;
                break;
            }
    }
    jv caller = jv_undef();
    jv kwargs = jv_dict_new(x, 0);
    for (int k = 0; k < a->nkw; k++) {
        if (used[k])
            continue;
        if (node->uses_caller && a->kwn[k]->len == 6 && memcmp(a->kwn[k]->p, "caller", 6) == 0) {
            caller = a->kwv[k];
            continue;
        }
        if (!node->catch_kwargs)
            jx_fail(x, "macro '%s' takes no keyword argument '%.*s'", mname,
                    (int)GLM_MIN(a->kwn[k]->len, 60), a->kwn[k]->p);
        jv_dict_set(x, kwargs, jv_str_ref(x, a->kwn[k]->p, a->kwn[k]->len), a->kwv[k]);
    }
    for (int i = 0; i < np; i++) {
        if (bound[i])
            continue;
        jv v;
        if (i >= first_def) {
            v = eval(x, s, node->kwvals.v[i - first_def]);
        } else {
            char msg[128];
            int k = snprintf(msg, sizeof msg, "parameter '%s' was not provided", sym_name(x, node->kwsyms[i]));
            v = jv_undef_named(x, JU_MSG, JV_MACRO, msg, (size_t)k);
        }
        scope_set(x, s, node->kwsyms[i], v);
    }
    if (node->catch_varargs) {
        int extra = a->n > np ? a->n - np : 0;
        jv t = jv_list_new(x, (size_t)extra, JL_TUPLE);
        for (int i = 0; i < extra; i++)
            t.u.l->v[i] = a->v[np + i];
        t.u.l->n = (size_t)extra;
        scope_set(x, s, x->t->sym_varargs, t);
    }
    if (node->catch_kwargs)
        scope_set(x, s, x->t->sym_kwargs, kwargs);
    if (node->uses_caller)
        scope_set(x, s, x->t->sym_caller, caller);
    x->depth++;
    jv out = capture(x, s, &node->body);
    x->depth--;
    return out;
}

static jv joiner_call(jx *x, jcycler *j)
{
    if (!j->used) {
        j->used = true;
        return jv_str_ref(x, "", 0);
    }
    jv v = {0};
    v.t = JV_STR;
    v.u.s = j->sep;
    return v;
}

jv jx_call(jx *x, jv callee, const jargs *a)
{
    switch ((jtype)callee.t) {
    case JV_MACRO: return call_macro(x, callee.u.m, a);
    case JV_FUNC:
        if (callee.u.fn->kind == JF_GLOBAL)
            return jb_global(x, callee.u.fn->id, a);
        return jb_method(x, callee.u.fn->self, callee.u.fn->id, a);
    case JV_JOINER: return joiner_call(x, callee.u.cy);
    case JV_UNDEF: fail_undefined(x, callee);
    case JV_LOOP: jx_fail(x, "recursive loops are not supported");
    default: jx_fail(x, "'%s' object is not callable", jv_type_name(callee));
    }
}

static jv eval_call(jx *x, jscope *s, const jnode *n, jv *caller)
{
    jv callee = eval(x, s, n->a);
    jargs a;
    eval_args(x, s, n, &a, caller ? 1 : 0);
    if (caller) {
        a.kwn[a.nkw] = &x->t->syms[x->t->sym_caller];
        a.kwv[a.nkw++] = *caller;
    }
    return jx_call(x, callee, &a);
}

/* ---- expressions ---------------------------------------------------------- */

static jv eval_seq(jx *x, jscope *s, const jnode *n, int kind)
{
    jv l = jv_list_new(x, (size_t)n->args.n, kind);
    for (int i = 0; i < n->args.n; i++)
        l.u.l->v[i] = eval(x, s, n->args.v[i]);
    l.u.l->n = (size_t)n->args.n;
    return l;
}

static jv eval(jx *x, jscope *s, const jnode *n)
{
    step(x);
    x->line = n->line;
    switch (n->type) {
    case N_CONST: return n->val;
    case N_NAME: return lookup(x, s, n->sym);
    case N_GETATTR: return jx_getattr(x, eval(x, s, n->a), n->val.u.s);
    case N_GETITEM: {
        jv obj = eval(x, s, n->a);
        if (n->b->type == N_SLICE)
            return do_slice(x, s, obj, n->b);
        jv key = eval(x, s, n->b);
        x->line = n->line;
        return jx_getitem(x, obj, key);
    }
    case N_CALL: {
        check_stack(x);
        jv r = eval_call(x, s, n, NULL);
        return r;
    }
    case N_FILTER: {
        jv v = n->a ? eval(x, s, n->a) : jv_none();
        jargs a;
        eval_args(x, s, n, &a, 0);
        x->line = n->line;
        return jb_filter(x, n->op, v, &a);
    }
    case N_TEST: {
        jv v = eval(x, s, n->a);
        jargs a;
        eval_args(x, s, n, &a, 0);
        x->line = n->line;
        return jv_bool(jb_test(x, n->op, v, &a));
    }
    case N_LIST: return eval_seq(x, s, n, JL_LIST);
    case N_TUPLE: return eval_seq(x, s, n, JL_TUPLE);
    case N_DICT: {
        jv d = jv_dict_new(x, (size_t)n->args.n);
        for (int i = 0; i < n->args.n; i++) {
            jv k = eval(x, s, n->args.v[i]);
            jv v = eval(x, s, n->kwvals.v[i]);
            jv_hash(x, k);
            jv_dict_set(x, d, k, v);
        }
        return d;
    }
    case N_BINOP: {
        jv a = eval(x, s, n->a);
        jv b = eval(x, s, n->b);
        x->line = n->line;
        return arith(x, n->op, a, b);
    }
    case N_NEG:
    case N_POS: {
        jv a = eval(x, s, n->a);
        need_defined(x, a);
        if (a.t == JV_FLOAT)
            return jv_float(n->type == N_NEG ? -a.u.f : a.u.f);
        if (a.t == JV_INT || a.t == JV_BOOL) {
            if (n->type == N_POS)
                return jv_int(a.u.i);
            if (a.u.i == INT64_MIN)
                jx_fail(x, "integer overflow");
            return jv_int(-a.u.i);
        }
        jx_fail(x, "bad operand type for unary %c: '%s'", n->type == N_NEG ? '-' : '+', jv_type_name(a));
    }
    case N_NOT: return jv_bool(!jv_truthy(eval(x, s, n->a)));
    case N_AND: {
        jv a = eval(x, s, n->a);
        return jv_truthy(a) ? eval(x, s, n->b) : a;
    }
    case N_OR: {
        jv a = eval(x, s, n->a);
        return jv_truthy(a) ? a : eval(x, s, n->b);
    }
    case N_COMPARE: {
        jv left = eval(x, s, n->a);
        for (int i = 0; i < n->args.n; i++) {
            jv right = eval(x, s, n->args.v[i]);
            x->line = n->line;
            if (!compare(x, n->ops[i], left, right))
                return jv_bool(false);
            left = right;
        }
        return jv_bool(true);
    }
    case N_CONCAT: {
        jsb b;
        jsb_init(&b);
        for (int i = 0; i < n->args.n; i++)
            jv_to_str(x, &b, eval(x, s, n->args.v[i]));
        jx_charge(x, b.len / 256);
        return jsb_value(x, &b);
    }
    case N_CONDEXPR:
        if (jv_truthy(eval(x, s, n->a)))
            return eval(x, s, n->b);
        if (n->c)
            return eval(x, s, n->c);
        return jv_undef_named(x, JU_MSG, JV_NONE, "the inline if-expression evaluated to false and no else section was defined.", 76);
    default: break;
    }
    jx_fail(x, "invalid expression");
}

/* ---- statements ------------------------------------------------------------ */

static void unpack(jx *x, jscope *s, const jnode *target, jv value)
{
    if (target->type == N_NAME) {
        scope_set(x, s, target->sym, value);
        return;
    }
    if (target->type == N_NSREF) {
        jv ns = lookup(x, s, target->sym);
        if (ns.t != JV_NS)
            jx_fail(x, "cannot assign attribute on non-namespace object");
        const jstr *attr = target->val.u.s;
        if (attr->len && attr->p[0] == '_')
            jx_fail(x, "chat templates cannot store underscore-prefixed attributes on a namespace");
        jv d = ns;
        d.t = JV_DICT;
        jv_dict_set(x, d, jv_str_ref(x, attr->p, attr->len), value);
        return;
    }
    const jv *items;
    size_t n;
    jv_iterate(x, value, &items, &n);
    size_t want = (size_t)target->args.n;
    if (n > want)
        jx_fail(x, "too many values to unpack (expected %zu)", want);
    if (n < want)
        jx_fail(x, "not enough values to unpack (expected %zu, got %zu)", want, n);
    for (size_t i = 0; i < n; i++)
        scope_set(x, s, target->args.v[i]->sym, items[i]);
}

static jv apply_filters(jx *x, jscope *s, const jnode *chain, jv v)
{
    if (!chain)
        return v;
    v = apply_filters(x, s, chain->a, v);
    jargs a;
    eval_args(x, s, chain, &a, 0);
    x->line = chain->line;
    return jb_filter(x, chain->op, v, &a);
}

static int exec_for(jx *x, jscope *s, const jnode *n)
{
    jv seq = eval(x, s, n->b);
    jloop *lp = jx_alloc(x, sizeof *lp);
    lp->last_changed = jv_undef();
    jscope *body = scope_new(x, s);
    if (seq.t == JV_RANGE && !n->c) {
        lp->range = *seq.u.r;
        lp->length = jrange_len(seq.u.r);
    } else {
        const jv *items;
        size_t cnt;
        jv_iterate(x, seq, &items, &cnt);
        if (n->c) {
            jv kept = jv_list_new(x, cnt, JL_LIST);
            for (size_t i = 0; i < cnt; i++) {
                step(x);
                body->n = 0;
                unpack(x, body, n->a, items[i]);
                if (jv_truthy(eval(x, body, n->c)))
                    kept.u.l->v[kept.u.l->n++] = items[i];
            }
            items = kept.u.l->v;
            cnt = kept.u.l->n;
        }
        lp->items = items;
        lp->length = (int64_t)cnt;
    }
    jv loopv = {0};
    loopv.t = JV_LOOP;
    loopv.u.lp = lp;
    x->line = n->line;
    /* jinja2 runs `else` unless some iteration reached the end of the body:
     * with no items, and also when every iteration left by break/continue */
    bool completed = false;
    for (int64_t i = 0; i < lp->length; i++) {
        step(x);
        lp->index0 = i;
        body->n = 0;
        bind_undef(x, body, n->undef, n->nundef);
        unpack(x, body, n->a, jloop_item(lp, i));
        scope_set(x, body, x->t->sym_loop, loopv);
        int flow = exec_body(x, body, &n->body);
        if (flow == FLOW_NORMAL)
            completed = true;
        if (flow == FLOW_BREAK)
            break;
    }
    if (!completed && n->orelse.n)
        return exec_body(x, frame_scope(x, s, n->undef_else, n->nundef_else), &n->orelse);
    return FLOW_NORMAL;
}

static jv make_macro(jx *x, const jnode *node, jscope *closure)
{
    jmacro *m = jx_alloc(x, sizeof *m);
    m->node = node;
    m->closure = closure;
    m->name = node->type == N_MACRO ? x->t->syms[node->sym].p : "caller";
    jv v = {0};
    v.t = JV_MACRO;
    v.u.m = m;
    return v;
}

static void output(jx *x, jscope *s, const jnode *n)
{
    for (int i = 0; i < n->args.n; i++) {
        const jnode *c = n->args.v[i];
        if (c->type == N_DATA) {
            jsb_put(x, x->out, c->val.u.s->p, c->val.u.s->len);
            continue;
        }
        jv v = eval(x, s, c);
        if (v.t == JV_STR)
            jsb_put(x, x->out, v.u.s->p, v.u.s->len);
        else
            jv_to_str(x, x->out, v);
    }
}

static int exec_stmt(jx *x, jscope *s, const jnode *n)
{
    step(x);
    x->line = n->line;
    switch (n->type) {
    case N_OUTPUT: output(x, s, n); return FLOW_NORMAL;
    case N_IF:
        if (jv_truthy(eval(x, s, n->a)))
            return exec_body(x, s, &n->body);
        return exec_body(x, s, &n->orelse);
    case N_FOR: return exec_for(x, s, n);
    case N_SET: unpack(x, s, n->a, eval(x, s, n->b)); return FLOW_NORMAL;
    case N_SETBLOCK: { /* like filter blocks, the body has its own scope */
        jv v = capture(x, frame_scope(x, s, n->undef, n->nundef), &n->body);
        unpack(x, s, n->a, apply_filters(x, s, n->b, v));
        return FLOW_NORMAL;
    }
    case N_MACRO: scope_set(x, s, n->sym, make_macro(x, n, s)); return FLOW_NORMAL;
    case N_CALLBLOCK: {
        jv caller = make_macro(x, n, s);
        jv v = eval_call(x, s, n->a, &caller);
        jv_to_str(x, x->out, v);
        return FLOW_NORMAL;
    }
    case N_FILTERBLOCK: {
        jv v = capture(x, frame_scope(x, s, n->undef, n->nundef), &n->body);
        v = apply_filters(x, s, n->b, v);
        jv_to_str(x, x->out, v);
        return FLOW_NORMAL;
    }
    case N_WITH: {
        jv *vals = jx_alloc(x, (size_t)(n->kwvals.n ? n->kwvals.n : 1) * sizeof *vals);
        for (int i = 0; i < n->kwvals.n; i++)
            vals[i] = eval(x, s, n->kwvals.v[i]);
        jscope *inner = frame_scope(x, s, n->undef, n->nundef);
        for (int i = 0; i < n->args.n; i++)
            unpack(x, inner, n->args.v[i], vals[i]);
        return exec_body(x, inner, &n->body);
    }
    case N_SCOPE: /* {% generation %}: a call block in transformers, so its own frame */
        return exec_body(x, frame_scope(x, s, n->undef, n->nundef), &n->body);
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    default: break;
    }
    jx_fail(x, "invalid statement");
}

static int exec_body(jx *x, jscope *s, const jnodes *body)
{
    for (int i = 0; i < body->n; i++) {
        int flow = exec_stmt(x, s, body->v[i]);
        if (flow != FLOW_NORMAL)
            return flow;
    }
    return FLOW_NORMAL;
}

void jinja_eval_template(jx *x, const json_t *ctx)
{
    char base;
    x->stack_base = (uintptr_t)&base;
    const glm_jinja *t = x->t;
    x->root = frame_scope(x, NULL, t->root_undef, t->nroot_undef);
    if (ctx)
        for (int i = 0; i < t->nsyms; i++) {
            json_t *v = json_object_get(ctx, t->syms[i].p);
            if (v && !scope_find_local(x->root, i))
                scope_set(x, x->root, i, jv_from_json(x, v));
        }
    exec_body(x, x->root, &t->body);
}
