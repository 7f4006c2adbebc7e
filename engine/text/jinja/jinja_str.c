/*
 * jinja_str.c - Python str semantics on UTF-8 strings for the Jinja
 * interpreter: strip / split / rsplit / splitlines / replace / case mapping /
 * padding by code point, printf-style `%` formatting and str.format with the
 * common format specs, and the small argument helpers every builtin shares.
 */
#include "text/jinja/jinja_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

const jstr JS_SPACE = {1, " ", 1};

/* ---- argument helpers ------------------------------------------------------- */

jv jb_undef_msg(jx *x, const char *msg)
{
    return jv_undef_named(x, JU_MSG, JV_NONE, msg, strlen(msg));
}

void jb_need_defined(jx *x, jv v)
{
    if (v.t != JV_UNDEF)
        return;
    if (v.u.s && v.sub == JU_VAR)
        jx_fail(x, "'%.*s' is undefined", (int)GLM_MIN(v.u.s->len, 100), v.u.s->p);
    if (v.u.s && v.sub == JU_MSG)
        jx_fail(x, "%.*s", (int)GLM_MIN(v.u.s->len, 200), v.u.s->p);
    jx_fail(x, "undefined value used");
}

bool jb_str_eq(const jstr *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->p, lit, n) == 0;
}

int64_t jb_want_int(jx *x, jv v, const char *what)
{
    if (v.t == JV_INT || v.t == JV_BOOL)
        return v.u.i;
    jb_need_defined(x, v);
    jx_fail(x, "%s: '%s' object cannot be interpreted as an integer", what, jv_type_name(v));
}

jstr *jb_want_str(jx *x, jv v, const char *what)
{
    if (v.t == JV_STR)
        return v.u.s;
    jb_need_defined(x, v);
    jx_fail(x, "%s: expected a string, got '%s'", what, jv_type_name(v));
}

void jb_no_args(jx *x, const jargs *a, const char *name)
{
    if (a->n || a->nkw)
        jx_fail(x, "%s() takes no arguments", name);
}

/* ---- string helpers (code points) ------------------------------------------ */

static bool in_chars(uint32_t c, const jstr *chars)
{
    const char *p = chars->p, *end = p + chars->len;
    while (p < end) {
        uint32_t d;
        p += glm_utf8_decode_valid(p, end, &d);
        if (d == c)
            return true;
    }
    return false;
}

/* Python str.strip/lstrip/rstrip; chars NULL = whitespace. */
jv js_strip(jx *x, jv s, const jstr *chars, bool left, bool right)
{
    const char *b = s.u.s->p, *e = b + s.u.s->len;
    while (left && b < e) {
        uint32_t c;
        size_t k = glm_utf8_decode_valid(b, e, &c);
        if (chars ? !in_chars(c, chars) : !py_isspace(c))
            break;
        b += k;
    }
    while (right && e > b) {
        const char *q = glm_utf8_prev(b, e);
        uint32_t c;
        glm_utf8_decode_valid(q, e, &c);
        if (chars ? !in_chars(c, chars) : !py_isspace(c))
            break;
        e = q;
    }
    if (b == s.u.s->p && e == s.u.s->p + s.u.s->len)
        return s;
    return jv_str_ref(x, b, (size_t)(e - b));
}

jv js_case(jx *x, jv s, int mode) /* 0 upper, 1 lower, 2 capitalize, 3 title, 4 swapcase */
{
    const char *p = s.u.s->p, *end = p + s.u.s->len;
    jsb b;
    jsb_init(&b);
    bool first = true, prev_cased = false;
    jx_charge(x, s.u.s->len / 256);
    while (p < end) {
        uint32_t c, o;
        size_t k = glm_utf8_decode_valid(p, end, &c);
        switch (mode) {
        case 0: o = py_toupper(c); break;
        case 1: o = py_tolower(c); break;
        case 2: o = first ? py_toupper(c) : py_tolower(c); break;
        case 3: o = prev_cased ? py_tolower(c) : py_toupper(c); break;
        default: o = py_iscased_upper(c) ? py_tolower(c) : py_toupper(c); break;
        }
        prev_cased = py_iscased_upper(c) || py_iscased_lower(c);
        first = false;
        if (o == c) {
            jsb_put(x, &b, p, k);
        } else {
            char u[4];
            jsb_put(x, &b, u, glm_utf8_encode(o, u));
        }
        p += k;
    }
    return jsb_value(x, &b);
}

