/*
 * tokenizer.c - loads a Hugging Face tokenizer.json (byte-level BPE) and
 * encodes text exactly as `tokenizers` does (see tokenizer.h for the
 * contract; decoding and the streaming detokenizer are in detok.c).
 *
 * A loaded tokenizer is a set of read-only tables:
 *   ent[id]        spelling (the string in tokenizer.json) and decoded bytes,
 *                  both in arenas, plus flags (model vocabulary / added /
 *                  special); unassigned ids have neither.
 *   spell map      spelling -> id (core/strmap.h over the spelling arena).
 *   merge map      (left id, right id) -> (rank, merged id).
 *   init[v][b]     id of byte b's one-character token (v: with the
 *                  continuing-subword prefix and/or end-of-word suffix).
 *   trie[2]        added tokens with normalized=false (pass 0) and true
 *                  (pass 1), for leftmost-longest matching.
 *   steps[]        pre-tokenizer Split regexes (PCRE2, JIT) and the
 *                  ByteLevel step's own regex / prefix space.
 * and one mutable one, the BPE word cache: 64 shards of 1024 direct-mapped
 * fixed-size slots, each shard behind a mutex; words of 4..38 bytes whose
 * encoding has at most 9 ids are cached (bounded at ~6 MB, no allocation
 * under the lock).
 *
 * Encoding, following tokenizers' Tokenizer::encode_single_sequence:
 *   1. added tokens are cut out of the text (pass 0, then pass 1 on what is
 *      left), AddedVocabulary::find_matches semantics;
 *   2. each remaining piece goes through the pre-tokenizer steps in order;
 *      Split runs the regex on the piece alone (lookarounds see only the
 *      piece) with Oniguruma's find_iter rules for empty matches and applies
 *      the delimiter behavior; empty pieces are dropped;
 *   3. each final piece (a "word") is BPE-merged over its bytes: one symbol
 *      per byte, then word.rs merge_all: repeatedly the lowest (rank,
 *      position) pair from a heap, stale entries skipped. Work is O(n log n)
 *      in the word length; nothing is quadratic in the text.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/strmap.h"
#include "core/utf8.h"
#include "core/util.h"
#include "text/uniclass.h"

#define MAX_FILE_BYTES ((size_t)1 << 30)

enum { F_MODEL = 1, F_ADDED = 2, F_SPECIAL = 4 };

typedef struct {
    uint32_t spell_off, spell_len; /* into t->spell (NUL-terminated there) */
    uint32_t bytes_off, bytes_len; /* into t->bytes */
} tok_ent;

typedef struct {
    uint64_t key;  /* (left << 32) | right */
    uint32_t rank; /* UINT32_MAX = empty */
    int32_t merged;
} merge_slot;

typedef struct {
    int32_t child, sibling; /* node indices, -1 = none */
    int32_t term;           /* index into t->added, -1 = none */
    uint8_t byte;
} trie_node;

typedef struct {
    trie_node *nodes;
    int n, cap;
    int32_t root[256];  /* depth-1 node for each first byte, -1 = none */
    int count;          /* tokens in this trie */
} trie;

typedef struct {
    int32_t id;
    uint32_t len;
    const char *content; /* in the spelling arena */
    uint8_t special, lstrip, rstrip, single_word, normalized;
} added_tok;

enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

typedef struct {
    /* re[0]: the pattern with the reference's general categories; re[1]: with
     * PCRE2's own, for text without code points whose category changed since
     * PCRE2's Unicode (uniclass.h), or re[0] itself when that would be the
     * same. NULL: no split (ByteLevel with use_regex false). jit: JIT-compiled. */
    pcre2_code *re[2];
    int jit[2];
    int behavior;
    int invert;
    int prefix_space; /* ByteLevel add_prefix_space */
} pt_step;

#define CACHE_SHARDS 64
#define CACHE_SLOTS 1024 /* per shard, power of two */
#define CACHE_KEY_MIN 2
#define CACHE_KEY_MAX 38
#define CACHE_IDS_MAX 9

typedef struct {
    uint64_t hash;
    uint8_t klen, nids; /* klen 0 = empty */
    char key[CACHE_KEY_MAX];
    int32_t ids[CACHE_IDS_MAX];
} cache_slot;

typedef struct {
    _Alignas(64) pthread_mutex_t mu; /* one cache line per shard */
    cache_slot *slots;
} cache_shard;

struct glm_tok {
    int32_t n_ids;      /* max id + 1 */
    size_t n_model;     /* entries of the model vocabulary */
    tok_ent *ent;       /* [n_ids] */
    uint8_t *flags;     /* [n_ids] */
    glm_buf spell;      /* arena of NUL-terminated spellings */
    glm_buf bytes;      /* arena of decoded bytes */

    glm_strmap map;     /* spelling -> id */
    merge_slot *merges;
    uint32_t merge_mask;
    size_t n_merges;

    /* BPE options */
    int ignore_merges, byte_fallback, fuse_unk;
    int has_unk;              /* unk_token set in the file */
    int32_t unk_id;           /* -1: set but not in the vocabulary */
    char *unk_token;
    char *prefix, *suffix;    /* continuing_subword_prefix, end_of_word_suffix, or NULL */
    int32_t init[4][256];     /* [has prefix | 2 * has suffix][byte] -> id or -1 */
    int32_t fallback[256];    /* "<0xHH>" ids or -1 */
    uint32_t byte_char[256];  /* byte -> code point of its byte-level character */

    added_tok *added;
    int n_added;
    trie tries[2];
    pcre2_code *word_re;      /* Rust regex \w, for single_word; NULL if unused */

    pt_step *steps;
    int n_steps;

    cache_shard *cache;
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

/* The code point at u[i] of well-formed text that ends at u[end]. */
static inline uint32_t cp_at(const unsigned char *u, size_t i, size_t end)
{
    uint32_t c;
    glm_utf8_decode_valid((const char *)u + i, (const char *)u + end, &c);
    return c;
}

/* Offset of the character that ends at u[i], in well-formed text from u[s] (s < i). */
static inline size_t prev_at(const unsigned char *u, size_t s, size_t i)
{
    return (size_t)(glm_utf8_prev((const char *)u + s, (const char *)u + i) - (const char *)u);
}

/* Unicode White_Space (what Rust's regex \s and Oniguruma's \s match). */
static int is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* A string from the file (or jansson's quote of it) fit for a one-line
 * message: control characters, quotes and bytes that are not UTF-8 escaped,
 * truncated at a character boundary with "...". */
static const char *show(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        size_t k = 1, w;
        if (c == '\\' || c == '\'')
            w = (size_t)snprintf(tmp, sizeof tmp, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            w = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
        else if (c < 0x80)
            tmp[0] = (char)c, w = 1;
        else if (i + glm_utf8_len(c) <= n && glm_utf8_valid(s + i, glm_utf8_len(c)))
            k = w = glm_utf8_len(c), memcpy(tmp, s + i, k);
        else
            w = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
        if (o + w + 4 > cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, tmp, w);
        o += w;
        i += k;
    }
    buf[o] = 0;
    return buf;
}

/* ------------------------------------------------------------------------ */
/* tables                                                                   */

/* Appends s[0..n) and a NUL to an arena; returns its offset. */
static uint32_t arena_add(glm_buf *a, const char *s, size_t n)
{
    GLM_ASSERT(a->len + n < UINT32_MAX); /* input files are at most 1 GiB */
    uint32_t off = (uint32_t)a->len;
    glm_buf_put(a, s, n);
    glm_buf_putc(a, 0);
    return off;
}

static const char *spelling(const glm_tok *t, int32_t id, size_t *n)
{
    *n = t->ent[id].spell_len;
    return t->spell.p + t->ent[id].spell_off;
}

static const char *spelling_key(const void *ctx, uint32_t id, size_t *n)
{
    return spelling(ctx, (int32_t)id, n);
}

/* Id whose spelling is s, or -1. Any id with a spelling (model or added). */
static int32_t map_find(const glm_tok *t, const char *s, size_t n)
{
    return (int32_t)glm_strmap_get(&t->map, s, n, spelling_key, t);
}

/* Id of s in the BPE model's vocabulary (not an added-only token), or -1. */
static int32_t model_find(const glm_tok *t, const char *s, size_t n)
{
    int32_t id = map_find(t, s, n);
    return id >= 0 && (t->flags[id] & F_MODEL) ? id : -1;
}

static void map_build(glm_tok *t)
{
    size_t cnt = 0;
    for (int32_t i = 0; i < t->n_ids; i++)
        cnt += (t->flags[i] & (F_MODEL | F_ADDED)) != 0;
    glm_strmap_free(&t->map);
    glm_strmap_init(&t->map, cnt);
    /* ids in order: of two with one spelling, the lower is found */
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (!(t->flags[id] & (F_MODEL | F_ADDED)))
            continue;
        size_t n;
        const char *s = spelling(t, id, &n);
        glm_strmap_put(&t->map, s, n, (uint32_t)id, spelling_key, t);
    }
}

static inline uint32_t merge_hash(uint64_t key, uint32_t mask)
{
    return (uint32_t)glm_mix64(key) & mask;
}

/* Later duplicates overwrite earlier ones, as a HashMap collect does. */
static void merge_put(glm_tok *t, int32_t a, int32_t b, uint32_t rank, int32_t merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = merge_hash(key, t->merge_mask);; i = (i + 1) & t->merge_mask) {
        merge_slot *m = &t->merges[i];
        if (m->rank == UINT32_MAX || m->key == key) {
            if (m->rank == UINT32_MAX)
                t->n_merges++;
            m->key = key;
            m->rank = rank;
            m->merged = merged;
            return;
        }
    }
}

