#!/usr/bin/env python3
"""glm5_deploy_model.py - the arithmetic of serving GLM-5-FP8 with tensor parallelism (a program
that prints numbers, not a test; standard library only).

What it computes, from GLM-5's config (transformers' GlmMoeDsaConfig defaults, which are
zai-org/GLM-5's) and from the CUDA backend's own layouts (cuda/cuda_backend.cu, cuda/dweight.cu):

  params   parameters per tensor class, and the FP8 checkpoint's bytes
  weights  weights per GPU as the CUDA backend keeps them, at TP 8 and TP 16
  kv       KV cache bytes per token, the memory plan of --gpu-memory-utilization 0.9 on
           8 x H200 (TP 8) and 2 x 8 x H100 (TP 16), KV tokens per GPU, context x concurrency
  decode   modelled lower bound of one decode step at TP 8 on 8 x H200 (bytes read per rank,
           all-reduces, time and tokens/s at batch 1 and 64)
  spec     the same bound for speculative decoding with the MTP layer (--speculative-config):
           a step that verifies k drafts a sequence plus the MTP layer's passes, and the
           tokens/s an acceptance rate buys against plain decoding

docs/deployment.md and docs/performance.md ("Modelled: one decode step ...") quote its output;
every assumption is a named constant below. Nothing here was measured.

Usage: python3 tests/bench/glm5_deploy_model.py [params|weights|kv|decode|spec ...]   (default: all)
"""
import functools
import random
import sys

# ---- GLM-5 (GlmMoeDsaConfig defaults = zai-org/GLM-5's config.json) --------------------------
VOCAB = 154880
HIDDEN = 6144
INTER = 12288          # dense MLP (first_k_dense_replace layers)
MOE_INTER = 2048       # each routed expert and the shared expert
LAYERS = 78
DENSE_LAYERS = 3       # first_k_dense_replace
MOE_LAYERS = LAYERS - DENSE_LAYERS
HEADS = 64
Q_LORA = 2048
KV_LORA = 512
QK_NOPE = 192
QK_ROPE = 64
V_HEAD = 256
EXPERTS = 256
SHARED_EXPERTS = 1
TOP_K = 8
INDEX_TOPK = 2048
INDEX_HEADS = 32
INDEX_DIM = 128
MAX_POS = 202752
MTP_LAYERS = 1         # num_nextn_predict_layers: stored after layer 77, the draft of speculative decoding
BLOCK = 128            # FP8 weight_block_size 128 x 128, float32 scales (weight_scale_inv)

# ---- the serving parameters (glm-server serve defaults, except where noted) --------------------
KV_BLOCK_TOKENS = 16           # the engine's block size
MAX_NUM_BATCHED_TOKENS = 2048  # --max-num-batched-tokens default
MAX_NUM_SEQS = 256             # --max-num-seqs default; max_logits_rows = max_num_seqs
GPU_MEM_UTIL = 0.9             # --gpu-memory-utilization

# ---- devices (assumptions, stated in the docs) ------------------------------------------------
GIB = 1024 ** 3
# The total cudaMemGetInfo reports (what the backend multiplies by --gpu-memory-utilization):
# H200 141 GB: nvidia-smi shows 143,771 MiB, the CUDA runtime reports 139.81 GiB;
# H100 80 GB HBM3 (SXM): nvidia-smi shows 81,559 MiB, the runtime 79.1 - 79.3 GiB (79.11 taken).
DEVICES = {"H200": 139.81 * GIB, "H100": 79.11 * GIB}
CONTEXT_GIB = 0.5      # CUDA context + cuBLAS/cuBLASLt handles of the process before the backend
                       # allocates (counted by the backend as "in use before start"): an estimate

# decode-step figures for 8 x H200 (NVLink 4, NVSwitch), two sets: peak and practical
HBM_PEAK = 4.8e12              # H200 HBM3e, bytes/s (NVIDIA's figure)
HBM_PRACTICAL = 4.0e12         # what a streaming kernel reaches: an assumption (~83% of peak)
FP32_PEAK = 67e12              # H100/H200 SXM non-tensor FP32 FLOP/s (the indexer and MLA
                               # attention kernels run on CUDA cores in float32)
