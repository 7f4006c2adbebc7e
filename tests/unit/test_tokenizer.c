/*
 * test_tokenizer.c - the tokenizer (engine/text/tokenizer.c, engine/text/detok.c)
 * against Hugging Face `tokenizers`.
 *
 * Goldens (tests/golden/tokenizer, written by make_token_goldens.py):
 *   tiny.*            the tiny model's tokenizer (tests/models/tiny)
 *   tiny-VARIANT.*    the same with an overlay of top-level fields (another
 *                     pre-tokenizer, extra added tokens, ...), built here
 *   large.*           models/tokenizer-large when present (154880 ids,
 *                     ignore_merges); reported as skipped otherwise
 * Every encode must give the golden ids exactly (with and without special-
 * token parsing), every decode the golden text; decode(encode(s)) == s; the
 * streaming detokenizer, fed every golden id sequence, yields pieces of whole
 * characters whose concatenation at every cut (plus the pending U+FFFD) is
 * the decode of that prefix; garbage files give one error line; eight
 * threads encoding on one tokenizer get the goldens; 1 MB runs of one
 * character round-trip (bounded work: the test case's timeout is the hang
 * guard; speed is build/glm-bench-tok's business). Every code point through
 * a Split on each general category, \s and \w is classified as `tokenizers`
 * classifies it (tests/golden/unicode/classes.tsv, Unicode 16.0 where
 * PCRE2 knows 14.0), on text with and without code points new since.
 * Paths are relative to the repository root (tests/run_tests.sh runs from
 * there); GLM_MODELS overrides "models". Under valgrind set GLM_PCRE2_JIT=0
 * (memcheck flags the JIT's vector reads):
 *   make BUILD=/tmp/vgb OPT=-O1 /tmp/vgb/tests/test_tokenizer
 *   CK_FORK=no GLM_PCRE2_JIT=0 valgrind --leak-check=full /tmp/vgb/tests/test_tokenizer
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text/tokenizer.h"
#include "text/uniclass.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "core/util.h"
#include "testutil.h"
#include "unicode_golden.h"

#define GOLDEN "tests/golden/tokenizer"
#define TINY "tests/models/tiny/tokenizer.json"

/* --- reading goldens -------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n;
} str;

typedef struct {
    int32_t *v;
    size_t n;
} idvec;

typedef struct {
    str text, dec, dskip;
    idvec ids, ids_plain;
} enc_line;

typedef struct {
    idvec ids;
    str dec, dskip;
} dec_line;

typedef struct {
    uint64_t fnv;    /* of the tokenizer.json the goldens came from */
    char *overlay;   /* JSON object of top-level fields to replace, or NULL */
    enc_line *enc;
    size_t n_enc;
    dec_line *dec;
    size_t n_dec;
} golden;

static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    size_t got = fread(b, 1, (size_t)sz, f);
    fclose(f);
    ck_assert_uint_eq(got, (size_t)sz);
    b[got] = 0;
    *n = got;
    return b;
}

static str unescape(const char *s, size_t n)
{
    str o = {malloc(n + 1), 0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[++i];
            if (d == 't')
                c = '\t';
            else if (d == 'n')
                c = '\n';
            else if (d == 'r')
                c = '\r';
            else if (d == 'x' && i + 2 < n) {
                char hx[3] = {s[i + 1], s[i + 2], 0};
                c = (char)strtol(hx, NULL, 16);
                i += 2;
            } else
                c = d;
        }
        o.p[o.n++] = c;
    }
    o.p[o.n] = 0;
    return o;
}

static idvec parse_ids(const char *s, size_t n)
{
    idvec v = {malloc(sizeof(int32_t) * (n / 2 + 1)), 0};
    if (n == 1 && s[0] == '-')
        return v;
    const char *e = s + n;
    while (s < e) {
        char *end;
        long long x = strtoll(s, &end, 10);
        v.v[v.n++] = (int32_t)x;
        s = end;
        while (s < e && *s == ' ')
            s++;
    }
    return v;
}

/* Splits a line into tab-separated fields (at most 8). */
static int fields(char *line, size_t n, char **f, size_t *fl)
{
    int k = 0;
    char *p = line, *e = line + n;
    while (k < 8) {
        char *t = memchr(p, '\t', (size_t)(e - p));
        f[k] = p;
        fl[k] = (size_t)((t ? t : e) - p);
        k++;
        if (!t)
            break;
        p = t + 1;
    }
    return k;
}

