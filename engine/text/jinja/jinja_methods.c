/*
 * jinja_methods.c - the methods templates may call on values, as the jinja2
 * sandbox (ImmutableSandboxedEnvironment) allows them: str methods, dict
 * get/items/keys/values/copy, list/tuple count/index/copy, loop.cycle and
 * loop.changed, cycler.next/reset. Mutating methods (list.append,
 * dict.update, ...) are reported as unsafe, as the sandbox does.
 */
#include "text/jinja/jinja_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum {
    /* str */
    M_CAPITALIZE, M_CENTER, M_COUNT, M_ENDSWITH, M_FIND, M_FORMAT, M_INDEX, M_ISALNUM,
    M_ISALPHA, M_ISDIGIT, M_ISLOWER, M_ISSPACE, M_ISUPPER, M_JOIN, M_LJUST, M_LOWER, M_LSTRIP,
    M_PARTITION, M_REMOVEPREFIX, M_REMOVESUFFIX, M_REPLACE, M_RFIND, M_RINDEX, M_RJUST,
    M_RPARTITION, M_RSPLIT, M_RSTRIP, M_SPLIT, M_SPLITLINES, M_STARTSWITH, M_STRIP, M_SWAPCASE,
    M_TITLE, M_UPPER, M_ZFILL, M_ISNUMERIC, M_ISDECIMAL,
    /* dict */
    M_GET, M_ITEMS, M_KEYS, M_VALUES, M_DCOPY,
    /* list */
    M_LCOUNT, M_LINDEX, M_LCOPY,
    /* loop */
    M_CYCLE, M_CHANGED,
    /* cycler */
    M_NEXT, M_RESET,
    M_COUNT_
};

static const char *const METHODS[] = {
    "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum",
    "isalpha", "isdigit", "islower", "isspace", "isupper", "join", "ljust", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
    "title", "upper", "zfill", "isnumeric", "isdecimal",
    "get", "items", "keys", "values", "copy",
    "count", "index", "copy",
    "cycle", "changed",
    "next", "reset",
};













static int find_method(const char *name, size_t n, int from, int to)
{
    for (int i = from; i < to; i++)
        if (strlen(METHODS[i]) == n && memcmp(METHODS[i], name, n) == 0)
            return i;
    return -1;
}

static bool name_in(const char *name, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, name, n) == 0)
            return true;
    return false;
}

int jb_method_id(jv self, const char *name, size_t n)
{
    if (n >= 2 && name[0] == '_' && name[1] == '_')
        return self.t == JV_DICT || self.t == JV_NS ? -1 : -2;
    static const char *const dict_unsafe[] = {"pop", "popitem", "setdefault", "update", "clear", NULL};
    static const char *const list_unsafe[] = {"append", "extend", "insert", "pop", "remove",
                                              "reverse", "sort", "clear", NULL};
    switch ((jtype)self.t) {
    case JV_STR: return find_method(name, n, M_CAPITALIZE, M_GET);
    case JV_DICT:
        if (name_in(name, n, dict_unsafe))
            return -2;
        return find_method(name, n, M_GET, M_LCOUNT);
    case JV_LIST:
        if (self.sub == JL_LIST && name_in(name, n, list_unsafe))
            return -2;
        if (self.sub == JL_LIST || self.sub == JL_TUPLE)
            return find_method(name, n, M_LCOUNT, self.sub == JL_LIST ? M_CYCLE : M_LCOPY);
        return -1;
    case JV_LOOP: return find_method(name, n, M_CYCLE, M_NEXT);
    case JV_CYCLER: return find_method(name, n, M_NEXT, M_COUNT_);
    default: return -1;
    }
}

