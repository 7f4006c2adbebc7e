/*
 * safetensors.h - a memory-mapped, read-only view of a Hugging Face
 * safetensors checkpoint: one `model.safetensors`, or shards listed by
 * `model.safetensors.index.json` ({"weight_map": {tensor: file}}).
 *
 * Every header is validated before any tensor is handed out: the 8-byte
 * little-endian header length fits the file, the header is a JSON object,
 * each tensor has a known dtype, a shape of non-negative dims, and
 * data_offsets [begin, end) inside the data section whose length is exactly
 * prod(shape) * dtype size. Tensor data stays in the mapped file (never copied
 * or widened); pointers stay valid until st_close.
 */
#ifndef GLM_SAFETENSORS_H
#define GLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

#define ST_MAX_DIMS 8

typedef struct {
    const char *name;     /* tensor name, e.g. "model.layers.0.self_attn.q_a_proj.weight" */
    glm_dtype dtype;
    int ndim;             /* 0..ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;        /* prod(shape); 1 for a scalar */
    const void *data;     /* into the mapped file; not aligned beyond 1 in general */
    size_t nbytes;
    const char *file;     /* path of the file holding it */
} st_tensor;

typedef struct st_checkpoint st_checkpoint;

/*
 * Opens the checkpoint in directory `dir`. Uses model.safetensors.index.json
 * when present (every file it names must exist and every tensor it maps must
 * be in that file), else model.safetensors, else every *.safetensors file in
 * the directory. A tensor name found twice is an error.
 * Returns GLM_OK and sets *out, or GLM_ERR with one line naming the file (and
 * tensor) in err.
 */
int st_open(const char *dir, st_checkpoint **out, char *err, size_t errlen);

/* Opens a single .safetensors file. Same contract as st_open. */
int st_open_file(const char *path, st_checkpoint **out, char *err, size_t errlen);

/* The tensor called `name`, or NULL. */
const st_tensor *st_find(const st_checkpoint *ck, const char *name);

/* Number of tensors, and the i-th in name order (0 <= i < st_count). */
size_t st_count(const st_checkpoint *ck);
const st_tensor *st_get(const st_checkpoint *ck, size_t i);

/* Total bytes of tensor data across all files. */
size_t st_total_bytes(const st_checkpoint *ck);

/* Unmaps every file and frees everything; tensors from it become invalid. */
void st_close(st_checkpoint *ck);

/*
 * A writer, used by the test-checkpoint generator: tensors are added in order
 * with their data copied, then written as one file with a sorted, 8-byte
 * padded header (as the `safetensors` Python package writes).
 */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
void st_writer_add(st_writer *w, const char *name, glm_dtype dtype, int ndim,
                   const int64_t *shape, const void *data);
/* Bytes of tensor data added so far. */
size_t st_writer_bytes(const st_writer *w);
int st_writer_save(st_writer *w, const char *path, char *err, size_t errlen);
void st_writer_free(st_writer *w);

#endif