/* jinja2's title filter: capitalizes after - whitespace ( { [ < */
jv js_title_words(jx *x, jv s)
{
    const char *p = s.u.s->p, *end = p + s.u.s->len;
    jsb b;
    jsb_init(&b);
    bool at_start = true;
    while (p < end) {
        uint32_t c;
        size_t k = glm_utf8_decode_valid(p, end, &c);
        bool boundary = c == '-' || py_isspace(c) || c == '(' || c == '{' || c == '[' || c == '<';
        uint32_t o = boundary ? c : at_start ? py_toupper(c) : py_tolower(c);
        at_start = boundary;
        char u[4];
        jsb_put(x, &b, u, glm_utf8_encode(o, u));
        p += k;
    }
    return jsb_value(x, &b);
}

const char *js_find_bytes(const char *h, size_t hn, const jstr *needle)
{
    if (needle->len == 0)
        return h;
    return memmem(h, hn, needle->p, needle->len);
}

jv js_replace(jx *x, jv s, const jstr *old, const jstr *new, int64_t count)
{
    const jstr *src = s.u.s;
    jsb b;
    jsb_init(&b);
    jx_charge(x, src->len / 256);
    if (old->len == 0) {
        /* insert `new` before every character and at the end */
        const char *p = src->p, *end = p + src->len;
        int64_t done = 0;
        while (count < 0 || done < count) {
            jsb_put(x, &b, new->p, new->len);
            done++;
            if (p >= end)
                break;
            uint32_t c;
            size_t k = glm_utf8_decode_valid(p, end, &c);
            jsb_put(x, &b, p, k);
            p += k;
        }
        jsb_put(x, &b, p, (size_t)(end - p));
        return jsb_value(x, &b);
    }
    const char *p = src->p, *end = p + src->len;
    int64_t done = 0;
    while (count < 0 || done < count) {
        const char *hit = js_find_bytes(p, (size_t)(end - p), old);
        if (!hit)
            break;
        jsb_put(x, &b, p, (size_t)(hit - p));
        jsb_put(x, &b, new->p, new->len);
        p = hit + old->len;
        done++;
    }
    if (done == 0)
        return s;
    jsb_put(x, &b, p, (size_t)(end - p));
    return jsb_value(x, &b);
}

size_t js_cp_index(const jstr *s, const char *at)
{
    return glm_utf8_count(s->p, (size_t)(at - s->p));
}

