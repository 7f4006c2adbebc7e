#!/usr/bin/env python3
"""Reference logits for the engine parity tests, computed by Hugging Face
transformers' GlmMoeDsaForCausalLM (float32, eager attention) on the test
checkpoints themselves, so tensor names and layouts are checked too.

For each copy of `tiny` (f32, bf16, fp8) it writes, under tests/golden/tiny/:
  VARIANT.json          prompt ids, greedy ids, shapes, versions, margins
  VARIANT.steps.f32     [32, vocab] float32 logits: row 0 = the prompt's last
                        position, row i = after i greedy tokens (full recompute)
  f32.prompt.f32        [40, vocab] logits of every prompt position (f32 only)
  prompt.txt, VARIANT.greedy.txt   the ids as comma-separated lines

BF16 weights are upcast to float32; FP8 weights are dequantised (q * scale per
128x128 block) into a float32 copy first. transformers is run on those exact
values, so the C engine must match to float32 rounding.

Run by hand when the test models change (needs torch + transformers):
    make models && python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
    /tmp/ref/bin/python tests/golden/make_goldens.py
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
def run(variant, path):
    cfg = json.load(open(os.path.join(path, "config.json")))
    V = cfg["vocab_size"]
    model = load_model(path, cfg["num_hidden_layers"])
    ids = prompt_ids(V)
    full = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
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
    }
    json.dump(meta, open(os.path.join(OUT, f"{variant}.json"), "w"), indent=1)
    print(f"{variant}: greedy {greedy[:8]}... min top-2 margin {min(margins):.4g}")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    models = os.path.join(ROOT, "models")
    run("f32", os.path.join(models, "tiny"))
    run("bf16", os.path.join(models, "tiny-bf16"))
    with tempfile.TemporaryDirectory() as tmp:
        dequantised_copy(os.path.join(models, "tiny-fp8"), tmp)
        run("fp8", tmp)


if __name__ == "__main__":
    sys.exit(main())
