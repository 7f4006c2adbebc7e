/*
 * json_limits.h - bounds on the size and shape of JSON from the network,
 * checked on the raw text before jansson builds a tree of it, or on a tree
 * that is about to be kept or copied.
 *
 * Why before parsing: jansson spends 40 (an integer in an array) to 230 (an
 * empty object) bytes of memory per value, so a body of tiny values grows 20
 * to 80 times in memory as it is parsed. glm_json_scan counts the values, the
 * nesting and the members of every container in one pass over the bytes (no
 * allocation; 0.4 GB/s on a body of small numbers, more on anything else), so
 * a body over the limits is refused before any tree exists, and a body within
 * them builds a tree of at most about 230 bytes x max_values (plus its
 * strings).
 *
 * What is counted, the same way for text and trees:
 *   values        every object, array, string, number, true, false and null;
 *                 member names are not values
 *   depth         containers inside containers; the outermost is at depth 1
 *   members       the elements of one array or the members of one object
 *   string bytes  the bytes of every string and member name: as written in
 *                 text (escapes count as written), as stored in a tree
 * The scanner does not validate: text that is not JSON is counted as far as
 * it looks like JSON, and jansson refuses it afterwards. Whatever the bytes,
 * the counts bound the tree jansson can build from them.
 */
#ifndef GLM_CORE_JSON_LIMITS_H
#define GLM_CORE_JSON_LIMITS_H

#include <jansson.h>
#include <stddef.h>

/* A zero field is no limit. */
typedef struct {
    int max_depth;
    size_t max_values;
    size_t max_members;
    size_t max_string_bytes;
} glm_json_limits;

typedef enum {
    GLM_JSON_WITHIN = 0,
    GLM_JSON_TOO_DEEP,
    GLM_JSON_TOO_MANY_VALUES,
    GLM_JSON_TOO_MANY_MEMBERS,
    GLM_JSON_TOO_MANY_STRING_BYTES,
} glm_json_excess;

/* What a scan or a measure found. The counts are complete when excess is
 * GLM_JSON_WITHIN, else counted up to the point where a limit was passed. */
typedef struct {
    size_t values;
    int depth;                /* the deepest nesting */
    size_t string_bytes;
    glm_json_excess excess;   /* the first limit passed */
    char field[64];           /* when the outermost value is an object: its member where the limit was
                                 passed (for too many values, the member holding the most of them);
                                 "" otherwise, or when the name is not plain ASCII */
} glm_json_shape;

/* Scans JSON text text[0, len) against lim (NULL: none) into *out. Returns
 * GLM_OK when every limit holds, else GLM_ERR with out->excess set. */
int glm_json_scan(const char *text, size_t len, const glm_json_limits *lim, glm_json_shape *out);

/* The same count over a tree (v may be NULL: nothing). */
int glm_json_measure(const json_t *v, const glm_json_limits *lim, glm_json_shape *out);

/* One line for a shape over its limits, naming `what` (e.g. "the request
 * body", "'chat_template_kwargs'") and the member the shape blames, e.g.
 * "the request body holds more than 262144 JSON values (most of them in
 * 'messages')". Returns GLM_ERR, for `return glm_json_shape_error(...)`. */
int glm_json_shape_error(const glm_json_shape *s, const glm_json_limits *lim, const char *what, char *err,
                         size_t errlen);

#endif
