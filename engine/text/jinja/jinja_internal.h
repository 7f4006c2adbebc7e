/*
 * jinja_internal.h - shared internals of the Jinja interpreter (not a public
 * contract; see jinja.h for that).
 *
 *   jinja.c          arena, string builders, compile/render/free entry points
 *   jinja_lex.c      lexer (jinja2's whitespace rules, string escapes)
 *   jinja_parse.c    parser -> AST (below)
 *   jinja_eval.c     statements and expressions, scopes, macros, loops
 *   jinja_value.c    the value model: Python str()/repr(), equality, ordering,
 *                    hashing, JSON in/out, UTF-8 helpers
 *   jinja_str.c      Python str operations on UTF-8, % and str.format
 *   jinja_methods.c  str/dict/list/loop methods
 *   jinja_printable.c Python's str.isprintable() (generated)
 *   jinja_builtins.c filters, tests, globals
 *
 * Memory: a compiled template owns one arena holding its AST and constants.
 * A render owns another arena for every value it creates; nothing is freed
 * until the render ends, and the arena's size is the render's memory limit.
 * Errors inside a render longjmp back to glm_jinja_render, which frees the
 * arena and the output buffer; no other resource is held across calls.
 */
#ifndef GLM_JINJA_INTERNAL_H
#define GLM_JINJA_INTERNAL_H

#include <jansson.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"
#include "text/jinja/jinja.h"

/* ---- arena ------------------------------------------------------------- */

typedef struct jchunk jchunk;
typedef struct jarena {
    jchunk *head;
    size_t total; /* bytes reserved from malloc */
    size_t limit; /* 0 = unlimited */
} jarena;

/* 16-byte aligned, zeroed memory; NULL when the limit would be passed. */
void *jarena_alloc(jarena *a, size_t n);
void jarena_free(jarena *a);

/* ---- values ------------------------------------------------------------ */

typedef enum {
    JV_UNDEF, /* jinja2 Undefined; u.s = name, sub = JU_*, aux = owner type */
    JV_NONE,
    JV_BOOL, /* u.i = 0/1 */
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* sub = JL_* (list, tuple, dict views) */
    JV_DICT,
    JV_NS, /* namespace(): u.d, mutable */
    JV_MACRO,
    JV_FUNC, /* builtin global or bound method */
    JV_RANGE,
    JV_LOOP,
    JV_CYCLER,
    JV_JOINER,
} jtype;

enum { JL_LIST, JL_TUPLE, JL_ITEMS, JL_KEYS, JL_VALUES };
enum { JU_VAR, JU_ATTR, JU_ITEM, JU_MSG };

typedef struct jstr {
    size_t len;
    const char *p; /* UTF-8, not NUL-terminated in general */
    int ascii;     /* -1 unknown, 0 no, 1 yes */
} jstr;

struct jlist;
struct jdict;
struct jmacro;
struct jfunc;
struct jrange;
struct jloop;
struct jcycler;

typedef struct jv {
    uint8_t t;   /* jtype */
    uint8_t sub; /* JL_* for lists, JU_* for undefined */
    uint16_t pad;
    uint32_t aux; /* undefined: jtype of the object that lacked the attribute */
    union {
        int64_t i;
        double f;
        jstr *s;
        struct jlist *l;
        struct jdict *d;
        struct jmacro *m;
        struct jfunc *fn;
        struct jrange *r;
        struct jloop *lp;
        struct jcycler *cy;
    } u;
} jv;

typedef struct jlist {
    size_t n, cap;
    jv *v;
} jlist;

typedef struct jdict {
    size_t n, cap;
    jv *k, *v;
    uint32_t *index; /* open-addressing slots (entry + 1, 0 = empty) once n > 8 */
    size_t icap;
} jdict;

typedef struct jrange {
    int64_t start, stop, step;
} jrange;
int64_t jrange_len(const jrange *r);
/* The i-th item of a range (wrapping arithmetic: items lie between start and stop). */
static inline int64_t jrange_at(const jrange *r, int64_t i)
{
    return (int64_t)((uint64_t)r->start + (uint64_t)i * (uint64_t)r->step);
}

