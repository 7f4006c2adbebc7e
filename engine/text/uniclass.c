/*
 * uniclass.c - general categories as PCRE2 class text (see uniclass.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/uniclass.h"

#include <pcre2.h>
#include <string.h>

#include "core/utf8.h"

static const glm_uniclass *find(const char *name, size_t n)
{
    for (int i = 0; i < glm_n_uniclasses; i++)
        if (strlen(glm_uniclasses[i].name) == n && memcmp(glm_uniclasses[i].name, name, n) == 0)
            return &glm_uniclasses[i];
    return NULL;
}

int glm_uniclass_pcre2_is_base(void)
{
    char v[64];
    return pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, v) > 0 && strcmp(v, glm_uniclass_base_unicode) == 0;
}

static void put_range(glm_buf *b, uint32_t lo, uint32_t hi)
{
    if (lo == hi)
        glm_buf_printf(b, "\\x{%X}", lo);
    else
        glm_buf_printf(b, "\\x{%X}-\\x{%X}", lo, hi);
}

/* [lo, hi] less the surrogates, which PCRE2 refuses in a UTF pattern. */
static void put_scalar_range(glm_buf *b, uint32_t lo, uint32_t hi)
{
    if (lo < 0xD800)
        put_range(b, lo, hi < 0xD800 ? hi : 0xD7FF);
    if (hi > 0xDFFF)
        put_range(b, lo > 0xDFFF ? lo : 0xE000, hi);
}

/* The complement of the sorted ranges r[0..n) within the Unicode scalars. */
static void put_complement(glm_buf *b, const glm_cp_range *r, int n)
{
    uint32_t next = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].lo > next)
            put_scalar_range(b, next, r[i].lo - 1);
        next = r[i].hi + 1;
    }
    if (next <= 0x10FFFF)
        put_scalar_range(b, next, 0x10FFFF);
}

int glm_uniclass_items(const char *name, size_t n, int negated, glm_buf *b)
{
    const glm_uniclass *u = find(name, n);
    if (!u)
        return 0;
    if (negated) {
        /* one PCRE2 property that is exact: its negation */
        if (!u->extra && u->base_subset && !strchr(u->pcre2 + 1, '\\') && glm_uniclass_pcre2_is_base())
            glm_buf_printf(b, "\\P{%s}", u->name);
        else
            put_complement(b, u->full, u->n_full);
        return 1;
    }
    if (u->base_subset && glm_uniclass_pcre2_is_base()) {
        glm_buf_puts(b, u->pcre2);
        for (int i = 0; i < u->n_extra; i++)
            put_range(b, u->extra[i].lo, u->extra[i].hi);
    } else {
        for (int i = 0; i < u->n_full; i++)
            put_range(b, u->full[i].lo, u->full[i].hi);
    }
    return 1;
}

const char *glm_uniclass_unicode_version(void)
{
    return glm_uniclass_unicode;
}

int glm_uniclass_text_changed(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) { /* eight ASCII bytes at a time */
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t c;
        i += glm_utf8_decode_valid((const char *)u + i, s + n, &c);
        if ((glm_uniclass_changed_blocks[c >> 13] >> ((c >> 7) & 63) & 1) &&
            glm_cp_in_ranges(c, glm_uniclass_changed, (size_t)glm_n_uniclass_changed))
            return 1;
    }
    return 0;
}