/* str.find/index/count/startswith/endswith: optional start/end in code points */
static void sub_range(jx *x, jv s, const jargs *a, int first, const char **b, const char **e)
{
    size_t nc = jstr_nchars(s.u.s);
    int64_t start = 0, end = (int64_t)nc;
    if (a->n > first && a->v[first].t != JV_NONE)
        start = jb_want_int(x, a->v[first], "start");
    if (a->n > first + 1 && a->v[first + 1].t != JV_NONE)
        end = jb_want_int(x, a->v[first + 1], "end");
    if (start < 0)
        start = start + (int64_t)nc < 0 ? 0 : start + (int64_t)nc;
    if (end < 0)
        end = end + (int64_t)nc < 0 ? 0 : end + (int64_t)nc;
    if (end > (int64_t)nc)
        end = (int64_t)nc;
    if (start > end)
        start = end;
    *b = s.u.s->p + jstr_byte_offset(s.u.s, (size_t)start);
    *e = s.u.s->p + jstr_byte_offset(s.u.s, (size_t)end);
}

static bool affix_match(jx *x, jv s, const jargs *a, bool suffix)
{
    if (a->n < 1 || a->n > 3 || a->nkw)
        jx_fail(x, "%s() takes 1 to 3 arguments", suffix ? "endswith" : "startswith");
    const char *b, *e;
    sub_range(x, s, a, 1, &b, &e);
    jv what = a->v[0];
    const jv *cands = &what;
    size_t nc = 1;
    if (what.t == JV_LIST && what.sub == JL_TUPLE) {
        cands = what.u.l->v;
        nc = what.u.l->n;
    }
    for (size_t i = 0; i < nc; i++) {
        if (cands[i].t != JV_STR)
            jx_fail(x, "%s first arg must be str or a tuple of str, not %s",
                    suffix ? "endswith" : "startswith", jv_type_name(cands[i]));
        const jstr *c = cands[i].u.s;
        if ((size_t)(e - b) < c->len)
            continue;
        if (memcmp(suffix ? e - c->len : b, c->p, c->len) == 0)
            return true;
    }
    return false;
}

static int64_t str_find(jx *x, jv s, const jargs *a, bool from_right, const char *name)
{
    if (a->n < 1 || a->n > 3 || a->nkw)
        jx_fail(x, "%s() takes 1 to 3 arguments", name);
    const jstr *sub = jb_want_str(x, a->v[0], name);
    const char *b, *e;
    sub_range(x, s, a, 1, &b, &e);
    jx_charge(x, (size_t)(e - b) / 256);
    if ((size_t)(e - b) < sub->len)
        return -1;
    const char *hit = NULL;
    if (!from_right) {
        hit = js_find_bytes(b, (size_t)(e - b), sub);
    } else {
        for (const char *q = e - sub->len;; q--) {
            if (memcmp(q, sub->p, sub->len) == 0) {
                hit = q;
                break;
            }
            if (q == b)
                break;
        }
    }
    return hit ? (int64_t)js_cp_index(s.u.s, hit) : -1;
}

static bool str_class(jv s, int kind) /* 0 alnum, 1 alpha, 2 digit, 3 space */
{
    const char *p = s.u.s->p, *e = p + s.u.s->len;
    if (p == e)
        return false;
    while (p < e) {
        uint32_t c;
        p += glm_utf8_decode_valid(p, e, &c);
        bool digit = (c >= '0' && c <= '9') || (c >= 0xFF10 && c <= 0xFF19) || (c >= 0x660 && c <= 0x669);
        bool alpha = c < 0x80 ? isalpha((int)c) != 0
                              : (py_iscased_upper(c) || py_iscased_lower(c) || (c >= 0x4E00 && c <= 0x9FFF) ||
                                 (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x3040 && c <= 0x30FF) ||
                                 (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7));
        bool ok = kind == 0 ? alpha || digit : kind == 1 ? alpha : kind == 2 ? digit : py_isspace(c);
        if (!ok)
            return false;
    }
    return true;
}

