#!/usr/bin/env python3
"""Tokenizer goldens from Hugging Face `tokenizers`, for tests/unit/test_tokenizer.c.

For the tiny test tokenizer (tests/models/tiny/tokenizer.json) and, when it
exists, the large one (models/tokenizer-large/tokenizer.json, made by
`make_tokenizers.py --large`), writes under tests/golden/tokenizer/:

  NAME.encode.tsv  one line per string (>= 2000 of them: ASCII, CJK, emoji and
                   ZWJ sequences, combining marks, whitespace and newline runs,
                   digits, code, JSON, chat prompts, special-token look-alikes,
                   random mixes of many scripts, a few long runs):
                     TEXT \t IDS \t IDS_PLAIN \t DECODED \t DECODED_SKIP
                   IDS: Tokenizer.encode(TEXT, add_special_tokens=False).ids;
                   IDS_PLAIN: the same with encode_special_tokens = True
                   ("=" when equal to IDS); DECODED: decode(IDS) ("=" when
                   equal to TEXT, which is checked to hold here for tiny and
                   large); DECODED_SKIP: decode(IDS, skip_special_tokens=True)
                   ("=" when equal to DECODED).
  NAME.decode.tsv  id sequences whose bytes are often not valid UTF-8 (byte
                   tokens cut out of characters, surrogates, overlongs, lone
                   continuation bytes, specials in between), random ids and ids
                   past the vocabulary:
                     IDS \t DECODED \t DECODED_SKIP ("=" when equal)
                   DECODED is also checked against ByteLevel's token bytes +
                   bytes.decode(errors="replace").

  tiny-VARIANT.encode.tsv  the same for ~450 of the strings on the tiny
                   tokenizer with some top-level fields replaced by the JSON on
                   its "# overlay" line ("model" fields are merged into the
                   model, "remove_vocab" deletes vocabulary entries): other
                   pre-tokenizers (Llama 3's Removed+invert, GPT-2 and RoBERTa
                   ByteLevel regexes, every Split behavior, String patterns),
                   ignore_merges, extra added tokens with lstrip / rstrip /
                   single_word / normalized, unk_token + fuse_unk, dropped
                   characters.

TEXT and DECODED are escaped: \\\\ \\t \\n \\r and \\xHH for other bytes below 0x20
and 0x7f (and for a '#' that would start a line); everything else is UTF-8 as is. IDS are space-separated, "-" when
empty. The first lines start with '#': versions, and `fnv1a64` of the
tokenizer.json they were made from (the C test checks it).

    make golden-venv && .venv-ref/bin/python tests/golden/make_token_goldens.py
"""
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_tokenizers as mt  # noqa: E402  (the training text and special tokens)