static inline int merge_get(const glm_tok *t, int32_t a, int32_t b, uint32_t *rank, int32_t *merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t i = merge_hash(key, t->merge_mask);; i = (i + 1) & t->merge_mask) {
        const merge_slot *m = &t->merges[i];
        if (m->rank == UINT32_MAX)
            return 0;
        if (m->key == key) {
            *rank = m->rank;
            *merged = m->merged;
            return 1;
        }
    }
}

static void trie_add(trie *tr, const char *s, size_t n, int32_t term)
{
    int32_t node = -1; /* parent; -1 = the root table */
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = node < 0 ? tr->root[b] : tr->nodes[node].child;
        while (node >= 0 && c >= 0 && tr->nodes[c].byte != b)
            c = tr->nodes[c].sibling;
        if (c < 0) {
            if (tr->n == tr->cap) {
                tr->cap = tr->cap ? 2 * tr->cap : 64;
                tr->nodes = glm_realloc(tr->nodes, (size_t)tr->cap * sizeof *tr->nodes);
            }
            c = tr->n++;
            tr->nodes[c] = (trie_node){.child = -1, .sibling = -1, .term = -1, .byte = b};
            if (node < 0) {
                tr->root[b] = c;
            } else {
                tr->nodes[c].sibling = tr->nodes[node].child;
                tr->nodes[node].child = c;
            }
        }
        node = c;
    }
    tr->nodes[node].term = term; /* a later duplicate of the content wins */
}

/* Leftmost-longest match in s[from, end): returns 1 with [*ms, *me) and the
 * added-token index, or 0. */
static int trie_find(const trie *tr, const unsigned char *s, size_t from, size_t end, size_t *ms,
                     size_t *me, int32_t *term)
{
    for (size_t p = from; p < end; p++) {
        int32_t node = tr->root[s[p]];
        if (node < 0)
            continue;
        int32_t best = tr->nodes[node].term;
        size_t best_end = p + 1;
        for (size_t q = p + 1; q < end; q++) {
            int32_t c = tr->nodes[node].child;
            while (c >= 0 && tr->nodes[c].byte != s[q])
                c = tr->nodes[c].sibling;
            if (c < 0)
                break;
            node = c;
            if (tr->nodes[node].term >= 0) {
                best = tr->nodes[node].term;
                best_end = q + 1;
            }
        }
        if (best >= 0) {
            *ms = p;
            *me = best_end;
            *term = best;
            return 1;
        }
    }
    return 0;
}

/* GPT-2's byte -> character table (tokenizers' bytes_char). */
static void byte_chars(uint32_t out[256])
{
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        out[b] = printable ? (uint32_t)b : 256 + n++;
    }
}

/* ------------------------------------------------------------------------ */
/* regexes                                                                  */

/* A general category \p{X}, \p{^X} or \P{X} at re[i] (a backslash): writes it
 * as the reference's Unicode has it (uniclass.h) and returns the bytes it
 * took, or 0 when there is none there (other properties are left to PCRE2).
 * Negated inside a class it is the explicit complement; outside, a class. */
static size_t put_category(const char *re, size_t n, size_t i, int in_class, glm_buf *b)
{
    if (i + 3 >= n || (re[i + 1] != 'p' && re[i + 1] != 'P') || re[i + 2] != '{')
        return 0;
    const char *name = re + i + 3, *close = memchr(name, '}', n - (i + 3));
    if (!close)
        return 0;
    int negated = re[i + 1] == 'P';
    if (*name == '^') {
        negated = !negated;
        name++;
    }
    glm_buf items = {0};
    if (!glm_uniclass_items(name, (size_t)(close - name), in_class && negated, &items))
        return 0;
    if (in_class)
        glm_buf_put(b, items.p, items.len);
    else
        glm_buf_printf(b, "[%s%s]", negated ? "^" : "", items.p);
    glm_buf_free(&items);
    return (size_t)(close + 1 - (re + i));
}

/*
 * Rewrites an Oniguruma pattern (Ruby syntax, what tokenizers compiles) for
 * PCRE2 with UCP, where the two differ: \s \S (White_Space; PCRE2 adds
 * U+180E), \w \W (Oniguruma's Word: Letter, Mark, Decimal_Number,
 * Connector_Punctuation and more, e.g. Letter_Number and U+00B2), \h \H (hex
 * digit in Oniguruma), and the general categories (\p{L}, \p{N}, ... in the
 * reference's Unicode, newer than PCRE2's: uniclass.h). \W and \H inside a
 * character class are left as they are. With native, general categories are
 * left to PCRE2's own properties. Returns a malloc'd string.
 */
static char *onig_to_pcre2(const char *re, size_t n, int native, size_t *out_n)
{
    glm_buf b = {0};
    int in_class = 0;
    size_t body = 0; /* first index of the class body (a ']' there is literal) */
    for (size_t i = 0; i < n;) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[i + 1];
            const char *rep = NULL;
            if (d == 'Q') { /* \Q...\E is literal */
                const char *e = NULL;
                for (size_t j = i + 2; j + 1 < n; j++)
                    if (re[j] == '\\' && re[j + 1] == 'E') {
                        e = re + j + 2;
                        break;
                    }
                size_t k = e ? (size_t)(e - (re + i)) : n - i;
                glm_buf_put(&b, re + i, k);
                i += k;
                continue;
            }
            size_t k = native ? 0 : put_category(re, n, i, in_class, &b);
            if (k) {
                i += k;
                continue;
            }
            switch (d) {
            case 's': rep = "\\p{White_Space}"; break;
            case 'S': rep = "\\P{White_Space}"; break;
            case 'w':
            case 'W': /* Oniguruma's Word: the same in both compilations */
                if (d == 'W' && in_class)
                    break;
                if (!in_class)
                    glm_buf_puts(&b, d == 'w' ? "[" : "[^");
                glm_uniclass_items("Word", 4, 0, &b);
                if (!in_class)
                    glm_buf_putc(&b, ']');
                i += 2;
                continue;
            case 'h': rep = in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
            case 'H': rep = in_class ? NULL : "[^0-9a-fA-F]"; break;
            default: break;
            }
            if (rep)
                glm_buf_puts(&b, rep);
            else
                glm_buf_put(&b, re + i, 2);
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            body = i + 1 + (i + 1 < n && re[i + 1] == '^');
        } else if (in_class && c == '[' && i + 1 < n && re[i + 1] == ':') {
            const char *e = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (re[j] == ':' && re[j + 1] == ']') {
                    e = re + j + 2;
                    break;
                }
            if (e) {
                size_t k = (size_t)(e - (re + i));
                glm_buf_put(&b, re + i, k);
                i += k;
                continue;
            }
        } else if (in_class && c == ']' && i != body) {
            in_class = 0;
        }
        glm_buf_putc(&b, c);
        i++;
    }
    return glm_buf_take(&b, out_n);
}