static jv partition(jx *x, jv s, jv sepv, bool from_right)
{
    const jstr *sep = jb_want_str(x, sepv, "partition");
    if (!sep->len)
        jx_fail(x, "empty separator");
    const char *b = s.u.s->p, *e = b + s.u.s->len, *hit = NULL;
    if (!from_right) {
        hit = memmem(b, s.u.s->len, sep->p, sep->len);
    } else if (s.u.s->len >= sep->len) {
        for (const char *q = e - sep->len;; q--) {
            if (memcmp(q, sep->p, sep->len) == 0) {
                hit = q;
                break;
            }
            if (q == b)
                break;
        }
    }
    jv t = jv_list_new(x, 3, JL_TUPLE);
    t.u.l->n = 3;
    jv empty = jv_str_ref(x, "", 0);
    if (!hit) {
        t.u.l->v[0] = from_right ? empty : s;
        t.u.l->v[1] = empty;
        t.u.l->v[2] = from_right ? s : empty;
        return t;
    }
    t.u.l->v[0] = jv_str_ref(x, b, (size_t)(hit - b));
    t.u.l->v[1] = sepv;
    t.u.l->v[2] = jv_str_ref(x, hit + sep->len, (size_t)(e - hit - sep->len));
    return t;
}

static jv str_join(jx *x, jv sep, jv seq)
{
    const jv *items;
    size_t n;
    jv_iterate(x, seq, &items, &n);
    jsb b;
    jsb_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (items[i].t != JV_STR)
            jx_fail(x, "sequence item %zu: expected str instance, %s found", i, jv_type_name(items[i]));
        if (i)
            jsb_put(x, &b, sep.u.s->p, sep.u.s->len);
        jsb_put(x, &b, items[i].u.s->p, items[i].u.s->len);
    }
    jx_charge(x, b.len / 256 + n / 16);
    return jsb_value(x, &b);
}

static jv opt_chars(jx *x, const jargs *a, const char *name)
{
    static const char *const names[] = {"chars"};
    jv p[1];
    jargs_bind(x, a, name, names, 1, 0, p);
    return p[0];
}

