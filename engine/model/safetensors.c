/*
 * safetensors.c - the reader half of safetensors.h: maps each checkpoint file
 * read-only, validates its JSON header (parsed with jansson) and hands out the
 * tensors, sorted by name, as views into the mappings. Sharded checkpoints are
 * opened through model.safetensors.index.json. The writer (st_writer_*) lives
 * in st_writer.c.
 */
#include "model/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

#define ST_MAX_HEADER 100000000ULL /* as the safetensors package: 100 MB */
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"
#define ST_SUFFIX ".safetensors"

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file;

struct st_checkpoint {
    st_file *files;
    size_t nfiles, files_cap;
    st_tensor *tensors;
    size_t ntensors, tensors_cap;
    size_t total_bytes;
};

static char *path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    int slash = dl > 0 && dir[dl - 1] != '/';
    char *p = glm_malloc(dl + (size_t)slash + nl + 1);
    memcpy(p, dir, dl);
    if (slash)
        p[dl] = '/';
    memcpy(p + dl + slash, name, nl + 1);
    return p;
}

static st_checkpoint *ck_new(void)
{
    return glm_calloc(1, sizeof(st_checkpoint));
}

static st_tensor *ck_push_tensor(st_checkpoint *ck)
{
    if (ck->ntensors == ck->tensors_cap) {
        ck->tensors_cap = ck->tensors_cap ? ck->tensors_cap * 2 : 64;
        ck->tensors = glm_realloc(ck->tensors, ck->tensors_cap * sizeof(st_tensor));
    }
    st_tensor *t = &ck->tensors[ck->ntensors++];
    memset(t, 0, sizeof(*t));
    return t;
}

static int json_is_nonneg_int(const json_t *j)
{
    return json_is_integer(j) && json_integer_value(j) >= 0;
}

