/*
 * jinja_parse.c - the parser of the Jinja interpreter: a recursive descent
 * over jinja2's grammar (tokens from jinja_lex.c) building the AST of
 * jinja_internal.h. Precedence, loosest first, as in jinja2:
 *   a if c else b < or < and < not < comparisons (== != < <= > >= in, not in,
 *   chained) < + - < ~ < * / // % < ** < unary - + < postfix (.x [i] [a:b:c]
 *   (args)) with filters (| f) and tests (is t); tuples without parentheses
 *   where jinja2 allows them ({{ }}, set values, for targets and iterables).
 * Unknown filters and tests are compile errors; so are the tags a standalone
 * chat template cannot use (extends, block, include, import, ...).
 * Expression nesting, operator chains and block nesting are limited to
 * MAX_NEST levels so neither this parser nor the evaluator can overflow the C
 * stack. Errors longjmp to jinja_parse with one message naming the line.
 */
#include "text/jinja/jinja_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "core/util.h"

#define MAX_NEST 200 /* nested expressions / blocks */

typedef struct {
    glm_jinja *t;
    jtok *toks; /* ends with T_EOF */
    size_t ntoks, pos;
    jmp_buf jmp;
    char *err;
    size_t errlen;
    int depth;
    int loop_depth; /* for break/continue */
    /* symbol interning */
    glm_strmap syms; /* name -> index in t->syms */
    int symcap;
    /* open tags, for messages */
    struct {
        const char *name;
        int line;
    } tags[MAX_NEST + 8];
    int ntags;
    /* end tokens currently looked for, for messages */
    const char *const *ends[MAX_NEST + 8];
    int nends;
} jp;