static void read_golden(const char *name, golden *g)
{
    memset(g, 0, sizeof *g);
    char path[512];
    size_t n;
    for (int kind = 0; kind < 2; kind++) {
        snprintf(path, sizeof path, GOLDEN "/%s.%s.tsv", name, kind ? "decode" : "encode");
        char *buf = read_file(path, &n);
        if (!buf && kind == 1)
            return; /* variants have no decode file */
        ck_assert_msg(buf != NULL, "cannot read %s", path);
        char *p = buf, *end = buf + n;
        size_t cap = 1024;
        if (kind == 0)
            g->enc = malloc(cap * sizeof *g->enc);
        else
            g->dec = malloc(cap * sizeof *g->dec);
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ln = (size_t)((nl ? nl : end) - p);
            if (ln > 0 && p[0] == '#') {
                if (ln > 11 && strncmp(p, "# fnv1a64 ", 10) == 0)
                    g->fnv = strtoull(p + 10, NULL, 16);
                if (ln > 10 && strncmp(p, "# overlay ", 10) == 0 && !g->overlay)
                    g->overlay = strndup(p + 10, ln - 10);
            } else {
                char *f[8];
                size_t fl[8];
                int k = fields(p, ln, f, fl);
                if (kind == 0) {
                    ck_assert_msg(k == 5, "%s: line with %d fields", path, k);
                    if (g->n_enc == cap)
                        g->enc = realloc(g->enc, (cap *= 2) * sizeof *g->enc);
                    enc_line *L = &g->enc[g->n_enc++];
                    L->text = unescape(f[0], fl[0]);
                    L->ids = parse_ids(f[1], fl[1]);
                    L->ids_plain = fl[2] == 1 && f[2][0] == '=' ? parse_ids(f[1], fl[1]) : parse_ids(f[2], fl[2]);
                    /* "=": the same as the column before */
                    int d_same = fl[3] == 1 && f[3][0] == '=', s_same = fl[4] == 1 && f[4][0] == '=';
                    L->dec = d_same ? unescape(f[0], fl[0]) : unescape(f[3], fl[3]);
                    L->dskip = s_same ? (d_same ? unescape(f[0], fl[0]) : unescape(f[3], fl[3]))
                                      : unescape(f[4], fl[4]);
                } else {
                    ck_assert_msg(k == 3, "%s: line with %d fields", path, k);
                    if (g->n_dec == cap)
                        g->dec = realloc(g->dec, (cap *= 2) * sizeof *g->dec);
                    dec_line *L = &g->dec[g->n_dec++];
                    L->ids = parse_ids(f[0], fl[0]);
                    L->dec = unescape(f[1], fl[1]);
                    L->dskip = fl[2] == 1 && f[2][0] == '=' ? unescape(f[1], fl[1]) : unescape(f[2], fl[2]);
                }
            }
            p = nl ? nl + 1 : end;
        }
        free(buf);
    }
}

static void free_golden(golden *g)
{
    for (size_t i = 0; i < g->n_enc; i++) {
        enc_line *L = &g->enc[i];
        free(L->text.p);
        free(L->dec.p);
        free(L->dskip.p);
        free(L->ids.v);
        free(L->ids_plain.v);
    }
    for (size_t i = 0; i < g->n_dec; i++) {
        free(g->dec[i].ids.v);
        free(g->dec[i].dec.p);
        free(g->dec[i].dskip.p);
    }
    free(g->enc);
    free(g->dec);
    free(g->overlay);
}

/* Loads `path`, with the golden's overlay applied when it has one; checks the
 * file is the one the goldens were made from. Returns NULL (and says why)
 * when `optional` and the file is missing or different. */
static glm_tok *load_for(const char *name, const char *path, const golden *g, int optional)
{
    size_t n;
    char *buf = read_file(path, &n);
    char what[64];
    snprintf(what, sizeof what, "%s_goldens", name);
    if (!buf) {
        ck_assert_msg(optional, "cannot read %s", path);
        test_skip_(what, "%s missing (make models)", path);
        return NULL;
    }
    if (fnv1a64(buf, n) != g->fnv) {
        free(buf);
        ck_assert_msg(optional, "%s is not the file the goldens were made from: rerun "
                                "tests/golden/make_token_goldens.py", path);
        test_skip_(what, "%s differs from the one the goldens were made from", path);
        return NULL;
    }
    char err[GLM_ERRLEN];
    glm_tok *t = NULL;
    if (g->overlay) {
        json_error_t je;
        json_t *root = json_loadb(buf, n, 0, &je), *ov = json_loads(g->overlay, 0, &je);
        ck_assert(root && ov);
        const char *k;
        json_t *v;
        json_object_foreach(ov, k, v) {
            if (strcmp(k, "model") == 0) /* model: merge its fields */
                json_object_update(json_object_get(root, "model"), v);
            else if (strcmp(k, "remove_vocab") == 0) {
                for (size_t i = 0; i < json_array_size(v); i++)
                    json_object_del(json_object_get(json_object_get(root, "model"), "vocab"),
                                    json_string_value(json_array_get(v, i)));
            } else
                json_object_set(root, k, v);
        }
        char *s = json_dumps(root, JSON_COMPACT);
        ck_assert_msg(glm_tok_load_buffer(s, strlen(s), path, &t, err, sizeof err) == GLM_OK, "%s", err);
        free(s);
        json_decref(root);
        json_decref(ov);
    } else {
        ck_assert_msg(glm_tok_load(path, &t, err, sizeof err) == GLM_OK, "%s", err);
    }
    free(buf);
    return t;
}

/* --- checks ------------------------------------------------------------------ */

static void show_ids(char *o, size_t cap, const int32_t *v, size_t n)
{
    size_t k = 0;
    o[0] = 0;
    for (size_t i = 0; i < n && k + 16 < cap; i++)
        k += (size_t)snprintf(o + k, cap - k, "%d ", v[i]);
}

static int same_ids(const int32_t *a, size_t na, const idvec *b)
{
    return na == b->n && (na == 0 || memcmp(a, b->v, na * sizeof *a) == 0);
}

