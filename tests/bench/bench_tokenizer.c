/*
 * bench_tokenizer.c - single-thread encode throughput of the tokenizer
 * (engine/text/tokenizer.c) on a deterministic ~10 MB mixed text: English prose,
 * Chinese, code, JSON, numbers, other scripts and emoji, in lines. Measures
 * encoding the whole text as one string and line by line (MB/s, tokens/s),
 * decode, and the streaming detokenizer. Prints the id count and an FNV-1a
 * hash of the ids so that tests/bench/bench_tokenizer.py (Hugging Face
 * `tokenizers` on the same text, written with --text-out) can be compared.
 * It asserts nothing.
 *
 *   build/glm-bench-tok [--tokenizer FILE] [--mb 10] [--reps 3] [--text-out FILE] [--text FILE]
 *
 * --text encodes that file instead (e.g. the generated text with one letter of
 * Unicode 16 added, which sends every Split regex down its slower exact path:
 * engine/text/uniclass.h).
 *
 * The tokenizer defaults to models/tokenizer-large/tokenizer.json (made by
 * tests/golden/make_tokenizers.py --large) when it exists, else the tiny
 * model's tests/models/tiny/tokenizer.json.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/util.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((rng >> 33) % n);
}

#define PICK(a) (a[rnd(sizeof a / sizeof *a)])

static const char *EN[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "by",
    "this", "are", "from", "or", "have", "not", "but", "which", "one", "all", "were", "when", "there",
    "model", "token", "server", "request", "stream", "cache", "batch", "layer", "weight", "attention",
    "function", "return", "error", "memory", "thread", "queue", "prompt", "sample", "expert", "router",
    "government", "history", "research", "university", "development", "information", "important",
    "understanding", "performance", "international", "environment", "significant", "particularly",
    "it's", "don't", "we're", "they'll", "I've", "she'd", "Tokyo", "Berlin", "Monday", "January"};
static const char *ZH[] = {
    "我们", "你们", "他们", "这个", "那个", "什么", "为什么", "怎么", "因为", "所以", "但是", "如果",
    "已经", "可以", "没有", "知道", "时候", "问题", "工作", "学习", "生活", "世界", "国家", "城市",
    "公司", "技术", "模型", "数据", "服务", "请求", "回答", "计算", "内存", "线程", "文件", "函数",
    "结果", "错误", "用户", "助手", "系统", "工具", "思考", "推理", "速度", "质量", "测试", "代码",
    "人工智能", "机器学习", "自然语言", "北京", "上海", "发展", "经济", "社会", "文化", "历史"};
static const char *CODE[] = {
    "    for (size_t i = 0; i < n; i++) {\n", "        sum += x[i] * w[i];\n", "    }\n",
    "def forward(self, x):\n", "    return self.proj(torch.relu(x))\n", "if err != nil {\n\treturn err\n}\n",
    "const std::vector<int> v = {1, 2, 3};\n", "SELECT id, name FROM users WHERE age > 30;\n",
    "#include <stdio.h>\n", "    let mut map = HashMap::new();\n", "        }\n    }\n}\n",
    "x = np.zeros((batch, seq_len, hidden), dtype=np.float32)\n", "// TODO: handle the error case\n"};
static const char *OTHER[] = {"Привет, как дела?", "Größe und Übung", "こんにちは、世界。", "안녕하세요",
                              "Καλημέρα κόσμε", "مرحبا بالعالم", "नमस्ते दुनिया", "¿Qué tal? ¡Bien!",
                              "😀", "👍🏽", "🚀🎉", "👨‍👩‍👧‍👦", "❤️", "✅"};

/* Deterministic mixed text of about `bytes` bytes, in lines. */
static glm_buf make_text(size_t bytes)
{
    glm_buf b = {0};
    char tmp[256];
    while (b.len < bytes) {
        uint32_t kind = rnd(100);
        if (kind < 45) { /* English sentences */
            int ns = 1 + (int)rnd(4);
            for (int s = 0; s < ns; s++) {
                int nw = 5 + (int)rnd(20);
                for (int w = 0; w < nw; w++) {
                    const char *word = PICK(EN);
                    if (w == 0) {
                        snprintf(tmp, sizeof tmp, "%c%s", word[0] >= 'a' && word[0] <= 'z' ? word[0] - 32 : word[0],
                                 word + 1);
                        glm_buf_puts(&b, tmp);
                    } else {
                        glm_buf_puts(&b, " ");
                        glm_buf_puts(&b, word);
                    }
                    if (rnd(12) == 0)
                        glm_buf_puts(&b, ",");
                    if (rnd(40) == 0) {
                        snprintf(tmp, sizeof tmp, " %u", rnd(100000));
                        glm_buf_puts(&b, tmp);
                    }
                }
                glm_buf_puts(&b, rnd(5) ? ". " : "? ");
            }
        } else if (kind < 70) { /* Chinese */
            int ns = 1 + (int)rnd(4);
            for (int s = 0; s < ns; s++) {
                int nw = 3 + (int)rnd(12);
                for (int w = 0; w < nw; w++)
                    glm_buf_puts(&b, PICK(ZH));
                glm_buf_puts(&b, rnd(3) ? "，" : "。");
            }
        } else if (kind < 85) { /* code */
            int nl = 1 + (int)rnd(6);
            for (int l = 0; l < nl; l++)
                glm_buf_puts(&b, PICK(CODE));
        } else if (kind < 93) { /* JSON */
            snprintf(tmp, sizeof tmp, "{\"id\": %u, \"name\": \"%s\", \"score\": %u.%02u, \"tags\": [\"%s\", \"%s\"]}",
                     rnd(1000000), PICK(EN), rnd(100), rnd(100), PICK(EN), PICK(ZH));
            glm_buf_puts(&b, tmp);
        } else { /* other scripts and emoji */
            int n = 1 + (int)rnd(5);
            for (int i = 0; i < n; i++) {
                glm_buf_puts(&b, PICK(OTHER));
                glm_buf_puts(&b, " ");
            }
        }
        glm_buf_puts(&b, rnd(4) ? "\n" : "\n\n");
    }
    return b;
}

