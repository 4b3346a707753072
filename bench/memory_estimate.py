"""Per-GPU memory of every shipped GPU recipe on the hardware its header names, and the released thinkers'
parameter counts built on the meta device (no weights, no download) from their published configs.

The arithmetic is ``echoink.sizing`` (also what ``echoink doctor`` uses; its docstring has the byte
accounting). The parameter counts there are checked here against the meta-device build (``--check``)
from the released config.json values below (transformers' defaults are not the releases': Qwen2.5's
gives the vision tower the LLM's width, 3B parameters too many, and ties the embeddings; Qwen3's is a
28-layer, 18B model).

    python bench/memory_estimate.py            # markdown table, one row per shipped GPU recipe
    python bench/memory_estimate.py --json     # one JSON line per recipe, then the parameter counts
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Qwen/Qwen2.5-Omni-7B config.json, thinker_config (the sizes that set the parameter count).
QWEN25_7B = {
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
    "audio_config": {"d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                     "num_mel_bins": 128, "max_source_positions": 1500, "output_dim": 3584},
    "text_config": {"hidden_size": 3584, "num_hidden_layers": 28, "intermediate_size": 18944, "vocab_size": 152064,
                    "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
}  # fmt: skip
# Qwen/Qwen3-Omni-30B-A3B-Instruct config.json, thinker_config (Qwen3-30B-A3B's text model: 48 layers,
# 128 experts, 8 a token; the AuT audio encoder; the 27-block SigLIP2-style vision tower).
QWEN3_30B = {
    "text_config": {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
                    "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
                    "intermediate_size": 768, "vocab_size": 152064, "tie_word_embeddings": False},
    "audio_config": {"d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                     "output_dim": 2048},
    "vision_config": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "out_hidden_size": 2048},
}  # fmt: skip


def count_params(family: str) -> dict[str, int]:
    """Parameters of the released thinker of ``family``, built on the meta device."""
    import torch
    import transformers

    name, sizes = {"qwen2.5-omni": ("Qwen2_5Omni", QWEN25_7B), "qwen3-omni": ("Qwen3OmniMoe", QWEN3_30B)}[
        family
    ]
    cfg = getattr(transformers, f"{name}ThinkerConfig")(**sizes)
    with torch.device("meta"):
        model = getattr(transformers, f"{name}ThinkerForConditionalGeneration")(cfg)
    out = {"total": 0, "llm": 0, "audio": 0, "vision": 0}
    for pname, p in model.named_parameters():
        out["total"] += p.numel()
        out["audio" if "audio_tower" in pname else "vision" if "visual" in pname else "llm"] += p.numel()
    return out


def recipe_rows() -> list[dict]:
    """One estimate per shipped recipe whose header names its hardware."""
    from echoink.config import load_config
    from echoink.sizing import SIZES, estimate, recipe_family, recipe_launch

    rows = []
    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        launch = recipe_launch(recipe, ROOT)
        if launch is None:
            continue
        family = recipe_family(recipe)
        est = estimate(SIZES[family], load_config(recipe), launch)
        rows.append(
            {"recipe": recipe.name, "family": family, "gpus": launch.gpus, "zero": launch.zero, **est}
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = recipe_rows()
    counts = {f: count_params(f) for f in ("qwen2.5-omni", "qwen3-omni")}
    if args.json:
        for r in rows:
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))
        print(json.dumps({"setup": "parameter counts (meta device)", **counts}))
        return
    for f, n in counts.items():
        print(f"{f}: {n['total'] / 1e9:.2f}B parameters (LLM {n['llm'] / 1e9:.2f}B, audio {n['audio'] / 1e6:.0f}M, "
              f"vision {n['vision'] / 1e6:.0f}M)")  # fmt: skip
    cols = ["weights", "grads", "optimizer", "reference", "activations_ckpt", "activations_no_ckpt", "rollout_kv",
            "vllm", "train_peak", "rollout_peak"]  # fmt: skip
    print("\n| recipe | GPUs x GiB | ZeRO | " + " | ".join(cols) + " | fits |")
    print("|---|---|---:|" + "---:|" * len(cols) + "---|")
    for r in rows:
        vals = " | ".join(f"{r[c + '_GiB']:.1f}" for c in cols)
        print(f"| {r['recipe']} | {r['gpus']} x {r['gpu_GiB']:.1f} | {r['zero']} | {vals} | {r['fits']} |")


if __name__ == "__main__":
    main()
