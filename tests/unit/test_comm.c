/*
 * test_comm.c - the in-process communicator (engine/comm/comm.h): 1..8 ranks
 * on threads, each call preceded by random sleeps and yields so that the ranks
 * arrive in every order.
 *   - all_reduce_sum equals the rank-order float32 sum bitwise on every rank
 *     (in place and not, sizes 0..20000, many calls in a row), and the inputs
 *     are such that another order would give other bits;
 *   - all_gather and broadcast exact, every root; barrier;
 *   - a random schedule of every collective with changing sizes;
 *   - poisoning: a rank that stops (or a stop from outside) makes the others'
 *     pending and later calls fail with its reason; ranks out of step and a
 *     failing stream sync poison the world; no hang (the case timeout is the
 *     guard; nothing measures time); a rank may free its buffers the moment
 *     its call fails (under ASan a peer still reading them would show);
 *   - the stream-sync callback; no allocation in any collective after create.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "testutil.h"

/* ---- ranks on threads ---------------------------------------------------------- */

typedef struct rank_ctx rank_ctx;
typedef void (*rank_fn)(rank_ctx *x);

struct rank_ctx {
    glm_comm *c;
    int rank, world;
    test_rng rng;          /* this rank's jitter */
    int jitter;            /* 1: random sleeps and yields before calls */
    void *shared;          /* the case's shared state */
    rank_fn fn;
    int failed;
    char msg[2 * GLM_ERRLEN]; /* the first failure (which also poisons
                                 the world, so that the other ranks stop) */
    long checks;           /* what was verified (reported) */
};

#define RFAIL(x, ...)                                                  \
    do {                                                               \
        if (!(x)->failed) {                                            \
            (x)->failed = 1;                                           \
            glm_err((x)->msg, sizeof (x)->msg, __VA_ARGS__);           \
            glm_comm_poison((x)->c, "test rank failed");              \
        }                                                              \
        return;                                                        \
    } while (0)

/* Nothing, a yield, or a sleep of up to 200 us: the ranks arrive in any order. */
static void jitter(rank_ctx *x)
{
    if (!x->jitter)
        return;
    int k = test_rng_int(&x->rng, 0, 9);
    if (k < 4)
        return;
    if (k < 7) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 1000L * test_rng_int(&x->rng, 1, 200)};
    nanosleep(&ts, NULL);
}

static void *rank_main(void *p)
{
    rank_ctx *x = p;
    x->fn(x);
    return NULL;
}

/* Runs fn on every rank of w, one thread each, and fails the case with the
 * first failing rank's message. Returns the checks counted over the ranks. */
static long run_ranks(glm_comm_local *w, int world, rank_fn fn, void *shared, int jit, uint64_t seed)
{
    pthread_t th[GLM_COMM_MAX_WORLD];
    rank_ctx x[GLM_COMM_MAX_WORLD];
    for (int r = 0; r < world; r++) {
        x[r] = (rank_ctx){.c = glm_comm_local_rank(w, r), .rank = r, .world = world,
                          .rng = {seed * 1000003u + (uint64_t)r}, .jitter = jit, .shared = shared, .fn = fn};
        ck_assert_int_eq(pthread_create(&th[r], NULL, rank_main, &x[r]), 0);
    }
    for (int r = 0; r < world; r++)
        pthread_join(th[r], NULL);
    long checks = 0;
    int first = -1; /* a rank that failed by itself rather than from another's poison */
    for (int r = 0; r < world; r++) {
        if (x[r].failed && (first < 0 || strstr(x[first].msg, "test rank failed")))
            first = r;
        checks += x[r].checks;
    }
    ck_assert_msg(first < 0, "world %d, rank %d: %s", world, first, first < 0 ? "" : x[first].msg);
    return checks;
}

static glm_comm_local *world_of(int world)
{
    char err[GLM_ERRLEN];
    glm_comm_local *w = glm_comm_local_create(world, NULL, NULL, err, sizeof err);
    ck_assert_msg(w, "%s", err);
    return w;
}

/* ---- test data ------------------------------------------------------------------- */

/* Rank r's vector of call k: signs and magnitudes over 2^-12..2^12, so that the
 * float32 sum's bits depend on the order of the additions. */