_Noreturn __attribute__((format(printf, 3, 4))) static void pfail(jp *p, int line, const char *fmt,
                                                                  ...)
{
    char msg[GLM_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    glm_err(p->err, p->errlen, "%s:%d: %s", p->t->name, line, msg);
    longjmp(p->jmp, 1);
}

static void *palloc(jp *p, size_t n)
{
    void *m = jarena_alloc(&p->t->arena, n);
    GLM_ASSERT(m); /* the template arena has no limit */
    return m;
}

/* ---- symbols ------------------------------------------------------------ */

/* Strings of the compiled template are shared by concurrent renders, so their
 * ASCII flag is computed here instead of lazily. */
static int ascii_flag(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

static const char *sym_key(const void *ctx, uint32_t k, size_t *n)
{
    const jstr *e = &((const glm_jinja *)ctx)->syms[k];
    *n = e->len;
    return e->p;
}

static int intern(jp *p, const char *s, size_t n)
{
    glm_jinja *t = p->t;
    int64_t known = glm_strmap_get(&p->syms, s, n, sym_key, t);
    if (known >= 0)
        return (int)known;
    if (t->nsyms == p->symcap) {
        p->symcap = p->symcap ? p->symcap * 2 : 32;
        t->syms = glm_realloc(t->syms, (size_t)p->symcap * sizeof *t->syms);
    }
    char *copy = palloc(p, n + 1);
    memcpy(copy, s, n);
    t->syms[t->nsyms] = (jstr){.len = n, .p = copy, .ascii = ascii_flag(s, n)};
    glm_strmap_put(&p->syms, copy, n, (uint32_t)t->nsyms, sym_key, t);
    return t->nsyms++;
}

/* ---- parser helpers ------------------------------------------------------ */

static jtok *cur(jp *p)
{
    return &p->toks[p->pos];
}

static jtok *look(jp *p)
{
    return &p->toks[p->pos + 1 < p->ntoks ? p->pos + 1 : p->pos];
}

static void next(jp *p)
{
    if (p->pos + 1 < p->ntoks)
        p->pos++;
}

static bool is_op(jtok *k, int op)
{
    return k->t == T_OP && k->op == op;
}

static bool is_name(jtok *k, const char *name)
{
    return k->t == T_NAME && k->n == strlen(name) && memcmp(k->p, name, k->n) == 0;
}

static const char *describe(jtok *k, char *buf, size_t n)
{
    switch (k->t) {
    case T_EOF: return "end of template";
    case T_DATA: return "template data";
    case T_VAR_BEGIN: return "begin of print statement";
    case T_VAR_END: return "end of print statement";
    case T_BLOCK_BEGIN: return "begin of statement block";
    case T_BLOCK_END: return "end of statement block";
    case T_NAME: snprintf(buf, n, "'%.*s'", (int)GLM_MIN(k->n, 40), k->p); return buf;
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    case T_OP: snprintf(buf, n, "'%s'", jinja_op_text(k->op)); return buf;
    }
    return "?";
}

_Noreturn static void unexpected(jp *p, const char *what)
{
    char b[64];
    pfail(p, cur(p)->line, "expected %s, got %s", what, describe(cur(p), b, sizeof b));
}

static void expect_op(jp *p, int op)
{
    if (!is_op(cur(p), op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", jinja_op_text(op));
        unexpected(p, w);
    }
    next(p);
}

static void expect_t(jp *p, ttype t, const char *what)
{
    if (cur(p)->t != t)
        unexpected(p, what);
    next(p);
}

static jnode *mk(jp *p, ntype type, int line)
{
    jnode *n = palloc(p, sizeof *n);
    n->type = type;
    n->line = line;
    n->sym = -1;
    return n;
}

/* growable node vector in the template arena (an error leaves nothing to free) */
typedef struct {
    jnode **v;
    int n, cap;
} nvec;

static void nv_push(jp *p, nvec *v, jnode *x)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        jnode **nv = palloc(p, (size_t)cap * sizeof *nv);
        if (v->n)
            memcpy(nv, v->v, (size_t)v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static jnodes nv_done(nvec *v)
{
    jnodes r = {v->n, v->v};
    v->v = NULL;
    v->n = v->cap = 0;
    return r;
}

/* growable int array in the template arena */
static int *ints_push(jp *p, int *a, int n, int x)
{
    if (n % 8 == 0) {
        int *na = palloc(p, (size_t)(n + 8) * sizeof *na);
        if (n)
            memcpy(na, a, (size_t)n * sizeof *na);
        a = na;
    }
    a[n] = x;
    return a;
}

static void enter(jp *p)
{
    if (++p->depth > MAX_NEST)
        pfail(p, cur(p)->line, "template nested too deeply (more than %d levels)", MAX_NEST);
}

static void leave(jp *p)
{
    p->depth--;
}

static jv const_str(jp *p, const char *s, size_t n)
{
    jstr *js = palloc(p, sizeof *js);
    char *c = palloc(p, n + 1);
    memcpy(c, s, n);
    js->p = c;
    js->len = n;
    js->ascii = ascii_flag(c, n);
    jv v = {0};
    v.t = JV_STR;
    v.u.s = js;
    return v;
}

/* ---- expressions ------------------------------------------------------------- */

static jnode *parse_expression(jp *p, bool with_condexpr);
static jnode *parse_tuple(jp *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens, bool with_namespace);
static jnode *parse_primary(jp *p, bool with_namespace);
static jnode *parse_postfix(jp *p, jnode *node);
static jnode *parse_unary(jp *p, bool with_filter);
static jnode *parse_or(jp *p);

static jnode *parse_condexpr(jp *p)
{
    int line = cur(p)->line;
    jnode *e1 = parse_or(p);
    int chain = 0;
    while (is_name(cur(p), "if")) {
        enter(p);
        chain++;
        next(p);
        jnode *n = mk(p, N_CONDEXPR, line);
        n->a = parse_or(p);
        n->b = e1;
        if (is_name(cur(p), "else")) {
            next(p);
            enter(p);
            n->c = parse_condexpr(p);
            leave(p);
        }
        e1 = n;
        line = cur(p)->line;
    }
    p->depth -= chain;
    return e1;
}

static jnode *parse_not(jp *p);
static jnode *parse_and(jp *p)
{
    jnode *left = parse_not(p);
    int chain = 0;
    while (is_name(cur(p), "and")) {
        int line = cur(p)->line;
        enter(p);
        chain++;
        next(p);
        jnode *n = mk(p, N_AND, line);
        n->a = left;
        n->b = parse_not(p);
        left = n;
    }
    p->depth -= chain;
    return left;
}

static jnode *parse_or(jp *p)
{
    jnode *left = parse_and(p);
    int chain = 0;
    while (is_name(cur(p), "or")) {
        int line = cur(p)->line;
        enter(p);
        chain++;
        next(p);
        jnode *n = mk(p, N_OR, line);
        n->a = left;
        n->b = parse_and(p);
        left = n;
    }
    p->depth -= chain;
    return left;
}

static jnode *parse_compare(jp *p);
static jnode *parse_not(jp *p)
{
    if (is_name(cur(p), "not")) {
        jnode *n = mk(p, N_NOT, cur(p)->line);
        next(p);
        enter(p);
        n->a = parse_not(p);
        leave(p);
        return n;
    }
    return parse_compare(p);
}

static jnode *parse_math1(jp *p);
static jnode *parse_compare(jp *p)
{
    int line = cur(p)->line;
    jnode *expr = parse_math1(p);
    nvec ops = {0};
    int *opc = NULL, nop = 0;
    for (;;) {
        jtok *k = cur(p);
        int op = -1;
        if (k->t == T_OP) {
            switch (k->op) {
            case TK_EQ: op = CMP_EQ; break;
            case TK_NE: op = CMP_NE; break;
            case TK_LT: op = CMP_LT; break;
            case TK_LTEQ: op = CMP_LE; break;
            case TK_GT: op = CMP_GT; break;
            case TK_GTEQ: op = CMP_GE; break;
            default: break;
            }
            if (op >= 0)
                next(p);
        } else if (is_name(k, "in")) {
            op = CMP_IN;
            next(p);
        } else if (is_name(k, "not") && is_name(look(p), "in")) {
            op = CMP_NOTIN;
            next(p);
            next(p);
        }
        if (op < 0)
            break;
        opc = ints_push(p, opc, nop++, op);
        nv_push(p, &ops, parse_math1(p));
    }
    if (!nop)
        return expr;
    jnode *n = mk(p, N_COMPARE, line);
    n->a = expr;
    n->args = nv_done(&ops);
    n->ops = opc;
    return n;
}

static jnode *binop(jp *p, int op, jnode *a, jnode *b, int line)
{
    jnode *n = mk(p, N_BINOP, line);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_concat(jp *p);
static jnode *parse_math1(jp *p)
{
    jnode *left = parse_concat(p);
    int chain = 0;
    while (is_op(cur(p), TK_ADD) || is_op(cur(p), TK_SUB)) {
        int op = cur(p)->op == TK_ADD ? OP_ADD : OP_SUB, line = cur(p)->line;
        enter(p);
        chain++;
        next(p);
        left = binop(p, op, left, parse_concat(p), line);
    }
    p->depth -= chain;
    return left;
}

static jnode *parse_math2(jp *p);
static jnode *parse_concat(jp *p)
{
    int line = cur(p)->line;
    jnode *first = parse_math2(p);
    if (!is_op(cur(p), TK_TILDE))
        return first;
    nvec args = {0};
    nv_push(p, &args, first);
    while (is_op(cur(p), TK_TILDE)) {
        next(p);
        nv_push(p, &args, parse_math2(p));
    }
    jnode *n = mk(p, N_CONCAT, line);
    n->args = nv_done(&args);
    return n;
}

static jnode *parse_pow(jp *p);
static jnode *parse_math2(jp *p)
{
    jnode *left = parse_pow(p);
    int chain = 0;
    for (;;) {
        jtok *k = cur(p);
        int op = is_op(k, TK_MUL) ? OP_MUL : is_op(k, TK_DIV) ? OP_DIV
                 : is_op(k, TK_FLOORDIV) ? OP_FLOORDIV : is_op(k, TK_MOD) ? OP_MOD : -1;
        if (op < 0)
            break;
        int line = k->line;
        enter(p);
        chain++;
        next(p);
        left = binop(p, op, left, parse_pow(p), line);
    }
    p->depth -= chain;
    return left;
}

static jnode *parse_pow(jp *p)
{
    jnode *left = parse_unary(p, true);
    int chain = 0;
    while (is_op(cur(p), TK_POW)) {
        int line = cur(p)->line;
        enter(p);
        chain++;
        next(p);
        left = binop(p, OP_POW, left, parse_unary(p, true), line);
    }
    p->depth -= chain;
    return left;
}

static jnode *parse_filter_expr(jp *p, jnode *node);
static jnode *parse_unary(jp *p, bool with_filter)
{
    enter(p);
    jtok *k = cur(p);
    jnode *node;
    if (is_op(k, TK_SUB) || is_op(k, TK_ADD)) {
        node = mk(p, k->op == TK_SUB ? N_NEG : N_POS, k->line);
        next(p);
        node->a = parse_unary(p, false);
    } else {
        node = parse_primary(p, false);
    }
    node = parse_postfix(p, node);
    if (with_filter)
        node = parse_filter_expr(p, node);
    leave(p);
    return node;
}

static jnode *parse_list(jp *p)
{
    jnode *n = mk(p, N_LIST, cur(p)->line);
    expect_op(p, TK_LBRACKET);
    nvec items = {0};
    while (!is_op(cur(p), TK_RBRACKET)) {
        if (items.n)
            expect_op(p, TK_COMMA);
        if (is_op(cur(p), TK_RBRACKET))
            break;
        nv_push(p, &items, parse_expression(p, true));
    }
    n->args = nv_done(&items);
    expect_op(p, TK_RBRACKET);
    return n;
}

static jnode *parse_dict(jp *p)
{
    jnode *n = mk(p, N_DICT, cur(p)->line);
    expect_op(p, TK_LBRACE);
    nvec keys = {0}, vals = {0};
    while (!is_op(cur(p), TK_RBRACE)) {
        if (keys.n)
            expect_op(p, TK_COMMA);
        if (is_op(cur(p), TK_RBRACE))
            break;
        nv_push(p, &keys, parse_expression(p, true));
        expect_op(p, TK_COLON);
        nv_push(p, &vals, parse_expression(p, true));
    }
    n->args = nv_done(&keys);
    n->kwvals = nv_done(&vals);
    expect_op(p, TK_RBRACE);
    return n;
}

static jnode *parse_primary(jp *p, bool with_namespace)
{
    enter(p);
    jtok *k = cur(p);
    jnode *node;
    if (k->t == T_NAME) {
        next(p);
        if (is_name(k, "true") || is_name(k, "True") || is_name(k, "false") || is_name(k, "False")) {
            node = mk(p, N_CONST, k->line);
            node->val = jv_bool(k->p[0] == 't' || k->p[0] == 'T');
        } else if (is_name(k, "none") || is_name(k, "None")) {
            node = mk(p, N_CONST, k->line);
            node->val = jv_none();
        } else if (with_namespace && is_op(cur(p), TK_DOT)) {
            next(p);
            jtok *attr = cur(p);
            expect_t(p, T_NAME, "name");
            node = mk(p, N_NSREF, k->line);
            node->sym = intern(p, k->p, k->n);
            node->val = const_str(p, attr->p, attr->n);
        } else {
            node = mk(p, N_NAME, k->line);
            node->sym = intern(p, k->p, k->n);
        }
    } else if (k->t == T_STRING) {
        int line = k->line;
        size_t total = 0;
        size_t i = p->pos;
        while (p->toks[i].t == T_STRING)
            total += p->toks[i++].n;
        char *buf = palloc(p, total + 1);
        size_t off = 0;
        while (cur(p)->t == T_STRING) {
            memcpy(buf + off, cur(p)->p, cur(p)->n);
            off += cur(p)->n;
            next(p);
        }
        node = mk(p, N_CONST, line);
        jstr *js = palloc(p, sizeof *js);
        js->p = buf;
        js->len = total;
        js->ascii = ascii_flag(buf, total);
        node->val.t = JV_STR;
        node->val.u.s = js;
    } else if (k->t == T_INT || k->t == T_FLOAT) {
        node = mk(p, N_CONST, k->line);
        node->val = k->t == T_INT ? jv_int(k->i) : jv_float(k->f);
        next(p);
    } else if (is_op(k, TK_LPAREN)) {
        next(p);
        node = parse_tuple(p, false, true, NULL, true, false);
        expect_op(p, TK_RPAREN);
    } else if (is_op(k, TK_LBRACKET)) {
        node = parse_list(p);
    } else if (is_op(k, TK_LBRACE)) {
        node = parse_dict(p);
    } else {
        char b[64];
        pfail(p, k->line, "unexpected %s", describe(k, b, sizeof b));
    }
    leave(p);
    return node;
}

static bool tuple_end(jp *p, const char *extra_end)
{
    jtok *k = cur(p);
    if (k->t == T_VAR_END || k->t == T_BLOCK_END || is_op(k, TK_RPAREN))
        return true;
    return extra_end && is_name(k, extra_end);
}

static jnode *parse_tuple(jp *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens, bool with_namespace)
{
    int line = cur(p)->line;
    nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n)
            expect_op(p, TK_COMMA);
        if (tuple_end(p, extra_end))
            break;
        nv_push(p, &args, simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr));
        if (is_op(cur(p), TK_COMMA))
            is_tuple = true;
        else
            break;
        line = cur(p)->line;
    }
    if (!is_tuple) {
        if (args.n)
            return args.v[0];
        if (!explicit_parens)
            unexpected(p, "an expression");
    }
    jnode *n = mk(p, N_TUPLE, line);
    n->args = nv_done(&args);
    return n;
}

static jnode *parse_expression(jp *p, bool with_condexpr)
{
    enter(p);
    jnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

/* Call arguments: positional, name=value, *args, **kwargs. */
static void parse_call_args(jp *p, jnode *n)
{
    int line = cur(p)->line;
    expect_op(p, TK_LPAREN);
    nvec args = {0}, kwv = {0};
    int *kws = NULL;
    bool require_comma = false;
    while (!is_op(cur(p), TK_RPAREN)) {
        if (require_comma) {
            expect_op(p, TK_COMMA);
            if (is_op(cur(p), TK_RPAREN))
                break;
        }
        if (is_op(cur(p), TK_MUL)) {
            if (n->dynargs || n->dynkw)
                pfail(p, line, "invalid syntax for function call expression");
            next(p);
            n->dynargs = parse_expression(p, true);
        } else if (is_op(cur(p), TK_POW)) {
            if (n->dynkw)
                pfail(p, line, "invalid syntax for function call expression");
            next(p);
            n->dynkw = parse_expression(p, true);
        } else if (cur(p)->t == T_NAME && is_op(look(p), TK_ASSIGN)) {
            if (n->dynkw)
                pfail(p, line, "invalid syntax for function call expression");
            jtok *k = cur(p);
            next(p);
            next(p);
            kws = ints_push(p, kws, kwv.n, intern(p, k->p, k->n));
            nv_push(p, &kwv, parse_expression(p, true));
        } else {
            if (n->dynargs || n->dynkw || kwv.n)
                pfail(p, line, "invalid syntax for function call expression");
            nv_push(p, &args, parse_expression(p, true));
        }
        require_comma = true;
    }
    expect_op(p, TK_RPAREN);
    n->args = nv_done(&args);
    n->kwvals = nv_done(&kwv);
    n->kwsyms = kws;
}

static jnode *parse_subscribed(jp *p)
{
    int line = cur(p)->line;
    jnode *parts[3] = {NULL, NULL, NULL};
    if (is_op(cur(p), TK_COLON)) {
        next(p);
    } else {
        jnode *e = parse_expression(p, true);
        if (!is_op(cur(p), TK_COLON))
            return e;
        next(p);
        parts[0] = e;
    }
    if (!is_op(cur(p), TK_COLON) && !is_op(cur(p), TK_RBRACKET) && !is_op(cur(p), TK_COMMA))
        parts[1] = parse_expression(p, true);
    if (is_op(cur(p), TK_COLON)) {
        next(p);
        if (!is_op(cur(p), TK_RBRACKET) && !is_op(cur(p), TK_COMMA))
            parts[2] = parse_expression(p, true);
    }
    jnode *n = mk(p, N_SLICE, line);
    n->a = parts[0];
    n->b = parts[1];
    n->c = parts[2];
    return n;
}

static jnode *parse_subscript(jp *p, jnode *node)
{
    jtok *k = cur(p);
    int line = k->line;
    next(p);
    if (k->t == T_OP && k->op == TK_DOT) {
        jtok *a = cur(p);
        if (a->t == T_NAME) {
            next(p);
            jnode *n = mk(p, N_GETATTR, line);
            n->a = node;
            n->val = const_str(p, a->p, a->n);
            return n;
        }
        if (a->t != T_INT)
            pfail(p, a->line, "expected name or number after '.'");
        next(p);
        jnode *c = mk(p, N_CONST, a->line);
        c->val = jv_int(a->i);
        jnode *n = mk(p, N_GETITEM, line);
        n->a = node;
        n->b = c;
        return n;
    }
    nvec args = {0};
    while (!is_op(cur(p), TK_RBRACKET)) {
        if (args.n)
            expect_op(p, TK_COMMA);
        nv_push(p, &args, parse_subscribed(p));
    }
    expect_op(p, TK_RBRACKET);
    jnode *n = mk(p, N_GETITEM, line);
    n->a = node;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        jnode *tup = mk(p, N_TUPLE, line);
        tup->args = nv_done(&args);
        n->b = tup;
    }
    return n;
}

static jnode *parse_call(jp *p, jnode *callee)
{
    jnode *n = mk(p, N_CALL, cur(p)->line);
    n->a = callee;
    parse_call_args(p, n);
    return n;
}

/* Postfix and operator chains build left-deep trees that the evaluator walks
 * recursively, so their length counts against the nesting limit too. */
static jnode *parse_postfix(jp *p, jnode *node)
{
    int chain = 0;
    for (;;) {
        jtok *k = cur(p);
        if (is_op(k, TK_DOT) || is_op(k, TK_LBRACKET)) {
            enter(p);
            chain++;
            node = parse_subscript(p, node);
        } else if (is_op(k, TK_LPAREN)) {
            enter(p);
            chain++;
            node = parse_call(p, node);
        } else {
            break;
        }
    }
    p->depth -= chain;
    return node;
}

/* Reads a possibly dotted filter/test name into buf. */
static void dotted_name(jp *p, char *buf, size_t cap, size_t *len)
{
    jtok *k = cur(p);
    expect_t(p, T_NAME, "name");
    size_t n = GLM_MIN(k->n, cap - 1);
    memcpy(buf, k->p, n);
    while (is_op(cur(p), TK_DOT)) {
        next(p);
        jtok *m = cur(p);
        expect_t(p, T_NAME, "name");
        if (n + 1 + m->n < cap) {
            buf[n++] = '.';
            memcpy(buf + n, m->p, m->n);
            n += m->n;
        }
    }
    buf[n] = 0;
    *len = n;
}

static jnode *parse_filter(jp *p, jnode *node, bool start_inline)
{
    int chain = 0;
    while (is_op(cur(p), TK_PIPE) || start_inline) {
        enter(p);
        chain++;
        if (!start_inline)
            next(p);
        int line = cur(p)->line;
        char name[128];
        size_t n;
        dotted_name(p, name, sizeof name, &n);
        int id = jb_filter_id(name, n);
        if (id < 0)
            pfail(p, line, "no filter named '%s'", name);
        jnode *f = mk(p, N_FILTER, line);
        f->op = id;
        f->a = node;
        if (is_op(cur(p), TK_LPAREN))
            parse_call_args(p, f);
        node = f;
        start_inline = false;
    }
    p->depth -= chain;
    return node;
}

static jnode *parse_test(jp *p, jnode *node)
{
    int line = cur(p)->line;
    next(p); /* 'is' */
    bool negated = false;
    if (is_name(cur(p), "not")) {
        next(p);
        negated = true;
    }
    char name[128];
    size_t n;
    dotted_name(p, name, sizeof name, &n);
    int id = jb_test_id(name, n);
    if (id < 0)
        pfail(p, line, "no test named '%s'", name);
    jnode *t = mk(p, N_TEST, line);
    t->op = id;
    t->a = node;
    jtok *k = cur(p);
    if (is_op(k, TK_LPAREN)) {
        parse_call_args(p, t);
    } else if ((k->t == T_NAME || k->t == T_STRING || k->t == T_INT || k->t == T_FLOAT ||
                is_op(k, TK_LBRACKET) || is_op(k, TK_LBRACE)) &&
               !is_name(k, "else") && !is_name(k, "or") && !is_name(k, "and")) {
        if (is_name(k, "is"))
            pfail(p, k->line, "you cannot chain multiple tests with is");
        jnode *arg = parse_postfix(p, parse_primary(p, false));
        t->args.n = 1;
        t->args.v = palloc(p, sizeof *t->args.v);
        t->args.v[0] = arg;
    }
    if (negated) {
        jnode *nn = mk(p, N_NOT, line);
        nn->a = t;
        return nn;
    }
    return t;
}

static jnode *parse_filter_expr(jp *p, jnode *node)
{
    int chain = 0;
    for (;;) {
        jtok *k = cur(p);
        if (is_op(k, TK_PIPE) || is_name(k, "is") || is_op(k, TK_LPAREN)) {
            enter(p);
            chain++;
        }
        if (is_op(k, TK_PIPE))
            node = parse_filter(p, node, false);
        else if (is_name(k, "is"))
            node = parse_test(p, node);
        else if (is_op(k, TK_LPAREN))
            node = parse_call(p, node);
        else
            break;
    }
    p->depth -= chain;
    return node;
}

/* ---- statements ----------------------------------------------------------------- */

static jnodes subparse(jp *p, const char *const *end_tokens);

static bool test_any(jtok *k, const char *const *names)
{
    for (; names && *names; names++)
        if (is_name(k, *names))
            return true;
    return false;
}

_Noreturn static void fail_eof_or_tag(jp *p, const char *tagname, int line)
{
    char looking[160] = "";
    if (p->nends) {
        const char *const *e = p->ends[p->nends - 1];
        size_t off = 0;
        for (int i = 0; e[i]; i++)
            off += (size_t)snprintf(looking + off, sizeof looking - off, "%s'%s'", i ? " or " : "", e[i]);
    }
    char inner[96] = "";
    if (p->ntags)
        snprintf(inner, sizeof inner, " to close '%s' from line %d", p->tags[p->ntags - 1].name,
                 p->tags[p->ntags - 1].line);
    if (!tagname) {
        if (looking[0])
            pfail(p, line, "expected %s%s, got end of template", looking, inner);
        pfail(p, line, "unexpected end of template");
    }
    if (looking[0])
        pfail(p, line, "unknown tag '%s' (expected %s%s)", tagname, looking, inner);
    pfail(p, line, "unknown tag '%s'", tagname);
}

/* Skips an optional ':' and the block end, parses statements up to one of
 * end_tokens (left as the current token, or skipped with drop_needle). */
static jnodes parse_statements(jp *p, const char *const *end_tokens, bool drop_needle)
{
    if (is_op(cur(p), TK_COLON))
        next(p);
    expect_t(p, T_BLOCK_END, "end of statement block");
    jnodes body = subparse(p, end_tokens);
    if (cur(p)->t == T_EOF) {
        if (p->nends == MAX_NEST + 8)
            pfail(p, cur(p)->line, "template nested too deeply");
        p->ends[p->nends++] = end_tokens;
        fail_eof_or_tag(p, NULL, cur(p)->line);
    }
    if (drop_needle)
        next(p);
    return body;
}

static bool can_assign(jnode *n)
{
    if (n->type == N_NAME || n->type == N_NSREF)
        return true;
    if (n->type == N_TUPLE) {
        for (int i = 0; i < n->args.n; i++)
            if (n->args.v[i]->type != N_NAME)
                return false;
        return true;
    }
    return false;
}

static jnode *parse_assign_target(jp *p, bool name_only, const char *extra_end, bool with_ns)
{
    jnode *t;
    if (name_only) {
        jtok *k = cur(p);
        expect_t(p, T_NAME, "name");
        t = mk(p, N_NAME, k->line);
        t->sym = intern(p, k->p, k->n);
        return t;
    }
    int line = cur(p)->line;
    t = parse_tuple(p, true, true, extra_end, false, with_ns);
    if (!can_assign(t))
        pfail(p, line, "cannot assign to this expression");
    return t;
}

/* Whether the subtree mentions the symbol as a name. */
static bool mentions(jnode *n, int sym)
{
    if (!n)
        return false;
    if (n->type == N_NAME && n->sym == sym)
        return true;
    jnode *kids[] = {n->a, n->b, n->c, n->dynargs, n->dynkw};
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++)
        if (mentions(kids[i], sym))
            return true;
    jnodes *lists[] = {&n->args, &n->kwvals, &n->body, &n->orelse};
    for (size_t l = 0; l < 4; l++)
        for (int i = 0; i < lists[l]->n; i++)
            if (mentions(lists[l]->v[i], sym))
                return true;
    return false;
}

/* (a, b=default, ...) of macros and call blocks. */
static void parse_signature(jp *p, jnode *n)
{
    expect_op(p, TK_LPAREN);
    nvec defs = {0};
    int *params = NULL, np = 0;
    while (!is_op(cur(p), TK_RPAREN)) {
        if (np)
            expect_op(p, TK_COMMA);
        jtok *k = cur(p);
        expect_t(p, T_NAME, "parameter name");
        params = ints_push(p, params, np, intern(p, k->p, k->n));
        np++;
        if (is_op(cur(p), TK_ASSIGN)) {
            next(p);
            nv_push(p, &defs, parse_expression(p, true));
        } else if (defs.n) {
            pfail(p, k->line, "non-default argument follows default argument");
        }
    }
    expect_op(p, TK_RPAREN);
    n->kwvals = nv_done(&defs); /* defaults of the last kwvals.n params */
    n->nparams = np;
    n->kwsyms = params;
}

static void mark_macro(jp *p, jnode *n)
{
    glm_jinja *t = p->t;
    for (int i = 0; i < n->body.n; i++) {
        n->catch_varargs |= mentions(n->body.v[i], t->sym_varargs);
        n->catch_kwargs |= mentions(n->body.v[i], t->sym_kwargs);
        n->uses_caller |= mentions(n->body.v[i], t->sym_caller);
    }
}

static jnode *parse_statement(jp *p);

static const char *const END_FOR[] = {"endfor", "else", NULL};
static const char *const END_FOR_ONLY[] = {"endfor", NULL};
static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_IF_ONLY[] = {"endif", NULL};
static const char *const END_SET[] = {"endset", NULL};
static const char *const END_MACRO[] = {"endmacro", NULL};
static const char *const END_CALL[] = {"endcall", NULL};
static const char *const END_FILTER[] = {"endfilter", NULL};
static const char *const END_WITH[] = {"endwith", NULL};
static const char *const END_GENERATION[] = {"endgeneration", NULL};

static jnode *parse_for(jp *p, int line)
{
    jnode *n = mk(p, N_FOR, line);
    n->a = parse_assign_target(p, false, "in", false);
    if (!is_name(cur(p), "in"))
        unexpected(p, "'in'");
    next(p);
    n->b = parse_tuple(p, false, false, "recursive", false, false);
    if (is_name(cur(p), "if")) {
        next(p);
        n->c = parse_expression(p, true);
    }
    if (is_name(cur(p), "recursive"))
        pfail(p, cur(p)->line, "recursive for loops are not supported");
    p->loop_depth++;
    n->body = parse_statements(p, END_FOR, false);
    p->loop_depth--;
    bool is_else = is_name(cur(p), "else");
    next(p);
    if (is_else)
        n->orelse = parse_statements(p, END_FOR_ONLY, true);
    return n;
}

static jnode *parse_if(jp *p, int line)
{
    jnode *root = mk(p, N_IF, line), *node = root;
    int chain = 0;
    for (;;) {
        node->a = parse_tuple(p, false, false, NULL, false, false);
        node->body = parse_statements(p, END_IF, false);
        jtok *k = cur(p);
        next(p);
        if (is_name(k, "elif")) {
            enter(p);
            chain++;
            jnode *e = mk(p, N_IF, k->line);
            e->op = 1; /* an elif */
            node->orelse.n = 1;
            node->orelse.v = palloc(p, sizeof(jnode *));
            node->orelse.v[0] = e;
            node = e;
            continue;
        }
        if (is_name(k, "else"))
            node->orelse = parse_statements(p, END_IF_ONLY, true);
        break;
    }
    p->depth -= chain;
    return root;
}

static jnode *parse_set(jp *p, int line)
{
    jnode *target = parse_assign_target(p, false, NULL, true);
    if (is_op(cur(p), TK_ASSIGN)) {
        next(p);
        jnode *n = mk(p, N_SET, line);
        n->a = target;
        n->b = parse_tuple(p, false, true, NULL, false, false);
        return n;
    }
    jnode *n = mk(p, N_SETBLOCK, line);
    n->a = target;
    n->b = parse_filter(p, NULL, false);
    int saved = p->loop_depth; /* break/continue cannot leave a captured block */
    p->loop_depth = 0;
    n->body = parse_statements(p, END_SET, true);
    p->loop_depth = saved;
    return n;
}

static jnode *parse_macro(jp *p, int line)
{
    jnode *n = mk(p, N_MACRO, line);
    jtok *k = cur(p);
    expect_t(p, T_NAME, "macro name");
    n->sym = intern(p, k->p, k->n);
    parse_signature(p, n);
    int saved = p->loop_depth;
    p->loop_depth = 0;
    n->body = parse_statements(p, END_MACRO, true);
    p->loop_depth = saved;
    mark_macro(p, n);
    return n;
}

static jnode *parse_call_block(jp *p, int line)
{
    jnode *n = mk(p, N_CALLBLOCK, line);
    if (is_op(cur(p), TK_LPAREN))
        parse_signature(p, n);
    n->a = parse_expression(p, true);
    if (n->a->type != N_CALL)
        pfail(p, line, "expected a call after 'call'");
    int saved = p->loop_depth;
    p->loop_depth = 0;
    n->body = parse_statements(p, END_CALL, true);
    p->loop_depth = saved;
    mark_macro(p, n);
    return n;
}

static jnode *parse_with(jp *p, int line)
{
    jnode *n = mk(p, N_WITH, line);
    nvec targets = {0}, values = {0};
    while (cur(p)->t != T_BLOCK_END) {
        if (targets.n)
            expect_op(p, TK_COMMA);
        nv_push(p, &targets, parse_assign_target(p, false, NULL, false));
        expect_op(p, TK_ASSIGN);
        nv_push(p, &values, parse_expression(p, true));
    }
    n->args = nv_done(&targets);
    n->kwvals = nv_done(&values);
    n->body = parse_statements(p, END_WITH, true);
    return n;
}

static jnode *parse_statement(jp *p)
{
    jtok *k = cur(p);
    if (k->t != T_NAME)
        unexpected(p, "a tag name");
    int line = k->line;
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)GLM_MIN(k->n, 31), k->p);
    if (p->ntags == MAX_NEST)
        pfail(p, line, "template nested too deeply (more than %d blocks)", MAX_NEST);
    static const char *const KNOWN[] = {"for", "if", "set", "macro", "call", "filter", "with",
                                        "print", "break", "continue", "generation", NULL};
    const char *tagname = NULL;
    for (int i = 0; KNOWN[i]; i++)
        if (is_name(k, KNOWN[i]))
            tagname = KNOWN[i];
    if (!tagname) {
        static const char *const UNSUPPORTED[] = {"block", "extends", "include", "import", "from",
                                                  "autoescape", NULL};
        for (int i = 0; UNSUPPORTED[i]; i++)
            if (is_name(k, UNSUPPORTED[i]))
                pfail(p, line, "the '%s' tag is not supported in chat templates", UNSUPPORTED[i]);
        fail_eof_or_tag(p, name, line);
    }
    p->tags[p->ntags].name = tagname;
    p->tags[p->ntags].line = line;
    p->ntags++;
    enter(p);
    next(p);
    jnode *n;
    if (!strcmp(tagname, "for")) {
        n = parse_for(p, line);
    } else if (!strcmp(tagname, "if")) {
        n = parse_if(p, line);
    } else if (!strcmp(tagname, "set")) {
        n = parse_set(p, line);
    } else if (!strcmp(tagname, "macro")) {
        n = parse_macro(p, line);
    } else if (!strcmp(tagname, "call")) {
        n = parse_call_block(p, line);
    } else if (!strcmp(tagname, "filter")) {
        n = mk(p, N_FILTERBLOCK, line);
        n->b = parse_filter(p, NULL, true);
        int saved = p->loop_depth;
        p->loop_depth = 0;
        n->body = parse_statements(p, END_FILTER, true);
        p->loop_depth = saved;
    } else if (!strcmp(tagname, "with")) {
        n = parse_with(p, line);
    } else if (!strcmp(tagname, "print")) {
        n = mk(p, N_OUTPUT, line);
        nvec items = {0};
        while (cur(p)->t != T_BLOCK_END) {
            if (items.n)
                expect_op(p, TK_COMMA);
            nv_push(p, &items, parse_expression(p, true));
        }
        n->args = nv_done(&items);
    } else if (!strcmp(tagname, "generation")) {
        n = mk(p, N_SCOPE, line);
        n->body = parse_statements(p, END_GENERATION, true);
    } else {
        bool brk = !strcmp(tagname, "break");
        if (p->loop_depth == 0)
            pfail(p, line, "'%s' outside of a for loop", tagname);
        n = mk(p, brk ? N_BREAK : N_CONTINUE, line);
    }
    leave(p);
    p->ntags--;
    return n;
}