/* Python str.split / rsplit. */
jv js_split(jx *x, jv s, jv sepv, int64_t maxsplit, bool from_right)
{
    const jstr *src = s.u.s;
    jv out = jv_list_new(x, 0, JL_LIST);
    jx_charge(x, src->len / 256);
    const char *b = src->p, *e = b + src->len;
    if (sepv.t == JV_NONE || !jarg_given(sepv)) {
        /* runs of whitespace */
        jv parts = jv_list_new(x, 0, JL_LIST);
        if (!from_right) {
            const char *p = b;
            while (p < e) {
                uint32_t c;
                while (p < e && (glm_utf8_decode_valid(p, e, &c), py_isspace(c)))
                    p += glm_utf8_decode_valid(p, e, &c);
                if (p >= e)
                    break;
                if (maxsplit >= 0 && (int64_t)parts.u.l->n == maxsplit) {
                    jv_list_push(x, parts, jv_str_ref(x, p, (size_t)(e - p)));
                    break;
                }
                const char *w = p;
                while (p < e && (glm_utf8_decode_valid(p, e, &c), !py_isspace(c)))
                    p += glm_utf8_decode_valid(p, e, &c);
                jv_list_push(x, parts, jv_str_ref(x, w, (size_t)(p - w)));
            }
            return parts;
        }
        const char *p = e;
        while (p > b) {
            uint32_t c;
            const char *q;
            while (p > b && (q = glm_utf8_prev(b, p), glm_utf8_decode_valid(q, e, &c), py_isspace(c)))
                p = q;
            if (p <= b)
                break;
            if (maxsplit >= 0 && (int64_t)parts.u.l->n == maxsplit) {
                jv_list_push(x, parts, jv_str_ref(x, b, (size_t)(p - b)));
                break;
            }
            const char *w = p;
            while (p > b && (q = glm_utf8_prev(b, p), glm_utf8_decode_valid(q, e, &c), !py_isspace(c)))
                p = q;
            jv_list_push(x, parts, jv_str_ref(x, p, (size_t)(w - p)));
        }
        /* reverse */
        jlist *l = parts.u.l;
        for (size_t i = 0; i < l->n / 2; i++) {
            jv t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i];
            l->v[l->n - 1 - i] = t;
        }
        return parts;
    }
    const jstr *sep = jb_want_str(x, sepv, "split");
    if (sep->len == 0)
        jx_fail(x, "empty separator");
    if (!from_right) {
        const char *p = b;
        for (;;) {
            const char *hit = (maxsplit < 0 || (int64_t)out.u.l->n < maxsplit)
                                  ? memmem(p, (size_t)(e - p), sep->p, sep->len) : NULL;
            if (!hit) {
                jv_list_push(x, out, jv_str_ref(x, p, (size_t)(e - p)));
                return out;
            }
            jv_list_push(x, out, jv_str_ref(x, p, (size_t)(hit - p)));
            p = hit + sep->len;
        }
    }
    /* rsplit: scan from the right */
    const char *p = e;
    jv parts = jv_list_new(x, 0, JL_LIST);
    for (;;) {
        const char *hit = NULL;
        if (maxsplit < 0 || (int64_t)parts.u.l->n < maxsplit)
            for (const char *q = p - sep->len; q >= b && p - b >= (ptrdiff_t)sep->len; q--) {
                if (memcmp(q, sep->p, sep->len) == 0) {
                    hit = q;
                    break;
                }
                if (q == b)
                    break;
            }
        if (!hit) {
            jv_list_push(x, parts, jv_str_ref(x, b, (size_t)(p - b)));
            break;
        }
        jv_list_push(x, parts, jv_str_ref(x, hit + sep->len, (size_t)(p - hit - sep->len)));
        p = hit;
    }
    jlist *l = parts.u.l;
    for (size_t i = 0; i < l->n / 2; i++) {
        jv t = l->v[i];
        l->v[i] = l->v[l->n - 1 - i];
        l->v[l->n - 1 - i] = t;
    }
    return parts;
}

static bool is_line_break(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
}

jv js_splitlines(jx *x, jv s, bool keepends)
{
    jv out = jv_list_new(x, 0, JL_LIST);
    const char *p = s.u.s->p, *e = p + s.u.s->len, *line = p;
    while (p < e) {
        uint32_t c;
        size_t k = glm_utf8_decode_valid(p, e, &c);
        if (is_line_break(c)) {
            const char *eol = p;
            p += k;
            if (c == '\r' && p < e && *p == '\n')
                p++;
            jv_list_push(x, out, jv_str_ref(x, line, (size_t)((keepends ? p : eol) - line)));
            line = p;
        } else {
            p += k;
        }
    }
    if (line < e)
        jv_list_push(x, out, jv_str_ref(x, line, (size_t)(e - line)));
    return out;
}

/* Python str.center / ljust / rjust. */
jv js_pad(jx *x, jv s, int64_t width, const jstr *fill, int mode /* 0 center 1 ljust 2 rjust */)
{
    int64_t len = (int64_t)jstr_nchars(s.u.s);
    if (width <= len)
        return s;
    if (width > (int64_t)x->max_output)
        jx_fail(x, "template output exceeded %zu bytes", x->max_output);
    int64_t marg = width - len, left;
    if (mode == 0)
        left = marg / 2 + (marg & width & 1);
    else
        left = mode == 1 ? 0 : marg;
    jsb b;
    jsb_init(&b);
    for (int64_t i = 0; i < left; i++)
        jsb_put(x, &b, fill->p, fill->len);
    jsb_put(x, &b, s.u.s->p, s.u.s->len);
    for (int64_t i = 0; i < marg - left; i++)
        jsb_put(x, &b, fill->p, fill->len);
    return jsb_value(x, &b);
}

bool js_cased_all(jx *x, jv v, int kind) /* 0 lower, 1 upper */
{
    jv s = jv_as_string(x, v);
    const char *p = s.u.s->p, *e = p + s.u.s->len;
    bool cased = false;
    while (p < e) {
        uint32_t c;
        p += glm_utf8_decode_valid(p, e, &c);
        bool up = py_iscased_upper(c), lo = py_iscased_lower(c);
        if (kind == 0 ? up : lo)
            return false;
        cased |= kind == 0 ? lo : up;
    }
    return cased;
}

