/* cuda_cpu.cpp - the CPU execution layer's scheduler: CUDA threads as fibers, blocks over OS
 * threads, barriers and warp collectives as rendezvous, the launch. The runtime API is in
 * cuda_cpu_runtime.cpp. Test-only: never linked into glm-server. Contract: cuda_cpu.h. */
#include "cuda_cpu.h"
#include "cuda_cpu_internal.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define GLM_CPU_ASAN 1
#else
#define GLM_CPU_ASAN 0
#endif

/* x86-64: a hand-written register switch; elsewhere (or with -DGLM_CUDA_CPU_UCONTEXT) ucontext. */
#if defined(__x86_64__) && !defined(GLM_CUDA_CPU_UCONTEXT)
#define GLM_CPU_ASM_SWITCH 1
#else
#define GLM_CPU_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace glm_cpu {

thread_local const coords *cur_coords;

/* ---- fibers ---------------------------------------------------------------------------------- */
#if GLM_CPU_ASM_SWITCH
/* glm_cpu_switch(&save_sp, new_sp): saves callee-saved registers, MXCSR and the x87 control word
 * on the current stack, stores the stack pointer, and resumes the context saved at new_sp. */
extern "C" void glm_cpu_switch(void **save, void *to);
extern "C" void glm_cpu_fiber_start();
asm(".text\n"
    ".globl glm_cpu_switch\n.type glm_cpu_switch,@function\n"
    "glm_cpu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size glm_cpu_switch,.-glm_cpu_switch\n"
    ".globl glm_cpu_fiber_start\n.type glm_cpu_fiber_start,@function\n"
    "glm_cpu_fiber_start:\n"
    "  movq %r12, %rdi\n  callq *%r13\n  ud2\n"
    ".size glm_cpu_fiber_start,.-glm_cpu_fiber_start\n");
#endif

enum fstate { F_RUN, F_BARRIER, F_WARP, F_DONE };

struct fiber {
#if GLM_CPU_ASM_SWITCH
    void *sp;
#else
    ucontext_t uc;
#endif
    char *stack;
    size_t stack_size;
    coords c;
    int lane, warp_id;
    fstate st;
    const char *file;
    int line;
    /* barrier */
    int bar_kind, pred, result;
    /* warp collective */
    warp_op wop;
    unsigned mask;
    unsigned char in[8], out[8];
    size_t size;
    int arg, width;
    unsigned long long wres;
#if GLM_CPU_ASAN
    void *fake_stack;
#endif
};

struct block_run;
static thread_local block_run *cur_block;
static thread_local fiber *cur_fiber;

struct block_run {
    std::vector<fiber> f;
    int n;
#if GLM_CPU_ASM_SWITCH
    void *sched_sp;
#else
    ucontext_t sched_uc;
#endif
    const std::function<void()> *body;
    const char *launch_file;
    int launch_line;
    unsigned char *smem;
    size_t smem_size;
    std::mt19937 rng;
#if GLM_CPU_ASAN
    const void *os_stack_bottom; /* the OS thread's stack, where the scheduler runs */
    size_t os_stack_size;
#endif
};

[[noreturn]] static void fail(const char *what)
{
    fprintf(stderr, "cuda_cpu: %s\n", what);
    fflush(stderr);
    abort();
}

static void fiber_main(fiber *f);

static void to_scheduler(fiber *f, bool exiting)
{
    block_run *b = cur_block;
#if GLM_CPU_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake_stack, b->os_stack_bottom, b->os_stack_size);
#else
    (void)exiting;
#endif
#if GLM_CPU_ASM_SWITCH
    glm_cpu_switch(&f->sp, b->sched_sp);
#else
    swapcontext(&f->uc, &b->sched_uc);
#endif
#if GLM_CPU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#endif
}

static void to_fiber(block_run *b, fiber *f)
{
    cur_fiber = f;
    cur_coords = &f->c;
#if GLM_CPU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack, f->stack_size);
#endif
#if GLM_CPU_ASM_SWITCH
    glm_cpu_switch(&b->sched_sp, f->sp);
#else
    swapcontext(&b->sched_uc, &f->uc);
#endif
#if GLM_CPU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    cur_fiber = nullptr;
    cur_coords = nullptr;
}