static jnodes subparse(jp *p, const char *const *end_tokens)
{
    nvec body = {0}, data = {0};
    if (end_tokens) {
        if (p->nends == MAX_NEST + 8)
            pfail(p, cur(p)->line, "template nested too deeply");
        p->ends[p->nends++] = end_tokens;
    }
    int data_line = 0;
#define FLUSH()                                                                                   \
    do {                                                                                          \
        if (data.n) {                                                                             \
            jnode *o_ = mk(p, N_OUTPUT, data_line);                                               \
            o_->args = nv_done(&data);                                                         \
            nv_push(p, &body, o_);                                                                   \
        }                                                                                         \
    } while (0)
    for (;;) {
        jtok *k = cur(p);
        if (k->t == T_EOF)
            break;
        if (k->t == T_DATA) {
            if (!data.n)
                data_line = k->line;
            jnode *d = mk(p, N_DATA, k->line);
            d->val = const_str(p, k->p, k->n);
            nv_push(p, &data, d);
            next(p);
        } else if (k->t == T_VAR_BEGIN) {
            if (!data.n)
                data_line = k->line;
            next(p);
            nv_push(p, &data, parse_tuple(p, false, true, NULL, false, false));
            expect_t(p, T_VAR_END, "end of print statement");
        } else if (k->t == T_BLOCK_BEGIN) {
            FLUSH();
            next(p);
            if (end_tokens && test_any(cur(p), end_tokens))
                goto done;
            nv_push(p, &body, parse_statement(p));
            expect_t(p, T_BLOCK_END, "end of statement block");
        } else {
            char b[64];
            pfail(p, k->line, "unexpected %s", describe(k, b, sizeof b));
        }
    }
    FLUSH();
done:
#undef FLUSH
    if (end_tokens)
        p->nends--;
    return nv_done(&body);
}