static jv js_method(jx *x, jv s, int id, const jargs *a)
{
    jv p[3];
    switch (id) {
    case M_CAPITALIZE: jb_no_args(x, a, "capitalize"); return js_case(x, s, 2);
    case M_LOWER: jb_no_args(x, a, "lower"); return js_case(x, s, 1);
    case M_UPPER: jb_no_args(x, a, "upper"); return js_case(x, s, 0);
    case M_TITLE: jb_no_args(x, a, "title"); return js_case(x, s, 3);
    case M_SWAPCASE: jb_no_args(x, a, "swapcase"); return js_case(x, s, 4);
    case M_CENTER:
    case M_LJUST:
    case M_RJUST: {
        static const char *const names[] = {"width", "fillchar"};
        jargs_bind(x, a, METHODS[id], names, 2, 1, p);
        const jstr *fill = &JS_SPACE;
        if (jarg_given(p[1])) {
            fill = jb_want_str(x, p[1], METHODS[id]);
            if (jstr_nchars((jstr *)fill) != 1)
                jx_fail(x, "The fill character must be exactly one character long");
        }
        return js_pad(x, s, jb_want_int(x, p[0], METHODS[id]), fill, id == M_CENTER ? 0 : id == M_LJUST ? 1 : 2);
    }
    case M_ZFILL: {
        static const char *const names[] = {"width"};
        jargs_bind(x, a, "zfill", names, 1, 1, p);
        int64_t w = jb_want_int(x, p[0], "zfill"), len = (int64_t)jstr_nchars(s.u.s);
        if (w <= len)
            return s;
        if (w > (int64_t)x->max_output)
            jx_fail(x, "template output exceeded %zu bytes", x->max_output);
        jsb b;
        jsb_init(&b);
        const char *sp = s.u.s->p;
        size_t sl = s.u.s->len;
        if (sl && (sp[0] == '+' || sp[0] == '-')) {
            jsb_putc(x, &b, sp[0]);
            sp++;
            sl--;
        }
        for (int64_t i = 0; i < w - len; i++)
            jsb_putc(x, &b, '0');
        jsb_put(x, &b, sp, sl);
        return jsb_value(x, &b);
    }
    case M_COUNT: {
        if (a->n < 1 || a->nkw)
            jx_fail(x, "count() takes 1 to 3 arguments");
        const jstr *sub = jb_want_str(x, a->v[0], "count");
        const char *b, *e;
        sub_range(x, s, a, 1, &b, &e);
        if (sub->len == 0)
            return jv_int((int64_t)js_cp_index(s.u.s, e) - (int64_t)js_cp_index(s.u.s, b) + 1);
        int64_t n = 0;
        for (const char *q = b; (q = memmem(q, (size_t)(e - q), sub->p, sub->len)) != NULL; q += sub->len)
            n++;
        return jv_int(n);
    }
    case M_ENDSWITH: return jv_bool(affix_match(x, s, a, true));
    case M_STARTSWITH: return jv_bool(affix_match(x, s, a, false));
    case M_FIND: return jv_int(str_find(x, s, a, false, "find"));
    case M_RFIND: return jv_int(str_find(x, s, a, true, "rfind"));
    case M_INDEX:
    case M_RINDEX: {
        int64_t r = str_find(x, s, a, id == M_RINDEX, METHODS[id]);
        if (r < 0)
            jx_fail(x, "substring not found");
        return jv_int(r);
    }
    case M_FORMAT: return js_format(x, s, a);
    case M_ISALNUM: jb_no_args(x, a, "isalnum"); return jv_bool(str_class(s, 0));
    case M_ISALPHA: jb_no_args(x, a, "isalpha"); return jv_bool(str_class(s, 1));
    case M_ISDIGIT:
    case M_ISNUMERIC:
    case M_ISDECIMAL: jb_no_args(x, a, "isdigit"); return jv_bool(str_class(s, 2));
    case M_ISSPACE: jb_no_args(x, a, "isspace"); return jv_bool(str_class(s, 3));
    case M_ISLOWER: jb_no_args(x, a, "islower"); return jv_bool(js_cased_all(x, s, 0));
    case M_ISUPPER: jb_no_args(x, a, "isupper"); return jv_bool(js_cased_all(x, s, 1));
    case M_JOIN: {
        static const char *const names[] = {"iterable"};
        jargs_bind(x, a, "join", names, 1, 1, p);
        return str_join(x, s, p[0]);
    }
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        jv c = opt_chars(x, a, METHODS[id]);
        const jstr *chars = jarg_given(c) && c.t != JV_NONE ? jb_want_str(x, c, METHODS[id]) : NULL;
        return js_strip(x, s, chars, id != M_RSTRIP, id != M_LSTRIP);
    }
    case M_PARTITION:
    case M_RPARTITION: {
        static const char *const names[] = {"sep"};
        jargs_bind(x, a, METHODS[id], names, 1, 1, p);
        return partition(x, s, p[0], id == M_RPARTITION);
    }
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        static const char *const names[] = {"affix"};
        jargs_bind(x, a, METHODS[id], names, 1, 1, p);
        const jstr *af = jb_want_str(x, p[0], METHODS[id]);
        if (af->len > s.u.s->len)
            return s;
        if (id == M_REMOVEPREFIX && memcmp(s.u.s->p, af->p, af->len) == 0)
            return jv_str_ref(x, s.u.s->p + af->len, s.u.s->len - af->len);
        if (id == M_REMOVESUFFIX && af->len && memcmp(s.u.s->p + s.u.s->len - af->len, af->p, af->len) == 0)
            return jv_str_ref(x, s.u.s->p, s.u.s->len - af->len);
        return s;
    }
    case M_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};
        jargs_bind(x, a, "replace", names, 3, 2, p);
        int64_t count = jarg_given(p[2]) ? jb_want_int(x, p[2], "replace") : -1;
        return js_replace(x, s, jb_want_str(x, p[0], "replace"), jb_want_str(x, p[1], "replace"), count);
    }
    case M_SPLIT:
    case M_RSPLIT: {
        static const char *const names[] = {"sep", "maxsplit"};
        jargs_bind(x, a, METHODS[id], names, 2, 0, p);
        int64_t maxsplit = jarg_given(p[1]) ? jb_want_int(x, p[1], METHODS[id]) : -1;
        return js_split(x, s, p[0], maxsplit, id == M_RSPLIT);
    }
    case M_SPLITLINES: {
        static const char *const names[] = {"keepends"};
        jargs_bind(x, a, "splitlines", names, 1, 0, p);
        return js_splitlines(x, s, jarg_given(p[0]) && jv_truthy(p[0]));
    }
    }
    GLM_ASSERT(!"unknown str method");
    return jv_none();
}

