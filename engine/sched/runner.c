/* runner.c - see runner.h. */
#include "sched/runner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

glm_runner *glm_runner_create(const glm_model *m, int cache_tokens, int block_size, int n_threads,
                              char *err, size_t errlen)
{
    if (cache_tokens < 1 || block_size < 1) {
        glm_err(err, errlen, "runner: invalid cache size");
        return NULL;
    }
    int nb = (cache_tokens + block_size - 1) / block_size;
    glm_kv_cache *kv = glm_kv_cache_create(&m->cfg, nb, block_size, err, errlen);
    if (!kv)
        return NULL;
    glm_runner *r = glm_calloc(1, sizeof *r);
    r->model = m;
    r->kv = kv;
    r->pool = glm_pool_create(n_threads);
    r->backend = glm_cpu_backend_create(m, kv, r->pool);
    return r;
}

void glm_runner_free(glm_runner *r)
{
    if (!r)
        return;
    glm_backend_destroy(r->backend);
    glm_pool_free(r->pool);
    glm_kv_cache_free(r->kv);
    glm_batch_buf_free(&r->buf);
    free(r);
}

void glm_seq_release(glm_runner *r, glm_seq *s)
{
    for (int i = 0; i < s->n_blocks; i++)
        glm_kv_free_block(r->kv, s->blocks[i]);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

int glm_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best] || isnan(x[best]))
            best = i;
    return best;
}

int glm_runner_step(glm_runner *r, int n_seqs, glm_seq **seqs, const int32_t *const *toks,
                    const int *n_new, int all_logits, float *logits, char *err, size_t errlen)
{
    int bs = r->kv->block_size;
    int need_blocks = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (n_new[i] < 1)
            return glm_err(err, errlen, "runner: sequence %d has no new tokens", i);
        int nb = (seqs[i]->len + n_new[i] + bs - 1) / bs;
        need_blocks += nb - seqs[i]->n_blocks;
    }
    if (need_blocks > r->kv->n_free)
        return glm_err(err, errlen, "KV cache full: %d more blocks needed, %d free", need_blocks, r->kv->n_free);
    /* take blocks (returned below if the step fails) */
    int *old_nb = glm_malloc(sizeof(int) * (size_t)n_seqs);
    for (int i = 0; i < n_seqs; i++) {
        glm_seq *s = seqs[i];
        old_nb[i] = s->n_blocks;
        int nb = (s->len + n_new[i] + bs - 1) / bs;
        if (nb > s->cap_blocks) {
            s->cap_blocks = GLM_MAX(nb, 2 * s->cap_blocks);
            s->blocks = glm_realloc(s->blocks, sizeof(int32_t) * (size_t)s->cap_blocks);
        }
        while (s->n_blocks < nb)
            s->blocks[s->n_blocks++] = glm_kv_alloc_block(r->kv);
    }

    glm_batch_seq *parts = glm_malloc(sizeof *parts * (size_t)n_seqs);
    for (int i = 0; i < n_seqs; i++)
        parts[i] = (glm_batch_seq){toks[i], seqs[i]->len, n_new[i], seqs[i]->blocks, seqs[i]->n_blocks,
                                   all_logits ? 2 : 1};
    glm_batch_build(&r->buf, parts, n_seqs, bs);
    free(parts);
    int rc = glm_backend_forward(r->backend, &r->buf.b, logits, err, errlen);
    for (int i = 0; i < n_seqs; i++) {
        if (rc == GLM_OK) {
            seqs[i]->len += n_new[i];
        } else {
            while (seqs[i]->n_blocks > old_nb[i])
                glm_kv_free_block(r->kv, seqs[i]->blocks[--seqs[i]->n_blocks]);
        }
    }
    free(old_nb);
    return rc;
}
