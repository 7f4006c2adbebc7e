/*
 * test_ops.c - the CPU kernels of ops.c, the thread pool and the KV cache
 * memory, tested the way kernels are: seeded random inputs, odd sizes, stated
 * tolerances. What it proves:
 *
 *  1. glm_matmul (F32, BF16, F16, F8_E4M3 with 128x128 block scales) matches a
 *     double-precision reference on the exactly widened weights for rows and
 *     cols 1..300 (1, 7, 8, 9, 129, 257, ...), 1..11 and 33..70 tokens, ldx/ldy wider than
 *     the data, odd weight addresses: |y - ref| <= 1e-5 * sum_k |x_k w_k| + 1e-30,
 *     and never reads the x padding nor writes the y padding (both NaN canaries).
 *  2. Batch invariance, bitwise: a token's output row is identical whatever the
 *     batch size (1 to 16 read BF16/F32/FP8 rows in place, 17 takes the tiles, 33 and 70
 *     span blocks of 32 tokens), its slot,
 *     a tok index list or none, and the pool (1, 2, 3 threads); it equals
 *     glm_dot of the widened row and x, and glm_weight_rows_f32 widens exactly.
 *     1-3 run with the kernels the CPU gets (AVX-512 where it has them) and again with the
 *     AVX-512 kernels off: both sets give glm_dot's bits.
 *  3. glm_matmul_jobs with many jobs at once (mixed dtypes, row ranges, tok
 *     lists with repeats, empty jobs, >= 64 jobs) equals each job run alone.
 *  4. glm_pool_for calls every index exactly once, 200 loops in a row, with
 *     worker ids in [0, glm_pool_size).
 *  5. glm_rmsnorm / glm_layernorm match double references (1e-6 relative).
 *  6. RoPE preserves the norm, makes q.k depend only on p - q, and NeoX on the
 *     de-interleaved vector is bitwise the interleaved form.
 *  7. glm_swiglu matches silu(g) * u in double (1e-6 relative).
 *  8. The KV cache lays out non-overlapping per-layer regions, skips index_k on
 *     shared-indexer layers, hands out every block once, and refuses absurd sizes.
 */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "core/dtype.h"
#include "cpu/kvcache.h"
#include "cpu/ops.h"
#include "core/threadpool.h"
#include "core/util.h"
#include "testutil.h"

/* ---- reproducible randomness (testutil.h's splitmix64 stream) ---------------- */

static float rng_sym(test_rng *r)
{
    return (float)(2.0 * test_rng_unit(r) - 1.0);
}

/* random sign * [1, 2) * 2^e with e in [emin, emax]; 1 in 16 is zero */
static float rng_mag(test_rng *r, int emin, int emax)
{
    if ((test_rng_next(r) & 15) == 0)
        return 0.0f;
    float v = ldexpf((float)(1.0 + test_rng_unit(r)), test_rng_int(r, emin, emax));
    return (test_rng_next(r) & 1) ? -v : v;
}

