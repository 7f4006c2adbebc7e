/*
 * schema_text.c - GBNF text for the generator: literals (GBNF and JSON
 * string escaping), repetition suffixes, canonical integer ranges as digit
 * classes, and the fixed rules (ws, jstring, jvalue, raw-a, ...) that every
 * grammar shares and writes once, at the end, when used.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "constrain/schema_internal.h"
#include "core/buf.h"
#include "core/util.h"

/* ---- GBNF text ---------------------------------------------------------------- */

/* A GBNF string literal of the bytes s[0..n): quotes, backslashes and control
 * characters escaped, UTF-8 kept. */
void sg_lit(glm_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    glm_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            glm_buf_put(b, e, 2);
        } else if (c == '\n')
            glm_buf_puts(b, "\\n");
        else if (c == '\r')
            glm_buf_puts(b, "\\r");
        else if (c == '\t')
            glm_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7F) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            glm_buf_put(b, e, 4);
        } else
            glm_buf_put(b, (const char *)&c, 1);
    }
    glm_buf_put(b, "\"", 1);
}

void sg_lits(glm_buf *b, const char *s) { sg_lit(b, s, strlen(s)); }

/* The GBNF literal of s as a JSON string. */
void sg_lit_json_string(glm_buf *b, const char *s, size_t n, int tool)
{
    glm_buf t = TEXT;
    glm_buf_put(&t, "\"", 1);
    /* minimal escapes; with `tool`, "</" is written "<\/" */
    glm_buf_json_escape(&t, s, n, tool ? GLM_JSON_NO_ETAG : 0);
    glm_buf_put(&t, "\"", 1);
    if (t.over)
        b->over = 1;
    else
        sg_lit(b, t.p, t.len);
    glm_buf_free(&t);
}

/* Repetition suffix for {lo,hi} (hi < 0: unbounded). */
void sg_rep(glm_buf *b, int lo, int hi)
{
    if (lo == 0 && hi < 0)
        glm_buf_puts(b, "*");
    else if (lo == 1 && hi < 0)
        glm_buf_puts(b, "+");
    else if (lo == 0 && hi == 1)
        glm_buf_puts(b, "?");
    else if (hi < 0)
        glm_buf_printf(b, "{%d,}", lo);
    else if (lo == hi)
        glm_buf_printf(b, "{%d}", lo);
    else
        glm_buf_printf(b, "{%d,%d}", lo, hi);
}

const sg_fixed_rule SG_FIXED[F_COUNT] = {
    {"ws", "ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n", 0},
    /* \u escapes: a BMP non-surrogate, or a high + low surrogate pair */
    {"jesc", "jesc ::= \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] "
     "[0-9a-fA-F]{2} | [dD] [89abAB] [0-9a-fA-F]{2} \"\\\\u\" [dD] [c-fC-F] [0-9a-fA-F]{2} ) )\n",
     0},
    {"jchar", "jchar ::= [^\"\\\\\\x00-\\x1F] | jesc\n", F_ESC},
    {"jstring", "jstring ::= \"\\\"\" jchar* \"\\\"\"\n", F_JCHAR},
    {"jint", "jint ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n", 0},
    {"jnumber", "jnumber ::= jint ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?\n", F_JINT},
    {"jvalue", "jvalue ::= jobject | jarray | jstring | jnumber | \"true\" | \"false\" | \"null\"\n",
     F_JOBJECT | F_JARRAY | F_JSTRING | F_JNUMBER},
    {"jobject", "jobject ::= \"{\" ws ( jstring ws \":\" ws jvalue ( ws \",\" ws jstring ws \":\" ws jvalue )* "
     "ws )? \"}\"\n",
     F_WS | F_JSTRING | F_JVALUE},
    {"jarray", "jarray ::= \"[\" ws ( jvalue ( ws \",\" ws jvalue )* ws )? \"]\"\n", F_WS | F_JVALUE},
    /* tool-call JSON: a string never holds "</" (a run of "<" is followed by
       anything but "/"); tchar, for length-bounded strings, has no "<" at all */
    {"tchar", "tchar ::= [^\"\\\\\\x00-\\x1F<] | jesc\n", F_ESC},
    {"tstring", "tstring ::= \"\\\"\" ( tchar | \"<\"+ ( [^\"\\\\\\x00-\\x1F</] | jesc ) )* \"<\"* \"\\\"\"\n",
     F_TCHAR},
    {"tvalue", "tvalue ::= tobject | tarray | tstring | jnumber | \"true\" | \"false\" | \"null\"\n",
     F_TOBJECT | F_TARRAY | F_TSTRING | F_JNUMBER},
    {"tobject", "tobject ::= \"{\" ws ( tstring ws \":\" ws tvalue ( ws \",\" ws tstring ws \":\" ws tvalue )* "
     "ws )? \"}\"\n",
     F_WS | F_TSTRING | F_TVALUE},
    {"tarray", "tarray ::= \"[\" ws ( tvalue ( ws \",\" ws tvalue )* ws )? \"]\"\n", F_WS | F_TVALUE},
    /* raw text without "</" (and without NUL); raw-b: the same after a "<" */
    {"raw-a", "raw-a ::= ( [^<\\x00] | \"<\"+ [^</\\x00] )* \"<\"*\n", 0},
    {"raw-b", "raw-b ::= \"<\"* ( [^</\\x00] raw-a )?\n", F_RAWA},
    {"nl", "nl ::= \"\\n\"?\n", 0},
};

