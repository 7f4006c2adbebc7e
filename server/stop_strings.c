/* stop_strings.c - stop-string matching with hold-back; see stop_strings.h. */
#include "stop_strings.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void glm_stop_init(glm_stop *s, const char *const *stops, const size_t *lens, int n)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
    s->stop_lens = lens;
    s->n_stops = n;
}

void glm_stop_free(glm_stop *s)
{
    glm_buf_free(&s->held);
    glm_buf_free(&s->out);
    memset(s, 0, sizeof *s);
}

/* Releases p[0..n): the result of this call. */
static void set_out(glm_stop *s, const char *p, size_t n, const char **out, size_t *out_len)
{
    glm_buf_clear(&s->out);
    glm_buf_put(&s->out, p, n);
    *out = s->out.p;
    *out_len = n;
}

/* Length of the longest tail of the held text that is a proper prefix of a stop string. */
static size_t held_tail(const glm_stop *s)
{
    size_t best = 0, len = s->held.len;
    for (int i = 0; i < s->n_stops; i++) {
        size_t L = s->stop_lens[i];
        size_t k = GLM_MIN(L - 1, len);
        for (; k > best; k--)
            if (memcmp(s->held.p + len - k, s->stops[i], k) == 0)
                break;
        if (k > best)
            best = k;
    }
    return best;
}

int glm_stop_push(glm_stop *s, const char *text, size_t len, const char **out, size_t *out_len)
{
    if (s->stopped) {
        set_out(s, "", 0, out, out_len);
        return 1;
    }
    if (s->n_stops == 0) {
        set_out(s, text, len, out, out_len);
        return 0;
    }
    glm_buf *h = &s->held;
    glm_buf_put(h, text, len);
    /* earliest occurrence of any stop string */
    size_t first = (size_t)-1, first_len = 0;
    for (int i = 0; i < s->n_stops; i++) {
        const char *p = memmem(h->p, h->len, s->stops[i], s->stop_lens[i]);
        if (p && (size_t)(p - h->p) < first) {
            first = (size_t)(p - h->p);
            first_len = s->stop_lens[i];
        }
    }
    if (first != (size_t)-1) {
        set_out(s, h->p, first + (s->include_stop ? first_len : 0), out, out_len);
        glm_buf_clear(h);
        s->stopped = 1;
        return 1;
    }
    size_t keep = held_tail(s);
    size_t rel = h->len - keep;
    set_out(s, h->p, rel, out, out_len);
    memmove(h->p, h->p + rel, keep);
    h->len = keep;
    h->p[keep] = 0;
    return 0;
}

void glm_stop_flush(glm_stop *s, const char **out, size_t *out_len)
{
    set_out(s, glm_buf_str(&s->held), s->stopped ? 0 : s->held.len, out, out_len);
    glm_buf_clear(&s->held);
}
