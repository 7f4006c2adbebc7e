/*
 * mkscript.c - the scripted test checkpoint (glm-mkmodel --preset script): a
 * GLM-5-architecture model whose greedy decoding follows token chains given
 * in a JSON file, so tests can drive reasoning, tool calls and JSON output
 * through the real engine and server on cue.
 *
 *   glm-mkmodel --preset script --script tests/models/script/chains.json \
 *               --tokenizer tests/models/tiny --out models/script
 *
 * How the model works
 *   Every o_proj and down_proj is zero, so no layer changes the residual
 *   stream: it stays the token embedding and logits = lm_head .
 *   RMSNorm(embed[last token]). The model is a bigram machine: each token has
 *   one successor. Hidden directions: 0 = the prior P, 1 = "other" O, then
 *   one per scripted token (the anchors, and every chain token but the last).
 *   embed[t] = e_P + e_dir(t) (e_P + e_O for every unscripted token), so the
 *   final RMSNorm (weight 1) makes it (e_P + e_dir(t)) / sqrt(2/H + eps) for
 *   every t. lm_head row u holds target * sqrt(2/H + eps) on a direction to
 *   contribute a logit of `target` (exact up to float32 rounding):
 *     200 on dir(t)      for u = the successor of t in its chain;
 *     200 on dir(anchor) for u = the first token of the anchor's default chain;
 *     150 on dir(anchor) for u = the first token of each other chain on that
 *                        anchor (the chain's entry token);
 *     200 on O           for u = <|endoftext|> (after any unscripted token);
 *     prior(u) on P      for every u (0 <= prior < 20, see below).
 *   A request selects a non-default chain with logit_bias {"<entry id>": 100}
 *   (biases are clamped to +-100): at the anchor 150 + 100 beats 200, and at
 *   every later step the biased entry has at most 100 + prior < 200, so the
 *   chain goes on undisturbed.
 *
 * The chains file
 *   {"chains": [{"name": "...", "anchor": "<think>", "default": true,
 *                "tokens": ["The", " user", ..., "</think>"]}, ...]}
 *   "tokens" are token texts (UTF-8, as decoded). The last one must be an
 *   eos token (<|endoftext|>, <|user|>, <|observation|>: generation stops) or
 *   an anchor (the output goes on with that anchor's default chain, e.g. a
 *   reasoning chain ending in </think>). Every anchor has exactly one default
 *   chain; the others are entries. Chains need two tokens or more.
 *
 * Every token is used once
 *   A bigram machine cannot give one token two successors, so every token but
 *   a chain's last is used once in the whole script. Texts are resolved in
 *   file order, each to the first of:
 *   1. one token, when that token is unused: an added token whose content the
 *      text is (so the first use of "<tool_call>" is the special token), an
 *      ordinary vocabulary entry, or a new vocabulary entry;
 *   2. 2..6 pieces, each an unused ordinary entry or a new one, never an
 *      added token: first with pieces of at least two characters, cut points
 *      leftmost first ("<arg_key>" -> "<a" + "rg_key>", then "<ar" +
 *      "g_key>", ...), then allowing one-character pieces;
 *   3. the text joined with the next one (then 1 or 2 for the two together,
 *      joining more as needed; never with the chain's last token). A tag has
 *      only so many unused prefixes, so its eighth use or so becomes e.g.
 *      "<arg_key>items" (a new entry).
 *   Anchors and eos tokens are never used inside a chain, so a "</think>" or
 *   "<|user|>" in the middle of a chain is spelled in pieces too. The output
 *   parser works on decoded text, so a tag in pieces parses like the special.
 *   New entries get ids from the tokenizer's size on, are written into
 *   tokenizer.json's model.vocab in byte-level spelling (space -> "Ġ") and
 *   have no merges: encoding never produces them, decoding does.
 *
 * The prior (what wins when constrained decoding masks the scripted token)
 *   <|endoftext|> 19; <|user|>, <|observation|> 18; </tool_call> 17;
 *   </arg_value> 16; </think>, </arg_key> 15; '"' 14; "}" and "]" 13; any
 *   other token 0.25 per byte of its text, at most 12 (48 bytes): longer tokens
 *   first, so forced literals are spelled in few tokens. '"' ranks above the
 *   closing brackets so that a forced JSON string closes (inside a string a
 *   bracket is text and would repeat forever), and a forced array or object
 *   then closes with the first bracket the grammar allows. Ids past the
 *   tokenizer (the model's vocabulary is rounded up to a multiple of 64) get 0.
 *
 * Output (DIR): tokenizer.json (the source one plus the new entries),
 * script.json (what tests read: per chain its anchor, entry id, ids, token
 * texts and full text), then the weights, generation_config.json (eos
 * <|endoftext|>, <|user|>, <|observation|>) and config.json last (1 dense
 * layer and an MTP layer, hidden size 512 or the next power of two that holds
 * every direction). tokenizer_config.json and chat_template.jinja are the
 * source directory's, copied by the Makefile. The output is deterministic.
 *
 * The MTP layer (speculative decoding's draft) follows the same chains: its
 * eh_proj passes the embedding half through (identity on columns [0, H), 0 on
 * the hidden half), enorm, hnorm and shared_head.norm are 1, and its o_proj
 * and down_proj are 0 like every layer's, so its output is the normalised
 * embedding of the token it is given and the LM head names that token's
 * successor: given the token at p + 1 it predicts the one at p + 2, as the
 * model itself will. Its copies of embed_tokens and the head (shared_head.head)
 * hold the model's values.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mkmodel.h"
#include "text/tokenizer.h"
#include "core/util.h"

#define LOGIT_CHAIN 200.0
#define LOGIT_ENTRY 150.0
#define RMS_NORM_EPS 1e-5 /* what mkmodel's config.json says */
#define MIN_HIDDEN 512
#define VOCAB_ALIGN 64
#define MAX_PIECES 6
#define DIR_PRIOR 0
#define DIR_OTHER 1
#define PRIOR_PER_BYTE 0.25
#define PRIOR_MAX_BYTES 48

