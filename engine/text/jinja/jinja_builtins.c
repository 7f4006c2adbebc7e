/*
 * jinja_builtins.c - jinja2's filters and tests, the sandbox's globals (range
 * limited to 100000 items, namespace, dict, cycler, joiner) and transformers'
 * additions (raise_exception, strftime_now, tojson with json.dumps's
 * ensure_ascii / indent / separators / sort_keys).
 *
 * Each builtin binds its arguments by the parameter names of the jinja2 /
 * Python original, so keyword use works the same way.
 */
#include "text/jinja/jinja_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#define MAX_RANGE 100000







/* ---- string helpers (code points) ------------------------------------------ */














/* ---- printf-style % formatting ------------------------------------------------- */



/* ---- str.format ----------------------------------------------------------------- */



/* ---- sorting (stable merge sort; comparisons may fail the render) ------------------- */

typedef struct {
    jv key, item;
} keyed;

static void merge_sort(jx *x, keyed *a, keyed *tmp, size_t n, bool reverse)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    merge_sort(x, a, tmp, h, reverse);
    merge_sort(x, a + h, tmp, n - h, reverse);
    size_t i = 0, j = h, k = 0;
    jx_charge(x, n / 8);
    while (i < h && j < n) {
        int c = reverse ? jv_cmp(x, a[i].key, a[j].key) : jv_cmp(x, a[j].key, a[i].key);
        /* take from the right only when strictly before the left one */
        if (c < 0)
            tmp[k++] = a[j++];
        else
            tmp[k++] = a[i++];
    }
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    jcopy(a, tmp, n * sizeof *a);
}

static jv ignore_case(jx *x, jv v)
{
    if (v.t == JV_STR)
        return js_case(x, v, 1);
    return v;
}

/* sort key of an item: attribute path(s) "a,b" and case folding */
static jv sort_key(jx *x, jv item, jv attribute, bool case_sensitive, bool multi)
{
    if (!jarg_given(attribute) || attribute.t == JV_NONE)
        return case_sensitive ? item : ignore_case(x, item);
    if (multi && attribute.t == JV_STR && memchr(attribute.u.s->p, ',', attribute.u.s->len)) {
        jv parts = js_split(x, attribute, jv_str_ref(x, ",", 1), -1, false);
        jv key = jv_list_new(x, parts.u.l->n, JL_LIST);
        for (size_t i = 0; i < parts.u.l->n; i++) {
            jv v = jx_attr_path(x, item, parts.u.l->v[i]);
            key.u.l->v[i] = case_sensitive ? v : ignore_case(x, v);
        }
        key.u.l->n = parts.u.l->n;
        return key;
    }
    jv v = jx_attr_path(x, item, attribute);
    return case_sensitive ? v : ignore_case(x, v);
}