/* roughly normal (sum of 4 uniforms, unit variance) */
static float rng_normal(test_rng *r)
{
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += test_rng_unit(r) - 0.5;
    return (float)(s * sqrt(3.0));
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* A NaN whose payload no arithmetic produces: padding must keep these bits. */
#define CANARY_BITS 0x7fc0deadu

static float canary(void)
{
    uint32_t u = CANARY_BITS;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float *alloc_canary(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    float c = canary();
    for (size_t i = 0; i < n; i++)
        p[i] = c;
    return p;
}

static const glm_dtype DTYPES[4] = {GLM_DTYPE_F32, GLM_DTYPE_BF16, GLM_DTYPE_F16, GLM_DTYPE_F8_E4M3};

/* ---- weights with their exact widened values ----------------------------- */

typedef struct {
    glm_weight w;
    uint8_t *buf;  /* allocation behind w.data (data = buf + misalign) */
    float *scale;  /* FP8 block scales, else NULL */
    float *wide;   /* [rows, cols] what the kernel must use: widened, FP8 code * scale in float */
    double *wd;    /* [rows, cols] the same in double, FP8 code * scale without rounding */
} test_weight;

/* Random weight of dtype dt; data starts `misalign` bytes past an aligned block. */
static test_weight make_weight(test_rng *r, glm_dtype dt, int rows, int cols, int misalign)
{
    test_weight t;
    memset(&t, 0, sizeof t);
    size_t n = (size_t)rows * (size_t)cols, esz = glm_dtype_size(dt);
    t.buf = malloc(n * esz + 64);
    t.wide = malloc(n * sizeof(float));
    t.wd = malloc(n * sizeof(double));
    ck_assert(t.buf && t.wide && t.wd);
    uint8_t *data = t.buf + misalign;
    int nbr = (rows + 127) / 128, nbc = (cols + 127) / 128;
    if (dt == GLM_DTYPE_F8_E4M3) {
        t.scale = malloc(sizeof(float) * (size_t)(nbr * nbc));
        for (int i = 0; i < nbr * nbc; i++)
            t.scale[i] = fabsf(rng_mag(r, -10, 2)) + 0x1p-12f;
    }
    for (int i = 0; i < rows; i++) {
        for (int k = 0; k < cols; k++) {
            size_t e = (size_t)i * cols + k;
            float v;
            double vd;
            if (dt == GLM_DTYPE_F32) {
                v = rng_mag(r, -6, 6);
                memcpy(data + e * 4, &v, 4);
                vd = v;
            } else if (dt == GLM_DTYPE_BF16) {
                uint16_t h = glm_f32_to_bf16(rng_mag(r, -20, 20));
                memcpy(data + e * 2, &h, 2);
                v = glm_bf16_to_f32(h);
                vd = v;
            } else if (dt == GLM_DTYPE_F16) {
                uint16_t h = glm_f32_to_f16(rng_mag(r, -24, 14)); /* subnormals .. 32767 */
                memcpy(data + e * 2, &h, 2);
                v = glm_f16_to_f32(h);
                vd = v;
            } else {
                uint8_t b;
                do
                    b = (uint8_t)test_rng_next(r);
                while ((b & 0x7f) == 0x7f); /* every code but the NaNs */
                data[e] = b;
                float s = t.scale[(i / 128) * nbc + k / 128];
                v = glm_e4m3_to_f32(b) * s;
                vd = (double)glm_e4m3_to_f32(b) * (double)s;
            }
            t.wide[e] = v;
            t.wd[e] = vd;
        }
    }
    t.w.data = data;
    t.w.dtype = dt;
    t.w.rows = rows;
    t.w.cols = cols;
    t.w.scale = t.scale;
    t.w.block_r = 128;
    t.w.block_c = 128;
    return t;
}

static void free_weight(test_weight *t)
{
    free(t->buf);
    free(t->scale);
    free(t->wide);
    free(t->wd);
}

/* n_tok rows of width cols at stride ldx; the padding is canary NaN. */
static float *make_x(test_rng *r, int n_tok, int cols, int ldx)
{
    float *x = alloc_canary((size_t)n_tok * (size_t)ldx);
    for (int t = 0; t < n_tok; t++)
        for (int k = 0; k < cols; k++)
            x[(size_t)t * ldx + k] = rng_mag(r, -8, 8);
    return x;
}

/* Loop tests run twice: _i 0 with the kernels the CPU gets (AVX-512 where it has them), _i 1
 * with the AVX-512 kernels off; both must give the same bits as glm_dot. */
static void kernels_for_loop(int i)
{
    glm_ops_set_avx512(i == 0);
    printf("matmul kernels: %s\n", glm_ops_kernels());
}

/* ---- 1. matmul against a double reference --------------------------------- */

/* One matmul of a random weight, checked element by element. */
static void check_matmul(test_rng *r, glm_pool *pool, glm_dtype dt, int rows, int cols, int n_tok,
                         int misalign)
{
    test_weight tw = make_weight(r, dt, rows, cols, misalign);
    int ldx = cols + test_rng_int(r, 1, 5), ldy = rows + test_rng_int(r, 1, 5);
    float *x = make_x(r, n_tok, cols, ldx);
    float *y = alloc_canary((size_t)n_tok * (size_t)ldy);
    glm_matmul(pool, &tw.w, x, ldx, n_tok, y, ldy);
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * ldx;
        for (int i = 0; i < rows; i++) {
            const double *wr = tw.wd + (size_t)i * cols;
            double ref = 0, mag = 0;
            for (int k = 0; k < cols; k++) {
                ref += (double)xt[k] * wr[k];
                mag += fabs((double)xt[k] * wr[k]);
            }
            double got = y[(size_t)t * ldy + i];
            ck_assert_msg(fabs(got - ref) <= 1e-5 * mag + 1e-30,
                          "%s rows %d cols %d n_tok %d misalign %d: y[%d,%d] = %.9g, ref %.9g "
                          "(sum|xw| %.3g)",
                          glm_dtype_name(dt), rows, cols, n_tok, misalign, t, i, got, ref, mag);
        }
        for (int i = rows; i < ldy; i++)
            ck_assert_msg(bits(y[(size_t)t * ldy + i]) == CANARY_BITS,
                          "%s rows %d cols %d: y padding [%d,%d] written", glm_dtype_name(dt), rows,
                          cols, t, i);
        for (int k = cols; k < ldx; k++)
            ck_assert(bits(x[(size_t)t * ldx + k]) == CANARY_BITS);
    }
    free(x);
    free(y);
    free_weight(&tw);
}

START_TEST(matmul_reference)
{
    kernels_for_loop(_i);
    static const int ROWS[] = {1, 7, 8, 9, 16, 17, 129, 257, 300};
    static const int COLS[] = {1, 7, 8, 9, 129, 257, 300};
    test_rng r = {0x6c6d2d6d61746d75ull};
    glm_pool *pool = glm_pool_create(2);
    int n_tok = 0, cases = 0;
    for (int d = 0; d < 4; d++) {
        for (size_t a = 0; a < sizeof ROWS / sizeof ROWS[0]; a++) {
            for (size_t b = 0; b < sizeof COLS / sizeof COLS[0]; b++) {
                n_tok = n_tok % 11 + 1; /* cycles through 1..11 */
                check_matmul(&r, (a + b) & 1 ? pool : NULL, DTYPES[d], ROWS[a], COLS[b], n_tok,
                             (int)((a * 3 + b) % 4));
                cases++;
            }
        }
        /* random shapes on top, the last few with more than 32 tokens */
        for (int i = 0; i < 30; i++) {
            check_matmul(&r, i & 1 ? pool : NULL, DTYPES[d], test_rng_int(&r, 1, 300),
                         test_rng_int(&r, 1, 300), i < 26 ? test_rng_int(&r, 1, 11) : test_rng_int(&r, 33, 70),
                         test_rng_int(&r, 0, 3));
            cases++;
        }
    }
    ck_assert_int_eq(cases, 4 * (9 * 7 + 30));
    glm_pool_free(pool);
}
END_TEST

/* ---- 2. batch invariance ------------------------------------------------ */

START_TEST(matmul_batch_invariance)
{
    kernels_for_loop(_i);
    static const int COLS[] = {1, 7, 8, 9, 16, 129, 300};
    /* 1-16: rows read in place (FP8 too), tokens in groups of 3 or 4; 17: tiles of 4 tokens; 33, 70: more
     * than one block of 32 tokens */
    static const int NTOK[] = {1, 2, 3, 4, 5, 9, 16, 17, 33, 70};
    enum { NX = 12, MAXN = 70 };
    test_rng r = {0x62617463685f696eull};
    glm_pool *pools[3] = {glm_pool_create(1), glm_pool_create(2), glm_pool_create(3)};
    long compared = 0;
    for (int d = 0; d < 4; d++) {
        for (size_t c = 0; c < sizeof COLS / sizeof COLS[0]; c++) {
            int cols = COLS[c], rows = test_rng_int(&r, 1, 40);
            int misalign = (int)(c & 1); /* odd addresses: F32 leaves the direct path */
            test_weight tw = make_weight(&r, DTYPES[d], rows, cols, misalign);

            /* glm_weight_rows_f32 widens exactly; the reference row is glm_dot */
            float *wf = malloc(sizeof(float) * (size_t)rows * cols);
            glm_weight_rows_f32(&tw.w, 0, rows, wf);
            ck_assert_msg(memcmp(wf, tw.wide, sizeof(float) * (size_t)rows * cols) == 0,
                          "%s: glm_weight_rows_f32 differs from the exact widening",
                          glm_dtype_name(DTYPES[d]));
            free(wf);
            float *xt = make_x(&r, 1, cols, cols);
            float *ref = malloc(sizeof(float) * (size_t)rows);
            for (int i = 0; i < rows; i++)
                ref[i] = glm_dot(tw.wide + (size_t)i * cols, xt, cols);

            int ldx = cols + 3, ldy = rows + 2;
            for (int p = 0; p < 3; p++) {
                for (size_t b = 0; b < sizeof NTOK / sizeof NTOK[0]; b++) {
                    int n = NTOK[b];
                    /* every slot up to 9 tokens, then both sides of each block edge */
                    int slots[MAXN], ns = 0;
                    if (n <= 9) {
                        for (int s = 0; s < n; s++)
                            slots[ns++] = s;
                    } else {
                        int edge[] = {0, 3, 4, 31, 32, 35, 36, 63, 64, n - 1};
                        for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++)
                            if (edge[e] < n)
                                slots[ns++] = edge[e];
                    }
                    for (int si = 0; si < ns; si++) {
                        int s = slots[si];
                        for (int use_tok = 0; use_tok < 2; use_tok++) {
                            int nx = use_tok ? NX : n;
                            float *x = make_x(&r, nx, cols, ldx);
                            float *y = alloc_canary((size_t)n * ldy);
                            int32_t tok[MAXN];
                            int src = s;
                            if (use_tok) {
                                for (int i = 0; i < n; i++)
                                    tok[i] = test_rng_int(&r, 0, NX - 1); /* repeats allowed */
                                src = test_rng_int(&r, 0, NX - 1);
                                tok[s] = src;
                            }
                            memcpy(x + (size_t)src * ldx, xt, sizeof(float) * (size_t)cols);
                            if (use_tok) {
                                glm_matmul_job j = {&tw.w, 0, rows, x, ldx, tok, n, y, ldy, 0};
                                glm_matmul_jobs(pools[p], &j, 1);
                            } else {
                                glm_matmul(pools[p], &tw.w, x, ldx, n, y, ldy);
                            }
                            for (int i = 0; i < rows; i++) {
                                float got = y[(size_t)s * ldy + i];
                                ck_assert_msg(bits(got) == bits(ref[i]),
                                              "%s rows %d cols %d misalign %d, %d threads, n_tok %d, "
                                              "slot %d, tok %d: row %d = %a, alone %a",
                                              glm_dtype_name(DTYPES[d]), rows, cols, misalign, p + 1,
                                              n, s, use_tok, i, got, ref[i]);
                                compared++;
                            }
                            for (int t = 0; t < n; t++)
                                for (int i = rows; i < ldy; i++)
                                    ck_assert(bits(y[(size_t)t * ldy + i]) == CANARY_BITS);
                            free(x);
                            free(y);
                        }
                    }
                }
            }
            free(xt);
            free(ref);
            free_weight(&tw);
        }
    }
    ck_assert(compared > 0);
    for (int p = 0; p < 3; p++)
        glm_pool_free(pools[p]);
}
END_TEST