/* ---- AST ------------------------------------------------------------- */

typedef enum {
    /* expressions */
    N_CONST,    /* val */
    N_NAME,     /* sym */
    N_GETATTR,  /* a . val(str) */
    N_GETITEM,  /* a [ b ] */
    N_SLICE,    /* a : b : c (each may be NULL) */
    N_CALL,     /* a ( args, kw ) */
    N_FILTER,   /* a | op ( args, kw ); a NULL in filter blocks */
    N_TEST,     /* a is op ( args, kw ) */
    N_LIST,     /* [ args ] */
    N_TUPLE,    /* ( args ) */
    N_DICT,     /* { args[i] : kwvals[i] } */
    N_BINOP,    /* a op b */
    N_NEG,      /* - a */
    N_POS,      /* + a */
    N_NOT,      /* not a */
    N_AND,      /* a and b */
    N_OR,       /* a or b */
    N_COMPARE,  /* a ops[i] args[i] ... */
    N_CONCAT,   /* args joined by ~ */
    N_CONDEXPR, /* b if a else c (c may be NULL) */
    N_NSREF,    /* sym . val(str), only as an assignment target */
    /* statements */
    N_DATA,       /* val: literal text */
    N_OUTPUT,     /* args: data and expressions */
    N_FOR,        /* for a in b [if c]: body, else orelse */
    N_IF,         /* if a: body else orelse */
    N_SET,        /* a = b */
    N_SETBLOCK,   /* a = captured body, filtered by chain b (may be NULL) */
    N_MACRO,      /* sym(params = defaults) body */
    N_CALLBLOCK,  /* a = the call; params/defaults/body form `caller` */
    N_FILTERBLOCK, /* body filtered by chain b */
    N_WITH,       /* targets args = kwvals, body */
    N_BREAK,
    N_CONTINUE,
    N_SCOPE, /* body (generation blocks) */
} ntype;

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

typedef struct jnode jnode;
typedef struct {
    int n;
    jnode **v;
} jnodes;

struct jnode {
    ntype type;
    int op;   /* operator, filter id or test id */
    int line;
    int sym;  /* symbol id (names, macro name) */
    jnode *a, *b, *c;
    jnodes args;   /* positional arguments, items, targets */
    jnodes kwvals; /* keyword values, dict values, defaults, with-values */
    int *kwsyms;   /* keyword names as symbol ids (n = kwvals.n), macro params */
    int nparams;   /* macros and call blocks: number of params (kwsyms) */
    int *ops;      /* N_COMPARE: op of each args[i] */
    jnodes body, orelse;
    jnode *dynargs, *dynkw; /* *args / **kwargs of a call */
    jv val;
    uint8_t catch_varargs, catch_kwargs, uses_caller;
    /* Frames (for bodies, macro/caller bodies, with/set/filter/generation
     * blocks) start with these symbols bound to Undefined: names the frame
     * assigns before any use while no enclosing frame refers to them, which
     * jinja2 compiles to an undefined local (visible to nested frames). */
    int *undef, nundef;
    int *undef_else, nundef_else; /* N_FOR: the same for the else block */
};

/* ---- tokens (jinja_lex.c) ------------------------------------------------- */

typedef enum {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
} ttype;

enum {
    TK_ADD, TK_SUB, TK_DIV, TK_FLOORDIV, TK_MUL, TK_MOD, TK_POW, TK_TILDE, TK_LBRACKET,
    TK_RBRACKET, TK_LPAREN, TK_RPAREN, TK_LBRACE, TK_RBRACE, TK_EQ, TK_NE, TK_GT, TK_GTEQ,
    TK_LT, TK_LTEQ, TK_ASSIGN, TK_DOT, TK_COLON, TK_PIPE, TK_COMMA, TK_SEMICOLON,
};

