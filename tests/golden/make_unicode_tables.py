#!/usr/bin/env python3
"""Unicode tables of the text path, and their goldens, from Python and Hugging Face `tokenizers`.

The two references know different Unicode versions, and each table follows its own:

  - Chat templates run in transformers' jinja2 on the Python of the reference environment
    (python3 of Debian 12: 3.11, Unicode 14.0.0). Printing a list or dict there shows its
    strings as repr() does, which escapes the code points str.isprintable() rejects.
  - Pre-tokenizer regexes run in `tokenizers`' Oniguruma (the onig crate's bundled copy;
    Unicode 16.0 in tokenizers 0.23), while the server compiles them with PCRE2 (Debian 12's
    10.42 knows Unicode 14.0.0).

Writes:
  engine/text/jinja/jinja_printable.c   py_isprintable(): the ranges where this Python's
                                        str.isprintable() is false.
  engine/text/uniclass_table.c          for each general category (\\p{L}, \\p{Nd}, ...) and
                                        \\w: the ranges Oniguruma matches, and the part of
                                        them that PCRE2's Unicode (taken from this Python's
                                        unicodedata, the same version on Debian 12) lacks.
  tests/golden/unicode/repr_escaped.txt the code points repr() escapes, from repr() itself
                                        (one range "LO-HI" or code point "LO" in hex a line).
  tests/golden/unicode/repr.tsv         JSON list of strings \\t repr() of that list.
  tests/golden/unicode/classes.tsv      PATTERN \\t ranges: what each class pattern matches
                                        in tokenizers (Split on one string of every code
                                        point), for the general categories, \\s and \\w.

Run with a Python whose unicodedata is PCRE2's Unicode (3.11 on Debian 12) and that has
`tokenizers` (the golden-venv of the Makefile has it, through transformers):

    .venv-ref/bin/python tests/golden/make_unicode_tables.py
"""
import json
import os
import sys
import unicodedata

import tokenizers
from tokenizers import Regex, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(HERE, "unicode")

MAX_CP = 0x10FFFF
SURROGATES = range(0xD800, 0xE000)

# The general categories a Split regex may name; Cs cannot occur in valid UTF-8.
CATEGORIES = ["C", "Cc", "Cf", "Cn", "Co", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
              "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk",
              "Sm", "So", "Z", "Zl", "Zp", "Zs"]

# The patterns of classes.tsv: every category, \s and \w, and negations and unions of
# categories in and out of brackets.
CLASS_PATTERNS = [r"\p{%s}" % c for c in CATEGORIES] + [
    r"\s", r"\w", r"\W", r"\P{L}", r"\p{^N}", r"[\P{L}]", r"[\P{Cn}]", r"[^\P{Mn}]", r"[^\r\n\p{L}\p{N}]",
    r"[\s\p{P}]", r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\w\p{No}]"]

# The general categories PCRE2's version of Oniguruma's \w is made of.
WORD_BASE = ["L", "M", "Nd", "Pc"]

# Graphic and format characters (neither Cn, Co, Cs nor Cc) in each Unicode version, as
# the Unicode Consortium counts them: how the Unicode version of Oniguruma is told.
VERSION_BY_COUNT = {144697: "14.0", 149186: "15.0", 149813: "15.1", 154998: "16.0", 159801: "17.0"}


def ranges(cps):
    """Sorted code points -> [(lo, hi)]."""
    out = []
    for c in cps:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [tuple(r) for r in out]


def ranges_text(rs):
    return " ".join("%X-%X" % r if r[0] != r[1] else "%X" % r[0] for r in rs)


def all_code_points():
    return "".join(chr(c) for c in range(MAX_CP + 1) if c not in SURROGATES)


# --- what tokenizers' Oniguruma matches -----------------------------------------------

def onig_set(pattern, text):
    """Code points of text that `pattern` (one character class) matches in tokenizers."""
    split = pre_tokenizers.Split(Regex(pattern + "{1,1000}"), behavior="removed", invert=True)
    out = set()
    for piece, _ in split.pre_tokenize_str(text):
        out.update(map(ord, piece))
    return out


_CATEGORY = [unicodedata.category(chr(c)) for c in range(MAX_CP + 1)]


def python_set(cat):
    """The code points of general category `cat` in this Python's unicodedata."""
    return {c for c in range(MAX_CP + 1) if c not in SURROGATES and _CATEGORY[c].startswith(cat)}