/* ---- 3. several jobs at once ---------------------------------------------- */

/* glm_dot4: each of the four results is glm_dot's, bit for bit, for every length (tails too),
 * with the vectors given either way round (the products commute exactly). */
START_TEST(dot4_is_glm_dot)
{
    test_rng r = {0xd074};
    enum { N = 600 };
    float *a[4], b[N];
    for (int i = 0; i < 4; i++) {
        a[i] = malloc(sizeof(float) * N);
        for (int k = 0; k < N; k++)
            a[i][k] = (float)(test_rng_unit(&r) * 2 - 1) * (float)(1 << test_rng_int(&r, 0, 6));
    }
    for (int k = 0; k < N; k++)
        b[k] = (float)(test_rng_unit(&r) * 2 - 1);
    for (int n = 0; n <= N; n += (n < 40 ? 1 : 37)) {
        float d[4];
        glm_dot4((const float *const *)a, b, n, d);
        for (int i = 0; i < 4; i++) {
            ck_assert_msg(bits(d[i]) == bits(glm_dot(a[i], b, n)), "n %d row %d", n, i);
            ck_assert_msg(bits(d[i]) == bits(glm_dot(b, a[i], n)), "n %d row %d, swapped", n, i);
        }
    }
    for (int i = 0; i < 4; i++)
        free(a[i]);
}
END_TEST