static void gen_vec(uint64_t k, int r, size_t n, float *out)
{
    test_rng g = {glm_mix64(k * 0x9e3779b97f4a7c15ull + (uint64_t)r * 0x632be59bd9b4e019ull + 1)};
    for (size_t i = 0; i < n; i++) {
        double u = test_rng_unit(&g) - 0.5;
        out[i] = (float)ldexp(u, test_rng_int(&g, -12, 12));
    }
}

static void gen_bytes(uint64_t k, int r, size_t n, unsigned char *out)
{
    test_rng g = {glm_mix64(k * 0xd1b54a32d192ed03ull + (uint64_t)r * 0x8cb92ba72f3d8dd7ull + 7)};
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)test_rng_next(&g);
}

/* The reference: rank 0 + rank 1 + ... in float32, element by element. */
static void rank_order_sum(uint64_t k, int world, size_t n, float *tmp, float *out)
{
    gen_vec(k, 0, n, out);
    for (int s = 1; s < world; s++) {
        gen_vec(k, s, n, tmp);
        for (size_t i = 0; i < n; i++)
            out[i] += tmp[i];
    }
}

static const size_t SIZES[] = {0, 1, 2, 3, 7, 8, 63, 64, 65, 255, 256, 257, 1000, 4097, 20000};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])
#define MAX_SIZE 20000

/* the size and placement of call k: the same on every rank */
static size_t size_of_call(uint64_t seed, uint64_t k) { return SIZES[glm_mix64(seed ^ (k * 31 + 5)) % N_SIZES]; }
static int in_place_call(uint64_t seed, uint64_t k) { return (int)(glm_mix64(seed ^ (k * 17 + 3)) >> 7) & 1; }

/* ---- collectives ----------------------------------------------------------------- */

typedef struct {
    uint64_t seed;
    int calls;
} sched_args;

static void all_reduce_rank(rank_ctx *x)
{
    const sched_args *a = x->shared;
    char err[GLM_ERRLEN];
    float *send = malloc(sizeof(float) * MAX_SIZE), *recv = malloc(sizeof(float) * MAX_SIZE);
    float *want = malloc(sizeof(float) * MAX_SIZE), *tmp = malloc(sizeof(float) * MAX_SIZE);
    for (int k = 0; k < a->calls && !x->failed; k++) {
        size_t n = size_of_call(a->seed, (uint64_t)k);
        int in_place = in_place_call(a->seed, (uint64_t)k);
        gen_vec((uint64_t)k, x->rank, n, send);
        float *out = in_place ? send : recv;
        if (!in_place)
            for (size_t i = 0; i < n; i++)
                recv[i] = NAN;
        jitter(x);
        if (glm_comm_all_reduce_sum(x->c, send, out, n, NULL, err, sizeof err) != GLM_OK)
            RFAIL(x, "call %d: %s", k, err);
        rank_order_sum((uint64_t)k, x->world, n, tmp, want);
        if (n && memcmp(out, want, n * sizeof(float)) != 0)
            RFAIL(x, "call %d (%zu floats, %s): not the rank-order sum", k, n, in_place ? "in place" : "out of place");
        if (!in_place) {
            gen_vec((uint64_t)k, x->rank, n, tmp);
            if (n && memcmp(send, tmp, n * sizeof(float)) != 0)
                RFAIL(x, "call %d: send changed", k);
        }
        x->checks += (long)n;
    }
    free(send);
    free(recv);
    free(want);
    free(tmp);
}

/* The reference is sensitive to the order: summing in reverse changes bits. */
START_TEST(order_matters)
{
    size_t n = 4097;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *t = malloc(sizeof(float) * n);
    rank_order_sum(3, 8, n, t, a);
    gen_vec(3, 7, n, b);
    for (int s = 6; s >= 0; s--) {
        gen_vec(3, s, n, t);
        for (size_t i = 0; i < n; i++)
            b[i] += t[i];
    }
    size_t differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    printf("order_matters: reverse order changes %zu of %zu sums\n", differ, n);
    ck_assert_uint_gt(differ, n / 20);
    free(a);
    free(b);
    free(t);
}
END_TEST

START_TEST(all_reduce_bitwise)
{
    for (int world = 1; world <= 8; world++) {
        glm_comm_local *w = world_of(world);
        sched_args a = {.seed = 100 + (uint64_t)world, .calls = 60};
        long checks = run_ranks(w, world, all_reduce_rank, &a, 1, a.seed);
        printf("all_reduce_bitwise: world %d: %d calls, %ld elements checked bitwise\n", world, a.calls, checks);
        glm_comm_local_free(w);
    }
}
END_TEST

