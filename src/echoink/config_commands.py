"""The recipe's sections for the commands around training: ``eval`` and ``sft``; each field is
documented once, by the string under it (the training sections: ``config_sections``).

``echoink.config`` assembles them into ``Config`` and loads YAML recipes; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config_sections import _check


@dataclass
class EvalConfig:
    template: str = "reasoning"
    """Prompt template for evaluation (the same for every model compared)."""
    decoding: str = "greedy"
    """greedy or sample."""
    samples: int = 1
    """Samples per item when decoding=sample."""
    batch_size: int = 16
    """Prompts per generation batch (left padded)."""
    max_new_tokens: int = 128
    """Longest completion at evaluation."""
    max_items: int | None = None
    """Validation while training uses only the first N items of ``data.val_path`` (a fixed subset)."""

    def __post_init__(self) -> None:
        _check(
            self.decoding in ("greedy", "sample"),
            "eval.decoding",
            f"must be greedy or sample, got {self.decoding!r}",
        )
        _check(
            self.samples >= 1 and self.batch_size >= 1 and self.max_new_tokens >= 1,
            "eval",
            "samples, batch_size, max_new_tokens must be >= 1",
        )
        _check(self.max_items is None or self.max_items >= 1, "eval.max_items", "must be >= 1 or null")


@dataclass
class SFTConfig:
    output_dir: str = "runs/sft"
    """Where the fine-tuned model (final/), metrics.jsonl and config.yaml go."""
    trace_field: str = "reasoning"
    """Row field holding the target completion ("<think>...</think><answer>X</answer>")."""
    max_steps: int = 200
    """Optimiser steps."""
    batch_size: int = 16
    """Prompts per step."""
    lr: float = 1e-3
    """AdamW learning rate (constant after warm-up)."""
    warmup_steps: int = 10
    """Linear warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seeds data order and initialisation of anything random."""
    save_every: int = 0
    """Also save the model as ``step-N/`` every N steps (0: only ``final/``); for finding the cold-start length."""

    def __post_init__(self) -> None:
        _check(self.save_every >= 0, "sft.save_every", "must be >= 0")
        for name in ("max_steps", "batch_size"):
            _check(getattr(self, name) >= 1, f"sft.{name}", "must be >= 1")
        _check(0 < self.lr <= 1, "sft.lr", "must be in (0, 1] (see train.lr)")
        _check(self.warmup_steps >= 0, "sft.warmup_steps", "must be >= 0")