/* ---- scope analysis ------------------------------------------------------------
 *
 * jinja2 decides at compile time what a name means in each frame (idtracking):
 * the first occurrence of a name in a frame's own statements (nested frames
 * excluded) is a load (resolved from outside), a parameter, or a store; a name
 * stored first, outside any if-branch, with no enclosing frame referring to
 * it, starts the frame as an undefined local. Reading it before the store -
 * from a macro or loop defined earlier, say - gives Undefined, not the
 * context's value. This pass finds those names for every frame. */

enum { SYM_NONE, SYM_REF, SYM_UNDEF };

typedef struct frame_an {
    uint8_t *st; /* per symbol: SYM_* */
    struct frame_an *parent;
} frame_an;

static bool outer_ref(const frame_an *f, int sym)
{
    for (f = f->parent; f; f = f->parent)
        if (f->st[sym] != SYM_NONE)
            return true;
    return false;
}

static void an_load(frame_an *f, int sym)
{
    if (sym >= 0 && f->st[sym] == SYM_NONE)
        f->st[sym] = SYM_REF;
}

static void an_store(frame_an *f, int sym, bool in_branch)
{
    if (f->st[sym] == SYM_NONE)
        f->st[sym] = in_branch || outer_ref(f, sym) ? SYM_REF : SYM_UNDEF;
}

