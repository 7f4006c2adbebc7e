/*
 * test_comm_nccl.c - the NCCL communicator (cuda/comm_nccl.h) on the GPUs of
 * this machine, one thread and one GPU per rank (tests/gpu/run.sh runs it
 * when there are two or more GPUs; it cannot run without a GPU).
 *
 *   build/gpu/test_comm_nccl [world]    (default: every GPU, at most 8)
 *
 * Checks: all_reduce_sum on the rank's stream, in place and not, sizes 1 to
 * 1M + 3: the same bits on every rank, within 1e-5 x sum |x| of a double
 * sum; all_gather and broadcast (every root) exact; barrier; then rank
 * world - 1 stops (glm_comm_poison) and every other rank's pending barrier
 * must fail with its reason. Prints the time of one all-reduce of GLM-5's
 * hidden size (6144 floats per token) at 1, 8, 64 and 512 tokens: the two
 * all-reduces of each layer. Exits 0 when every check passed.
 */
#include <cuda_runtime_api.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/util.h"
#include "cuda/comm_nccl.h"

#define MAX_N ((size_t)(1 << 20) + 3)

typedef struct {
    glm_comm_nccl *g;
    int rank, world;
    float *host_out;        /* [MAX_N] what this rank's all-reduce gave (for the cross-rank check) */
    int failed;
    char msg[2 * GLM_ERRLEN];
} rank_arg;

static pthread_barrier_t host_barrier; /* between the checks, so rank 0 reads the others' results */
static const size_t SIZES[] = {1, 7, 6144, 6144 * 8 + 5, MAX_N};

static float value(int rank, size_t i, int k)
{
    uint64_t s = (uint64_t)k * 1000003u + (uint64_t)rank * 7919u + i;
    double u = (double)(glm_mix64(s) >> 11) * (1.0 / 9007199254740992.0) - 0.5;
    return (float)ldexp(u, (int)(glm_mix64(s + 1) % 17) - 8);
}

#define FAIL(a, ...)                                              \
    do {                                                          \
        glm_err((a)->msg, sizeof (a)->msg, __VA_ARGS__);          \
        (a)->failed = 1;                                          \
        goto out;                                                 \
    } while (0)
