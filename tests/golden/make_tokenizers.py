#!/usr/bin/env python3
"""Trains the byte-level BPE tokenizers the tests use, with Hugging Face
`tokenizers`, laid out like GLM-5's tokenizer.json.

GLM-5's tokenizer: a BPE model over GPT-2's byte-level alphabet; pre-tokenizer
Sequence[Split(the cl100k/llama3 regex GLM-4 ships in tokenization_chatglm.py,
behavior Isolated), ByteLevel(add_prefix_space false, use_regex false)];
decoder ByteLevel; no normalizer; 36 special added tokens. Its model vocabulary
has 154880 rows and `<|endoftext|>` = 154820, i.e. 60 below the top; the other
specials follow in the order of SPECIALS (`<|user|>` = 154827, `<think>` =
154841, ...). The tokenizers here keep those offsets from the top of their own
vocabulary:

  tiny   4096 ids  (`<|endoftext|>` 4036, `<|user|>` 4043, `<|observation|>`
         4045), trained on text this script generates itself (English, Chinese,
         code, JSON), so it is the same on every machine. Written to
         tests/models/tiny/{tokenizer.json,tokenizer_config.json} (committed).
  large  154880 ids (GLM-5's own special ids), trained on every .py/.txt/.md
         file under the reference venv's site-packages (sorted), with
         ignore_merges true (Llama-3 style) so that path is tested too.
         Written to models/tokenizer-large/ on demand (--large); not committed.

Layout: the trainer learns V-36 tokens (256 byte symbols + merges); ids below
V-60 keep their trained id, the 24 trained ids from V-60 up move to V-24..V-1,
and the 36 specials take V-60..V-25. The specials are also entries of the model
vocabulary (as `<|endoftext|>` is in GPT-2's), which is what makes
`tokenizers` give them exactly these ids when it loads the file.

    make golden-venv && .venv-ref/bin/python tests/golden/make_tokenizers.py [--large]
        [--tiny-out DIR] [--large-out DIR] [--corpus DIR] [--large-vocab N]
"""
import argparse
import hashlib
import json
import os
import random
import sys
import sysconfig

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The Split regex of GLM-4/4.5/5 (tokenization_chatglm.py `pat_str`; the same as
# Llama 3's and cl100k's up to possessive quantifiers).
GLM_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# GLM-5's added tokens, in id order from <|endoftext|> (= vocab - 60).
SPECIALS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_transcription|>",
    "<|end_of_transcription|>", "<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>",
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
    "</tool_response>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
    "/nothink", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>",
]
TOP_OFFSET = 60          # GLM-5: 154880 - 154820
GLM5_IDS = {"<|endoftext|>": 154820, "[gMASK]": 154822, "<sop>": 154824, "<|system|>": 154826,
            "<|user|>": 154827, "<|assistant|>": 154828, "<|observation|>": 154829,
            "<think>": 154841, "</think>": 154842}

# --- training text for the tiny tokenizer (written here: same on every machine) ---

ENGLISH = """\
The server reads a model directory, maps the weights into memory and answers requests over HTTP.
Each request carries a list of messages; the chat template turns them into one prompt, and the
tokenizer turns the prompt into token ids. The scheduler batches the prompts of many requests,
the engine runs the forward pass, and the sampler picks the next token from the logits.
When a token completes a character, the detokenizer hands the text to the client as a stream.
It's a small program, but it doesn't cut corners: we've measured every kernel, they'll tell you.
Weather report for Tuesday: light rain in the morning, clearing by noon, with highs of 22 degrees.
A quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly.
Please summarise the following article in three sentences and list the people it mentions.
I'm not sure what you mean. Could you give me an example of the input and the expected output?
The function returns zero on success and a negative value when the file cannot be opened.
In 1969, Apollo 11 landed on the Moon; 600 million people watched the broadcast on July 20.
Temperatures are given in Celsius (C) and Fahrenheit (F): 100 C = 212 F, and 0 C = 32 F.
Version 2.4.1 fixes a crash when the cache is full and adds support for 128k-token contexts.
"""

CHINESE = """\
服务器读取模型目录，把权重映射到内存中，然后通过HTTP回答请求。
每个请求都带有一组消息；聊天模板把它们变成一个提示，分词器再把提示变成词元编号。
调度器把多个请求的提示放进同一批，引擎执行前向计算，采样器从概率中选出下一个词元。
今天天气很好，我们一起去公园散步吧。明天可能会下雨，记得带伞。
人工智能正在改变我们的生活方式，从医疗到教育，从交通到金融。
请用三句话总结下面这篇文章，并列出文中提到的人物。
我不太明白你的意思，能举一个输入和期望输出的例子吗？
北京是中国的首都，上海是最大的城市，深圳以科技产业闻名。
这个函数成功时返回零，文件无法打开时返回负数。
春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。
学而时习之，不亦说乎？有朋自远方来，不亦乐乎？
"""

