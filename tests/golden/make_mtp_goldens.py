#!/usr/bin/env python3
"""Reference logits of the MTP (multi-token prediction, "next-n") layer of the
test checkpoints, for the engine's draft layer (engine/model/model.h: glm_mtp).

transformers' GlmMoeDsaForCausalLM does not run the MTP layer (it drops
model.layers.<L>.* at load), so the reference is assembled from its own parts,
as vLLM and SGLang run DeepSeek-V3's and GLM-5's MTP layer:

  h_p     the main model's final hidden state at position p: model.norm of
          the last decoder layer's output (what lm_head reads)
  x_p     eh_proj(cat[enorm(embed_tokens(token p+1)), hnorm(h_p)]): the
          embedding first, so eh_proj's columns [0, H) take it
  y_p     one GlmMoeDsaDecoderLayer (sparse MoE, its own "full" indexer) over
          x at positions p, causal, eager attention
  g_p     shared_head.norm(y_p)
  logits  the main model's lm_head(g_p); embed_tokens is the main model's too
          (vLLM and SGLang use the main model's embedding and head; the
          checkpoint's shared_head.head and MTP embed_tokens copies are unused)

The decoder layer runs as the only layer of a one-layer GlmMoeDsaForCausalLM
loaded from the MTP layer's tensors, with model.norm = shared_head.norm and the
main lm_head, called with inputs_embeds = x: its logits are the MTP logits and
its last hidden state is g. vLLM also zeroes the embedding at position 0;
SGLang and transformers' generic MTP do not, and neither does this reference.

Rows, for the 40-token golden prompt ids[0..39] and the first greedy token g0
(tests/golden/tiny/VARIANT.greedy.txt):
  rows 0..39   x_p from h_p (the prompt's forward) and token ids[p+1] (g0 for
               p = 39): what a draft over the prompt computes after prefill
  row 40       a chained draft: d1 = argmax of row 39's logits, at position 40,
               with h = g_39 (the MTP output fed back, after shared_head.norm)
               and token d1, attending to rows 0..39 in the MTP layer's cache

Writes tests/golden/tiny/VARIANT.mtp.f32 ([41, vocab] float32 logits, row-major,
little-endian) and VARIANT.mtp.json (tokens, d1, shapes), for f32, bf16 and fp8.

    make golden-venv mtp-goldens
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import GlmMoeDsaForCausalLM
from transformers.models.glm_moe_dsa.modeling_glm_moe_dsa import GlmMoeDsaRMSNorm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import OUT, ROOT, checkpoint_files, checkpoint_hash, dequantised_copy, load_model, \
    prompt_forward, prompt_ids  # noqa: E402


def tensors_of(path):
    out = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(path, f)))
    return {k: v.float() for k, v in out.items()}


def mtp_block(path, tmp):
    """A one-layer GlmMoeDsaForCausalLM holding the MTP layer's decoder layer,
    with model.norm = shared_head.norm and the main lm_head; also the MTP's own
    enorm, hnorm and eh_proj weights."""
    cfg = json.load(open(os.path.join(path, "config.json")))
    L = cfg["num_hidden_layers"]
    t = tensors_of(path)
    pre = f"model.layers.{L}."
    own = {"enorm", "hnorm", "eh_proj", "shared_head", "embed_tokens"}
    block = {"model.layers.0." + k[len(pre):]: v for k, v in t.items()
             if k.startswith(pre) and k[len(pre):].split(".")[0] not in own}
    block["model.embed_tokens.weight"] = t["model.embed_tokens.weight"]
    block["model.norm.weight"] = t[pre + "shared_head.norm.weight"]
    block["lm_head.weight"] = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    one = dict(cfg, num_hidden_layers=1, mlp_layer_types=["sparse"], indexer_types=["full"],
               first_k_dense_replace=0, num_nextn_predict_layers=0, dtype="float32")
    one.pop("quantization_config", None)
    os.makedirs(tmp, exist_ok=True)
    json.dump(one, open(os.path.join(tmp, "config.json"), "w"), indent=1)
    save_file({k: v.contiguous() for k, v in block.items()}, os.path.join(tmp, "model.safetensors"),
              metadata={"format": "pt"})
    model, info = GlmMoeDsaForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    if info["missing_keys"] or info["unexpected_keys"]:
        raise SystemExit(f"{path}: the MTP block did not load: {info}")
    H, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
    enorm, hnorm = GlmMoeDsaRMSNorm(H, eps), GlmMoeDsaRMSNorm(H, eps)
    enorm.weight.data.copy_(t[pre + "enorm.weight"])
    hnorm.weight.data.copy_(t[pre + "hnorm.weight"])
    return model.eval(), enorm, hnorm, t[pre + "eh_proj.weight"]


@torch.no_grad()
def run(variant, path, ckpt_dir, tmp):
    cfg = json.load(open(os.path.join(path, "config.json")))
    V, L = cfg["vocab_size"], cfg["num_hidden_layers"]
    main = load_model(path, L)
    ids = prompt_ids(V)
    greedy = [int(x) for x in open(os.path.join(OUT, f"{variant}.greedy.txt")).read().split(",")]
    _, hidden = prompt_forward(main, ids)
    h = torch.from_numpy(hidden[L])  # [40, H] model.norm(last layer): what lm_head reads
    block, enorm, hnorm, eh = mtp_block(path, tmp)
    embed = main.model.embed_tokens
    nxt = ids[1:] + [greedy[0]]

    def eh_proj(tokens, hs):
        return torch.cat([enorm(embed(torch.tensor(tokens))), hnorm(hs)], dim=-1) @ eh.T

    x = eh_proj(nxt, h)
    out = block(inputs_embeds=x[None], use_cache=False, output_hidden_states=True)
    logits, g = out.logits[0], out.hidden_states[-1][0]
    d1 = int(torch.argmax(logits[-1]))
    x2 = torch.cat([x, eh_proj([d1], g[-1:])])  # row 40 at position 40; rows 0..39 unchanged (causal)
    out2 = block(inputs_embeds=x2[None], use_cache=False)
    assert torch.allclose(out2.logits[0, :40], logits, atol=1e-5), "the chained row changed earlier rows"
    rows = torch.cat([logits, out2.logits[0, 40:]]).float().numpy().astype("<f4")
    rows.tofile(os.path.join(OUT, f"{variant}.mtp.f32"))
    meta = {
        "variant": variant, "vocab_size": V, "rows": int(rows.shape[0]),
        "file": f"{variant}.mtp.f32", "dtype": "float32 little-endian, row-major, no header",
        "next_tokens": nxt, "chained_token": d1,
        "rows_meaning": ["rows 0..39: position p, token ids[p+1] (greedy[0] at 39), h = main final hidden at p",
                         "row 40: position 40, token chained_token = argmax(row 39), h = row 39's MTP output "
                         "after shared_head.norm"],
        "checkpoint": {"dir": os.path.relpath(ckpt_dir, ROOT), "fnv1a64": checkpoint_hash(ckpt_dir),
                       "files": checkpoint_files(ckpt_dir)},
    }
    json.dump(meta, open(os.path.join(OUT, f"{variant}.mtp.json"), "w"), indent=1)
    top = np.sort(rows, axis=1)[:, -2:]
    print(f"{variant}: MTP argmax {np.argmax(rows, axis=1)[:8].tolist()}... chained {d1}, "
          f"min top-2 margin {float(np.min(top[:, 1] - top[:, 0])):.4g}")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    models = os.path.join(ROOT, "models")
    with tempfile.TemporaryDirectory() as tmp:
        run("f32", os.path.join(models, "tiny"), os.path.join(models, "tiny"), os.path.join(tmp, "f32"))
        run("bf16", os.path.join(models, "tiny-bf16"), os.path.join(models, "tiny-bf16"), os.path.join(tmp, "bf16"))
        deq = os.path.join(tmp, "fp8-deq")
        dequantised_copy(os.path.join(models, "tiny-fp8"), deq)
        run("fp8", deq, os.path.join(models, "tiny-fp8"), os.path.join(tmp, "fp8"))


if __name__ == "__main__":
    sys.exit(main())