typedef struct jtok {
    ttype t;
    int op;        /* TK_* of T_OP */
    int line;
    const char *p; /* T_NAME, T_DATA, T_STRING (decoded) text, in the arena */
    size_t n;
    int64_t i;     /* T_INT */
    double f;      /* T_FLOAT */
} jtok;

/* Tokenizes a template (after newline normalization) into a malloc'd array
 * ending with T_EOF, whose text lives in `arena`. GLM_OK / GLM_ERR with
 * "NAME:LINE: message" in err. */
int jinja_lex(jarena *arena, const char *name, const char *src, size_t len, jtok **toks,
              size_t *ntoks, char *err, size_t errlen);
const char *jinja_op_text(int op);

/* ---- compiled template -------------------------------------------------- */

struct glm_jinja {
    jarena arena;
    jnodes body;
    char name[64];
    int nsyms;
    jstr *syms;      /* symbol names (NUL-terminated) */
    int *sym_global; /* per symbol: jb_global_id of its name, or -1 */
    int *root_undef, nroot_undef; /* see jnode.undef; these ignore the context */
    /* ids of names the evaluator treats specially */
    int sym_loop, sym_varargs, sym_kwargs, sym_caller;
};

/* Parses `src` into t (fills body and the symbol table). GLM_OK / GLM_ERR. */
int jinja_parse(glm_jinja *t, const char *src, size_t len, char *err, size_t errlen);

/* ---- render state --------------------------------------------------------- */

typedef struct jsb { /* string builder */
    char *p;
    size_t len, cap;
    bool heap; /* malloc-backed (final output) instead of arena-backed */
} jsb;

typedef struct jscope jscope;

typedef struct jx {
    const glm_jinja *t;
    jarena arena;
    jmp_buf jmp;
    char *err;
    size_t errlen;
    uint64_t steps, max_steps;
    size_t max_output;
    int depth, max_depth;
    int line;
    jsb *out;    /* current sink (macro bodies and set blocks capture) */
    jsb result;  /* the final output */
    jscope *root;
    double now;  /* wall-clock time of the render, for strftime_now */
    uintptr_t stack_base; /* address of a local at the start of the render */
} jx;