/* Compiles PCRE2 pattern p with opts and JITs it when possible. */
static int compile_pcre2(const char *p, size_t n, uint32_t opts, pcre2_code **out, int *jit, const char *pat,
                         size_t pat_n, const char *name, const char *what, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, n, opts, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        char sb[160];
        return glm_err(err, errlen, "%s: %s regex '%s' does not compile: %s (at offset %zu)", name,
                       what, show(pat, pat_n, sb, sizeof sb), (const char *)msg, (size_t)eo);
    }
    /* GLM_PCRE2_JIT=0 turns the JIT off: under valgrind, whose memcheck
     * flags the JIT's deliberate (page-safe) vector reads past the subject */
    const char *env = getenv("GLM_PCRE2_JIT");
    *jit = !(env && strcmp(env, "0") == 0) && pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    *out = re;
    return GLM_OK;
}

/* Compiles a step's pattern (Oniguruma regex, or a literal string) with
 * UTF+UCP into st->re[0], and into st->re[1] with PCRE2's own properties
 * when those match the reference on text without changed code points and the
 * pattern differs (else re[1] is re[0]). */
static int compile_re(const char *pat, size_t n, int literal, pt_step *st, const char *name, const char *what,
                      char *err, size_t errlen)
{
    int rc;
    if (literal) {
        rc = compile_pcre2(pat, n, PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_LITERAL, &st->re[0], &st->jit[0], pat,
                           n, name, what, err, errlen);
    } else {
        uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_UCP;
        size_t pn, qn;
        char *p = onig_to_pcre2(pat, n, 0, &pn);
        char *q = glm_uniclass_pcre2_is_base() ? onig_to_pcre2(pat, n, 1, &qn) : NULL;
        rc = compile_pcre2(p, pn, opts, &st->re[0], &st->jit[0], pat, n, name, what, err, errlen);
        if (rc == GLM_OK && q && (qn != pn || memcmp(p, q, pn) != 0) &&
            (rc = compile_pcre2(q, qn, opts, &st->re[1], &st->jit[1], pat, n, name, what, err, errlen)) != GLM_OK) {
            pcre2_code_free(st->re[0]);
            st->re[0] = NULL;
        }
        free(p);
        free(q);
    }
    if (rc == GLM_OK && !st->re[1]) {
        st->re[1] = st->re[0];
        st->jit[1] = st->jit[0];
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* loading                                                                  */

typedef struct {
    const char *name;
    char *err;
    size_t errlen;
} lctx;

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Optional boolean member: absent or null gives def. */
static int get_bool(lctx *x, const json_t *obj, const char *where, const char *key, int def, int *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return GLM_OK;
    }
    if (!json_is_boolean(v))
        return glm_err(x->err, x->errlen, "%s: %s.%s must be a boolean, not %s", x->name, where, key,
                       jtype(v));
    *out = json_is_true(v);
    return GLM_OK;
}

/* Optional string member: absent or null gives NULL. */
static int get_str(lctx *x, const json_t *obj, const char *where, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return GLM_OK;
    if (!json_is_string(v))
        return glm_err(x->err, x->errlen, "%s: %s.%s must be a string, not %s", x->name, where, key,
                       jtype(v));
    *out = v;
    return GLM_OK;
}

static const char *type_of(const json_t *obj)
{
    const json_t *ty = json_object_get(obj, "type");
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static int add_step(glm_tok *t, pt_step st)
{
    t->steps = glm_realloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *t->steps);
    t->steps[t->n_steps++] = st;
    return GLM_OK;
}

static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Parses one pre-tokenizer (recursing into Sequence); *seen_bl tells whether
 * ByteLevel was already seen (it must come last). */
static int parse_pretok(lctx *x, glm_tok *t, const json_t *p, int depth, int *seen_bl)
{
    char sb[96];
    if (!json_is_object(p))
        return glm_err(x->err, x->errlen, "%s: pre_tokenizer must be an object, not %s", x->name, jtype(p));
    const char *ty = type_of(p);
    if (!ty)
        return glm_err(x->err, x->errlen, "%s: pre_tokenizer has no type", x->name);
    if (*seen_bl)
        return glm_err(x->err, x->errlen,
                       "%s: pre_tokenizer '%s' after ByteLevel is not supported (ByteLevel must be last)",
                       x->name, show(ty, strlen(ty), sb, sizeof sb));
    if (strcmp(ty, "Sequence") == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return glm_err(x->err, x->errlen, "%s: pre_tokenizer Sequence needs a 'pretokenizers' array",
                           x->name);
        if (depth > 8)
            return glm_err(x->err, x->errlen, "%s: pre_tokenizer Sequences nested too deep", x->name);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (parse_pretok(x, t, json_array_get(list, i), depth + 1, seen_bl) != GLM_OK)
                return GLM_ERR;
        return GLM_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        const json_t *pat = json_object_get(p, "pattern");
        const json_t *rx = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
        const json_t *lit = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
        if (!json_is_string(rx) && !json_is_string(lit))
            return glm_err(x->err, x->errlen,
                           "%s: pre_tokenizer Split needs a pattern {\"Regex\": ...} or {\"String\": ...}",
                           x->name);
        const json_t *bh = json_object_get(p, "behavior");
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
        int behavior = -1;
        for (int i = 0; i < 5 && json_is_string(bh); i++)
            if (strcmp(json_string_value(bh), names[i]) == 0)
                behavior = i;
        if (behavior < 0)
            return glm_err(x->err, x->errlen, "%s: pre_tokenizer Split has an unknown behavior", x->name);
        const json_t *inv = json_object_get(p, "invert");
        if (!json_is_boolean(inv))
            return glm_err(x->err, x->errlen, "%s: pre_tokenizer Split needs a boolean 'invert'", x->name);
        const json_t *s = rx ? rx : lit;
        pt_step st = {.behavior = behavior, .invert = json_is_true(inv)};
        if (compile_re(json_string_value(s), json_string_length(s), !rx, &st, x->name,
                       "pre_tokenizer Split", x->err, x->errlen) != GLM_OK)
            return GLM_ERR;
        return add_step(t, st);
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        int aps, use_re;
        if (get_bool(x, p, "pre_tokenizer.ByteLevel", "add_prefix_space", 1, &aps) != GLM_OK ||
            get_bool(x, p, "pre_tokenizer.ByteLevel", "use_regex", 1, &use_re) != GLM_OK)
            return GLM_ERR;
        *seen_bl = 1;
        if (!aps && !use_re)
            return GLM_OK;
        pt_step st = {.behavior = B_ISOLATED, .prefix_space = aps};
        if (use_re && compile_re(GPT2_RE, sizeof GPT2_RE - 1, 0, &st, x->name,
                                 "ByteLevel", x->err, x->errlen) != GLM_OK)
            return GLM_ERR;
        return add_step(t, st);
    }
    return glm_err(x->err, x->errlen, "%s: pre_tokenizer type '%s' is not supported", x->name,
                   show(ty, strlen(ty), sb, sizeof sb));
}

/* The id of vocabulary entry spelled s, for merges: must be in the model. */
static int merge_tok(lctx *x, const glm_tok *t, size_t rank, const char *s, size_t n, int32_t *id)
{
    *id = model_find(t, s, n);
    if (*id < 0) {
        char sb[96];
        return glm_err(x->err, x->errlen, "%s: merge %zu names '%s', which is not in the vocabulary",
                       x->name, rank, show(s, n, sb, sizeof sb));
    }
    return GLM_OK;
}

static int parse_merges(lctx *x, glm_tok *t, const json_t *merges)
{
    size_t n = json_array_size(merges);
    uint32_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    t->merges = glm_malloc((size_t)cap * sizeof *t->merges);
    for (uint32_t i = 0; i < cap; i++)
        t->merges[i].rank = UINT32_MAX;
    t->merge_mask = cap - 1;
    int legacy = n > 0 && json_is_string(json_array_get(merges, 0));
    size_t plen = t->prefix ? strlen(t->prefix) : 0;
    char *buf = NULL;
    size_t bcap = 0;
    uint32_t rank = 0;
    int rc = GLM_OK;
    for (size_t i = 0; i < n && rc == GLM_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t an, bn;
        if (legacy) {
            if (!json_is_string(m)) {
                rc = glm_err(x->err, x->errlen, "%s: merge %zu is not a string like the others", x->name, i);
                break;
            }
            const char *s = json_string_value(m);
            size_t sn = json_string_length(m);
            if (sn >= 8 && memcmp(s, "#version", 8) == 0)
                continue;
            const char *sp = memchr(s, ' ', sn);
            if (!sp || memchr(sp + 1, ' ', sn - (size_t)(sp + 1 - s))) {
                rc = glm_err(x->err, x->errlen, "%s: merge %zu is not two tokens separated by one space",
                             x->name, i);
                break;
            }
            a = s;
            an = (size_t)(sp - s);
            b = sp + 1;
            bn = sn - an - 1;
        } else {
            if (!json_is_array(m) || json_array_size(m) != 2 || !json_is_string(json_array_get(m, 0)) ||
                !json_is_string(json_array_get(m, 1))) {
                rc = glm_err(x->err, x->errlen, "%s: merge %zu is not a pair of strings", x->name, i);
                break;
            }
            a = json_string_value(json_array_get(m, 0));
            an = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bn = json_string_length(json_array_get(m, 1));
        }
        int32_t ia, ib, im;
        if (merge_tok(x, t, rank, a, an, &ia) != GLM_OK || merge_tok(x, t, rank, b, bn, &ib) != GLM_OK) {
            rc = GLM_ERR;
            break;
        }
        if (plen && (bn < plen || memcmp(b, t->prefix, plen) != 0)) {
            char sb[96];
            rc = glm_err(x->err, x->errlen, "%s: merge %u: '%s' does not start with the continuing_subword_prefix",
                         x->name, rank, show(b, bn, sb, sizeof sb));
            break;
        }
        if (an + bn + 1 > bcap) {
            bcap = 2 * (an + bn + 1);
            buf = glm_realloc(buf, bcap);
        }
        memcpy(buf, a, an);
        memcpy(buf + an, b + plen, bn - plen);
        if (merge_tok(x, t, rank, buf, an + bn - plen, &im) != GLM_OK) {
            rc = GLM_ERR;
            break;
        }
        merge_put(t, ia, ib, rank, im);
        rank++;
    }
    free(buf);
    return rc;
}

/* An added_tokens entry as read, before its id is checked. */
typedef struct {
    const json_t *content;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} raw_added;

/* Reads model.vocab into ent/flags/spell (two tokens with one id are an
 * error) and added_tokens into *out_added; sizes the id space to the largest
 * id of both. */
static int parse_model_vocab(lctx *x, glm_tok *t, const json_t *vocab, const json_t *added,
                             raw_added **out_added, size_t *out_n)
{
    int32_t max_id = -1;
    const char *key;
    size_t kn;
    const json_t *val;
    json_object_keylen_foreach((json_t *)vocab, key, kn, val) {
        char sb[96];
        if (!json_is_integer(val))
            return glm_err(x->err, x->errlen, "%s: vocab entry '%s': id is %s, not an integer", x->name,
                           show(key, kn, sb, sizeof sb), jtype(val));
        json_int_t v = json_integer_value(val);
        if (v < 0 || v >= GLM_TOK_MAX_ID)
            return glm_err(x->err, x->errlen, "%s: vocab entry '%s': id %lld out of range [0, %d)",
                           x->name, show(key, kn, sb, sizeof sb), (long long)v, GLM_TOK_MAX_ID);
        if (v > max_id)
            max_id = (int32_t)v;
    }
    size_t na = json_array_size(added);
    raw_added *ra = glm_calloc(na ? na : 1, sizeof *ra);
    *out_added = ra;
    *out_n = na;
    for (size_t i = 0; i < na; i++) {
        const json_t *a = json_array_get(added, i);
        if (!json_is_object(a))
            return glm_err(x->err, x->errlen, "%s: added_tokens[%zu] is not an object", x->name, i);
        const json_t *c = json_object_get(a, "content"), *id = json_object_get(a, "id");
        if (!json_is_string(c))
            return glm_err(x->err, x->errlen, "%s: added_tokens[%zu] has no string 'content'", x->name, i);
        if (!json_is_integer(id))
            return glm_err(x->err, x->errlen, "%s: added_tokens[%zu]: id is %s, not an integer", x->name,
                           i, id ? jtype(id) : "missing");
        if (json_integer_value(id) < 0 || json_integer_value(id) >= GLM_TOK_MAX_ID)
            return glm_err(x->err, x->errlen, "%s: added_tokens[%zu]: id %lld out of range [0, %d)",
                           x->name, i, (long long)json_integer_value(id), GLM_TOK_MAX_ID);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        ra[i].content = c;
        ra[i].id = (int32_t)json_integer_value(id);
        if (get_bool(x, a, where, "special", 0, &ra[i].special) != GLM_OK ||
            get_bool(x, a, where, "lstrip", 0, &ra[i].lstrip) != GLM_OK ||
            get_bool(x, a, where, "rstrip", 0, &ra[i].rstrip) != GLM_OK ||
            get_bool(x, a, where, "single_word", 0, &ra[i].single_word) != GLM_OK ||
            get_bool(x, a, where, "normalized", !ra[i].special, &ra[i].normalized) != GLM_OK)
            return GLM_ERR;
        if (ra[i].id > max_id)
            max_id = ra[i].id;
    }
    t->n_ids = max_id + 1;
    t->ent = glm_calloc((size_t)(t->n_ids ? t->n_ids : 1), sizeof *t->ent);
    t->flags = glm_calloc((size_t)(t->n_ids ? t->n_ids : 1), 1);

    json_object_keylen_foreach((json_t *)vocab, key, kn, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (t->flags[id] & F_MODEL) {
            char s1[96], s2[96];
            size_t on;
            const char *other = spelling(t, id, &on);
            return glm_err(x->err, x->errlen, "%s: vocab entries '%s' and '%s' both have id %d", x->name,
                           show(other, on, s1, sizeof s1), show(key, kn, s2, sizeof s2), id);
        }
        t->flags[id] |= F_MODEL;
        t->ent[id].spell_off = arena_add(&t->spell, key, kn);
        t->ent[id].spell_len = (uint32_t)kn;
        t->n_model++;
    }
    return GLM_OK;
}

static const char *added_key(const void *ctx, uint32_t i, size_t *n)
{
    const added_tok *a = &((const glm_tok *)ctx)->added[i];
    *n = a->len;
    return a->content;
}

/* Gives each added token its id the way tokenizers'
 * AddedVocabulary::add_tokens does when it loads a file (one call, in file
 * order): the same content again keeps its id; else its id in the model
 * vocabulary; else the next id from the number of vocabulary entries on. An
 * id in the file that differs from that is an error (tokenizers only warns,
 * then uses its own). Repeated contents take the later flags; `special` only
 * accumulates, as tokenizers' special-token set does. */
static int assign_added(lctx *x, glm_tok *t, raw_added *ra, size_t na)
{
    map_build(t); /* model vocabulary only, for now */
    /* added contents seen so far -> index into t->added */
    glm_strmap seen;
    glm_strmap_init(&seen, na);
    t->added = glm_calloc(na ? na : 1, sizeof *t->added);
    int32_t next_id = (int32_t)t->n_model;
    int rc = GLM_OK;
    for (size_t i = 0; i < na && rc == GLM_OK; i++) {
        const char *c = json_string_value(ra[i].content);
        size_t cn = json_string_length(ra[i].content);
        if (cn == 0)
            continue; /* tokenizers ignores empty added tokens */
        int32_t prev = (int32_t)glm_strmap_get(&seen, c, cn, added_key, t);
        int32_t want;
        if (prev >= 0)
            want = t->added[prev].id;
        else {
            want = model_find(t, c, cn);
            if (want < 0)
                want = next_id++;
        }
        char sb[96];
        if (ra[i].id != want) {
            rc = glm_err(x->err, x->errlen,
                         "%s: added token '%s' has id %d, but tokenizers gives it id %d "
                         "(%s)", x->name, show(c, cn, sb, sizeof sb), ra[i].id, want,
                         prev >= 0 ? "the same content listed earlier"
                         : model_find(t, c, cn) >= 0 ? "its id in the vocabulary"
                                                     : "the next id after the vocabulary");
            break;
        }
        GLM_ASSERT(want < t->n_ids); /* want == a file id */
        added_tok *a;
        if (prev >= 0) {
            a = &t->added[prev];
            a->special |= (uint8_t)ra[i].special; /* the special set only grows */
        } else {
            if (t->flags[want] & F_ADDED) {
                rc = glm_err(x->err, x->errlen, "%s: added tokens share id %d", x->name, want);
                break;
            }
            if ((t->flags[want] & F_MODEL) && model_find(t, c, cn) != want) {
                size_t on;
                const char *o = spelling(t, want, &on);
                char sb2[96];
                rc = glm_err(x->err, x->errlen, "%s: added token '%s' gets id %d, which the vocabulary gives to '%s'",
                             x->name, show(c, cn, sb, sizeof sb), want, show(o, on, sb2, sizeof sb2));
                break;
            }
            a = &t->added[t->n_added];
            glm_strmap_put(&seen, c, cn, (uint32_t)t->n_added++, added_key, t);
            a->id = want;
            a->len = (uint32_t)cn;
            a->content = c; /* the JSON's copy until the loop ends, then the arena's */
            a->special = (uint8_t)ra[i].special;
            if (!(t->flags[want] & F_MODEL)) {
                t->ent[want].spell_off = arena_add(&t->spell, c, cn);
                t->ent[want].spell_len = (uint32_t)cn;
            }
            t->flags[want] |= F_ADDED;
        }
        a->lstrip = (uint8_t)ra[i].lstrip;
        a->rstrip = (uint8_t)ra[i].rstrip;
        a->single_word = (uint8_t)ra[i].single_word;
        a->normalized = (uint8_t)ra[i].normalized;
    }
    glm_strmap_free(&seen);
    if (rc != GLM_OK)
        return rc;
    /* contents now live in the arena (stable: no more additions) */
    for (int i = 0; i < t->n_added; i++) {
        added_tok *a = &t->added[i];
        size_t n;
        a->content = spelling(t, a->id, &n);
        if (a->special)
            t->flags[a->id] |= F_SPECIAL;
    }
    map_build(t); /* now with the added-only spellings */
    return GLM_OK;
}

static void build_byte_tables(glm_tok *t)
{
    byte_chars(t->byte_char);
    size_t pl = t->prefix ? strlen(t->prefix) : 0, sl = t->suffix ? strlen(t->suffix) : 0;
    char *buf = glm_malloc(pl + sl + 8);
    for (int v = 0; v < 4; v++)
        for (int b = 0; b < 256; b++) {
            size_t o = 0;
            if ((v & 1) && pl) {
                memcpy(buf, t->prefix, pl);
                o = pl;
            }
            o += glm_utf8_encode(t->byte_char[b], buf + o);
            if ((v & 2) && sl) {
                memcpy(buf + o, t->suffix, sl);
                o += sl;
            }
            t->init[v][b] = model_find(t, buf, o);
        }
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->fallback[b] = model_find(t, s, 6);
    }
    free(buf);

    /* decoded bytes of every token: ByteLevel decoder's per-token rule */
    int16_t rev[0x144];
    for (int i = 0; i < 0x144; i++)
        rev[i] = -1;
    for (int b = 0; b < 256; b++)
        rev[t->byte_char[b]] = (int16_t)b;
    char *tmp = glm_malloc(64);
    size_t tcap = 64;
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (!(t->flags[id] & (F_MODEL | F_ADDED)))
            continue;
        size_t n;
        const unsigned char *s = (const unsigned char *)spelling(t, id, &n);
        if (n > tcap) {
            tcap = n;
            tmp = glm_realloc(tmp, tcap);
        }
        size_t o = 0;
        int raw = 0;
        for (size_t i = 0; i < n;) {
            uint32_t c;
            size_t k = glm_utf8_decode_valid((const char *)s + i, (const char *)s + n, &c);
            if (c >= 0x144 || rev[c] < 0) {
                raw = 1;
                break;
            }
            tmp[o++] = (char)rev[c];
            i += k;
        }
        const char *src = raw ? (const char *)s : tmp;
        size_t sn = raw ? n : o;
        t->ent[id].bytes_off = arena_add(&t->bytes, src, sn);
        t->ent[id].bytes_len = (uint32_t)sn;
    }
    free(tmp);
}

