/* weight.c - see weight.h. */
#include "model/weight.h"

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

void glm_weight_rows_f32(const glm_weight *w, int r0, int n, float *dst)
{
    size_t cols = (size_t)w->cols;
    if (w->dtype != GLM_DTYPE_F8_E4M3) {
        if (glm_weight_ld(w) == cols) {
            GLM_ASSERT(glm_to_f32(w->dtype, glm_weight_row(w, r0), dst, (size_t)n * cols) == 0);
            return;
        }
        for (int i = 0; i < n; i++)
            GLM_ASSERT(glm_to_f32(w->dtype, glm_weight_row(w, r0 + i), dst + (size_t)i * cols, cols) == 0);
        return;
    }
    const float *tab = glm_e4m3_table();
    int nbc = (w->cols + w->block_c - 1) / w->block_c, sld = glm_weight_scale_ld(w);
    for (int i = 0; i < n; i++) {
        int r = r0 + i;
        const float *srow = w->scale + (size_t)(r / w->block_r) * sld;
        const uint8_t *q = glm_weight_row(w, r);
        float *d = dst + (size_t)i * cols;
        for (int b = 0; b < nbc; b++) {
            float s = srow[b];
            int c0 = b * w->block_c, c1 = GLM_MIN(w->cols, c0 + w->block_c);
            for (int c = c0; c < c1; c++)
                d[c] = tab[q[c]] * s;
        }
    }
}

int glm_weight_slice(const glm_weight *w, int r0, int nr, int c0, int nc, glm_weight *out, char *err,
                     size_t errlen)
{
    if (r0 < 0 || nr < 1 || c0 < 0 || nc < 1 || r0 + nr > w->rows || c0 + nc > w->cols)
        return glm_err(err, errlen, "rows [%d, %d) x columns [%d, %d) are not inside a [%d, %d] weight", r0,
                       r0 + nr, c0, c0 + nc, w->rows, w->cols);
    *out = *w;
    out->ld = glm_weight_ld(w);
    out->rows = nr;
    out->cols = nc;
    out->data = (const char *)glm_weight_row(w, r0) + (size_t)c0 * glm_dtype_size(w->dtype);
    if (w->dtype != GLM_DTYPE_F8_E4M3)
        return GLM_OK;
    int br = w->block_r, bc = w->block_c;
    if (r0 % br || (nr % br && r0 + nr != w->rows))
        return glm_err(err, errlen, "rows [%d, %d) cut the FP8 weight's %d-row scale blocks", r0, r0 + nr, br);
    if (c0 % bc || (nc % bc && c0 + nc != w->cols))
        return glm_err(err, errlen, "columns [%d, %d) cut the FP8 weight's %d-column scale blocks", c0, c0 + nc,
                       bc);
    out->scale_ld = glm_weight_scale_ld(w);
    out->scale = w->scale + (size_t)(r0 / br) * out->scale_ld + c0 / bc;
    return GLM_OK;
}
