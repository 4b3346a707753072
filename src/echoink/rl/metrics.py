"""Per-step metrics, named as TRL names them where TRL has the metric."""

from __future__ import annotations

import math

import torch


def step_metrics(batch, update: dict[str, float], run, step_time: float) -> dict[str, float]:
    """One metrics.jsonl row: rewards (total and by name), lengths, KL, clipping, entropy, timings."""
    exp = batch.experience
    g = exp.group_size
    lengths = exp.completion_mask.sum(1).float()  # [N]
    per_group_std = batch.rewards.view(-1, g).std(1)
    out = {
        "reward": float(batch.rewards.mean()),
        "reward_std": float(per_group_std.mean()),
        "frac_reward_zero_std": float(batch.zero_std.float().mean()),
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(exp.truncated.float().mean()),
        "lr": float(run.scheduler.get_last_lr()[0]),
        "step_time": step_time,
        "tokens_per_second": float(lengths.sum()) / max(step_time, 1e-9),
        "epoch": float(run.sampler.epoch),
    }
    for k, name in enumerate(batch.reward_names):
        column = batch.reward_matrix[:, k]
        valid = column[~torch.isnan(column)]
        out[f"rewards/{name}/mean"] = float(valid.mean()) if len(valid) else math.nan
        out[f"rewards/{name}/std"] = float(valid.std()) if len(valid) > 1 else math.nan
    out.update(batch.timings)
    out.update(update)
    return out