static void an_expr(frame_an *f, const jnode *n)
{
    if (!n)
        return;
    if (n->type == N_NAME)
        an_load(f, n->sym);
    an_expr(f, n->a);
    an_expr(f, n->b);
    an_expr(f, n->c);
    an_expr(f, n->dynargs);
    an_expr(f, n->dynkw);
    for (int i = 0; i < n->args.n; i++)
        an_expr(f, n->args.v[i]);
    for (int i = 0; i < n->kwvals.n; i++)
        an_expr(f, n->kwvals.v[i]);
}

static void an_target(frame_an *f, const jnode *t, bool in_branch)
{
    if (t->type == N_NAME)
        an_store(f, t->sym, in_branch);
    else if (t->type == N_NSREF)
        an_load(f, t->sym);
    else
        for (int i = 0; i < t->args.n; i++)
            an_store(f, t->args.v[i]->sym, in_branch);
}

static void an_body(frame_an *f, const jnodes *body, bool in_branch);

static void an_stmt(frame_an *f, const jnode *n, bool in_branch)
{
    switch (n->type) {
    case N_OUTPUT:
        for (int i = 0; i < n->args.n; i++)
            if (n->args.v[i]->type != N_DATA)
                an_expr(f, n->args.v[i]);
        break;
    case N_IF: /* branches never declare: jinja2 resolves names first stored there */
        an_expr(f, n->a);
        an_body(f, &n->body, true);
        an_body(f, &n->orelse, true);
        break;
    case N_SET:
        an_expr(f, n->b);
        an_target(f, n->a, in_branch);
        break;
    case N_SETBLOCK: an_target(f, n->a, in_branch); break;
    case N_MACRO: an_store(f, n->sym, in_branch); break;
    case N_FOR: an_expr(f, n->b); break;
    case N_CALLBLOCK: an_expr(f, n->a); break;
    case N_FILTERBLOCK: an_expr(f, n->b); break;
    case N_WITH:
        for (int i = 0; i < n->kwvals.n; i++)
            an_expr(f, n->kwvals.v[i]);
        break;
    default: break;
    }
}