static int build_tries(lctx *x, glm_tok *t)
{
    int need_word = 0;
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 256; b++)
            t->tries[i].root[b] = -1;
    for (int i = 0; i < t->n_added; i++) {
        const added_tok *a = &t->added[i];
        trie *tr = &t->tries[a->normalized ? 1 : 0];
        trie_add(tr, a->content, a->len, i);
        tr->count++;
        need_word |= a->single_word;
    }
    if (need_word) {
        static const char W[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
        int ec;
        PCRE2_SIZE eo;
        t->word_re = pcre2_compile((PCRE2_SPTR)W, sizeof W - 1, PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED,
                                   &ec, &eo, NULL);
        if (!t->word_re)
            return glm_err(x->err, x->errlen, "%s: internal: word regex does not compile", x->name);
    }
    return GLM_OK;
}

static int check_top(lctx *x, const json_t *root)
{
    char sb[96];
    const json_t *v = json_object_get(root, "version");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "1.0") != 0))
        return glm_err(x->err, x->errlen, "%s: unknown tokenizer version (only \"1.0\")", x->name);
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *ty = json_is_object(norm) ? type_of(norm) : NULL;
        return glm_err(x->err, x->errlen, "%s: normalizer %s%s%s is not supported (only null)", x->name,
                       ty ? "'" : "", ty ? show(ty, strlen(ty), sb, sizeof sb) : jtype(norm), ty ? "'" : "");
    }
    const json_t *dec = json_object_get(root, "decoder");
    const char *dty = json_is_object(dec) ? type_of(dec) : NULL;
    if (!dty || strcmp(dty, "ByteLevel") != 0)
        return glm_err(x->err, x->errlen, "%s: decoder %s%s%s is not supported (only ByteLevel)", x->name,
                       dty ? "'" : "", dty ? show(dty, strlen(dty), sb, sizeof sb) : dec ? jtype(dec) : "missing",
                       dty ? "'" : "");
    return GLM_OK;
}