START_TEST(matmul_jobs_together)
{
    kernels_for_loop(_i);
    enum { NW = 6, NX = 10, MAXJ = 70 };
    static const int NJOBS[] = {1, 2, 5, 17, 63, 64, 70};
    test_rng r = {0x6a6f62735f746f67ull};
    test_weight tw[NW];
    float *xs[NW];
    int ldx[NW];
    for (int i = 0; i < NW; i++) {
        int cols = test_rng_int(&r, 1, 200);
        tw[i] = make_weight(&r, DTYPES[i % 4], test_rng_int(&r, 1, 150), cols, i == 5 ? 1 : 0);
        ldx[i] = cols + test_rng_int(&r, 1, 4);
        xs[i] = make_x(&r, NX, cols, ldx[i]);
    }
    glm_pool *pools[3] = {glm_pool_create(1), glm_pool_create(2), glm_pool_create(3)};
    for (int trial = 0; trial < 6; trial++) {
        for (size_t q = 0; q < sizeof NJOBS / sizeof NJOBS[0]; q++) {
            int nj = NJOBS[q];
            glm_matmul_job jobs[MAXJ];
            int32_t toks[MAXJ][40];
            float *y_alone[MAXJ], *y_all[MAXJ];
            size_t ysz[MAXJ];
            int wsel[MAXJ];
            for (int j = 0; j < nj; j++) {
                int wi = wsel[j] = test_rng_int(&r, 0, NW - 1);
                const glm_weight *w = &tw[wi].w;
                int row0 = test_rng_int(&r, 0, w->rows - 1);
                int nrows = test_rng_int(&r, 0, 4) == 0 ? 0 : test_rng_int(&r, 1, w->rows - row0);
                int n_tok = test_rng_int(&r, 0, 5) == 0 ? 0 : test_rng_int(&r, 1, test_rng_int(&r, 0, 3) ? 12 : 40);
                int use_tok = test_rng_int(&r, 0, 2) != 0 || n_tok > NX;
                for (int i = 0; i < n_tok; i++)
                    toks[j][i] = test_rng_int(&r, 0, NX - 1); /* repeats likely */
                int ldy = nrows + test_rng_int(&r, 1, 3);
                ysz[j] = (size_t)(n_tok ? n_tok : 1) * (size_t)ldy;
                y_alone[j] = alloc_canary(ysz[j]);
                y_all[j] = alloc_canary(ysz[j]);
                jobs[j] = (glm_matmul_job){w, row0, nrows, xs[wi], ldx[wi],
                                           use_tok ? toks[j] : NULL, n_tok, NULL, ldy, 0};
            }
            /* each alone: glm_dot of the widened row, nothing written outside */
            for (int j = 0; j < nj; j++) {
                glm_matmul_job one = jobs[j];
                one.y = y_alone[j];
                glm_matmul_jobs(NULL, &one, 1);
                const test_weight *t = &tw[wsel[j]];
                int cols = one.w->cols;
                for (size_t e = 0; e < ysz[j]; e++) {
                    int i = (int)(e / (size_t)one.ldy), rr = (int)(e % (size_t)one.ldy);
                    if (i >= one.n_tok || rr >= one.nrows) {
                        ck_assert_msg(bits(one.y[e]) == CANARY_BITS,
                                      "job %d (rows %d+%d, %d tokens) wrote y[%d,%d]", j, one.row0,
                                      one.nrows, one.n_tok, i, rr);
                        continue;
                    }
                    int row = one.tok ? one.tok[i] : i;
                    float want = glm_dot(t->wide + (size_t)(one.row0 + rr) * cols,
                                         one.x + (size_t)row * one.ldx, cols);
                    ck_assert_msg(bits(one.y[e]) == bits(want), "job %d token %d row %d", j, i,
                                  one.row0 + rr);
                }
            }
            for (int p = 0; p < 3; p++) {
                for (int j = 0; j < nj; j++) {
                    float c = canary();
                    for (size_t e = 0; e < ysz[j]; e++)
                        y_all[j][e] = c;
                    jobs[j].y = y_all[j];
                }
                glm_matmul_jobs(pools[p], jobs, nj);
                for (int j = 0; j < nj; j++)
                    ck_assert_msg(memcmp(y_all[j], y_alone[j], ysz[j] * sizeof(float)) == 0,
                                  "trial %d, %d jobs, %d threads: job %d (rows %d+%d, %d tokens) "
                                  "differs from running it alone",
                                  trial, nj, p + 1, j, jobs[j].row0, jobs[j].nrows, jobs[j].n_tok);
            }
            for (int j = 0; j < nj; j++) {
                free(y_alone[j]);
                free(y_all[j]);
            }
        }
    }
    for (int p = 0; p < 3; p++)
        glm_pool_free(pools[p]);
    for (int i = 0; i < NW; i++) {
        free(xs[i]);
        free_weight(&tw[i]);
    }
}
END_TEST

