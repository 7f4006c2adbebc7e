/*
 * model_runner.c - see model_runner.h.
 *
 * The batch arrays and the row map are reserved at create for the largest
 * step the limits allow, so a step allocates nothing on the host either.
 */
#include "sched/model_runner.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* A plan or a request the backend cannot take: `return BAD("...", ...)`. */
#define BAD(...) (glm_err(err, errlen, __VA_ARGS__), GLM_BAD_BATCH)

struct glm_runner {
    const glm_model *m;
    glm_backend *be;
    glm_pool *pool;
    int max_model_len;
    glm_batch_buf buf;
    glm_batch_seq *parts;     /* [max_num_seqs] */
    int32_t *row_plan;        /* [max_logits_rows] plan index of each logits row */
    int32_t *draft_rows;      /* [max_num_batched_tokens] a draft's hidden-state rows */
    int draft;                /* the backend holds the MTP layer */
    int n_rows;
    int32_t *greedy_rows;     /* [max_logits_rows] scratch of glm_runner_greedy */
    glm_sample_req *greedy_reqs;
    glm_sampler_result *greedy_res;
    glm_sampling_params greedy;
    glm_rng greedy_rng;
};

void glm_runner_params_default(glm_runner_params *p)
{
    memset(p, 0, sizeof *p);
    p->backend = GLM_BACKEND_CPU;
    p->block_size = 16;
    p->kv_cache_bytes = (size_t)1 << 30;
    p->mem_fraction = 0.9;
    p->max_num_batched_tokens = 2048;
    p->max_num_seqs = 256;
    p->cuda_graphs = 1;
    p->tensor_parallel_size = 1;
}

glm_runner *glm_runner_create(const glm_model *m, const glm_runner_params *p, char *err, size_t errlen)
{
    const glm_config *c = &m->cfg;
    if (p->block_size < 1 || p->block_size > 1024 || p->max_num_batched_tokens < 1 || p->max_num_seqs < 1 ||
        p->max_model_len < 0 || p->max_logits_rows < 0 || p->kv_cache_tokens < 0 || p->tensor_parallel_size < 1) {
        glm_err(err, errlen, "model runner: invalid parameters");
        return NULL;
    }
    glm_runner *r = glm_calloc(1, sizeof *r);
    r->m = m;
    r->max_model_len = p->max_model_len > 0 ? GLM_MIN(p->max_model_len, c->max_position_embeddings)
                                            : c->max_position_embeddings;
    int max_seqs = GLM_MIN(p->max_num_seqs, p->max_num_batched_tokens);
    int max_rows = p->max_logits_rows > 0 ? p->max_logits_rows : max_seqs;
    r->pool = glm_pool_create(p->n_threads);
    glm_backend_params bp = {
        .kind = p->backend,
        .rank = 0,
        .world = p->tensor_parallel_size,
        .block_size = p->block_size,
        .kv_bytes = p->kv_cache_bytes,
        .mem_fraction = p->mem_fraction,
        .kv_blocks = p->kv_cache_tokens > 0 ? (p->kv_cache_tokens + p->block_size - 1) / p->block_size : 0,
        .max_num_batched_tokens = p->max_num_batched_tokens,
        .max_num_seqs = max_seqs,
        .max_blocks_per_seq = (r->max_model_len + p->block_size - 1) / p->block_size,
        .max_logits_rows = max_rows,
        .pool = r->pool,
        .dtype = p->dtype,
        .device = p->device,
        .cuda_graphs = p->cuda_graphs,
        .first_rank = p->first_rank,
        .n_local = p->n_local,
        .world_id = p->world_id,
        .draft_layers = p->draft_layers,
    };
    r->be = glm_backend_create(m, &bp, err, errlen);
    if (!r->be) {
        glm_pool_free(r->pool);
        free(r);
        return NULL;
    }
    glm_batch_reserve(&r->buf, p->max_num_batched_tokens, max_seqs, bp.max_blocks_per_seq);
    r->parts = glm_malloc(sizeof *r->parts * (size_t)max_seqs);
    r->row_plan = glm_malloc(sizeof(int32_t) * (size_t)max_rows);
    r->draft_rows = glm_malloc(sizeof(int32_t) * (size_t)p->max_num_batched_tokens);
    r->draft = p->draft_layers > 0;
    r->greedy_rows = glm_malloc(sizeof(int32_t) * (size_t)max_rows);
    r->greedy_reqs = glm_malloc(sizeof *r->greedy_reqs * (size_t)max_rows);
    r->greedy_res = glm_malloc(sizeof *r->greedy_res * (size_t)max_rows);
    glm_sampling_params_init(&r->greedy);
    r->greedy.temperature = 0;
    glm_rng_seed(&r->greedy_rng, 0);
    return r;
}