static int parse_model(lctx *x, glm_tok *t, const json_t *model)
{
    char sb[96];
    if (!json_is_object(model))
        return glm_err(x->err, x->errlen, "%s: 'model' is %s, not an object", x->name,
                       model ? jtype(model) : "missing");
    const char *ty = type_of(model);
    if (!ty || strcmp(ty, "BPE") != 0)
        return glm_err(x->err, x->errlen, "%s: model type %s%s%s is not supported (only BPE)", x->name,
                       ty ? "'" : "", ty ? show(ty, strlen(ty), sb, sizeof sb) : "missing", ty ? "'" : "");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0))
        return glm_err(x->err, x->errlen, "%s: BPE dropout is not supported (it must be null or 0)", x->name);
    const json_t *unk, *pre, *suf;
    if (get_bool(x, model, "model", "ignore_merges", 0, &t->ignore_merges) != GLM_OK ||
        get_bool(x, model, "model", "byte_fallback", 0, &t->byte_fallback) != GLM_OK ||
        get_bool(x, model, "model", "fuse_unk", 0, &t->fuse_unk) != GLM_OK ||
        get_str(x, model, "model", "unk_token", &unk) != GLM_OK ||
        get_str(x, model, "model", "continuing_subword_prefix", &pre) != GLM_OK ||
        get_str(x, model, "model", "end_of_word_suffix", &suf) != GLM_OK)
        return GLM_ERR;
    if ((pre && memchr(json_string_value(pre), 0, json_string_length(pre))) ||
        (suf && memchr(json_string_value(suf), 0, json_string_length(suf))) ||
        (unk && memchr(json_string_value(unk), 0, json_string_length(unk))))
        return glm_err(x->err, x->errlen, "%s: model option strings must not contain NUL", x->name);
    t->prefix = pre && json_string_length(pre) ? glm_strdup(json_string_value(pre)) : NULL;
    t->suffix = suf && json_string_length(suf) ? glm_strdup(json_string_value(suf)) : NULL;
    if (unk) {
        t->has_unk = 1;
        t->unk_token = glm_strdup(json_string_value(unk));
    }
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab))
        return glm_err(x->err, x->errlen, "%s: model.vocab is %s, not an object", x->name,
                       vocab ? jtype(vocab) : "missing");
    if (!json_is_array(merges))
        return glm_err(x->err, x->errlen, "%s: model.merges is %s, not an array", x->name,
                       merges ? jtype(merges) : "missing");
    return GLM_OK;
}