/* ---- number parsing (Python int() / float() of a str) --------------------------- */

/* Copies s without surrounding whitespace and with Python's digit-separating
 * underscores removed; false if an underscore is misplaced or s is too long. */
static bool number_text(const jstr *s, char *buf, size_t cap)
{
    const char *b = s->p, *e = b + s->len;
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    size_t k = 0;
    for (const char *p = b; p < e; p++) {
        if (*p == '_') {
            if (p == b || p + 1 == e || !isalnum((unsigned char)p[-1]) || !isalnum((unsigned char)p[1]))
                return false;
            continue;
        }
        if (k + 1 >= cap)
            return false;
        buf[k++] = *p;
    }
    buf[k] = 0;
    return k > 0;
}

bool js_parse_int(const jstr *s, int base, int64_t *out)
{
    char buf[96];
    if ((base != 0 && (base < 2 || base > 36)) || !number_text(s, buf, sizeof buf))
        return false;
    const char *q = buf;
    bool neg = false;
    if (*q == '+' || *q == '-')
        neg = *q++ == '-';
    char pfx = q[0] == '0' ? (char)(q[1] | 0x20) : 0;
    if ((pfx == 'x' && (base == 16 || base == 0)) || (pfx == 'o' && (base == 8 || base == 0)) ||
        (pfx == 'b' && (base == 2 || base == 0))) {
        base = pfx == 'x' ? 16 : pfx == 'o' ? 8 : 2;
        q += 2;
    } else if (base == 0) {
        base = 10;
        if (q[0] == '0' && q[strspn(q, "0")] != 0) /* "012" is invalid with base 0 */
            return false;
    }
    if (!*q)
        return false;
    uint64_t v = 0;
    for (; *q; q++) {
        int d = isdigit((unsigned char)*q) ? *q - '0' : isalpha((unsigned char)*q) ? (*q | 0x20) - 'a' + 10 : 99;
        if (d >= base)
            return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false; /* beyond 64 bits (Python's ints are unbounded) */
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool js_parse_float(const jstr *s, double *out)
{
    char buf[400];
    if (!number_text(s, buf, sizeof buf))
        return false;
    const char *q = buf + (buf[0] == '+' || buf[0] == '-');
    static const char *const words[] = {"inf", "infinity", "nan"};
    bool word = false;
    for (size_t i = 0; i < 3; i++)
        word |= strcasecmp(q, words[i]) == 0;
    if (!word) { /* digits [. digits] [e [sign] digits], no hex */
        size_t nd = strspn(q, "0123456789");
        q += nd;
        if (*q == '.') {
            size_t nf = strspn(q + 1, "0123456789");
            if (nd + nf == 0)
                return false;
            q += 1 + nf;
        } else if (nd == 0) {
            return false;
        }
        if (*q == 'e' || *q == 'E') {
            q++;
            if (*q == '+' || *q == '-')
                q++;
            size_t ne = strspn(q, "0123456789");
            if (!ne)
                return false;
            q += ne;
        }
        if (*q)
            return false;
    }
    *out = strtod(buf, NULL);
    return true;
}

/* ---- printf-style % formatting ------------------------------------------------- */

static void fmt_number(jx *x, jsb *b, jv v, char conv, const char *flags, int width, int prec)
{
    char spec[32], out[512];
    if (conv == 'd' || conv == 'i' || conv == 'u') {
        int64_t i;
        if (v.t == JV_FLOAT) {
            if (!isfinite(v.u.f))
                jx_fail(x, "cannot convert float to integer");
            if (fabs(v.u.f) >= 9.2e18)
                jx_fail(x, "integer overflow");
            i = (int64_t)v.u.f;
        } else if (v.t == JV_INT || v.t == JV_BOOL) {
            i = v.u.i;
        } else {
            jb_need_defined(x, v);
            jx_fail(x, "%%%c format: a real number is required, not %s", conv, jv_type_name(v));
        }
        if (prec < 0) {
            snprintf(spec, sizeof spec, "%%%s*lld", flags);
            snprintf(out, sizeof out, spec, width, (long long)i);
        } else {
            snprintf(spec, sizeof spec, "%%%s*.*lld", flags);
            snprintf(out, sizeof out, spec, width, prec, (long long)i);
        }
    } else if (conv == 'x' || conv == 'X' || conv == 'o') {
        if (v.t != JV_INT && v.t != JV_BOOL) {
            jb_need_defined(x, v);
            jx_fail(x, "%%%c format: an integer is required, not %s", conv, jv_type_name(v));
        }
        int64_t i = v.u.i;
        bool neg = i < 0;
        uint64_t mag = neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        char digits[80];
        snprintf(digits, sizeof digits, conv == 'o' ? "%llo" : conv == 'x' ? "%llx" : "%llX",
                 (unsigned long long)mag);
        char body[100];
        snprintf(body, sizeof body, "%s%s%s", neg ? "-" : strchr(flags, '+') ? "+" : strchr(flags, ' ') ? " " : "",
                 strchr(flags, '#') ? (conv == 'o' ? "0o" : conv == 'x' ? "0x" : "0X") : "", digits);
        snprintf(out, sizeof out, strchr(flags, '-') ? "%-*s" : "%*s", width, body);
    } else {
        double f;
        if (jv_is_num(v)) {
            f = jv_as_float(v);
        } else {
            jb_need_defined(x, v);
            jx_fail(x, "must be real number, not %s", jv_type_name(v));
        }
        if (!isfinite(f)) {
            const char *t = isnan(f) ? "nan" : f < 0 ? "-inf" : "inf";
            if (isupper((unsigned char)conv))
                t = isnan(f) ? "NAN" : f < 0 ? "-INF" : "INF";
            snprintf(out, sizeof out, strchr(flags, '-') ? "%-*s" : "%*s", width, t);
        } else {
            snprintf(spec, sizeof spec, "%%%s*.*%c", flags, conv);
            snprintf(out, sizeof out, spec, width > 400 ? 400 : width, prec < 0 ? 6 : (prec > 100 ? 100 : prec), f);
        }
    }
    jsb_puts(x, b, out);
}

jv jb_percent_format(jx *x, jv fmtv, jv args)
{
    const jstr *fmt = fmtv.u.s;
    const jv *items = &args;
    size_t nitems = 1, next = 0;
    jv mapping = {0};
    bool is_map = args.t == JV_DICT;
    if (args.t == JV_LIST && args.sub == JL_TUPLE) {
        items = args.u.l->v;
        nitems = args.u.l->n;
    }
    if (is_map)
        mapping = args;
    jsb b;
    jsb_init(&b);
    const char *p = fmt->p, *e = p + fmt->len;
    while (p < e) {
        const char *pct = memchr(p, '%', (size_t)(e - p));
        if (!pct) {
            jsb_put(x, &b, p, (size_t)(e - p));
            break;
        }
        jsb_put(x, &b, p, (size_t)(pct - p));
        p = pct + 1;
        if (p >= e)
            jx_fail(x, "incomplete format");
        jv v = {0};
        bool have_v = false;
        if (*p == '(') {
            const char *close = memchr(p, ')', (size_t)(e - p));
            if (!close || !is_map)
                jx_fail(x, "format requires a mapping");
            jv *m = jv_dict_get_str(mapping, p + 1, (size_t)(close - p - 1));
            if (!m)
                jx_fail(x, "KeyError: '%.*s'", (int)GLM_MIN(close - p - 1, 60), p + 1);
            v = *m;
            have_v = true;
            p = close + 1;
        }
        char flags[8];
        int nf = 0;
        while (p < e && strchr("-+ #0", *p)) {
            if (nf < 6 && !memchr(flags, *p, (size_t)nf))
                flags[nf++] = *p;
            p++;
        }
        flags[nf] = 0;
        int width = 0, prec = -1;
        if (p < e && *p == '*') {
            if (next >= nitems)
                jx_fail(x, "not enough arguments for format string");
            width = (int)jb_want_int(x, items[next++], "* width");
            p++;
        } else {
            while (p < e && isdigit((unsigned char)*p)) {
                width = width * 10 + (*p++ - '0');
                if (width > 100000)
                    jx_fail(x, "width too big");
            }
        }
        if (p < e && *p == '.') {
            p++;
            prec = 0;
            while (p < e && isdigit((unsigned char)*p)) {
                prec = prec * 10 + (*p++ - '0');
                if (prec > 100000)
                    jx_fail(x, "precision too big");
            }
        }
        while (p < e && (*p == 'l' || *p == 'h' || *p == 'L'))
            p++;
        if (p >= e)
            jx_fail(x, "incomplete format");
        char conv = *p++;
        if (conv == '%') {
            jsb_putc(x, &b, '%');
            continue;
        }
        if (!have_v) {
            if (is_map) {
                v = args;
            } else {
                if (next >= nitems)
                    jx_fail(x, "not enough arguments for format string");
                v = items[next++];
            }
        }
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            jsb tmp;
            jsb_init(&tmp);
            if (conv == 's')
                jv_to_str(x, &tmp, v);
            else
                jv_to_repr(x, &tmp, v);
            jv sv = jsb_value(x, &tmp);
            if (prec >= 0)
                sv = jv_str_slice_chars(x, sv, 0, (size_t)prec);
            sv = js_pad(x, sv, width, &JS_SPACE, strchr(flags, '-') ? 1 : 2);
            jsb_put(x, &b, sv.u.s->p, sv.u.s->len);
            break;
        }
        case 'c': {
            char u[4];
            if (v.t == JV_STR && jstr_nchars(v.u.s) == 1) {
                jsb_put(x, &b, v.u.s->p, v.u.s->len);
            } else {
                int64_t c = jb_want_int(x, v, "%c");
                if (c < 0 || c > 0x10FFFF)
                    jx_fail(x, "%%c arg not in range(0x110000)");
                jsb_put(x, &b, u, glm_utf8_encode((uint32_t)c, u));
            }
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o':
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
            fmt_number(x, &b, v, conv, flags, width, prec);
            break;
        default: jx_fail(x, "unsupported format character '%c'", conv);
        }
    }
    /* Python treats any non-tuple argument with __getitem__ (dict, list) as a
     * mapping here and does not complain about unused arguments */
    bool mapping_like = is_map || args.t == JV_UNDEF || (args.t == JV_LIST && args.sub != JL_TUPLE);
    if (!mapping_like && next < nitems)
        jx_fail(x, "not all arguments converted during string formatting");
    return jsb_value(x, &b);
}

/* ---- str.format ----------------------------------------------------------------- */

static jv format_spec(jx *x, jv v, const char *spec, size_t n)
{
    /* [[fill]align][sign][#][0][width][,][.precision][type] */
    jstr fill = JS_SPACE;
    char align = 0, sign = 0, type = 0;
    const char *p = spec, *e = spec + n;
    char fillbuf[4];
    if (e - p >= 2) {
        uint32_t c;
        size_t k = glm_utf8_decode_valid(p, e, &c);
        if (p + k < e && strchr("<>^=", p[k])) {
            jcopy(fillbuf, p, k);
            fill = (jstr){k, fillbuf, -1};
            align = p[k];
            p += k + 1;
        }
    }
    if (!align && p < e && strchr("<>^=", *p))
        align = *p++;
    if (p < e && strchr("+- ", *p))
        sign = *p++;
    if (p < e && *p == '#')
        p++;
    if (p < e && *p == '0') {
        if (!align) {
            align = '=';
            fill = (jstr){1, "0", 1};
        }
        p++;
    }
    int width = 0, prec = -1;
    for (; p < e && isdigit((unsigned char)*p); p++)
        width = width >= 100000 ? 100000 : width * 10 + (*p - '0');
    if (p < e && *p == '.') {
        p++;
        prec = 0;
        for (; p < e && isdigit((unsigned char)*p); p++)
            prec = prec >= 1000 ? 1000 : prec * 10 + (*p - '0');
    }
    if (p < e)
        type = *p++;
    if (p != e)
        jx_fail(x, "invalid format specifier");
    jv body;
    if (type == 's' || (type == 0 && !jv_is_num(v))) {
        body = jv_as_string(x, v);
        if (prec >= 0)
            body = jv_str_slice_chars(x, body, 0, (size_t)prec);
    } else {
        jsb b;
        jsb_init(&b);
        char flags[4] = {0};
        if (sign == '+' || sign == ' ')
            flags[0] = sign;
        if (type == 0 && v.t != JV_FLOAT)
            type = 'd';
        if (type == 0) {
            if (prec < 0) {
                jv_to_str(x, &b, v);
            } else {
                fmt_number(x, &b, v, 'g', flags, 0, prec);
            }
        } else if (type == '%') {
            fmt_number(x, &b, jv_float(jv_as_float(v) * 100), 'f', flags, 0, prec);
            jsb_putc(x, &b, '%');
        } else if (strchr("dxXobeEfFgGn", type)) {
            fmt_number(x, &b, v, type == 'n' ? 'd' : type == 'b' ? 'd' : type, flags, 0, prec);
        } else {
            jx_fail(x, "unknown format code '%c'", type);
        }
        body = jsb_value(x, &b);
    }
    if (!align)
        align = jv_is_num(v) && type != 's' ? '>' : '<';
    if (align == '=') {
        /* pad after the sign */
        int64_t len = (int64_t)jstr_nchars(body.u.s);
        if (width <= len)
            return body;
        jsb b;
        jsb_init(&b);
        const char *bp = body.u.s->p;
        size_t bl = body.u.s->len;
        if (bl && (bp[0] == '-' || bp[0] == '+' || bp[0] == ' ')) {
            jsb_putc(x, &b, bp[0]);
            bp++;
            bl--;
        }
        for (int64_t i = 0; i < width - len; i++)
            jsb_put(x, &b, fill.p, fill.len);
        jsb_put(x, &b, bp, bl);
        return jsb_value(x, &b);
    }
    return js_pad(x, body, width, &fill, align == '^' ? 0 : align == '<' ? 1 : 2);
}

jv js_format(jx *x, jv fmtv, const jargs *a)
{
    const jstr *fmt = fmtv.u.s;
    jsb b;
    jsb_init(&b);
    const char *p = fmt->p, *e = p + fmt->len;
    int auto_idx = 0;
    while (p < e) {
        char c = *p;
        if (c == '{' && p + 1 < e && p[1] == '{') {
            jsb_putc(x, &b, '{');
            p += 2;
            continue;
        }
        if (c == '}' && p + 1 < e && p[1] == '}') {
            jsb_putc(x, &b, '}');
            p += 2;
            continue;
        }
        if (c == '}')
            jx_fail(x, "single '}' encountered in format string");
        if (c != '{') {
            jsb_putc(x, &b, c);
            p++;
            continue;
        }
        const char *close = memchr(p, '}', (size_t)(e - p));
        if (!close)
            jx_fail(x, "single '{' encountered in format string");
        const char *f = p + 1, *fe = close;
        const char *colon = memchr(f, ':', (size_t)(fe - f));
        const char *bang = memchr(f, '!', (size_t)((colon ? colon : fe) - f));
        const char *name_end = bang ? bang : colon ? colon : fe;
        jv v;
        if (name_end == f) {
            if (auto_idx >= a->n)
                jx_fail(x, "Replacement index %d out of range for positional args tuple", auto_idx);
            v = a->v[auto_idx++];
        } else if (isdigit((unsigned char)*f)) {
            int idx = 0;
            for (const char *q = f; q < name_end; q++) {
                if (!isdigit((unsigned char)*q))
                    jx_fail(x, "unsupported format field");
                idx = idx >= 1000000 ? 1000000 : idx * 10 + (*q - '0');
            }
            if (idx >= a->n)
                jx_fail(x, "Replacement index %d out of range for positional args tuple", idx);
            v = a->v[idx];
        } else {
            int k;
            for (k = 0; k < a->nkw; k++)
                if (a->kwn[k]->len == (size_t)(name_end - f) && memcmp(a->kwn[k]->p, f, a->kwn[k]->len) == 0)
                    break;
            if (k == a->nkw)
                jx_fail(x, "KeyError: '%.*s'", (int)GLM_MIN(name_end - f, 60), f);
            v = a->kwv[k];
        }
        if (bang) {
            char conv = bang + 1 < (colon ? colon : fe) ? bang[1] : 0;
            if (conv == 'r' || conv == 'a') {
                jsb t;
                jsb_init(&t);
                jv_to_repr(x, &t, v);
                v = jsb_value(x, &t);
            } else if (conv == 's') {
                v = jv_as_string(x, v);
            } else {
                jx_fail(x, "unknown conversion specifier");
            }
        }
        jv out = colon ? format_spec(x, v, colon + 1, (size_t)(fe - colon - 1)) : jv_as_string(x, v);
        jsb_put(x, &b, out.u.s->p, out.u.s->len);
        p = close + 1;
    }
    return jsb_value(x, &b);
}
