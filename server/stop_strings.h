/*
 * stop_strings.h - OpenAI `stop` strings over a stream of generated text.
 *
 * Text arrives in pieces (complete UTF-8, as the detokenizer gives it). The
 * matcher releases only text that can no longer be part of a stop string:
 * the longest tail that is a prefix of some stop string is held back until
 * the next piece decides it. When a stop string appears, the text before it
 * is released and the stop string and everything after it never are (vLLM's
 * default, include_stop_str_in_output=false; with include_stop set, the stop
 * string is released too). Since stop strings are valid
 * UTF-8, a held-back tail always starts on a character boundary, so every
 * released piece is valid UTF-8 when the input is.
 */
#ifndef GLM_STOP_STRINGS_H
#define GLM_STOP_STRINGS_H

#include <stddef.h>

#include "core/buf.h"

typedef struct {
    const char *const *stops;  /* [n_stops], borrowed; non-empty strings */
    const size_t *stop_lens;   /* [n_stops] */
    int n_stops;
    glm_buf held;              /* text held back */
    int stopped;               /* 1 once a stop string was found */
    int include_stop;          /* set by the caller: release the stop string itself too */
    glm_buf out;               /* released text of the last call */
} glm_stop;

/* Starts a matcher over the given strings (borrowed, must outlive it); n may be 0. */
void glm_stop_init(glm_stop *s, const char *const *stops, const size_t *lens, int n);
void glm_stop_free(glm_stop *s);

/*
 * Adds a piece; *out and *out_len receive the text now safe to send (valid until
 * the next call). Returns 1 when a stop string was found (the text before it
 * was released; later calls release nothing), else 0.
 */
int glm_stop_push(glm_stop *s, const char *text, size_t len, const char **out, size_t *out_len);

/* The end of the stream: releases what was held back (nothing after a stop). */
void glm_stop_flush(glm_stop *s, const char **out, size_t *out_len);

#endif