int glm_tok_load_buffer(const char *json, size_t len, const char *name, glm_tok **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    lctx x = {name, err, errlen};
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) { /* jansson quotes the input near the error: keep the message one line */
        char sb[JSON_ERROR_TEXT_LENGTH + 64];
        return glm_err(err, errlen, "%s: not valid JSON (line %d, column %d): %s", name, je.line,
                       je.column, show(je.text, strnlen(je.text, sizeof je.text), sb, sizeof sb));
    }
    glm_tok *t = glm_calloc(1, sizeof *t);
    raw_added *ra = NULL;
    size_t na = 0;
    int seen_bl = 0;
    if (!json_is_object(root)) {
        glm_err(err, errlen, "%s: the top level is %s, not an object", name, jtype(root));
        goto fail;
    }
    const json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    if (parse_model(&x, t, model) != GLM_OK || check_top(&x, root) != GLM_OK)
        goto fail;
    if (added && !json_is_null(added) && !json_is_array(added)) {
        glm_err(err, errlen, "%s: added_tokens is %s, not an array", name, jtype(added));
        goto fail;
    }
    const json_t *pt = json_object_get(root, "pre_tokenizer");
    if (!pt || json_is_null(pt)) {
        glm_err(err, errlen, "%s: pre_tokenizer is missing (byte-level BPE needs ByteLevel)", name);
        goto fail;
    }
    if (parse_pretok(&x, t, pt, 0, &seen_bl) != GLM_OK)
        goto fail;
    if (!seen_bl) {
        glm_err(err, errlen, "%s: pre_tokenizer has no ByteLevel step (byte-level BPE needs one)", name);
        goto fail;
    }
    if (parse_model_vocab(&x, t, json_object_get(model, "vocab"), added, &ra, &na) != GLM_OK ||
        assign_added(&x, t, ra, na) != GLM_OK)
        goto fail;
    if (parse_merges(&x, t, json_object_get(model, "merges")) != GLM_OK)
        goto fail;
    if (t->has_unk) {
        t->unk_id = model_find(t, t->unk_token, strlen(t->unk_token));
    }
    build_byte_tables(t);
    if (build_tries(&x, t) != GLM_OK)
        goto fail;
    t->cache = glm_malloc_aligned(CACHE_SHARDS * sizeof *t->cache);
    memset(t->cache, 0, CACHE_SHARDS * sizeof *t->cache);
    for (int i = 0; i < CACHE_SHARDS; i++) {
        pthread_mutex_init(&t->cache[i].mu, NULL);
        t->cache[i].slots = glm_calloc(CACHE_SLOTS, sizeof(cache_slot));
    }
    free(ra);
    json_decref(root);
    *out = t;
    return GLM_OK;
fail:
    free(ra);
    json_decref(root);
    glm_tok_free(t);
    return GLM_ERR;
}

int glm_tok_load(const char *path, glm_tok **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return glm_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return glm_err(err, errlen, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return glm_err(err, errlen, "%s: too large (%lld bytes, at most %zu)", path,
                       (long long)st.st_size, MAX_FILE_BYTES);
    }
    size_t n = (size_t)st.st_size;
    glm_buf b = {0};
    int rc = glm_buf_read(&b, f, n);
    fclose(f);
    if (rc != GLM_OK || b.len != n) {
        glm_buf_free(&b);
        return glm_err(err, errlen, "%s: read error (%zu of %zu bytes)", path, b.len, n);
    }
    rc = glm_tok_load_buffer(glm_buf_str(&b), n, path, out, err, errlen);
    glm_buf_free(&b);
    return rc;
}

void glm_tok_free(glm_tok *t)
{
    if (!t)
        return;
    if (t->cache) {
        for (int i = 0; i < CACHE_SHARDS; i++) {
            pthread_mutex_destroy(&t->cache[i].mu);
            free(t->cache[i].slots);
        }
        glm_free_aligned(t->cache);
    }
    for (int i = 0; i < t->n_steps; i++) {
        if (t->steps[i].re[1] != t->steps[i].re[0])
            pcre2_code_free(t->steps[i].re[1]);
        pcre2_code_free(t->steps[i].re[0]);
    }
    free(t->steps);
    pcre2_code_free(t->word_re);
    for (int i = 0; i < 2; i++)
        free(t->tries[i].nodes);
    free(t->added);
    free(t->merges);
    glm_strmap_free(&t->map);
    free(t->ent);
    free(t->flags);
    glm_buf_free(&t->spell);
    glm_buf_free(&t->bytes);
    free(t->unk_token);
    free(t->prefix);
    free(t->suffix);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* queries                                                                  */

int32_t glm_tok_vocab_size(const glm_tok *t)
{
    return t->n_ids;
}

static int assigned(const glm_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & (F_MODEL | F_ADDED));
}

int32_t glm_tok_token_to_id(const glm_tok *t, const char *token, size_t len)
{
    return map_find(t, token, len);
}

const char *glm_tok_id_to_token(const glm_tok *t, int32_t id, size_t *len)
{
    if (!assigned(t, id))
        return NULL;
    size_t n;
    const char *s = spelling(t, id, &n);
    if (len)
        *len = n;
    return s;
}

const char *glm_tok_token_bytes(const glm_tok *t, int32_t id, size_t *len)
{
    if (!assigned(t, id))
        return NULL;
    *len = t->ent[id].bytes_len;
    return t->bytes.p + t->ent[id].bytes_off;
}

int glm_tok_is_special(const glm_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & F_SPECIAL) != 0;
}

int glm_tok_is_added(const glm_tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && (t->flags[id] & F_ADDED) != 0;
}

/* ------------------------------------------------------------------------ */
/* encoding                                                                 */

typedef struct {
    int32_t c;          /* token id */
    int32_t prev, next; /* symbol indices, -1 = none */
    int32_t alive;
} sym;

typedef struct {
    uint64_t key; /* (rank << 32) | pos: the heap is ordered on it */
    int32_t merged;
} hitem;

typedef struct {
    const glm_tok *t;
    int parse_special;
    int32_t *ids;       /* [cap]: the first min(n, max_ids) ids */
    size_t n, cap;      /* n: every id so far, kept or not */
    size_t max_ids;     /* ids kept at most */
    sym *syms;
    size_t syms_cap;
    hitem *heap;
    size_t heap_cap;
    char *buf;
    size_t buf_cap;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    size_t jstack_size;
    int native; /* 1: the text holds no code point whose category changed
                   since PCRE2's Unicode, so steps match with re[1] */
    char *err;
    size_t errlen;
} enc;

/* Counts an id, and keeps it while fewer than max_ids are kept. */
static void push_id(enc *e, int32_t id)
{
    if (e->n >= e->max_ids) {
        e->n++;
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->ids = glm_realloc(e->ids, e->cap * sizeof *e->ids);
    }
    e->ids[e->n++] = id;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    *cap = c;
    return glm_realloc(p, c * elem);
}

static void heap_push(enc *e, size_t *hn, uint32_t rank, int32_t pos, int32_t merged)
{
    e->heap = grow(e->heap, &e->heap_cap, *hn + 1, sizeof *e->heap);
    hitem it = {((uint64_t)rank << 32) | (uint32_t)pos, merged};
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (e->heap[p].key <= it.key)
            break;
        e->heap[i] = e->heap[p];
        i = p;
    }
    e->heap[i] = it;
}

static hitem heap_pop(enc *e, size_t *hn)
{
    hitem top = e->heap[0], last = e->heap[--(*hn)];
    size_t n = *hn, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && e->heap[c + 1].key < e->heap[c].key)
            c++;
        if (last.key <= e->heap[c].key)
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

static int cache_get(enc *e, uint64_t h, const unsigned char *w, size_t n)
{
    cache_shard *sh = &e->t->cache[h >> 58];
    cache_slot *s = &sh->slots[(h >> 16) & (CACHE_SLOTS - 1)];
    int32_t ids[CACHE_IDS_MAX];
    int nids = -1;
    pthread_mutex_lock(&sh->mu);
    if (s->hash == h && s->klen == n && memcmp(s->key, w, n) == 0) {
        nids = s->nids;
        memcpy(ids, s->ids, (size_t)nids * sizeof *ids);
    }
    pthread_mutex_unlock(&sh->mu);
    for (int i = 0; i < nids; i++)
        push_id(e, ids[i]);
    return nids >= 0;
}