#if GLM_CPU_ASM_SWITCH
extern "C" void glm_cpu_fiber_entry(fiber *f) { fiber_main(f); }
#else
static void uc_entry(unsigned hi, unsigned lo)
{
    fiber_main(reinterpret_cast<fiber *>(((uintptr_t)hi << 32) | lo));
}
#endif

static void fiber_main(fiber *f)
{
#if GLM_CPU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &cur_block->os_stack_bottom, &cur_block->os_stack_size);
#endif
    (*cur_block->body)();
    f->st = F_DONE;
    to_scheduler(f, true);
    fail("a finished CUDA thread was resumed");
}

static void fiber_init(fiber *f)
{
#if GLM_CPU_ASAN
    /* a finished fiber never returned: its frames' redzones are still poisoned */
    ASAN_UNPOISON_MEMORY_REGION(f->stack, f->stack_size);
#endif
#if GLM_CPU_ASM_SWITCH
    uintptr_t top = ((uintptr_t)(f->stack + f->stack_size)) & ~(uintptr_t)15;
    uint64_t *sp = reinterpret_cast<uint64_t *>(top - 80);
    uint32_t mx = 0x1f80;
    uint16_t cw = 0x037f;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    memset(sp, 0, 80);
    memcpy(&sp[0], &mx, 4);
    memcpy(reinterpret_cast<char *>(&sp[0]) + 4, &cw, 2);
    sp[3] = (uint64_t)(uintptr_t)&glm_cpu_fiber_entry; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)f;                    /* r12 */
    sp[7] = (uint64_t)(uintptr_t)&glm_cpu_fiber_start; /* return address */
    f->sp = sp;
#else
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = f->stack_size;
    f->uc.uc_link = nullptr;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->uc, (void (*)())uc_entry, 2, (unsigned)(p >> 32), (unsigned)p);
#endif
}

/* ---- configuration --------------------------------------------------------------------------- */
static std::atomic<int> g_order{-1};
static std::atomic<unsigned> g_seed{1};

static void read_env()
{
    if (g_order.load() >= 0) return;
    const char *o = getenv("GLM_CUDA_CPU_ORDER");
    int v = ORDER_FORWARD;
    if (o && !strcmp(o, "reverse")) v = ORDER_REVERSE;
    else if (o && !strcmp(o, "random")) v = ORDER_RANDOM;
    else if (o && *o && strcmp(o, "forward")) fail("GLM_CUDA_CPU_ORDER must be forward, reverse or random");
    const char *s = getenv("GLM_CUDA_CPU_SEED");
    if (s) g_seed = (unsigned)strtoul(s, nullptr, 10);
    int expect = -1;
    g_order.compare_exchange_strong(expect, v);
}

void reload_env()
{
    g_order = -1;
    read_env();
}

void set_order(order o, unsigned seed)
{
    g_seed = seed;
    g_order = (int)o;
}

order get_order()
{
    read_env();
    return (order)g_order.load();
}

/* ---- barriers and warp collectives ----------------------------------------------------------- */
static const char *op_name(warp_op op)
{
    static const char *n[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                              "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp",
                              "__match_any_sync", "__reduce_add_sync", "__reduce_min_sync",
                              "__reduce_max_sync", "__reduce_and_sync", "__reduce_or_sync",
                              "__reduce_xor_sync"};
    return n[op];
}

static void describe(const fiber &f, char *buf, size_t n)
{
    switch (f.st) {
    case F_RUN: snprintf(buf, n, "runnable"); break;
    case F_DONE: snprintf(buf, n, "exited"); break;
    case F_BARRIER: snprintf(buf, n, "waiting at __syncthreads %s:%d", f.file, f.line); break;
    case F_WARP:
        snprintf(buf, n, "waiting at %s(mask 0x%08x) %s:%d", op_name(f.wop), f.mask, f.file, f.line);
        break;
    }
}

static unsigned char *g_smem_dummy;

unsigned char *dyn_smem()
{
    if (!cur_block) fail("GLM_DYN_SMEM outside a kernel");
    return cur_block->smem ? cur_block->smem : g_smem_dummy;
}

int barrier(int kind, int pred, const char *file, int line)
{
    fiber *f = cur_fiber;
    if (!f) fail("__syncthreads outside a kernel");
    f->st = F_BARRIER;
    f->bar_kind = kind;
    f->pred = pred;
    f->file = file;
    f->line = line;
    to_scheduler(f, false);
    return f->result;
}