void glm_runner_free(glm_runner *r)
{
    if (!r)
        return;
    glm_backend_destroy(r->be);
    glm_pool_free(r->pool);
    glm_batch_buf_free(&r->buf);
    free(r->parts);
    free(r->row_plan);
    free(r->draft_rows);
    free(r->greedy_rows);
    free(r->greedy_reqs);
    free(r->greedy_res);
    free(r);
}

const glm_backend_info *glm_runner_info(const glm_runner *r) { return &r->be->info; }

void glm_runner_stop(glm_runner *r, const char *why) { glm_tp_backend_stop(r->be, why); }

int glm_runner_wait_world(glm_runner *r, int timeout_ms, char *err, size_t errlen)
{
    return glm_tp_backend_wait(r->be, timeout_ms, err, errlen);
}
int glm_runner_max_model_len(const glm_runner *r) { return r->max_model_len; }
glm_pool *glm_runner_pool(glm_runner *r) { return r->pool; }

int glm_runner_forward(glm_runner *r, const glm_sched_batch *sb, int all_logits, char *err, size_t errlen)
{
    const glm_batch_limits *lim = &r->be->info.limits;
    r->n_rows = 0;
    if (sb->n < 1 || sb->n > lim->max_seqs)
        return BAD("batch: %d sequences, the backend takes 1..%d", sb->n, lim->max_seqs);
    int n_rows = 0;
    for (int i = 0; i < sb->n; i++) {
        const glm_sequence *q = sb->seqs[i];
        int n_new = sb->n_new[i];
        if (n_new < 1 || q->n_computed + n_new > q->n_tokens + q->n_draft)
            return BAD("batch: sequence %d: %d new tokens after %d of %d", i, n_new,
                           q->n_computed, q->n_tokens + q->n_draft);
        if (q->n_draft > 0 && (q->n_computed != q->n_tokens - 1 || n_new != 1 + q->n_draft))
            return BAD("batch: sequence %d: %d drafts, %d new tokens after %d of %d", i, q->n_draft, n_new,
                       q->n_computed, q->n_tokens);
        if (q->table.n * lim->block_size < q->n_computed + n_new)
            return BAD("batch: sequence %d: %d blocks do not cover %d tokens", i, q->table.n,
                           q->n_computed + n_new);
        int last = q->n_computed + n_new == q->n_tokens + q->n_draft;
        int every = all_logits || (q->prompt_logits && q->n_computed < q->n_prompt) || q->n_draft > 0;
        int rows = every ? n_new : last;
        if (n_rows + rows > lim->max_logits)
            return BAD("batch: more than %d logits rows", lim->max_logits);
        for (int k = 0; k < rows; k++)
            r->row_plan[n_rows++] = i;
        r->parts[i] = (glm_batch_seq){q->tokens + q->n_computed, q->n_computed, n_new, q->table.ids, q->table.n,
                                      every ? 2 : last};
    }
    glm_batch_build(&r->buf, r->parts, sb->n, lim->block_size);
    if (glm_batch_validate(&r->buf.b, lim, err, errlen) != GLM_OK)
        return GLM_BAD_BATCH;
    int rc = r->be->ops->forward(r->be, &r->buf.b, err, errlen);
    if (rc == GLM_OK)
        r->n_rows = n_rows;
    return rc == GLM_OK || rc == GLM_BAD_BATCH || rc == GLM_BACKEND_DEAD ? rc : GLM_BACKEND_FAILURE;
}