static void cache_put(enc *e, uint64_t h, const unsigned char *w, size_t n, const int32_t *ids, size_t nids)
{
    cache_shard *sh = &e->t->cache[h >> 58];
    cache_slot *s = &sh->slots[(h >> 16) & (CACHE_SLOTS - 1)];
    pthread_mutex_lock(&sh->mu);
    s->hash = h;
    s->klen = (uint8_t)n;
    s->nids = (uint8_t)nids;
    memcpy(s->key, w, n);
    memcpy(s->ids, ids, nids * sizeof *ids);
    pthread_mutex_unlock(&sh->mu);
}

/* Appends a symbol; merge_word's bookkeeping for unknown characters. */
static void add_sym(enc *e, size_t *ns, int32_t id)
{
    sym *s = &e->syms[*ns];
    s->c = id;
    s->prev = (int32_t)*ns - 1;
    s->next = -1;
    s->alive = 1;
    if (*ns > 0)
        e->syms[*ns - 1].next = (int32_t)*ns;
    (*ns)++;
}

/* BPE of one pre-tokenized word (its raw bytes): BPE::tokenize_with_cache. */
static int bpe_word(enc *e, const unsigned char *w, size_t n)
{
    const glm_tok *t = e->t;
    if (n == 1 && !t->prefix && !t->suffix && t->init[0][w[0]] >= 0) {
        push_id(e, t->init[0][w[0]]);
        return GLM_OK;
    }
    /* the cache holds what the rest of this function computes, so looking it
     * up first (unlike tokenizers, which checks ignore_merges first) changes
     * nothing but the speed */
    uint64_t h = 0;
    int cacheable = n >= CACHE_KEY_MIN && n <= CACHE_KEY_MAX;
    if (cacheable) {
        h = glm_hash_bytes(w, n);
        if (cache_get(e, h, w, n))
            return GLM_OK;
    }
    if (n > GLM_TOK_MAX_WORD)
        return glm_err(e->err, e->errlen, "a pre-tokenized word of %zu bytes is too long (at most %zu)", n,
                       (size_t)GLM_TOK_MAX_WORD);
    if (t->ignore_merges) {
        e->buf = grow(e->buf, &e->buf_cap, 2 * n + 1, 1);
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            o += glm_utf8_encode(t->byte_char[w[i]], e->buf + o);
        int32_t id = model_find(t, e->buf, o);
        if (id >= 0) {
            push_id(e, id);
            if (cacheable)
                cache_put(e, h, w, n, &id, 1);
            return GLM_OK;
        }
    }

    /* symbols: BPE::merge_word (one character of the byte-level string per byte) */
    size_t pl = t->prefix ? strlen(t->prefix) : 0, sl = t->suffix ? strlen(t->suffix) : 0;
    size_t per = t->byte_fallback ? pl + 2 + sl : 1;
    if (n * per >= INT32_MAX / 4)
        return glm_err(e->err, e->errlen, "a pre-tokenized word of %zu bytes is too long (at most %zu)", n,
                       (size_t)GLM_TOK_MAX_WORD);
    e->syms = grow(e->syms, &e->syms_cap, n * per + 1, sizeof *e->syms);
    size_t ns = 0;
    int32_t unk = -1; /* pending unknown-token symbol (fuse_unk) */
    for (size_t i = 0; i < n; i++) {
        int v = (i > 0 && t->prefix ? 1 : 0) | (i == n - 1 && t->suffix ? 2 : 0);
        int32_t id = t->init[v][w[i]];
        if (id >= 0) {
            if (unk >= 0) {
                add_sym(e, &ns, unk);
                unk = -1;
            }
            add_sym(e, &ns, id);
            continue;
        }
        if (t->byte_fallback) {
            char s[64 + 8];
            size_t o = 0;
            if ((v & 1) && pl <= 32) {
                memcpy(s, t->prefix, pl);
                o = pl;
            }
            o += glm_utf8_encode(t->byte_char[w[i]], s + o);
            if ((v & 2) && sl <= 32) {
                memcpy(s + o, t->suffix, sl);
                o += sl;
            }
            int ok = pl <= 32 && sl <= 32;
            for (size_t k = 0; k < o && ok; k++)
                ok = t->fallback[(unsigned char)s[k]] >= 0;
            if (ok) {
                for (size_t k = 0; k < o; k++)
                    add_sym(e, &ns, t->fallback[(unsigned char)s[k]]);
                continue; /* note: a pending unk stays pending, as in merge_word */
            }
        }
        if (t->has_unk) {
            if (t->unk_id < 0) {
                char sb[96];
                return glm_err(e->err, e->errlen, "unk_token '%s' is not in the vocabulary",
                               show(t->unk_token, strlen(t->unk_token), sb, sizeof sb));
            }
            if (unk >= 0 && !t->fuse_unk)
                add_sym(e, &ns, unk);
            unk = t->unk_id;
        }
        /* no unk_token: the character is dropped, as in tokenizers */
    }
    if (unk >= 0)
        add_sym(e, &ns, unk);

    /* Word::merge_all */
    size_t hn = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        uint32_t rank;
        int32_t merged;
        if (merge_get(t, e->syms[i].c, e->syms[i + 1].c, &rank, &merged))
            heap_push(e, &hn, rank, (int32_t)i, merged);
    }
    while (hn) {
        hitem top = heap_pop(e, &hn);
        int32_t pos = (int32_t)(uint32_t)top.key;
        sym *s = &e->syms[pos];
        if (!s->alive || s->next < 0)
            continue;
        int32_t nx = s->next;
        uint32_t rank;
        int32_t merged;
        if (!merge_get(t, s->c, e->syms[nx].c, &rank, &merged) || merged != top.merged)
            continue;
        s->c = top.merged;
        s->next = e->syms[nx].next;
        e->syms[nx].alive = 0;
        if (s->next >= 0)
            e->syms[s->next].prev = pos;
        if (s->prev >= 0 && merge_get(t, e->syms[s->prev].c, s->c, &rank, &merged))
            heap_push(e, &hn, rank, s->prev, merged);
        if (s->next >= 0 && merge_get(t, s->c, e->syms[s->next].c, &rank, &merged))
            heap_push(e, &hn, rank, pos, merged);
    }
    size_t first = e->n;
    for (int32_t i = ns ? 0 : -1; i >= 0; i = e->syms[i].next)
        push_id(e, e->syms[i].c);
    if (cacheable && e->n - first <= CACHE_IDS_MAX && e->n <= e->max_ids)
        cache_put(e, h, w, n, e->ids + first, e->n - first);
    return GLM_OK;
}

/* One regex search in p[0, n) from `from`; 1 with [*ms, *me), 0 none, GLM_ERR. */
static int re_find(enc *e, const pt_step *st, const char *p, size_t n, size_t from, size_t *ms, size_t *me)
{
    /* PCRE2's default match limit (10M) trips on long whitespace runs, whose
     * cost is linear: allow work linear in the piece, still bounding a
     * pathological pattern */
    uint32_t lim = n >= (UINT32_MAX - 10000000u) / 64 ? UINT32_MAX : (uint32_t)(10000000u + 64 * n);
    pcre2_set_match_limit(e->mctx, lim);
    pcre2_set_depth_limit(e->mctx, lim);
    const pcre2_code *re = st->re[e->native];
    int jit = st->jit[e->native];
    for (;;) {
        int rc = jit ? pcre2_jit_match(re, (PCRE2_SPTR)p, n, from, 0, e->md, e->mctx)
                     : pcre2_match(re, (PCRE2_SPTR)p, n, from, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
            *ms = ov[0];
            *me = ov[1];
            if (*me < *ms) /* \K tricks: treat as an empty match at the end */
                *ms = *me;
            return 1;
        }
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && e->jstack_size < ((size_t)256 << 20)) {
            if (e->jstack)
                pcre2_jit_stack_free(e->jstack);
            e->jstack_size = e->jstack_size ? 4 * e->jstack_size : (size_t)1 << 20;
            e->jstack = pcre2_jit_stack_create(32 << 10, e->jstack_size, NULL);
            if (!e->jstack)
                return glm_err(e->err, e->errlen, "out of memory for the regex stack");
            pcre2_jit_stack_assign(e->mctx, NULL, e->jstack);
            continue;
        }
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return glm_err(e->err, e->errlen, "pre-tokenizer regex failed on a %zu-byte piece: %s", n,
                       (const char *)msg);
    }
}

