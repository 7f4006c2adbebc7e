/*
 * dweight.cu - uploading weights from the mapped checkpoint (dweight.h).
 *
 * A weight goes up in pieces of whole rows through one pinned staging buffer:
 * rows are converted on the host into staging (BF16 kept, F32 narrowed to
 * BF16 or BF16 widened to F32 as the mode says, FP8 bytes as stored), copied
 * asynchronously, and the stream is synchronised before staging is reused.
 * The host never holds more than one staging buffer of any weight.
 */
#include "cuda/glm_cuda.h"

#include <string.h>

#include "cuda/dweight.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) / (a) * (a))

glm_dtype glm_dweight_dtype(const glm_weight *w, glm_dw_mode mode)
{
    if (w->dtype == GLM_DTYPE_F8_E4M3)
        return GLM_DTYPE_F8_E4M3;
    return mode == GLM_DW_F32 ? GLM_DTYPE_F32 : GLM_DTYPE_BF16;
}

static int scale_ld(const glm_weight *w)
{
    int nbc = (w->cols + w->block_c - 1) / w->block_c;
    return ALIGN_UP(nbc, 4);
}

static size_t data_bytes(const glm_weight *w, glm_dw_mode mode)
{
    return (size_t)w->rows * (size_t)w->cols * glm_dtype_size(glm_dweight_dtype(w, mode));
}

static size_t scale_bytes(const glm_weight *w)
{
    if (w->dtype != GLM_DTYPE_F8_E4M3)
        return 0;
    size_t nbr = (size_t)(w->rows + w->block_r - 1) / (size_t)w->block_r;
    return nbr * (size_t)scale_ld(w) * sizeof(float);
}

size_t glm_dweight_bytes(const glm_weight *w, glm_dw_mode mode)
{
    return ALIGN_UP(data_bytes(w, mode), 256) + ALIGN_UP(scale_bytes(w), 256);
}

/* Converts n elements of src (dtype from) into dst (dtype to): a copy, F32 -> BF16
 * (round to nearest even) or BF16/F16 -> F32. */
static void convert(void *dst, glm_dtype to, const void *src, glm_dtype from, size_t n)
{
    if (to == from) {
        memcpy(dst, src, n * glm_dtype_size(to));
    } else if (to == GLM_DTYPE_F32) {
        glm_to_f32(from, src, (float *)dst, n);
    } else { /* to BF16 from F32 or F16 */
        uint16_t *d = (uint16_t *)dst;
        const float *f = (const float *)src;
        for (size_t i = 0; i < n; i++)
            d[i] = glm_f32_to_bf16(from == GLM_DTYPE_F32 ? f[i] : glm_f16_to_f32(((const uint16_t *)src)[i]));
    }
}

cudaError_t glm_dweight_upload(glm_dweight *out, const glm_weight *w, glm_dw_mode mode, void *dst, void *staging,
                               size_t staging_bytes, cudaStream_t stream)
{
    glm_dtype to = glm_dweight_dtype(w, mode);
    size_t row_out = (size_t)w->cols * glm_dtype_size(to), row_in = (size_t)w->cols * glm_dtype_size(w->dtype);
    size_t per = staging_bytes / (row_out > row_in ? row_out : row_in);
    if (per < 1)
        return cudaErrorInvalidValue;
    char *d = (char *)dst;
    for (size_t r = 0; r < (size_t)w->rows; r += per) {
        size_t n = (size_t)w->rows - r < per ? (size_t)w->rows - r : per;
        if (glm_weight_ld(w) == (size_t)w->cols) /* contiguous: one conversion */
            convert(staging, to, glm_weight_row(w, (int)r), w->dtype, n * (size_t)w->cols);
        else /* a block of a wider weight (a tensor-parallel shard): row by row */
            for (size_t i = 0; i < n; i++)
                convert((char *)staging + i * row_out, to, glm_weight_row(w, (int)(r + i)), w->dtype,
                        (size_t)w->cols);
        cudaError_t e = cudaMemcpyAsync(d + r * row_out, staging, n * row_out, cudaMemcpyHostToDevice, stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(stream);
        if (e != cudaSuccess)
            return e;
    }
    *out = (glm_dweight){dst, to, w->rows, w->cols, NULL, 0, 0, 0};
    if (w->dtype == GLM_DTYPE_F8_E4M3) {
        /* scales [nbr, nbc] row-major -> rows of scale_ld floats, the padding 0 */
        int nbc = (w->cols + w->block_c - 1) / w->block_c, ld = scale_ld(w);
        int nbr = (w->rows + w->block_r - 1) / w->block_r;
        float *sd = (float *)(d + ALIGN_UP(data_bytes(w, mode), 256));
        size_t rows_per = staging_bytes / (sizeof(float) * (size_t)ld);
        if (rows_per < 1)
            return cudaErrorInvalidValue;
        for (int r = 0; r < nbr; r += (int)rows_per) {
            int n = nbr - r < (int)rows_per ? nbr - r : (int)rows_per;
            float *st = (float *)staging;
            memset(st, 0, sizeof(float) * (size_t)n * ld);
            for (int i = 0; i < n; i++)
                memcpy(st + (size_t)i * ld, w->scale + (size_t)(r + i) * glm_weight_scale_ld(w),
                       sizeof(float) * (size_t)nbc);
            cudaError_t e = cudaMemcpyAsync(sd + (size_t)r * ld, st, sizeof(float) * (size_t)n * ld,
                                            cudaMemcpyHostToDevice, stream);
            if (e == cudaSuccess)
                e = cudaStreamSynchronize(stream);
            if (e != cudaSuccess)
                return e;
        }
        out->scale = sd;
        out->block_r = w->block_r;
        out->block_c = w->block_c;
        out->scale_ld = ld;
    }
    return cudaSuccess;
}
