/*
 * constraint.h - the logits processor that shapes a GLM-5 answer: a reasoning
 * token budget, then an optional grammar for the text after the reasoning
 * (tool calls for tool_choice "required" or a named function, JSON for
 * response_format).
 *
 * Per sample it follows two phases:
 *   reasoning  while the output is inside <think> (the prompt ended in
 *              <think>): unconstrained, except that end-of-sequence tokens
 *              are forbidden when a grammar waits after the reasoning, and
 *              that the reasoning takes at most max(budget, 1) tokens, its
 *              closing </think> included (then only the </think> token may
 *              come; vLLM's thinking_token_budget, OpenRouter's
 *              reasoning.max_tokens; the count is what the server reports
 *              as reasoning_tokens). The reasoning ends at the bytes of
 *              </think>, whichever tokens spell them.
 *   answer     the grammar, if any, decides: a token is allowed when the
 *              grammar accepts its bytes, an end-of-sequence token when the
 *              grammar's sentence is complete (and only those once nothing
 *              else can follow). Bytes after </think> in the same token
 *              count as the answer's first bytes.
 * Two small rules ride along: a token that may never come (`forbid`), and a
 * text after which the answer must end (`end_after`).
 */
#ifndef GLM_CONSTRAINT_H
#define GLM_CONSTRAINT_H

/* A grammar step (a mask, or accepting a token) whose work passes this many
 * units (glm_grammar_matcher_mask_cost) is costly; a sample with more than
 * GLM_CONSTRAINT_MAX_COSTLY costly steps ends with an error, so that one
 * grammar cannot stall the engine thread that every request shares. Work,
 * not time, so the same request gets the same answer on every machine and
 * under any load. A unit is 4-7 ns on the development machine, so the limit
 * is about 50-70 ms there; masks over a 154,880-token vocabulary take about
 * 0.5 M units (JSON, schemas, tool calls), 1.3 M with 16,000 alternatives at
 * the start (docs/performance.md). */
#define GLM_CONSTRAINT_COSTLY_STEP 10000000
#define GLM_CONSTRAINT_MAX_COSTLY 2

/* End-of-sequence ids a processor knows at most (generation_config lists 3). */
#define GLM_CONSTRAINT_MAX_EOS 8

#include <stdint.h>

#include "constrain/grammar.h"
#include "backend/sampler.h"
#include "text/tokenizer.h"

typedef struct {
    const glm_tok *tok;          /* token bytes (glm_tok_token_bytes); must outlive the request */
    int think_open;              /* the output starts inside the reasoning */
    const char *think_end;       /* "</think>" */
    int32_t think_end_id;        /* the token forced when the budget is spent */
    int budget;                  /* reasoning tokens at most; < 0: no budget */
    glm_grammar *grammar;        /* the answer's grammar or NULL; the processor takes it over */
    const glm_token_trie *trie;  /* the vocabulary the grammar masks (needed with a grammar);
                                    must outlive the request */
    const int32_t *eos_ids;      /* [n_eos], copied */
    int n_eos;
    const char *think_end_alt;   /* another text that ends the reasoning and begins the answer
                                    ("<tool_call>" when tool calls are constrained: the output
                                    parser ends the reasoning there too), or NULL */
    int32_t forbid;              /* a token never allowed (tool_choice "none": <tool_call>), or -1 */
    const char *end_after;       /* in the answer, once these bytes were generated only an
                                    end-of-sequence token may follow (one tool call when
                                    parallel_tool_calls is false: "</tool_call>"); NULL: none */
} glm_constraint_params;

/*
 * The vocabulary a grammar masks: the bytes of every ordinary token of tok
 * (ids below vocab), plus the added tokens whose text is one of tags[0..n_tags)
 * (e.g. the tool-call tags, which a tool-call grammar spells); other added
 * tokens (end-of-sequence, role tags) are never allowed by a mask.
 */
glm_token_trie *glm_constraint_vocab(const glm_tok *tok, int vocab, const char *const *tags, int n_tags);

/*
 * Fills *out with a processor for p (its ctx owns a copy of what it needs and
 * the grammar). Pass it to the engine in glm_sampling_params.processor; if the
 * request is never submitted, call out->release(out->ctx).
 */
void glm_constraint_processor(const glm_constraint_params *p, glm_logits_processor *out);

#endif