static int check_encode(const glm_tok *t, const enc_line *L, int parse_special, const char *name)
{
    int32_t *ids;
    size_t n;
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_encode(t, L->text.p, L->text.n, parse_special, &ids, &n, err, sizeof err) == GLM_OK,
                  "%s: %s", name, err);
    const idvec *want = parse_special ? &L->ids : &L->ids_plain;
    int ok = same_ids(ids, n, want);
    if (!ok) {
        char a[512], b[512];
        show_ids(a, sizeof a, ids, n);
        show_ids(b, sizeof b, want->v, want->n);
        fprintf(stderr, "%s: encode(parse_special=%d) of \"%.80s\" (%zu bytes):\n  got  %s\n  want %s\n", name,
                parse_special, L->text.p, L->text.n, a, b);
    }
    free(ids);
    return ok;
}

static int check_decode(const glm_tok *t, const idvec *ids, int skip, const str *want, const char *name)
{
    size_t n;
    char *s = glm_tok_decode(t, ids->v, ids->n, skip, &n);
    int ok = n == want->n && memcmp(s, want->p, n) == 0 && s[n] == 0;
    if (!ok) {
        char a[512];
        show_ids(a, sizeof a, ids->v, ids->n);
        fprintf(stderr, "%s: decode(skip=%d) of [%s]:\n  got  \"%.80s\" (%zu bytes)\n  want \"%.80s\" (%zu)\n",
                name, skip, a, s, n, want->p, want->n);
    }
    free(s);
    return ok;
}

/* Streams ids through a glm_detok: every piece is whole characters, and at
 * every cut k the text so far (plus U+FFFD when a character is pending) is
 * glm_tok_decode of ids[0, k); at the end (with the flush) of all ids. */
static int check_stream(const glm_tok *t, const int32_t *ids, size_t n, int skip, const char *name)
{
    glm_detok *d = glm_detok_new(t, skip);
    size_t cap = 256, len = 0;
    char *acc = malloc(cap);
    int ok = 1;
    for (size_t k = 0; k <= n && ok; k++) {
        size_t dn;
        char *want = glm_tok_decode(t, ids, k, skip, &dn);
        int pend = glm_detok_pending(d);
        if (!(dn == len + (pend ? 3 : 0) && memcmp(want, acc, len) == 0 &&
              (!pend || memcmp(want + len, "\xef\xbf\xbd", 3) == 0))) {
            fprintf(stderr, "%s: stream (skip=%d) cut after %zu of %zu ids differs from decode\n", name, skip, k, n);
            ok = 0;
        }
        free(want);
        if (k == n)
            break;
        size_t pn;
        const char *p = glm_detok_push(d, ids[k], &pn);
        if (!glm_utf8_valid(p, pn) || p[pn] != 0) {
            fprintf(stderr, "%s: stream piece %zu is not whole UTF-8 characters\n", name, k);
            ok = 0;
        }
        if (len + pn + 4 > cap)
            acc = realloc(acc, cap = 2 * (len + pn + 4));
        memcpy(acc + len, p, pn);
        len += pn;
    }
    size_t fn;
    const char *f = glm_detok_flush(d, &fn);
    memcpy(acc + len, f, fn);
    len += fn;
    size_t dn;
    char *want = glm_tok_decode(t, ids, n, skip, &dn);
    if (ok && (dn != len || memcmp(want, acc, len) != 0)) {
        fprintf(stderr, "%s: stream (skip=%d) + flush differs from decode\n", name, skip);
        ok = 0;
    }
    ck_assert_int_eq(glm_detok_pending(d), 0);
    free(want);
    free(acc);
    glm_detok_free(d);
    return ok;
}

/* Runs every check of one golden set; returns the number of failures. */
static int run_golden(const char *name, const char *path, int optional, int stream)
{
    golden g;
    read_golden(name, &g);
    glm_tok *t = load_for(name, path, &g, optional);
    if (!t) {
        free_golden(&g);
        return 0;
    }
    int bad = 0, shown = 0;
    size_t checks = 0;
#define CHECK(e) do { checks++; if (!(e) && ++bad > 20 && !shown++) fprintf(stderr, "...\n"); } while (0)
    for (size_t i = 0; i < g.n_enc; i++) {
        const enc_line *L = &g.enc[i];
        CHECK(check_encode(t, L, 1, name));
        CHECK(check_encode(t, L, 0, name));
        CHECK(check_decode(t, &L->ids, 0, &L->dec, name));
        CHECK(check_decode(t, &L->ids, 1, &L->dskip, name));
        if (!g.overlay) /* round trip: decode(encode(s)) == s either way */
            CHECK(check_decode(t, &L->ids_plain, 0, &L->text, name));
        if (stream) {
            CHECK(check_stream(t, L->ids.v, L->ids.n, 0, name));
            CHECK(check_stream(t, L->ids.v, L->ids.n, 1, name));
        }
    }
    for (size_t i = 0; i < g.n_dec; i++) {
        const dec_line *L = &g.dec[i];
        CHECK(check_decode(t, &L->ids, 0, &L->dec, name));
        CHECK(check_decode(t, &L->ids, 1, &L->dskip, name));
        if (stream) {
            CHECK(check_stream(t, L->ids.v, L->ids.n, 0, name));
            CHECK(check_stream(t, L->ids.v, L->ids.n, 1, name));
        }
    }
#undef CHECK
    fprintf(stderr, "%s: %zu strings, %zu decode sequences, %zu checks, %d failed\n", name, g.n_enc, g.n_dec,
            checks, bad);
    glm_tok_free(t);
    free_golden(&g);
    return bad;
}