unsigned long long warp(warp_op op, unsigned mask, const void *in, size_t size, int arg, int width,
                        void *out, const char *file, int line)
{
    fiber *f = cur_fiber;
    if (!f) fail("warp collective outside a kernel");
    if (!(mask >> f->lane & 1u)) {
        char m[512];
        snprintf(m, sizeof m, "%s at %s:%d: thread (%u,%u,%u) of block (%u,%u,%u), lane %d, is not in its mask 0x%08x",
                 op_name(op), file, line, f->c.thread_idx.x, f->c.thread_idx.y, f->c.thread_idx.z,
                 f->c.block_idx.x, f->c.block_idx.y, f->c.block_idx.z, f->lane, mask);
        fail(m);
    }
    if ((op <= W_SHFL_XOR) && (width < 1 || width > 32 || (width & (width - 1)))) {
        char m[256];
        snprintf(m, sizeof m, "%s at %s:%d: width %d is not a power of two <= 32", op_name(op), file, line, width);
        fail(m);
    }
    f->st = F_WARP;
    f->wop = op;
    f->mask = mask;
    memset(f->in, 0, 8);
    if (in) memcpy(f->in, in, size);
    f->size = size;
    f->arg = arg;
    f->width = width;
    f->file = file;
    f->line = line;
    to_scheduler(f, false);
    if (out) memcpy(out, f->out, size);
    return f->wres;
}

/* Completes the collective of lane `f` if every lane its mask names waits at a collective with the
 * same mask. Returns false if it cannot complete yet. */
static bool warp_try_complete(block_run *b, fiber *f)
{
    int base = f->warp_id * 32;
    fiber *lanes[32] = {};
    for (int l = 0; l < 32; l++) {
        if (!(f->mask >> l & 1u)) continue;
        if (base + l >= b->n) return false; /* a lane that does not exist never arrives */
        fiber *g = &b->f[base + l];
        if (g->st != F_WARP || g->mask != f->mask) return false;
        if (g->wop != f->wop) {
            char m[768], s1[200], s2[200];
            describe(*f, s1, sizeof s1);
            describe(*g, s2, sizeof s2);
            snprintf(m, sizeof m, "different warp collectives for one mask in block (%u,%u,%u): lane %d %s; lane %d %s",
                     f->c.block_idx.x, f->c.block_idx.y, f->c.block_idx.z, f->lane, s1, g->lane, s2);
            fail(m);
        }
        lanes[l] = g;
    }
    unsigned long long ballot = 0;
    for (int l = 0; l < 32; l++)
        if (lanes[l] && lanes[l]->arg) ballot |= 1ull << l;
    for (int l = 0; l < 32; l++) {
        fiber *g = lanes[l];
        if (!g) continue;
        g->wres = 0;
        switch (f->wop) {
        case W_SHFL_IDX: case W_SHFL_UP: case W_SHFL_DOWN: case W_SHFL_XOR: {
            /* PTX shfl.sync lane arithmetic: c = ((32 - width) << 8) | clamp */
            int segmask = (32 - g->width) & 31;
            int clamp = g->wop == W_SHFL_UP ? 0 : 31;
            int minl = l & segmask, maxl = minl | (clamp & ~segmask);
            int j = l, b_ = g->arg;
            bool ok;
            if (g->wop == W_SHFL_IDX) { j = minl | (b_ & ~segmask & 31); ok = j <= maxl; }
            else if (g->wop == W_SHFL_UP) { j = l - b_; ok = j >= maxl; }
            else if (g->wop == W_SHFL_DOWN) { j = l + b_; ok = j <= maxl; }
            else { j = l ^ b_; ok = j <= maxl; }
            if (!ok) j = l;
            if (j >= 0 && j < 32 && lanes[j]) memcpy(g->out, lanes[j]->in, 8);
            else memset(g->out, 0xff, 8); /* a lane outside the mask: NaN */
            break;
        }
        case W_BALLOT: g->wres = ballot; break;
        case W_ANY: g->wres = ballot != 0; break;
        case W_ALL: g->wres = ballot == f->mask; break;
        case W_SYNC: break;
        case W_MATCH_ANY:
            for (int k = 0; k < 32; k++)
                if (lanes[k] && !memcmp(lanes[k]->in, g->in, 8)) g->wres |= 1ull << k;
            break;
        default: {
            long long acc = 0;
            bool first = true;
            for (int k = 0; k < 32; k++) {
                if (!lanes[k]) continue;
                unsigned u;
                memcpy(&u, lanes[k]->in, 4);
                long long v = g->arg ? (long long)(int)u : (long long)u;
                if (first) { acc = v; first = false; continue; }
                switch (f->wop) {
                case W_RED_ADD: acc += v; break;
                case W_RED_MIN: acc = std::min(acc, v); break;
                case W_RED_MAX: acc = std::max(acc, v); break;
                case W_RED_AND: acc &= v; break;
                case W_RED_OR: acc |= v; break;
                default: acc ^= v; break;
                }
            }
            g->wres = (unsigned long long)(unsigned)acc;
        }
        }
    }
    for (int l = 0; l < 32; l++)
        if (lanes[l]) lanes[l]->st = F_RUN;
    return true;
}