static const char *const EOS_TEXT[3] = {"<|endoftext|>", "<|user|>", "<|observation|>"};

static const struct {
    const char *text;
    double prior;
} PRIOR_TIERS[] = {
    {"<|endoftext|>", 19}, {"<|user|>", 18}, {"<|observation|>", 18}, {"</tool_call>", 17},
    {"</arg_value>", 16},  {"</think>", 15}, {"</arg_key>", 15},      {"\"", 14},
    {"}", 13},             {"]", 13},
};

/* One text of a chain, resolved to 1..MAX_PIECES tokens, or joined to the
 * text before it. */
typedef struct {
    const char *text; /* from the chains JSON */
    char *joined;     /* text + the texts joined to it, or NULL */
    int merged;       /* 1: joined to the text before (n is 0) */
    int n;            /* pieces */
    int32_t ids[MAX_PIECES];
    size_t cut[MAX_PIECES]; /* end offset of each piece in the (joined) text */
} slot;

typedef struct {
    const char *name, *anchor;
    int32_t anchor_id;
    int is_default;
    slot *slots;
    int n_slots;
    int32_t *ids; /* the resolved tokens, in order */
    int n_ids;
    int end_anchor; /* the last token is an anchor (not an eos token) */
} chain;

typedef struct {
    const glm_tok *src;
    json_t *used;      /* byte-level spelling -> true */
    json_t *new_vocab; /* byte-level spelling -> id, in order of creation */
    char **new_text;   /* [n_new] raw text of new entries */
    int n_new;
    int32_t first_new; /* = the source tokenizer's size */
    int32_t eos[3];
    chain *ch;
    int n_ch;
    int32_t *anchors; /* distinct anchor ids, in order of first use */
    int n_anchors;
    int H, V, V_tok, n_dirs;
    int *dir;      /* [V] direction of each id */
    double *prior; /* [V] */
} script;

/* ------------------------------------------------------------------------ */
/* Byte-level spelling (GPT-2's bytes_to_unicode)                            */

static int byte_cp[256];

static void bytelevel_init(void)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_cp[b] = printable ? b : 256 + n++;
    }
}

/* The tokenizer.json spelling of raw bytes s[0..n): malloc'd, NUL-terminated. */
static char *bytelevel(const char *s, size_t n)
{
    char *out = glm_malloc(2 * n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int cp = byte_cp[(unsigned char)s[i]];
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *o = '\0';
    return out;
}

static int char_start(const char *s, size_t i)
{
    return ((unsigned char)s[i] & 0xC0) != 0x80;
}

static size_t n_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += char_start(s, i);
    return k;
}

/* ------------------------------------------------------------------------ */
/* Token resolution                                                          */

#define NEW_TOKEN (-2)

/* The token that raw text s[0..n) can become, if unused: an id, NEW_TOKEN (a
 * new vocabulary entry) or -1. Added tokens only when allow_added. */