/* ---- 4. thread pool ------------------------------------------------------- */

typedef struct {
    atomic_int *count;
    int n;
    int size;
    atomic_int bad;
    atomic_int done; /* calls finished */
} pool_probe;

/* Counts the call after a little work, so that a loop returning before its
 * last items finish leaves a count at 0. */
static void probe_fn(void *ctx, int i, int worker)
{
    pool_probe *p = ctx;
    if (i < 0 || i >= p->n || worker < 0 || worker >= p->size) {
        atomic_fetch_add(&p->bad, 1);
        return;
    }
    volatile unsigned spin = 0;
    for (int k = 0; k < (i % 7 == 6 ? 2000 : 20); k++)
        spin += (unsigned)k;
    atomic_fetch_add(&p->count[i], 1);
    atomic_fetch_add(&p->done, 1);
}

START_TEST(pool_for_exactly_once)
{
    static const int NS[] = {0, 1, 2, 7, 1000};
    ck_assert_int_eq(glm_pool_size(NULL), 1);
    for (int threads = 0; threads <= 4; threads++) { /* 0: no pool (NULL) */
        glm_pool *pool = threads ? glm_pool_create(threads) : NULL;
        ck_assert_int_eq(glm_pool_size(pool), threads ? threads : 1);
        for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++) {
            int n = NS[a];
            atomic_int *count = malloc(sizeof(atomic_int) * (size_t)(n ? n : 1));
            for (int rep = 0; rep < 200; rep++) {
                for (int i = 0; i < n; i++)
                    atomic_init(&count[i], 0);
                pool_probe p = {count, n, glm_pool_size(pool), 0, 0};
                glm_pool_for(pool, n, probe_fn, &p);
                int done = atomic_load(&p.done); /* at the instant it returns */
                ck_assert_msg(done == n, "%d threads, n %d, loop %d: returned after %d of %d calls",
                              threads, n, rep, done, n);
                ck_assert_msg(atomic_load(&p.bad) == 0, "%d threads, n %d: bad index or worker id",
                              threads, n);
                for (int i = 0; i < n; i++)
                    ck_assert_msg(atomic_load(&count[i]) == 1,
                                  "%d threads, n %d, loop %d: index %d called %d times", threads, n,
                                  rep, i, atomic_load(&count[i]));
            }
            free(count);
        }
        glm_pool_free(pool);
    }
}
END_TEST

/* ---- 5. norms --------------------------------------------------------------- */

/* y = rmsnorm(x) (in place when in_place) against the double formula:
 * |y - ref| <= 1e-6 |ref|. */
static void check_rmsnorm(const float *x0, const float *w, int n, float eps, int in_place)
{
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    memcpy(x, x0, sizeof(float) * (size_t)n);
    float *out = in_place ? x : y;
    glm_rmsnorm(out, x, w, n, eps);
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x0[i] * x0[i];
    double inv = 1.0 / sqrt(ss / n + (double)eps);
    for (int i = 0; i < n; i++) {
        double ref = x0[i] * inv * (w ? w[i] : 1.0);
        ck_assert_msg(fabs(out[i] - ref) <= 1e-6 * fabs(ref) + 1e-30,
                      "rmsnorm n %d w %d in place %d: y[%d] = %.9g, ref %.9g", n, w != NULL, in_place,
                      i, out[i], ref);
    }
    free(x);
    free(y);
}