static jv sorted(jx *x, jv seq, bool reverse, bool case_sensitive, jv attribute, bool multi)
{
    const jv *items;
    size_t n;
    jv_iterate(x, seq, &items, &n);
    keyed *k = jx_alloc(x, (n ? n : 1) * sizeof *k), *tmp = jx_alloc(x, (n ? n : 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        k[i].item = items[i];
        k[i].key = sort_key(x, items[i], attribute, case_sensitive, multi);
    }
    merge_sort(x, k, tmp, n, reverse);
    jv out = jv_list_new(x, n, JL_LIST);
    for (size_t i = 0; i < n; i++)
        out.u.l->v[i] = k[i].item;
    out.u.l->n = n;
    return out;
}

/* ---- JSON ------------------------------------------------------------------------ */

static jv tojson(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    jv p[4];
    jargs_bind(x, a, "tojson", names, 4, 0, p);
    jjson_opts o = {.item_sep = ", ", .key_sep = ": ", .item_sep_len = 2, .key_sep_len = 2};
    o.ensure_ascii = jarg_given(p[0]) && jv_truthy(p[0]);
    o.sort_keys = jarg_given(p[3]) && jv_truthy(p[3]);
    char spaces[64];
    if (jarg_given(p[1]) && p[1].t != JV_NONE) {
        if (p[1].t == JV_STR) {
            o.indent = p[1].u.s->p;
            o.indent_len = p[1].u.s->len;
        } else {
            int64_t w = jb_want_int(x, p[1], "tojson indent");
            w = w < 0 ? 0 : w > 63 ? 63 : w;
            memset(spaces, ' ', (size_t)w);
            o.indent = spaces;
            o.indent_len = (size_t)w;
        }
        o.item_sep = ",";
        o.item_sep_len = 1;
    }
    if (jarg_given(p[2]) && p[2].t != JV_NONE) {
        if (p[2].t != JV_LIST || p[2].u.l->n != 2 || p[2].u.l->v[0].t != JV_STR ||
            p[2].u.l->v[1].t != JV_STR)
            jx_fail(x, "tojson: separators must be a pair of strings");
        o.item_sep = p[2].u.l->v[0].u.s->p;
        o.item_sep_len = p[2].u.l->v[0].u.s->len;
        o.key_sep = p[2].u.l->v[1].u.s->p;
        o.key_sep_len = p[2].u.l->v[1].u.s->len;
    }
    if (v.t == JV_UNDEF)
        jx_fail(x, "Object of type Undefined is not JSON serializable");
    jsb b;
    jsb_init(&b);
    jv_to_json(x, &b, v, &o, 0);
    jv r = jsb_value(x, &b);
    if (!o.ensure_ascii)
        return r;
    r.u.s->ascii = 1;
    return r;
}

/* ---- filters ----------------------------------------------------------------------- */

enum {
    F_ABS, F_ATTR, F_BATCH, F_CAPITALIZE, F_CENTER, F_COUNT, F_D, F_DEFAULT, F_DICTSORT, F_E,
    F_ESCAPE, F_FIRST, F_FLOAT, F_FORCEESCAPE, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN, F_LAST,
    F_LENGTH, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE, F_REVERSE,
    F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SLICE, F_SORT, F_STRING, F_SUM, F_TITLE, F_TOJSON,
    F_TRIM, F_UNIQUE, F_UPPER, F_WORDCOUNT, F_COUNT_
};

static const char *const FILTERS[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
    "escape", "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last",
    "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse",
    "round", "safe", "select", "selectattr", "slice", "sort", "string", "sum", "title", "tojson",
    "trim", "unique", "upper", "wordcount",
};

int jb_filter_id(const char *name, size_t n)
{
    for (int i = 0; i < F_COUNT_; i++)
        if (strlen(FILTERS[i]) == n && memcmp(FILTERS[i], name, n) == 0)
            return i;
    return -1;
}


static jv html_escape(jx *x, jv v)
{
    jv s = jv_as_string(x, v);
    jsb b;
    jsb_init(&b);
    for (size_t i = 0; i < s.u.s->len; i++) {
        char c = s.u.s->p[i];
        switch (c) {
        case '&': jsb_puts(x, &b, "&amp;"); break;
        case '<': jsb_puts(x, &b, "&lt;"); break;
        case '>': jsb_puts(x, &b, "&gt;"); break;
        case '"': jsb_puts(x, &b, "&#34;"); break;
        case '\'': jsb_puts(x, &b, "&#39;"); break;
        default: jsb_putc(x, &b, c);
        }
    }
    return jsb_value(x, &b);
}

static jv int_filter(jx *x, jv v, jv def, jv basev)
{
    int64_t base = jarg_given(basev) ? jb_want_int(x, basev, "int") : 10;
    jv dflt = jarg_given(def) ? def : jv_int(0);
    int64_t i;
    double f;
    switch ((jtype)v.t) {
    case JV_INT:
    case JV_BOOL: return jv_int(v.u.i);
    case JV_FLOAT:
        if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return dflt;
        return jv_int((int64_t)v.u.f);
    case JV_UNDEF: jb_need_defined(x, v); return dflt;
    case JV_STR:
        /* int(value, base), else int(float(value)) ("42.23"|int is 42), else the default */
        if (js_parse_int(v.u.s, (int)base, &i))
            return jv_int(i);
        if (js_parse_float(v.u.s, &f) && isfinite(f) && fabs(f) < 9.2e18)
            return jv_int((int64_t)f);
        return dflt;
    default: return dflt;
    }
}

static jv float_filter(jx *x, jv v, jv def)
{
    jv dflt = jarg_given(def) ? def : jv_float(0.0);
    double f;
    if (v.t == JV_FLOAT)
        return v;
    if (v.t == JV_INT || v.t == JV_BOOL)
        return jv_float((double)v.u.i);
    jb_need_defined(x, v);
    if (v.t == JV_STR && js_parse_float(v.u.s, &f))
        return jv_float(f);
    return dflt;
}

static jv do_round(jx *x, jv v, jv precv, jv methodv)
{
    int64_t prec = jarg_given(precv) ? jb_want_int(x, precv, "round") : 0;
    int method = 0;
    if (jarg_given(methodv)) {
        const jstr *m = jb_want_str(x, methodv, "round");
        if (jb_str_eq(m, "common"))
            method = 0;
        else if (jb_str_eq(m, "ceil"))
            method = 1;
        else if (jb_str_eq(m, "floor"))
            method = 2;
        else
            jx_fail(x, "method must be common, ceil or floor");
    }
    jb_need_defined(x, v);
    if (!jv_is_num(v))
        jx_fail(x, "type %s doesn't define __round__ method", jv_type_name(v));
    if (prec > 300)
        prec = 300;
    if (prec < -300)
        prec = -300;
    if (method == 0) {
        if (v.t != JV_FLOAT) {
            if (prec >= 0)
                return jv_int(v.u.i);
            double scale = pow(10.0, (double)-prec);
            double r = nearbyint((double)v.u.i / scale) * scale;
            return fabs(r) < 9.2e18 ? jv_int((int64_t)r) : jv_int(0);
        }
        double f = v.u.f;
        if (!isfinite(f))
            return v;
        if (prec >= 0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)GLM_MIN(prec, 60), f);
            return jv_float(strtod(buf, NULL));
        }
        double scale = pow(10.0, (double)-prec);
        return jv_float(nearbyint(f / scale) * scale);
    }
    double scale = pow(10.0, (double)prec);
    double f = jv_as_float(v) * scale;
    f = method == 1 ? ceil(f) : floor(f);
    return jv_float(f / scale);
}

static jv first_item(jx *x, jv v)
{
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    if (!n)
        return jb_undef_msg(x, "No first item, sequence was empty.");
    return items[0];
}

static jv last_item(jx *x, jv v)
{
    if (v.t == JV_STR) {
        size_t n = jstr_nchars(v.u.s);
        if (!n)
            return jb_undef_msg(x, "No last item, sequence was empty.");
        return jv_str_slice_chars(x, v, n - 1, n);
    }
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    if (!n)
        return jb_undef_msg(x, "No last item, sequence was empty.");
    return items[n - 1];
}