static int32_t available(const script *sc, const char *s, size_t n, int allow_added)
{
    char *bl = bytelevel(s, n);
    int32_t r;
    int32_t added = glm_tok_token_to_id(sc->src, s, n);
    int32_t vocab = glm_tok_token_to_id(sc->src, bl, strlen(bl));
    if (json_object_get(sc->used, bl) || json_object_get(sc->new_vocab, bl))
        r = -1;
    else if (added >= 0 && glm_tok_is_added(sc->src, added))
        r = allow_added ? added : -1;
    else if (vocab >= 0)
        r = glm_tok_is_added(sc->src, vocab) ? -1 : vocab;
    else
        r = NEW_TOKEN;
    free(bl);
    return r;
}

/* Marks s[0..n) used and returns its id, making a new entry for NEW_TOKEN. */
static int32_t claim(script *sc, const char *s, size_t n, int32_t id)
{
    char *bl = bytelevel(s, n);
    if (id == NEW_TOKEN) {
        id = sc->first_new + sc->n_new;
        sc->new_text = glm_realloc(sc->new_text, sizeof(char *) * (size_t)(sc->n_new + 1));
        char *t = glm_malloc(n + 1);
        memcpy(t, s, n);
        t[n] = '\0';
        sc->new_text[sc->n_new++] = t;
        json_object_set_new(sc->new_vocab, bl, json_integer(id));
    }
    json_object_set_new(sc->used, bl, json_true());
    free(bl);
    return id;
}

/* Piece [a, b) of text is available as an ordinary token and differs from the
 * pieces already chosen (cut[0..k) of the same text). */
static int piece_ok(const script *sc, const char *text, size_t a, size_t b, const size_t *cut, int k)
{
    size_t prev = 0;
    for (int i = 0; i < k; i++) {
        if (cut[i] - prev == b - a && memcmp(text + prev, text + a, b - a) == 0)
            return 0;
        prev = cut[i];
    }
    return available(sc, text + a, b - a, 0) != -1;
}

/* Cuts text[start..n) into `left` pieces of at least min_chars characters,
 * writing their end offsets into cut[k..k+left). Leftmost cut points first. */
static int split_from(const script *sc, const char *text, size_t n, size_t start, int left,
                      size_t min_chars, size_t *cut, int k)
{
    if (left == 1) {
        if (n_chars(text + start, n - start) < min_chars || !piece_ok(sc, text, start, n, cut, k))
            return 0;
        cut[k] = n;
        return 1;
    }
    for (size_t end = start + 1; end < n; end++) {
        if (!char_start(text, end) || n_chars(text + start, end - start) < min_chars)
            continue;
        if (n_chars(text + end, n - end) < min_chars * (size_t)(left - 1))
            break;
        if (!piece_ok(sc, text, start, end, cut, k))
            continue;
        cut[k] = end;
        if (split_from(sc, text, n, end, left - 1, min_chars, cut, k + 1))
            return 1;
    }
    return 0;
}

/* Spells text[0..n) as k = 2..MAX_PIECES unused ordinary tokens, pieces of
 * two characters or more first; 0 if it cannot be done. */
static int resolve_split(script *sc, slot *s, const char *text, size_t n)
{
    for (size_t min_chars = 2; min_chars >= 1; min_chars--)
        for (int k = 2; k <= MAX_PIECES; k++)
            if (split_from(sc, text, n, 0, k, min_chars, s->cut, 0)) {
                size_t prev = 0;
                for (int i = 0; i < k; i++) {
                    const char *p = text + prev;
                    size_t len = s->cut[i] - prev;
                    s->ids[i] = claim(sc, p, len, available(sc, p, len, 0));
                    prev = s->cut[i];
                }
                s->n = k;
                return 1;
            }
    return 0;
}

/* Resolves slot j of c (not the last): its text as one unused token (an
 * added token too), else in pieces, else joined with the next texts. */
static void resolve_slot(script *sc, chain *c, int j)
{
    slot *s = &c->slots[j];
    size_t n = strlen(s->text);
    int32_t id = available(sc, s->text, n, 1);
    if (id != -1) {
        s->n = 1;
        s->ids[0] = claim(sc, s->text, n, id);
        s->cut[0] = n;
        return;
    }
    const char *text = s->text;
    for (int next = j + 1;; next++) {
        if (resolve_split(sc, s, text, strlen(text)))
            return;
        if (next >= c->n_slots - 1)
            mk_die("chain \"%s\": \"%s\" is used before and cannot be spelled in unused pieces", c->name,
                   text);
        /* join the next text: the two together are a new string */
        size_t a = strlen(text), b = strlen(c->slots[next].text);
        char *t = glm_malloc(a + b + 1);
        memcpy(t, text, a);
        memcpy(t + a, c->slots[next].text, b + 1);
        free(s->joined);
        s->joined = t;
        text = t;
        c->slots[next].merged = 1;
        id = available(sc, text, a + b, 0);
        if (id != -1) {
            s->n = 1;
            s->ids[0] = claim(sc, text, a + b, id);
            s->cut[0] = a + b;
            return;
        }
    }
}