OTHER_LANGS = """\
Der Server liest ein Modellverzeichnis und beantwortet Anfragen über HTTP. Größe, Übung, Straße.
Le serveur lit un répertoire de modèle et répond aux requêtes. Ça marche déjà très bien, né à Noël.
El servidor lee un directorio de modelos y responde a las solicitudes. ¿Qué tal? ¡Muy bien, señor!
Сервер читает каталог модели и отвечает на запросы по HTTP. Привет, как дела?
Ο διακομιστής διαβάζει τον κατάλογο του μοντέλου. Καλημέρα κόσμε.
サーバーはモデルのディレクトリを読み込み、HTTPでリクエストに応答します。こんにちは、世界。
서버는 모델 디렉터리를 읽고 HTTP 요청에 응답합니다. 안녕하세요, 세계.
الخادم يقرأ دليل النموذج ويجيب على الطلبات. مرحبا بالعالم.
सर्वर मॉडल निर्देशिका पढ़ता है और अनुरोधों का उत्तर देता है। नमस्ते दुनिया।
เซิร์ฟเวอร์อ่านไดเรกทอรีของโมเดล สวัสดีชาวโลก
Emoji: 😀 😃 😄 👍 🎉 🚀 ❤️ 👨‍👩‍👧‍👦 🏳️‍🌈 🇨🇳 🇺🇸 👋🏽 ✅ ⚠️
"""

CODE = '''\
def fibonacci(n: int) -> int:
    """Returns the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Cache:
    def __init__(self, capacity=1024):
        self.capacity = capacity
        self.items = {}

    def get(self, key, default=None):
        return self.items.get(key, default)


if __name__ == "__main__":
    import sys
    print(fibonacci(int(sys.argv[1])))

static int parse_header(const char *buf, size_t len, struct header *out)
{
    if (len < 8)
        return -1;
    uint64_t n = 0;
    memcpy(&n, buf, sizeof n);
    for (size_t i = 0; i < n && i < len; i++) {
        out->size += (size_t)buf[i];
    }
    return 0;
}

#include <stdio.h>
int main(int argc, char **argv) { printf("hello, world\\n"); return 0; }

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn.apply(this, args), ms);
  };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let v: Vec<u32> = (0..10).map(|x| x * x).collect();
    println!("{:?}", v);
    Ok(())
}

SELECT id, name, COUNT(*) AS n FROM users WHERE created_at > '2024-01-01' GROUP BY id ORDER BY n DESC;
$ curl -s http://localhost:8080/v1/chat/completions -H "Content-Type: application/json" -d @req.json
'''

WORDS_EN = ("the of and to in is that for it as with was on be by at this are from or have an "
            "not but which one all were when there can more if will out about into time up "
            "model token server request response stream cache batch layer weight tensor value "
            "function return error file buffer string number list array object key index count "
            "user assistant system tool call result message content reason think answer question "
            "data memory thread queue lock block page sequence prompt sample logit expert router "
            "attention head rope norm matrix vector kernel device host launch compute parse write "
            "read open close start stop begin end first last next previous small large fast slow "
            "good new old long short high low early late right left true false null none empty").split()
WORDS_ZH = ("我们 你们 他们 这个 那个 什么 为什么 怎么 因为 所以 但是 如果 已经 可以 没有 知道 "
            "时候 问题 工作 学习 生活 世界 国家 城市 公司 技术 模型 数据 服务 请求 回答 计算 "
            "内存 线程 文件 函数 结果 错误 用户 助手 系统 工具 思考 推理 速度 质量 测试 代码").split()
IDENTS = ("self config tokenizer vocab merges ids text bytes offset length size count buf ptr "
          "err errlen out_len n_ids max_len capacity items result value key data len idx pos").split()


def synth_text(rng, n_lines):
    """Deterministic filler in the shape of chat text, code and JSON."""
    out = []
    for i in range(n_lines):
        kind = rng.randrange(6)
        if kind == 0:
            n = rng.randint(6, 20)
            s = " ".join(rng.choice(WORDS_EN) for _ in range(n))
            out.append(s[0].upper() + s[1:] + rng.choice([".", "?", "!", ",", ":", "."]))
        elif kind == 1:
            n = rng.randint(4, 16)
            out.append("".join(rng.choice(WORDS_ZH) for _ in range(n)) + rng.choice(["。", "？", "！", "，"]))
        elif kind == 2:
            obj = {rng.choice(IDENTS): rng.choice([rng.randint(-999, 99999), rng.random(),
                                                   rng.choice(WORDS_EN), True, None,
                                                   [rng.randint(0, 99) for _ in range(3)]])
                   for _ in range(rng.randint(1, 5))}
            out.append(json.dumps(obj, ensure_ascii=rng.random() < 0.5))
        elif kind == 3:
            a, b = rng.choice(IDENTS), rng.choice(IDENTS)
            ind = " " * (4 * rng.randint(0, 3))
            out.append(rng.choice([f"{ind}{a} = {b}[{rng.randint(0, 64)}]",
                                   f"{ind}if ({a} < {b}) {{ return {rng.randint(0, 9)}; }}",
                                   f"{ind}for (size_t i = 0; i < {a}; i++) {b}[i] = 0;",
                                   f"{ind}def {a}_{b}({a}, {b}=None):",
                                   f"{ind}return self.{a}.{b}({rng.randint(0, 1000)})"]))
        elif kind == 4:
            out.append(f"{rng.randint(1, 31):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2030)} "
                       f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} "
                       f"${rng.randint(0, 10**6):,}.{rng.randint(0, 99):02d} {rng.random() * 100:.3f}%")
        else:
            n = rng.randint(3, 12)
            out.append(" ".join(rng.choice(WORDS_EN + WORDS_ZH) for _ in range(n)))
    return "\n".join(out) + "\n"