OUT = os.path.join(HERE, "tokenizer")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def esc(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    if out and out[0] == "#":  # lines starting with '#' are comments
        out[0] = "\\x23"
    return "".join(out)


def ids_str(ids):
    return " ".join(map(str, ids)) if ids else "-"


# --- the strings -------------------------------------------------------------

SPECIALS = mt.SPECIALS

HAND = [
    "", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", "\n\n\n", " \n", "\n ", " \n ", "  \n\n  ",
    "\t\t", " \t \t", "a", "A", "ab", "abc", "Hello", "hello world", " hello", "hello ", "  hello  ",
    "Hello, world!", "HELLO WORLD", "don't", "I'm", "we've", "you'll", "they're", "she'd", "it's",
    "IT'S", "DON'T", "We'Ve", "x's", "x'S", "x'ſ", "x’s", "'s", "''s", "'", "''", "'''", "'ll'll",
    "1", "12", "123", "1234", "12345", "123456", "1234567", "3.14159", "1,000,000", "-42", "+7",
    "0x1F", "1e-9", "2024-01-01", "12:34:56", "١٢٣٤٥", "１２３４５", "²³", "½", "Ⅻ", "①②③",
    "a1b2c3", "abc123def", "v2.4.1", "x = 1234567;", "$100.00", "50%", "#1", "@user", "user@example.com",
    "https://example.com/path?q=1&r=2#frag", "C:\\Users\\name\\file.txt", "/usr/local/bin",
    "中", "中文", "你好", "你好，世界！", "我爱北京天安门。", "这是一个测试。This is a test.",
    "日本語のテキスト", "ひらがな", "カタカナ", "한국어", "안녕하세요", "Привет, мир!", "Γειά σου κόσμε",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Tiếng Việt có dấu", "ÀÉÎÕÜ àéîõü ß ẞ",
    "😀", "😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇨🇳🇺🇸", "❤️", "✅", "🧑🏿‍💻", "👩‍❤️‍💋‍👨",
    "a😀b", " 😀 ", "😀\n", "e\u0301", "e\u0301\u0301", "Z\u0351\u0358\u0361a\u0334\u0315l\u0338g\u0315o",
    "\u0301", "\u0301a", "a\u200db", "\u200b", "\ufeff", "\ufeffBOM", "a\u00a0b", "a\u3000b",
    "a\u2028b", "a\u2029b", "a\u0085b", "a\u180eb", "!\u180e!", " \u180e ", "\u180e", "\x00", "a\x00b",
    "\x01\x02\x03", "\x7f", "\x1c\x1d\x1e\x1f", "a\x0bb\x0cc", "\ud7ff", "\ue000", "\uffff", "\U0010ffff",
    "\U0001f600\U0001f601", "\u0378", "x\u2e5dy",
    "def f(x):\n    return x + 1\n", "if (a < b) { return 0; }", "int main(void) {\n\treturn 0;\n}\n",
    "for i in range(10):\n\tprint(i)", "    indented", "\t\tindented", "x  =  y", "a\n\n\nb",
    "{\"key\": \"value\", \"n\": [1, 2, 3]}", "{}", "[]", "[{}]", "\"\"", "null", "true",
    "<html><body>hi</body></html>", "<div class=\"x\">", "<!-- comment -->", "SELECT * FROM t;",
    "$ ls -la | grep foo", "a && b || c", "a->b", "a::b", "a...b", "...", "!!!", "???", "?!",
    "—", "–", "…", "«»", "“quoted”", "‘single’", "§¶†‡", "©®™", "°C", "µs", "→←↑↓", "∀x∈ℝ", "≤≥≠",
    "<", ">", "<|", "|>", "<||>", "<|user", "|user|>", "<|user|", "<|user|>", "<|user|>x", "x<|user|>",
    "<<|user|>>", "<|user|><|user|>", "<|us<|user|>er|>", "<|user|>\n", "\n<|user|>", " <|user|> ",
    "<|USER|>", "<| user |>", "<|endoftext|>", "<|endoftext|", "<|endoftext", "[gMASK]", "[gMASK",
    "gMASK]", "[MASK]", "[sMASK]", "[gMASK]<sop>", "<sop>", "<sop", "sop>", "<eop>", "<think>",
    "</think>", "<think></think>", "<think>\n\n</think>\n\n", "</think", "<thinking>", "<think >",
    "/nothink", "/nothinking", "a/nothink", "/ nothink", "<tool_call>", "</tool_call>",
    "<arg_key>k</arg_key><arg_value>v</arg_value>", "<tool_response>{}</tool_response>",
    "<|observation|>", "<|assistant|>", "<|system|>", "<|begin_of_image|><|image|><|end_of_image|>",
    "<|code_prefix|>a<|code_middle|>b<|code_suffix|>", "<|begin_of_box|>x<|end_of_box|>",
    "[gMASK]<sop><|system|>You are helpful.<|user|>Hi<|assistant|><think>",
    "[gMASK]<sop><|user|>Weather?<|assistant|></think><tool_call>get_weather<arg_key>location"
    "</arg_key><arg_value>Tokyo</arg_value></tool_call><|observation|><tool_response>"
    "{\"temperature\":22}</tool_response><|assistant|><think>",
] + SPECIALS + [s + s for s in SPECIALS] + [" " + s + " " for s in SPECIALS] + \
    [s[:-1] for s in SPECIALS] + [s[1:] for s in SPECIALS]

# Code points whose class differs between PCRE2's Unicode (14.0) and tokenizers' (16.0):
# letters and digits of Unicode 15 and 16 (Kawi, Nag Mundari, CJK Extensions H and I, Garay,
# Todhri, Kirat Rai, Tulu-Tigalari, Sunuwar, Gurung Khema, Ol Onal, Latin), marks, symbols and
# punctuation new since, a mark that changed category; then format and tag characters
# (subdivision flags), unassigned code points and Unicode 17 letters (unassigned for both).
UNICODE_NEW = [
    "\U00011B00\U0001E4E0's", "x\U0001E4E0's", "\U0001E4D0\U0001E4D1\U0001E4E0", "\U0001E4F0\U0001E4F11234",
    "\U00011F04\U00011F05 \U00011F50\U00011F51\U00011F52\U00011F53", "\U00031350\U00031351\u4e2d",
    "\U0002EBF0\U0002EBF1's", " \U00010D4A\U00010D4B're", "\U00010D40\U00010D41\U00010D42\U00010D43",
    "\U000105C0\U000105C1", "\U00016D43\U00016D44\U00016D70\U00016D71", "\U00011380\U00011381 \U00011BC0",
    "\U00016100\U00016101 \U0001E5D0\U0001E5D1", "\U0001D2C0\U0001D2C1", "\uA7CB\uA7CC\uA7CD\uA7DA",
    "\u0628\u0897", "\u0C95\u0CF3", "\u0E81\u0ECE", "\u1B4E\u1B4F!", "\u2427\u2428 \u31E4",
    "\U00011700\U0001171E", "\U00013460\U00013461", "\U0001CC00\U0001CCF0", "\U000116D0\U000116D1\U000116D2",
    "hello \U0001E4E0\U0001E4E1 world \u4e2d\u6587 \U00010D4A's 12\U00010D40",
    "\u0890\u0891", "a\u08e2b", "\U000110BD\U000110CD", "\U00013430\U00013438", "\U0001BCA0\U0001BCA3",
    "\U0001D173\U0001D17A", "\U000E0001", "a\U000E0020b", "\U000E007F's",
    "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
    "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F x",
    "a\u0378's", "\u0378\u0379", "\U0001FFFE\U0010FFFF", "\U00011DB0\U00011DB1's", "\U000323B0\U000323B1",
]
HAND += UNICODE_NEW

LONG = [
    " " * 1000, "\n" * 500, " \n" * 300, "\t" * 400, " " * 999 + "x", "x" + " " * 999,
    "a" * 2000, "ab" * 700, "1" * 1000, "1234567890" * 50, "中" * 500, "😀" * 200,
    "👨‍👩‍👧‍👦" * 30, "!" * 1000, "<|" * 300, "<|user|>" * 60, "e\u0301" * 300,
    "word " * 200, "\u3000" * 300, "  \n\n" * 200,
]


def assigned_chars(ranges):
    out = []
    for lo, hi in ranges:
        for c in range(lo, hi + 1):
            ch = chr(c)
            if unicodedata.category(ch) not in ("Cn", "Cs"):
                out.append(ch)
    return out


POOLS = {
    "ascii": [chr(c) for c in range(0x20, 0x7F)],
    "letters": list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "space": [" ", " ", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000",
              "\u2005", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b",
              "\ufeff"],
    "digits": list("0123456789") + assigned_chars([(0x660, 0x669), (0xFF10, 0xFF19), (0x966, 0x96F)])
    + list("²³¹½¼ⅫⅣ①②"),
    "latin": assigned_chars([(0xC0, 0x24F), (0x1E00, 0x1EFF)]),
    "greek_cyr": assigned_chars([(0x370, 0x3FF), (0x400, 0x4FF)]),
    "rtl": assigned_chars([(0x5D0, 0x5EA), (0x620, 0x64A)]),
    "indic_thai": assigned_chars([(0x900, 0x97F), (0xE01, 0xE5B)]),
    "cjk": assigned_chars([(0x4E00, 0x4FFF), (0x3040, 0x30FF), (0xAC00, 0xAD00), (0x3000, 0x303F),
                           (0xFF01, 0xFF5E)]),
    "marks": assigned_chars([(0x300, 0x36F), (0x483, 0x489), (0x20D0, 0x20F0), (0xFE20, 0xFE2F)]),
    "emoji": assigned_chars([(0x1F300, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x2600, 0x27BF)])
    + ["\u200d", "\ufe0f", "\U0001F3FB", "\U0001F3FD", "\U0001F1E8", "\U0001F1F3"],
    "punct": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("，。！？、；：“”‘’（）《》—…·"),
    "rare": assigned_chars([(0x10000, 0x1007F), (0x1D400, 0x1D4FF), (0xE000, 0xE0FF), (0x2C00, 0x2C5F)])
    + ["\x00", "\x01", "\x1f", "\x7f", "\U0010FFFD"],
    "frag": ["<|", "|>", "<", ">", "[", "]", "/", "user", "think", "gMASK", "sop", "'s", "'S", "'ll",
             "'LL", "'ve", "'re", "'d", "'m", "'t", "’s", "'ſ"] + SPECIALS,
}
POOL_W = {"ascii": 6, "letters": 10, "space": 6, "digits": 3, "latin": 2, "greek_cyr": 2, "rtl": 1,
          "indic_thai": 1, "cjk": 5, "marks": 2, "emoji": 3, "punct": 3, "rare": 1, "frag": 2}


def random_strings(rng, n):
    names = sorted(POOLS)
    weights = [POOL_W[k] for k in names]
    out = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 55])
        # a string leans on one or two pools, with a little of everything
        focus = rng.choices(names, weights, k=2)
        parts = []
        for _ in range(k):
            pool = rng.choice(focus) if rng.random() < 0.7 else rng.choices(names, weights)[0]
            item = rng.choice(POOLS[pool])
            if pool in ("letters", "cjk", "digits", "space") and rng.random() < 0.5:
                item = item * rng.randint(2, 4)
            parts.append(item)
        out.append("".join(parts))
    return out