/* Validates one header entry and fills *t (all but name and file). */
static int parse_entry(const char *path, const char *name, const json_t *e,
                       const uint8_t *data, uint64_t datalen, st_tensor *t,
                       char *err, size_t errlen)
{
    if (!json_is_object(e))
        return glm_err(err, errlen, "%s: tensor '%s': entry is not a JSON object", path, name);

    const json_t *jd = json_object_get(e, "dtype");
    if (!json_is_string(jd))
        return glm_err(err, errlen, "%s: tensor '%s': \"dtype\" is missing or not a string",
                       path, name);
    if (glm_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return glm_err(err, errlen, "%s: tensor '%s': unknown dtype \"%s\"", path, name,
                       json_string_value(jd));

    const json_t *js = json_object_get(e, "shape");
    if (!json_is_array(js))
        return glm_err(err, errlen, "%s: tensor '%s': \"shape\" is missing or not an array",
                       path, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return glm_err(err, errlen, "%s: tensor '%s': shape has %zu dims (at most %d supported)",
                       path, name, nd, ST_MAX_DIMS);
    int64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(js, i);
        if (!json_is_nonneg_int(d))
            return glm_err(err, errlen,
                           "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                           path, name, i);
        t->shape[i] = (int64_t)json_integer_value(d);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return glm_err(err, errlen, "%s: tensor '%s': element count of shape overflows",
                           path, name);
    }
    t->ndim = (int)nd;
    t->numel = numel;

    int64_t nbytes;
    if (__builtin_mul_overflow(numel, (int64_t)glm_dtype_size(t->dtype), &nbytes))
        return glm_err(err, errlen, "%s: tensor '%s': byte size of shape overflows", path, name);

    const json_t *jo = json_object_get(e, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_is_nonneg_int(json_array_get(jo, 0)) || !json_is_nonneg_int(json_array_get(jo, 1)))
        return glm_err(err, errlen,
                       "%s: tensor '%s': \"data_offsets\" is not two non-negative integers",
                       path, name);
    uint64_t begin = (uint64_t)json_integer_value(json_array_get(jo, 0));
    uint64_t end = (uint64_t)json_integer_value(json_array_get(jo, 1));
    if (begin > end)
        return glm_err(err, errlen, "%s: tensor '%s': data_offsets begin %llu > end %llu",
                       path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > datalen)
        return glm_err(err, errlen,
                       "%s: tensor '%s': data_offsets end %llu is beyond the data section "
                       "(%llu bytes; truncated file?)",
                       path, name, (unsigned long long)end, (unsigned long long)datalen);
    if (end - begin != (uint64_t)nbytes)
        return glm_err(err, errlen,
                       "%s: tensor '%s': data_offsets span %llu bytes but %lld elements of %s "
                       "need %lld",
                       path, name, (unsigned long long)(end - begin), (long long)numel,
                       glm_dtype_name(t->dtype), (long long)nbytes);
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return GLM_OK;
}

/* Maps `path`, validates its header and appends its tensors to ck. On error
 * what was added stays in ck for st_close to release. */
static int add_file(st_checkpoint *ck, const char *path, char *err, size_t errlen)
{
    int fd = -1, rc = GLM_ERR;
    json_t *hdr = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        glm_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto err;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        glm_err(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto err;
    }
    if (S_ISDIR(sb.st_mode)) {
        glm_err(err, errlen, "%s: is a directory, not a safetensors file", path);
        goto err;
    }
    if (!S_ISREG(sb.st_mode)) {
        glm_err(err, errlen, "%s: not a regular file", path);
        goto err;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        glm_err(err, errlen, "%s: file is %s (%zu bytes; a safetensors file starts with an "
                "8-byte header length)", path, size ? "too short" : "empty", size);
        goto err;
    }

    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        glm_err(err, errlen, "cannot map %s: %s", path, strerror(errno));
        goto err;
    }
    if (ck->nfiles == ck->files_cap) {
        ck->files_cap = ck->files_cap ? ck->files_cap * 2 : 8;
        ck->files = glm_realloc(ck->files, ck->files_cap * sizeof(st_file));
    }
    st_file *f = &ck->files[ck->nfiles++];
    f->path = glm_strdup(path);
    f->map = map;
    f->size = size;

    const uint8_t *bytes = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | bytes[i];
    if (n > ST_MAX_HEADER) {
        glm_err(err, errlen, "%s: header length %llu is over the %llu-byte limit", path,
                (unsigned long long)n, ST_MAX_HEADER);
        goto err;
    }
    if (n > size - 8) {
        glm_err(err, errlen, "%s: header length %llu exceeds the file size (%zu bytes; "
                "truncated file?)", path, (unsigned long long)n, size);
        goto err;
    }

    json_error_t jerr;
    hdr = json_loadb((const char *)bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!hdr) {
        glm_err(err, errlen, "%s: header is not valid JSON: %s (line %d, column %d)", path,
                jerr.text, jerr.line, jerr.column);
        goto err;
    }
    if (!json_is_object(hdr)) {
        glm_err(err, errlen, "%s: header is not a JSON object", path);
        goto err;
    }

    const uint8_t *data = bytes + 8 + n;
    uint64_t datalen = size - 8 - n;
    const char *key;
    json_t *val;
    json_object_foreach(hdr, key, val) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        st_tensor tmp;
        memset(&tmp, 0, sizeof(tmp));
        if (parse_entry(path, key, val, data, datalen, &tmp, err, errlen) != GLM_OK)
            goto err;
        st_tensor *t = ck_push_tensor(ck);
        *t = tmp;
        t->name = glm_strdup(key);
        t->file = f->path;
        ck->total_bytes += t->nbytes;
    }
    rc = GLM_OK;
err:
    json_decref(hdr);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int tensor_cmp(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorts the tensors by name and rejects a name found twice. */
static int ck_finish(st_checkpoint *ck, char *err, size_t errlen)
{
    if (ck->ntensors > 1)
        qsort(ck->tensors, ck->ntensors, sizeof(st_tensor), tensor_cmp);
    for (size_t i = 1; i < ck->ntensors; i++) {
        const st_tensor *a = &ck->tensors[i - 1], *b = &ck->tensors[i];
        if (strcmp(a->name, b->name) == 0)
            return glm_err(err, errlen, "tensor '%s' is in both %s and %s", a->name, a->file,
                           b->file);
    }
    return GLM_OK;
}

int st_open_file(const char *path, st_checkpoint **out, char *err, size_t errlen)
{
    st_checkpoint *ck = ck_new();
    *out = NULL;
    if (add_file(ck, path, err, errlen) != GLM_OK || ck_finish(ck, err, errlen) != GLM_OK)
        goto err;
    *out = ck;
    return GLM_OK;
err:
    st_close(ck);
    return GLM_ERR;
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int open_index(st_checkpoint *ck, const char *dir, const char *index_path, char *err,
                      size_t errlen)
{
    int rc = GLM_ERR;
    const char **names = NULL;
    char *fpath = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        glm_err(err, errlen, "%s: cannot load index: %s (line %d, column %d)", index_path,
                jerr.text, jerr.line, jerr.column);
        goto err;
    }
    const json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        glm_err(err, errlen, "%s: \"weight_map\" is missing or not an object", index_path);
        goto err;
    }
    size_t nmap = json_object_size(wm), nnames = 0;
    if (nmap == 0) {
        glm_err(err, errlen, "%s: \"weight_map\" is empty", index_path);
        goto err;
    }
    names = glm_malloc(nmap * sizeof(*names));
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)wm, key, val) {
        if (!json_is_string(val)) {
            glm_err(err, errlen, "%s: tensor '%s': file name is not a string", index_path, key);
            goto err;
        }
        const char *fn = json_string_value(val);
        if (fn[0] == '\0' || strchr(fn, '/') || strstr(fn, "..")) {
            glm_err(err, errlen, "%s: tensor '%s': bad file name \"%s\"", index_path, key, fn);
            goto err;
        }
        names[nnames++] = fn;
    }
    qsort(names, nnames, sizeof(*names), str_ptr_cmp);
    for (size_t i = 0; i < nnames; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        fpath = path_join(dir, names[i]);
        if (add_file(ck, fpath, err, errlen) != GLM_OK)
            goto err;
        free(fpath);
        fpath = NULL;
    }
    if (ck_finish(ck, err, errlen) != GLM_OK)
        goto err;
    json_object_foreach((json_t *)wm, key, val) {
        fpath = path_join(dir, json_string_value(val));
        const st_tensor *t = st_find(ck, key);
        if (!t || strcmp(t->file, fpath) != 0) {
            glm_err(err, errlen, "%s: tensor '%s' is not in %s, the file the index names",
                    index_path, key, fpath);
            goto err;
        }
        free(fpath);
        fpath = NULL;
    }
    rc = GLM_OK;
