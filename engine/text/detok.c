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
#include "core/buf.h"
#include "core/utf8.h"
#include "core/util.h"

#define REPL GLM_UTF8_REPLACEMENT

/* The UTF-8 repair state: the open prefix of a character. */
typedef struct {
    unsigned char pend[4];
    int np;   /* bytes held, 0..3 */
    int need; /* continuation bytes still missing */
} u8state;

static void feed(u8state *st, glm_buf *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (st->np == 0) {
            /* fast path: a run of ASCII */
            size_t j = i;
            while (j < n && s[j] < 0x80)
                j++;
            if (j > i) {
                glm_buf_put(out, s + i, j - i);
                i = j;
                continue;
            }
            unsigned char c = s[i++];
            st->need = glm_utf8_need(c);
            if (st->need < 0) {
                st->need = 0;
                glm_buf_put(out, REPL, 3);
                continue;
            }
            st->pend[st->np++] = c;
            continue;
        }
        unsigned char c = s[i], lo = 0x80, hi = 0xbf;
        if (st->np == 1)
            glm_utf8_second_range(st->pend[0], &lo, &hi);
        if (c < lo || c > hi) { /* the open prefix is a maximal invalid subsequence */
            glm_buf_put(out, REPL, 3);
            st->np = 0;
            st->need = 0;
            continue; /* c starts over */
        }
        st->pend[st->np++] = c;
        i++;
        if (--st->need == 0) {
            glm_buf_put(out, st->pend, (size_t)st->np);
            st->np = 0;
        }
    }
}

static void finish(u8state *st, glm_buf *out)
{
    if (st->np) {
        glm_buf_put(out, REPL, 3);
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
    glm_buf out = {0};
    u8state st = {0};
    for (size_t i = 0; i < n; i++) {
        size_t k;
        const char *s = piece(t, ids[i], skip_special, &k);
        if (s)
            feed(&st, &out, (const unsigned char *)s, k);
    }
    finish(&st, &out);
    return glm_buf_take(&out, len);
}

struct glm_detok {
    const glm_tok *t;
    int skip_special;
    int32_t keep[GLM_DETOK_MAX_KEEP]; /* special ids decoded even with skip_special */
    int n_keep;
    u8state st;
    glm_buf out;
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
    glm_buf_put(&d->out, "", 0);
    return d;
}

void glm_detok_free(glm_detok *d)
{
    if (!d)
        return;
    glm_buf_free(&d->out);
    free(d);
}

const char *glm_detok_push(glm_detok *d, int32_t id, size_t *len)
{
    glm_buf_clear(&d->out);
    size_t k;
    const char *s = piece(d->t, id, d->skip_special && !kept(d, id), &k);
    if (s)
        feed(&d->st, &d->out, (const unsigned char *)s, k);
    *len = d->out.len;
    return d->out.p;
}

const char *glm_detok_flush(glm_detok *d, size_t *len)
{
    glm_buf_clear(&d->out);
    finish(&d->st, &d->out);
    *len = d->out.len;
    return d->out.p;
}

int glm_detok_pending(const glm_detok *d)
{
    return d->st.np;
}