def corpus_lines(rng, n):
    lines = [l for l in "".join(mt.tiny_corpus()[:1] + [mt.synth_text(random.Random(7), 300)]).split("\n") if l]
    out = []
    for _ in range(n):
        a = rng.randrange(len(lines))
        out.append("\n".join(lines[a:a + rng.choice([1, 1, 1, 2, 3])]))
    return out


def chat_prompts(rng, n):
    users = ["Hi", "What's the weather in Tokyo?", "写一首关于春天的诗", "Explain BPE.", "2+2=?", "😀?"]
    out = []
    for _ in range(n):
        s = "[gMASK]<sop>"
        if rng.random() < 0.5:
            s += "<|system|>" + rng.choice(["You are a helpful assistant.", "你是一个有帮助的助手",
                                            "# Tools\n\n<tools>\n{\"name\": \"f\"}\n</tools>"])
        for _ in range(rng.randint(1, 3)):
            s += "<|user|>" + rng.choice(users)
            if rng.random() < 0.5:
                s += "<|assistant|><think>" + rng.choice(["Let me think.", "嗯", ""]) + "</think>" + \
                     rng.choice(["Hello!", "晴天", "4"])
            else:
                s += "<|assistant|></think><tool_call>get_weather<arg_key>city</arg_key><arg_value>" + \
                     rng.choice(["Tokyo", "北京"]) + "</arg_value></tool_call><|observation|>" + \
                     "<tool_response>{\"t\": 22}</tool_response>"
        s += "<|assistant|>" + rng.choice(["<think>", "</think>", ""])
        out.append(s)
    return out