jv jb_method(jx *x, jv self, int id, const jargs *a)
{
    jv p[2];
    if (self.t == JV_STR)
        return js_method(x, self, id, a);
    switch (id) {
    case M_GET: {
        static const char *const names[] = {"key", "default"};
        jargs_bind(x, a, "get", names, 2, 1, p);
        jv k = p[0];
        if ((k.t == JV_LIST && k.sub != JL_TUPLE) || k.t == JV_DICT || k.t == JV_NS)
            jx_fail(x, "unhashable type: '%s'", jv_type_name(k));
        jv *v = jv_dict_get(x, self, k);
        if (v)
            return *v;
        return jarg_given(p[1]) ? p[1] : jv_none();
    }
    case M_ITEMS: {
        jb_no_args(x, a, "items");
        jv r = jv_items_of(x, self);
        r.sub = JL_ITEMS;
        return r;
    }
    case M_KEYS:
    case M_VALUES: {
        jb_no_args(x, a, METHODS[id]);
        jdict *d = self.u.d;
        jv r = jv_list_new(x, d->n, id == M_KEYS ? JL_KEYS : JL_VALUES);
        jcopy(r.u.l->v, id == M_KEYS ? d->k : d->v, d->n * sizeof(jv));
        r.u.l->n = d->n;
        return r;
    }
    case M_DCOPY: {
        jb_no_args(x, a, "copy");
        jv d = jv_dict_new(x, self.u.d->n);
        for (size_t i = 0; i < self.u.d->n; i++)
            jv_dict_set(x, d, self.u.d->k[i], self.u.d->v[i]);
        return d;
    }
    case M_LCOUNT: {
        static const char *const names[] = {"value"};
        jargs_bind(x, a, "count", names, 1, 1, p);
        int64_t n = 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            n += jv_eq(x, self.u.l->v[i], p[0]);
        return jv_int(n);
    }
    case M_LINDEX: {
        static const char *const names[] = {"value"};
        jargs_bind(x, a, "index", names, 1, 1, p);
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jv_eq(x, self.u.l->v[i], p[0]))
                return jv_int((int64_t)i);
        jx_fail(x, "value is not in list");
    }
    case M_LCOPY: jb_no_args(x, a, "copy"); return jv_list_of(x, self);
    case M_CYCLE: {
        if (a->nkw)
            jx_fail(x, "cycle() takes no keyword arguments");
        if (!a->n)
            jx_fail(x, "no items for cycling given");
        return a->v[self.u.lp->index0 % a->n];
    }
    case M_CHANGED: {
        jv args = jv_list_new(x, (size_t)a->n, JL_LIST);
        jcopy(args.u.l->v, a->v, (size_t)a->n * sizeof(jv));
        args.u.l->n = (size_t)a->n;
        jloop *lp = self.u.lp;
        if (!lp->changed_set || !jv_eq(x, lp->last_changed, args)) {
            lp->last_changed = args;
            lp->changed_set = true;
            return jv_bool(true);
        }
        return jv_bool(false);
    }
    case M_NEXT: {
        jb_no_args(x, a, "next");
        jcycler *c = self.u.cy;
        if (!c->items->n)
            jx_fail(x, "cycler has no items");
        jv v = c->items->v[c->pos];
        c->pos = (c->pos + 1) % c->items->n;
        return v;
    }
    case M_RESET: jb_no_args(x, a, "reset"); self.u.cy->pos = 0; return jv_none();
    }
    GLM_ASSERT(!"unknown method");
    return jv_none();
}