[[noreturn]] static void report_stuck(block_run *b, const char *what)
{
    fprintf(stderr, "cuda_cpu: %s in block (%u,%u,%u) of the launch at %s:%d; thread states:\n", what,
            b->f[0].c.block_idx.x, b->f[0].c.block_idx.y, b->f[0].c.block_idx.z, b->launch_file,
            b->launch_line);
    for (int w = 0; w * 32 < b->n; w++) {
        bool stuck = false;
        for (int l = 0; l < 32 && w * 32 + l < b->n; l++) stuck |= b->f[w * 32 + l].st == F_WARP;
        if (!stuck && strcmp(what, "deadlock in a warp collective") == 0) continue;
        fprintf(stderr, "  warp %d:\n", w);
        /* runs of lanes in the same state on one line */
        int nl = std::min(32, b->n - w * 32);
        for (int l = 0; l < nl;) {
            char s[256], t[256];
            describe(b->f[w * 32 + l], s, sizeof s);
            int e = l + 1;
            for (; e < nl; e++) {
                describe(b->f[w * 32 + e], t, sizeof t);
                if (strcmp(s, t)) break;
            }
            const fiber &g = b->f[w * 32 + l];
            if (e - l == 1)
                fprintf(stderr, "    lane %d thread (%u,%u,%u): %s\n", l, g.c.thread_idx.x, g.c.thread_idx.y,
                        g.c.thread_idx.z, s);
            else
                fprintf(stderr, "    lanes %d-%d threads (%u,%u,%u)..: %s\n", l, e - 1, g.c.thread_idx.x,
                        g.c.thread_idx.y, g.c.thread_idx.z, s);
            l = e;
        }
    }
    fail(what);
}

static void run_block(block_run *b, uint3 bidx)
{
    for (int i = 0; i < b->n; i++) {
        fiber *f = &b->f[i];
        f->c.block_idx = bidx;
        f->st = F_RUN;
        fiber_init(f);
    }
    if (b->smem) memset(b->smem, 0xff, b->smem_size);
    std::vector<int> ord(b->n);
    order o = get_order();
    for (;;) {
        for (int i = 0; i < b->n; i++) ord[i] = o == ORDER_REVERSE ? b->n - 1 - i : i;
        if (o == ORDER_RANDOM) std::shuffle(ord.begin(), ord.end(), b->rng);
        bool progress = false;
        for (int i : ord)
            if (b->f[i].st == F_RUN) {
                to_fiber(b, &b->f[i]);
                progress = true;
            }
        if (progress) continue;
        /* nothing runnable: complete warp collectives, then the block barrier */
        bool any_warp = false, done_warp = false, all_done = true;
        for (int i = 0; i < b->n; i++) {
            fiber *f = &b->f[i];
            if (f->st != F_DONE) all_done = false;
            if (f->st == F_WARP) {
                any_warp = true;
                done_warp |= warp_try_complete(b, f);
            }
        }
        if (all_done) return;
        if (done_warp) continue;
        if (any_warp) report_stuck(b, "deadlock in a warp collective");
        fiber *first = nullptr;
        int count = 0, all = 1, anyp = 0;
        for (int i = 0; i < b->n; i++) {
            fiber *f = &b->f[i];
            if (f->st != F_BARRIER) continue;
            if (!first) first = f;
            else if (f->file != first->file || f->line != first->line || f->bar_kind != first->bar_kind)
                report_stuck(b, "threads wait at different __syncthreads (divergent barrier)");
            count += f->pred;
            all &= f->pred;
            anyp |= f->pred;
        }
        for (int i = 0; i < b->n; i++) {
            fiber *f = &b->f[i];
            if (f->st != F_BARRIER) continue;
            f->result = f->bar_kind == 1 ? count : f->bar_kind == 2 ? all : f->bar_kind == 3 ? anyp : 0;
            f->st = F_RUN;
        }
    }
}

