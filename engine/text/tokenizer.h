/*
 * tokenizer.h - a Hugging Face `tokenizer.json` byte-level BPE tokenizer
 * (GLM-5, GPT-2, Llama 3, Qwen 2 style): text in, token ids out, and back.
 *
 * What it implements, and to which reference: `tokenizers` (the Rust library
 * behind transformers' fast tokenizers), `Tokenizer.encode(text,
 * add_special_tokens=False)` and `Tokenizer.decode(ids, skip_special_tokens)`,
 * id for id and byte for byte, for files of this shape:
 *   - model: "BPE" over GPT-2's byte-level alphabet; vocab {token: id};
 *     merges as "a b" strings or [a, b] pairs; unk_token, fuse_unk,
 *     byte_fallback, ignore_merges, continuing_subword_prefix,
 *     end_of_word_suffix honoured; dropout must be null or 0.
 *   - normalizer: null or absent.
 *   - pre_tokenizer: ByteLevel, or a Sequence of Split steps (a "Regex" or
 *     "String" pattern, any behavior, invert) ending with ByteLevel
 *     (add_prefix_space and use_regex honoured).
 *   - decoder: ByteLevel.
 *   - added_tokens: matched in the text before pre-tokenization, leftmost-
 *     longest, tokens with normalized=false first, then the others, with
 *     lstrip / rstrip / single_word as `tokenizers` applies them.
 *   - post_processor, truncation and padding are ignored: encode never adds
 *     tokens the text does not contain (chat templates write [gMASK]<sop>).
 * Anything else is refused at load with one line naming the file.
 *
 * Split regexes are written for Oniguruma (what `tokenizers` runs) and are
 * compiled with PCRE2 (UTF + UCP, JIT when available; GLM_PCRE2_JIT=0 in the
 * environment at load turns the JIT off, e.g. for valgrind). The two differ in
 * what \s, \S, \w, \W and \h mean; those escapes are rewritten to the
 * Oniguruma meaning (\s = Unicode White_Space, so U+180E is not a space; \w =
 * Oniguruma's Word). They also differ in Unicode version: `tokenizers` 0.23
 * knows Unicode 16.0, Debian 12's PCRE2 10.42 Unicode 14.0. The general
 * categories (\p{L}, \p{N}, \p{Lu}, ..., also inside classes and negated)
 * and \w are written as the reference has them, from a table generated from
 * `tokenizers` (uniclass.h), so letters and digits of Unicode 15 and 16 (Kawi,
 * Nag Mundari, CJK Extensions H and I, Garay, ...) split as they do there. A
 * text holding none of the code points whose category changed since Unicode
 * 14 is matched with PCRE2's own properties (same result, full speed); one
 * holding any, with the table's classes (about a fifth slower). Other
 * properties (scripts, \p{Alphabetic}) keep PCRE2's Unicode.
 *
 * Usage:
 *   glm_tok *t;
 *   if (glm_tok_load("dir/tokenizer.json", &t, err, sizeof err) != GLM_OK) ...
 *   glm_tok_encode(t, prompt, strlen(prompt), 1, &ids, &n, err, sizeof err);
 *   glm_detok *d = glm_detok_new(t, 1);      per response stream
 *   s = glm_detok_push(d, id, &len);         per generated id; send s
 *   s = glm_detok_flush(d, &len);            at the end; send s
 *
 * Thread safety: a loaded glm_tok is read-only except for its BPE word cache,
 * which is sharded and locked; any number of threads may encode and decode
 * on one tokenizer at once. A glm_detok belongs to one stream (one thread at
 * a time).
 */
#ifndef GLM_TOKENIZER_H
#define GLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct glm_tok glm_tok;

/* Ids are below this bound (vocabularies are far smaller; it keeps a bad file
 * from sizing tables). */
#define GLM_TOK_MAX_ID (1 << 24)

/* Longest text encode accepts, in bytes, and longest single pre-tokenized
 * word (e.g. one run of letters, punctuation or whitespace; BPE work and
 * memory grow as n log n and up to 64 n in it, so a word is refused past
 * 1 MiB: 64 MiB of working memory at most, where `tokenizers` has no limit.
 * A million letters, marks or spaces without a break is not text; at 2 to 4
 * bytes a token it is also past any model's context). */
#define GLM_TOK_MAX_TEXT ((size_t)1 << 31)
#define GLM_TOK_MAX_WORD ((size_t)1 << 20)

/*
 * Loads `path` (a tokenizer.json). Returns GLM_OK and sets *out, or GLM_ERR
 * with one line naming the file in err: unreadable, not valid JSON (with line
 * and column), a model other than BPE, an unsupported normalizer /
 * pre-tokenizer / decoder, a Split regex that does not compile, an id out of
 * [0, GLM_TOK_MAX_ID), two tokens with one id, a merge naming a token the
 * vocabulary lacks, or an added token whose id is not the one `tokenizers`
 * would give it (the vocabulary id of its content, else the next free id
 * after the vocabulary, in file order). Files of up to 1 GiB; a vocabulary
 * key holding U+0000 is refused (jansson cannot read one). A 155k-token
 * file loads in about 0.4 s. The error text is valid UTF-8 with
 * control characters escaped, so it can go into a JSON response as it is.
 */
int glm_tok_load(const char *path, glm_tok **out, char *err, size_t errlen);

