/*
 * detok.c - ids to text: glm_tok_decode and the streaming glm_detok (see
 * tokenizer.h).
 *
 * Both run the same byte-at-a-time UTF-8 repair over the tokens' decoded
 * bytes (tokenizers' ByteLevel decoder concatenates them, then
 * String::from_utf8_lossy): a complete, valid character is copied; a maximal
 * invalid subsequence (a lone byte that cannot start a character, or a valid
 * prefix cut short by a byte that cannot continue it) becomes one U+FFFD and
 * the byte that cut it short starts over; a valid prefix still open at the
 * end becomes one U+FFFD. Because the decision for every byte depends only
 * on the bytes before it and at most three after, a stream that holds back
 * an open prefix (at most 3 bytes) and flushes it at the end produces the
 * same text as decoding everything at once, piece boundaries never fall
 * inside a character, and each U+FFFD goes out as soon as it is certain.
 */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "core/util.h"

static const char REPL[3] = {(char)0xef, (char)0xbf, (char)0xbd}; /* U+FFFD */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n + 1)
            c *= 2;
        b->p = glm_realloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* The UTF-8 repair state: the open prefix of a character. */
typedef struct {
    unsigned char pend[4];
    int np;   /* bytes held, 0..3 */
    int need; /* continuation bytes still missing */
} u8state;

/* Bounds of the second byte after lead byte c (the first continuation). */
static void second_range(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c == 0xe0)
        *lo = 0xa0;
    else if (c == 0xed)
        *hi = 0x9f;
    else if (c == 0xf0)
        *lo = 0x90;
    else if (c == 0xf4)
        *hi = 0x8f;
}

static void feed(u8state *st, sbuf *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (st->np == 0) {
            /* fast path: a run of ASCII */
            size_t j = i;
            while (j < n && s[j] < 0x80)
                j++;
            if (j > i) {
                put(out, (const char *)s + i, j - i);
                i = j;
                continue;
            }
            unsigned char c = s[i++];
            if (c >= 0xc2 && c <= 0xdf)
                st->need = 1;
            else if (c >= 0xe0 && c <= 0xef)
                st->need = 2;
            else if (c >= 0xf0 && c <= 0xf4)
                st->need = 3;
            else {
                put(out, REPL, 3);
                continue;
            }
            st->pend[st->np++] = c;
            continue;
        }
        unsigned char c = s[i], lo = 0x80, hi = 0xbf;
        if (st->np == 1)
            second_range(st->pend[0], &lo, &hi);
        if (c < lo || c > hi) { /* the open prefix is a maximal invalid subsequence */
            put(out, REPL, 3);
            st->np = 0;
            st->need = 0;
            continue; /* c starts over */
        }
        st->pend[st->np++] = c;
        i++;
        if (--st->need == 0) {
            put(out, (const char *)st->pend, (size_t)st->np);
            st->np = 0;
        }
    }
}

static void finish(u8state *st, sbuf *out)
{
    if (st->np) {
        put(out, REPL, 3);
        st->np = 0;
        st->need = 0;
    }
}

/* The decoded bytes of id, or NULL when it is skipped. */
static const char *piece(const glm_tok *t, int32_t id, int skip_special, size_t *n)
{
    if (skip_special && glm_tok_is_special(t, id))
        return NULL;
    return glm_tok_token_bytes(t, id, n);
}

char *glm_tok_decode(const glm_tok *t, const int32_t *ids, size_t n, int skip_special, size_t *len)
{
    sbuf out = {0};
    u8state st = {0};
    put(&out, "", 0);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = piece(t, ids[i], skip_special, &k);
        if (s)
            feed(&st, &out, (const unsigned char *)s, k);
    }
    finish(&st, &out);
    out.p[out.n] = 0;
    if (len)
        *len = out.n;
    return out.p;
}

struct glm_detok {
    const glm_tok *t;
    int skip_special;
    int32_t keep[GLM_DETOK_MAX_KEEP]; /* special ids decoded even with skip_special */
    int n_keep;
    u8state st;
    sbuf out;
};

void glm_detok_keep(glm_detok *d, const int32_t *ids, int n)
{
    d->n_keep = 0;
    for (int i = 0; i < n && d->n_keep < GLM_DETOK_MAX_KEEP; i++)
        if (ids[i] >= 0)
            d->keep[d->n_keep++] = ids[i];
}

static int kept(const glm_detok *d, int32_t id)
{
    for (int i = 0; i < d->n_keep; i++)
        if (d->keep[i] == id)
            return 1;
    return 0;
}

glm_detok *glm_detok_new(const glm_tok *t, int skip_special)
{
    glm_detok *d = glm_calloc(1, sizeof *d);
    d->t = t;
    d->skip_special = skip_special != 0;
    put(&d->out, "", 0);
    return d;
}

void glm_detok_free(glm_detok *d)
{
    if (!d)
        return;
    free(d->out.p);
    free(d);
}

const char *glm_detok_push(glm_detok *d, int32_t id, size_t *len)
{
    d->out.n = 0;
    size_t k;
    const char *s = piece(d->t, id, d->skip_special && !kept(d, id), &k);
    if (s)
        feed(&d->st, &d->out, (const unsigned char *)s, k);
    d->out.p[d->out.n] = 0;
    *len = d->out.n;
    return d->out.p;
}

const char *glm_detok_flush(glm_detok *d, size_t *len)
{
    d->out.n = 0;
    finish(&d->st, &d->out);
    d->out.p[d->out.n] = 0;
    *len = d->out.n;
    return d->out.p;
}

int glm_detok_pending(const glm_detok *d)
{
    return d->st.np;
}
