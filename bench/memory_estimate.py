"""Per-GPU training memory of the Qwen2.5-Omni-7B thinker under each shipped setup, computed, not guessed.

Parameter counts come from instantiating the thinker on the meta device (no weights, no download)
from ``Qwen2_5OmniThinkerConfig`` with the released 7B's sizes (``SEVEN_B``, from its config.json:
transformers' defaults are 7B-like but give the vision tower the LLM's width, 3B parameters too many,
and tie the embeddings). Bytes per parameter follow the
ZeRO paper's accounting: pure-bf16 DDP keeps bf16 weights, grads and AdamW moments; DeepSpeed bf16
keeps bf16 weights and grads plus fp32 master weights and moments (12 B), sharded by stage.
Activations are for the LLM only (the towers run once per prompt): with gradient checkpointing one
saved [tokens, hidden] bf16 input per layer plus one layer's working set re-computed in backward
(~34 · tokens · hidden bytes, Korthikanti et al. 2022, with flash attention), plus the [tokens, V]
logits in bf16 and their fp32 log-softmax. Tokens per process = prompt once (shared prefix) +
G · max_new_tokens. Under ZeRO-3 the frozen reference is partitioned like the policy (an
inference-only DeepSpeed engine, ``rl/sharding.py``), and the rollout gathers the full bf16 weights
once (``full_weights``): ``rollout_peak`` is that moment (full weights + optimiser + reference shard;
no activations or gradients are live then; the KV cache of G · max_new_tokens is not included).
Buffers, fragmentation and CUDA context (~2-4 GB) are not included.

    python bench/memory_estimate.py            # markdown table (docs/scaling.md)
    python bench/memory_estimate.py --json     # one JSON line per setup
"""

from __future__ import annotations

import argparse
import json
import re

GiB = 1024**3
SEVEN_B = {
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584},
    "audio_config": {"d_model": 1280, "encoder_layers": 32, "encoder_ffn_dim": 5120, "output_dim": 3584},
    "text_config": {"hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944, "vocab_size": 152064,
                    "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
}  # fmt: skip


def count_params(lora_rank: int = 64) -> dict[str, int]:
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    cfg = Qwen2_5OmniThinkerConfig(**SEVEN_B)
    with torch.device("meta"):
        model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
    out = {"total": 0, "llm": 0, "audio": 0, "vision": 0, "lora": 0}
    lora_target = re.compile(r"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj$")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and lora_target.search(name):
            out["lora"] += lora_rank * (module.in_features + module.out_features)
    for name, p in model.named_parameters():
        out["total"] += p.numel()
        part = "audio" if "audio_tower" in name else "vision" if "visual" in name else "llm"
        out[part] += p.numel()
    text = cfg.text_config
    out.update(hidden=text.hidden_size, layers=text.num_hidden_layers, vocab=text.vocab_size)
    return out


def activations(n: dict, tokens: int) -> float:
    saved = n["layers"] * tokens * n["hidden"] * 2  # checkpointed layer inputs, bf16
    working = 34 * tokens * n["hidden"]  # one layer recomputed in backward
    logits = tokens * n["vocab"] * (2 + 4)  # bf16 logits + fp32 log-softmax
    return saved + working + logits


def setups(n: dict, tokens: int) -> list[dict]:
    p, lora = n["total"], n["lora"]
    act = activations(n, tokens)
    rows = []

    def row(name, gpus, weights, grads, optim, reference, gathered=None):
        rollout = (gathered if gathered is not None else weights) + optim + reference
        rows.append(
            {
                "setup": name,
                "gpus": gpus,
                "params_GiB": weights / GiB,
                "grads_GiB": grads / GiB,
                "optimizer_GiB": optim / GiB,
                "reference_GiB": reference / GiB,
                "activations_GiB": act / GiB,
                "total_GiB": (weights + grads + optim + reference + act) / GiB,
                "rollout_peak_GiB": rollout / GiB,
            }
        )

    row("DDP, pure bf16 AdamW", 8, 2 * p, 2 * p, 4 * p, 2 * p)
    row("DeepSpeed ZeRO-2, bf16", 8, 2 * p, 2 * p / 8, 12 * p / 8, 2 * p)
    row("DeepSpeed ZeRO-3, bf16 (paper)", 8, 2 * p / 8, 2 * p / 8, 12 * p / 8, 2 * p / 8, gathered=2 * p)
    row("ZeRO-3, 2 nodes x 8", 16, 2 * p / 16, 2 * p / 16, 12 * p / 16, 2 * p / 16, gathered=2 * p)
    # LoRA: frozen bf16 base, fp32 adapters with fp32 grads and AdamW moments; the reference is the
    # base with adapters disabled (no copy).
    row(f"LoRA r=64, 1 GPU ({lora / 1e6:.0f}M adapter params)", 1, 2 * p + 4 * lora, 4 * lora, 8 * lora, 0)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=1000, help="10 s audio + 512-patch image + text")
    ap.add_argument("--generations", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=768)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = count_params()
    tokens = args.prompt_tokens + args.generations * args.max_new_tokens
    rows = setups(n, tokens)
    if args.json:
        for r in rows:
            print(json.dumps({**r, "tokens_per_process": tokens, **{f"params_{k}": v for k, v in n.items()}}))
        return
    print(
        f"Qwen2.5-Omni-7B thinker: {n['total'] / 1e9:.2f}B parameters (LLM {n['llm'] / 1e9:.2f}B, "
        f"audio {n['audio'] / 1e6:.0f}M, vision {n['vision'] / 1e6:.0f}M); {tokens} tokens per process "
        f"per pass (prompt {args.prompt_tokens} + G={args.generations} x {args.max_new_tokens}).\n"
    )
    cols = ["params", "grads", "optimizer", "reference", "activations", "total", "rollout_peak"]
    print("| setup | GPUs | " + " | ".join(f"{c} GiB" for c in cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    for r in rows:
        print(f"| {r['setup']} | {r['gpus']} | " + " | ".join(f"{r[c + '_GiB']:.1f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