/* Many calls without jitter: the ranks run flat out into one another. */
START_TEST(all_reduce_many)
{
    int worlds[] = {2, 3, 8};
    for (int i = 0; i < 3; i++) {
        glm_comm_local *w = world_of(worlds[i]);
        sched_args a = {.seed = 7 + (uint64_t)i, .calls = 400};
        run_ranks(w, worlds[i], all_reduce_rank, &a, 0, a.seed);
        glm_comm_local_free(w);
    }
}
END_TEST

static void gather_bcast_rank(rank_ctx *x)
{
    const sched_args *a = x->shared;
    char err[GLM_ERRLEN];
    size_t W = (size_t)x->world, cap = MAX_SIZE * W;
    unsigned char *send = malloc(MAX_SIZE), *recv = malloc(cap), *want = malloc(cap);
    for (int k = 0; k < a->calls && !x->failed; k++) {
        size_t n = size_of_call(a->seed, (uint64_t)k);
        int in_place = in_place_call(a->seed, (uint64_t)k);
        /* all_gather */
        memset(recv, 0xA5, cap);
        unsigned char *mine = in_place ? recv + (size_t)x->rank * n : send;
        gen_bytes((uint64_t)k, x->rank, n, mine);
        for (int s = 0; s < x->world; s++)
            gen_bytes((uint64_t)k, s, n, want + (size_t)s * n);
        jitter(x);
        if (glm_comm_all_gather(x->c, mine, recv, n, NULL, err, sizeof err) != GLM_OK)
            RFAIL(x, "all_gather %d: %s", k, err);
        if (memcmp(recv, want, n * W) != 0)
            RFAIL(x, "all_gather %d (%zu bytes, %s): wrong", k, n, in_place ? "in place" : "out of place");
        for (size_t i = n * W; i < cap; i++)
            if (recv[i] != 0xA5)
                RFAIL(x, "all_gather %d wrote past world * bytes", k);
        /* broadcast from every root in turn */
        int root = k % x->world;
        gen_bytes((uint64_t)k + 1000000, x->rank, n, recv);
        jitter(x);
        if (glm_comm_broadcast(x->c, recv, n, root, NULL, err, sizeof err) != GLM_OK)
            RFAIL(x, "broadcast %d: %s", k, err);
        gen_bytes((uint64_t)k + 1000000, root, n, want);
        if (memcmp(recv, want, n) != 0)
            RFAIL(x, "broadcast %d (root %d, %zu bytes): wrong", k, root, n);
        x->checks += 2;
    }
    free(send);
    free(recv);
    free(want);
}

START_TEST(all_gather_broadcast_exact)
{
    for (int world = 1; world <= 8; world++) {
        glm_comm_local *w = world_of(world);
        sched_args a = {.seed = 200 + (uint64_t)world, .calls = 40};
        run_ranks(w, world, gather_bcast_rank, &a, 1, a.seed);
        glm_comm_local_free(w);
    }
}
END_TEST

typedef struct {
    atomic_int arrived;
    int rounds;
} barrier_args;

/* Between barrier k and k + 1 every rank adds 1: after barrier k + 1 each sees
 * all world * (k + 1) additions, never more than the next round can add. */
static void barrier_rank(rank_ctx *x)
{
    barrier_args *a = x->shared;
    char err[GLM_ERRLEN];
    for (int k = 0; k < a->rounds; k++) {
        jitter(x);
        atomic_fetch_add(&a->arrived, 1);
        if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_OK)
            RFAIL(x, "barrier %d: %s", k, err);
        int seen = atomic_load(&a->arrived);
        if (seen < x->world * (k + 1) || seen > x->world * (k + 2))
            RFAIL(x, "after barrier %d: %d arrivals, want %d..%d", k, seen, x->world * (k + 1), x->world * (k + 2));
        x->checks++;
    }
}

START_TEST(barrier_orders)
{
    for (int world = 1; world <= 8; world++) {
        glm_comm_local *w = world_of(world);
        barrier_args a = {.rounds = 300};
        atomic_init(&a.arrived, 0);
        run_ranks(w, world, barrier_rank, &a, 1, 300 + (uint64_t)world);
        ck_assert_int_eq(atomic_load(&a.arrived), world * a.rounds);
        glm_comm_local_free(w);
    }
}
END_TEST