/* Stops the render with one error line ("NAME:LINE: message"). */
_Noreturn void jx_fail(jx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Arena allocation that fails the render past the memory limit. */
void *jx_alloc(jx *x, size_t n);
/* Charges `n` steps; fails past the budget. */
void jx_charge(jx *x, uint64_t n);

/* string builder */
void jsb_init(jsb *b);
void jsb_put(jx *x, jsb *b, const char *p, size_t n);
void jsb_putc(jx *x, jsb *b, char c);
void jsb_puts(jx *x, jsb *b, const char *s);
void jsb_printf(jx *x, jsb *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
jv jsb_value(jx *x, jsb *b); /* the builder's text as a string value */

/* memcpy that accepts NULL pointers for empty copies (empty lists have none) */
static inline void jcopy(void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

/* ---- jinja_value.c -------------------------------------------------------- */

static inline jv jv_undef(void) { jv v = {0}; v.t = JV_UNDEF; return v; }
static inline jv jv_none(void) { jv v = {0}; v.t = JV_NONE; return v; }
static inline jv jv_bool(bool b) { jv v = {0}; v.t = JV_BOOL; v.u.i = b; return v; }
static inline jv jv_int(int64_t i) { jv v = {0}; v.t = JV_INT; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {0}; v.t = JV_FLOAT; v.u.f = f; return v; }
static inline bool jv_is_num(jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

jv jv_str(jx *x, const char *p, size_t n);  /* copies */
jv jv_str_ref(jx *x, const char *p, size_t n); /* no copy: p must outlive the render */
jv jv_undef_named(jx *x, int kind, jtype owner, const char *name, size_t n);
jv jv_list_new(jx *x, size_t cap, int kind);
void jv_list_push(jx *x, jv list, jv item);
jv jv_dict_new(jx *x, size_t cap);
jv *jv_dict_get(jx *x, jv dict, jv key);               /* NULL if absent */
jv *jv_dict_get_str(jv dict, const char *p, size_t n); /* NULL if absent */
void jv_dict_set(jx *x, jv dict, jv key, jv val);

const char *jv_type_name(jv v); /* Python type name for messages */
bool jv_truthy(jv v);
bool jv_eq(jx *x, jv a, jv b);
/* Python a < b (CMP_LT/LE/GT/GE); fails with TypeError text for unorderable types. */
bool jv_order(jx *x, jv a, jv b, int op);
int jv_cmp(jx *x, jv a, jv b); /* -1/0/1 for sorting; fails if unorderable */
uint64_t jv_hash(jx *x, jv v);   /* fails for unhashable values */
double jv_as_float(jv v);        /* numbers only */
int64_t jv_len(jx *x, jv v);     /* Python len(); fails for types without one */

void jv_to_str(jx *x, jsb *b, jv v);  /* Python str(v); undefined -> "" */
void jv_to_repr(jx *x, jsb *b, jv v); /* Python repr(v) */
jv jv_as_string(jx *x, jv v);          /* str(v) as a value (strings pass through) */
void py_float_repr(double f, char out[32]);

/* JSON in/out */
jv jv_from_json(jx *x, const json_t *j);
typedef struct {
    bool ensure_ascii;
    bool sort_keys;
    const char *indent; /* NULL = compact single line */
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
} jjson_opts;
void jv_to_json(jx *x, jsb *b, jv v, const jjson_opts *o, int level);

/* Materialises any iterable as an array (lists directly, dict keys, string
 * characters, ranges); undefined iterates as empty. Fails for non-iterables. */
void jv_iterate(jx *x, jv v, const jv **items, size_t *n);

/* UTF-8 and Python str helpers */
bool py_isspace(uint32_t cp);
size_t jstr_nchars(jstr *s);
size_t jstr_byte_offset(jstr *s, size_t char_index); /* clamps to len */
uint32_t py_toupper(uint32_t cp);
uint32_t py_tolower(uint32_t cp);
bool py_iscased_upper(uint32_t cp);
bool py_iscased_lower(uint32_t cp);
/* Python's str.isprintable() for one code point: what repr() keeps as it is
 * (Python 3.11, Unicode 14.0.0; jinja_printable.c). */
bool py_isprintable(uint32_t cp);
jv jv_str_slice_chars(jx *x, jv s, size_t from, size_t to); /* [from, to) in code points */

/* ---- jinja_eval.c --------------------------------------------------------- */

/* Python-style argument list of a call. */
typedef struct jargs {
    int n;
    jv *v;
    int nkw;
    const jstr **kwn;
    jv *kwv;
} jargs;

/* Binds args to the named parameters (nreq of them required) like Python does;
 * unfilled optional slots are left JV_UNDEF with sub = JU_MSG and u.s = NULL.
 * Fails for too many / unknown / duplicate arguments. */
void jargs_bind(jx *x, const jargs *a, const char *fname, const char *const *names, int nnames,
                int nreq, jv *out);
static inline bool jarg_given(jv v) { return !(v.t == JV_UNDEF && v.sub == JU_MSG && !v.u.s); }

jv jx_getattr(jx *x, jv obj, const jstr *name); /* obj.name */
jv jx_getitem(jx *x, jv obj, jv key);           /* obj[key] */
jv jx_call(jx *x, jv callee, const jargs *a);   /* callee(args) */
/* Looks up an attribute path "a.b.0" like jinja2's make_attrgetter. */
jv jx_attr_path(jx *x, jv obj, jv path);

/* ---- jinja_str.c ---------------------------------------------------------- */

extern const jstr JS_SPACE; /* " " */
enum { JS_UPPER, JS_LOWER, JS_CAPITALIZE, JS_TITLE, JS_SWAPCASE };

jv jb_undef_msg(jx *x, const char *msg);              /* Undefined that fails with msg */
void jb_need_defined(jx *x, jv v);                    /* fails for Undefined */
bool jb_str_eq(const jstr *s, const char *lit);
int64_t jb_want_int(jx *x, jv v, const char *what);   /* int or bool, else fails */
jstr *jb_want_str(jx *x, jv v, const char *what);     /* str, else fails */
void jb_no_args(jx *x, const jargs *a, const char *name);
const char *js_find_bytes(const char *h, size_t hn, const jstr *needle);
size_t js_cp_index(const jstr *s, const char *at);    /* code point index of a byte position */
/* Python str.strip/lstrip/rstrip; chars NULL = whitespace. */
jv js_strip(jx *x, jv s, const jstr *chars, bool left, bool right);
jv js_case(jx *x, jv s, int mode);                    /* JS_* */
jv js_title_words(jx *x, jv s);                       /* jinja2's title filter */
jv js_replace(jx *x, jv s, const jstr *old, const jstr *new_, int64_t count);
jv js_split(jx *x, jv s, jv sep, int64_t maxsplit, bool from_right); /* sep None: whitespace */
jv js_splitlines(jx *x, jv s, bool keepends);
jv js_pad(jx *x, jv s, int64_t width, const jstr *fill, int mode); /* 0 center 1 ljust 2 rjust */
bool js_cased_all(jx *x, jv v, int kind);             /* str(v).islower() (0) / isupper() (1) */
bool js_parse_int(const jstr *s, int base, int64_t *out); /* Python int(s, base) in 64 bits */
bool js_parse_float(const jstr *s, double *out);      /* Python float(s) */
jv jb_percent_format(jx *x, jv fmt, jv args);         /* fmt % args */
jv js_format(jx *x, jv fmt, const jargs *a);          /* fmt.format(*args, **kwargs) */

/* ---- jinja_value.c (continued) ------------------------------------------- */

jv jv_list_of(jx *x, jv v);   /* list(v) */
jv jv_items_of(jx *x, jv d);  /* list(d.items()) as tuples */

/* ---- jinja_builtins.c ----------------------------------------------------- */

int jb_filter_id(const char *name, size_t n); /* -1 if unknown */
int jb_test_id(const char *name, size_t n);   /* -1 if unknown */
jv jb_filter(jx *x, int id, jv v, const jargs *a);
bool jb_test(jx *x, int id, jv v, const jargs *a);
/* jinja_methods.c: the method `name` of a str/dict/list/loop/cycler receiver:
 * its id, -1 if there is none, -2 if the sandbox forbids it (mutating). */
int jb_method_id(jv self, const char *name, size_t n);
jv jb_method(jx *x, jv self, int id, const jargs *a);
/* Global functions (range, namespace, dict, raise_exception, ...), or -1. */
int jb_global_id(const char *name, size_t n);
jv jb_global(jx *x, int id, const jargs *a);

typedef struct jfunc {
    int kind; /* JF_GLOBAL, JF_METHOD */
    int id;
    jv self;
} jfunc;
enum { JF_GLOBAL, JF_METHOD };

typedef struct jloop {
    int64_t index0, length;
    const jv *items; /* NULL when iterating a range */
    jrange range;
    jv last_changed; /* loop.changed() state; JV_UNDEF before the first call */
    bool changed_set;
} jloop;

typedef struct jmacro {
    const jnode *node; /* N_MACRO or N_CALLBLOCK (a call block's `caller`) */
    jscope *closure;   /* the scope it was defined in */
    const char *name;
} jmacro;

typedef struct jcycler {
    jlist *items;
    size_t pos;
    jstr *sep; /* joiner */
    bool used;
} jcycler;

jv jloop_item(jloop *lp, int64_t i);

/* jinja_eval.c: renders the parsed template in x with the variables of ctx. */
void jinja_eval_template(jx *x, const json_t *ctx);

#endif