FP8_PEAK = 1979e12             # dense FP8 tensor-core FLOP/s (H100/H200 SXM)
NVLINK_BIDIR = 900e9           # NVLink 4 per GPU, both directions together
BUSBW_PEAK = NVLINK_BIDIR / 2  # 450 GB/s one way: the ceiling of an all-reduce's bus bandwidth
BUSBW_PRACTICAL = 360e9        # nccl-tests all_reduce_perf busbw on 8-GPU NVLink 4 systems at
                               # large sizes is typically ~350-480 GB/s (NVLS at the top): assumption
AR_LAT_PEAK = 10e-6            # small-message all-reduce time, nccl-tests range ~10-20 us: assumption
AR_LAT_PRACTICAL = 20e-6


def cdiv(a, b):
    return -(-a // b)


def align(n, a):
    return cdiv(n, a) * a


# ---- tensors ----------------------------------------------------------------------------------
# (class, name, rows, cols, instances per layer-kind, checkpoint dtype, device dtype, TP rule)
# dtypes: fp8 (e4m3 + 128x128 f32 scales), bf16, f32; 1-D tensors have cols 0.
# TP rules: rep (every rank whole), col (rows / tp), row (cols / tp), vocab (rows / tp),
# expert (instances / tp, each whole).
def attention_tensors():
    qk = QK_NOPE + QK_ROPE
    return [
        ("attention", "q_a_proj", Q_LORA, HIDDEN, 1, "fp8", "fp8", "rep"),
        ("attention", "q_b_proj", HEADS * qk, Q_LORA, 1, "fp8", "fp8", "col"),
        ("attention", "kv_a_proj_with_mqa", KV_LORA + QK_ROPE, HIDDEN, 1, "fp8", "fp8", "rep"),
        ("attention", "kv_b_proj", HEADS * (QK_NOPE + V_HEAD), KV_LORA, 1, "fp8", "fp8", "col"),
        ("attention", "o_proj", HIDDEN, HEADS * V_HEAD, 1, "fp8", "fp8", "row"),
        ("indexer", "indexer.wq_b", INDEX_HEADS * INDEX_DIM, Q_LORA, 1, "fp8", "fp8", "rep"),
        ("indexer", "indexer.wk", INDEX_DIM, HIDDEN, 1, "fp8", "fp8", "rep"),
        ("indexer", "indexer.weights_proj", INDEX_HEADS, HIDDEN, 1, "bf16", "bf16", "rep"),
        ("indexer", "indexer.k_norm (weight, bias)", 2 * INDEX_DIM, 0, 1, "bf16", "f32", "rep"),
        ("norms", "input/post_attention_layernorm", 2 * HIDDEN, 0, 1, "bf16", "f32", "rep"),
        ("norms", "q_a_layernorm, kv_a_layernorm", Q_LORA + KV_LORA, 0, 1, "bf16", "f32", "rep"),
    ]


def dense_ffn_tensors():
    return [
        ("dense MLP", "mlp.gate_proj, up_proj", INTER, HIDDEN, 2, "fp8", "fp8", "col"),
        ("dense MLP", "mlp.down_proj", HIDDEN, INTER, 1, "fp8", "fp8", "row"),
    ]


def moe_router_shared_tensors():
    return [
        ("router", "mlp.gate (router)", EXPERTS, HIDDEN, 1, "bf16", "f32", "rep"),
        ("router", "mlp.gate.e_score_correction_bias", EXPERTS, 0, 1, "f32", "f32", "rep"),
        ("shared expert", "shared_experts.gate_proj, up_proj", MOE_INTER * SHARED_EXPERTS, HIDDEN, 2,
         "fp8", "fp8", "col"),
        ("shared expert", "shared_experts.down_proj", HIDDEN, MOE_INTER * SHARED_EXPERTS, 1, "fp8", "fp8", "row"),
    ]


def routed_expert_tensors():
    return [
        ("routed experts", "experts.N.gate_proj, up_proj", MOE_INTER, HIDDEN, 2 * EXPERTS, "fp8", "fp8", "expert"),
        ("routed experts", "experts.N.down_proj", HIDDEN, MOE_INTER, EXPERTS, "fp8", "fp8", "expert"),
    ]


def model_tensors():
    """Every tensor group of the checkpoint with its layer count: (count, tensor)."""
    out = [(1, ("embedding", "model.embed_tokens", VOCAB, HIDDEN, 1, "bf16", "bf16", "vocab")),
           (1, ("LM head", "lm_head", VOCAB, HIDDEN, 1, "bf16", "bf16", "vocab")),
           (1, ("norms", "model.norm", HIDDEN, 0, 1, "bf16", "f32", "rep"))]
    out += [(LAYERS, t) for t in attention_tensors()]
    out += [(DENSE_LAYERS, t) for t in dense_ffn_tensors()]
    out += [(MOE_LAYERS, t) for t in moe_router_shared_tensors() + routed_expert_tensors()]
    return out


def mtp_tensors():
    """The MTP (next-n) layer: an MoE decoder layer plus its own projections, norms, embedding and head."""
    t = attention_tensors() + moe_router_shared_tensors() + routed_expert_tensors()
    t += [("MTP extras", "eh_proj", HIDDEN, 2 * HIDDEN, 1, "fp8", "fp8", "rep"),
          ("MTP extras", "enorm, hnorm, shared_head.norm", 3 * HIDDEN, 0, 1, "bf16", "f32", "rep"),
          ("MTP extras", "embed_tokens, shared_head.head", VOCAB, HIDDEN, 2, "bf16", "bf16", "vocab")]
    return [(MTP_LAYERS, x) for x in t]


def params(t):
    _, _, r, c, n, _, _, _ = t
    return r * (c if c else 1) * n


def ckpt_bytes(t):
    """Bytes in the FP8 checkpoint's safetensors (weights and their weight_scale_inv)."""
    _, _, r, c, n, dt, _, _ = t
    if dt == "fp8":
        return n * (r * c + cdiv(r, BLOCK) * cdiv(c, BLOCK) * 4)
    return n * r * (c if c else 1) * {"bf16": 2, "f32": 4}[dt]


def rank_shape(t, tp):
    """(rows, cols, instances) of one rank's share."""
    _, name, r, c, n, _, _, rule = t
    if rule == "rep":
        return r, c, n
    if rule in ("col", "vocab"):
        assert r % tp == 0, name
        return r // tp, c, n
    if rule == "row":
        assert c % tp == 0, name
        return r, c // tp, n
    assert rule == "expert" and n % tp == 0, name
    return r, c, n // tp


def device_bytes_one(r, c, dt):
    """One weight as cuda/dweight.cu keeps it: data and scale rows (ld padded to 4) each aligned to 256;
    vectors (norms, biases) float32; the router float32 (GLM_DW_F32)."""
    if dt == "fp8":
        return align(r * c, 256) + align(cdiv(r, BLOCK) * align(cdiv(c, BLOCK), 4) * 4, 256)
    return align(r * (c if c else 1) * {"bf16": 2, "f32": 4}[dt], 256)


def rank_device_bytes(t, tp):
    r, c, n = rank_shape(t, tp)
    return n * device_bytes_one(r, c, t[6])


def rank_params(t, tp):
    r, c, n = rank_shape(t, tp)
    return r * (c if c else 1) * n


# ---- KV cache and workspace ----------------------------------------------------------------------
def kv_bytes_per_token(es=2):
    """Per token: every layer's latent row [kv_lora | rope] and its index key, BF16 (es 2): the CUDA
    backend's kv_bytes_per_token() (GLM-5's indexer_types are all full: every layer has its key).
    Replicated on every rank: the latent is per token, not per head."""
    return LAYERS * (KV_LORA + QK_ROPE + INDEX_DIM) * es


def workspace_bytes(tp, T=MAX_NUM_BATCHED_TOKENS, Lr=MAX_NUM_SEQS, seqs=MAX_NUM_SEQS, max_ctx=MAX_POS):
    """The CUDA backend's workspace (workspace_parts() in cuda/cuda_backend.cu) at one rank's widths:
    an estimate (the tensor-parallel backend may add buffers of its own). Returns (total, parts)."""
    heads, f = HEADS // tp, 4
    ld = KV_LORA + QK_ROPE
    ffn = max(INTER // tp, MOE_INTER * SHARED_EXPERTS // tp)
    blocks_per_seq = cdiv(max_ctx, KV_BLOCK_TOKENS)
    rows = T * TOP_K  # routed rows at worst: every token's 8 experts on this rank
    dsa_chunk = min((1 << 24) // max_ctx, T)
    p = {
        "batch arrays (block tables [seqs, blocks/seq])": 4 * T * 3 + 8 * T + 4 * Lr + 4 * seqs * blocks_per_seq,
        "residual stream, norms, shared-expert out [4, T, H]": 4 * f * T * HIDDEN,
        "MLA activations (q, latent q/o, attn, kv_a, q_resid)":
            f * T * (Q_LORA + heads * (QK_NOPE + QK_ROPE) + ld + heads * ld + heads * KV_LORA + heads * V_HEAD),
        "indexer q/k/w and top-k [T, 2048]": f * T * (INDEX_HEADS * INDEX_DIM + INDEX_DIM + INDEX_HEADS) + 4 * T * INDEX_TOPK,
        "FFN gate/up [2, T, ffn/tp]": 2 * f * T * ffn,
        "router logits, expert ids/weights": f * T * EXPERTS + 8 * T * TOP_K,
        "MoE experts' rows [T x 8, 2048 + H]": f * rows * (MOE_INTER + HIDDEN) + 4 * (2 * rows + 4 * EXPERTS),
        "logits [Lr, V] + rank shard + final norm": f * Lr * VOCAB + f * Lr * VOCAB // tp + f * Lr * HIDDEN,
        "linear scratch (largest: weights_proj BF16 at T rows)": 2 * T * HIDDEN,
        "DSA scores (64 MiB cap)": f * dsa_chunk * max_ctx,
        "MLA split-KV partials": 256 * 8 * (KV_LORA + 2) * f,
        "cuBLASLt + cuBLAS workspaces": 2 * 32 * 2 ** 20,
        "device sampler (4096 edits a row)": Lr * 48 + Lr * 4096 * 20,
    }
    return sum(p.values()), p


# ---- reports ------------------------------------------------------------------------------------
def fmt_g(n):
    return f"{n / 1e9:,.3f} G"


def gb(n):
    return f"{n / 1e9:,.2f} GB"


def gib(n):
    return f"{n / GIB:,.2f} GiB"


def by_class(groups, fn):
    out = {}
    for cnt, t in groups:
        out[t[0]] = out.get(t[0], 0) + cnt * fn(t)
    return out


def report_params():
    print("== Parameters and FP8 checkpoint bytes (78 layers; the MTP layer apart) ==")
    print("formulas per layer: q_a 2048x6144, q_b (64x256)x2048, kv_a (512+64)x6144, kv_b (64x(192+256))x512,")
    print("  o 6144x(64x256); indexer wq_b (32x128)x2048, wk 128x6144, weights_proj 32x6144;")
    print("  dense 3 x 12288x6144; MoE: router 256x6144, 256 experts x 3 x 2048x6144, shared 3 x 2048x6144;")
    print("  embedding and lm_head 154880x6144 each. FP8 bytes = r*c + ceil(r/128)*ceil(c/128)*4.")
    groups = model_tensors()
    P = by_class(groups, params)
    B = by_class(groups, ckpt_bytes)
    print(f"{'class':<16}{'params':>16}{'checkpoint':>14}")
    for k in P:
        print(f"{k:<16}{fmt_g(P[k]):>16}{gb(B[k]):>14}")
    tp_, tb = sum(P.values()), sum(B.values())
    print(f"{'total (no MTP)':<16}{fmt_g(tp_):>16}{gb(tb):>14}")
    mp = sum(c * params(t) for c, t in mtp_tensors())
    mb = sum(c * ckpt_bytes(t) for c, t in mtp_tensors())
    print(f"{'MTP layer':<16}{fmt_g(mp):>16}{gb(mb):>14}")
    print(f"{'with MTP':<16}{fmt_g(tp_ + mp):>16}{gb(tb + mb):>14}")
    fp8 = sum(c * params(t) for c, t in groups if t[5] == "fp8")
    print(f"FP8 share of the parameters (no MTP): {fp8 / tp_:.4f}")
    # active per token: attention + indexer + norms of every layer, dense, router, 8 experts, shared, head
    act = sum(c * params(t) for c, t in groups if t[0] not in ("routed experts", "embedding"))
    act += MOE_LAYERS * TOP_K * 3 * MOE_INTER * HIDDEN
    print(f"active per token (8 of 256 experts, LM head, no embedding): {fmt_g(act)}")
    print()


def rank_weights(tp):
    groups = model_tensors()
    return by_class(groups, lambda t: rank_device_bytes(t, tp)), by_class(groups, lambda t: rank_params(t, tp))


def report_weights():
    print("== Weights per GPU as the CUDA backend keeps them (--dtype bfloat16: FP8 stays FP8 with its")
    print("   scales, BF16 stays BF16, norms/biases/router float32; the MTP layer is not loaded) ==")
    for tp in (8, 16):
        D, P = rank_weights(tp)
        print(f"-- TP {tp}: {HEADS // tp} heads, {EXPERTS // tp} experts, vocab shard {VOCAB // tp} per rank")
        print(f"{'class':<16}{'params/rank':>16}{'bytes/rank':>14}")
        for k in D:
            print(f"{k:<16}{fmt_g(P[k]):>16}{gb(D[k]):>14}")
        tot = sum(D.values())
        print(f"{'total':<16}{fmt_g(sum(P.values())):>16}{gb(tot):>14}  = {gib(tot)}")
    print()


def memory_plan(dev, tp):
    total = DEVICES[dev]
    w = sum(rank_weights(tp)[0].values())
    ws, _ = workspace_bytes(tp)
    share = total * GPU_MEM_UTIL
    kv = share - CONTEXT_GIB * GIB - w - ws
    per_block = kv_bytes_per_token() * KV_BLOCK_TOKENS
    blocks = int(kv // per_block)
    return dict(total=total, share=share, weights=w, ws=ws, kv=kv, blocks=blocks, tokens=blocks * KV_BLOCK_TOKENS)


def report_kv():
    per = kv_bytes_per_token()
    print("== KV cache ==")
    print(f"per token: {LAYERS} layers x ({KV_LORA} + {QK_ROPE} latent + {INDEX_DIM} index key) x 2 bytes (BF16)"
          f" = {per:,} bytes ({per / 1024:.2f} KiB); every rank holds every token's rows")
    print(f"one full context ({MAX_POS} tokens): {gib(per * MAX_POS)}")
    _, parts = workspace_bytes(8)
    print(f"workspace estimate at TP 8 (max_num_batched_tokens {MAX_NUM_BATCHED_TOKENS}, max_num_seqs {MAX_NUM_SEQS}):")
    for k, v in parts.items():
        print(f"  {k:<58}{v / 2**20:10.1f} MiB")
    for tp in (8, 16):
        print(f"  total at TP {tp}: {gib(workspace_bytes(tp)[0])}")
    print(f"  (max_num_batched_tokens 8192 at TP 8: {gib(workspace_bytes(8, T=8192)[0])})")
    for dev, tp, label in (("H200", 8, "8 x H200, TP 8"), ("H100", 16, "2 x 8 x H100, TP 16")):
        m = memory_plan(dev, tp)
        print(f"-- {label}: {gib(m['total'])} x {GPU_MEM_UTIL} = {gib(m['share'])}; context {CONTEXT_GIB:.2f} GiB,"
              f" weights {gib(m['weights'])}, workspace {gib(m['ws'])} -> KV {gib(m['kv'])}"
              f" = {m['blocks']:,} blocks = {m['tokens']:,} tokens per GPU (and per deployment)")
        for ctx in (8192, 32768, 131072, MAX_POS):
            print(f"   context {ctx:>6}: {m['tokens'] / ctx:6.2f} sequences at full length")
    print()


@functools.lru_cache(maxsize=None)
def experts_touched(B, tp, trials, seed=5):
    """Distinct local experts per rank in one MoE layer when B tokens each pick 8 of 256 uniformly
    (an assumption: real routing is skewed). Returns (mean per rank, mean over layers of the
    busiest rank), Monte Carlo with a fixed seed."""
    rng = random.Random(seed)
    per = EXPERTS // tp
    tot_max = 0
    for _ in range(trials):
        used = set()
        for _ in range(B):
            used.update(rng.sample(range(EXPERTS), TOP_K))
        counts = [0] * tp
        for e in used:
            counts[e // per] += 1
        tot_max += max(counts)
    mean = per * (1 - (1 - TOP_K / EXPERTS) ** B)
    return mean, tot_max / trials


def decode_model(B, ctx, tp=8, hbm=HBM_PEAK, busbw=BUSBW_PEAK, lat=AR_LAT_PEAK, trials=4000, q=1):
    """One step of B sequences computing q tokens each (q = 1: decode; q = 1 + k: verifying k drafts):
    weights are read once for the B x q tokens, every sequence's index keys and selected latents
    once (the q queries of a sequence share them: the bound), FLOPs and messages grow with q."""
    groups = model_tensors()
    layer_attn = sum(rank_device_bytes(t, tp) for t in attention_tensors())
    dense_ffn = sum(rank_device_bytes(t, tp) for t in dense_ffn_tensors())
    moe_fixed = sum(rank_device_bytes(t, tp) for t in moe_router_shared_tensors())
    expert = sum(device_bytes_one(r, c, "fp8") * (n // EXPERTS) for (_, _, r, c, n, _, _, _) in routed_expert_tensors())
    head = sum(rank_device_bytes(t, tp) for _, t in groups if t[0] == "LM head") + align(HIDDEN * 4, 256)
    mean_e, max_e = experts_touched(B * q, tp, trials)
    w_dense_layer = layer_attn + dense_ffn
    w_moe_layer = layer_attn + moe_fixed + max_e * expert
    weights = DENSE_LAYERS * w_dense_layer + MOE_LAYERS * w_moe_layer + head
    sel = min(ctx, INDEX_TOPK)
    kv_idx = B * LAYERS * ctx * INDEX_DIM * 2          # every key's index key, BF16
    kv_lat = B * LAYERS * sel * (KV_LORA + QK_ROPE) * 2  # the selected latent rows, BF16
    # float32 CUDA-core FLOPs of the two kernels that read the cache (per rank)
    fl_idx = B * q * LAYERS * ctx * INDEX_HEADS * INDEX_DIM * 2
    fl_att = B * q * LAYERS * sel * (HEADS // tp) * ((KV_LORA + QK_ROPE) * 2 + KV_LORA * 2)
    t_w = weights / hbm
    t_idx = max(kv_idx / hbm, fl_idx / FP32_PEAK)
    t_att = max(kv_lat / hbm, fl_att / FP32_PEAK)
    ar_bytes = B * q * HIDDEN * 4
    n_ar = 2 * LAYERS + 1                                # two per layer + the embedding's
    t_ar = n_ar * (lat + 2 * (tp - 1) / tp * ar_bytes / busbw)
    ag_bytes = B * q * VOCAB * 4                         # gathered float32 logits rows
    t_ag = lat + (tp - 1) / tp * ag_bytes / busbw
    step = t_w + t_idx + t_att + t_ar + t_ag
    return dict(layer_attn=layer_attn, dense_ffn=dense_ffn, moe_fixed=moe_fixed, expert=expert, head=head,
                mean_e=mean_e, max_e=max_e, w_dense_layer=w_dense_layer, w_moe_layer=w_moe_layer,
                weights=weights, kv_idx=kv_idx, kv_lat=kv_lat, fl_idx=fl_idx, fl_att=fl_att,
                t_w=t_w, t_idx=t_idx, t_att=t_att, ar_bytes=ar_bytes, n_ar=n_ar, t_ar=t_ar, ag_bytes=ag_bytes,
                t_ag=t_ag, step=step, tok_s=B / step)


def mtp_pass(B, ctx, tp=8, hbm=HBM_PEAK, busbw=BUSBW_PEAK, lat=AR_LAT_PEAK, trials=4000, q=1):
    """One run of the MTP layer over B sequences, q positions each: eh_proj (replicated, as the
    CUDA backend keeps q_a/kv_a), one MoE decoder layer with its own cache, shared_head.norm and the
    main LM head's shard; the embedding's all-reduce, the layer's two, the logits all-gather."""
    layer_attn = sum(rank_device_bytes(t, tp) for t in attention_tensors())
    moe_fixed = sum(rank_device_bytes(t, tp) for t in moe_router_shared_tensors())
    expert = sum(device_bytes_one(r, c, "fp8") * (n // EXPERTS) for (_, _, r, c, n, _, _, _) in routed_expert_tensors())
    head = sum(rank_device_bytes(t, tp) for _, t in model_tensors() if t[0] == "LM head")
    eh = device_bytes_one(HIDDEN, 2 * HIDDEN, "fp8") + align(3 * HIDDEN * 4, 256)
    _, max_e = experts_touched(B * q, tp, trials)
    weights = eh + layer_attn + moe_fixed + max_e * expert + head
    sel = min(ctx, INDEX_TOPK)
    kv = B * (ctx * INDEX_DIM * 2 + sel * (KV_LORA + QK_ROPE) * 2)
    fl = B * q * (ctx * INDEX_HEADS * INDEX_DIM * 2 + sel * (HEADS // tp) * ((KV_LORA + QK_ROPE) * 2 + KV_LORA * 2))
    t = weights / hbm + max(kv / hbm, fl / FP32_PEAK)
    t += 3 * (lat + 2 * (tp - 1) / tp * B * q * HIDDEN * 4 / busbw) + lat + (tp - 1) / tp * B * VOCAB * 4 / busbw
    return t, weights


def spec_model(B, ctx, k, a, **kw):
    """Speculative decoding with k drafts, each accepted with probability a given the ones before
    (so draft j survives with a^j): a step verifies 1 + k tokens a sequence, then the MTP layer runs
    once over the kept positions (1 + the accepted drafts, on average) and k - 1 more times, one
    position each, for the chained drafts. Returns (tokens a sequence a step, step s, tokens/s)."""
    kept = 1 + sum(a ** j for j in range(1, k + 1))
    verify = decode_model(B, ctx, q=1 + k, **kw)["step"]
    t_mtp = mtp_pass(B, ctx, q=round(kept), **kw)[0] + (k - 1) * mtp_pass(B, ctx, q=1, **kw)[0]
    step = verify + t_mtp
    return kept, step, B * kept / step


def report_decode():
    print("== Modelled decode step, TP 8 on 8 x H200 (per rank; a layer waits for its slowest rank) ==")
    d = decode_model(1, 8192)
    print(f"every layer: attention shard + replicated q_a/kv_a + indexer + norms {d['layer_attn'] / 1e6:.2f} MB")
    print(f"dense layer: FFN shard {d['dense_ffn'] / 1e6:.2f} MB; MoE layer: router (f32) + bias + shared shard"
          f" {d['moe_fixed'] / 1e6:.2f} MB, each routed expert touched {d['expert'] / 1e6:.2f} MB;"
          f" per step: LM head shard + final norm {d['head'] / 1e6:.2f} MB")
    print(f"KV read per sequence, layer and token of context: index key {INDEX_DIM * 2} B (every key)"
          f" + latent row {(KV_LORA + QK_ROPE) * 2} B (only the top {INDEX_TOPK})")
    for B in (1, 8, 64, 256):
        m, x = experts_touched(B, 8, 4000)
        print(f"B={B:>3}: distinct experts per rank per MoE layer: mean {m:.2f}, busiest rank {x:.2f} of 32")
    for label, kw in (("peak figures", {}),
                      ("practical figures", dict(hbm=HBM_PRACTICAL, busbw=BUSBW_PRACTICAL, lat=AR_LAT_PRACTICAL))):
        print(f"-- {label}")
        print(f"{'B':>3} {'ctx':>6} {'weights':>9} {'idx keys':>9} {'latents':>9} {'t_w ms':>7} {'t_idx':>6}"
              f" {'t_att':>6} {'allred':>7} {'gather':>7} {'step ms':>8} {'tok/s':>7}")
        for B, ctx in ((1, 8192), (64, 8192), (1, 65536), (64, 65536)):
            d = decode_model(B, ctx, **kw)
            print(f"{B:>3} {ctx:>6} {gb(d['weights']):>9} {gb(d['kv_idx']):>9} {gb(d['kv_lat']):>9}"
                  f" {d['t_w'] * 1e3:7.3f} {d['t_idx'] * 1e3:6.3f} {d['t_att'] * 1e3:6.3f} {d['t_ar'] * 1e3:7.3f}"
                  f" {d['t_ag'] * 1e3:7.3f} {d['step'] * 1e3:8.3f} {d['tok_s']:7.1f}")
    d1, d64 = decode_model(1, 8192), decode_model(64, 8192)
    print(f"all-reduce: {d1['n_ar']} a step of B x {HIDDEN} x 4 bytes = {d1['ar_bytes']:,} B at B=1,"
          f" {d64['ar_bytes']:,} B at B=64; logits all-gather {d1['ag_bytes']:,} B at B=1, {d64['ag_bytes']:,} B at B=64")
    # GEMM work per token on one rank: its share of every projection, 8/tp experts on average
    mm = sum(rank_params(t, 8) for t in attention_tensors() if t[3])
    mm = LAYERS * mm + DENSE_LAYERS * sum(rank_params(t, 8) for t in dense_ffn_tensors())
    mm += MOE_LAYERS * (sum(rank_params(t, 8) for t in moe_router_shared_tensors() if t[3])
                        + TOP_K / 8 * 3 * MOE_INTER * HIDDEN)
    mm += VOCAB // 8 * HIDDEN
    print(f"FLOPs at B=64, ctx 8192, per rank: indexer {d64['fl_idx'] / 1e9:.0f} GFLOP, attention"
          f" {d64['fl_att'] / 1e9:.0f} GFLOP (float32 CUDA cores, {FP32_PEAK / 1e12:.0f} TFLOP/s);"
          f" projections and experts {2 * 64 * mm / 1e12:.2f} TFLOP ({mm / 1e9:.2f} G weights a token;"
          f" FP8 tensor cores at {FP8_PEAK / 1e12:.0f} TFLOP/s: {2 * 64 * mm / FP8_PEAK * 1e3:.2f} ms)")
    print()


def report_spec():
    print("== Speculative decoding with the MTP layer, TP 8 on 8 x H200, context 8192 ==")
    t1, w1 = mtp_pass(1, 8192)
    print(f"one MTP pass at B=1 reads {w1 / 1e6:.1f} MB a rank (eh_proj, one MoE layer, the LM head shard)"
          f" and takes {t1 * 1e3:.3f} ms at the peak figures")
    for label, kw in (("peak figures", {}),
                      ("practical figures", dict(hbm=HBM_PRACTICAL, busbw=BUSBW_PRACTICAL, lat=AR_LAT_PRACTICAL))):
        print(f"-- {label}")
        print(f"{'B':>3} {'k':>2} {'accept':>6} {'tok/seq/step':>12} {'step ms':>8} {'tok/s':>8} {'plain tok/s':>11}"
              f" {'speed-up':>8}")
        for B in (1, 64):
            plain = decode_model(B, 8192, **kw)
            for k in (1, 2, 3):
                for a in (0.6, 0.8, 0.9):
                    kept, step, tok_s = spec_model(B, 8192, k, a, **kw)
                    print(f"{B:>3} {k:>2} {a:>6.2f} {kept:>12.2f} {step * 1e3:8.2f} {tok_s:8.0f} {plain['tok_s']:11.0f}"
                          f" {tok_s / plain['tok_s']:8.2f}")
    print()


def main(argv):
    what = argv[1:] or ["params", "weights", "kv", "decode", "spec"]
    table = {"params": report_params, "weights": report_weights, "kv": report_kv, "decode": report_decode,
             "spec": report_spec}
    for w in what:
        if w not in table:
            sys.exit(f"usage: {argv[0]} [params|weights|kv|decode|spec ...]")
        table[w]()


if __name__ == "__main__":
    main(sys.argv)