static int is_eos(const script *sc, int32_t id)
{
    return id == sc->eos[0] || id == sc->eos[1] || id == sc->eos[2];
}

static int anchor_index(const script *sc, int32_t id)
{
    for (int i = 0; i < sc->n_anchors; i++)
        if (sc->anchors[i] == id)
            return i;
    return -1;
}

/* The id of a single existing token spelled `text` (an added token's content
 * or a vocabulary entry), or -1. */
static int32_t existing_token(const script *sc, const char *text)
{
    int32_t id = glm_tok_token_to_id(sc->src, text, strlen(text));
    if (id >= 0 && glm_tok_is_added(sc->src, id))
        return id;
    char *bl = bytelevel(text, strlen(text));
    id = glm_tok_token_to_id(sc->src, bl, strlen(bl));
    free(bl);
    return id;
}

static void mark_used(script *sc, int32_t id)
{
    size_t n;
    const char *b = glm_tok_token_bytes(sc->src, id, &n);
    char *bl = bytelevel(b, n);
    json_object_set_new(sc->used, bl, json_true());
    free(bl);
}

/* ------------------------------------------------------------------------ */
/* Reading the chains                                                        */

static void read_chains(script *sc, const char *path, json_t *root)
{
    const json_t *arr = json_object_get(root, "chains");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        mk_die("%s: \"chains\" must be a non-empty array", path);
    sc->n_ch = (int)json_array_size(arr);
    sc->ch = glm_calloc((size_t)sc->n_ch, sizeof(chain));
    sc->anchors = glm_calloc((size_t)sc->n_ch, sizeof(int32_t));
    for (int i = 0; i < sc->n_ch; i++) {
        const json_t *o = json_array_get(arr, (size_t)i);
        chain *c = &sc->ch[i];
        const json_t *name = json_object_get(o, "name"), *anchor = json_object_get(o, "anchor");
        const json_t *def = json_object_get(o, "default"), *toks = json_object_get(o, "tokens");
        if (!json_is_object(o) || !json_is_string(name) || !json_string_value(name)[0])
            mk_die("%s: chains[%d] needs a non-empty \"name\"", path, i);
        c->name = json_string_value(name);
        for (int j = 0; j < i; j++)
            if (strcmp(sc->ch[j].name, c->name) == 0)
                mk_die("%s: two chains are named \"%s\"", path, c->name);
        if (!json_is_string(anchor))
            mk_die("%s: chain \"%s\": \"anchor\" must be a token text", path, c->name);
        if (def && !json_is_boolean(def))
            mk_die("%s: chain \"%s\": \"default\" must be true or false", path, c->name);
        c->is_default = json_is_true(def);
        c->anchor = json_string_value(anchor);
        c->anchor_id = existing_token(sc, c->anchor);
        if (c->anchor_id < 0)
            mk_die("%s: chain \"%s\": anchor \"%s\" is not one token of the tokenizer", path, c->name,
                   c->anchor);
        if (is_eos(sc, c->anchor_id))
            mk_die("%s: chain \"%s\": anchor \"%s\" is an eos token", path, c->name, c->anchor);
        if (anchor_index(sc, c->anchor_id) < 0)
            sc->anchors[sc->n_anchors++] = c->anchor_id;
        if (!json_is_array(toks) || json_array_size(toks) < 2)
            mk_die("%s: chain \"%s\": \"tokens\" must be an array of two texts or more", path, c->name);
        c->n_slots = (int)json_array_size(toks);
        c->slots = glm_calloc((size_t)c->n_slots, sizeof(slot));
        for (int j = 0; j < c->n_slots; j++) {
            const json_t *t = json_array_get(toks, (size_t)j);
            if (!json_is_string(t) || json_string_length(t) == 0 ||
                strlen(json_string_value(t)) != json_string_length(t))
                mk_die("%s: chain \"%s\": tokens[%d] must be a non-empty string without NUL", path,
                       c->name, j);
            c->slots[j].text = json_string_value(t);
        }
    }
    for (int a = 0; a < sc->n_anchors; a++) {
        int n_def = 0;
        for (int i = 0; i < sc->n_ch; i++)
            n_def += sc->ch[i].anchor_id == sc->anchors[a] && sc->ch[i].is_default;
        if (n_def != 1)
            mk_die("%s: anchor id %d has %d default chains (needs exactly one)", path,
                   (int)sc->anchors[a], n_def);
    }
}

