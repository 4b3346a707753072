"""Checks that a multi-process launch is what the trainer expects (accelerate / DeepSpeed)."""

from __future__ import annotations

import os

from accelerate import Accelerator

from ..config import Config


def check_world(accelerator: Accelerator) -> None:
    """Fail if the launcher started several processes that did not form one group."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise RuntimeError(
            f"launched as {launched} processes but accelerate formed a group of {accelerator.num_processes}: "
            "each would train alone. Without a GPU, set ACCELERATE_USE_CPU=1 (docs/scaling.md)."
        )


def deepspeed_problems(ds: dict, cfg: Config) -> list[str]:
    """What in a DeepSpeed config contradicts how this trainer drives it ("auto" entries are left alone).

    The trainer accumulates its own mini-batches (``_chunk_weights``) and DeepSpeed steps inside
    ``accelerator.backward`` at every accumulation boundary and divides the loss by its accumulation
    steps, so those must be 1 and a pass must be one mini-batch. There is no dataloader, so the
    micro-batch size must be a number. Clipping and precision must agree with the recipe.
    """
    out = []
    gas = ds.get("gradient_accumulation_steps", "auto")
    if gas not in (1, "auto"):
        out.append(f"gradient_accumulation_steps must be 1 (the trainer accumulates), got {gas}")
    if cfg.train.mini_batch_prompts not in (0, cfg.train.prompts_per_step):
        out.append("train.mini_batch_prompts must be 0 (one mini-batch per pass) under DeepSpeed")
    mbs = ds.get("train_micro_batch_size_per_gpu", "auto")
    if not isinstance(mbs, int):
        out.append(f"train_micro_batch_size_per_gpu must be an integer (no dataloader), got {mbs!r}")
    clip = ds.get("gradient_clipping", "auto")
    if clip != "auto" and float(clip) != cfg.train.max_grad_norm:
        out.append(f"gradient_clipping {clip} != train.max_grad_norm {cfg.train.max_grad_norm}")
    bf16 = ds.get("bf16", {}).get("enabled", False)
    if bf16 != "auto" and bool(bf16) != (cfg.train.mixed_precision == "bf16"):
        out.append(f"bf16.enabled={bf16} but train.mixed_precision={cfg.train.mixed_precision}")
    return out
