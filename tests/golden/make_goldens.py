#!/usr/bin/env python3
"""Reference logits and hidden states for the engine parity tests, computed by
Hugging Face transformers' GlmMoeDsaForCausalLM (float32, eager attention) on
the test checkpoints themselves, so tensor names and layouts are checked too.

For each copy of `tiny` (f32, bf16, fp8) it writes, under tests/golden/tiny/:
  VARIANT.json          prompt ids, greedy ids, shapes, versions, margins, the
                        hidden-state file's shape and meaning ("hidden_states")
                        and the checkpoint's identity ("checkpoint", below)
  VARIANT.steps.f32     [32, vocab] float32 logits: row 0 = the prompt's last
                        position, row i = after i greedy tokens (full recompute)
  VARIANT.hidden.f32    [num_hidden_layers + 1, 40, hidden] float32 hidden
                        states of every prompt position (see below)
  f32.prompt.f32        [40, vocab] logits of every prompt position (f32 only)
  prompt.txt, VARIANT.greedy.txt   the ids as comma-separated lines
All .f32 files are raw little-endian float32, row-major, no header.

Hidden states: what transformers 5.24 returns for one forward of the 40-token
prompt with output_hidden_states=True (utils/output_capturing.py, hooks on
GlmMoeDsaDecoderLayer), num_hidden_layers + 1 entries:
  entry 0        the input of decoder layer 0 = embed_tokens(ids) (the
                 embedding output; no scaling)
  entry i, 1 <= i < L   the output of decoder layer i-1: the residual stream
                 after its attention and FFN/MoE additions (un-normalised)
  entry L        (L = num_hidden_layers) NOT the raw output of the last layer:
                 capture_outputs' tie_last_hidden_states (default on, the
                 config does not set it) replaces it by last_hidden_state,
                 i.e. model.norm(output of layer L-1), the final RMSNorm
                 (eps rms_norm_eps) applied: exactly what lm_head multiplies.
The script checks this layout with its own forward hooks on every run.

Checkpoint identity: "checkpoint": {"dir", "fnv1a64", "files"} in VARIANT.json
is the 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) of one
byte stream: config.json, then every *.safetensors file of the checkpoint
directory in ascending (byte-order) name order, each file's bytes as stored,
nothing between them; written as 16 lower-case hex digits. For fp8 it is the
hash of models/tiny-fp8 itself, not of the dequantised copy transformers runs.
tests/unit/golden.h computes the same in C; test_golden refuses goldens made
from another checkpoint.

BF16 weights are upcast to float32; FP8 weights are dequantised (q * scale per
128x128 block) into a float32 copy first. transformers is run on those exact
values, so the C engine must match to float32 rounding.

Run by hand when the test models change (needs torch + transformers; the
Makefile pins the versions in .venv-ref):
    make golden-venv goldens
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import GlmMoeDsaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "tiny")
PROMPT_LEN = 40
STEPS = 32


def prompt_ids(vocab):
    # a fixed pseudo-random prompt (64-bit LCG), not tied to any tokenizer
    x, ids = 0x2545F4914F6CDD1D, []
    for _ in range(PROMPT_LEN):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        ids.append(int(x >> 33) % vocab)
    return ids


FNV_OFFSET, FNV_PRIME, MASK64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def checkpoint_files(path):
    """config.json, then the *.safetensors files in byte order of their names."""
    shards = sorted((f for f in os.listdir(path) if f.endswith(".safetensors") and len(f) > len(".safetensors")),
                    key=lambda f: f.encode())
    if not shards:
        raise SystemExit(f"{path}: no *.safetensors files")
    return ["config.json"] + shards


def checkpoint_hash(path):
    """FNV-1a 64 over checkpoint_files(path), bytes as stored, as 16 hex digits."""
    h = FNV_OFFSET
    for f in checkpoint_files(path):
        with open(os.path.join(path, f), "rb") as fh:
            for b in fh.read():
                h = ((h ^ b) * FNV_PRIME) & MASK64
    return f"{h:016x}"


def dequantised_copy(src, dst):
    """Writes a float32 copy of an FP8 block-quantised checkpoint: every
    F8_E4M3 weight becomes q * scale_inv of its 128x128 block."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    br, bc = cfg["quantization_config"].get("weight_block_size", [128, 128])
    del cfg["quantization_config"]
    cfg["dtype"] = "float32"
    os.makedirs(dst, exist_ok=True)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    tensors = {}
    for f in sorted(os.listdir(src)):
        if f.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(src, f)))
    out = {}
    for name, t in tensors.items():
        if name.endswith("_scale_inv"):
            continue
        if t.dtype == torch.float8_e4m3fn:
            s = tensors[name + "_scale_inv"].float()
            full = s.repeat_interleave(br, 0)[: t.shape[0]].repeat_interleave(bc, 1)[:, : t.shape[1]]
            out[name] = t.float() * full
        else:
            out[name] = t.float()
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(dst, "model.safetensors"),
              metadata={"format": "pt"})
    shutil.copy(os.path.join(src, "generation_config.json"), dst)


