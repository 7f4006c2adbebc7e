/*
 * weight.h - a view of one 2-D weight of a checkpoint in its stored dtype
 * (the mapped file's bytes; FP8 with its block scales), and its conversion
 * to float32. Backends read weights through these views.
 */
#ifndef GLM_WEIGHT_H
#define GLM_WEIGHT_H

#include "core/dtype.h"

/* A 2-D weight [rows = out features, cols = in features] in its stored dtype. */
typedef struct {
    const void *data;     /* [rows, cols], row-major, may be unaligned */
    glm_dtype dtype;      /* F32, F16, BF16 or F8_E4M3 */
    int rows, cols;
    const float *scale;   /* F8_E4M3 only: [ceil(rows/block_r), ceil(cols/block_c)] */
    int block_r, block_c; /* 128, 128 for FP8 checkpoints */
} glm_weight;

/* Converts rows [r0, r0+n) of w to float32 into dst [n, w->cols]: exact for
 * F32/F16/BF16, q * scale of its 128x128 block for FP8. */
void glm_weight_rows_f32(const glm_weight *w, int r0, int n, float *dst);

#endif