/* FNV-1a-64 over the ids' little-endian bytes (as bench_tokenizer.py computes it). */
static uint64_t fnv_ids(const int32_t *ids, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4];
        for (int k = 0; k < 4; k++)
            b[k] = (unsigned char)((uint32_t)ids[i] >> (8 * k));
        h = glm_fnv1a64(h, b, 4);
    }
    return h;
}

int main(int argc, char **argv)
{
    const char *path = "models/tokenizer-large/tokenizer.json", *text_out = NULL, *text_in = NULL;
    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    else
        path = "tests/models/tiny/tokenizer.json";
    double mb = 10;
    int reps = 3;
    static const struct option opts[] = {{"tokenizer", 1, 0, 't'}, {"mb", 1, 0, 'm'}, {"reps", 1, 0, 'r'},
                                         {"text-out", 1, 0, 'o'}, {"text", 1, 0, 'i'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't')
            path = optarg;
        else if (c == 'm')
            mb = atof(optarg);
        else if (c == 'r')
            reps = atoi(optarg);
        else if (c == 'o')
            text_out = optarg;
        else if (c == 'i')
            text_in = optarg;
        else {
            fprintf(stderr, "usage: %s [--tokenizer F] [--mb N] [--reps N] [--text-out F] [--text F]\n", argv[0]);
            return 2;
        }
    }
    char err[GLM_ERRLEN];
    glm_tok *t;
    double t0 = glm_now();
    if (glm_tok_load(path, &t, err, sizeof err) != GLM_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t_load = glm_now() - t0;
    glm_buf text = {0};
    if (text_in) {
        FILE *f = fopen(text_in, "rb");
        if (!f || glm_buf_read(&text, f, (size_t)1 << 31) != GLM_OK) {
            fprintf(stderr, "%s: cannot read\n", text_in);
            return 1;
        }
        fclose(f);
    } else {
        text = make_text((size_t)(mb * 1e6));
    }
    if (text_out) {
        FILE *f = fopen(text_out, "wb");
        if (!f || fwrite(text.p, 1, text.len, f) != text.len) {
            fprintf(stderr, "%s: cannot write\n", text_out);
            return 1;
        }
        fclose(f);
    }
    printf("tokenizer %s: %d ids, loaded in %.3f s\n", path, glm_tok_vocab_size(t), t_load);
    printf("text: %.2f MB\n", text.len / 1e6);

    /* whole text as one string; the first run fills the word cache */
    int32_t *ids = NULL;
    size_t n = 0;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        free(ids);
        t0 = glm_now();
        if (glm_tok_encode(t, text.p, text.len, 1, &ids, &n, err, sizeof err) != GLM_OK) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double dt = glm_now() - t0;
        printf("  encode whole   run %d: %.3f s\n", r, dt);
        best = GLM_MIN(best, dt);
    }
    printf("encode whole text:  %8.2f MB/s  %10.0f tokens/s  (%zu tokens, %.2f bytes/token, ids fnv %016llx)\n",
           text.len / 1e6 / best, n / best, n, (double)text.len / n, (unsigned long long)fnv_ids(ids, n, GLM_FNV64_INIT));

    /* line by line (each line with its newline) */
    best = 1e30;
    size_t nl_tokens = 0, lines = 0;
    uint64_t h = 0;
    for (int r = 0; r < reps; r++) {
        nl_tokens = lines = 0;
        h = GLM_FNV64_INIT;
        t0 = glm_now();
        for (size_t i = 0; i < text.len;) {
            const char *nl = memchr(text.p + i, '\n', text.len - i);
            size_t e = nl ? (size_t)(nl - text.p) + 1 : text.len;
            int32_t *li;
            size_t ln;
            if (glm_tok_encode(t, text.p + i, e - i, 1, &li, &ln, err, sizeof err) != GLM_OK) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            h = fnv_ids(li, ln, h);
            nl_tokens += ln;
            lines++;
            free(li);
            i = e;
        }
        best = GLM_MIN(best, glm_now() - t0);
    }
    printf("encode line by line: %7.2f MB/s  %10.0f tokens/s  (%zu lines, %zu tokens, ids fnv %016llx)\n",
           text.len / 1e6 / best, nl_tokens / best, lines, nl_tokens, (unsigned long long)h);

    /* decode and the streaming detokenizer */
    size_t dn;
    t0 = glm_now();
    char *d = glm_tok_decode(t, ids, n, 0, &dn);
    double dt = glm_now() - t0;
    printf("decode:             %8.2f MB/s  %10.0f tokens/s  (round trip %s)\n", dn / 1e6 / dt, n / dt,
           dn == text.len && memcmp(d, text.p, dn) == 0 ? "exact" : "DIFFERS");
    free(d);
    glm_detok *s = glm_detok_new(t, 0);
    size_t total = 0, pn;
    t0 = glm_now();
    for (size_t i = 0; i < n; i++) {
        glm_detok_push(s, ids[i], &pn);
        total += pn;
    }
    glm_detok_flush(s, &pn);
    total += pn;
    dt = glm_now() - t0;
    printf("stream detokenize:  %8.2f MB/s  %10.0f tokens/s\n", total / 1e6 / dt, n / dt);
    glm_detok_free(s);
    free(ids);
    free(text.p);
    glm_tok_free(t);
    return 0;
}