def load_model(path, n_layers):
    model, info = GlmMoeDsaForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    if info["missing_keys"]:
        raise SystemExit(f"{path}: transformers found no value for {sorted(info['missing_keys'])[:5]}")
    bad = [k for k in info["unexpected_keys"] if not k.startswith(f"model.layers.{n_layers}.")]
    if bad:
        raise SystemExit(f"{path}: unexpected tensors {bad[:5]}")
    for p in model.parameters():
        assert p.dtype == torch.float32
    return model.eval()


@torch.no_grad()
def prompt_forward(model, ids):
    """Logits [T, vocab] and hidden states [L + 1, T, hidden] of one forward
    over ids, with the hidden states' layout (see the top) checked against
    forward hooks of our own."""
    seen = {}
    hooks = [layer.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, o[0] if isinstance(o, tuple) else o))
             for i, layer in enumerate(model.model.layers)]
    hooks.append(model.model.norm.register_forward_hook(lambda m, a, o: seen.__setitem__("norm", (a[0], o))))
    try:
        out = model(torch.tensor([ids]), use_cache=False, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    hs = out.hidden_states
    L = model.config.num_hidden_layers
    assert len(hs) == L + 1, f"{len(hs)} hidden states, expected {L + 1}"
    assert torch.equal(hs[0], model.model.embed_tokens(torch.tensor([ids])))
    for i in range(1, L):
        assert torch.equal(hs[i], seen[i - 1]), f"hidden state {i} is not the output of layer {i - 1}"
    norm_in, norm_out = seen["norm"]
    assert torch.equal(norm_in, seen[L - 1]) and torch.equal(hs[L], norm_out), \
        "the last hidden state is not model.norm(output of the last layer)"
    hidden = torch.stack([h[0] for h in hs]).float().numpy()
    return out.logits[0].float().numpy(), hidden


@torch.no_grad()
def run(variant, path, ckpt_dir):
    cfg = json.load(open(os.path.join(path, "config.json")))
    V = cfg["vocab_size"]
    model = load_model(path, cfg["num_hidden_layers"])
    ids = prompt_ids(V)
    full, hidden = prompt_forward(model, ids)
    seq, rows, greedy, margins = list(ids), [], [], []
    for _ in range(STEPS):
        logits = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float().numpy()
        rows.append(logits)
        top2 = np.sort(logits)[-2:]
        margins.append(float(top2[1] - top2[0]))
        nxt = int(np.argmax(logits))
        greedy.append(nxt)
        seq.append(nxt)
    steps = np.stack(rows).astype("<f4")
    assert np.array_equal(steps[0], full[-1]) or np.allclose(steps[0], full[-1], atol=1e-5)
    os.makedirs(OUT, exist_ok=True)
    steps.tofile(os.path.join(OUT, f"{variant}.steps.f32"))
    if variant == "f32":
        full.astype("<f4").tofile(os.path.join(OUT, "f32.prompt.f32"))
    hidden.astype("<f4").tofile(os.path.join(OUT, f"{variant}.hidden.f32"))
    with open(os.path.join(OUT, "prompt.txt"), "w") as f:
        f.write(",".join(map(str, ids)) + "\n")
    with open(os.path.join(OUT, f"{variant}.greedy.txt"), "w") as f:
        f.write(",".join(map(str, greedy)) + "\n")
    meta = {
        "model": "tiny", "variant": variant, "vocab_size": V,
        "prompt_ids": ids, "greedy_ids": greedy,
        "step_rows": STEPS, "prompt_rows": PROMPT_LEN if variant == "f32" else 0,
        "index_topk": cfg["index_topk"],
        "min_greedy_margin": min(margins),
        "transformers": transformers.__version__, "torch": torch.__version__,
        "hidden_states": {
            "file": f"{variant}.hidden.f32",
            "dtype": "float32 little-endian, row-major, no header",
            "shape": list(hidden.shape),
            "axes": ["entry", "prompt position", "hidden"],
            "source": f"output_hidden_states=True, transformers {transformers.__version__}",
            "entries": ["embed_tokens(ids)"]
                       + [f"output of decoder layer {i} (residual stream, un-normalised)" for i in range(len(hidden) - 2)]
                       + [f"model.norm(output of decoder layer {len(hidden) - 2}): final RMSNorm, input of lm_head"],
        },
        "checkpoint": {
            "dir": os.path.relpath(ckpt_dir, ROOT),
            "fnv1a64": checkpoint_hash(ckpt_dir),
            "files": checkpoint_files(ckpt_dir),
            "hash": "FNV-1a 64 of config.json then each *.safetensors in name order, bytes as stored",
        },
    }
    json.dump(meta, open(os.path.join(OUT, f"{variant}.json"), "w"), indent=1)
    print(f"{variant}: greedy {greedy[:8]}... min top-2 margin {min(margins):.4g}")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    models = os.path.join(ROOT, "models")
    run("f32", os.path.join(models, "tiny"), os.path.join(models, "tiny"))
    run("bf16", os.path.join(models, "tiny-bf16"), os.path.join(models, "tiny-bf16"))
    with tempfile.TemporaryDirectory() as tmp:
        dequantised_copy(os.path.join(models, "tiny-fp8"), tmp)
        run("fp8", tmp, os.path.join(models, "tiny-fp8"))


if __name__ == "__main__":
    sys.exit(main())