/* A random schedule of every collective, changing sizes, the same on every rank. */
static void mixed_rank(rank_ctx *x)
{
    const sched_args *a = x->shared;
    char err[GLM_ERRLEN];
    size_t W = (size_t)x->world;
    float *f = malloc(sizeof(float) * MAX_SIZE), *want = malloc(sizeof(float) * MAX_SIZE);
    float *tmp = malloc(sizeof(float) * MAX_SIZE);
    unsigned char *b = malloc(MAX_SIZE * W), *wb = malloc(MAX_SIZE * W);
    for (int k = 0; k < a->calls && !x->failed; k++) {
        uint64_t h = glm_mix64(a->seed + (uint64_t)k * 977);
        size_t n = size_of_call(a->seed, (uint64_t)k);
        jitter(x);
        switch (h % 4) {
        case 0:
            gen_vec((uint64_t)k, x->rank, n, f);
            if (glm_comm_all_reduce_sum(x->c, f, f, n, NULL, err, sizeof err) != GLM_OK)
                RFAIL(x, "call %d all_reduce_sum: %s", k, err);
            rank_order_sum((uint64_t)k, x->world, n, tmp, want);
            if (n && memcmp(f, want, n * sizeof(float)) != 0)
                RFAIL(x, "call %d all_reduce_sum of %zu: wrong", k, n);
            break;
        case 1:
            gen_bytes((uint64_t)k, x->rank, n, b + (size_t)x->rank * n);
            if (glm_comm_all_gather(x->c, b + (size_t)x->rank * n, b, n, NULL, err, sizeof err) != GLM_OK)
                RFAIL(x, "call %d all_gather: %s", k, err);
            for (int s = 0; s < x->world; s++)
                gen_bytes((uint64_t)k, s, n, wb + (size_t)s * n);
            if (memcmp(b, wb, n * W) != 0)
                RFAIL(x, "call %d all_gather of %zu: wrong", k, n);
            break;
        case 2: {
            int root = (int)((h >> 8) % W);
            gen_bytes((uint64_t)k, x->rank, n, b);
            if (glm_comm_broadcast(x->c, b, n, root, NULL, err, sizeof err) != GLM_OK)
                RFAIL(x, "call %d broadcast: %s", k, err);
            gen_bytes((uint64_t)k, root, n, wb);
            if (memcmp(b, wb, n) != 0)
                RFAIL(x, "call %d broadcast of %zu from %d: wrong", k, n, root);
            break;
        }
        default:
            if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_OK)
                RFAIL(x, "call %d barrier: %s", k, err);
        }
        x->checks++;
    }
    free(f);
    free(want);
    free(tmp);
    free(b);
    free(wb);
}

START_TEST(mixed_schedule)
{
    for (int world = 1; world <= 8; world++) {
        glm_comm_local *w = world_of(world);
        sched_args a = {.seed = 400 + (uint64_t)world, .calls = 150};
        run_ranks(w, world, mixed_rank, &a, (world & 1), a.seed);
        glm_comm_local_free(w);
    }
}
END_TEST

START_TEST(bad_world)
{
    char err[GLM_ERRLEN];
    ck_assert_ptr_null(glm_comm_local_create(0, NULL, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "world 0"));
    ck_assert_ptr_null(glm_comm_local_create(GLM_COMM_MAX_WORLD + 1, NULL, NULL, err, sizeof err));
    glm_comm_local *w = world_of(3);
    ck_assert_int_eq(glm_comm_rank(glm_comm_local_rank(w, 2)), 2);
    ck_assert_int_eq(glm_comm_world(glm_comm_local_rank(w, 2)), 3);
    ck_assert_int_eq(glm_comm_poisoned(glm_comm_local_rank(w, 0), err, sizeof err), 0);
    glm_comm_local_free(w);
}
END_TEST

/* ---- poisoning ------------------------------------------------------------------- */

typedef struct {
    int stopper;        /* the rank that stops, -1: none (stopped from outside) */
    int calls_before;   /* its successful calls before it stops */
    const char *why;
} poison_args;

