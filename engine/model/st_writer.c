/*
 * st_writer.c - the writer half of safetensors.h, used by the test-checkpoint
 * generator (tests/models/mkmodel.c).
 *
 * Tensors are added in order with their data copied. st_writer_save writes
 * what the Python `safetensors` package writes: an 8-byte little-endian header
 * length N, then N bytes of compact JSON with sorted keys
 *   {"__metadata__":{"format":"pt"},"NAME":{"data_offsets":[b,e],"dtype":"F32","shape":[..]},..}
 * padded with spaces to a multiple of 8, then the tensor data back to back in
 * the order the tensors were added. The file is written to PATH.tmp and renamed
 * into place, so a reader never sees a half-written checkpoint.
 */
#include "model/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/util.h"

typedef struct {
    char *name;
    glm_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    void *data;
    size_t nbytes;
} st_wtensor;

struct st_writer {
    st_wtensor *t;
    size_t n, cap;
    size_t bytes; /* sum of t[i].nbytes */
};

st_writer *st_writer_new(void)
{
    return glm_calloc(1, sizeof(st_writer));
}

void st_writer_add(st_writer *w, const char *name, glm_dtype dtype, int ndim,
                   const int64_t *shape, const void *data)
{
    GLM_ASSERT(w && name && name[0]);
    GLM_ASSERT(ndim >= 0 && ndim <= ST_MAX_DIMS);
    GLM_ASSERT(glm_dtype_size(dtype) > 0);
    GLM_ASSERT(ndim == 0 || shape);

    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        GLM_ASSERT(shape[d] >= 0);
        numel *= (size_t)shape[d];
    }
    size_t nbytes = numel * glm_dtype_size(dtype);
    GLM_ASSERT(nbytes == 0 || data);

    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->t = glm_realloc(w->t, w->cap * sizeof(st_wtensor));
    }
    st_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof(*t));
    t->name = glm_strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->nbytes = nbytes;
    t->data = glm_malloc(nbytes);
    if (nbytes)
        memcpy(t->data, data, nbytes);
    w->bytes += nbytes;
}

size_t st_writer_bytes(const st_writer *w)
{
    return w->bytes;
}

/* The JSON header text, unpadded (caller frees), or NULL with err set. */
static char *build_header(const st_writer *w, char *err, size_t errlen)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);

    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        if (json_object_get(root, t->name)) {
            glm_err(err, errlen, "safetensors writer: tensor '%s' added twice", t->name);
            json_decref(root);
            return NULL;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes)));
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(glm_dtype_name(t->dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(root, t->name, e);
        off += t->nbytes;
    }
    char *s = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(root);
    if (!s)
        glm_err(err, errlen, "safetensors writer: cannot encode the JSON header");
    return s;
}

static int write_all(FILE *f, const void *p, size_t n)
{
    return n == 0 || fwrite(p, 1, n, f) == n;
}

int st_writer_save(st_writer *w, const char *path, char *err, size_t errlen)
{
    char *json = build_header(w, err, errlen);
    if (!json)
        return GLM_ERR;
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) & ~(size_t)7;
    char *header = glm_malloc(hlen);
    memcpy(header, json, jlen);
    memset(header + jlen, ' ', hlen - jlen);
    free(json);

    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));

    size_t plen = strlen(path);
    char *tmp = glm_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int rc = GLM_ERR;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        glm_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    int ok = write_all(f, lenbuf, 8) && write_all(f, header, hlen);
    for (size_t i = 0; ok && i < w->n; i++)
        ok = write_all(f, w->t[i].data, w->t[i].nbytes);
    if (!ok) {
        glm_err(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fclose(f) != 0) {
        glm_err(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        glm_err(err, errlen, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = GLM_OK;
out:
    free(tmp);
    free(header);
    return rc;
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}