static int pretok(enc *e, int step, const char *p, size_t n);

typedef struct {
    int has;
    size_t s, e;
    int prev_match;
} pend;

/* Applies a Split behavior to the span [s, end) (is_match after invert) and
 * passes finished pieces on; see NormalizedString::split. */
static int span(enc *e, int step, const char *p, pend *pd, size_t s, size_t end, int m)
{
    const pt_step *st = &e->t->steps[step];
    int rc = GLM_OK;
#define EMIT(a, b) do { if ((b) > (a) && (rc = pretok(e, step + 1, p + (a), (b) - (a))) != GLM_OK) return rc; } while (0)
    switch (st->behavior) {
    case B_ISOLATED:
        EMIT(s, end);
        break;
    case B_REMOVED:
        if (!m)
            EMIT(s, end);
        break;
    case B_CONTIGUOUS:   /* runs of the same kind join */
    case B_MERGED_PREV:  /* a match joins the non-match before it */
        if (pd->has && (st->behavior == B_CONTIGUOUS ? m == pd->prev_match : m && !pd->prev_match)) {
            pd->e = end;
        } else {
            if (pd->has)
                EMIT(pd->s, pd->e);
            *pd = (pend){1, s, end, 0};
        }
        pd->prev_match = m;
        break;
    case B_MERGED_NEXT: /* a match merges with the non-match that follows it */
        if (pd->has) {
            if (!m) {
                EMIT(pd->s, end);
                pd->has = 0;
                break;
            }
            EMIT(pd->s, pd->e);
            pd->has = 0;
        }
        if (m)
            *pd = (pend){1, s, end, 1};
        else
            EMIT(s, end);
        break;
    }
#undef EMIT
    return rc;
}

/* Runs pre-tokenizer steps [step, n_steps) on the piece p[0, n), then BPE. */
static int pretok(enc *e, int step, const char *p, size_t n)
{
    if (step == e->t->n_steps)
        return bpe_word(e, (const unsigned char *)p, n);
    const pt_step *st = &e->t->steps[step];
    char *own = NULL;
    if (st->prefix_space && !(n > 0 && p[0] == ' ')) {
        own = glm_malloc(n + 1);
        own[0] = ' ';
        memcpy(own + 1, p, n);
        p = own;
        n++;
    }
    int rc = GLM_OK;
    if (!st->re[0]) {
        rc = pretok(e, step + 1, p, n);
        free(own);
        return rc;
    }
    /* onig FindMatches: an empty match right where the last match ended is
     * skipped by advancing one character */
    size_t pos = 0, prev = 0, last_end = 0;
    int have_last = 0;
    pend pd = {0};
    while (pos <= n) {
        size_t ms = 0, me = 0;
        int f = re_find(e, st, p, n, pos, &ms, &me);
        if (f < 0) {
            rc = GLM_ERR;
            goto out;
        }
        if (f == 0)
            break;
        if (ms == me && have_last && last_end == me) {
            if (pos >= n)
                break;
            pos += glm_utf8_len((unsigned char)p[pos]);
            continue;
        }
        pos = me;
        have_last = 1;
        last_end = me;
        if (prev != ms && (rc = span(e, step, p, &pd, prev, ms, st->invert)) != GLM_OK)
            goto out;
        if ((rc = span(e, step, p, &pd, ms, me, !st->invert)) != GLM_OK)
            goto out;
        prev = me;
    }
    if (prev != n && (rc = span(e, step, p, &pd, prev, n, st->invert)) != GLM_OK)
        goto out;
    if (pd.has && pd.e > pd.s)
        rc = pretok(e, step + 1, p + pd.s, pd.e - pd.s);
out:
    free(own);
    return rc;
}

/* Whether the character ending at s[at] (before `at`, not before `lo`) / the
 * one starting at s[at] is a Rust regex \w character. */
static int word_char(const glm_tok *t, const unsigned char *s, size_t from, size_t to)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    GLM_ASSERT(md != NULL);
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)(s + from), to - from, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static int added_pass(enc *e, int pass, const char *text, size_t s, size_t end);

static int after_pass(enc *e, int pass, const char *text, size_t a, size_t b)
{
    if (b <= a)
        return GLM_OK;
    if (pass == 0)
        return added_pass(e, 1, text, a, b);
    return pretok(e, 0, text + a, b - a);
}

/* AddedVocabulary::find_matches on the sentence text[s, end), then the
 * pieces between matches go on (to pass 1, or to the pre-tokenizer). */
static int added_pass(enc *e, int pass, const char *text, size_t s, size_t end)
{
    const glm_tok *t = e->t;
    const trie *tr = &t->tries[pass];
    const unsigned char *u = (const unsigned char *)text;
    if (tr->count == 0)
        return after_pass(e, pass, text, s, end);
    size_t start_offset = s, scan = s;
    int rc;
    while (scan < end) {
        size_t ms, me;
        int32_t ti;
        if (!trie_find(tr, u, scan, end, &ms, &me, &ti))
            break;
        scan = me;
        const added_tok *a = &t->added[ti];
        if (!e->parse_special && a->special)
            continue;
        if (a->single_word) {
            size_t b = ms > s ? prev_at(u, s, ms) : ms;
            int start_space = ms == s || !word_char(t, u, b, ms);
            int stop_space = me == end || !word_char(t, u, me, me + glm_utf8_len(u[me]));
            if (!start_space || !stop_space)
                continue;
        }
        size_t st = ms, sp = me;
        if (a->lstrip) {
            while (st > start_offset) {
                size_t b = prev_at(u, s, st);
                if (!is_white_space(cp_at(u, b, end)))
                    break;
                st = b;
            }
            if (st < start_offset)
                st = start_offset;
        }
        if (a->rstrip)
            while (sp < end && is_white_space(cp_at(u, sp, end)))
                sp += glm_utf8_len(u[sp]);
        if (start_offset < st && (rc = after_pass(e, pass, text, start_offset, st)) != GLM_OK)
            return rc;
        push_id(e, a->id);
        start_offset = sp;
    }
    if (start_offset < end)
        return after_pass(e, pass, text, start_offset, end);
    return GLM_OK;
}

int glm_tok_encode(const glm_tok *t, const char *text, size_t len, int parse_special, int32_t **ids,
                   size_t *n_ids, char *err, size_t errlen)
{
    return glm_tok_encode_max(t, text, len, parse_special, 0, ids, n_ids, err, errlen);
}

int glm_tok_encode_max(const glm_tok *t, const char *text, size_t len, int parse_special, size_t max_ids,
                       int32_t **ids, size_t *n_ids, char *err, size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    if (len > GLM_TOK_MAX_TEXT)
        return glm_err(err, errlen, "text of %zu bytes is too long to encode (at most %zu)", len,
                       GLM_TOK_MAX_TEXT);
    size_t bad = glm_utf8_valid_prefix(text, len);
    if (bad < len)
        return glm_err(err, errlen, "text is not valid UTF-8 (byte %zu of %zu)", bad, len);
    enc e = {.t = t, .parse_special = parse_special != 0, .err = err, .errlen = errlen,
             .max_ids = max_ids ? max_ids : SIZE_MAX};
    e.cap = GLM_MIN(GLM_MIN(len / 3 + 16, (size_t)1 << 16), e.max_ids);
    e.ids = glm_malloc(e.cap * sizeof *e.ids);
    int rc = GLM_OK;
    if (t->n_steps > 0) {
        e.native = !glm_uniclass_text_changed(text, len);
        e.md = pcre2_match_data_create(1, NULL);
        e.mctx = pcre2_match_context_create(NULL);
        GLM_ASSERT(e.md != NULL && e.mctx != NULL);
    }
    if (len > 0)
        rc = added_pass(&e, 0, text, 0, len);
    pcre2_match_data_free(e.md);
    pcre2_match_context_free(e.mctx);
    if (e.jstack)
        pcre2_jit_stack_free(e.jstack);
    free(e.syms);
    free(e.heap);
    free(e.buf);
    if (rc != GLM_OK) {
        free(e.ids);
        return GLM_ERR;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return GLM_OK;
}
