/*
 * cli_text.c - text tools over a checkpoint's tokenizer and chat template:
 *   glm-server tokenize   --model DIR [--no-special]   text on stdin -> ids
 *   glm-server detokenize --model DIR [--skip-special] ids on stdin -> text
 *   glm-server render     --model DIR [--ids] [--default-chat-template-kwargs JSON]
 *                         [--max-model-len N]          chat request JSON on stdin -> prompt
 * `render` prints exactly the prompt the server feeds the model (no newline
 * added), or with --ids its token ids: it builds it with the chat API's and
 * /tokenize's function (engine/glm/chat_prompt.h) under the server's request
 * limits (those of --max-model-len, default config.json's
 * max_position_embeddings), so it accepts and rejects what they do. `tokenize` and `detokenize` use the same code as /tokenize and
 * /detokenize.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glm/chat_prompt.h"
#include "text/chat_template.h"
#include "cli.h"
#include "text/tokenizer.h"
#include "core/buf.h"
#include "core/json_limits.h"
#include "core/util.h"

#define STDIN_MAX ((size_t)256 << 20)

/* Reads all of stdin; NULL (message printed) past STDIN_MAX or on error. */
static char *read_stdin(size_t *len)
{
    glm_buf b = {0};
    if (glm_buf_read(&b, stdin, STDIN_MAX) != GLM_OK) {
        if (ferror(stdin))
            fprintf(stderr, "glm-server: cannot read standard input: %s\n", strerror(errno));
        else
            fprintf(stderr, "glm-server: input larger than %zu bytes\n", STDIN_MAX);
        glm_buf_free(&b);
        return NULL;
    }
    return glm_buf_take(&b, len);
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

/* detokenize reads ids separated by commas and/or whitespace ("1,2", "1, 2",
 * "1 2", one a line). Rewrites text in place into the comma list
 * glm_parse_id_list reads: a whitespace run between two ids becomes a comma,
 * any other a space, and trailing whitespace goes. Returns the new length. */
static size_t ids_to_list(char *text, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (!isspace((unsigned char)text[i])) {
            text[o++] = text[i++];
            continue;
        }
        size_t j = i;
        while (j < len && isspace((unsigned char)text[j]))
            j++;
        if (j < len) {
            int between = o > 0 && isdigit((unsigned char)text[o - 1]) && isdigit((unsigned char)text[j]);
            text[o++] = between ? ',' : ' ';
        }
        i = j;
    }
    text[o] = 0;
    return o;
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
    len = ids_to_list(text, len);
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

/* config.json's max_position_embeddings in dir, or 0 when there is none. */
static int context_length(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    json_t *v = json_object_get(c, "max_position_embeddings");
    int n = json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= INT32_MAX
                ? (int)json_integer_value(v)
                : 0;
    json_decref(c);
    return n;
}

int glm_cli_render(int argc, char **argv)
{
    struct option opts[] = {{"model", required_argument, 0, 'm'},
                            {"ids", no_argument, 0, 'i'},
                            {"default-chat-template-kwargs", required_argument, 0, 'k'},
                            {"max-model-len", required_argument, 0, 'l'},
                            {"help", no_argument, 0, 'h'},
                            {0, 0, 0, 0}};
    const char *dir = NULL, *defkw_text = NULL;
    int ids_out = 0, o, max_model_len = -1;
    char *end;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': dir = optarg; break;
        case 'i': ids_out = 1; break;
        case 'k': defkw_text = optarg; break;
        case 'l':
            max_model_len = (int)strtol(optarg, &end, 10);
            if (*end || !*optarg || max_model_len < 1) {
                fprintf(stderr, "glm-server: --max-model-len must be a positive integer\n");
                return 2;
            }
            break;
        case 'h':
            printf("usage: glm-server render --model DIR [--ids] [--default-chat-template-kwargs JSON] "
                   "[--max-model-len N]\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "glm-server: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!dir) {
        fprintf(stderr, "glm-server: render: --model is required\n");
        return 2;
    }
    glm_out_tags tags;
    glm_out_tags_default(&tags);
    glm_chat_ctx c = {.tags = &tags};
    glm_chat_limits_init(&c.limits, max_model_len > 0 ? max_model_len : context_length(dir));
    json_error_t je;
    char err[GLM_ERRLEN];
    json_t *defkw = defkw_text ? json_loads(defkw_text, 0, &je) : NULL;
    if (defkw_text && !json_is_object(defkw)) {
        fprintf(stderr, "glm-server: --default-chat-template-kwargs must be a JSON object\n");
        json_decref(defkw);
        return 2;
    }
    if (defkw && glm_chat_kwargs_check(&c.limits, defkw, "--default-chat-template-kwargs", err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        json_decref(defkw);
        return 2;
    }
    glm_chat_template *ct = NULL;
    glm_tok *tok = NULL;
    json_t *req = NULL;
    glm_chat_prompt p = {0};
    int rc = 1;
    if (glm_chat_template_load(dir, &ct, err, sizeof err) != GLM_OK || !(tok = load_tokenizer(dir))) {
        if (!ct)
            fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    size_t len;
    char *text = read_stdin(&len);
    if (!text)
        goto out;
    glm_json_shape shape; /* the server's body limits, before the tree is built */
    if (glm_json_scan(text, len, &c.limits.json, &shape) != GLM_OK) {
        glm_json_shape_error(&shape, &c.limits.json, "the request body", err, sizeof err);
        fprintf(stderr, "glm-server: %s\n", err);
        free(text);
        goto out;
    }
    req = json_loadb(text, len, 0, &je);
    free(text);
    if (!req || !json_is_object(req)) {
        fprintf(stderr, "glm-server: the request is not a JSON object%s%s\n", req ? "" : ": ", req ? "" : je.text);
        goto out;
    }
    c.tmpl = ct;
    c.tok = tok;
    c.default_kwargs = defkw;
    if (glm_chat_prompt_build(&c, req, 0, &p, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "glm-server: %s\n", err);
        goto out;
    }
    if (ids_out) {
        for (size_t i = 0; i < p.n_ids; i++)
            printf("%s%d", i ? "," : "", p.ids[i]);
        printf("\n");
    } else {
        fwrite(p.text, 1, p.len, stdout);
    }
    rc = 0;
out:
    glm_chat_prompt_free(&p);
    json_decref(req);
    json_decref(defkw);
    glm_tok_free(tok);
    glm_chat_template_free(ct);
    return rc;
}
