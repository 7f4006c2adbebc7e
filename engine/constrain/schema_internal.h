/*
 * schema_internal.h - what the parts of the JSON Schema -> GBNF compiler
 * share (not a public contract; schema_grammar.h is that).
 *
 *   schema_compile.c    schema JSON -> snodes (checks the supported subset)
 *   schema_wellformed.c glm_schema_wellformed: every keyword, on the JSON itself
 *   schema_validate.c   JSON values against snodes (enum/const filtering)
 *   schema_text.c       GBNF text: literals, counts, integer ranges, fixed rules
 *   schema_gen.c        the memoised rule generator over conjunctions of snodes
 *   schema_values.c     one conjunction's alternatives: strings, objects, arrays
 *   schema_grammar.c    the entry points: two passes, productivity, assembly
 * engine/glm/tool_grammar.c builds GLM-5's tool-call grammars on the same
 * generator: it sets the G_ARGS writer (gctx.args) and reads full_types.
 *
 * Internal names carry the prefix sg_.
 */
#ifndef GLM_SCHEMA_INTERNAL_H
#define GLM_SCHEMA_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/util.h"

#define MAX_DEPTH 64                 /* schema nesting */
#define MAX_NODES 10000              /* subschemas per grammar */
#define MAX_COUNT 1000               /* minItems/maxItems/minLength/maxLength */
#define MAX_RULES 10000              /* generated rules */
#define MAX_OUT (1u << 20)           /* grammar text, bytes */
#define MAX_GEN_DEPTH 256            /* nested rule generation */
#define MAX_STEPS 10000000L          /* validator steps (enum/const filtering), per grammar */
#define MAX_CONJ 256                 /* subschemas that apply to one value */
#define MAX_FULL 10000               /* steps of the full_types test, per call */
#define MAX_VDEPTH 512               /* validator recursion */
#define INT_CAP 9999999999999999LL   /* 16 digits: the largest generated integer */
#define PATH_CAP 256                 /* "schema.properties.x..." paths in messages */

/* JSON types; "number" is INT | FRAC, so intersections come out right. */
enum { T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_STR = 16, T_INT = 32, T_FRAC = 64,
       T_ALL = 127 };
enum { ADDL_ANY, ADDL_FALSE, ADDL_SCHEMA };

/* Generation modes: JSON; TJSON (JSON that never holds "</", for values
 * inside markup closed by "</..."); RAW (the unquoted text of a string, no
 * "</"); ARGS (an object written by gctx.args: a tool's argument list). */
enum { G_JSON, G_TJSON, G_RAW, G_ARGS };

/* Every text buffer of the compiler carries the grammar's size limit
 * (core/buf.h): a write past it is dropped and marks the buffer `over`,
 * which fails the grammar once, at the end. */
#define TEXT {.max_len = MAX_OUT - 1}

/* A growable list of ints. */
typedef struct {
    int *v;
    int n, cap;
} ivec;