/* Every call of every kind fails once the world is poisoned, with the reason. */
static void expect_dead(rank_ctx *x, const char *why)
{
    char err[GLM_ERRLEN];
    float v[4] = {0};
    if (glm_comm_all_reduce_sum(x->c, v, v, 4, NULL, err, sizeof err) != GLM_ERR || !strstr(err, why))
        RFAIL(x, "all_reduce_sum after poisoning: %s", err);
    if (glm_comm_all_gather(x->c, v, v, 0, NULL, err, sizeof err) != GLM_ERR || !strstr(err, why))
        RFAIL(x, "all_gather after poisoning: %s", err);
    if (glm_comm_broadcast(x->c, v, 4, 0, NULL, err, sizeof err) != GLM_ERR || !strstr(err, why))
        RFAIL(x, "broadcast after poisoning: %s", err);
    if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_ERR || !strstr(err, why))
        RFAIL(x, "barrier after poisoning: %s", err);
    if (!glm_comm_poisoned(x->c, err, sizeof err) || !strstr(err, why))
        RFAIL(x, "glm_comm_poisoned: %s", err);
}

static void poison_rank(rank_ctx *x)
{
    const poison_args *a = x->shared;
    char err[GLM_ERRLEN], want[128];
    float v[300];
    snprintf(want, sizeof want, "rank %d: %s", a->stopper, a->why);
    for (int k = 0;; k++) {
        if (x->rank == a->stopper && k == a->calls_before) {
            jitter(x);
            glm_comm_poison(x->c, a->why);
            break;
        }
        for (int i = 0; i < 300; i++)
            v[i] = (float)(i + x->rank);
        jitter(x);
        /* alternate the kinds, so the stop finds ranks waiting in each */
        int rc = (k % 3 == 0)   ? glm_comm_all_reduce_sum(x->c, v, v, 300, NULL, err, sizeof err)
                 : (k % 3 == 1) ? glm_comm_broadcast(x->c, v, sizeof v, k % x->world, NULL, err, sizeof err)
                                : glm_comm_barrier(x->c, NULL, err, sizeof err);
        if (rc != GLM_OK) {
            if (k < a->calls_before)
                RFAIL(x, "call %d failed before the stop: %s", k, err);
            if (!strstr(err, want))
                RFAIL(x, "error without the reason: %s", err);
            x->checks++;
            break;
        }
        if (k > a->calls_before)
            RFAIL(x, "call %d succeeded after the stop", k);
    }
    expect_dead(x, a->why);
}

START_TEST(poison_rank_stops)
{
    for (int world = 2; world <= 8; world++) {
        for (int stopper = 0; stopper < world; stopper += (world > 4 ? 3 : 1)) {
            glm_comm_local *w = world_of(world);
            poison_args a = {stopper, (world * 7 + stopper) % 11, "weights failed to load"};
            long errs = run_ranks(w, world, poison_rank, &a, 1, (uint64_t)(world * 100 + stopper));
            ck_assert_int_eq(errs, world - 1);
            glm_comm_local_free(w);
        }
    }
}
END_TEST

/* Rank 0 never calls; the others wait in a barrier until a stop from outside. */
static void waiting_rank(rank_ctx *x)
{
    char err[GLM_ERRLEN];
    if (x->rank == 0)
        return;
    jitter(x);
    if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_ERR)
        RFAIL(x, "barrier without rank 0 succeeded");
    if (!strstr(err, "rank 0: server shutting down"))
        RFAIL(x, "error without the reason: %s", err);
    expect_dead(x, "server shutting down");
}

typedef struct {
    glm_comm_local *w;
} stopper_args;

static void *stop_later(void *p)
{
    stopper_args *s = p;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    glm_comm_poison(glm_comm_local_rank(s->w, 0), "server shutting down");
    glm_comm_poison(glm_comm_local_rank(s->w, 1), "a second reason is ignored");
    return NULL;
}

START_TEST(poison_from_outside)
{
    for (int world = 2; world <= 8; world += 3) {
        glm_comm_local *w = world_of(world);
        stopper_args s = {w};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, stop_later, &s), 0);
        run_ranks(w, world, waiting_rank, NULL, 1, 77);
        pthread_join(th, NULL);
        glm_comm_local_free(w);
    }
}
END_TEST

/* Ranks all-reduce large vectors while another thread stops the world; each
 * frees its vector the moment its call fails. A peer still reading it would
 * be a use after free (ASan, `make asan`, reports it): a failed call returns
 * only once no rank touches others' buffers. */