/* select/reject/selectattr/rejectattr */
static jv select_filter(jx *x, jv v, const jargs *a, bool attr, bool keep_if)
{
    jv out = jv_list_new(x, 0, JL_LIST);
    if (!jv_truthy(v))
        return out;
    int off = 0;
    jv attrv = jv_none();
    if (attr) {
        if (a->n < 1)
            jx_fail(x, "Missing parameter for attribute name");
        attrv = a->v[0];
        off = 1;
    }
    int test = -1;
    jargs targs = {0};
    if (a->n > off) {
        const jstr *name = jb_want_str(x, a->v[off], "select");
        test = jb_test_id(name->p, name->len);
        if (test < 0)
            jx_fail(x, "no test named '%.*s'", (int)GLM_MIN(name->len, 60), name->p);
        targs.n = a->n - off - 1;
        targs.v = a->v + off + 1;
        targs.nkw = a->nkw;
        targs.kwn = a->kwn;
        targs.kwv = a->kwv;
    }
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    for (size_t i = 0; i < n; i++) {
        jx_charge(x, 1);
        jv val = attr ? jx_attr_path(x, items[i], attrv) : items[i];
        bool r = test >= 0 ? jb_test(x, test, val, &targs) : jv_truthy(val);
        if (r == keep_if)
            jv_list_push(x, out, items[i]);
    }
    return out;
}

static jv map_filter(jx *x, jv v, const jargs *a)
{
    jv out = jv_list_new(x, 0, JL_LIST);
    if (!jv_truthy(v))
        return out;
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    if (a->n == 0) {
        jv attribute = jv_undef(), dflt = jv_none();
        bool have_default = false;
        for (int k = 0; k < a->nkw; k++) {
            if (jb_str_eq(a->kwn[k], "attribute"))
                attribute = a->kwv[k];
            else if (jb_str_eq(a->kwn[k], "default"))
                dflt = a->kwv[k], have_default = true;
            else
                jx_fail(x, "Unexpected keyword argument '%.*s'", (int)GLM_MIN(a->kwn[k]->len, 60),
                        a->kwn[k]->p);
        }
        if (attribute.t == JV_UNDEF)
            jx_fail(x, "map requires a filter argument");
        for (size_t i = 0; i < n; i++) {
            jx_charge(x, 1);
            jv r = jx_attr_path(x, items[i], attribute);
            if (have_default && dflt.t != JV_NONE && r.t == JV_UNDEF)
                r = dflt;
            jv_list_push(x, out, r);
        }
        return out;
    }
    const jstr *name = jb_want_str(x, a->v[0], "map");
    int f = jb_filter_id(name->p, name->len);
    if (f < 0)
        jx_fail(x, "no filter named '%.*s'", (int)GLM_MIN(name->len, 60), name->p);
    jargs fa = *a;
    fa.n = a->n - 1;
    fa.v = a->v + 1;
    for (size_t i = 0; i < n; i++) {
        jx_charge(x, 1);
        jv_list_push(x, out, jb_filter(x, f, items[i], &fa));
    }
    return out;
}

static jv min_max(jx *x, jv v, const jargs *a, bool want_max)
{
    static const char *const names[] = {"case_sensitive", "attribute"};
    jv p[2];
    jargs_bind(x, a, want_max ? "max" : "min", names, 2, 0, p);
    bool cs = jarg_given(p[0]) && jv_truthy(p[0]);
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    if (!n)
        return jb_undef_msg(x, "No aggregated item, sequence was empty.");
    size_t best = 0;
    jv bestk = sort_key(x, items[0], p[1], cs, false);
    for (size_t i = 1; i < n; i++) {
        jv k = sort_key(x, items[i], p[1], cs, false);
        if (want_max ? jv_order(x, k, bestk, CMP_GT) : jv_order(x, k, bestk, CMP_LT)) {
            best = i;
            bestk = k;
        }
    }
    return items[best];
}

static jv unique_filter(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"case_sensitive", "attribute"};
    jv p[2];
    jargs_bind(x, a, "unique", names, 2, 0, p);
    bool cs = jarg_given(p[0]) && jv_truthy(p[0]);
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    jv seen = jv_dict_new(x, 0), out = jv_list_new(x, 0, JL_LIST);
    for (size_t i = 0; i < n; i++) {
        jv k = sort_key(x, items[i], p[1], cs, false);
        jv_hash(x, k);
        if (!jv_dict_get(x, seen, k)) {
            jv_dict_set(x, seen, k, jv_none());
            jv_list_push(x, out, items[i]);
        }
    }
    return out;
}

