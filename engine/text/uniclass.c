/*
 * uniclass.c - general categories as PCRE2 class text (see uniclass.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/uniclass.h"

#include <pcre2.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

static inline int changed_block(uint32_t c)
{
    return glm_uniclass_changed_blocks[c >> 13] >> ((c >> 7) & 63) & 1;
}

/* Whether lead byte b may start a changed code point: none of those is below
 * U+0800 (two-byte characters) or in U+4000..U+9FFF (lead bytes E4..E9, the
 * CJK ideographs), which make_unicode_tables.py checks. Every other byte
 * (ASCII, continuation, those leads) is skipped without decoding, so the
 * scan needs no character alignment and can skip 16 bytes at a time. */
static inline int may_start_changed(unsigned b)
{
    return b >= 0xE0 && (b < 0xE4 || b > 0xE9);
}

int glm_uniclass_text_changed(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
#ifdef __SSE2__
        if (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(u + i));
            __m128i ge_e0 = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8((char)0xE0)), v);
            __m128i ge_e4 = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8((char)0xE4)), v);
            __m128i le_e9 = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8((char)0xE9)), v);
            unsigned m = (unsigned)_mm_movemask_epi8(_mm_andnot_si128(_mm_and_si128(ge_e4, le_e9), ge_e0));
            if (!m) {
                i += 16;
                continue;
            }
            i += (size_t)__builtin_ctz(m); /* to the first lead byte that may start one */
        }
#endif
        unsigned b = u[i];
        if (!may_start_changed(b)) {
            i++;
            continue;
        }
        /* a three-byte character's block of 128 from its first two bytes */
        if (b < 0xF0 && i + 1 < n && !changed_block((b & 0x0Fu) << 12 | (u[i + 1] & 0x3Fu) << 6)) {
            i += 3;
            continue;
        }
        uint32_t c;
        i += glm_utf8_decode_valid((const char *)u + i, s + n, &c);
        if (changed_block(c) && glm_cp_in_ranges(c, glm_uniclass_changed, (size_t)glm_n_uniclass_changed))
            return 1;
    }
    return 0;
}
