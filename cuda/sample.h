/*
 * sample.h - sampling on the device: the step's logits rows stay where the
 * forward left them; only the token, its raw logprob, the top logprobs and the
 * flags of each row (glm_sampler_result, ~180 bytes) come back to the host.
 *
 * The semantics are glm_sampler_sample's (engine/backend/sampler.h) step for
 * step; the host keeps the parts that need the request's state:
 *   - the one uniform draw u of the row's glm_rng, taken where
 *     glm_sampler_sample takes it, so a seeded request gives the same tokens
 *     on either path;
 *   - steps 1-2 of the sampler (min_tokens masking, logit_bias, repetition /
 *     frequency / presence penalties) as a short list of per-id edits built from
 *     the history's distinct ids, in the sampler's order for each id.
 * The kernel applies the edits to the row in place and puts the original
 * values back before it ends (no copy of the row anywhere: a row of GLM-5 is
 * 154880 floats), so the logits are unchanged after a call.
 *
 * Use: glm_cu_sample_host_init once; per step glm_cu_sample_host_reset, then
 * glm_cu_sample_host_add per row (descriptor and edits into host arrays), copy
 * the descriptors and the first glm_cu_sample_host_edits() edits to the
 * device, glm_cu_sample, copy the results back.
 */
#ifndef GLM_CUDA_SAMPLE_H
#define GLM_CUDA_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "backend/sampler.h"
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* glm_cu_sample_desc.mode bits */
#define GLM_CU_SAMPLE_GREEDY 1u   /* argmax of the processed row, lowest id on ties */
#define GLM_CU_SAMPLE_LOGPROBS 2u /* the token's raw logprob and n_top top logprobs */

/* One row to sample, prepared by glm_cu_sample_host_add. */
typedef struct {
    double u;            /* the row's uniform draw, [0, 1) */
    int32_t row;         /* logits row, [0, n_logits); distinct across descriptors with edits */
    uint32_t mode;       /* GLM_CU_SAMPLE_* */
    float temperature;   /* >= 0.01 (the sampler's floor applied); unused when greedy */
    float top_p;         /* (0, 1]; 1: off */
    float min_p;         /* [0, 1]; 0: off */
    int32_t top_k;       /* 0: off, else in [2, vocab) */
    int32_t n_top;       /* top logprobs, 0 .. min(20, vocab); 0 without LOGPROBS */
    int32_t fallback;    /* the token when every logit is -inf after processing */
    int32_t edit_begin;  /* the row's edits: [edit_begin, edit_begin + n_edits) */
    int32_t n_edits;
} glm_cu_sample_desc;

/* edit ops, applied to the sanitised logit (NaN read as -inf) in the sampler's order */
enum {
    GLM_CU_EDIT_MASK = 0,   /* x = -inf (min_tokens: eos and stop ids) */
    GLM_CU_EDIT_ADD = 1,    /* x = x + arg (logit_bias, clamped) */
    GLM_CU_EDIT_REPEAT = 2, /* x = x > 0 ? x / arg : x * arg (repetition penalty) */
    GLM_CU_EDIT_SUB = 3     /* x = x - arg (frequency x count, then presence) */
};

/* One edit of one token id. The edits of an id within a row form a chain from
 * its head (the first in the sampler's order) through next. */
typedef struct {
    int32_t id;          /* token id, [0, vocab) */
    int32_t next;        /* index (in the whole edit array) of the id's next edit, -1 at the end */
    float arg;
    uint16_t op;         /* GLM_CU_EDIT_* */
    uint16_t head;       /* 1 on the first edit of its id in the row */
    uint32_t saved;      /* device scratch: the logit's bits before the edits (head only) */
} glm_cu_sample_edit;

typedef struct {
    int n_rows;                       /* descriptors, >= 0 */
    int vocab;                        /* >= 1 */
    float *logits;                    /* device [n_logits, vocab]: edited rows are restored */
    const glm_cu_sample_desc *descs;  /* device [n_rows] */
    glm_cu_sample_edit *edits;        /* device [every row's edits], may be NULL when none */
    glm_sampler_result *out;          /* device [n_rows] */
} glm_cu_sample_params;

/* One block per row. Returns the launch's status. */
cudaError_t glm_cu_sample(const glm_cu_sample_params *p, cudaStream_t stream);

/* ---- host side: descriptors and edits ----------------------------------------------- */

/* The host state of descriptor preparation: per-id scratch sized once for the
 * vocabulary (reset after every row, so a step costs O(edits)), and the caller's
 * edit array (pinned when it is copied up). */
typedef struct {
    int vocab;
    int32_t *tail;               /* [vocab] -1, or the last edit of the id in the current row */
    int32_t *count;              /* [vocab] occurrences in the output (0 between rows) */
    uint8_t *mark;               /* [vocab] bit 0: repetition applied, bit 1: counted */
    glm_cu_sample_edit *edits;   /* [cap], the caller's */
    int cap, n;                  /* capacity, edits of this step so far */
} glm_cu_sample_host;

/* Allocates the per-id scratch; edits [cap] stays the caller's. */
void glm_cu_sample_host_init(glm_cu_sample_host *h, int vocab, glm_cu_sample_edit *edits, int cap);
void glm_cu_sample_host_free(glm_cu_sample_host *h);
/* Starts a step: no edits. */
void glm_cu_sample_host_reset(glm_cu_sample_host *h);

/*
 * The descriptor of one row under params (validated for the vocabulary) and hist:
 * appends its edits, then takes the row's draw from rng (advanced by exactly one
 * step, as glm_sampler_sample does). GLM_OK, or GLM_ERR when its edits do not fit
 * in what remains of the edit array: then nothing was appended and rng was not
 * touched, and the caller samples the row on the host.
 */
int glm_cu_sample_host_add(glm_cu_sample_host *h, const glm_sampling_params *params, glm_rng *rng,
                           const glm_sampler_history *hist, int row, glm_cu_sample_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
