/* weight.c - see weight.h. */
#include "model/weight.h"

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

void glm_weight_rows_f32(const glm_weight *w, int r0, int n, float *dst)
{
    size_t cols = (size_t)w->cols;
    size_t esz = glm_dtype_size(w->dtype);
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r0 * cols * esz;
    if (w->dtype != GLM_DTYPE_F8_E4M3) {
        GLM_ASSERT(glm_to_f32(w->dtype, src, dst, (size_t)n * cols) == 0);
        return;
    }
    const float *tab = glm_e4m3_table();
    int nbc = (w->cols + w->block_c - 1) / w->block_c;
    for (int i = 0; i < n; i++) {
        int r = r0 + i;
        const float *srow = w->scale + (size_t)(r / w->block_r) * nbc;
        const uint8_t *q = src + (size_t)i * cols;
        float *d = dst + (size_t)i * cols;
        for (int b = 0; b < nbc; b++) {
            float s = srow[b];
            int c0 = b * w->block_c, c1 = GLM_MIN(w->cols, c0 + w->block_c);
            for (int c = c0; c < c1; c++)
                d[c] = tab[q[c]] * s;
        }
    }
}