#define BIG 300000
static void free_at_once_rank(rank_ctx *x)
{
    char err[GLM_ERRLEN];
    float *v = malloc(sizeof(float) * BIG);
    for (int k = 0; k < 1000000; k++) {
        for (int i = 0; i < BIG; i += 1000)
            v[i] = (float)k;
        if (glm_comm_all_reduce_sum(x->c, v, v, BIG, NULL, err, sizeof err) != GLM_OK) {
            free(v);
            if (!strstr(err, "server shutting down"))
                RFAIL(x, "error without the reason: %s", err);
            x->checks = k;
            return;
        }
    }
    free(v);
    RFAIL(x, "never stopped");
}

START_TEST(failure_frees_at_once)
{
    for (int world = 2; world <= 8; world += 2) {
        glm_comm_local *w = world_of(world);
        stopper_args s = {w};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, stop_later, &s), 0);
        long calls = run_ranks(w, world, free_at_once_rank, NULL, 0, 5);
        pthread_join(th, NULL);
        printf("failure_frees_at_once: world %d stopped after %ld calls (over the ranks)\n", world, calls);
        glm_comm_local_free(w);
    }
}
END_TEST

/* Rank 1 calls with another size (or another collective): every rank fails. */
typedef struct {
    int variant;
} step_args;

static void out_of_step_rank(rank_ctx *x)
{
    const step_args *a = x->shared;
    char err[GLM_ERRLEN];
    float v[16] = {0};
    int rc;
    jitter(x);
    if (a->variant == 0)
        rc = glm_comm_all_reduce_sum(x->c, v, v, x->rank == 1 ? 11 : 10, NULL, err, sizeof err);
    else if (a->variant == 1)
        rc = x->rank == 1 ? glm_comm_broadcast(x->c, v, 40, 0, NULL, err, sizeof err)
                          : glm_comm_all_reduce_sum(x->c, v, v, 10, NULL, err, sizeof err);
    else
        rc = glm_comm_broadcast(x->c, v, 40, x->rank == 1 ? 1 : 0, NULL, err, sizeof err);
    if (rc != GLM_ERR)
        RFAIL(x, "variant %d: a call out of step succeeded", a->variant);
    if (!strstr(err, "out of step"))
        RFAIL(x, "variant %d: %s", a->variant, err);
    expect_dead(x, "out of step");
}

START_TEST(out_of_step_poisons)
{
    for (int variant = 0; variant < 3; variant++) {
        glm_comm_local *w = world_of(3);
        step_args a = {variant};
        run_ranks(w, 3, out_of_step_rank, &a, 1, 500 + (uint64_t)variant);
        glm_comm_local_free(w);
    }
}
END_TEST

/* ---- streams ----------------------------------------------------------------------- */

typedef struct {
    atomic_int calls;
    atomic_int wrong;
    void *fail_on;      /* the stream whose sync fails, or NULL */
} sync_state;

static int fake_sync(void *stream, void *user, char *err, size_t errlen)
{
    sync_state *s = user;
    atomic_fetch_add(&s->calls, 1);
    if ((uintptr_t)stream < 0x1000 || (uintptr_t)stream >= 0x1000 + GLM_COMM_MAX_WORLD)
        atomic_fetch_add(&s->wrong, 1);
    if (stream == s->fail_on)
        return glm_err(err, errlen, "device lost");
    return GLM_OK;
}

#define STREAM_OF(r) ((void *)(uintptr_t)(0x1000 + (r)))

static void stream_rank(rank_ctx *x)
{
    char err[GLM_ERRLEN];
    float v[64];
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 64; i++)
            v[i] = (float)(x->rank * i);
        void *stream = (k & 1) ? STREAM_OF(x->rank) : NULL;
        jitter(x);
        if (glm_comm_all_reduce_sum(x->c, v, v, 64, stream, err, sizeof err) != GLM_OK)
            RFAIL(x, "call %d: %s", k, err);
        for (int i = 0; i < 64; i++) {
            float want = 0;
            for (int s = 0; s < x->world; s++)
                want += (float)(s * i);
            if (v[i] != want)
                RFAIL(x, "call %d: element %d", k, i);
        }
    }
}

static void stream_fail_rank(rank_ctx *x)
{
    char err[GLM_ERRLEN];
    float v[8] = {0};
    jitter(x);
    if (glm_comm_all_gather(x->c, v, v, 4, STREAM_OF(x->rank), err, sizeof err) != GLM_ERR)
        RFAIL(x, "a failing stream sync went unnoticed");
    if (!strstr(err, "device lost"))
        RFAIL(x, "error without the reason: %s", err);
}

