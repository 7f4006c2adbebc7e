/*
 * main.c - the glm-server binary: dispatches to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#include "server.h"

#define GLM_VERSION GLM_SERVER_VERSION

static void usage(FILE *f)
{
    fprintf(f, "glm-server %s - OpenAI-compatible inference server for GLM-5 (glm_moe_dsa)\n\n"
               "usage: glm-server COMMAND [options]\n\n"
               "commands:\n"
               "  serve      the OpenAI-compatible HTTP server (the default when the first\n"
               "             argument is a flag: glm-server --model DIR ...)\n"
               "  generate   greedy generation from token ids (engine CLI)\n"
               "  tokenize   text on stdin -> token ids\n"
               "  detokenize token ids on stdin -> text\n"
               "  render     OpenAI chat request (JSON) on stdin -> the prompt the server would use\n"
               "  --version  print the version\n",
            GLM_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return glm_cli_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "generate") == 0)
        return glm_cli_generate(argc - 1, argv + 1);
    if (strcmp(argv[1], "tokenize") == 0)
        return glm_cli_tokenize(argc - 1, argv + 1);
    if (strcmp(argv[1], "detokenize") == 0)
        return glm_cli_detokenize(argc - 1, argv + 1);
    if (strcmp(argv[1], "render") == 0)
        return glm_cli_render(argc - 1, argv + 1);
    if (strcmp(argv[1], "--version") == 0) {
        printf("glm-server %s\n", GLM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (argv[1][0] == '-' && argv[1][1] == '-')
        return glm_cli_serve(argc, argv); /* glm-server --model DIR ... */
    fprintf(stderr, "glm-server: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
