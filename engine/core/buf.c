/* buf.c - see buf.h. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "core/util.h"

/* Room for n more bytes and the NUL; 0 when the limit forbids them. */
static int reserve(glm_buf *b, size_t n)
{
    if (b->over)
        return 0;
    GLM_ASSERT(n < SIZE_MAX / 4 && b->len < SIZE_MAX / 4);
    if (b->max_len && b->len + n > b->max_len) {
        b->over = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = glm_realloc(b->p, cap);
        b->cap = cap;
    }
    return 1;
}

void glm_buf_put_slow(glm_buf *b, const void *s, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void glm_buf_puts(glm_buf *b, const char *s)
{
    glm_buf_put(b, s, strlen(s));
}

void glm_buf_putc(glm_buf *b, char c)
{
    if (!reserve(b, 1))
        return;
    b->p[b->len++] = c;
    b->p[b->len] = 0;
}

void glm_buf_printf(glm_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    GLM_ASSERT(k >= 0);
    if ((size_t)k < sizeof tmp) {
        glm_buf_put(b, tmp, (size_t)k);
        return;
    }
    if (!reserve(b, (size_t)k))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

char *glm_buf_take(glm_buf *b, size_t *len)
{
    char *s = b->p ? b->p : glm_strdup("");
    if (len)
        *len = b->len;
    size_t max_len = b->max_len;
    memset(b, 0, sizeof *b);
    b->max_len = max_len;
    return s;
}

int glm_buf_read(glm_buf *b, FILE *f, size_t max_total)
{
    for (;;) {
        if (b->len >= max_total) { /* full: one more byte tells whether that was all */
            int c = fgetc(f);
            if (c == EOF)
                return ferror(f) ? GLM_ERR : GLM_OK;
            return GLM_ERR;
        }
        size_t want = GLM_MIN(max_total - b->len, (size_t)1 << 20);
        if (!reserve(b, want))
            return GLM_ERR;
        size_t got = fread(b->p + b->len, 1, want, f);
        b->len += got;
        b->p[b->len] = 0;
        if (got < want)
            return ferror(f) ? GLM_ERR : GLM_OK;
    }
}

void glm_buf_free(glm_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void glm_json_escape(void (*put)(void *ctx, const char *s, size_t n), void *ctx, const char *s, size_t n,
                     unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    const int ascii = (flags & GLM_JSON_ASCII) != 0, etag = (flags & GLM_JSON_NO_ETAG) != 0;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && !(ascii && c >= 0x7F) &&
            !(etag && c == '/' && i > 0 && s[i - 1] == '<'))
            continue;
        if (i > run)
            put(ctx, s + run, i - run);
        run = i + 1;
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '/': e = "\\/"; break;
        default: break;
        }
        if (e) {
            put(ctx, e, 2);
            continue;
        }
        uint32_t cp = c;
        if (c >= 0x80) { /* GLM_JSON_ASCII: one whole character */
            i += glm_utf8_decode_valid(s + i, s + n, &cp) - 1;
            run = i + 1;
        }
        /* \uXXXX, or a surrogate pair above U+FFFF */
        uint32_t u[2] = {cp, 0};
        int k = 1;
        if (cp >= 0x10000) {
            u[0] = 0xD800 + ((cp - 0x10000) >> 10);
            u[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            k = 2;
        }
        char out[12];
        for (int j = 0; j < k; j++) {
            char *o = out + 6 * j;
            o[0] = '\\', o[1] = 'u', o[2] = hex[u[j] >> 12], o[3] = hex[(u[j] >> 8) & 15];
            o[4] = hex[(u[j] >> 4) & 15], o[5] = hex[u[j] & 15];
        }
        put(ctx, out, (size_t)(6 * k));
    }
    if (n > run)
        put(ctx, s + run, n - run);
}

static void buf_sink(void *ctx, const char *s, size_t n)
{
    glm_buf_put(ctx, s, n);
}

void glm_buf_json_escape(glm_buf *b, const char *s, size_t n, unsigned flags)
{
    glm_json_escape(buf_sink, b, s, n, flags);
}