static inline void ivec_push(ivec *a, int x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = glm_realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* ---- snodes (schema_compile.c) ---------------------------------------------------- */

typedef struct snode snode;
struct snode {
    int id;
    char *path;                /* "schema.properties.x", for messages */
    int is_false;              /* the schema `false` */
    unsigned types;            /* T_* allowed by "type" (T_ALL when absent) */
    const json_t *enum_vals;   /* "enum" array, or NULL */
    const json_t *const_val;   /* "const", or NULL */
    int min_len, max_len;      /* max_len < 0: none */
    int has_lo, has_hi;        /* integer bounds, inclusive, clamped */
    long long lo, hi;
    int n_props;               /* "properties" in order */
    const char **keys;         /* [n_props] */
    snode **props;             /* [n_props] */
    json_t *key_index;         /* key -> index in keys, or NULL */
    int n_req;
    const char **req;          /* [n_req] */
    int addl;                  /* ADDL_* */
    snode *addl_schema;        /* ADDL_SCHEMA */
    int n_prefix;
    snode **prefix;            /* [n_prefix] */
    snode *items;              /* beyond the prefix; NULL: any */
    int min_items, max_items;  /* max_items < 0: none */
    const char *ref_str;       /* "$ref" as written */
    snode *ref;                /* resolved */
    int n_all;
    snode **all;               /* allOf */
    int n_union[2];            /* anyOf, oneOf */
    snode **unions[2];
    unsigned mark;             /* closure epoch */
};

typedef struct {
    snode **v;
    int n, cap;
} arena;

/* One schema document: its root and $defs/definitions, for $ref. */
typedef struct {
    arena *a;
    char *err;
    size_t errlen;
    snode *root;
    json_t *def_nodes; /* {"$defs": {NAME: node id}, "definitions": {...}} */
    int first;         /* id of the document's first node */
    int lenient;       /* unsupported validation keywords are ignored, not errors */
} doc;

void sg_arena_free(arena *a);

/* Compiles one document into a; its root, or NULL with err set. lenient:
 * validation keywords the grammar cannot express are ignored. */
snode *sg_compile_doc(arena *a, const json_t *schema, const char *path, int lenient, char *err, size_t errlen);

/* n->types from a "type" value t; GLM_ERR with d->err set. */
int sg_compile_type(doc *d, snode *n, const json_t *t, const char *path);

/* path + suffix, truncated to fit. */
void sg_sub_path(char *out, size_t cap, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- the validator (schema_validate.c) ---------------------------------------------- */

typedef struct {
    long steps;          /* shared by every check of one grammar */
    int failed;          /* the budget ran out */
    const json_t *cand;  /* the value being checked, an element of */
    const json_t *src;   /* this enum: membership in it is known */
} vstate;

/* The nodes already being checked against the current value: a $ref cycle that
 * comes back to one of them without descending adds nothing. */
typedef struct vstack {
    const snode *n;
    const struct vstack *up;
} vstack;

/* 1 when v satisfies n (up: the nodes already being checked against v). */
int sg_valid(vstate *vs, const json_t *v, const snode *n, const vstack *up, int depth);

/* Index of property k in s->keys, or -1. */
int sg_node_key(const snode *s, const char *k);

/* ---- GBNF text (schema_text.c) ---------------------------------------------------------- */

/* The right-hand side of a rule that matches nothing: an empty character class. */
#define NEVER "[^\\x00-\\U0010FFFF]"

/* Shared fixed rules, written once at the end when used. */
enum {
    F_WS = 1 << 0, F_ESC = 1 << 1, F_JCHAR = 1 << 2, F_JSTRING = 1 << 3, F_JINT = 1 << 4,
    F_JNUMBER = 1 << 5, F_JVALUE = 1 << 6, F_JOBJECT = 1 << 7, F_JARRAY = 1 << 8,
    F_TCHAR = 1 << 9, F_TSTRING = 1 << 10, F_TVALUE = 1 << 11, F_TOBJECT = 1 << 12,
    F_TARRAY = 1 << 13, F_RAWA = 1 << 14, F_RAWB = 1 << 15, F_NL = 1 << 16, F_COUNT = 17
};

typedef struct {
    const char *name;
    const char *text;
    unsigned deps; /* F_* it uses */
} sg_fixed_rule;

extern const sg_fixed_rule SG_FIXED[F_COUNT];

/* A GBNF string literal of the bytes s[0..n): quotes, backslashes and control
 * characters escaped, UTF-8 kept. */
void sg_lit(glm_buf *b, const char *s, size_t n);
void sg_lits(glm_buf *b, const char *s);

/* The GBNF literal of s as a JSON string (tool: "</" written "<\/"). */
void sg_lit_json_string(glm_buf *b, const char *s, size_t n, int tool);

/* Repetition suffix for {lo,hi} (hi < 0: unbounded). */
void sg_rep(glm_buf *b, int lo, int hi);

/* Canonical decimal integers in [lo, hi] (|lo|, |hi| <= INT_CAP), as one group. */
void sg_int_range(glm_buf *b, long long lo, long long hi);

/* ---- the generator (schema_gen.c, schema_values.c) ------------------------------------------ */

/* A conjunction: the snodes that all constrain one value (sorted by id, only
 * those with constraints of their own), and the unions already chosen. */
typedef struct conj {
    snode **v;
    int n, cap;
    int *res;
    int nres;
} conj;

/* A rule being built: its alternatives, and for each the generated rules it
 * cannot do without (its mandatory references), each list closed by -1. */
typedef struct {
    glm_buf body;
    int nalt;
    ivec needs;
} rbuild;

enum { R_BUSY, R_BUSY_USED, R_DONE };

typedef struct {
    const char *key;
    conj set;     /* the schemas of its value */
    int required;
    const char *rule;
} prop;

typedef struct gctx {
    arena nodes;
    glm_buf out;            /* generated rules */
    json_t *memo;       /* key -> rule index (-1 once known empty) */
    char **names;       /* [n_rules] */
    int n_rules, cap_rules;
    unsigned fixed;     /* F_* used */
    unsigned char *rstate; /* per rule: R_BUSY, R_BUSY_USED (referenced while built), R_DONE */
    vstate vs;
    int full_steps;
    char **bodies;      /* per rule: its right-hand side, NULL when not written */
    size_t body_bytes;  /* their total length */
    char **keys;        /* per rule: its memo key */
    json_t *skip;       /* memo keys of rules known to derive no finite text */
    ivec *needs;        /* per rule: rbuild.needs */
    json_t *name_index; /* rule name -> index */
    json_t *raw_chains; /* "min,max" -> K of the rules qK-aI / qK-bI */
    unsigned epoch;
    int depth;
    int failed;
    char *err;
    size_t errlen;
    const char *root_name; /* of the start rule */
    /* mode G_ARGS: the writer of an argument list as one alternative
       (engine/glm/tool_grammar.c), its state, and its part of the memo keys */
    int (*args)(struct gctx *g, const struct conj *c, glm_buf *alt, ivec *needs);
    void *args_ctx;
    int args_key;
} gctx;

/* Records a failure (the first message wins); returns GLM_ERR. */
int sg_fail(gctx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The name of fixed rule f (F_*), marking it and what it needs as used. */
const char *sg_use(gctx *g, unsigned f);

/* Records that the alternative being built cannot match without `rule`. */
void sg_need(gctx *g, ivec *needs, const char *rule);

void sg_conj_add(conj *c, snode *n);
void sg_conj_free(conj *c);

/* in + extra closed over $ref and allOf (nodes without constraints dropped),
 * with in's chosen unions + extra_res (-1: none). */
void sg_closure(gctx *g, const conj *in, snode *extra, int extra_res, conj *out);

/* The types of which every value satisfies the conjunction (an under-estimate;
 * 0 past MAX_FULL steps, counted in g->full_steps). */
unsigned sg_full_types(gctx *g, const conj *in, snode *extra, int depth);

/* The rule for the values (mode) satisfying every node of in + extra, with
 * in's chosen unions + extra_res. Returns its name, or NULL when no value fits
 * (or on failure: check g->failed). Names stay valid until the gctx is freed. */
const char *sg_gen(gctx *g, const conj *in, snode *extra, int extra_res, int mode, const char *hint);

/* sg_gen for a set of nodes given as an array (a property's or an item's). */
const char *sg_gen_set(gctx *g, snode **v, int n, int mode, const char *hint);

int sg_chosen(const conj *c, int uid);
unsigned sg_conj_types(const conj *c);
const json_t *sg_conj_candidates(const conj *c, json_t **owned);
int sg_conj_valid(gctx *g, const conj *c, const json_t *v, const json_t *src);

/* A JSON value as a GBNF sequence, whitespace allowed between tokens. */
void sg_lit_value(gctx *g, glm_buf *b, const json_t *v, int tool);

/* Adds alt (needing the rules in `needs`, may be NULL) to the rule (schema_values.c). */
void sg_add_alt(rbuild *rb, const glm_buf *alt, const ivec *needs);

/* The alternatives of a conjunction whose unions are all chosen (schema_values.c). */
void sg_gen_merged(gctx *g, const conj *c, int mode, const char *name, rbuild *rb);

/* The members an object of conjunction c may have, in order (schema_values.c);
 * 0 when no object fits. Free with sg_props_free. */
int sg_object_props(const conj *c, prop **out, int *n_out, conj *map, int *closed);
void sg_props_free(prop *p, int n);

/* ---- passes and assembly (schema_grammar.c) ----------------------------------------------- */

void sg_gctx_init(gctx *g, char *err, size_t errlen);
/* Drops everything generated (the compiled schemas and the skip set stay). */
void sg_gctx_reset(gctx *g);
void sg_gctx_free(gctx *g);
/* Per rule: 1 when it derives some finite text ([n_rules + 1], malloc'd). */
unsigned char *sg_productive(const gctx *g);
/* 1 when some written rule derives no finite text; they go to g->skip. */
int sg_mark_unproductive(gctx *g, const unsigned char *prod);
/* 1 when `rule` (a generated or fixed rule name) derives some text. */
int sg_rule_productive(const gctx *g, const unsigned char *prod, const char *rule);
/* "ROOT ::= root_body\n" + the rules + the fixed rules used, or NULL. */
char *sg_assemble(gctx *g, const char *root_body, const unsigned char *prod);

#endif