static jv indent_filter(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"width", "first", "blank"};
    jv p[3];
    jargs_bind(x, a, "indent", names, 3, 0, p);
    jv ind;
    if (jarg_given(p[0]) && p[0].t == JV_STR) {
        ind = p[0];
    } else {
        int64_t w = jarg_given(p[0]) ? jb_want_int(x, p[0], "indent") : 4;
        w = w < 0 ? 0 : w > 1000 ? 1000 : w;
        char sp[1001];
        memset(sp, ' ', (size_t)w);
        ind = jv_str(x, sp, (size_t)w);
    }
    bool first = jarg_given(p[1]) && jv_truthy(p[1]), blank = jarg_given(p[2]) && jv_truthy(p[2]);
    if (v.t != JV_STR) {
        jb_need_defined(x, v);
        jx_fail(x, "indent: unsupported operand type(s) for +=: '%s' and 'str'", jv_type_name(v));
    }
    jv s = v;
    jsb tmp;
    jsb_init(&tmp);
    jsb_put(x, &tmp, s.u.s->p, s.u.s->len);
    jsb_putc(x, &tmp, '\n');
    jv lines = js_splitlines(x, jsb_value(x, &tmp), false);
    jsb b;
    jsb_init(&b);
    jlist *l = lines.u.l;
    for (size_t i = 0; i < l->n; i++) {
        jv line = l->v[i];
        if (i > 0)
            jsb_putc(x, &b, '\n');
        bool do_indent = blank ? i > 0 : (i > 0 && line.u.s->len > 0);
        if (do_indent)
            jsb_put(x, &b, ind.u.s->p, ind.u.s->len);
        jsb_put(x, &b, line.u.s->p, line.u.s->len);
    }
    jv r = jsb_value(x, &b);
    if (first) {
        jsb f;
        jsb_init(&f);
        jsb_put(x, &f, ind.u.s->p, ind.u.s->len);
        jsb_put(x, &f, r.u.s->p, r.u.s->len);
        r = jsb_value(x, &f);
    }
    return r;
}

static jv sum_filter(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"attribute", "start"};
    jv p[2];
    jargs_bind(x, a, "sum", names, 2, 0, p);
    jv acc = jarg_given(p[1]) ? p[1] : jv_int(0);
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    for (size_t i = 0; i < n; i++) {
        jv it = jarg_given(p[0]) && p[0].t != JV_NONE ? jx_attr_path(x, items[i], p[0]) : items[i];
        if (!jv_is_num(acc) || !jv_is_num(it)) {
            jb_need_defined(x, it);
            jx_fail(x, "unsupported operand type(s) for +: '%s' and '%s'", jv_type_name(acc),
                    jv_type_name(it));
        }
        if (acc.t != JV_FLOAT && it.t != JV_FLOAT) {
            int64_t r;
            if (__builtin_add_overflow(acc.u.i, it.u.i, &r))
                jx_fail(x, "integer overflow");
            acc = jv_int(r);
        } else {
            acc = jv_float(jv_as_float(acc) + jv_as_float(it));
        }
    }
    return acc;
}

static jv batch_or_slice(jx *x, jv v, const jargs *a, bool is_batch)
{
    static const char *const bn[] = {"linecount", "fill_with"}, *const sn[] = {"slices", "fill_with"};
    jv p[2];
    jargs_bind(x, a, is_batch ? "batch" : "slice", is_batch ? bn : sn, 2, 1, p);
    int64_t k = jb_want_int(x, p[0], is_batch ? "batch" : "slice");
    bool fill = jarg_given(p[1]) && p[1].t != JV_NONE;
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    jv out = jv_list_new(x, 0, JL_LIST);
    if (is_batch) {
        if (k <= 0)
            jx_fail(x, "batch: linecount must be positive");
        for (size_t i = 0; i < n; i += (size_t)k) {
            jv row = jv_list_new(x, 0, JL_LIST);
            for (size_t j = i; j < n && j < i + (size_t)k; j++)
                jv_list_push(x, row, items[j]);
            while (fill && (int64_t)row.u.l->n < k)
                jv_list_push(x, row, p[1]);
            jv_list_push(x, out, row);
        }
        return out;
    }
    if (k <= 0 || k > 100000)
        jx_fail(x, "slice: slices must be between 1 and 100000");
    size_t per = n / (size_t)k, extra = n % (size_t)k, offset = 0;
    for (size_t s = 0; s < (size_t)k; s++) {
        size_t start = offset + s * per;
        if (s < extra)
            offset++;
        size_t end = offset + (s + 1) * per;
        jv row = jv_list_new(x, 0, JL_LIST);
        for (size_t j = start; j < end && j < n; j++)
            jv_list_push(x, row, items[j]);
        if (fill && s >= extra)
            jv_list_push(x, row, p[1]);
        jv_list_push(x, out, row);
    }
    return out;
}

static jv dictsort(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"case_sensitive", "by", "reverse"};
    jv p[3];
    jargs_bind(x, a, "dictsort", names, 3, 0, p);
    if (v.t != JV_DICT) {
        jb_need_defined(x, v);
        jx_fail(x, "dictsort: '%s' object has no attribute 'items'", jv_type_name(v));
    }
    int pos = 0;
    if (jarg_given(p[1])) {
        const jstr *by = jb_want_str(x, p[1], "dictsort");
        if (jb_str_eq(by, "value"))
            pos = 1;
        else if (!jb_str_eq(by, "key"))
            jx_fail(x, "You can only sort by either \"key\" or \"value\"");
    }
    bool cs = jarg_given(p[0]) && jv_truthy(p[0]), rev = jarg_given(p[2]) && jv_truthy(p[2]);
    jv items = jv_items_of(x, v);
    size_t n = items.u.l->n;
    keyed *k = jx_alloc(x, (n ? n : 1) * sizeof *k), *tmp = jx_alloc(x, (n ? n : 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        k[i].item = items.u.l->v[i];
        jv key = items.u.l->v[i].u.l->v[pos];
        k[i].key = cs ? key : ignore_case(x, key);
    }
    merge_sort(x, k, tmp, n, rev);
    for (size_t i = 0; i < n; i++)
        items.u.l->v[i] = k[i].item;
    return items;
}