def onig_unicode_version(onig):
    assigned = len(set(range(MAX_CP + 1)) - set(SURROGATES) - onig["Cn"] - onig["Co"] - onig["Cc"])
    if assigned not in VERSION_BY_COUNT:
        sys.exit(f"tokenizers' Oniguruma assigns {assigned} graphic and format characters: "
                 "a Unicode version this script does not know")
    return VERSION_BY_COUNT[assigned]


# --- writing -------------------------------------------------------------------------------

def c_ranges(name, rs):
    lines, line = [], "   "
    for item in ("{0x%X, 0x%X}," % r for r in rs):
        if len(line) + 1 + len(item) > 100:
            lines.append(line)
            line = "   "
        line += " " + item
    lines.append(line)
    return [f"static const glm_cp_range {name}[] = {{"] + lines + ["};"]


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print("wrote", os.path.relpath(path, ROOT))


def who():
    return (f"tests/golden/make_unicode_tables.py, Python {sys.version.split()[0]} "
            f"(Unicode {unicodedata.unidata_version}), tokenizers {tokenizers.__version__}")


def write_printable():
    rs = ranges(c for c in range(MAX_CP + 1) if not chr(c).isprintable())
    out = ["/*",
           " * jinja_printable.c - Python's str.isprintable() for one code point: false",
           " * for the code points Python's repr() escapes (categories Cc, Cf, Cs, Co,",
           " * Cn, Zl, Zp, Zs except the space), as the Python of the reference",
           f" * environment knows them (Python {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}).",
           " *",
           f" * Generated by {who()}; do not edit.",
           " */",
           '#include "jinja_internal.h"',
           "",
           '#include "text/cp_ranges.h"',
           ""]
    out += c_ranges("NOT_PRINTABLE", rs)
    out += ["",
            "bool py_isprintable(uint32_t c)",
            "{",
            "    if (c < 0x7F)",
            "        return c >= 0x20;",
            "    return !glm_cp_in_ranges(c, NOT_PRINTABLE, sizeof NOT_PRINTABLE / sizeof *NOT_PRINTABLE);",
            "}",
            ""]
    write(os.path.join(ROOT, "engine", "text", "jinja", "jinja_printable.c"), "\n".join(out))


