/* utf8.c - see utf8.h. */
#include "core/utf8.h"

#include <string.h>

int glm_utf8_seq(const char *p, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)p;
    unsigned char c = s[0];
    int need = glm_utf8_need(c);
    if (need == 0) {
        if (cp)
            *cp = c;
        return 1;
    }
    if (need < 0)
        return -1;
    unsigned char lo, hi;
    glm_utf8_second_range(c, &lo, &hi);
    uint32_t v = c & (0x7Fu >> (need + 1));
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n)
            return 0;
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return -i;
        v = v << 6 | (b & 0x3Fu);
    }
    if (cp)
        *cp = v;
    return need + 1;
}

size_t glm_utf8_valid_prefix(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (!(v & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = glm_utf8_seq(p + i, n - i, NULL);
        if (k <= 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

size_t glm_utf8_count(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (s[i] & 0xC0) != 0x80;
    return k;
}