static jv reverse_of(jx *x, jv v)
{
    if (v.t == JV_STR) {
        jsb b;
        jsb_init(&b);
        const char *s = v.u.s->p, *p = s + v.u.s->len;
        while (p > s) {
            const char *q = glm_utf8_prev(s, p);
            jsb_put(x, &b, q, (size_t)(p - q));
            p = q;
        }
        return jsb_value(x, &b);
    }
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    jv out = jv_list_new(x, n, JL_LIST);
    for (size_t i = 0; i < n; i++)
        out.u.l->v[i] = items[n - 1 - i];
    out.u.l->n = n;
    return out;
}

static jv join_filter(jx *x, jv v, const jargs *a)
{
    static const char *const names[] = {"d", "attribute"};
    jv p[2];
    jargs_bind(x, a, "join", names, 2, 0, p);
    jv sep = jarg_given(p[0]) ? jv_as_string(x, p[0]) : jv_str_ref(x, "", 0);
    const jv *items;
    size_t n;
    jv_iterate(x, v, &items, &n);
    jsb b;
    jsb_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (i)
            jsb_put(x, &b, sep.u.s->p, sep.u.s->len);
        jv it = jarg_given(p[1]) && p[1].t != JV_NONE ? jx_attr_path(x, items[i], p[1]) : items[i];
        jv_to_str(x, &b, it);
    }
    jx_charge(x, b.len / 256 + n / 16);
    return jsb_value(x, &b);
}

static jv wordcount(jx *x, jv v)
{
    jv s = jv_as_string(x, v);
    int64_t n = 0;
    bool in_word = false;
    const char *p = s.u.s->p, *e = p + s.u.s->len;
    while (p < e) {
        uint32_t c;
        p += glm_utf8_decode_valid(p, e, &c);
        bool w = c == '_' || (c < 0x80 ? isalnum((int)c) != 0 : !py_isspace(c) && c != 0xA0);
        if (w && !in_word)
            n++;
        in_word = w;
    }
    return jv_int(n);
}

jv jb_filter(jx *x, int id, jv v, const jargs *a)
{
    jv p[4];
    switch (id) {
    case F_ABS:
        jb_no_args(x, a, "abs");
        jb_need_defined(x, v);
        if (v.t == JV_FLOAT)
            return jv_float(fabs(v.u.f));
        if (v.t == JV_INT || v.t == JV_BOOL) {
            if (v.u.i == INT64_MIN)
                jx_fail(x, "integer overflow");
            return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        jx_fail(x, "bad operand type for abs(): '%s'", jv_type_name(v));
    case F_ATTR: {
        static const char *const names[] = {"name"};
        jargs_bind(x, a, "attr", names, 1, 1, p);
        const jstr *name = jb_want_str(x, p[0], "attr");
        if (v.t == JV_DICT) {
            int mid = jb_method_id(v, name->p, name->len);
            if (mid < 0)
                return jv_undef_named(x, JU_ATTR, JV_DICT, name->p, name->len);
        }
        return jx_getattr(x, v, name);
    }
    case F_BATCH: return batch_or_slice(x, v, a, true);
    case F_SLICE: return batch_or_slice(x, v, a, false);
    case F_CAPITALIZE: jb_no_args(x, a, "capitalize"); return js_case(x, jv_as_string(x, v), 2);
    case F_TITLE: jb_no_args(x, a, "title"); return js_title_words(x, jv_as_string(x, v));
    case F_UPPER: jb_no_args(x, a, "upper"); return js_case(x, jv_as_string(x, v), 0);
    case F_LOWER: jb_no_args(x, a, "lower"); return js_case(x, jv_as_string(x, v), 1);
    case F_CENTER: {
        static const char *const names[] = {"width"};
        jargs_bind(x, a, "center", names, 1, 0, p);
        return js_pad(x, jv_as_string(x, v), jarg_given(p[0]) ? jb_want_int(x, p[0], "center") : 80, &JS_SPACE, 0);
    }
    case F_COUNT:
    case F_LENGTH: jb_no_args(x, a, "length"); return jv_int(jv_len(x, v));
    case F_D:
    case F_DEFAULT: {
        static const char *const names[] = {"default_value", "boolean"};
        jargs_bind(x, a, "default", names, 2, 0, p);
        bool boolean = jarg_given(p[1]) && jv_truthy(p[1]);
        if (v.t == JV_UNDEF || (boolean && !jv_truthy(v)))
            return jarg_given(p[0]) ? p[0] : jv_str_ref(x, "", 0);
        return v;
    }
    case F_DICTSORT: return dictsort(x, v, a);
    case F_E:
    case F_ESCAPE:
    case F_FORCEESCAPE: jb_no_args(x, a, "escape"); return html_escape(x, v);
    case F_FIRST: jb_no_args(x, a, "first"); return first_item(x, v);
    case F_LAST: jb_no_args(x, a, "last"); return last_item(x, v);
    case F_FLOAT: {
        static const char *const names[] = {"default"};
        jargs_bind(x, a, "float", names, 1, 0, p);
        return float_filter(x, v, p[0]);
    }
    case F_INT: {
        static const char *const names[] = {"default", "base"};
        jargs_bind(x, a, "int", names, 2, 0, p);
        return int_filter(x, v, p[0], p[1]);
    }
    case F_FORMAT: {
        if (a->n && a->nkw)
            jx_fail(x, "can't handle positional and keyword arguments at the same time");
        jv args;
        if (a->nkw) {
            args = jv_dict_new(x, (size_t)a->nkw);
            for (int k = 0; k < a->nkw; k++)
                jv_dict_set(x, args, jv_str_ref(x, a->kwn[k]->p, a->kwn[k]->len), a->kwv[k]);
        } else {
            args = jv_list_new(x, (size_t)a->n, JL_TUPLE);
            jcopy(args.u.l->v, a->v, (size_t)a->n * sizeof(jv));
            args.u.l->n = (size_t)a->n;
        }
        return jb_percent_format(x, jv_as_string(x, v), args);
    }
    case F_INDENT: return indent_filter(x, v, a);
    case F_ITEMS:
        jb_no_args(x, a, "items");
        if (v.t == JV_UNDEF)
            return jv_list_new(x, 0, JL_LIST);
        if (v.t != JV_DICT)
            jx_fail(x, "Can only get item pairs from a mapping.");
        return jv_items_of(x, v);
    case F_JOIN: return join_filter(x, v, a);
    case F_LIST: jb_no_args(x, a, "list"); return jv_list_of(x, v);
    case F_MAP: return map_filter(x, v, a);
    case F_MAX: return min_max(x, v, a, true);
    case F_MIN: return min_max(x, v, a, false);
    case F_SELECT: return select_filter(x, v, a, false, true);
    case F_REJECT: return select_filter(x, v, a, false, false);
    case F_SELECTATTR: return select_filter(x, v, a, true, true);
    case F_REJECTATTR: return select_filter(x, v, a, true, false);
    case F_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};
        jargs_bind(x, a, "replace", names, 3, 2, p);
        int64_t count = jarg_given(p[2]) && p[2].t != JV_NONE ? jb_want_int(x, p[2], "replace") : -1;
        return js_replace(x, jv_as_string(x, v), jv_as_string(x, p[0]).u.s, jv_as_string(x, p[1]).u.s, count);
    }
    case F_REVERSE: jb_no_args(x, a, "reverse"); return reverse_of(x, v);
    case F_ROUND: {
        static const char *const names[] = {"precision", "method"};
        jargs_bind(x, a, "round", names, 2, 0, p);
        return do_round(x, v, p[0], p[1]);
    }
    case F_SAFE: jb_no_args(x, a, "safe"); return jv_as_string(x, v);
    case F_SORT: {
        static const char *const names[] = {"reverse", "case_sensitive", "attribute"};
        jargs_bind(x, a, "sort", names, 3, 0, p);
        return sorted(x, v, jarg_given(p[0]) && jv_truthy(p[0]), jarg_given(p[1]) && jv_truthy(p[1]),
                      p[2], true);
    }
    case F_STRING: jb_no_args(x, a, "string"); return jv_as_string(x, v);
    case F_SUM: return sum_filter(x, v, a);
    case F_TOJSON: return tojson(x, v, a);
    case F_TRIM: {
        static const char *const names[] = {"chars"};
        jargs_bind(x, a, "trim", names, 1, 0, p);
        const jstr *chars = jarg_given(p[0]) && p[0].t != JV_NONE ? jv_as_string(x, p[0]).u.s : NULL;
        return js_strip(x, jv_as_string(x, v), chars, true, true);
    }
    case F_UNIQUE: return unique_filter(x, v, a);
    case F_WORDCOUNT: jb_no_args(x, a, "wordcount"); return wordcount(x, v);
    }
    GLM_ASSERT(!"unknown filter id");
    return jv_none();
}