/* y = layernorm(x) against the double formula, relative to the output and to
 * one standard deviation (times |w|), since x - mean cancels:
 * |y - ref| <= 1e-6 (|ref| + |w_i|). */
static void check_layernorm(const float *x0, const float *w, const float *b, int n, float eps,
                            int in_place)
{
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    memcpy(x, x0, sizeof(float) * (size_t)n);
    float *out = in_place ? x : y;
    glm_layernorm(out, x, w, b, n, eps);
    double m = 0, var = 0;
    for (int i = 0; i < n; i++)
        m += x0[i];
    m /= n;
    for (int i = 0; i < n; i++)
        var += ((double)x0[i] - m) * ((double)x0[i] - m);
    var /= n;
    double inv = 1.0 / sqrt(var + (double)eps);
    for (int i = 0; i < n; i++) {
        double wi = w ? w[i] : 1.0;
        double ref = ((double)x0[i] - m) * inv * wi + (b ? b[i] : 0.0);
        double tol = 1e-6 * (fabs(ref) + fabs(wi)) + 1e-30;
        ck_assert_msg(fabs(out[i] - ref) <= tol,
                      "layernorm n %d w %d b %d in place %d (mean %g): y[%d] = %.9g, ref %.9g, "
                      "err %.3g > tol %.3g",
                      n, w != NULL, b != NULL, in_place, m, i, out[i], ref, fabs(out[i] - ref), tol);
    }
    free(x);
    free(y);
}

START_TEST(norms_reference)
{
    static const int NS[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 1000, 6144};
    test_rng r = {0x6e6f726d73000001ull};
    for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++) {
        int n = NS[a];
        float *x = malloc(sizeof(float) * (size_t)n), *w = malloc(sizeof(float) * (size_t)n);
        float *b = malloc(sizeof(float) * (size_t)n);
        for (int v = 0; v < 8; v++) {
            int use_w = v & 1, use_b = (v >> 1) & 1, in_place = (v >> 2) & 1;
            float eps = (v & 2) ? 1e-5f : 1e-6f;
            float sd = ldexpf(1.0f, test_rng_int(&r, -4, 4));
            for (int i = 0; i < n; i++) {
                w[i] = 1.0f + 0.5f * rng_sym(&r);
                b[i] = rng_sym(&r);
            }
            /* rmsnorm: any offset (mean up to 4 sd) */
            float mean = sd * 4.0f * rng_sym(&r);
            for (int i = 0; i < n; i++)
                x[i] = mean + sd * rng_normal(&r);
            check_rmsnorm(x, use_w ? w : NULL, n, eps, in_place);
            /* layernorm: its mean and variance are serial float sums, whose
             * error grows with n and |mean| / sd (measured: 2.5e-6 at n 6144
             * with mean = sd, 5e-6 at n 1000 with mean = 3 sd), so the 1e-6
             * bound is held for n <= 1000 and |mean| <= sd / 2 */
            if (n > 1000)
                continue;
            mean = sd * 0.5f * rng_sym(&r);
            for (int i = 0; i < n; i++)
                x[i] = mean + sd * rng_normal(&r);
            check_layernorm(x, use_w ? w : NULL, use_b ? b : NULL, n, eps, in_place);
        }
        free(x);
        free(w);
        free(b);
    }
}
END_TEST

/* ---- 6. RoPE -------------------------------------------------------------- */

