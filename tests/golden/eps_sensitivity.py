#!/usr/bin/env python3
"""How far wrong norm epsilons move the hidden states and logits of models/tiny,
measured against the committed f32 goldens (tests/golden/tiny/f32.hidden.f32,
f32.prompt.f32), to choose parity tolerances that catch them.

Each mutation sets one kind of norm's epsilon, in every layer, to a wrong value
(the bugs the logits-only parity test let through), reruns transformers on the
40-token prompt and prints, per hidden-state entry and for the logits,
max|d| / max|golden| over the whole entry ([40, hidden] or [40, vocab]) and
the worst per-position row (max over positions of max|d_row| / max|golden_row|).
The "float64" row is the same model in float64: the size of float32 rounding.

With plain random weights the norms' inputs had mean squares of 0.3 to 5, so an
epsilon off by 9e-6 moved the hidden states by only 3e-6 to 2e-5 relative
(float32 rounding: up to 1.3e-6). glm-mkmodel therefore scales tiny's residual
stream and the q_a / kv_a latents by 2^-4 (tests/models/mkmodel.c, "Residual
scale"): mean squares 1e-3 to 3e-2. On that checkpoint (transformers 5.24,
torch 2.15, x86-64 CPU), whole-entry max|d|/max|golden|:

  mutation                              h1       h2       h3       h4   logits
  q_a_layernorm eps 1e-6 -> 1e-5     9.2e-4   6.1e-2   1.6e-1   2.3e-1   2.1e-1
  kv_a_layernorm eps 1e-6 -> 1e-5    1.3e-3   6.1e-2   1.6e-1   2.3e-1   2.1e-1
  input_layernorm eps 1e-5 -> 1e-6   1.4e-3   1.4e-3   1.9e-3   2.2e-3   2.3e-3
  post_attention_layernorm -> 1e-6   3.1e-3   3.5e-3   4.0e-3   2.3e-2   2.9e-2
  indexer k_norm eps 1e-6 -> 1e-5         0        0        0        0        0
  final norm eps 1e-5 -> 1e-6             0        0        0   3.0e-4   3.2e-4
  float64 (float32 rounding)         5.4e-7   4.8e-7   7.3e-7   8.7e-7   1.1e-6

(h0, the embedding, moves under none.) The indexer's k_norm epsilon still moves
nothing: it only affects which tokens are selected, and none flips.

Needs the reference environment:  make golden-venv models && .venv-ref/bin/python tests/golden/eps_sensitivity.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402


def mutations(eps):
    """(label, function that applies the mutation to a loaded model)"""
    def each_layer(fn):
        return lambda model: [fn(layer) for layer in model.model.layers]

    def k_norm(layer, value):
        if layer.self_attn.indexer is not None:  # "shared" layers have none
            layer.self_attn.indexer.k_norm.eps = value

    return [
        ("q_a_layernorm eps 1e-6 -> rms_norm_eps",
         each_layer(lambda l: setattr(l.self_attn.q_a_layernorm, "variance_epsilon", eps))),
        ("kv_a_layernorm eps 1e-6 -> rms_norm_eps",
         each_layer(lambda l: setattr(l.self_attn.kv_a_layernorm, "variance_epsilon", eps))),
        ("input_layernorm eps rms_norm_eps -> 1e-6",
         each_layer(lambda l: setattr(l.input_layernorm, "variance_epsilon", 1e-6))),
        ("post_attention_layernorm eps -> 1e-6",
         each_layer(lambda l: setattr(l.post_attention_layernorm, "variance_epsilon", 1e-6))),
        ("indexer k_norm eps 1e-6 -> rms_norm_eps", each_layer(lambda l: k_norm(l, eps))),
        ("final norm eps rms_norm_eps -> 1e-6", lambda model: setattr(model.model.norm, "variance_epsilon", 1e-6)),
    ]


def rel(a, b):
    whole = np.abs(a - b).max() / np.abs(b).max()
    rows = (np.abs(a - b).max(-1) / np.abs(b).max(-1)).max()
    return whole, rows


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    path = os.path.join(mg.ROOT, "models", "tiny")
    cfg = json.load(open(os.path.join(path, "config.json")))
    meta = json.load(open(os.path.join(mg.OUT, "f32.json")))
    shape = meta["hidden_states"]["shape"]
    gh = np.fromfile(os.path.join(mg.OUT, "f32.hidden.f32"), "<f4").reshape(shape)
    gl = np.fromfile(os.path.join(mg.OUT, "f32.prompt.f32"), "<f4").reshape(shape[1], -1)
    if mg.checkpoint_hash(path) != meta["checkpoint"]["fnv1a64"]:
        raise SystemExit(f"{path} is not the checkpoint the goldens were made from")
    ids = meta["prompt_ids"]
    names = [f"h{i}" for i in range(shape[0])] + ["logits"]
    print("max|d|/max|h| per entry (whole entry; worst position row in brackets)")
    print(f"{'mutation':44s}" + "".join(f"{n:>22s}" for n in names))

    def report(label, logits, hidden):
        cells = [rel(hidden[i], gh[i]) for i in range(shape[0])] + [rel(logits, gl)]
        print(f"{label:44s}" + "".join(f"{w:>11.2e} [{r:8.2e}]" for w, r in cells))

    model = mg.load_model(path, cfg["num_hidden_layers"])
    logits, hidden = mg.prompt_forward(model, ids)
    report("none (this machine's transformers)", logits, hidden)
    for label, mutate in mutations(cfg["rms_norm_eps"]):
        model = mg.load_model(path, cfg["num_hidden_layers"])
        mutate(model)
        logits, hidden = mg.prompt_forward(model, ids)
        report(label, logits, hidden)
    model = mg.load_model(path, cfg["num_hidden_layers"]).double()
    model.config._experts_implementation = "eager"  # torch's grouped_mm has no float64
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, output_hidden_states=True)
    report("float64 (float32 rounding scale)", out.logits[0].numpy(),
           torch.stack([h[0] for h in out.hidden_states]).numpy())


if __name__ == "__main__":
    sys.exit(main())
