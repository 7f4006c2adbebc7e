/*
 * cli_text.c - text tools over a checkpoint's tokenizer and chat template:
 *   glm-server tokenize   --model DIR [--no-special]   text on stdin -> ids
 *   glm-server detokenize --model DIR [--skip-special] ids on stdin -> text
 *   glm-server render     --model DIR                  chat request JSON on stdin -> prompt
 * `render` prints exactly the prompt the server feeds the model (no newline
 * added); `tokenize` and `detokenize` use the same code as /tokenize and
 * /detokenize.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_request.h"
#include "text/chat_template.h"
#include "cli.h"
#include "text/tokenizer.h"
#include "core/util.h"

#define STDIN_MAX ((size_t)256 << 20)

/* Reads all of stdin; NULL (message printed) past STDIN_MAX or on error. */
static char *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = glm_malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= STDIN_MAX) {
                fprintf(stderr, "glm-server: input larger than %zu bytes\n", STDIN_MAX);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = glm_realloc(buf, cap + 1);
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "glm-server: cannot read standard input: %s\n", strerror(errno));
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Parses --model DIR and one optional flag; returns 0, or the exit status. */
static int parse_common(int argc, char **argv, const char *cmd, const char *flag, const char **model,
                        int *flag_set)
{
    struct option opts[] = {{"model", required_argument, 0, 'm'},
                            {flag ? flag : "help", no_argument, 0, 'f'},
                            {"help", no_argument, 0, 'h'},
                            {0, 0, 0, 0}};
    int o;
    optind = 1;
    *model = NULL;
    *flag_set = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': *model = optarg; break;
        case 'f':
            if (flag) {
                *flag_set = 1;
                break;
            }
            /* fallthrough */
        case 'h':
            printf("usage: glm-server %s --model DIR%s%s%s\n", cmd, flag ? " [--" : "", flag ? flag : "",
                   flag ? "]" : "");
            return -1;
        default:
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "glm-server: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!*model) {
        fprintf(stderr, "glm-server: %s: --model is required\n", cmd);
        return 2;
    }
    return 0;
}

static glm_tok *load_tokenizer(const char *dir)
{
    char path[4096], err[GLM_ERRLEN];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    glm_tok *t = NULL;
    if (glm_tok_load(path, &t, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        return NULL;
    }
    return t;
}

/* The common start of tokenize and detokenize: flags, the tokenizer, stdin.
 * Returns -1 to go on (*t and *text set), else the exit status. */
static int text_tool_start(int argc, char **argv, const char *cmd, const char *flag, int *flag_set, glm_tok **t,
                           char **text, size_t *len)
{
    const char *dir;
    int rc = parse_common(argc, argv, cmd, flag, &dir, flag_set);
    if (rc)
        return rc < 0 ? 0 : rc;
    *t = load_tokenizer(dir);
    if (!*t)
        return 1;
    *text = read_stdin(len);
    if (!*text) {
        glm_tok_free(*t);
        return 1;
    }
    return -1;
}

int glm_cli_tokenize(int argc, char **argv)
{
    int no_special;
    glm_tok *t;
    char *text;
    size_t len;
    int rc = text_tool_start(argc, argv, "tokenize", "no-special", &no_special, &t, &text, &len);
    if (rc >= 0)
        return rc;
    int32_t *ids = NULL;
    size_t n = 0;
    char err[GLM_ERRLEN];
    rc = 0;
    if (glm_tok_encode(t, text, len, !no_special, &ids, &n, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        rc = 1;
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    glm_tok_free(t);
    return rc;
}

int glm_cli_detokenize(int argc, char **argv)
{
    int skip;
    glm_tok *t;
    char *text;
    size_t len;
    int rc = text_tool_start(argc, argv, "detokenize", "skip-special", &skip, &t, &text, &len);
    if (rc >= 0)
        return rc;
    /* ids separated by commas and/or whitespace */
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' || text[i] == '\t' || text[i] == '\r')
            text[i] = ' ';
    while (len > 0 && text[len - 1] == ' ')
        text[--len] = 0;
    int *ids = NULL;
    char err[GLM_ERRLEN];
    int n = len ? glm_parse_id_list(text, &ids, err, sizeof err) : 0;
    rc = 0;
    if (n < 0) {
        fprintf(stderr, "glm-server: %s\n", err);
        rc = 2;
    } else {
        int32_t vocab = glm_tok_vocab_size(t);
        for (int i = 0; i < n; i++) {
            if (ids[i] >= vocab) {
                fprintf(stderr, "glm-server: token id %d is outside the vocabulary (0..%d)\n", ids[i], vocab - 1);
                rc = 1;
                break;
            }
        }
        if (rc == 0) {
            int32_t *v = glm_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
            for (int i = 0; i < n; i++)
                v[i] = ids[i];
            size_t out_len;
            char *out = glm_tok_decode(t, v, (size_t)n, skip, &out_len);
            fwrite(out, 1, out_len, stdout);
            free(out);
            free(v);
        }
    }
    free(ids);
    free(text);
    glm_tok_free(t);
    return rc;
}

int glm_cli_render(int argc, char **argv)
{
    const char *dir;
    int unused;
    int rc = parse_common(argc, argv, "render", NULL, &dir, &unused);
    if (rc)
        return rc < 0 ? 0 : rc;
    char err[GLM_ERRLEN];
    glm_chat_template *ct = NULL;
    if (glm_chat_template_load(dir, &ct, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        return 1;
    }
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        glm_chat_template_free(ct);
        return 1;
    }
    json_error_t je;
    json_t *req = json_loadb(text, len, 0, &je);
    free(text);
    json_t *kw = NULL, *msgs = NULL;
    char *prompt = NULL;
    size_t plen = 0;
    rc = 1;
    if (!req || !json_is_object(req)) {
        fprintf(stderr, "glm-server: the request is not a JSON object%s%s\n", req ? "" : ": ", req ? "" : je.text);
        goto out;
    }
    json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        fprintf(stderr, "glm-server: 'messages' must be a non-empty array\n");
        goto out;
    }
    msgs = glm_chat_messages_for_template(messages, err, sizeof err);
    if (!msgs) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    json_t *tools = json_object_get(req, "tools");
    if (tools && json_is_null(tools))
        tools = NULL;
    if (tools && !json_is_array(tools)) {
        fprintf(stderr, "glm-server: 'tools' must be an array\n");
        goto out;
    }
    json_t *agp = json_object_get(req, "add_generation_prompt");
    bool add_gen = !agp || json_is_true(agp);
    glm_chat_options co;
    if (glm_chat_options_parse(req, NULL, &co, err, sizeof err) == GLM_OK)
        kw = co.kwargs;
    if (!kw) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    if (glm_chat_render(ct, msgs, tools, add_gen, kw, &prompt, &plen, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    fwrite(prompt, 1, plen, stdout);
    rc = 0;
out:
    free(prompt);
    json_decref(kw);
    json_decref(msgs);
    json_decref(req);
    glm_chat_template_free(ct);
    return rc;
}
