"""Per-GPU memory of a recipe on its launch, computed from the model's sizes (``echoink doctor``, bench/memory_estimate.py).

The released models' sizes (``SIZES``) are their published thinker configs' parameter counts, built on the
meta device by bench/memory_estimate.py (tests/test_gpu_ready.py holds the two equal). Bytes follow the
ZeRO paper's accounting: DDP in bf16 keeps bf16 weights, grads and AdamW moments (8 B a trained
parameter); DeepSpeed keeps bf16 weights and grads plus fp32 master weights and moments (16 B),
sharded by stage; LoRA keeps the frozen base in bf16 and fp32 adapters (16 B each). Activations use
the one measured figure: 337,276 bytes per token per decoder layer at the 7B's width (3,584) without
checkpointing (scaled by width for other models). echoink's checkpointed policy pass (model/checkpointed.py)
runs the B prompts once at full activation and replays ``train.completions_per_pass`` completions at a
time; without checkpointing every token of the pass is live. Logits: [tokens, V] bf16 + fp32 log-softmax
for the tokens live at once. Rollout: ZeRO-3 gathers the full bf16 weights (``rl/sharding.full_weights``);
the hf engine's KV cache holds the prompts once and G·T completion tokens; vLLM takes
``rollout.vllm_gpu_memory_utilization`` of the GPU (freed between rollouts with ``rollout.vllm_sleep``).
Not counted: the CUDA context, allocator fragmentation and buffers (``RESERVE_GIB``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1024**3
RESERVE_GIB = 4.0  # CUDA context, NCCL buffers, allocator fragmentation: left free by "fits"
ACT_BYTES_7B = 337_276  # per token per decoder layer at hidden 3,584, no checkpointing (measured, DESIGN.md)
PROMPT_TOKENS = 700  # 10 s audio (250) + a 200,704-px image (<= 256) + the question and template


@dataclass(frozen=True)
class ModelSize:
    """A released thinker's sizes (parameter counts from its meta-device build)."""

    name: str
    params: int
    hidden: int
    layers: int
    vocab: int
    kv_heads: int
    head_dim: int
    towers: int  # audio + vision tower parameters
    lora_in_out: dict[str, int]  # LoRA target name -> in + out features of one layer's module

    def lora_params(self, rank: int, targets: list[str]) -> int:
        return rank * self.layers * sum(self.lora_in_out.get(t, 0) for t in targets)