/* ---- launch ---------------------------------------------------------------------------------- */
static const size_t STACK_SIZE = 128 * 1024;

/* Fiber stacks: mapped once (a guard page below each stack) and reused by later launches, so a
 * launch costs no mmap and no fresh page faults. */
struct stack_map {
    char *base;
    int n;
    size_t slot;
};
static std::mutex g_stack_lock;
static std::vector<stack_map> g_stack_free;

static stack_map stacks_get(int n)
{
    {
        std::lock_guard<std::mutex> g(g_stack_lock);
        for (size_t i = 0; i < g_stack_free.size(); i++)
            if (g_stack_free[i].n >= n) {
                stack_map m = g_stack_free[i];
                g_stack_free.erase(g_stack_free.begin() + (long)i);
                return m;
            }
    }
    long page = sysconf(_SC_PAGESIZE);
    stack_map m;
    m.n = n;
    m.slot = STACK_SIZE + (size_t)page;
    void *p = mmap(nullptr, m.slot * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail("cannot map fiber stacks");
    m.base = static_cast<char *>(p);
    for (int i = 0; i < n; i++) mprotect(m.base + m.slot * i, (size_t)page, PROT_NONE);
    return m;
}

static void stacks_put(stack_map m)
{
    std::lock_guard<std::mutex> g(g_stack_lock);
    if (g_stack_free.size() >= 16) {
        munmap(m.base, m.slot * m.n);
        return;
    }
    g_stack_free.push_back(m);
}

cudaError_t launch_erased(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          const std::function<void()> &body, const char *file, int line)
{
    (void)stream;
    unsigned long long nthr = (unsigned long long)block.x * block.y * block.z;
    if (nthr == 0 || nthr > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
        return set_error(cudaErrorInvalidConfiguration);
    if (smem > (size_t)dyn_smem_limit(func)) return set_error(cudaErrorInvalidValue);

    int n = (int)nthr;
    unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
    int nworkers = (int)std::min<long>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)), 8L);
    if (const char *t = getenv("GLM_CUDA_CPU_THREADS")) nworkers = std::max(1, atoi(t));
    if ((unsigned long long)nworkers > nblocks) nworkers = (int)nblocks;
    std::atomic<unsigned long long> next{0};
    unsigned seed = g_seed.load();

    auto worker = [&](int wi) {
        block_run b;
        b.n = n;
        b.body = &body;
        b.launch_file = file;
        b.launch_line = line;
        b.smem_size = smem;
        b.smem = smem ? static_cast<unsigned char *>(aligned_alloc(16, (smem + 15) & ~(size_t)15)) : nullptr;
        b.rng.seed(seed * 7919u + (unsigned)wi);
        stack_map sm = stacks_get(n);
        long page = sysconf(_SC_PAGESIZE);
        b.f.resize(n);
        for (int i = 0; i < n; i++) {
            fiber *f = &b.f[i];
            f->stack = sm.base + sm.slot * i + page;
            f->stack_size = STACK_SIZE;
            f->c.thread_idx = make_uint3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
            f->c.block_dim = block;
            f->c.grid_dim = grid;
            f->lane = i % 32;
            f->warp_id = i / 32;
        }
        cur_block = &b;
        for (;;) {
            unsigned long long k = next.fetch_add(1);
            if (k >= nblocks) break;
            uint3 bi = make_uint3((unsigned)(k % grid.x), (unsigned)(k / grid.x % grid.y),
                                  (unsigned)(k / ((unsigned long long)grid.x * grid.y)));
            run_block(&b, bi);
        }
        cur_block = nullptr;
        stacks_put(sm);
        free(b.smem);
    };
    if (nworkers == 1) {
        worker(0);
    } else {
        std::vector<std::thread> th;
        for (int i = 0; i < nworkers; i++) th.emplace_back(worker, i);
        for (auto &t : th) t.join();
    }
    return cudaSuccess;
}

} // namespace glm_cpu