def tiny_corpus():
    rng = random.Random(20250301)
    fixed = ENGLISH + CHINESE + OTHER_LANGS + CODE
    chunks = [fixed] * 8 + [synth_text(rng, 400) for _ in range(40)]
    return chunks


def large_corpus(root):
    paths = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".py", ".txt", ".md")):
                paths.append(os.path.join(d, f))
    paths.sort()

    def it():
        for p in paths:
            with open(p, "rb") as fh:
                yield fh.read().decode("utf-8", errors="replace")
    return it, len(paths)


# --- building the GLM-style tokenizer.json ------------------------------------

def glm_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def train(corpus_iter, vocab_total):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = glm_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_total - len(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(corpus_iter, trainer=trainer)
    return tok


def glm_layout(tok, vocab_total, ignore_merges):
    """Re-lays the trained tokenizer out as described at the top of this file and
    returns the tokenizer.json text."""
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    n_trained = vocab_total - len(SPECIALS)
    if len(vocab) != n_trained or sorted(vocab.values()) != list(range(n_trained)):
        sys.exit(f"trainer produced {len(vocab)} tokens, wanted {n_trained}: corpus too small?")
    first = vocab_total - TOP_OFFSET
    new_vocab = {}
    for t, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        new_vocab[t] = i if i < first else i + len(SPECIALS)
    for k, s in enumerate(SPECIALS):
        assert s not in new_vocab, s
        new_vocab[s] = first + k
    new_vocab = dict(sorted(new_vocab.items(), key=lambda kv: kv[1]))
    assert sorted(new_vocab.values()) == list(range(vocab_total))
    j["model"]["vocab"] = new_vocab
    j["model"]["ignore_merges"] = ignore_merges
    j["model"]["dropout"] = None
    j["added_tokens"] = [{"id": first + k, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for k, s in enumerate(SPECIALS)]
    j["normalizer"] = None
    j["post_processor"] = None
    j["truncation"] = None
    j["padding"] = None
    text = json.dumps(j, ensure_ascii=False, indent=2) + "\n"
    check(text, vocab_total)
    return text


def check(text, vocab_total):
    t = Tokenizer.from_str(text)
    first = vocab_total - TOP_OFFSET
    for k, s in enumerate(SPECIALS):
        assert t.token_to_id(s) == first + k, (s, t.token_to_id(s))
        assert t.encode(s, add_special_tokens=False).ids == [first + k]
    if vocab_total == 154880:
        for s, i in GLM5_IDS.items():
            assert t.token_to_id(s) == i
    assert t.get_vocab_size(with_added_tokens=True) == vocab_total
    sample = "Hello, 世界! <|user|>hi</think>\n\n  x = 1234567;"
    assert t.decode(t.encode(sample).ids, skip_special_tokens=False) == sample


def tokenizer_config(vocab_total, max_len):
    first = vocab_total - TOP_OFFSET
    return {
        "added_tokens_decoder": {
            str(first + k): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": True}
            for k, s in enumerate(SPECIALS)
        },
        "clean_up_tokenization_spaces": False,
        "do_lower_case": False,
        "eos_token": "<|endoftext|>",
        "extra_special_tokens": SPECIALS[:18],  # as GLM-5's tokenizer_config.json lists them
        "model_max_length": max_len,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "remove_space": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def write(out_dir, text, cfg):
    os.makedirs(out_dir, exist_ok=True)
    p = os.path.join(out_dir, "tokenizer.json")
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    if cfg is not None:
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n")
    print(f"{p}: {len(text.encode())} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny-out", default=os.path.join(ROOT, "tests", "models", "tiny"))
    ap.add_argument("--large", action="store_true", help="also train the large tokenizer")
    ap.add_argument("--large-out", default=os.path.join(ROOT, "models", "tokenizer-large"))
    ap.add_argument("--large-vocab", type=int, default=154880)
    ap.add_argument("--corpus", default=sysconfig.get_paths()["purelib"],
                    help="a directory of text to train on (default: this Python's site-packages)")
    a = ap.parse_args()

    tiny = train(tiny_corpus(), 4096)
    write(a.tiny_out, glm_layout(tiny, 4096, ignore_merges=False), tokenizer_config(4096, 4096))

    if a.large:
        it, n = large_corpus(a.corpus)
        print(f"large: training on {n} files under {a.corpus}", flush=True)
        large = train(it(), a.large_vocab)
        write(a.large_out, glm_layout(large, a.large_vocab, ignore_merges=True),
              tokenizer_config(a.large_vocab, 202752))


if __name__ == "__main__":
    main()