/* ---- tests ------------------------------------------------------------------------ */

enum {
    TS_ODD, TS_EVEN, TS_DIVISIBLEBY, TS_DEFINED, TS_UNDEFINED, TS_FILTER, TS_TEST, TS_NONE, TS_BOOLEAN,
    TS_FALSE, TS_TRUE, TS_INTEGER, TS_FLOAT, TS_LOWER, TS_UPPER, TS_STRING, TS_MAPPING, TS_NUMBER,
    TS_SEQUENCE, TS_ITERABLE, TS_CALLABLE, TS_SAMEAS, TS_ESCAPED, TS_IN, TS_EQ1, TS_EQ2, TS_EQ3, TS_NE1,
    TS_NE2, TS_GT1, TS_GT2, TS_GT3, TS_GE1, TS_GE2, TS_LT1, TS_LT2, TS_LT3, TS_LE1, TS_LE2, TS_COUNT_
};

static const char *const TESTS[] = {
    "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean",
    "false", "true", "integer", "float", "lower", "upper", "string", "mapping", "number",
    "sequence", "iterable", "callable", "sameas", "escaped", "in", "==", "eq", "equalto", "!=",
    "ne", ">", "gt", "greaterthan", "ge", ">=", "<", "lt", "lessthan", "<=", "le",
};

int jb_test_id(const char *name, size_t n)
{
    for (int i = 0; i < TS_COUNT_; i++)
        if (strlen(TESTS[i]) == n && memcmp(TESTS[i], name, n) == 0)
            return i;
    return -1;
}

static jv one_arg(jx *x, const jargs *a, const char *name)
{
    static const char *const names[] = {"other"};
    jv p[1];
    jargs_bind(x, a, name, names, 1, 1, p);
    return p[0];
}

static jv int_mod(jx *x, jv v, jv m)
{
    jb_need_defined(x, v);
    if (!jv_is_num(v) || !jv_is_num(m))
        jx_fail(x, "unsupported operand type(s) for %%: '%s' and '%s'", jv_type_name(v), jv_type_name(m));
    if (v.t != JV_FLOAT && m.t != JV_FLOAT) {
        if (m.u.i == 0)
            jx_fail(x, "integer division or modulo by zero");
        if (m.u.i == -1)
            return jv_int(0);
        int64_t r = v.u.i % m.u.i;
        if (r != 0 && ((r < 0) != (m.u.i < 0)))
            r += m.u.i;
        return jv_int(r);
    }
    double fm = jv_as_float(m);
    if (fm == 0)
        jx_fail(x, "float modulo");
    double r = fmod(jv_as_float(v), fm);
    if (r != 0 && ((r < 0) != (fm < 0)))
        r += fm;
    return jv_float(r);
}