def all_strings():
    rng = random.Random(0x70C3)
    strings = HAND + LONG + random_strings(rng, 1300) + corpus_lines(rng, 300) + chat_prompts(rng, 120)
    seen, out = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# --- decode sequences ----------------------------------------------------------

def byte_ids(tok):
    bc = {}
    n = 0
    for b in range(256):
        printable = (0x21 <= b <= 0x7E) or (0xA1 <= b <= 0xAC) or b >= 0xAE
        bc[b] = chr(b) if printable else chr(256 + n)
        n += 0 if printable else 1
    return {b: tok.token_to_id(c) for b, c in bc.items()}


def decode_sequences(tok, rng):
    V = tok.get_vocab_size(with_added_tokens=True)
    bid = byte_ids(tok)
    specials = [tok.token_to_id(s) for s in SPECIALS]
    seqs = [[bid[b]] for b in range(256)]
    interesting = [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
                   0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
    for a in interesting:
        for b in interesting:
            seqs.append([bid[a], bid[b]])
    for raw in [b"\xe4\xb8\xad", b"\xe4\xb8", b"\xe4", b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf0\x9f\x98\x80",
                b"\xf0\x9f\x98", b"\xf0\x9f", b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xc0\x80", b"\xe0\x80\x80",
                b"\xe0\xa0\x80", b"\xf0\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfe\xff", b"\xef\xbb\xbf",
                b"a\xe4\xb8b", b"\xe4\xb8\xe4\xb8\xad", b"\xbf\xbf\xbf", b"\xe4 \xb8\xad"]:
        seqs.append([bid[b] for b in raw])
    # a character split around a special token
    for s in specials[:8]:
        seqs.append([bid[0xE4], s, bid[0xB8], bid[0xAD]])
        seqs.append([bid[0xE4], bid[0xB8], s, bid[0xAD]])
        seqs.append([bid[0xF0], bid[0x9F], s, bid[0x98], bid[0x80]])
    # random bytes, biased to UTF-8 structure, mixed with specials and whole tokens
    for _ in range(700):
        seq = []
        for _ in range(rng.randint(1, 24)):
            r = rng.random()
            if r < 0.35:
                ch = chr(rng.choice([rng.randint(0x80, 0x7FF), rng.randint(0x800, 0xFFFF),
                                     rng.randint(0x10000, 0x10FFFF)]))
                if 0xD800 <= ord(ch) <= 0xDFFF:
                    ch = "\ufffd"
                raw = ch.encode()
                cut = rng.randint(1, len(raw))
                seq += [bid[b] for b in (raw[:cut] if rng.random() < 0.6 else raw)]
            elif r < 0.6:
                seq.append(bid[rng.choice([rng.randint(0x80, 0xBF), rng.randint(0xC0, 0xFF), rng.randint(0, 0x7F)])])
            elif r < 0.7:
                seq.append(rng.choice(specials))
            elif r < 0.97:
                seq.append(rng.randrange(V))
            else:
                seq.append(rng.choice([V, V + 1, V + 1000, 2**31 - 1]))
        seqs.append(seq)
    return seqs


# --- writing ---------------------------------------------------------------------

def encode_lines(text, strings, name, roundtrip):
    tok = Tokenizer.from_str(text)
    plain = Tokenizer.from_str(text)
    plain.encode_special_tokens = True
    lines = []
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        ids_p = plain.encode(s, add_special_tokens=False).ids
        d = tok.decode(ids, skip_special_tokens=False)
        if roundtrip and (d != s or tok.decode(ids_p, skip_special_tokens=False) != s):
            sys.exit(f"{name}: decode(encode(s)) != s for {s!r}")
        dskip = tok.decode(ids, skip_special_tokens=True)
        lines.append("\t".join([esc(s), ids_str(ids), "=" if ids_p == ids else ids_str(ids_p),
                                "=" if d == s else esc(d), "=" if dskip == d else esc(dskip)]))
    return lines


def header(name, blob):
    return [f"# {name} tokenizer goldens from tests/golden/make_token_goldens.py",
            f"# tokenizers {tokenizers.__version__}",
            f"# fnv1a64 {fnv1a64(blob):016x} ({len(blob)} bytes)"]


def write_lines(fname, lines):
    with open(os.path.join(OUT, fname), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def make(name, path):
    blob = open(path, "rb").read()
    tok = Tokenizer.from_str(blob.decode())
    head = header(name, blob)
    os.makedirs(OUT, exist_ok=True)

    strings = all_strings()
    write_lines(f"{name}.encode.tsv", head + encode_lines(blob.decode(), strings, name, True))

    rng = random.Random(0xDEC0DE)
    V = tok.get_vocab_size(with_added_tokens=True)
    special_ids = {tok.token_to_id(s) for s in SPECIALS}
    lines = []
    for seq in decode_sequences(tok, rng):
        d = tok.decode(seq, skip_special_tokens=False)
        ds = tok.decode(seq, skip_special_tokens=True)
        # the claim in tokenizer.h: token bytes, then bytes.decode(errors="replace")
        for skip, want in ((False, d), (True, ds)):
            raw = b"".join(tok_bytes(tok, i) for i in seq if i < V and not (skip and i in special_ids))
            if raw.decode("utf-8", errors="replace") != want:
                sys.exit(f"{name}: ByteLevel decode differs from bytes.decode(errors='replace') for {seq}")
        lines.append("\t".join([ids_str(seq), esc(d), "=" if ds == d else esc(ds)]))
    write_lines(f"{name}.decode.tsv", head + lines)
    print(f"{name}: {len(strings)} strings, {len(lines)} decode sequences -> {OUT}")


_CB = None


def tok_bytes(tok, i):
    global _CB
    if _CB is None:
        _CB = {}
        n = 0
        for b in range(256):
            printable = (0x21 <= b <= 0x7E) or (0xA1 <= b <= 0xAC) or b >= 0xAE
            _CB[chr(b) if printable else chr(256 + n)] = b
            n += 0 if printable else 1
    s = tok.id_to_token(i)
    if all(c in _CB for c in s):
        return bytes(_CB[c] for c in s)
    return s.encode()


# --- variants of the tiny tokenizer --------------------------------------------------

def bl(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
            "invert": invert}


def seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


PUNCT_WS = r"[\s\p{P}]"
VARIANTS = {
    "llama3": {"pre_tokenizer": seq(split(mt.GLM_PATTERN, "Removed", invert=True), bl()),
               "model": {"ignore_merges": True}},
    "gpt2": {"pre_tokenizer": bl(regex=True)},
    "roberta": {"pre_tokenizer": bl(prefix=True, regex=True)},
    "split-removed": {"pre_tokenizer": seq(split(r"\s+", "Removed"), bl())},
    "merged-prev": {"pre_tokenizer": seq(split(PUNCT_WS, "MergedWithPrevious"), bl())},
    "merged-next": {"pre_tokenizer": seq(split(PUNCT_WS, "MergedWithNext"), bl())},
    "contiguous": {"pre_tokenizer": seq(split(r"\p{P}|\s", "Contiguous"), split(r"\p{N}", "Isolated"), bl())},
    "string-split": {"pre_tokenizer": seq(split(" ", "Isolated", literal=True),
                                          split("<|", "MergedWithNext", literal=True), bl(regex=True))},
    "added": None,  # built in added_overlay
    "unk": {"remove_vocab": None, "model": {"unk_token": "<|endoftext|>", "fuse_unk": True}},
    "dropped": {"remove_vocab": None},
}

EXTRA_ADDED = [  # content, special, lstrip, rstrip, single_word, normalized
    ("<mask>", False, True, False, False, False),
    ("[SEP]", True, False, True, False, False),
    ("hello", False, False, False, True, True),
    ("ing", False, False, False, False, True),
    (" xyz", False, False, False, False, False),
    ("<|user", False, False, False, False, False),
    ("<|both|>", True, True, True, False, False),
    ("世界", False, False, False, True, False),
    ("\n\n", False, False, False, False, True),
]

VARIANT_EXTRA = ["<mask> <mask>  x", "a  <mask>b", "[SEP]  x", "[SEP]\n\ny", "hello", "hello world", "ahello",
                 "hellob", "hello_", "é hello!", "1hello", "running sing", " xyz", "a xyz", "xyzxyz",
                 "<|user", "<|user|>", "<|users", "  <|both|>  z", "x<|both|>y", "世界", "你好世界", "世界 x",
                 "a\n\n\nb", "\x01\x02\x01x\x03", "a\x01b", "\x01", "\x01\x01", "<mask><mask>",
                 "hello hello", " [SEP] ", "\t<mask>\t", "\u3000<mask>"]


def removed_bytes(j):
    """Byte tokens no merge uses (control bytes the training text lacks)."""
    used = set()
    for m in j["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        used.update([a, b])
    out = []
    for c in ["\u0101", "\u0102", "\u0103"]:  # the byte-level characters of bytes 0x01..0x03
        assert c in j["model"]["vocab"] and c not in used, c
        out.append(c)
    return out


def apply_overlay(j, ov):
    j = json.loads(json.dumps(j))
    for k, v in ov.items():
        if k == "model":
            j["model"].update(v)
        elif k == "remove_vocab":
            for t in v:
                del j["model"]["vocab"][t]
        else:
            j[k] = v
    return j


def added_overlay(j):
    """Extra added tokens, with the ids tokenizers gives them."""
    toks = list(j["added_tokens"])
    for c, sp, ls, rs, sw, nm in EXTRA_ADDED:
        toks.append({"id": 0, "content": c, "single_word": sw, "lstrip": ls, "rstrip": rs, "normalized": nm,
                     "special": sp})
    jj = dict(j)
    jj["added_tokens"] = toks
    t = Tokenizer.from_str(json.dumps(jj))
    for a in toks:
        a["id"] = t.token_to_id(a["content"])
    return {"added_tokens": toks}


def make_variants(path):
    blob = open(path, "rb").read()
    base = json.loads(blob)
    rng = random.Random(0xA11)
    strings = HAND + random_strings(rng, 60) + chat_prompts(rng, 10) + VARIANT_EXTRA
    strings = list(dict.fromkeys(strings))
    for name, ov in VARIANTS.items():
        if ov is None:
            ov = added_overlay(base)
        if "remove_vocab" in ov:
            ov = dict(ov, remove_vocab=removed_bytes(base))
        text = json.dumps(apply_overlay(base, ov), ensure_ascii=False)
        head = header(f"tiny-{name}", blob) + ["# overlay " + json.dumps(ov, ensure_ascii=False)]
        write_lines(f"tiny-{name}.encode.tsv", head + encode_lines(text, strings, name, False))
    print(f"tiny variants: {len(VARIANTS)} x {len(strings)} strings")


def main():
    make("tiny", os.path.join(ROOT, "tests", "models", "tiny", "tokenizer.json"))
    make_variants(os.path.join(ROOT, "tests", "models", "tiny", "tokenizer.json"))
    large = os.path.join(ROOT, "models", "tokenizer-large", "tokenizer.json")
    if os.path.exists(large):
        make("large", large)
    else:
        print(f"{large} not found: large goldens not written (make_tokenizers.py --large)")


if __name__ == "__main__":
    main()