static void an_body(frame_an *f, const jnodes *body, bool in_branch)
{
    for (int i = 0; i < body->n; i++)
        an_stmt(f, body->v[i], in_branch);
}

static void an_frame(jp *p, frame_an *parent, const jnodes *body, const jnode *params_of, int **out,
                     int *nout);

/* Recurses into the frames nested in `body` (through if-branches too). */
static void an_children(jp *p, frame_an *f, const jnodes *body)
{
    for (int i = 0; i < body->n; i++) {
        jnode *n = body->v[i];
        switch (n->type) {
        case N_IF:
            an_children(p, f, &n->body);
            an_children(p, f, &n->orelse);
            break;
        case N_FOR:
            an_frame(p, f, &n->body, n, &n->undef, &n->nundef);
            an_frame(p, f, &n->orelse, NULL, &n->undef_else, &n->nundef_else);
            break;
        case N_MACRO:
        case N_CALLBLOCK:
        case N_WITH:
        case N_SETBLOCK:
        case N_FILTERBLOCK:
        case N_SCOPE: an_frame(p, f, &n->body, n, &n->undef, &n->nundef); break;
        default: break;
        }
    }
}

/* Analyses one frame: its parameters (from `params_of`), then its statements;
 * stores the symbols it declares undefined, then does its nested frames. */
