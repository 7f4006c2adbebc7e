/*
 * weight.h - a view of one 2-D weight of a checkpoint in its stored dtype
 * (the mapped file's bytes; FP8 with its block scales), and its conversion
 * to float32. Backends read weights through these views.
 */
#ifndef GLM_WEIGHT_H
#define GLM_WEIGHT_H

#include "core/dtype.h"

/* A 2-D weight [rows = out features, cols = in features] in its stored dtype, or a block of
 * one (a tensor-parallel shard: glm_weight_slice). */
typedef struct {
    const void *data;     /* [rows, cols], rows ld elements apart, may be unaligned */
    glm_dtype dtype;      /* F32, F16, BF16 or F8_E4M3 */
    int rows, cols;
    const float *scale;   /* F8_E4M3 only: [ceil(rows/block_r), ceil(cols/block_c)], rows
                             scale_ld floats apart */
    int block_r, block_c; /* 128, 128 for FP8 checkpoints */
    size_t ld;            /* elements from one row's start to the next; 0: cols (contiguous) */
    int scale_ld;         /* floats from one scale row to the next; 0: ceil(cols / block_c) */
} glm_weight;

static inline size_t glm_weight_ld(const glm_weight *w) { return w->ld ? w->ld : (size_t)w->cols; }

static inline int glm_weight_scale_ld(const glm_weight *w)
{
    return w->scale_ld ? w->scale_ld : (w->cols + w->block_c - 1) / w->block_c;
}

/* Row r's first element. */
static inline const void *glm_weight_row(const glm_weight *w, int r)
{
    return (const char *)w->data + (size_t)r * glm_weight_ld(w) * glm_dtype_size(w->dtype);
}

/*
 * out = rows [r0, r0 + nr) x columns [c0, c0 + nc) of w: a view of the same
 * bytes (and scales), nothing copied. An FP8 weight is cut only on its
 * scale blocks' edges (r0 and c0 multiples of the block, nr and nc too
 * unless they reach the edge), so that every block of the view keeps its
 * scale. Returns GLM_OK, or GLM_ERR with a message naming the cut.
 */
int glm_weight_slice(const glm_weight *w, int r0, int nr, int c0, int nc, glm_weight *out, char *err,
                     size_t errlen);

/* Converts rows [r0, r0+n) of w to float32 into dst [n, w->cols]: exact for
 * F32/F16/BF16, q * scale of its 128x128 block for FP8. */
void glm_weight_rows_f32(const glm_weight *w, int r0, int n, float *dst);

#endif