#define CK(a, e) \
    do { cudaError_t ce_ = (e); if (ce_ != cudaSuccess) FAIL(a, "%s: %s", #e, cudaGetErrorString(ce_)); } while (0)

static void *rank_main(void *p)
{
    rank_arg *a = p;
    char err[GLM_ERRLEN];
    glm_comm *c = NULL;
    float *d_send = NULL, *d_recv = NULL, *h = NULL;
    unsigned char *d_bytes = NULL, *hb = NULL;
    cudaStream_t s = NULL;
    int W = a->world;
    if (glm_comm_nccl_init_rank(a->g, a->rank, a->rank, &c, err, sizeof err) != GLM_OK)
        FAIL(a, "join: %s", err);
    CK(a, cudaStreamCreate(&s));
    CK(a, cudaMalloc((void **)&d_send, MAX_N * sizeof(float)));
    CK(a, cudaMalloc((void **)&d_recv, MAX_N * sizeof(float)));
    CK(a, cudaMalloc((void **)&d_bytes, (size_t)W * 4096));
    h = malloc(MAX_N * sizeof(float));
    hb = malloc((size_t)W * 4096);

    /* all_reduce_sum: same bits everywhere, close to the double sum */
    for (int k = 0; k < 10; k++) {
        size_t n = SIZES[k % 5];
        int in_place = k >= 5;
        for (size_t i = 0; i < n; i++)
            h[i] = value(a->rank, i, k);
        CK(a, cudaMemcpyAsync(d_send, h, n * sizeof(float), cudaMemcpyHostToDevice, s));
        float *out = in_place ? d_send : d_recv;
        if (glm_comm_all_reduce_sum(c, d_send, out, n, s, err, sizeof err) != GLM_OK)
            FAIL(a, "all_reduce_sum %d: %s", k, err);
        CK(a, cudaMemcpyAsync(a->host_out, out, n * sizeof(float), cudaMemcpyDeviceToHost, s));
        CK(a, cudaStreamSynchronize(s));
        for (size_t i = 0; i < n; i++) {
            double sum = 0, mag = 0;
            for (int r = 0; r < W; r++) {
                sum += value(r, i, k);
                mag += fabs(value(r, i, k));
            }
            if (fabs(a->host_out[i] - sum) > 1e-5 * mag + 1e-30)
                FAIL(a, "all_reduce_sum %d (%zu floats): [%zu] = %g, want %g", k, n, i, a->host_out[i], sum);
        }
        pthread_barrier_wait(&host_barrier);
        if (a->rank == 0) /* a is args[0] here: a[r] is rank r's */
            for (int r = 1; r < W; r++)
                if (memcmp(a[r].host_out, a->host_out, n * sizeof(float)) != 0)
                    FAIL(a, "all_reduce_sum %d: rank %d's bits differ from rank 0's", k, r);
        pthread_barrier_wait(&host_barrier);
    }

    /* all_gather (in place) and broadcast from every root: exact */
    for (size_t i = 0; i < 4096; i++)
        hb[(size_t)a->rank * 4096 + i] = (unsigned char)(i * 31 + (size_t)a->rank * 7);
    CK(a, cudaMemcpy(d_bytes + (size_t)a->rank * 4096, hb + (size_t)a->rank * 4096, 4096, cudaMemcpyHostToDevice));
    if (glm_comm_all_gather(c, d_bytes + (size_t)a->rank * 4096, d_bytes, 4096, s, err, sizeof err) != GLM_OK)
        FAIL(a, "all_gather: %s", err);
    CK(a, cudaMemcpyAsync(hb, d_bytes, (size_t)W * 4096, cudaMemcpyDeviceToHost, s));
    CK(a, cudaStreamSynchronize(s));
    for (int r = 0; r < W; r++)
        for (size_t i = 0; i < 4096; i++)
            if (hb[(size_t)r * 4096 + i] != (unsigned char)(i * 31 + (size_t)r * 7))
                FAIL(a, "all_gather: rank %d's byte %zu", r, i);
    for (int root = 0; root < W; root++) {
        for (size_t i = 0; i < 4096; i++)
            hb[i] = (unsigned char)(i + (size_t)a->rank * 13);
        CK(a, cudaMemcpy(d_bytes, hb, 4096, cudaMemcpyHostToDevice));
        if (glm_comm_broadcast(c, d_bytes, 4096, root, NULL, err, sizeof err) != GLM_OK)
            FAIL(a, "broadcast from %d: %s", root, err);
        CK(a, cudaMemcpy(hb, d_bytes, 4096, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < 4096; i++)
            if (hb[i] != (unsigned char)(i + (size_t)root * 13))
                FAIL(a, "broadcast from %d: byte %zu", root, i);
    }
    if (glm_comm_barrier(c, s, err, sizeof err) != GLM_OK)
        FAIL(a, "barrier: %s", err);

    /* the all-reduces of a layer: hidden 6144 floats per token */
    int tokens[] = {1, 8, 64, 512};
    for (int t = 0; t < 4; t++) {
        size_t n = (size_t)6144 * (size_t)tokens[t];
        cudaEvent_t e0, e1;
        CK(a, cudaEventCreate(&e0));
        CK(a, cudaEventCreate(&e1));
        for (int w = 0; w < 5; w++)
            if (glm_comm_all_reduce_sum(c, d_send, d_send, n, s, err, sizeof err) != GLM_OK)
                FAIL(a, "timing: %s", err);
        CK(a, cudaEventRecord(e0, s));
        int reps = 100;
        for (int w = 0; w < reps; w++)
            if (glm_comm_all_reduce_sum(c, d_send, d_send, n, s, err, sizeof err) != GLM_OK)
                FAIL(a, "timing: %s", err);
        CK(a, cudaEventRecord(e1, s));
        CK(a, cudaEventSynchronize(e1));
        float ms = 0;
        CK(a, cudaEventElapsedTime(&ms, e0, e1));
        if (a->rank == 0)
            printf("all_reduce_sum  world %d  %4d tokens x 6144 floats (%7.2f MB): %8.1f us per call, %8.1f us "
                   "per layer (two)\n", W, tokens[t], n * 4 / 1e6, 1000.0 * ms / reps, 2000.0 * ms / reps);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }

    /* the last rank stops; the others' barrier must fail with its reason */
    if (a->rank == W - 1) {
        glm_comm_poison(c, "test stop");
    } else {
        if (glm_comm_barrier(c, s, err, sizeof err) == GLM_OK)
            FAIL(a, "a barrier without rank %d succeeded", W - 1);
        if (!strstr(err, "test stop"))
            FAIL(a, "stop without its reason: %s", err);
    }
    if (glm_comm_all_reduce_sum(c, d_send, d_send, 1, s, err, sizeof err) == GLM_OK || !strstr(err, "test stop"))
        FAIL(a, "a call after the stop: %s", err);
out:
    if (a->failed && c)
        glm_comm_poison(c, "test rank failed");
    cudaFree(d_send);
    cudaFree(d_recv);
    cudaFree(d_bytes);
    if (s)
        cudaStreamDestroy(s);
    free(h);
    free(hb);
    return NULL;
}

int main(int argc, char **argv)
{
    char err[GLM_ERRLEN];
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        printf("SKIP  no CUDA device\n");
        return 77;
    }
    int world = argc > 1 ? atoi(argv[1]) : GLM_MIN(n_dev, 8);
    if (world < 1 || world > n_dev) {
        fprintf(stderr, "test_comm_nccl: world %d, but %d GPU(s)\n", world, n_dev);
        return 2;
    }
    glm_comm_nccl_id id;
    if (glm_comm_nccl_get_id(&id, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "test_comm_nccl: %s\n", err);
        return 1;
    }
    glm_comm_nccl *g = glm_comm_nccl_create(world, 0, world, &id, err, sizeof err);
    if (!g) {
        fprintf(stderr, "test_comm_nccl: %s\n", err);
        return 1;
    }
    pthread_barrier_init(&host_barrier, NULL, (unsigned)world);
    rank_arg *args = calloc((size_t)world, sizeof *args);
    pthread_t th[8];
    for (int r = 0; r < world; r++) {
        args[r] = (rank_arg){.g = g, .rank = r, .world = world, .host_out = malloc(MAX_N * sizeof(float))};
        pthread_create(&th[r], NULL, rank_main, &args[r]);
    }
    for (int r = 0; r < world; r++)
        pthread_join(th[r], NULL);
    int failed = 0;
    for (int r = 0; r < world; r++) {
        if (args[r].failed) {
            fprintf(stderr, "rank %d: %s\n", r, args[r].msg);
            failed = 1;
        }
        free(args[r].host_out);
    }
    glm_comm_nccl_free(g);
    free(args);
    printf("%s: NCCL communicator, world %d\n", failed ? "FAIL" : "PASS", world);
    return failed;
}
