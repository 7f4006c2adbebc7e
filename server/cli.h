/*
 * cli.h - the engine's command-line tools, kept beside the server:
 *   glm-server generate --model DIR --prompt-ids 1,2,3 --max-tokens N [--logits FILE]
 *   glm-server tokenize | detokenize | render --model DIR   (stdin -> stdout)
 *   glm-server serve --model DIR [...]                      (serve.c)
 */
#ifndef GLM_CLI_H
#define GLM_CLI_H

#include <stddef.h>

/* Each returns the process exit status (0 ok, 1 runtime error, 2 usage). */
int glm_cli_generate(int argc, char **argv);
int glm_cli_tokenize(int argc, char **argv);
int glm_cli_detokenize(int argc, char **argv);
int glm_cli_render(int argc, char **argv);
/* glm-server serve --model DIR [...]: runs the HTTP server until SIGINT/SIGTERM. */
int glm_cli_serve(int argc, char **argv);

/* Parses "1,2,3" into a new array; returns the count, or -1 with a message. */
int glm_parse_id_list(const char *s, int **out, char *err, size_t errlen);

#endif