START_TEST(stream_sync)
{
    char err[GLM_ERRLEN];
    sync_state s;
    atomic_init(&s.calls, 0);
    atomic_init(&s.wrong, 0);
    s.fail_on = NULL;
    glm_comm_local *w = glm_comm_local_create(4, fake_sync, &s, err, sizeof err);
    ck_assert_ptr_nonnull(w);
    run_ranks(w, 4, stream_rank, NULL, 1, 9);
    ck_assert_int_eq(atomic_load(&s.calls), 4 * 5); /* once per call that had a stream */
    ck_assert_int_eq(atomic_load(&s.wrong), 0);
    glm_comm_local_free(w);

    /* without a sync function a stream is ignored */
    w = world_of(4);
    run_ranks(w, 4, stream_rank, NULL, 1, 10);
    glm_comm_local_free(w);

    /* a sync that fails poisons the world */
    atomic_store(&s.calls, 0);
    s.fail_on = STREAM_OF(2);
    w = glm_comm_local_create(4, fake_sync, &s, err, sizeof err);
    run_ranks(w, 4, stream_fail_rank, NULL, 1, 11);
    glm_comm_local_free(w);
}
END_TEST

/* ---- no allocation in the collectives --------------------------------------------- */

/* every malloc-family call is counted while `counting` is set (alloc_count.h) */
#include "alloc_count.h"
#if COUNT_ALLOCS

typedef struct {
    float *f[8];
    unsigned char *b[8];
} alloc_args;

static void alloc_rank(rank_ctx *x)
{
    alloc_args *a = x->shared;
    char err[GLM_ERRLEN];
    float *f = a->f[x->rank];
    unsigned char *b = a->b[x->rank];
    if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_OK)
        RFAIL(x, "%s", err);
    if (x->rank == 0)
        atomic_store(&counting, 1);
    if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_OK)
        RFAIL(x, "%s", err);
    for (int k = 0; k < 200; k++) {
        size_t n = SIZES[k % N_SIZES];
        int ok = glm_comm_all_reduce_sum(x->c, f, f, n, NULL, err, sizeof err) == GLM_OK &&
                 glm_comm_all_gather(x->c, b + (size_t)x->rank * n, b, n, NULL, err, sizeof err) == GLM_OK &&
                 glm_comm_broadcast(x->c, b, n, k % x->world, NULL, err, sizeof err) == GLM_OK &&
                 glm_comm_barrier(x->c, NULL, err, sizeof err) == GLM_OK;
        if (!ok)
            RFAIL(x, "call %d: %s", k, err);
    }
    if (x->rank == 0)
        atomic_store(&counting, 0);
    if (glm_comm_barrier(x->c, NULL, err, sizeof err) != GLM_OK)
        RFAIL(x, "%s", err);
}
#endif

START_TEST(no_alloc_in_calls)
{
#if !COUNT_ALLOCS
    TEST_SKIP("a sanitizer owns malloc");
#else
    int world = 8;
    glm_comm_local *w = world_of(world);
    alloc_args a;
    for (int r = 0; r < world; r++) {
        a.f[r] = calloc(MAX_SIZE, sizeof(float));
        a.b[r] = calloc(MAX_SIZE, (size_t)world);
    }
    atomic_store(&n_allocs, 0);
    run_ranks(w, world, alloc_rank, &a, 0, 1);
    printf("no_alloc_in_calls: %d allocations in 800 collectives per rank, world %d\n", atomic_load(&n_allocs),
           world);
    ck_assert_int_eq(atomic_load(&n_allocs), 0);
    for (int r = 0; r < world; r++) {
        free(a.f[r]);
        free(a.b[r]);
    }
    glm_comm_local_free(w);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("local");
    tcase_set_timeout(tc, 120); /* the hang guard: a rank left waiting fails the case */
    tcase_add_test(tc, bad_world);
    tcase_add_test(tc, order_matters);
    tcase_add_test(tc, all_reduce_bitwise);
    tcase_add_test(tc, all_reduce_many);
    tcase_add_test(tc, all_gather_broadcast_exact);
    tcase_add_test(tc, barrier_orders);
    tcase_add_test(tc, mixed_schedule);
    tcase_add_test(tc, poison_rank_stops);
    tcase_add_test(tc, poison_from_outside);
    tcase_add_test(tc, failure_frees_at_once);
    tcase_add_test(tc, out_of_step_poisons);
    tcase_add_test(tc, stream_sync);
    tcase_add_test(tc, no_alloc_in_calls);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
