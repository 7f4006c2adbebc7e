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
    free(s->buf);
    free(s->out);
    memset(s, 0, sizeof *s);
}

static void set_out(glm_stop *s, const char *p, size_t n)
{
    if (n + 1 > s->out_cap) {
        s->out_cap = n + 64;
        s->out = glm_realloc(s->out, s->out_cap);
    }
    memcpy(s->out, p, n);
    s->out[n] = 0;
}

/* Length of the longest tail of buf[0..len) that is a proper prefix of a stop string. */
static size_t held_tail(const glm_stop *s)
{
    size_t best = 0;
    for (int i = 0; i < s->n_stops; i++) {
        size_t L = s->stop_lens[i];
        size_t k = GLM_MIN(L - 1, s->len);
        for (; k > best; k--)
            if (memcmp(s->buf + s->len - k, s->stops[i], k) == 0)
                break;
        if (k > best)
            best = k;
    }
    return best;
}

int glm_stop_push(glm_stop *s, const char *text, size_t len, const char **out, size_t *out_len)
{
    if (s->stopped) {
        set_out(s, "", 0);
        *out = s->out;
        *out_len = 0;
        return 1;
    }
    if (s->n_stops == 0) {
        set_out(s, text, len);
        *out = s->out;
        *out_len = len;
        return 0;
    }
    if (s->len + len + 1 > s->cap) {
        s->cap = (s->len + len + 1) * 2;
        s->buf = glm_realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, text, len);
    s->len += len;
    /* earliest occurrence of any stop string */
    size_t first = (size_t)-1;
    for (int i = 0; i < s->n_stops; i++) {
        const char *p = memmem(s->buf, s->len, s->stops[i], s->stop_lens[i]);
        if (p && (size_t)(p - s->buf) < first)
            first = (size_t)(p - s->buf);
    }
    if (first != (size_t)-1) {
        set_out(s, s->buf, first);
        *out = s->out;
        *out_len = first;
        s->len = 0;
        s->stopped = 1;
        return 1;
    }
    size_t keep = held_tail(s);
    size_t rel = s->len - keep;
    set_out(s, s->buf, rel);
    memmove(s->buf, s->buf + rel, keep);
    s->len = keep;
    *out = s->out;
    *out_len = rel;
    return 0;
}

void glm_stop_flush(glm_stop *s, const char **out, size_t *out_len)
{
    size_t n = s->stopped ? 0 : s->len;
    set_out(s, s->buf ? s->buf : "", n);
    s->len = 0;
    *out = s->out;
    *out_len = n;
}