def write_uniclass(onig, version):
    base_version = unicodedata.unidata_version
    out = ["/*",
           " * uniclass_table.c - the general categories and \\w as `tokenizers`'",
           f" * Oniguruma knows them (Unicode {version}), and what PCRE2 built with Unicode",
           f" * {base_version} lacks of each (see uniclass.h).",
           " *",
           f" * Generated by {who()}; do not edit.",
           " */",
           '#include "text/uniclass.h"',
           ""]
    entries = []
    # each category, and Oniguruma's \w (its "Word": more than Letter, Mark, Decimal_Number
    # and Connector_Punctuation, e.g. Letter_Number, U+00B2), on PCRE2's properties
    classes = [(cat, onig[cat], [cat]) for cat in CATEGORIES] + [("Word", onig[r"\w"], WORD_BASE)]
    for name, ref, props in classes:
        base = set().union(*(python_set(p) for p in props))
        full = ranges(sorted(ref))
        exact = base <= ref
        # the ranges of ref holding a code point base lacks: with base's own properties they
        # make ref exactly (every code point of base is in ref), in as few ranges as can be
        added = ref - base
        extra = [r for r in full if any(r[0] <= c <= r[1] for c in added)] if exact else []
        out += c_ranges(f"FULL_{name}", full)
        if extra:
            out += c_ranges(f"EXTRA_{name}", extra)
        pcre2 = "".join(r"\\p{%s}" % p for p in props)
        entries.append('    {"%s", "%s", FULL_%s, %d, %s, %d, %d},' % (
            name, pcre2, name, len(full), f"EXTRA_{name}" if extra else "NULL", len(extra), 1 if exact else 0))
    # code points whose category differs between the two (newly assigned ones mostly),
    # and the 128-code-point blocks that hold one
    changed = set()
    for cat in CATEGORIES:
        changed |= onig[cat] ^ python_set(cat)
    # glm_uniclass_text_changed skips two-byte characters and the lead bytes E4..E9
    if any(c < 0x800 or 0x4000 <= c <= 0x9FFF for c in changed):
        sys.exit("a code point below U+0800 or in U+4000..U+9FFF changed category: "
                 "uniclass.c's scan must look at it")
    out += c_ranges("CHANGED", ranges(sorted(changed)))
    blocks = [0] * ((MAX_CP + 1) // 128 // 64)
    for c in changed:
        blocks[c // 128 // 64] |= 1 << (c // 128 % 64)
    out += ["const glm_cp_range *const glm_uniclass_changed = CHANGED;",
            "const int glm_n_uniclass_changed = sizeof CHANGED / sizeof *CHANGED;",
            "const uint64_t glm_uniclass_changed_blocks[%d] = {" % len(blocks)]
    out += ["    " + " ".join("0x%016xull," % w for w in blocks[i:i + 4]) for i in range(0, len(blocks), 4)]
    out += ["};"]
    out += ["",
            f'const char glm_uniclass_unicode[] = "{version}";',
            f'const char glm_uniclass_base_unicode[] = "{base_version}";',
            "",
            "const glm_uniclass glm_uniclasses[] = {"] + entries + ["};",
            "const int glm_n_uniclasses = sizeof glm_uniclasses / sizeof *glm_uniclasses;",
            ""]
    write(os.path.join(ROOT, "engine", "text", "uniclass_table.c"), "\n".join(out))


# strings whose repr() the template tests render: each class of code point repr() escapes
# or keeps, quotes and backslashes, subdivision flags (tag characters)
REPR_STRINGS = [
    ["\u0378"], ["a\u0378b", "\u0890\u0891\u08e2"], ["\U000110bd\U000110cd", "\U00013430\U00013438"],
    ["\U0001bca0\U0001bca3", "\U0001d173\U0001d17a"],
    ["\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"],
    ["\U000e0001", "\U000e0020\U000e007f"], ["\u00ad\u200b\u200e\u2060\ufeff"], ["\u061c\u180e"],
    ["\U0001e4e0\U0001e4f0", "\U00011f50\U00011b00"], ["\U0002ebf0", "\U00010d4a\U00010d40\U00016d70"],
    ["\U0001fae8", "\u0b55"], ["\ue000", "\U000f0000", "\U0010fffd"], ["\ufffe\uffff", "\U0001fffe"],
    ["\x00\x1f\x7f\x80\x9f\xa0", "\u2028\u2029\u3000\u00a0\u1680"], ["it's", 'say "hi"', "both ' and \""],
    ["back\\slash", "\t\n\r"], ["\u4e2d\u6587", "\U0001F600\u200d\U0001F600"], ["\U000e01ef", "\U000e01f0"],
    [{"k\u0378": "\U000E0067v"}],
]


def write_goldens(onig, version):
    os.makedirs(GOLDEN, exist_ok=True)
    head = f"# generated by {who()} (its Oniguruma: Unicode {version})"

    esc = ranges(c for c in range(MAX_CP + 1) if repr(chr(c))[1:-1] != chr(c) and chr(c) not in "\\\t\n\r")
    write(os.path.join(GOLDEN, "repr_escaped.txt"),
          "\n".join([head, "# code points repr() writes as \\xHH, \\uHHHH or \\UHHHHHHHH (hex ranges)"] +
                    [ranges_text([r]) for r in esc]) + "\n")

    lines = [head, "# JSON value \\t Python's repr() of it"]
    for v in REPR_STRINGS:
        lines.append(json.dumps(v) + "\t" + repr(v))
    write(os.path.join(GOLDEN, "repr.tsv"), "\n".join(lines) + "\n")

    lines = [head, "# PATTERN \\t the code points it matches in tokenizers (hex ranges)"]
    for pat in CLASS_PATTERNS:
        lines.append(pat + "\t" + ranges_text(ranges(sorted(onig[pat]))))
    write(os.path.join(GOLDEN, "classes.tsv"), "\n".join(lines) + "\n")


def main():
    text = all_code_points()
    onig = {c: onig_set(r"\p{%s}" % c, text) for c in CATEGORIES}
    for pat in CLASS_PATTERNS:
        onig[pat] = onig[pat[3:-1]] if pat in (r"\p{%s}" % c for c in CATEGORIES) else onig_set(pat, text)
    version = onig_unicode_version(onig)
    print(f"tokenizers {tokenizers.__version__}: Oniguruma knows Unicode {version}; "
          f"Python {sys.version.split()[0]}: Unicode {unicodedata.unidata_version}")
    write_printable()
    write_uniclass(onig, version)
    write_goldens(onig, version)


if __name__ == "__main__":
    main()