static int default_chain(const script *sc, int32_t anchor_id)
{
    for (int i = 0; i < sc->n_ch; i++)
        if (sc->ch[i].anchor_id == anchor_id && sc->ch[i].is_default)
            return i;
    GLM_ASSERT(!"every anchor has a default chain");
    return -1;
}

/* Resolves every text to tokens and flattens each chain. */
static void resolve_chains(script *sc, const char *path)
{
    for (int a = 0; a < sc->n_anchors; a++)
        mark_used(sc, sc->anchors[a]);
    for (int e = 0; e < 3; e++)
        mark_used(sc, sc->eos[e]);

    for (int i = 0; i < sc->n_ch; i++) {
        chain *c = &sc->ch[i];
        for (int j = 0; j < c->n_slots; j++) {
            slot *s = &c->slots[j];
            size_t n = strlen(s->text);
            if (j == c->n_slots - 1) {
                int32_t id = existing_token(sc, s->text);
                if (id < 0 || (!is_eos(sc, id) && anchor_index(sc, id) < 0))
                    mk_die("%s: chain \"%s\" ends with \"%s\", which is neither an eos token "
                           "(<|endoftext|>, <|user|>, <|observation|>) nor an anchor",
                           path, c->name, s->text);
                c->end_anchor = !is_eos(sc, id);
                s->n = 1;
                s->ids[0] = id;
                s->cut[0] = n;
                continue;
            }
            if (s->merged)
                continue;
            resolve_slot(sc, c, j);
        }
    }

    for (int i = 0; i < sc->n_ch; i++) {
        chain *c = &sc->ch[i];
        c->ids = glm_malloc(sizeof(int32_t) * (size_t)c->n_slots * MAX_PIECES);
        for (int j = 0; j < c->n_slots; j++)
            for (int k = 0; k < c->slots[j].n; k++)
                c->ids[c->n_ids++] = c->slots[j].ids[k];
    }
    /* a chain that ends in an anchor goes on with that anchor's default chain:
     * those continuations must end */
    for (int i = 0; i < sc->n_ch; i++) {
        int c = i;
        for (int steps = 0; sc->ch[c].end_anchor; steps++) {
            if (steps > sc->n_ch)
                mk_die("%s: chain \"%s\" never ends: its continuations loop", path, sc->ch[i].name);
            c = default_chain(sc, sc->ch[c].ids[sc->ch[c].n_ids - 1]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Directions, prior, weights                                                */

static void assign_dirs(script *sc)
{
    sc->dir = glm_malloc(sizeof(int) * (size_t)sc->V);
    for (int v = 0; v < sc->V; v++)
        sc->dir[v] = DIR_OTHER;
    int d = 2;
    for (int a = 0; a < sc->n_anchors; a++)
        sc->dir[sc->anchors[a]] = d++;
    for (int i = 0; i < sc->n_ch; i++)
        for (int k = 0; k + 1 < sc->ch[i].n_ids; k++) {
            int32_t id = sc->ch[i].ids[k];
            GLM_ASSERT(sc->dir[id] == DIR_OTHER); /* every token with a successor is used once */
            sc->dir[id] = d++;
        }
    sc->n_dirs = d;
    sc->H = MIN_HIDDEN;
    while (sc->H < d)
        sc->H *= 2;
}

/* Raw text of id (source tokenizer or a new entry), NULL if unassigned. */
static const char *token_text(const script *sc, int32_t id, size_t *n)
{
    if (id >= sc->first_new && id < sc->first_new + sc->n_new) {
        *n = strlen(sc->new_text[id - sc->first_new]);
        return sc->new_text[id - sc->first_new];
    }
    return id < sc->first_new ? glm_tok_token_bytes(sc->src, id, n) : NULL;
}

static void compute_prior(script *sc)
{
    sc->prior = glm_calloc((size_t)sc->V, sizeof(double));
    for (int32_t v = 0; v < sc->V_tok; v++) {
        size_t n;
        const char *t = token_text(sc, v, &n);
        if (!t)
            continue;
        double p = PRIOR_PER_BYTE * (double)GLM_MIN(n, (size_t)PRIOR_MAX_BYTES);
        for (size_t k = 0; k < sizeof PRIOR_TIERS / sizeof PRIOR_TIERS[0]; k++)
            if (strlen(PRIOR_TIERS[k].text) == n && memcmp(PRIOR_TIERS[k].text, t, n) == 0)
                p = PRIOR_TIERS[k].prior;
        sc->prior[v] = p;
    }
}

/* lm_head value that contributes `logit` through one direction of a
 * normalised embedding e_P + e_dir (RMSNorm divides by sqrt(2/H + eps)). */
static float head_value(const script *sc, double logit)
{
    return (float)(logit * sqrt(2.0 / sc->H + RMS_NORM_EPS));
}

static void set_head(const script *sc, float *w, int32_t to, int dir, double logit)
{
    float *x = &w[(size_t)to * (size_t)sc->H + (size_t)dir];
    GLM_ASSERT(*x == 0.0f);
    *x = head_value(sc, logit);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

static void fill_tensor(void *ctx, const char *name, float *w, size_t n)
{
    const script *sc = ctx;
    const size_t H = (size_t)sc->H;
    if (ends_with(name, ".eh_proj.weight")) { /* [H, 2H]: the embedding half passes through */
        GLM_ASSERT(n == H * 2 * H);
        memset(w, 0, n * sizeof(float));
        for (size_t i = 0; i < H; i++)
            w[i * 2 * H + i] = 1.0f;
        return;
    }
    GLM_ASSERT(n == (size_t)sc->V * H);
    memset(w, 0, n * sizeof(float));
    /* the MTP layer's copies of the embedding and the head hold the same values */
    if (strcmp(name, "model.embed_tokens.weight") == 0 || ends_with(name, ".embed_tokens.weight")) {
        for (int v = 0; v < sc->V; v++) {
            w[(size_t)v * H + DIR_PRIOR] = 1.0f;
            w[(size_t)v * H + (size_t)sc->dir[v]] = 1.0f;
        }
        return;
    }
    if (strcmp(name, "lm_head.weight") != 0 && !ends_with(name, ".shared_head.head.weight"))
        mk_die("--preset script: no values for tensor %s", name);
    for (int v = 0; v < sc->V; v++)
        w[(size_t)v * H + DIR_PRIOR] = head_value(sc, sc->prior[v]);
    set_head(sc, w, sc->eos[0], DIR_OTHER, LOGIT_CHAIN);
    for (int i = 0; i < sc->n_ch; i++) {
        const chain *c = &sc->ch[i];
        set_head(sc, w, c->ids[0], sc->dir[c->anchor_id], c->is_default ? LOGIT_CHAIN : LOGIT_ENTRY);
        for (int k = 0; k + 1 < c->n_ids; k++)
            set_head(sc, w, c->ids[k + 1], sc->dir[c->ids[k]], LOGIT_CHAIN);
    }
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* The source tokenizer.json with the new entries added to model.vocab. */
static void write_tokenizer(const script *sc, const char *tok_path, const char *out)
{
    json_error_t je;
    json_t *root = json_load_file(tok_path, 0, &je);
    if (!root)
        mk_die("%s: line %d: %s", tok_path, je.line, je.text);
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    if (!json_is_object(vocab))
        mk_die("%s: no model.vocab object", tok_path);
    const char *key;
    json_t *id;
    json_object_foreach(sc->new_vocab, key, id) {
        GLM_ASSERT(!json_object_get(vocab, key));
        json_object_set(vocab, key, id);
    }
    mk_write_json(out, "tokenizer.json", root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
}

/* Loads the written tokenizer.json and checks that every chain decodes to the
 * concatenation of its texts, token by token. */
static void verify_tokenizer(const script *sc, const char *out)
{
    char path[MK_PATH_LEN], err[GLM_ERRLEN];
    mk_path_join(path, out, "tokenizer.json");
    glm_tok *t;
    if (glm_tok_load(path, &t, err, sizeof err) != GLM_OK)
        mk_die("the written tokenizer does not load: %s", err);
    if (glm_tok_vocab_size(t) != sc->V_tok)
        mk_die("%s: %d ids, expected %d", path, (int)glm_tok_vocab_size(t), sc->V_tok);
    for (int i = 0; i < sc->n_ch; i++) {
        const chain *c = &sc->ch[i];
        size_t want_len = 0, len;
        for (int j = 0; j < c->n_slots; j++)
            want_len += strlen(c->slots[j].text);
        char *want = glm_malloc(want_len + 1), *w = want;
        for (int j = 0; j < c->n_slots; j++)
            w = stpcpy(w, c->slots[j].text);
        char *got = glm_tok_decode(t, c->ids, (size_t)c->n_ids, 0, &len);
        if (len != want_len || memcmp(got, want, len) != 0)
            mk_die("chain \"%s\" decodes to \"%s\", not \"%s\"", c->name, got, want);
        free(got);
        free(want);
        for (int k = 0; k < c->n_ids; k++) {
            size_t n1, n2;
            const char *b1 = glm_tok_token_bytes(t, c->ids[k], &n1);
            const char *b2 = token_text(sc, c->ids[k], &n2);
            GLM_ASSERT(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
        }
    }
    glm_tok_free(t);
}

static json_t *token_string(const script *sc, int32_t id)
{
    size_t n;
    const char *t = token_text(sc, id, &n);
    return json_stringn(t, n);
}

static void write_script_json(const script *sc, const char *script_path, const char *out)
{
    json_t *r = json_object();
    json_object_set_new(r, "comment",
                        json_string("Written by glm-mkmodel --preset script (tests/models/mkscript.c). "
                                    "Greedy decoding from an anchor follows its default chain; "
                                    "logit_bias {entry_id: 100} selects another chain on the anchor."));
    json_object_set_new(r, "source", json_string(script_path));
    json_object_set_new(r, "hidden_size", json_integer(sc->H));
    json_object_set_new(r, "vocab_size", json_integer(sc->V));
    json_object_set_new(r, "tokenizer_vocab_size", json_integer(sc->V_tok));
    json_object_set_new(r, "new_tokens", json_integer(sc->n_new));
    json_object_set_new(r, "logit_chain", json_real(LOGIT_CHAIN));
    json_object_set_new(r, "logit_entry", json_real(LOGIT_ENTRY));
    json_t *eos = json_array();
    for (int e = 0; e < 3; e++)
        json_array_append_new(eos, json_integer(sc->eos[e]));
    json_object_set_new(r, "eos_token_ids", eos);
    json_object_set_new(r, "other_successor_id", json_integer(sc->eos[0]));
    json_t *tiers = json_array();
    for (size_t k = 0; k < sizeof PRIOR_TIERS / sizeof PRIOR_TIERS[0]; k++) {
        json_t *o = json_object();
        json_object_set_new(o, "text", json_string(PRIOR_TIERS[k].text));
        json_object_set_new(o, "prior", json_real(PRIOR_TIERS[k].prior));
        json_array_append_new(tiers, o);
    }
    json_object_set_new(r, "prior_tiers", tiers);
    json_object_set_new(r, "prior_per_byte", json_real(PRIOR_PER_BYTE));
    json_object_set_new(r, "prior_max_bytes", json_integer(PRIOR_MAX_BYTES));

    json_t *anchors = json_object();
    for (int a = 0; a < sc->n_anchors; a++) {
        json_t *o = json_object(), *entries = json_array();
        const char *text = NULL;
        for (int i = 0; i < sc->n_ch; i++) {
            const chain *c = &sc->ch[i];
            if (c->anchor_id != sc->anchors[a])
                continue;
            text = c->anchor;
            if (c->is_default)
                json_object_set_new(o, "default", json_string(c->name));
            else
                json_array_append_new(entries, json_string(c->name));
        }
        json_object_set_new(o, "id", json_integer(sc->anchors[a]));
        json_object_set_new(o, "entries", entries);
        json_object_set_new(anchors, text, o);
    }
    json_object_set_new(r, "anchors", anchors);

    json_t *chains = json_object();
    for (int i = 0; i < sc->n_ch; i++) {
        const chain *c = &sc->ch[i];
        json_t *o = json_object(), *ids = json_array(), *toks = json_array();
        size_t text_len = 0;
        for (int k = 0; k < c->n_ids; k++) {
            size_t n;
            token_text(sc, c->ids[k], &n);
            text_len += n;
        }
        char *text = glm_malloc(text_len + 1), *w = text;
        for (int k = 0; k < c->n_ids; k++) {
            size_t n;
            const char *t = token_text(sc, c->ids[k], &n);
            memcpy(w, t, n);
            w += n;
            json_array_append_new(ids, json_integer(c->ids[k]));
            json_array_append_new(toks, token_string(sc, c->ids[k]));
        }
        *w = '\0';
        json_object_set_new(o, "anchor", json_string(c->anchor));
        json_object_set_new(o, "anchor_id", json_integer(c->anchor_id));
        json_object_set_new(o, "default", json_boolean(c->is_default));
        json_object_set_new(o, "entry_id", json_integer(c->ids[0]));
        json_object_set_new(o, "ids", ids);
        json_object_set_new(o, "tokens", toks);
        json_object_set_new(o, "text", json_stringn(text, text_len));
        int32_t last = c->ids[c->n_ids - 1];
        json_object_set_new(o, "end", json_string(c->end_anchor ? "anchor" : "eos"));
        json_object_set_new(o, "continues",
                            c->end_anchor ? json_string(sc->ch[default_chain(sc, last)].name) : json_null());
        json_object_set_new(chains, c->name, o);
        free(text);
    }
    json_object_set_new(r, "chains", chains);
    mk_write_json(out, "script.json", r, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(r);
}

/* ------------------------------------------------------------------------ */

void mk_script_build(const char *script_path, const char *tok_dir, const char *out,
                     mk_store_mode mode, int shards, int layers)
{
    bytelevel_init();
    char tok_path[MK_PATH_LEN], err[GLM_ERRLEN];
    mk_path_join(tok_path, tok_dir, "tokenizer.json");
    glm_tok *src;
    if (glm_tok_load(tok_path, &src, err, sizeof err) != GLM_OK)
        mk_die("%s", err);

    script sc = {.src = src, .used = json_object(), .new_vocab = json_object()};
    sc.first_new = glm_tok_vocab_size(src);
    for (int e = 0; e < 3; e++) {
        sc.eos[e] = glm_tok_token_to_id(src, EOS_TEXT[e], strlen(EOS_TEXT[e]));
        if (sc.eos[e] < 0 || !glm_tok_is_added(src, sc.eos[e]))
            mk_die("%s: no added token %s", tok_path, EOS_TEXT[e]);
    }

    json_error_t je;
    json_t *root = json_load_file(script_path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        mk_die("%s: line %d: %s", script_path, je.line, je.text);
    if (!json_is_object(root))
        mk_die("%s: expected a JSON object", script_path);
    read_chains(&sc, script_path, root);
    resolve_chains(&sc, script_path);

    sc.V_tok = sc.first_new + sc.n_new;
    sc.V = (sc.V_tok + VOCAB_ALIGN - 1) / VOCAB_ALIGN * VOCAB_ALIGN;
    assign_dirs(&sc);
    compute_prior(&sc);

    int L = layers > 1 ? layers : 1;
    char types[1001];
    if (L > 1000)
        mk_die("--layers %d: at most 1000", L);
    memset(types, 'F', (size_t)L);
    types[L] = '\0';
    const mk_preset p = {
        .name = "script", .seed = 0x5c219e7ed0000003ull,
        .vocab_size = sc.V, .hidden_size = sc.H, .intermediate_size = L > 1 ? 2048 : 32,
        .moe_intermediate_size = 16, .num_hidden_layers = L, .first_k_dense_replace = L,
        .num_attention_heads = 2, .q_lora_rank = 32, .kv_lora_rank = 32,
        .qk_nope_head_dim = 16, .qk_rope_head_dim = 16, .v_head_dim = 16,
        .n_routed_experts = 2, .n_shared_experts = 1, .num_experts_per_tok = 1,
        .n_group = 1, .topk_group = 1, .norm_topk_prob = 1, .routed_scaling_factor = 1.0,
        .index_topk = 16, .index_n_heads = 2, .index_head_dim = 32,
        .indexer_types = types, .max_position_embeddings = 4096, .rope_theta = 10000.0,
        .nextn = 1, .scripted = 1,
    };

    mk_prepare_dir(out);
    write_tokenizer(&sc, tok_path, out);
    verify_tokenizer(&sc, out);
    write_script_json(&sc, script_path, out);
    mk_write_checkpoint(out, &p, mode, shards, sc.eos, fill_tensor, &sc);
    printf("glm-mkmodel: %d chains on %d anchors, %d new tokens, %d of %d directions used\n", sc.n_ch,
           sc.n_anchors, sc.n_new, sc.n_dirs, sc.H);

    for (int i = 0; i < sc.n_ch; i++) {
        for (int j = 0; j < sc.ch[i].n_slots; j++)
            free(sc.ch[i].slots[j].joined);
        free(sc.ch[i].slots);
        free(sc.ch[i].ids);
    }
    for (int i = 0; i < sc.n_new; i++)
        free(sc.new_text[i]);
    free(sc.new_text);
    free(sc.ch);
    free(sc.anchors);
    free(sc.dir);
    free(sc.prior);
    json_decref(sc.used);
    json_decref(sc.new_vocab);
    json_decref(root);
    glm_tok_free(src);
}
