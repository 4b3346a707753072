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

import torch

from ..config import Config
from ..data import Sample, load_split
from ..errors import UserError
from ..runlog import read_jsonl
from ..scoring.predict import Decoding, EvalSettings, predict_batch
from .state import Handles

log = logging.getLogger(__name__)

COUNTS = ("correct", "format_ok", "unparseable", "length", "n")


@dataclass
class Validator:
    """This process's share of the validation items and the best accuracy seen so far."""

    items: list[Sample]
    weights: list[float]  # 1 for a real item, 0 for padding
    total: int
    best: float = -math.inf
    improved: bool = False  # the last validation's accuracy was a new best


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


def make_validator(cfg: Config, rank: int, world: int, metrics_path: Path) -> Validator | None:
    """The validator of a run, or None when ``train.eval_every`` is 0. On resume the best accuracy so
    far is read back from metrics.jsonl, so ``best/`` is only replaced by a better model."""
    if not cfg.train.eval_every:
        return None
    samples = load_split(cfg.data.val_path, on_error=cfg.data.on_error).samples[: cfg.eval.max_items]
    if not samples:
        raise UserError(f"{cfg.data.val_path}: no valid items to validate on")
    items, weights = shard(samples, rank, world)
    logged = read_jsonl(metrics_path) if metrics_path.exists() else []
    seen = [r["eval/accuracy"] for r in logged if r.get("eval/accuracy") is not None]
    return Validator(items, weights, len(samples), max(seen, default=-math.inf))


def validation_metrics(cfg: Config, h: Handles, validator: Validator | None, step: int) -> dict[str, float]:
    """``eval/*`` metrics when ``step`` is due (else {}); ``validator.improved`` says whether the
    accuracy is the best so far (the trainer then saves ``best/`` if ``train.keep_best``).

    A collective: every process calls it every step."""
    if validator is None or step % cfg.train.eval_every:
        return {}
    counts = _local_counts(cfg, h, validator, step)
    total = h.accelerator.reduce(counts.to(h.accelerator.device), reduction="sum").tolist()
    c = dict(zip(COUNTS, total, strict=True))
    n = max(c["n"], 1.0)
    metrics = {
        "eval/accuracy": c["correct"] / n,
        "eval/format_rate": c["format_ok"] / n,
        "eval/unparseable_rate": c["unparseable"] / n,
        "eval/mean_length": c["length"] / n,
        "eval/n": c["n"],
    }
    validator.improved = metrics["eval/accuracy"] > validator.best
    validator.best = max(validator.best, metrics["eval/accuracy"])
    return metrics


@torch.no_grad()
def _local_counts(cfg: Config, h: Handles, validator: Validator, step: int) -> torch.Tensor:
    """[5] sums over this process's real items: correct, format_ok, unparseable, completion tokens, items."""
    d, r = cfg.data, cfg.rollout
    settings = EvalSettings(
        d.template, Decoding("greedy"), r.max_new_tokens, d.max_audio_seconds, d.max_pixels, d.video()
    )
    size = cfg.eval.batch_size
    sums = torch.zeros(len(COUNTS), dtype=torch.float64)
    was_training = h.policy.training
    h.policy.eval()
    with h.backend.full_weights(h.scorer):  # ZeRO-3: gathered once, not per token
        h.engine.sampler.sync(h.policy, version=step)  # the weights after this step
        for start in range(0, len(validator.items), size):
            items = validator.items[start : start + size]
            rows = predict_batch(h.policy, h.engine, items, "none", settings)
            for row, w in zip(rows, validator.weights[start : start + size], strict=True):
                values = (row["correct"], row["format_ok"], row["pred"] is None, row["length"], 1)
                sums += w * torch.tensor([float(v) for v in values], dtype=torch.float64)
    h.policy.train(was_training)
    return sums