bool jb_test(jx *x, int id, jv v, const jargs *a)
{
    switch (id) {
    case TS_ODD: jb_no_args(x, a, "odd"); return jv_eq(x, int_mod(x, v, jv_int(2)), jv_int(1));
    case TS_EVEN: jb_no_args(x, a, "even"); return jv_eq(x, int_mod(x, v, jv_int(2)), jv_int(0));
    case TS_DIVISIBLEBY: {
        static const char *const names[] = {"num"};
        jv p[1];
        jargs_bind(x, a, "divisibleby", names, 1, 1, p);
        return !jv_truthy(int_mod(x, v, p[0]));
    }
    case TS_DEFINED: jb_no_args(x, a, "defined"); return v.t != JV_UNDEF;
    case TS_UNDEFINED: jb_no_args(x, a, "undefined"); return v.t == JV_UNDEF;
    case TS_FILTER:
    case TS_TEST: {
        jb_no_args(x, a, "filter");
        if (v.t != JV_STR)
            return false;
        return id == TS_FILTER ? jb_filter_id(v.u.s->p, v.u.s->len) >= 0
                              : jb_test_id(v.u.s->p, v.u.s->len) >= 0;
    }
    case TS_NONE: jb_no_args(x, a, "none"); return v.t == JV_NONE;
    case TS_BOOLEAN: jb_no_args(x, a, "boolean"); return v.t == JV_BOOL;
    case TS_FALSE: jb_no_args(x, a, "false"); return v.t == JV_BOOL && !v.u.i;
    case TS_TRUE: jb_no_args(x, a, "true"); return v.t == JV_BOOL && v.u.i;
    case TS_INTEGER: jb_no_args(x, a, "integer"); return v.t == JV_INT;
    case TS_FLOAT: jb_no_args(x, a, "float"); return v.t == JV_FLOAT;
    case TS_LOWER: jb_no_args(x, a, "lower"); return js_cased_all(x, v, 0);
    case TS_UPPER: jb_no_args(x, a, "upper"); return js_cased_all(x, v, 1);
    case TS_STRING: jb_no_args(x, a, "string"); return v.t == JV_STR;
    case TS_MAPPING: jb_no_args(x, a, "mapping"); return v.t == JV_DICT;
    case TS_NUMBER: jb_no_args(x, a, "number"); return jv_is_num(v);
    case TS_SEQUENCE:
        jb_no_args(x, a, "sequence");
        return v.t == JV_STR || v.t == JV_DICT || v.t == JV_RANGE || v.t == JV_UNDEF ||
               (v.t == JV_LIST && (v.sub == JL_LIST || v.sub == JL_TUPLE));
    case TS_ITERABLE:
        jb_no_args(x, a, "iterable");
        return v.t == JV_STR || v.t == JV_DICT || v.t == JV_RANGE || v.t == JV_UNDEF ||
               v.t == JV_LIST || v.t == JV_LOOP;
    case TS_CALLABLE:
        jb_no_args(x, a, "callable");
        return v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_JOINER || v.t == JV_LOOP ||
               v.t == JV_UNDEF;
    case TS_SAMEAS: {
        jv o = one_arg(x, a, "sameas");
        if (v.t != o.t)
            return false;
        switch ((jtype)v.t) {
        case JV_NONE:
        case JV_UNDEF: return v.t == JV_NONE || v.u.s == o.u.s;
        case JV_BOOL:
        case JV_INT: return v.u.i == o.u.i;
        case JV_FLOAT: return v.u.f == o.u.f;
        case JV_STR: return jv_eq(x, v, o);
        default: return v.u.m == o.u.m;
        }
    }
    case TS_ESCAPED: jb_no_args(x, a, "escaped"); return false;
    case TS_IN: {
        jv seq = one_arg(x, a, "in");
        if (seq.t == JV_STR) {
            if (v.t != JV_STR)
                jx_fail(x, "'in <string>' requires string as left operand, not %s", jv_type_name(v));
            return v.u.s->len == 0 || memmem(seq.u.s->p, seq.u.s->len, v.u.s->p, v.u.s->len) != NULL;
        }
        if (seq.t == JV_DICT)
            return jv_dict_get(x, seq, v) != NULL;
        const jv *it;
        size_t n;
        jv_iterate(x, seq, &it, &n);
        for (size_t i = 0; i < n; i++)
            if (jv_eq(x, it[i], v))
                return true;
        return false;
    }
    case TS_EQ1: case TS_EQ2: case TS_EQ3: return jv_eq(x, v, one_arg(x, a, "eq"));
    case TS_NE1: case TS_NE2: return !jv_eq(x, v, one_arg(x, a, "ne"));
    case TS_GT1: case TS_GT2: case TS_GT3: return jv_order(x, v, one_arg(x, a, "gt"), CMP_GT);
    case TS_GE1: case TS_GE2: return jv_order(x, v, one_arg(x, a, "ge"), CMP_GE);
    case TS_LT1: case TS_LT2: case TS_LT3: return jv_order(x, v, one_arg(x, a, "lt"), CMP_LT);
    case TS_LE1: case TS_LE2: return jv_order(x, v, one_arg(x, a, "le"), CMP_LE);
    }
    GLM_ASSERT(!"unknown test id");
    return false;
}

