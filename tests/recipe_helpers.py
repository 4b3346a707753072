"""A small GRPO recipe for the trainer tests (tiny model, two prompts, two completions, a few steps)."""

from __future__ import annotations

from pathlib import Path

from echoink.config import load_config

SIGNAL = "media_helpers:parity_reward"  # an untrained model never earns accuracy/format: give GRPO a signal


def recipe(model_dir: Path, split: Path, out: Path, *extra: str):
    overrides = [
        f"model.path={model_dir}", f"data.train_path={split}", f"train.output_dir={out}",
        "train.max_steps=3", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=8", "train.lr=1e-3", "train.save_every=100", "train.seed=3",
        "train.weight_decay=0", f"algo.rewards={{accuracy: 1.0, format: 1.0, '{SIGNAL}': 1.0}}",
    ]  # fmt: skip
    return load_config(None, overrides + list(extra))