START_TEST(tiny_goldens)
{
    ck_assert_int_eq(run_golden("tiny", TINY, 0, 1), 0);
}
END_TEST

/* Every tiny-VARIANT.encode.tsv in the golden directory. */
START_TEST(tiny_variants)
{
    DIR *dir = opendir(GOLDEN);
    ck_assert_msg(dir != NULL, "cannot open " GOLDEN);
    struct dirent *de;
    int bad = 0, found = 0;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 16 && strncmp(de->d_name, "tiny-", 5) == 0 && strcmp(de->d_name + n - 11, ".encode.tsv") == 0) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(n - 11), de->d_name);
            bad += run_golden(name, TINY, 0, 0);
            found++;
        }
    }
    closedir(dir);
    ck_assert_int_ge(found, 11);
    ck_assert_int_eq(bad, 0);
}
END_TEST

START_TEST(large_goldens)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer-large/tokenizer.json", test_models_dir());
    ck_assert_int_eq(run_golden("large", path, 1, 1), 0);
}
END_TEST

/* --- properties without goldens ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 17;
}

START_TEST(roundtrip_random)
{
    char err[GLM_ERRLEN];
    glm_tok *t;
    ck_assert_msg(glm_tok_load(TINY, &t, err, sizeof err) == GLM_OK, "%s", err);
    uint64_t s = 42;
    char buf[4096];
    for (int it = 0; it < 3000; it++) {
        size_t n = 0, want = rng_next(&s) % 200;
        while (n < want) {
            uint32_t c, r = (uint32_t)(rng_next(&s) % 100);
            if (r < 40)
                c = 0x20 + (uint32_t)(rng_next(&s) % 95);
            else if (r < 50)
                c = (uint32_t)(rng_next(&s) % 0x20);
            else if (r < 70)
                c = 0x80 + (uint32_t)(rng_next(&s) % 0x780);
            else if (r < 90)
                c = 0x800 + (uint32_t)(rng_next(&s) % 0xf800);
            else
                c = 0x10000 + (uint32_t)(rng_next(&s) % 0x100000);
            if (c >= 0xd800 && c <= 0xdfff)
                continue;
            n += glm_utf8_encode(c, buf + n);
        }
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids;
            size_t k, dn;
            ck_assert_msg(glm_tok_encode(t, buf, n, ps, &ids, &k, err, sizeof err) == GLM_OK, "%s", err);
            char *d = glm_tok_decode(t, ids, k, 0, &dn);
            ck_assert_msg(dn == n && memcmp(d, buf, n) == 0, "round trip failed (iteration %d)", it);
            for (size_t i = 0; i < k; i++)
                ck_assert(ids[i] >= 0 && ids[i] < glm_tok_vocab_size(t));
            free(d);
            free(ids);
        }
    }
    glm_tok_free(t);
}
END_TEST

START_TEST(api_contract)
{
    char err[GLM_ERRLEN];
    glm_tok *t;
    ck_assert_msg(glm_tok_load(TINY, &t, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(glm_tok_vocab_size(t), 4096);
    /* GLM-5's special tokens at their offsets from the top; read from the file */
    static const struct { const char *s; int id; } sp[] = {
        {"<|endoftext|>", 4036}, {"[gMASK]", 4038}, {"<sop>", 4040}, {"<|system|>", 4042},
        {"<|user|>", 4043}, {"<|assistant|>", 4044}, {"<|observation|>", 4045}, {"<think>", 4057},
        {"</think>", 4058}, {"<tool_call>", 4059}, {"<|video|>", 4071}};
    for (size_t i = 0; i < sizeof sp / sizeof *sp; i++) {
        ck_assert_int_eq(glm_tok_token_to_id(t, sp[i].s, strlen(sp[i].s)), sp[i].id);
        ck_assert(glm_tok_is_special(t, sp[i].id));
        ck_assert(glm_tok_is_added(t, sp[i].id));
        size_t n;
        ck_assert_str_eq(glm_tok_id_to_token(t, sp[i].id, &n), sp[i].s);
    }
    ck_assert(!glm_tok_is_special(t, 100) && !glm_tok_is_special(t, -1) && !glm_tok_is_special(t, 4096));
    ck_assert_int_eq(glm_tok_token_to_id(t, "Ġ", strlen("Ġ")), 220);
    ck_assert_int_eq(glm_tok_token_to_id(t, "no such token", 13), -1);
    ck_assert_ptr_null(glm_tok_id_to_token(t, 4096, NULL));
    ck_assert_ptr_null(glm_tok_id_to_token(t, -5, NULL));
    size_t n;
    const char *b = glm_tok_token_bytes(t, 220, &n);
    ck_assert(n == 1 && b[0] == ' ');

    /* invalid UTF-8 is refused with the offset */
    int32_t *ids = (int32_t *)1;
    size_t k = 7;
    ck_assert_int_eq(glm_tok_encode(t, "ab\xe4\xb8", 4, 1, &ids, &k, err, sizeof err), GLM_ERR);
    ck_assert(ids == NULL && k == 0);
    ck_assert_msg(strstr(err, "not valid UTF-8 (byte 2 of 4)") != NULL, "%s", err);
    ck_assert_int_eq(glm_tok_encode(t, "\xed\xa0\x80", 3, 1, &ids, &k, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_tok_encode(t, "\xc0\x80", 2, 1, &ids, &k, err, sizeof err), GLM_ERR);
    ck_assert_int_eq(glm_tok_encode(t, "\xf4\x90\x80\x80", 4, 1, &ids, &k, err, sizeof err), GLM_ERR);
    /* empty text: an empty, non-NULL array */
    ck_assert_int_eq(glm_tok_encode(t, "", 0, 1, &ids, &k, err, sizeof err), GLM_OK);
    ck_assert(ids != NULL && k == 0);
    free(ids);
    /* NUL bytes are text */
    ck_assert_int_eq(glm_tok_encode(t, "a\0b", 3, 1, &ids, &k, err, sizeof err), GLM_OK);
    char *d = glm_tok_decode(t, ids, k, 0, &n);
    ck_assert(n == 3 && memcmp(d, "a\0b", 3) == 0);
    free(d);
    free(ids);
    /* negative and unassigned ids are skipped by decode and the stream */
    int32_t odd[] = {-1, 64, 4096, INT32_MAX, 65, -2147483647 - 1};
    d = glm_tok_decode(t, odd, 6, 0, &n);
    ck_assert_str_eq(d, "ab");
    free(d);
    glm_detok *dt = glm_detok_new(t, 1);
    const char *p = glm_detok_push(dt, -1, &n);
    ck_assert(n == 0 && p[0] == 0);
    /* a character split over byte tokens comes out whole, with the last byte */
    int32_t e4 = glm_tok_token_to_id(t, "ä", strlen("ä")), b8 = glm_tok_token_to_id(t, "¸", strlen("¸")),
            ad = glm_tok_token_to_id(t, "Ń", strlen("Ń"));
    ck_assert(e4 >= 0 && b8 >= 0 && ad >= 0);
    p = glm_detok_push(dt, e4, &n);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(glm_detok_pending(dt), 1);
    p = glm_detok_push(dt, 4043, &n); /* <|user|>, skipped: the character continues */
    ck_assert_uint_eq(n, 0);
    p = glm_detok_push(dt, b8, &n);
    ck_assert_uint_eq(n, 0);
    p = glm_detok_push(dt, ad, &n);
    ck_assert_str_eq(p, "中");
    /* a cut character becomes U+FFFD as soon as it is certain */
    p = glm_detok_push(dt, e4, &n);
    ck_assert_uint_eq(n, 0);
    p = glm_detok_push(dt, 64, &n);
    ck_assert_str_eq(p, "\xef\xbf\xbd" "a");
    p = glm_detok_push(dt, e4, &n);
    p = glm_detok_flush(dt, &n);
    ck_assert_str_eq(p, "\xef\xbf\xbd");
    ck_assert_int_eq(glm_detok_pending(dt), 0);
    glm_detok_free(dt);
    glm_tok_free(t);
}
END_TEST