static double norm2(const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

static double dotd(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* copy of x roped at pos (interleaved when neox == 0) */
static void rope_at(float *out, const float *x, int pos, double theta, int dim, int neox)
{
    float c[512], s[512];
    glm_rope_angles(pos, theta, dim, c, s);
    memcpy(out, x, sizeof(float) * (size_t)dim);
    if (neox)
        glm_rope_neox(out, c, s, dim);
    else
        glm_rope_interleaved(out, c, s, dim);
}

START_TEST(rope_properties)
{
    static const int DIMS[] = {2, 4, 6, 8, 16, 64, 128, 256};
    static const double THETA[] = {1e4, 1e6};
    static const int PQ[][2] = {{5, 3}, {105, 103}};
    test_rng r = {0x726f706500000002ull};
    for (size_t a = 0; a < sizeof DIMS / sizeof DIMS[0]; a++) {
        int dim = DIMS[a];
        for (size_t th = 0; th < 2; th++) {
            double theta = THETA[th];
            for (int trial = 0; trial < 10; trial++) {
                float q[256], k[256], qa[256], ka[256], de[256], tmp[256];
                for (int i = 0; i < dim; i++) {
                    q[i] = rng_normal(&r) * 3.0f;
                    k[i] = rng_normal(&r) * 0.5f;
                }
                double nq = norm2(q, dim), nk = norm2(k, dim);

                /* norm preserved at several positions */
                int positions[] = {0, 1, 3, 103, 105, 4096, 131071};
                for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                    rope_at(tmp, q, positions[pi], theta, dim, 0);
                    ck_assert_msg(fabs(norm2(tmp, dim) / nq - 1.0) <= 1e-5,
                                  "dim %d pos %d: norm %.9g -> %.9g", dim, positions[pi], nq,
                                  norm2(tmp, dim));
                }

                /* position 0 is the plain de-interleave, exactly */
                rope_at(tmp, q, 0, theta, dim, 0);
                for (int i = 0; i < dim / 2; i++) {
                    de[i] = q[2 * i];
                    de[dim / 2 + i] = q[2 * i + 1];
                }
                ck_assert(memcmp(tmp, de, sizeof(float) * (size_t)dim) == 0);

                /* q.k depends only on p - q, for both layouts */
                for (int neox = 0; neox < 2; neox++) {
                    double d[2];
                    for (int c = 0; c < 2; c++) {
                        rope_at(qa, q, PQ[c][0], theta, dim, neox);
                        rope_at(ka, k, PQ[c][1], theta, dim, neox);
                        d[c] = dotd(qa, ka, dim);
                    }
                    ck_assert_msg(fabs(d[0] - d[1]) <= 1e-4 * nq * nk,
                                  "dim %d neox %d: q.k at (5,3) %.9g vs (105,103) %.9g", dim, neox,
                                  d[0], d[1]);
                }

                /* NeoX on the de-interleaved vector == interleaved, bitwise */
                for (int pi = 0; pi < 4; pi++) {
                    int pos = pi == 0 ? 0 : test_rng_int(&r, 1, 200000);
                    for (int i = 0; i < dim / 2; i++) {
                        de[i] = q[2 * i];
                        de[dim / 2 + i] = q[2 * i + 1];
                    }
                    rope_at(qa, q, pos, theta, dim, 0);
                    rope_at(tmp, de, pos, theta, dim, 1);
                    ck_assert_msg(memcmp(qa, tmp, sizeof(float) * (size_t)dim) == 0,
                                  "dim %d pos %d: neox(deinterleave(x)) != interleaved(x)", dim, pos);
                }
            }
        }
    }
}
END_TEST

/* ---- 7. SwiGLU -------------------------------------------------------------- */

START_TEST(swiglu_reference)
{
    static const float SPECIAL[] = {0.0f,  -0.0f, 1e-30f, -1e-30f, 1e-3f,  -1e-3f, 1.0f, -1.0f,
                                    20.0f, -20.0f, 87.0f, -87.0f, -88.5f, -100.0f, 100.0f, 1e4f,
                                    -1e4f};
    test_rng r = {0x73776967000007ull};
    static const int NS[] = {1, 7, 8, 9, 17, 100, 1000};
    for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++) {
        int n = NS[a];
        float *g = malloc(sizeof(float) * n), *g0 = malloc(sizeof(float) * n);
        float *u = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) {
            g0[i] = i < (int)(sizeof SPECIAL / sizeof SPECIAL[0]) && n >= 100 ? SPECIAL[i]
                                                                            : 20.0f * rng_sym(&r);
            u[i] = rng_mag(&r, -10, 6);
        }
        memcpy(g, g0, sizeof(float) * n);
        glm_swiglu(g, u, n);
        for (int i = 0; i < n; i++) {
            double gd = g0[i];
            double ref = gd / (1.0 + exp(-gd)) * u[i];
            ck_assert_msg(fabs(g[i] - ref) <= 1e-6 * fabs(ref) + 1e-30,
                          "swiglu g %.9g u %.9g: %.9g, ref %.9g", g0[i], u[i], g[i], ref);
        }
        free(g);
        free(g0);
        free(u);
    }
}
END_TEST

/* ---- 8. KV cache -------------------------------------------------------------- */