/* Same from a buffer holding the file's bytes; `name` is used in messages. */
int glm_tok_load_buffer(const char *json, size_t len, const char *name, glm_tok **out,
                        char *err, size_t errlen);

/* Frees the tokenizer (NULL is fine). No encode, decode or glm_detok on it
 * may be running or alive. */
void glm_tok_free(glm_tok *t);

/*
 * Encodes `len` bytes of UTF-8 text (NUL bytes allowed) into *ids (malloc'd,
 * caller frees with free(); *n_ids of them; never NULL on success, even for
 * empty text). With parse_special, added tokens marked special in the file
 * are recognised in the text (`tokenizers`' default); without it they are
 * encoded as plain text (`encode_special_tokens = True`, transformers'
 * `split_special_tokens=True`). Added tokens not marked special are always
 * recognised, as in `tokenizers`.
 * Returns GLM_ERR (one line in err, *ids NULL) when the text is not valid
 * UTF-8 (it names the byte offset), is longer than GLM_TOK_MAX_TEXT, holds a
 * word longer than GLM_TOK_MAX_WORD, a regex hits PCRE2's resource limits
 * (set linear in the piece length), or the file's unk_token is needed but
 * missing from the vocabulary.
 * Cost: O(n log w) for n bytes with words of w bytes (about 50 MB/s on
 * mixed text; 1 MB that is a single word or whitespace run, about 0.25 s).
 */
int glm_tok_encode(const glm_tok *t, const char *text, size_t len, int parse_special,
                   int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/* glm_tok_encode keeping at most max_ids ids (0: all): *n_ids still counts
 * every id, and *ids holds the first min(*n_ids, max_ids). A caller that
 * refuses texts past a length (a prompt past the context) learns how long
 * the text is without holding 4 bytes a token of it. */
int glm_tok_encode_max(const glm_tok *t, const char *text, size_t len, int parse_special, size_t max_ids,
                       int32_t **ids, size_t *n_ids, char *err, size_t errlen);

/*
 * Decodes ids into text: the bytes of every token in order, then invalid
 * UTF-8 replaced with U+FFFD per maximal invalid subsequence (Rust's
 * String::from_utf8_lossy, Python's bytes.decode(errors="replace")). With
 * skip_special, tokens marked special are left out. Ids that are negative,
 * past the vocabulary or unassigned are skipped (as `tokenizers` does).
 * Returns a malloc'd, NUL-terminated string (caller frees) and its length in
 * *len (the text may itself contain NUL bytes); never NULL.
 */
char *glm_tok_decode(const glm_tok *t, const int32_t *ids, size_t n, int skip_special, size_t *len);

/* One more than the largest id (model vocabulary and added tokens); some ids
 * below it may be unassigned. */
int32_t glm_tok_vocab_size(const glm_tok *t);

/* The id of a token given as it is spelled in tokenizer.json (byte-level
 * characters, e.g. "Ġhello", or an added token's content such as
 * "<|user|>"); -1 when there is none. */
int32_t glm_tok_token_to_id(const glm_tok *t, const char *token, size_t len);

/* The spelling of id in tokenizer.json (NUL-terminated, *len bytes; len may
 * be NULL), valid until glm_tok_free; NULL for an unassigned id. */
const char *glm_tok_id_to_token(const glm_tok *t, int32_t id, size_t *len);

/* The raw bytes id decodes to (before UTF-8 repair; possibly an incomplete
 * character), valid until glm_tok_free; NULL for an unassigned id. This is
 * what stop-string matching on a stream of ids should look at. */
const char *glm_tok_token_bytes(const glm_tok *t, int32_t id, size_t *len);

/* 1 when id is an added token marked special in the file, else 0. */
int glm_tok_is_special(const glm_tok *t, int32_t id);

/* 1 when id is an added token (special or not), else 0. */
int glm_tok_is_added(const glm_tok *t, int32_t id);

/*
 * Incremental detokenizer: one per output stream. Feed ids one at a time; each
 * call returns only complete UTF-8 (a character split across tokens comes out
 * whole, with the token that completes it), and an invalid byte sequence comes
 * out as U+FFFD as soon as it is certain to be invalid. Concatenating every
 * piece and the final flush gives exactly glm_tok_decode of all the ids with
 * the same skip_special. Holds at most 3 pending bytes.
 */
typedef struct glm_detok glm_detok;

/* A new stream on t (which must outlive it). Never NULL. */
glm_detok *glm_detok_new(const glm_tok *t, int skip_special);
void glm_detok_free(glm_detok *d);

/* Special tokens to decode even with skip_special (e.g. the reasoning and
 * tool-call tags an output parser must see); ids < 0 are ignored, at most
 * GLM_DETOK_MAX_KEEP. Replaces an earlier list. */
#define GLM_DETOK_MAX_KEEP 16
void glm_detok_keep(glm_detok *d, const int32_t *ids, int n);

/* Feeds one id; returns the text it completes (*len bytes, NUL-terminated,
 * possibly empty), valid until the next call on d. */
const char *glm_detok_push(glm_detok *d, int32_t id, size_t *len);

/* Ends the stream: returns U+FFFD if an incomplete character is pending, else
 * "". d is then ready for a new stream. */
const char *glm_detok_flush(glm_detok *d, size_t *len);

/* The pending bytes of an incomplete character (0..3), for callers that want
 * to know whether the stream is at a character boundary. */
int glm_detok_pending(const glm_detok *d);

#endif
