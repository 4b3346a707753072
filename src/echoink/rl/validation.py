"""Validation while training: greedy evaluation of the policy on ``data.val_path`` every ``train.eval_every`` steps.

The policy is decoded exactly as ``echoink eval`` decodes a saved model (the same ``predict_batch``, the
rewards' strict parser), with the training's prompt, media budgets and completion length. On several
processes each takes an equal share of the items (padded with repeats that count for nothing, so
every process runs the same number of batches) and the counts are summed across them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import Sample, load_split
from .sharding import full_weights

log = logging.getLogger(__name__)

COUNTS = ("correct", "format_ok", "unparseable", "length", "n")


@dataclass
class Validator:
    """This process's share of the validation items and the best accuracy seen so far."""

    items: list[Sample]
    weights: list[float]  # 1 for a real item, 0 for padding
    total: int
    best: float = -math.inf


def shard(samples: list[Sample], rank: int, world: int) -> tuple[list[Sample], list[float]]:
    """Items ``rank::world``, padded with repeats of the first item (weight 0) to ceil(n / world) each.

    >>> from echoink.data import Sample
    >>> s = [Sample(str(i), "q", ("A. x", "B. y"), "A", None, None, "text") for i in range(3)]
    >>> [([x.id for x in items], w) for items, w in (shard(s, r, 2) for r in range(2))]
    [(['0', '2'], [1.0, 1.0]), (['1', '0'], [1.0, 0.0])]
    """
    per = math.ceil(len(samples) / world)
    mine = samples[rank::world]
    return mine + [samples[0]] * (per - len(mine)), [1.0] * len(mine) + [0.0] * (per - len(mine))


def make_validator(run: Any) -> Validator | None:
    """The validator of a run, or None when ``train.eval_every`` is 0. On resume the best accuracy so
    far is read back from metrics.jsonl, so ``best/`` is only replaced by a better model."""
    cfg, acc = run.cfg, run.accelerator
    if not cfg.train.eval_every:
        return None
    samples = load_split(cfg.data.val_path, on_error=cfg.data.on_error).samples[: cfg.eval.max_items]
    if not samples:
        raise ValueError(f"{cfg.data.val_path}: no valid items to validate on")
    items, weights = shard(samples, acc.process_index, acc.num_processes)
    seen = [r["eval/accuracy"] for r in _logged(run.log.metrics_path) if r.get("eval/accuracy") is not None]
    return Validator(items, weights, len(samples), max(seen, default=-math.inf))


def _logged(path: Path) -> list[dict[str, Any]]:
    from ..runlog import read_jsonl

    return read_jsonl(path) if path.exists() else []


def validation_metrics(run: Any, validator: Validator | None) -> dict[str, float]:
    """``eval/*`` metrics when this step is due (else {}); saves ``best/`` on a new best if ``train.keep_best``."""
    cfg = run.cfg
    if validator is None or run.step % cfg.train.eval_every:
        return {}
    counts = _local_counts(run, validator)
    total = run.accelerator.reduce(counts.to(run.accelerator.device), reduction="sum").tolist()
    c = dict(zip(COUNTS, total, strict=True))
    n = max(c["n"], 1.0)
    metrics = {
        "eval/accuracy": c["correct"] / n,
        "eval/format_rate": c["format_ok"] / n,
        "eval/unparseable_rate": c["unparseable"] / n,
        "eval/mean_length": c["length"] / n,
        "eval/n": c["n"],
    }
    if cfg.train.keep_best and metrics["eval/accuracy"] > validator.best:
        _save_best(run)
    validator.best = max(validator.best, metrics["eval/accuracy"])
    return metrics


@torch.no_grad()
def _local_counts(run: Any, validator: Validator) -> torch.Tensor:
    """[5] sums over this process's real items: correct, format_ok, unparseable, completion tokens, items."""
    from ..scoring.predict import Decoding, EvalSettings, predict_batch

    d, r = run.cfg.data, run.cfg.rollout
    settings = EvalSettings(
        d.template, Decoding("greedy"), r.max_new_tokens, d.max_audio_seconds, d.max_pixels, d.video()
    )
    size = run.cfg.eval.batch_size
    sums = torch.zeros(len(COUNTS), dtype=torch.float64)
    was_training = run.policy.training
    run.policy.eval()
    with full_weights(run.accelerator, run.scorer):  # ZeRO-3: gathered once, not per token
        for start in range(0, len(validator.items), size):
            items = validator.items[start : start + size]
            rows = predict_batch(run.policy, run.engine, items, "none", settings)
            for row, w in zip(rows, validator.weights[start : start + size], strict=True):
                values = (row["correct"], row["format_ok"], row["pred"] is None, row["length"], 1)
                sums += w * torch.tensor([float(v) for v in values], dtype=torch.float64)
    run.policy.train(was_training)
    return sums


def _save_best(run: Any) -> None:
    """``run_dir/best``: the policy as ``final/`` would be, with its recipe and the step it is from."""
    from ..recipe_card import write_recipe
    from .persistence import save_policy

    best = Path(run.run_dir) / "best"
    save_policy(run, best)  # every process: ZeRO-3 gathers
    if run.accelerator.is_main_process:
        write_recipe(run.cfg, best, "grpo")
        (best / "step.txt").write_text(f"{run.step}\n")
    run.accelerator.wait_for_everyone()
