"""generation_config.json's sampling values as request defaults (vLLM's
--generation-config), on the tiny model (standard library only).

Usage: test_generation_config.py BASE_AUTO BASE_VLLM
  BASE_AUTO: a server whose checkpoint's generation_config.json says
             temperature 0, top_k 1 and max_new_tokens 7 (--generation-config
             auto, the default);
  BASE_VLLM: the same checkpoint with --generation-config vllm.
tests/cli/generation_config.sh starts both. The tiny model writes random text,
so every check compares token ids: a seeded request is reproducible on both
servers, greedy decoding equals temperature 0, and 24 tokens drawn at
temperature 1 from 4096 differ from the greedy ones.
Prints one line per test and "N passed, N failed, N skipped" (harness.py).
"""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AUTO, VLLM = sys.argv[1], sys.argv[2]
PROMPT = "The weather today"
N = 24


def post(base, path, body):
    body = dict(body, model="tiny")
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def ids(base, **sampling):
    """The generated token ids of a completion (logprobs carry the tokens)."""
    r = post(base, "/v1/completions", dict(prompt=PROMPT, max_tokens=N, ignore_eos=True, logprobs=0, **sampling))
    c = r["choices"][0]
    assert r["usage"]["completion_tokens"] == N, r["usage"]
    return c["text"], c["logprobs"]["tokens"]


def greedy():
    return ids(AUTO, temperature=0)


def test_omitted_fields_take_the_models_defaults():
    # temperature 0 from generation_config.json: a seeded request without sampling
    # fields decodes greedily, whatever the seed
    g = greedy()
    assert ids(AUTO, seed=7) == g
    assert ids(AUTO, seed=8) == g
    assert ids(AUTO) == g
    # chat requests too
    msgs = [{"role": "user", "content": "Hello"}]
    a = post(AUTO, "/v1/chat/completions", dict(messages=msgs, max_tokens=N, ignore_eos=True, seed=3))
    b = post(AUTO, "/v1/chat/completions", dict(messages=msgs, max_tokens=N, ignore_eos=True, temperature=0))
    assert a["choices"][0]["message"] == b["choices"][0]["message"], (a, b)


def test_request_values_win():
    # temperature 1 and top_k off in the request: sampling, as the vllm server does by default
    g = greedy()
    drawn = ids(AUTO, temperature=1.0, top_k=-1, seed=7)
    assert drawn != g, drawn
    assert drawn == ids(VLLM, seed=7)
    assert drawn == ids(VLLM, temperature=1.0, top_p=1.0, top_k=-1, seed=7)


def test_each_field_separately():
    # temperature 1 alone: top_k 1 still comes from the file, so the answer stays greedy
    assert ids(AUTO, temperature=1.0, seed=7) == greedy()
    # top_k off alone: temperature 0 still comes from the file
    assert ids(AUTO, top_k=-1, seed=7) == greedy()


def test_max_new_tokens_is_the_default_limit():
    # max_new_tokens 7 from the file: the limit of a request that sets none (completions'
    # own default of 16 gives way to it), and a request's max_tokens wins
    for path, body in (("/v1/completions", dict(prompt=PROMPT)),
                       ("/v1/chat/completions", dict(messages=[{"role": "user", "content": "Hi"}]))):
        r = post(AUTO, path, dict(body, ignore_eos=True))
        assert r["usage"]["completion_tokens"] == 7 and r["choices"][0]["finish_reason"] == "length", r
        r = post(AUTO, path, dict(body, ignore_eos=True, max_tokens=9))
        assert r["usage"]["completion_tokens"] == 9, r["usage"]
    r = post(VLLM, "/v1/completions", dict(prompt=PROMPT, ignore_eos=True))
    assert r["usage"]["completion_tokens"] == 16, r["usage"]


def test_vllm_ignores_the_file():
    g = greedy()
    a, b = ids(VLLM, seed=7), ids(VLLM, seed=8)
    assert a != g and b != g and a != b, (a, b)
    assert ids(VLLM, temperature=0) == g  # the same model


if __name__ == "__main__":
    harness.run(globals(), "test_")