/* ---- integers in a range --------------------------------------------------------- */

static int all_char(const char *s, int n, char c)
{
    for (int i = 0; i < n; i++)
        if (s[i] != c)
            return 0;
    return 1;
}

static void digit_class(glm_buf *b, char lo, char hi)
{
    if (lo == hi)
        glm_buf_printf(b, "\"%c\"", lo);
    else
        glm_buf_printf(b, "[%c-%c]", lo, hi);
}

/* Digit strings of length L from x to y (x <= y, same length). */
static void digits_range(glm_buf *b, const char *x, const char *y, int L)
{
    static const char nines[] = "9999999999999999", zeros[] = "0000000000000000";
    if (L == 0)
        return;
    if (x[0] == y[0]) {
        glm_buf_printf(b, "\"%c\"", x[0]);
        if (L > 1) {
            glm_buf_puts(b, " ");
            digits_range(b, x + 1, y + 1, L - 1);
        }
        return;
    }
    int x0 = all_char(x + 1, L - 1, '0'), y9 = all_char(y + 1, L - 1, '9'), parts = 0;
    char lo = x0 ? x[0] : (char)(x[0] + 1), hi = y9 ? y[0] : (char)(y[0] - 1);
    glm_buf_puts(b, "( ");
    if (!x0) {
        glm_buf_printf(b, "\"%c\" ", x[0]);
        digits_range(b, x + 1, nines, L - 1);
        parts++;
    }
    if (lo <= hi) {
        if (parts++)
            glm_buf_puts(b, " | ");
        digit_class(b, lo, hi);
        if (L > 1) {
            glm_buf_puts(b, " [0-9]");
            if (L > 2)
                glm_buf_printf(b, "{%d}", L - 1);
        }
    }
    if (!y9) {
        if (parts++)
            glm_buf_puts(b, " | ");
        glm_buf_printf(b, "\"%c\" ", y[0]);
        digits_range(b, zeros, y + 1, L - 1);
    }
    glm_buf_puts(b, " )");
}

/* Canonical decimals from a to z, 0 <= a <= z <= INT_CAP, as one group. */
static void uint_range(glm_buf *b, long long a, long long z)
{
    char sa[24], sz[24];
    int la = snprintf(sa, sizeof sa, "%lld", a), lz = snprintf(sz, sizeof sz, "%lld", z), parts = 0;
    glm_buf_puts(b, "( ");
    for (int L = la; L <= lz; L++) {
        char x[24], y[24];
        if (L == la)
            memcpy(x, sa, (size_t)L + 1);
        else {
            x[0] = '1';
            memset(x + 1, '0', (size_t)L - 1);
            x[L] = 0;
        }
        if (L == lz)
            memcpy(y, sz, (size_t)L + 1);
        else {
            memset(y, '9', (size_t)L);
            y[L] = 0;
        }
        if (parts++)
            glm_buf_puts(b, " | ");
        digits_range(b, x, y, L);
    }
    glm_buf_puts(b, " )");
}

/* Canonical JSON integers from lo to hi (no "-0"), both within +-INT_CAP. */
void sg_int_range(glm_buf *b, long long lo, long long hi)
{
    int neg = lo < 0, pos = hi >= 0;
    glm_buf_puts(b, "( ");
    if (neg) {
        glm_buf_puts(b, "\"-\" ");
        uint_range(b, hi < 0 ? -hi : 1, -lo);
    }
    if (pos) {
        if (neg)
            glm_buf_puts(b, " | ");
        uint_range(b, lo > 0 ? lo : 0, hi);
    }
    glm_buf_puts(b, " )");
}