static void an_frame(jp *p, frame_an *parent, const jnodes *body, const jnode *params_of, int **out,
                     int *nout)
{
    glm_jinja *t = p->t;
    frame_an f = {palloc(p, (size_t)t->nsyms), parent};
    if (params_of) {
        switch (params_of->type) {
        case N_FOR: an_target(&f, params_of->a, true); f.st[t->sym_loop] = SYM_REF; break;
        case N_MACRO:
        case N_CALLBLOCK:
            for (int i = 0; i < params_of->nparams; i++)
                f.st[params_of->kwsyms[i]] = SYM_REF;
            f.st[t->sym_varargs] = f.st[t->sym_kwargs] = f.st[t->sym_caller] = SYM_REF;
            for (int i = 0; i < params_of->kwvals.n; i++)
                an_expr(&f, params_of->kwvals.v[i]);
            break;
        case N_WITH:
            for (int i = 0; i < params_of->args.n; i++)
                an_target(&f, params_of->args.v[i], true);
            break;
        default: break;
        }
    }
    an_body(&f, body, false);
    int n = 0;
    for (int s = 0; s < t->nsyms; s++)
        n += f.st[s] == SYM_UNDEF;
    *nout = n;
    *out = n ? palloc(p, (size_t)n * sizeof **out) : NULL;
    n = 0;
    for (int s = 0; s < t->nsyms; s++)
        if (f.st[s] == SYM_UNDEF)
            (*out)[n++] = s;
    an_children(p, &f, body);
}

