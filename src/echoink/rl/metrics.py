"""Per-step metrics, named as TRL names them where TRL has the metric, and the rows of rollouts.jsonl.

With several processes every number describes the global batch: per-completion tensors are gathered
from all processes before the statistics are taken, the update's scalars are averaged over processes
and timings take the slowest process (the step waits for it). ``step_metrics`` is therefore a
collective call: every process must make it every step.
"""

from __future__ import annotations

import math

import torch

from .experience import Experience

# Timings: the step waits for the slowest process.
_TIMES = ("time/", "step_time")


def step_metrics(
    batch: Experience, update: dict[str, float], accelerator, lr: float, epoch: int, step_time: float
) -> dict[str, float]:
    """One metrics.jsonl row: rewards (total and by name), lengths, KL (when computed), clipping, sampled-token NLL, timings.

    ``update`` is the optimisation's own numbers (``optimise.optimise``); ``lr`` the schedule's rate
    after the step, ``epoch`` the sampler's."""
    acc, exp = accelerator, batch
    g = exp.group_size
    local = torch.cat(
        [
            batch.rewards.float()[:, None],  # [N, 1]
            exp.completion_mask.sum(1).float()[:, None],  # lengths
            exp.truncated.float()[:, None],
            batch.reward_matrix.float(),  # [N, K]
        ],
        dim=1,
    ).to(acc.device)
    table = acc.gather(local).cpu()  # [world·N, 3 + K]; each process's groups stay contiguous
    # Groups of stand-ins (rows whose media failed at run time, masked out entirely) describe nothing.
    real = table[:, 1].view(-1, g).gt(0).any(1)  # [world·B]
    table = table.view(-1, g, table.shape[1])[real].view(-1, table.shape[1])
    rewards, lengths, truncated = table[:, 0], table[:, 1], table[:, 2]
    zero_std = acc.gather(batch.zero_std.float().to(acc.device)).cpu()[real]  # [world·B]
    timed = _reduce(acc, {**batch.timings, **batch.stats, **update, "step_time": step_time})
    out = {
        "reward": _stat(rewards, torch.mean),
        "reward_std": _stat(rewards, lambda r: r.view(-1, g).std(1).mean()),
        "frac_reward_zero_std": _stat(zero_std, torch.mean),
        "completions/mean_length": _stat(lengths, torch.mean),
        "completions/min_length": _stat(lengths, torch.min),
        "completions/max_length": _stat(lengths, torch.max),
        "completions/clipped_ratio": _stat(truncated, torch.mean),
        "lr": float(lr),
        "step_time": timed["step_time"],
        "tokens_per_second": float(lengths.sum()) / max(timed["step_time"], 1e-9),
        "epoch": float(epoch),
    }
    for k, name in enumerate(batch.reward_names):
        column = table[:, 3 + k]
        valid = column[~torch.isnan(column)]
        out[f"rewards/{name}/mean"] = float(valid.mean()) if len(valid) else math.nan
        out[f"rewards/{name}/std"] = float(valid.std()) if len(valid) > 1 else math.nan
    out.update(timed)
    return out


def _stat(values: torch.Tensor, fn) -> float:
    """``fn(values)`` as a float; NaN when nothing is left (every group of the step stood in)."""
    return float(fn(values)) if len(values) else math.nan


def _reduce(acc, values: dict[str, float]) -> dict[str, float]:
    """Timings and ``*_max``: the largest over processes; everything else: the mean (one gather)."""
    if acc.num_processes == 1:
        return {k: float(v) for k, v in values.items()}
    names = sorted(values)  # every process has the same keys; sort so they line up
    vec = torch.tensor([[float(values[n]) for n in names]], dtype=torch.float64, device=acc.device)
    table = acc.gather(vec).cpu()  # [world, len(names)]
    return {
        n: float(table[:, i].max() if n.startswith(_TIMES) or n.endswith("_max") else table[:, i].mean())
        for i, n in enumerate(names)
    }


def rollout_rows(step: int, batch: Experience, limit: int, accelerator) -> list[dict]:
    """A sample of this step's completions for rollouts.jsonl, ``limit`` in all, whole groups first.

    With W processes each contributes its first ceil(limit / W) completions (each row says its
    ``process``) and every process gets all of them, in process order: a collective call.
    """
    world = accelerator.num_processes
    if world == 1:
        return _rows(step, batch, limit)
    from accelerate.utils import gather_object

    local = [
        {**row, "process": accelerator.process_index} for row in _rows(step, batch, math.ceil(limit / world))
    ]
    return gather_object(local)[:limit]


def _rows(step: int, batch: Experience, limit: int) -> list[dict]:
    g = batch.group_size
    rows = []
    lengths = batch.completion_mask.sum(1).tolist()  # 0: a stand-in for a row whose media failed
    for i, text in enumerate(batch.texts):
        if len(rows) == limit:
            break
        if not lengths[i]:
            continue
        sample = batch.samples[i // g]
        rows.append(
            {
                "step": step,
                "id": sample.id,
                "answer": sample.answer,
                "completion": text,
                "reward": float(batch.rewards[i]),
                "advantage": float(batch.advantages[i]),
                "truncated": bool(batch.truncated[i]),
                **{
                    f"rewards/{n}": float(batch.reward_matrix[i, k]) for k, n in enumerate(batch.reward_names)
                },
                **{k: v for k, v in sample.metadata.items() if isinstance(v, str | int | float)},
            }
        )
    return rows
