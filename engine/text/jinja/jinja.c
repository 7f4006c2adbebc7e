/*
 * jinja.c - entry points of the Jinja interpreter (compile, render, free) and
 * the pieces every part of it shares: the bump arena, the render's error exit,
 * its step budget and string builders. See jinja.h for the contract and
 * jinja_internal.h for how the files divide the work.
 */
#include "text/jinja/jinja_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"

#define DEFAULT_MAX_STEPS 10000000ull
#define DEFAULT_MAX_OUTPUT ((size_t)64 << 20)
#define DEFAULT_MAX_MEMORY ((size_t)256 << 20)
#define DEFAULT_MAX_DEPTH 200

/* Implemented in jinja_eval.c: runs the template body with `ctx` as globals. */

/* ---- arena ------------------------------------------------------------- */

struct jchunk {
    jchunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_MIN ((size_t)64 << 10)

void *jarena_alloc(jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    jchunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_MIN / 4 ? n : CHUNK_MIN;
        if (n > SIZE_MAX / 2 || (a->limit && (a->total + size + sizeof(jchunk) > a->limit)))
            return NULL;
        jchunk *nc = malloc(sizeof(jchunk) + size);
        if (!nc)
            return NULL;
        nc->size = size;
        nc->used = 0;
        a->total += size + sizeof(jchunk);
        if (c && size != CHUNK_MIN && c->size - c->used > CHUNK_MIN / 4) {
            /* a big block: keep filling the current chunk afterwards */
            nc->next = c->next;
            c->next = nc;
            nc->used = n;
            memset(nc->data, 0, n);
            return nc->data;
        }
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void jarena_free(jarena *a)
{
    jchunk *c = a->head;
    while (c) {
        jchunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- render helpers --------------------------------------------------------- */

void jx_fail(jx *x, const char *fmt, ...)
{
    char msg[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->err && x->errlen)
        snprintf(x->err, x->errlen, "%s:%d: %s", x->t->name, x->line, msg);
    longjmp(x->jmp, 1);
}

void *jx_alloc(jx *x, size_t n)
{
    void *p = jarena_alloc(&x->arena, n);
    if (!p)
        jx_fail(x, "template used more than %zu MiB of memory", x->arena.limit >> 20);
    return p;
}

void jx_charge(jx *x, uint64_t n)
{
    x->steps += n;
    if (x->steps > x->max_steps)
        jx_fail(x, "template exceeded %llu steps (endless loop or recursion?)",
                (unsigned long long)x->max_steps);
}

void jsb_init(jsb *b)
{
    memset(b, 0, sizeof *b);
}

static void jsb_grow(jx *x, jsb *b, size_t need)
{
    if (need > x->max_output)
        jx_fail(x, "template output exceeded %zu bytes", x->max_output);
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > x->max_output + 1)
        cap = x->max_output + 1;
    if (b->heap) {
        char *p = realloc(b->p, cap);
        if (!p)
            jx_fail(x, "out of memory for template output");
        b->p = p;
    } else {
        char *p = jx_alloc(x, cap);
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
    }
    b->cap = cap;
}

void jsb_put(jx *x, jsb *b, const char *p, size_t n)
{
    if (!n)
        return;
    if (b->len + n + 1 > b->cap)
        jsb_grow(x, b, b->len + n + 1);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void jsb_putc(jx *x, jsb *b, char c)
{
    if (b->len + 2 > b->cap)
        jsb_grow(x, b, b->len + 2);
    b->p[b->len++] = c;
}

void jsb_puts(jx *x, jsb *b, const char *s)
{
    jsb_put(x, b, s, strlen(s));
}

void jsb_printf(jx *x, jsb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    GLM_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    jsb_put(x, b, tmp, (size_t)n);
}

jv jsb_value(jx *x, jsb *b)
{
    GLM_ASSERT(!b->heap);
    jstr *s = jx_alloc(x, sizeof *s);
    s->p = b->len ? b->p : "";
    s->len = b->len;
    s->ascii = -1;
    jv v = {0};
    v.t = JV_STR;
    v.u.s = s;
    return v;
}

/* ---- entry points --------------------------------------------------------- */

int glm_jinja_compile(const char *src, size_t len, const char *name, glm_jinja **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    glm_jinja *t = glm_calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "template");
    if (jinja_parse(t, src, len, err, errlen) != GLM_OK) {
        glm_jinja_free(t);
        return GLM_ERR;
    }
    *out = t;
    return GLM_OK;
}

void glm_jinja_free(glm_jinja *t)
{
    if (!t)
        return;
    jarena_free(&t->arena);
    free(t->syms);
    free(t);
}

int glm_jinja_render(const glm_jinja *t, const json_t *ctx, const glm_jinja_limits *limits,
                     char **out, size_t *out_len, char *err, size_t errlen)
{
    GLM_ASSERT(t && out);
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (ctx && !json_is_object(ctx))
        return glm_err(err, errlen, "%s: the render context must be a JSON object", t->name);

    /* volatile: read after longjmp */
    jx *volatile x = glm_calloc(1, sizeof *x);
    x->t = t;
    x->err = err;
    x->errlen = errlen;
    x->max_steps = limits && limits->max_steps ? limits->max_steps : DEFAULT_MAX_STEPS;
    x->max_output = limits && limits->max_output ? limits->max_output : DEFAULT_MAX_OUTPUT;
    x->max_depth = limits && limits->max_depth > 0 ? limits->max_depth : DEFAULT_MAX_DEPTH;
    x->arena.limit = limits && limits->max_memory ? limits->max_memory : DEFAULT_MAX_MEMORY;
    x->line = 1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x->now = (double)ts.tv_sec;
    jsb_init(&x->result);
    x->result.heap = true;
    x->out = &x->result;

    int rc = GLM_ERR;
    if (setjmp(x->jmp) == 0) {
        jinja_eval_template(x, ctx);
        jsb_putc(x, &x->result, '\0');
        x->result.len--;
        *out = x->result.p ? x->result.p : glm_strdup("");
        if (out_len)
            *out_len = x->result.len;
        x->result.p = NULL;
        rc = GLM_OK;
    }
    free(x->result.p);
    jarena_free(&x->arena);
    free(x);
    return rc;
}
