/*
 * unicode_golden.h - reading the code point sets of tests/golden/unicode/
 * (written by tests/golden/make_unicode_tables.py): ranges as hex tokens
 * "LO-HI" or "LO" separated by spaces or newlines; lines starting with '#'
 * are comments.
 */
#ifndef GLM_UNICODE_GOLDEN_H
#define GLM_UNICODE_GOLDEN_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/cp_ranges.h"
#include "core/util.h"

#define UNICODE_GOLDEN "tests/golden/unicode"

/* Parses the ranges in s[0..n) into a new array (*out, caller frees); returns the count. */
static inline size_t ug_parse_ranges(const char *s, size_t n, glm_cp_range **out)
{
    size_t cap = 64, k = 0;
    glm_cp_range *r = glm_malloc(cap * sizeof *r);
    const char *p = s, *end = s + n;
    while (p < end) {
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        char *e;
        unsigned long lo = strtoul(p, &e, 16), hi = lo;
        ck_assert_msg(e > p, "bad range near \"%.20s\"", p);
        if (*e == '-') {
            p = e + 1;
            hi = strtoul(p, &e, 16);
            ck_assert_msg(e > p, "bad range near \"%.20s\"", p);
        }
        ck_assert_msg(lo <= hi && hi <= 0x10FFFF && (k == 0 || lo > r[k - 1].hi), "bad range %lX-%lX", lo, hi);
        if (k == cap)
            r = glm_realloc(r, (cap *= 2) * sizeof *r);
        r[k++] = (glm_cp_range){(uint32_t)lo, (uint32_t)hi};
        p = e;
    }
    *out = r;
    return k;
}

/* The lines of a golden file that are not comments, in a NULL-terminated
 * array of malloc'd strings (free with ug_free_lines). */
static inline char **ug_read_lines(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: cannot open (run from the repository root)", path);
    size_t cap = 64, n = 0, lcap = 0;
    char **v = glm_malloc(cap * sizeof *v), *line = NULL;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        if (n + 1 >= cap)
            v = glm_realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = glm_strdup(line);
    }
    free(line);
    fclose(f);
    v[n] = NULL;
    return v;
}

static inline void ug_free_lines(char **v)
{
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

#endif