/* Many threads encoding and decoding on one tokenizer give the goldens. */
typedef struct {
    const glm_tok *t;
    const golden *g;
    int start, bad;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    for (size_t r = 0; r < 3; r++)
        for (size_t j = 0; j < a->g->n_enc; j++) {
            const enc_line *L = &a->g->enc[(j + (size_t)a->start * 97) % a->g->n_enc];
            int32_t *ids;
            size_t n;
            char err[GLM_ERRLEN];
            if (glm_tok_encode(a->t, L->text.p, L->text.n, 1, &ids, &n, err, sizeof err) != GLM_OK) {
                a->bad++;
                continue;
            }
            a->bad += !same_ids(ids, n, &L->ids);
            free(ids);
        }
    return NULL;
}

START_TEST(concurrent_encode)
{
    golden g;
    read_golden("tiny", &g);
    glm_tok *t = load_for("tiny", TINY, &g, 0);
    enum { NT = 8 };
    pthread_t th[NT];
    thr_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (thr_arg){t, &g, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].bad;
    }
    ck_assert_int_eq(bad, 0);
    glm_tok_free(t);
    free_golden(&g);
}
END_TEST

/* Long single words and runs up to GLM_TOK_MAX_WORD: bounded work, and still
 * the right answer (decode gives the text back; glm_tok_encode_max keeps the
 * first ids and counts them all); a word one byte longer is refused. */