/* ---- globals ------------------------------------------------------------------------- */

enum { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE_EXCEPTION, G_STRFTIME_NOW, G_CYCLER, G_JOINER, G_COUNT_ };
static const char *const GLOBALS[] = {"range", "dict", "namespace", "raise_exception", "strftime_now",
                                      "cycler", "joiner"};

int jb_global_id(const char *name, size_t n)
{
    for (int i = 0; i < G_COUNT_; i++)
        if (strlen(GLOBALS[i]) == n && memcmp(GLOBALS[i], name, n) == 0)
            return i;
    return -1;
}

/* dict(*args, **kwargs) semantics shared by dict() and namespace(). */
static jv build_dict(jx *x, const jargs *a, const char *name, bool ns)
{
    if (a->n > 1)
        jx_fail(x, "%s expected at most 1 argument, got %d", name, a->n);
    jv d = jv_dict_new(x, 0);
    if (a->n == 1) {
        jv src = a->v[0];
        if (src.t == JV_DICT || src.t == JV_NS) {
            for (size_t i = 0; i < src.u.d->n; i++)
                jv_dict_set(x, d, src.u.d->k[i], src.u.d->v[i]);
        } else {
            const jv *items;
            size_t n;
            jv_iterate(x, src, &items, &n);
            for (size_t i = 0; i < n; i++) {
                const jv *pair;
                size_t pn;
                jv_iterate(x, items[i], &pair, &pn);
                if (pn != 2)
                    jx_fail(x, "dictionary update sequence element #%zu has length %zu; 2 is required", i, pn);
                jv_hash(x, pair[0]);
                jv_dict_set(x, d, pair[0], pair[1]);
            }
        }
    }
    for (int k = 0; k < a->nkw; k++)
        jv_dict_set(x, d, jv_str_ref(x, a->kwn[k]->p, a->kwn[k]->len), a->kwv[k]);
    if (ns) {
        for (size_t i = 0; i < d.u.d->n; i++) {
            jv k = d.u.d->k[i];
            if (k.t == JV_STR && k.u.s->len && k.u.s->p[0] == '_')
                jx_fail(x, "chat templates cannot store underscore-prefixed attributes on a namespace");
        }
        d.t = JV_NS;
    }
    return d;
}

jv jb_global(jx *x, int id, const jargs *a)
{
    switch (id) {
    case G_RANGE: {
        if (a->nkw)
            jx_fail(x, "range() takes no keyword arguments");
        if (a->n < 1 || a->n > 3)
            jx_fail(x, "range expected 1 to 3 arguments, got %d", a->n);
        int64_t v[3];
        for (int i = 0; i < a->n; i++)
            v[i] = jb_want_int(x, a->v[i], "range");
        jrange *r = jx_alloc(x, sizeof *r);
        if (a->n == 1) {
            r->start = 0, r->stop = v[0], r->step = 1;
        } else {
            r->start = v[0], r->stop = v[1], r->step = a->n == 3 ? v[2] : 1;
        }
        if (r->step == 0)
            jx_fail(x, "range() arg 3 must not be zero");
        if (jrange_len(r) > MAX_RANGE)
            jx_fail(x, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        jv out = {0};
        out.t = JV_RANGE;
        out.u.r = r;
        return out;
    }
    case G_DICT: return build_dict(x, a, "dict", false);
    case G_NAMESPACE: return build_dict(x, a, "namespace", true);
    case G_RAISE_EXCEPTION: {
        static const char *const names[] = {"message"};
        jv p[1];
        jargs_bind(x, a, "raise_exception", names, 1, 1, p);
        jv msg = jv_as_string(x, p[0]);
        jx_fail(x, "raise_exception: %.*s", (int)GLM_MIN(msg.u.s->len, 400), msg.u.s->p);
    }
    case G_STRFTIME_NOW: {
        static const char *const names[] = {"format"};
        jv p[1];
        jargs_bind(x, a, "strftime_now", names, 1, 1, p);
        const jstr *f = jb_want_str(x, p[0], "strftime_now");
        char fmt[256], out[512];
        if (f->len >= sizeof fmt)
            jx_fail(x, "strftime_now: format too long");
        jcopy(fmt, f->p, f->len);
        fmt[f->len] = 0;
        time_t now = (time_t)x->now;
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(out, sizeof out, fmt, &tm);
        return jv_str(x, out, n);
    }
    case G_CYCLER: {
        if (a->nkw)
            jx_fail(x, "cycler() takes no keyword arguments");
        jcycler *c = jx_alloc(x, sizeof *c);
        jv items = jv_list_new(x, (size_t)a->n, JL_LIST);
        jcopy(items.u.l->v, a->v, (size_t)a->n * sizeof(jv));
        items.u.l->n = (size_t)a->n;
        c->items = items.u.l;
        jv v = {0};
        v.t = JV_CYCLER;
        v.u.cy = c;
        return v;
    }
    case G_JOINER: {
        static const char *const names[] = {"sep"};
        jv p[1];
        jargs_bind(x, a, "joiner", names, 1, 0, p);
        jcycler *c = jx_alloc(x, sizeof *c);
        c->sep = jarg_given(p[0]) ? jv_as_string(x, p[0]).u.s : jv_str_ref(x, ", ", 2).u.s;
        jv v = {0};
        v.t = JV_JOINER;
        v.u.cy = c;
        return v;
    }
    }
    GLM_ASSERT(!"unknown global");
    return jv_none();
}
