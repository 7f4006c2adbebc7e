/*
 * buf.h - the growable byte buffer of the project, and JSON string escaping
 * into it.
 *
 * A glm_buf is plain data: `glm_buf b = {0}` is an empty buffer and
 * glm_buf_free releases it. Once anything was written, p is NUL-terminated
 * (the NUL is not counted in len), so p works as a C string when the bytes
 * hold no NUL. Growth doubles; running out of memory is fatal (glm_realloc).
 *
 * A buffer may carry a size limit (max_len, set before the first write): a
 * write that would take len past it is dropped and sets `over`, and every
 * later write is dropped too. Builders of large texts from network input
 * (grammars from JSON Schemas) write freely and check `over` once at the end.
 */
#ifndef GLM_CORE_BUF_H
#define GLM_CORE_BUF_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *p;        /* [cap]; NULL until the first write */
    size_t len;     /* bytes written, the NUL after them not counted */
    size_t cap;
    size_t max_len; /* 0: no limit; else len never passes it */
    int over;       /* a write was dropped because of max_len */
} glm_buf;

/* glm_buf_put's general case: growth, the limit. */
void glm_buf_put_slow(glm_buf *b, const void *s, size_t n);

/* Appends s[0..n) (n may be 0). Inline when there is room: the detokenizer
 * appends a few bytes per generated token. */
static inline void glm_buf_put(glm_buf *b, const void *s, size_t n)
{
    if (b->len + n < b->cap && !b->max_len) {
        if (n) /* s may be NULL when n is 0 */
            memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
        return;
    }
    glm_buf_put_slow(b, s, n);
}

/* Appends the C string s. */
void glm_buf_puts(glm_buf *b, const char *s);

/* Appends one byte. */
void glm_buf_putc(glm_buf *b, char c);

/* Appends printf-style formatted text (any length). */
void glm_buf_printf(glm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text so far: p, or "" before the first write. Valid until the next write. */
static inline const char *glm_buf_str(const glm_buf *b)
{
    return b->p ? b->p : "";
}

/* Empties the buffer and keeps its memory (and its limit; `over` is cleared). */
static inline void glm_buf_clear(glm_buf *b)
{
    b->len = 0;
    b->over = 0;
    if (b->p)
        b->p[0] = 0;
}

/* Hands over the text as a malloc'd NUL-terminated string (never NULL, "" when
 * nothing was written; *len gets its length when len is not NULL) and leaves
 * b empty (its limit stays). */
char *glm_buf_take(glm_buf *b, size_t *len);

/* Frees the memory; b is {0} afterwards. */
void glm_buf_free(glm_buf *b);

/* Appends what is left to read of f. GLM_OK; GLM_ERR when f holds more than
 * max_total bytes in all (b is over; `over` is set when max_len is not) or a
 * read fails (ferror(f) tells which). Reads in large blocks. */
int glm_buf_read(glm_buf *b, FILE *f, size_t max_total);

/* ---- JSON strings --------------------------------------------------------------- */

enum {
    GLM_JSON_ASCII = 1,   /* Python's ensure_ascii: DEL and every non-ASCII character become \uXXXX
                             (a surrogate pair above U+FFFF); the input must be well-formed UTF-8 */
    GLM_JSON_NO_ETAG = 2, /* "/" right after "<" becomes "\/", so the text never holds "</" (JSON
                             inside markup that closes with "</...>") */
};

/*
 * Appends s[0..n) as the inside of a JSON string (no quotes), escaped as
 * Python's json.dumps does: \" \\ \n \r \t \b \f, other bytes below 0x20 as
 * \u00XX (lowercase hex), everything else as it is unless flags say more.
 * The result parses back to the same bytes.
 */
void glm_buf_json_escape(glm_buf *b, const char *s, size_t n, unsigned flags);

/* The same, handing the escaped text to put(ctx, bytes, len) in pieces: for
 * writers that are not a glm_buf (the template engine's arena strings). */
void glm_json_escape(void (*put)(void *ctx, const char *s, size_t n), void *ctx, const char *s, size_t n,
                     unsigned flags);

#endif