START_TEST(long_inputs)
{
    char err[GLM_ERRLEN];
    glm_tok *t;
    ck_assert_msg(glm_tok_load(TINY, &t, err, sizeof err) == GLM_OK, "%s", err);
    const size_t N = GLM_TOK_MAX_WORD - 8; /* the run, then 'x' (which may join its word) */
    char *s = malloc(N + 8);
    static const char *const units[] = {"a", " ", "\n", " \n", "1", "!", "中", "😀", "<|", "ab ", "'s",
                                        "\xe2\x80\x83", "e\xcc\x81"};
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        size_t k = strlen(units[u]), n = 0;
        while (n + k <= N) {
            memcpy(s + n, units[u], k);
            n += k;
        }
        s[n++] = 'x'; /* a different ending: lookaheads see it */
        int32_t *ids;
        size_t m, dn;
        ck_assert_msg(glm_tok_encode(t, s, n, 1, &ids, &m, err, sizeof err) == GLM_OK, "%s", err);
        char *d = glm_tok_decode(t, ids, m, 0, &dn);
        ck_assert_msg(dn == n && memcmp(d, s, n) == 0, "round trip of a 1 MB run of '%s'", units[u]);
        /* keeping a third of the ids: the same first ids, the same count */
        int32_t *few;
        size_t fm;
        ck_assert_int_eq(glm_tok_encode_max(t, s, n, 1, m / 3 + 1, &few, &fm, err, sizeof err), GLM_OK);
        ck_assert_uint_eq(fm, m);
        ck_assert(memcmp(few, ids, (m / 3 + 1) * sizeof *ids) == 0);
        free(few);
        free(d);
        free(ids);
    }
    free(s);
    s = malloc(GLM_TOK_MAX_WORD + 1);
    memset(s, 'a', GLM_TOK_MAX_WORD + 1);
    int32_t *ids = NULL;
    size_t m = 0;
    ck_assert_int_eq(glm_tok_encode(t, s, GLM_TOK_MAX_WORD + 1, 1, &ids, &m, err, sizeof err), GLM_ERR);
    ck_assert_ptr_null(ids);
    ck_assert_msg(strstr(err, "too long") != NULL, "%s", err);
    free(s);
    glm_tok_free(t);
}
END_TEST

/* --- bad files --------------------------------------------------------------- */

/* A small valid tokenizer.json in GLM-5's shape; %s slots are filled per case. */
static const char *MINI_FMT =
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
    " \"added_tokens\": [%s],"
    " \"normalizer\": %s,"
    " \"pre_tokenizer\": %s,"
    " \"post_processor\": null,"
    " \"decoder\": %s,"
    " \"model\": {\"type\": %s, \"dropout\": %s, \"unk_token\": null, \"continuing_subword_prefix\": null,"
    " \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,"
    " \"vocab\": {%s}, \"merges\": [%s]}}";

static const char *D_ADDED = "{\"id\": 5, \"content\": \"<|user|>\", \"single_word\": false, \"lstrip\": false,"
                             " \"rstrip\": false, \"normalized\": false, \"special\": true}";
static const char *D_PRE = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\":"
                           " {\"Regex\": \"(?i:'s|'t)|\\\\p{L}+|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false},"
                           " {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true,"
                           " \"use_regex\": false}]}";
static const char *D_DEC = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true,"
                           " \"use_regex\": true}";
static const char *D_VOCAB = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": 4";
static const char *D_MERGES = "[\"a\", \"b\"]";

typedef struct {
    const char *added, *norm, *pre, *dec, *type, *dropout, *vocab, *merges;
} mini;

static char *mini_json(mini m)
{
    char *s = malloc(8192);
    snprintf(s, 8192, MINI_FMT, m.added ? m.added : D_ADDED, m.norm ? m.norm : "null", m.pre ? m.pre : D_PRE,
             m.dec ? m.dec : D_DEC, m.type ? m.type : "\"BPE\"", m.dropout ? m.dropout : "null",
             m.vocab ? m.vocab : D_VOCAB, m.merges ? m.merges : D_MERGES);
    return s;
}

static char tmpdir[256];

static void write_file(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert_uint_eq(fwrite(s, 1, n, f), n);
    fclose(f);
}