err:
    free(fpath);
    free(names);
    json_decref(root);
    return rc;
}

static int is_st_name(const struct dirent *d)
{
    size_t n = strlen(d->d_name), s = strlen(ST_SUFFIX);
    return n > s && strcmp(d->d_name + n - s, ST_SUFFIX) == 0;
}

static int dirent_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int open_all(st_checkpoint *ck, const char *dir, char *err, size_t errlen)
{
    int rc = GLM_ERR;
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, is_st_name, dirent_cmp);
    if (n < 0)
        return glm_err(err, errlen, "cannot list %s: %s", dir, strerror(errno));
    if (n == 0) {
        glm_err(err, errlen, "no .safetensors files in %s", dir);
        goto err;
    }
    for (int i = 0; i < n; i++) {
        char *p = path_join(dir, ents[i]->d_name);
        int r = add_file(ck, p, err, errlen);
        free(p);
        if (r != GLM_OK)
            goto err;
    }
    rc = ck_finish(ck, err, errlen);
err:
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

/* 1 if path exists, 0 if not, GLM_ERR (with err set) if it cannot be told. */
static int path_exists(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    return glm_err(err, errlen, "cannot stat %s: %s", path, strerror(errno));
}

int st_open(const char *dir, st_checkpoint **out, char *err, size_t errlen)
{
    st_checkpoint *ck = NULL;
    char *index = NULL, *single = NULL;
    *out = NULL;

    struct stat sb;
    if (stat(dir, &sb) != 0) {
        glm_err(err, errlen, "cannot open checkpoint directory %s: %s", dir, strerror(errno));
        goto err;
    }
    if (!S_ISDIR(sb.st_mode)) {
        glm_err(err, errlen, "%s: not a directory", dir);
        goto err;
    }
    ck = ck_new();
    index = path_join(dir, ST_INDEX_NAME);
    single = path_join(dir, ST_SINGLE_NAME);
    int e = path_exists(index, err, errlen);
    if (e == GLM_ERR)
        goto err;
    if (e == 1) {
        if (open_index(ck, dir, index, err, errlen) != GLM_OK)
            goto err;
    } else {
        e = path_exists(single, err, errlen);
        if (e == GLM_ERR)
            goto err;
        if (e == 1) {
            if (add_file(ck, single, err, errlen) != GLM_OK || ck_finish(ck, err, errlen) != GLM_OK)
                goto err;
        } else if (open_all(ck, dir, err, errlen) != GLM_OK) {
            goto err;
        }
    }
    free(index);
    free(single);
    *out = ck;
    return GLM_OK;
err:
    free(index);
    free(single);
    st_close(ck);
    return GLM_ERR;
}

const st_tensor *st_find(const st_checkpoint *ck, const char *name)
{
    if (!ck || !name)
        return NULL;
    size_t lo = 0, hi = ck->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ck->tensors[mid].name);
        if (c == 0)
            return &ck->tensors[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t st_count(const st_checkpoint *ck)
{
    return ck ? ck->ntensors : 0;
}

const st_tensor *st_get(const st_checkpoint *ck, size_t i)
{
    GLM_ASSERT(ck && i < ck->ntensors);
    return &ck->tensors[i];
}

size_t st_total_bytes(const st_checkpoint *ck)
{
    return ck ? ck->total_bytes : 0;
}

void st_close(st_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->ntensors; i++)
        free((char *)ck->tensors[i].name);
    for (size_t i = 0; i < ck->nfiles; i++) {
        munmap(ck->files[i].map, ck->files[i].size);
        free(ck->files[i].path);
    }
    free(ck->tensors);
    free(ck->files);
    free(ck);
}