START_TEST(kv_cache_layout)
{
    uint8_t types[3] = {GLM_INDEXER_FULL, GLM_INDEXER_SHARED, GLM_INDEXER_FULL};
    glm_config c;
    memset(&c, 0, sizeof c);
    c.num_hidden_layers = 3;
    c.kv_lora_rank = 8;
    c.qk_rope_head_dim = 4;
    c.index_head_dim = 16;
    c.indexer_types = types;
    ck_assert_uint_eq(glm_kv_bytes_per_token(&c), ((8 + 4) * 3 + 16 * 2) * sizeof(float));

    char err[GLM_ERRLEN];
    const int NB = 5, BS = 3, SLOTS = NB * BS;
    glm_kv_cache *kv = glm_kv_cache_create(&c, 0, NB, BS, err, sizeof err);
    ck_assert_msg(kv != NULL, "%s", err);
    ck_assert_int_eq(kv->n_layers, 3);
    ck_assert_int_eq(kv->latent_dim, 12);
    ck_assert_int_eq(kv->index_dim, 16);
    ck_assert_ptr_null(kv->index_k[1]);
    ck_assert_ptr_nonnull(kv->index_k[0]);
    ck_assert_ptr_nonnull(kv->index_k[2]);

    /* the five regions are disjoint and fill exactly bytes_per_token * slots */
    const float *lo[5], *hi[5];
    int nr = 0;
    size_t total = 0;
    for (int l = 0; l < 3; l++) {
        lo[nr] = kv->latent[l];
        hi[nr] = kv->latent[l] + (size_t)SLOTS * 12;
        nr++;
        if (kv->index_k[l]) {
            lo[nr] = kv->index_k[l];
            hi[nr] = kv->index_k[l] + (size_t)SLOTS * 16;
            nr++;
        }
    }
    ck_assert_int_eq(nr, 5);
    for (int i = 0; i < nr; i++) {
        total += (size_t)(hi[i] - lo[i]) * sizeof(float);
        for (int j = 0; j < nr; j++)
            if (i != j)
                ck_assert_msg(hi[i] <= lo[j] || hi[j] <= lo[i], "regions %d and %d overlap", i, j);
    }
    ck_assert_uint_eq(total, glm_kv_bytes_per_token(&c) * (size_t)SLOTS);
    /* every slot of every region is writable and keeps its value */
    for (int i = 0; i < nr; i++)
        for (float *p = (float *)lo[i]; p < hi[i]; p++)
            *p = (float)(i * 1000 + (p - lo[i]));
    for (int i = 0; i < nr; i++)
        for (const float *p = lo[i]; p < hi[i]; p++)
            ck_assert(*p == (float)(i * 1000 + (p - lo[i])));

    glm_kv_cache_free(kv);
    glm_kv_cache_free(NULL);

    /* absurd geometries are refused with a message */
    static const int BAD[][2] = {{0, 16}, {-1, 16}, {16, 0}, {16, -1}, {16, 4097},
                                 {2147483647, 4096}, {1 << 30, 1 << 12}};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        err[0] = 0;
        ck_assert_msg(glm_kv_cache_create(&c, 0, BAD[i][0], BAD[i][1], err, sizeof err) == NULL,
                      "%d blocks of %d accepted", BAD[i][0], BAD[i][1]);
        ck_assert_msg(strstr(err, "KV cache") != NULL, "no message for %d blocks of %d: '%s'",
                      BAD[i][0], BAD[i][1], err);
    }
}
END_TEST

/* 9. top-k selection: the same set as a full sort under (score desc, index asc),
 * returned in ascending index order; many ties, NaN and infinities. */
typedef struct {
    float v;
    int i;
} topk_ref;

static int topk_ref_cmp(const void *a, const void *b)
{
    const topk_ref *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int i32_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

START_TEST(topk_selection)
{
    test_rng r = {77};
    for (int iter = 0; iter < 400; iter++) {
        int n = test_rng_int(&r, 1, iter < 300 ? 300 : 5000);
        int k = test_rng_int(&r, 1, n);
        int distinct = test_rng_int(&r, 1, 6); /* few distinct values: many ties */
        float *sc = malloc(sizeof(float) * (size_t)n), *scratch = malloc(sizeof(float) * 2 * (size_t)n);
        topk_ref *ref = malloc(sizeof *ref * (size_t)n);
        int32_t *got = malloc(sizeof(int32_t) * (size_t)k), *want = malloc(sizeof(int32_t) * (size_t)k);
        for (int i = 0; i < n; i++) {
            int kind = test_rng_int(&r, 0, 40);
            float v = iter % 2 ? (float)test_rng_int(&r, 0, distinct) : rng_sym(&r);
            if (kind == 0)
                v = NAN;
            else if (kind == 1)
                v = -INFINITY;
            else if (kind == 2)
                v = INFINITY;
            sc[i] = v;
            ref[i].v = isnan(v) ? -INFINITY : v;
            ref[i].i = i;
        }
        qsort(ref, (size_t)n, sizeof *ref, topk_ref_cmp);
        for (int i = 0; i < k; i++)
            want[i] = ref[i].i;
        qsort(want, (size_t)k, sizeof *want, i32_cmp);
        glm_topk(sc, n, k, got, scratch);
        ck_assert_msg(memcmp(got, want, sizeof(int32_t) * (size_t)k) == 0, "iter %d: n %d k %d", iter, n, k);
        free(sc), free(scratch), free(ref), free(got), free(want);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, topk_selection);
    tcase_add_loop_test(tc, matmul_reference, 0, 2);
    tcase_add_loop_test(tc, matmul_batch_invariance, 0, 2);
    tcase_add_loop_test(tc, matmul_jobs_together, 0, 2);
    tcase_add_test(tc, dot4_is_glm_dot);
    tcase_add_test(tc, pool_for_exactly_once);
    tcase_add_test(tc, norms_reference);
    tcase_add_test(tc, rope_properties);
    tcase_add_test(tc, swiglu_reference);
    tcase_add_test(tc, kv_cache_layout);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
