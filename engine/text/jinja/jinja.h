/*
 * jinja.h - a small, bounded Jinja2 interpreter for chat templates.
 *
 * Renders Hugging Face chat templates the way transformers' apply_chat_template
 * does: jinja2 with trim_blocks and lstrip_blocks, the loopcontrols extension
 * (break/continue), transformers' `{% generation %}` tag, the globals
 * raise_exception, namespace, dict, range, strftime_now, and transformers'
 * tojson (Python json.dumps: ", " / ": " separators, non-ASCII kept).
 * Python semantics are followed where templates can see them: str()/repr() of
 * values, float formatting, truthiness, comparisons, slicing by code point,
 * jinja2's default Undefined (prints as "", is falsy, iterates as empty, errors
 * on arithmetic, attribute access and calls). repr() escapes exactly what
 * str.isprintable() of the reference environment's Python rejects (3.11,
 * Unicode 14.0.0: unassigned code points, format characters such as the tag
 * characters of subdivision flags, ...; a table generated from that Python by
 * tests/golden/make_unicode_tables.py).
 *
 * A compiled template is immutable: any number of threads may render it at the
 * same time. Every render runs under limits (steps, output bytes, scratch
 * memory, call depth), so a template that loops forever or recurses without end
 * stops with an error instead of holding a server thread.
 *
 * Not supported (compile error): template inheritance and inclusion
 * (extends/block/include/import/from), recursive for loops, autoescape blocks,
 * the `do` tag and any filter or test jinja2 does not ship (plus groupby,
 * striptags, truncate, wordwrap, urlize, urlencode, xmlattr, filesizeformat,
 * random, pprint, lipsum).
 * Known differences from Python, none of which chat templates rely on:
 * integers are 64-bit (overflow is an error); case mapping covers ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic (no final sigma, ß stays);
 * filters that return generators in jinja2 (map, select, reject, batch,
 * unique, reverse, items) return lists, so printing one shows the list and errors surface eagerly;
 * Markup (|safe, |e) is a plain string; jinja2's constant folding turns a few
 * invalid constant expressions (e.g. `{{ none[1:] }}`) into Undefined where
 * this renders an error.
 */
#ifndef GLM_JINJA_H
#define GLM_JINJA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct glm_jinja glm_jinja;

/* Limits of one render. A zero field takes its default. */
typedef struct glm_jinja_limits {
    uint64_t max_steps;  /* evaluated nodes + loop iterations + work of string
                            and list builtins (about one per 256 bytes or 16
                            items); default 10,000,000 */
    size_t max_output;   /* bytes of rendered text (also of any captured macro /
                            set-block output); default 64 MiB */
    size_t max_memory;   /* bytes of scratch memory for values; default 256 MiB */
    int max_depth;       /* nested macro / call-block calls; default 200 (a render
                            also stops past about 1 MiB of C stack) */
} glm_jinja_limits;

/* Compiles template text `src` (`len` bytes, UTF-8). `name` only labels error
 * messages (may be NULL). On success stores a handle in *out and returns GLM_OK.
 * On a syntax error returns GLM_ERR and writes one line into err, e.g.
 * "chat_template.jinja:12: expected 'endfor' or 'else' to close 'for' from line 3,
 * got end of template". Unknown filters and tests are compile errors. */
int glm_jinja_compile(const char *src, size_t len, const char *name, glm_jinja **out, char *err,
                      size_t errlen);

/* Renders `t` with the top-level variables of the JSON object `ctx` (may be
 * NULL: no variables). Strings, numbers, booleans, null, arrays and objects map
 * to Python str, int/float, bool, None, list and dict; object key order is kept.
 * `limits` may be NULL for the defaults. On success stores a malloc'd,
 * NUL-terminated string in *out (its length, without the NUL, in *out_len when
 * out_len is not NULL) and returns GLM_OK; the caller frees it. On error returns
 * GLM_ERR with one line in err naming the template line, e.g.
 * "chat_template.jinja:40: raise_exception: Conversation roles must alternate"
 * or "...: template exceeded 10000000 steps". `ctx` is only read (not even its
 * reference counts change). The output holds NUL bytes only if input strings
 * do; *out_len is exact either way. */
int glm_jinja_render(const glm_jinja *t, const json_t *ctx, const glm_jinja_limits *limits,
                     char **out, size_t *out_len, char *err, size_t errlen);

/* Frees a compiled template (NULL is ignored). No render may be running on it. */
void glm_jinja_free(glm_jinja *t);

#endif