SIZES = {
    "qwen2.5-omni": ModelSize(
        "Qwen2.5-Omni-7B thinker", 8_931_813_888, 3584, 28, 152_064, 4, 128, 1_316_197_376,
        {"q_proj": 7168, "k_proj": 4096, "v_proj": 4096, "o_proj": 7168, "gate_proj": 22528,
         "up_proj": 22528, "down_proj": 22528},
    ),
    "qwen3-omni": ModelSize(
        "Qwen3-Omni-30B-A3B thinker", 31_719_205_488, 2048, 48, 152_064, 4, 128, 1_186_558_576,
        {"q_proj": 6144, "k_proj": 2560, "v_proj": 2560, "o_proj": 6144},
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Launch:
    """Where a recipe runs: GPUs (one process each), GiB per GPU, ZeRO stage (0: DDP), what is offloaded."""

    gpus: int
    gib_per_gpu: float
    zero: int = 0
    offload_params: bool = False
    offload_optimizer: bool = False


def recipe_launch(recipe: Path, root: Path) -> Launch | None:
    """The launch a recipe's header names: ``# Hardware: N x M GB`` and the ``--config_file`` of its
    launch line (its DeepSpeed JSON gives the stage and offloads). None without a hardware line."""
    text = recipe.read_text()
    hw = re.search(r"^#\s*Hardware:\s*(\d+)\s*x\s*(\d+)\s*GB", text, re.M | re.I)
    if not hw:
        return None
    gpus, gb = int(hw.group(1)), float(hw.group(2))
    zero, off_p, off_o = 0, False, False
    conf = re.search(r"--config_file\s+(\S+)", text)
    if conf:
        import yaml

        acc = yaml.safe_load((root / conf.group(1)).read_text())
        ds_file = (acc.get("deepspeed_config") or {}).get("deepspeed_config_file")
        if ds_file:
            z = json.loads((root / ds_file).read_text())["zero_optimization"]
            zero = int(z["stage"])
            off_p = z.get("offload_param", {}).get("device") == "cpu"
            off_o = z.get("offload_optimizer", {}).get("device") == "cpu"
    return Launch(gpus, gb * 1e9 / GiB, zero, off_p, off_o)


def activation_bytes(size: ModelSize, cfg: Any, checkpointing: bool) -> float:
    """Live activation bytes of one policy pass on one process (see the module docstring)."""
    per_token = ACT_BYTES_7B * size.hidden / 3584 * size.layers
    b, g, t = cfg.train.prompts_per_step, cfg.rollout.num_generations, cfg.rollout.max_new_tokens
    if cfg.train.mini_batch_prompts:
        b = min(b, cfg.train.mini_batch_prompts)
    logits = 2 + 4
    if not checkpointing:
        return (b * PROMPT_TOKENS + b * g * t) * (per_token + size.vocab * logits)
    chunk = (cfg.train.completions_per_pass or b * g) * t  # completion tokens replayed at once
    return b * PROMPT_TOKENS * per_token + chunk * (per_token + size.vocab * logits)


def _states(size: ModelSize, cfg: Any, launch: Launch) -> dict[str, float]:
    """Weights, grads, optimiser and reference bytes per GPU."""
    p, w = size.params, launch.gpus
    if cfg.model.lora_rank:
        lora = size.lora_params(cfg.model.lora_rank, cfg.model.lora_target_modules)
        base = 0 if launch.offload_params else 2 * p / (w if launch.zero == 3 else 1)
        return {"weights": base + 4 * lora, "grads": 4 * lora, "optimizer": 8 * lora, "reference": 0}
    trained = p - (size.towers if cfg.model.freeze_audio_tower and cfg.model.freeze_vision_tower else 0)
    shard = w if launch.zero else 1
    weights = 0 if launch.offload_params else 2 * p / (w if launch.zero == 3 else 1)
    optim = 0 if launch.offload_optimizer else (12 if launch.zero else 4) * trained / shard
    reference = 2 * p / (w if launch.zero == 3 else 1) if cfg.algo.beta > 0 else 0
    return {"weights": weights, "grads": 2 * trained / (w if launch.zero >= 2 else 1), "optimizer": optim,
            "reference": reference}  # fmt: skip


def estimate(size: ModelSize, cfg: Any, launch: Launch) -> dict[str, float]:
    """GiB per GPU: states, activations (with and without checkpointing), rollout memory, the two peaks."""
    s = _states(size, cfg, launch)
    act = {c: activation_bytes(size, cfg, c) for c in (True, False)}
    b, g, t = cfg.train.prompts_per_step, cfg.rollout.num_generations, cfg.rollout.max_new_tokens
    kv = (b * PROMPT_TOKENS + b * g * t) * 2 * size.layers * size.kv_heads * size.head_dim * 2
    gpu = launch.gib_per_gpu * GiB
    vllm = cfg.rollout.vllm_gpu_memory_utilization * gpu if cfg.rollout.engine == "vllm" else 0.0
    rollout_mem = vllm if vllm else kv
    gathered = 2 * size.params if launch.zero == 3 else 0.0  # full_weights, next to the shards
    resident = sum(s.values())
    train = resident + act[cfg.model.gradient_checkpointing] + (0 if cfg.rollout.vllm_sleep else vllm)
    rollout = resident + gathered + rollout_mem
    out = {k + "_GiB": v / GiB for k, v in s.items()}
    out |= {"activations_ckpt_GiB": act[True] / GiB, "activations_no_ckpt_GiB": act[False] / GiB}
    out |= {"rollout_kv_GiB": kv / GiB, "vllm_GiB": vllm / GiB, "train_peak_GiB": train / GiB}
    out |= {"rollout_peak_GiB": rollout / GiB, "gpu_GiB": launch.gib_per_gpu}
    out["fits"] = max(train, rollout) / GiB + RESERVE_GIB <= launch.gib_per_gpu
    return out


def recipe_family(recipe: Path) -> str | None:
    """The family a GPU recipe's header names (``# Model family: qwen3-omni``; its model is not here to read)."""
    found = re.search(r"^#\s*Model family:\s*(\S+)", recipe.read_text(), re.M | re.I)
    return found.group(1) if found else None