static void analyze_scopes(jp *p)
{
    an_frame(p, NULL, &p->t->body, NULL, &p->t->root_undef, &p->t->nroot_undef);
}

int jinja_parse(glm_jinja *t, const char *src, size_t len, char *err, size_t errlen)
{
    jp *volatile p = glm_calloc(1, sizeof *p);
    p->t = t;
    p->err = err;
    p->errlen = errlen;
    int rc = GLM_ERR;
    if (setjmp(p->jmp) == 0) {
        if (jinja_lex(&t->arena, t->name, src, len, &p->toks, &p->ntoks, err, errlen) != GLM_OK)
            longjmp(p->jmp, 1);
        t->sym_loop = intern(p, "loop", 4);
        t->sym_varargs = intern(p, "varargs", 7);
        t->sym_kwargs = intern(p, "kwargs", 6);
        t->sym_caller = intern(p, "caller", 6);
        t->body = subparse(p, NULL);
        if (cur(p)->t != T_EOF)
            unexpected(p, "end of template");
        analyze_scopes(p);
        t->sym_global = palloc(p, (size_t)t->nsyms * sizeof *t->sym_global);
        for (int i = 0; i < t->nsyms; i++)
            t->sym_global[i] = jb_global_id(t->syms[i].p, t->syms[i].len);
        rc = GLM_OK;
    }
    free(p->toks);
    glm_strmap_free(&p->syms);
    free(p);
    return rc;
}
