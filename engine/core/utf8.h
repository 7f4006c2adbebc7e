/*
 * utf8.h - UTF-8 as Unicode 15 (chapter 3.9, table 3-7) defines it: the one
 * decoder, encoder and validator of the project.
 *
 * Well-formed means: shortest form, no surrogates (U+D800..U+DFFF), nothing
 * past U+10FFFF. Two kinds of callers:
 *   - text that is known well-formed (jansson strings, a validated template,
 *     the tokenizer's own byte-level alphabet): glm_utf8_len and
 *     glm_utf8_decode_valid step through it without checks;
 *   - bytes from outside (a model's output, a grammar, a request):
 *     glm_utf8_seq classifies each position, glm_utf8_valid_prefix finds the
 *     first bad byte.
 * The small step functions are inline: the tokenizer and the grammar masks
 * call them per byte.
 */
#ifndef GLM_CORE_UTF8_H
#define GLM_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define GLM_UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD, 3 bytes */
#define GLM_UTF8_MAX_CP 0x10FFFFu

/* Bytes of the character that lead byte c starts, in well-formed text (1..4). */
static inline size_t glm_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Continuation bytes that lead byte c needs: 0 for ASCII, 1..3 for a byte that
 * may start a well-formed character (C2..F4), -1 for one that never does (a
 * continuation byte, C0, C1, F5..FF). */
static inline int glm_utf8_need(unsigned char c)
{
    return c < 0x80 ? 0 : c < 0xC2 ? -1 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : c < 0xF5 ? 3 : -1;
}

/* The bytes the first continuation byte after lead byte c may take: 80..BF,
 * narrowed after E0, ED, F0, F4 (which is what excludes overlong forms,
 * surrogates and code points past U+10FFFF). Later continuation bytes are
 * always 80..BF. */
static inline void glm_utf8_second_range(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    *hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
}

/* Decodes the character at p (p < end) of well-formed text into *cp and
 * returns its length. Never reads at or past end: a character cut short by
 * end comes back as its lead byte, length 1. Not a validator. */
static inline size_t glm_utf8_decode_valid(const char *p, const char *end, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t k = glm_utf8_len(s[0]);
    if (k == 1 || (size_t)(end - p) < k) {
        *cp = s[0];
        return 1;
    }
    if (k == 2)
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3Fu);
    else if (k == 3)
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3Fu);
    else
        *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
              (s[3] & 0x3Fu);
    return k;
}

/* Start of the character that ends just before p (begin < p), in
 * well-formed text that starts at begin. */
static inline const char *glm_utf8_prev(const char *begin, const char *p)
{
    do
        p--;
    while (p > begin && ((unsigned char)*p & 0xC0) == 0x80);
    return p;
}

/* Writes code point cp (at most U+10FFFF; surrogates are written as they
 * come) into out; returns the length (1..4). */
static inline size_t glm_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Classifies the bytes at s[0..n) (n >= 1):
 *   k > 0   a well-formed character of k bytes; *cp gets it (cp may be NULL)
 *   0       a proper prefix of a well-formed character: more bytes needed
 *   -k      the first k bytes are an ill-formed maximal subpart: the unit that
 *           one U+FFFD replaces ("substitution of maximal subparts", what
 *           Python's and Rust's lossy decoders do); decoding goes on at s[k]
 * NUL is an ordinary character here.
 */
int glm_utf8_seq(const char *s, size_t n, uint32_t *cp);

/* Offset of the first byte of s[0..n) that is not part of a complete,
 * well-formed character (n when all of it is well-formed). ASCII runs go
 * eight bytes at a time. */
size_t glm_utf8_valid_prefix(const char *s, size_t n);

/* 1 when all of s[0..n) is well-formed UTF-8. */
static inline int glm_utf8_valid(const char *s, size_t n)
{
    return glm_utf8_valid_prefix(s, n) == n;
}

/* Code points in s[0..n): the bytes that are not continuation bytes (exact
 * for well-formed text). */
size_t glm_utf8_count(const char *s, size_t n);

#endif