/* Loading must fail with one line that names the file and contains `want`. */
static void expect_fail(const char *path, const char *want)
{
    char err[GLM_ERRLEN] = "";
    glm_tok *t = (glm_tok *)&err;
    ck_assert_msg(glm_tok_load(path, &t, err, sizeof err) == GLM_ERR, "%s loaded (wanted '%s')", path, want);
    ck_assert_ptr_null(t);
    ck_assert_msg(strchr(err, '\n') == NULL && strlen(err) > 0, "not one line: %s", err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "error does not start with the path: %s", err);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

static void case_json(const char *name, const char *json, const char *want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", tmpdir, name);
    write_file(path, json, strlen(json));
    expect_fail(path, want);
    unlink(path);
}

static void case_mini(const char *name, mini m, const char *want)
{
    char *s = mini_json(m);
    case_json(name, s, want);
    free(s);
}

START_TEST(bad_files)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/glm_test_tok_XXXXXX");
    ck_assert(mkdtemp(tmpdir) != NULL);
    char err[GLM_ERRLEN], path[512];

    /* the template itself is fine, and behaves */
    char *ok = mini_json((mini){0});
    glm_tok *t;
    ck_assert_msg(glm_tok_load_buffer(ok, strlen(ok), "mini", &t, err, sizeof err) == GLM_OK, "%s", err);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(glm_tok_encode(t, "ab <|user|>ab c", 15, 1, &ids, &n, err, sizeof err), GLM_OK);
    ck_assert_uint_eq(n, 6); /* ab Ġ <|user|> ab Ġ c */
    ck_assert(ids[0] == 2 && ids[1] == 3 && ids[2] == 5 && ids[3] == 2 && ids[4] == 3 && ids[5] == 4);
    free(ids);
    glm_tok_free(t);
    free(ok);
    /* added contents may hold NUL (as "\u0000"); vocabulary keys may not
     * (jansson refuses NUL in object keys: a clear error, see nulkey below) */
    ok = mini_json((mini){.added = "{\"id\": 5, \"content\": \"<\\u0000>\", \"special\": true}"});
    ck_assert_msg(glm_tok_load_buffer(ok, strlen(ok), "mini", &t, err, sizeof err) == GLM_OK, "%s", err);
    ck_assert_int_eq(glm_tok_token_to_id(t, "<\0>", 3), 5);
    ck_assert_int_eq(glm_tok_token_to_id(t, "<", 1), -1);
    ck_assert_int_eq(glm_tok_encode(t, "ab<\0>b", 6, 1, &ids, &n, err, sizeof err), GLM_OK);
    ck_assert(n == 3 && ids[0] == 2 && ids[1] == 5 && ids[2] == 1);
    free(ids);
    glm_tok_free(t);
    free(ok);

    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    expect_fail(path, "cannot open");
    expect_fail(tmpdir, "not a regular file");
    case_json("empty", "", "not valid JSON");
    case_json("array", "[]", "top level is an array");
    case_json("garbage", "\x89PNG\r\n\x1a\n\x00\x01\xff", "not valid JSON");
    /* truncations of a real file */
    size_t tn;
    char *tiny = read_file(TINY, &tn);
    ck_assert(tiny != NULL);
    const size_t cuts[] = {1, 2, 17, 100, 1000, tn / 3, tn / 2, tn - 100, tn - 3, tn - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        snprintf(path, sizeof path, "%s/trunc%zu.json", tmpdir, i);
        write_file(path, tiny, cuts[i]);
        expect_fail(path, "not valid JSON");
        unlink(path);
    }
    free(tiny);

    case_mini("wordpiece", (mini){.type = "\"WordPiece\""}, "model type 'WordPiece' is not supported");
    case_mini("unigram", (mini){.type = "\"Unigram\""}, "model type 'Unigram' is not supported");
    case_mini("notype", (mini){.type = "null"}, "model type missing is not supported");
    case_mini("nfc", (mini){.norm = "{\"type\": \"NFC\"}"}, "normalizer 'NFC' is not supported");
    case_mini("normstr", (mini){.norm = "\"x\""}, "normalizer a string is not supported");
    case_mini("metaspace", (mini){.pre = "{\"type\": \"Metaspace\", \"replacement\": \"_\"}"},
              "pre_tokenizer type 'Metaspace' is not supported");
    case_mini("nopre", (mini){.pre = "null"}, "pre_tokenizer is missing");
    case_mini("ctltype", (mini){.pre = "{\"type\": \"Meta\\nspace\\u00e9'\"}"},
              "pre_tokenizer type 'Meta\\x0aspace\xc3\xa9\\'' is not supported");
    case_mini("nobl", (mini){.pre = "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\":"
                                    " \"Isolated\", \"invert\": false}"},
              "no ByteLevel step");
    case_mini("blfirst", (mini){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"},"
                                       " {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\":"
                                       " \"Isolated\", \"invert\": false}]}"},
              "after ByteLevel");
    case_mini("badre", (mini){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\","
                                     " \"pattern\": {\"Regex\": \"(?i:'s|\\\\p{L}+\"}, \"behavior\": \"Isolated\","
                                     " \"invert\": false}, {\"type\": \"ByteLevel\"}]}"},
              "does not compile");
    case_mini("badbeh", (mini){.pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\","
                                      " \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\","
                                      " \"invert\": false}, {\"type\": \"ByteLevel\"}]}"},
              "unknown behavior");
    case_mini("wpdec", (mini){.dec = "{\"type\": \"WordPiece\"}"}, "decoder 'WordPiece' is not supported");
    case_mini("nodec", (mini){.dec = "null"}, "decoder null is not supported");
    case_mini("dropout", (mini){.dropout = "0.1"}, "dropout is not supported");
    case_mini("dupid", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": 1"}, "both have id 1");
    case_mini("dupkey", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"a\": 4"}, "duplicate");
    case_mini("bigid", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": 99999999"},
              "id 99999999 out of range");
    case_mini("negid", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": -1"}, "id -1 out of range");
    case_mini("nulkey", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"\u0120\": 3, \"x\\u0000y\": 4"},
              "NUL byte in object key");
    case_mini("strid", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": \"4\""},
              "not an integer");
    case_mini("floatid", (mini){.vocab = "\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": 4.5"},
              "not an integer");
    case_mini("addedid",
              (mini){.added = "{\"id\": 7, \"content\": \"<|user|>\", \"special\": true, \"normalized\": false}"},
              "has id 7, but tokenizers gives it id 5");
    case_mini("addeddup",
              (mini){.added = "{\"id\": 5, \"content\": \"<|user|>\", \"special\": true},"
                              " {\"id\": 5, \"content\": \"<|assistant|>\", \"special\": true}"},
              "has id 5, but tokenizers gives it id 6");
    case_mini("addedneg", (mini){.added = "{\"id\": -3, \"content\": \"x\"}"}, "id -3 out of range");
    case_mini("addednoc", (mini){.added = "{\"id\": 5}"}, "no string 'content'");
    case_mini("mergeunk", (mini){.merges = "[\"a\", \"z\"]"}, "names 'z', which is not in the vocabulary");
    case_mini("mergeres", (mini){.merges = "[\"b\", \"a\"]"}, "names 'ba', which is not in the vocabulary");
    case_mini("mergestr", (mini){.merges = "\"a b c\""}, "two tokens separated by one space");
    case_mini("mergemix", (mini){.merges = "\"a b\", [\"a\", \"b\"]"}, "not a string like the others");
    case_mini("mergenum", (mini){.merges = "[1, 2]"}, "not a pair of strings");
    case_json("version", "{\"version\": \"2.0\", \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
              "unknown tokenizer version");
    case_json("novocab", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab is missing");
    case_json("nomodel", "{\"decoder\": null}", "'model' is missing");
    ck_assert_int_eq(rmdir(tmpdir), 0);
}
END_TEST

/* --- classes of code points against tokenizers ------------------------------------- */

/* The tiny tokenizer with one pre-tokenizer step that keeps what `pattern`
 * matches (runs of up to 1000) and drops the rest: decode(encode(text)) is
 * then the text's code points of that class, in order. */
static glm_tok *class_keeper(const char *pattern)
{
    json_error_t je;
    json_t *j = json_load_file(TINY, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", TINY, je.text);
    char re[256];
    snprintf(re, sizeof re, "%s{1,1000}", pattern);
    json_t *pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                            "pretokenizers", "type", "Split", "pattern", "Regex", re, "behavior", "Removed",
                            "invert", 1, "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                            "use_regex", 0);
    ck_assert_ptr_nonnull(pre);
    json_object_set_new(j, "pre_tokenizer", pre);
    char *text = json_dumps(j, 0);
    glm_tok *t;
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_load_buffer(text, strlen(text), pattern, &t, err, sizeof err) == GLM_OK, "%s", err);
    free(text);
    json_decref(j);
    return t;
}

/* Checks that t keeps exactly the code points of text in the golden ranges;
 * returns 0, or 1 after naming the first code point it gets wrong. */
static int check_class(const glm_tok *t, const char *pattern, const glm_buf *text, const glm_cp_range *r,
                       size_t nr, const char *which)
{
    int32_t *ids;
    size_t n, len;
    char err[GLM_ERRLEN];
    ck_assert_msg(glm_tok_encode(t, text->p, text->len, 0, &ids, &n, err, sizeof err) == GLM_OK, "%s", err);
    char *out = glm_tok_decode(t, ids, n, 0, &len);
    const char *p = text->p, *end = p + text->len, *o = out, *oend = out + len;
    int bad = 0;
    while (p < end && !bad) {
        uint32_t c, d = 0;
        p += glm_utf8_decode_valid(p, end, &c);
        int want = glm_cp_in_ranges(c, r, nr), got = 0;
        if (o < oend) {
            size_t k = glm_utf8_decode_valid(o, oend, &d);
            got = d == c;
            if (got)
                o += k;
        }
        if (want != got) {
            fprintf(stderr, "%s (%s): U+%04X is %s by tokenizers but not here\n", pattern, which, c,
                    want ? "matched" : "not matched");
            bad = 1;
        }
    }
    if (!bad && o != oend) {
        fprintf(stderr, "%s (%s): output past the text\n", pattern, which);
        bad = 1;
    }
    free(out);
    free(ids);
    return bad;
}

START_TEST(unicode_classes)
{
    /* every code point; and those whose category is the same in PCRE2's
     * Unicode, so that the tokenizer may match with PCRE2's own properties */
    glm_buf all = {0}, same = {0};
    int changed = 0;
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        char u[4];
        size_t k = glm_utf8_encode(c, u);
        glm_buf_put(&all, u, k);
        if (glm_uniclass_text_changed(u, k))
            changed++;
        else
            glm_buf_put(&same, u, k);
    }
    ck_assert_msg(changed > 5000 && glm_uniclass_text_changed(all.p, all.len) && !glm_uniclass_text_changed(same.p, same.len),
                  "%d changed code points", changed);
    char **lines = ug_read_lines(UNICODE_GOLDEN "/classes.tsv");
    int n = 0, bad = 0;
    for (char **l = lines; *l; l++, n++) {
        char *tab = strchr(*l, '\t');
        ck_assert_msg(tab != NULL, "classes.tsv: no tab in \"%s\"", *l);
        *tab = 0;
        glm_cp_range *r;
        size_t nr = ug_parse_ranges(tab + 1, strlen(tab + 1), &r);
        glm_tok *t = class_keeper(*l);
        bad += check_class(t, *l, &all, r, nr, "every code point");
        bad += check_class(t, *l, &same, r, nr, "unchanged code points");
        glm_tok_free(t);
        free(r);
    }
    ck_assert_int_ge(n, 38);
    ck_assert_msg(bad == 0, "%d classes differ from tokenizers' (Unicode %s)", bad, glm_uniclass_unicode_version());
    ug_free_lines(lines);
    glm_buf_free(&all);
    glm_buf_free(&same);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, api_contract);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, tiny_goldens);
    tcase_add_test(tc, tiny_variants);
    tcase_add_test(tc, large_goldens);
    tcase_add_test(tc, roundtrip_random);
    tcase_add_test(tc, concurrent_encode);
    tcase_add_test(tc, long_inputs);
    tcase_add_test(tc, unicode_classes);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