int glm_runner_draft(glm_runner *r, const glm_draft_seq *d, int n, glm_draft_source from, int all_logits, char *err,
                     size_t errlen)
{
    const glm_batch_limits *lim = &r->be->info.limits;
    r->n_rows = 0;
    if (!r->draft || !r->be->ops->draft)
        return BAD("draft: the backend holds no MTP layer");
    if (n < 1 || n > lim->max_seqs)
        return BAD("draft: %d sequences, the backend takes 1..%d", n, lim->max_seqs);
    int n_rows = 0, n_tok = 0;
    for (int i = 0; i < n; i++) {
        if (d[i].n < 1 || d[i].pos < 0 || n_tok + d[i].n > lim->max_tokens)
            return BAD("draft: sequence %d: %d rows from position %d", i, d[i].n, d[i].pos);
        if (d[i].seq->table.n * lim->block_size < d[i].pos + d[i].n)
            return BAD("draft: sequence %d: %d blocks do not cover %d positions", i, d[i].seq->table.n,
                       d[i].pos + d[i].n);
        int rows = all_logits ? d[i].n : d[i].logits != 0;
        if (n_rows + rows > lim->max_logits)
            return BAD("draft: more than %d logits rows", lim->max_logits);
        for (int k = 0; k < rows; k++)
            r->row_plan[n_rows++] = i;
        memcpy(r->draft_rows + n_tok, d[i].rows, sizeof(int32_t) * (size_t)d[i].n);
        n_tok += d[i].n;
        r->parts[i] = (glm_batch_seq){d[i].tokens, d[i].pos, d[i].n, d[i].seq->table.ids, d[i].seq->table.n,
                                      all_logits ? 2 : d[i].logits != 0};
    }
    glm_batch_build(&r->buf, r->parts, n, lim->block_size);
    if (glm_batch_validate(&r->buf.b, lim, err, errlen) != GLM_OK)
        return GLM_BAD_BATCH;
    int rc = r->be->ops->draft(r->be, &r->buf.b, from, r->draft_rows, err, errlen);
    if (rc == GLM_OK)
        r->n_rows = n_rows;
    return rc == GLM_OK || rc == GLM_BAD_BATCH || rc == GLM_BACKEND_DEAD ? rc : GLM_BACKEND_FAILURE;
}

const int32_t *glm_runner_rows(const glm_runner *r, int *n_rows)
{
    *n_rows = r->n_rows;
    return r->row_plan;
}

int glm_runner_logits(glm_runner *r, const int32_t *rows, int n, float *out, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= r->n_rows)
            return BAD("logits row %d: the last step has %d", rows[i], r->n_rows);
    return r->be->ops->logits(r->be, rows, n, out, err, errlen);
}

int glm_runner_sample(glm_runner *r, const glm_sample_req *reqs, int n, glm_sampler_result *out, char *err,
                      size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (reqs[i].row < 0 || reqs[i].row >= r->n_rows)
            return BAD("sample: logits row %d, the last step has %d", reqs[i].row, r->n_rows);
    return r->be->ops->sample(r->be, reqs, n, out, err, errlen);
}

int glm_runner_greedy(glm_runner *r, const int32_t *rows, int n, int32_t *ids, char *err, size_t errlen)
{
    if (n > r->be->info.limits.max_logits)
        return BAD("greedy: %d rows", n);
    for (int i = 0; i < n; i++)
        r->greedy_reqs[i] = (glm_sample_req){rows[i], NULL, &r->greedy, &r->greedy_rng, {NULL, 0, NULL, 0}};
    int rc = glm_runner_sample(r, r->greedy_reqs, n, r->greedy_res, err, errlen);
    if (rc != GLM_OK)
        return rc;
    for (int i = 0; i < n; i++)
        ids[i] = r->greedy_res[i].token;
    return GLM_OK;
}

int glm_runner_trace_hidden(glm_runner *r, float *out)
{
    if (!r->be->ops->trace_hidden)
        return GLM_ERR;
    r->be->ops->trace_hidden(r->be, out);
    return GLM_OK;
}

int glm_runner_step_seqs(glm_runner *r, glm_block_manager *bm, glm_sequence **seqs, const int *n_new, int n,
                         int all_logits, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (glm_bm_grow(bm, &seqs[i]->table, seqs[i]->n_computed + n_new[i]) != GLM_OK)
            return glm_err(err, errlen, "KV cache full: %d blocks free", glm_bm_num_free(bm));
    glm_sched_batch sb = {.seqs = seqs, .n_new = (int *)n_new, .n = n};
    int rc = glm_runner_forward(r, &sb, all_logits, err, errlen);
    if (rc != GLM_OK)
        return rc;
    for (int i = 0; i < n; i++) {
        seqs[i]->n_computed += n_new[i];
        glm_bm_commit(bm, &seqs[i]->table, seqs[i]->tokens, seqs[i]->n_computed);
    }
    return GLM_OK;
}
