/*
 * serve_config.h - `glm-server serve --config FILE` (serve_config.c): a JSON
 * file with the same keys as the command-line flags, turned into arguments
 * that the real command line overrides.
 */
#ifndef GLM_SERVE_CONFIG_H
#define GLM_SERVE_CONFIG_H

#include <getopt.h>
#include <stddef.h>

/* Reads path and returns its settings as "--flag" [value] arguments in
 * *out[*n_out] (NULL-terminated, free with glm_serve_config_free). opts: the
 * flags of `serve`, to check the keys. GLM_ERR with a message naming the file
 * and key. */
int glm_serve_config_args(const char *path, const struct option *opts, char ***out, int *n_out, char *err,
                          size_t errlen);
void glm_serve_config_free(char **v, int n);

#endif
