/*
 * ref_norm.c - the reference norms and RoPE (ref_ops.h): row-wise wrappers of
 * ops.h's glm_rmsnorm, glm_layernorm, glm_rope_angles and the two rotations,
 * over strided rows and heads, one task per row or token.
 */
#include "cpu/ref_ops.h"
#include "cpu/ref_ws.h"
#include "core/util.h"

static void rms_task(void *ctx, int t, int worker)
{
    const glm_ref_norm_params *p = ctx;
    glm_rmsnorm(p->y + (size_t)t * p->ldy, p->x + (size_t)t * p->ldx, p->w, p->dim, p->eps);
}

static void ln_task(void *ctx, int t, int worker)
{
    const glm_ref_norm_params *p = ctx;
    glm_layernorm(p->y + (size_t)t * p->ldy, p->x + (size_t)t * p->ldx, p->w, p->b, p->dim, p->eps);
}

static void norm_check(const glm_ref_norm_params *p)
{
    GLM_ASSERT(p->dim >= 1 && p->ldx >= p->dim && p->ldy >= p->dim);
    /* in place only row over the same row */
    GLM_ASSERT(p->y != p->x || p->ldy == p->ldx);
}

void glm_ref_rmsnorm(glm_pool *pool, const glm_ref_norm_params *p)
{
    norm_check(p);
    GLM_ASSERT(p->b == NULL);
    glm_ref_for(pool, p->n_rows, (size_t)p->dim, rms_task, (void *)p);
}

void glm_ref_layernorm(glm_pool *pool, const glm_ref_norm_params *p)
{
    norm_check(p);
    glm_ref_for(pool, p->n_rows, (size_t)p->dim, ln_task, (void *)p);
}

void glm_ref_rope_angles(const glm_ref_rope_angles_params *p)
{
    size_t half = (size_t)p->dim / 2;
    for (int t = 0; t < p->n_tokens; t++)
        glm_rope_angles(p->positions[t], p->theta, p->dim, p->cos_ + t * half, p->sin_ + t * half);
}

static void rope_task(void *ctx, int t, int worker)
{
    const glm_ref_rope_params *p = ctx;
    size_t half = (size_t)p->dim / 2;
    const float *cs = p->cos_ + t * half, *sn = p->sin_ + t * half;
    for (int h = 0; h < p->n_heads; h++) {
        float *x = p->x + ((size_t)t * p->n_heads + h) * p->head_stride + p->offset;
        if (p->interleaved)
            glm_rope_interleaved(x, cs, sn, p->dim);
        else
            glm_rope_neox(x, cs, sn, p->dim);
    }
}

void glm_ref_rope(glm_pool *pool, const glm_ref_rope_params *p)
{
    GLM_ASSERT(p->dim >= 2 && p->dim % 2 == 0 && p->offset >= 0 && p->offset + p->dim <= p->head_stride);
    glm_ref_for(pool, p->n_tokens, (size_t)p->n_heads * p->dim, rope_task, (void *)p);
}
