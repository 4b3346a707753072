"""Re-batching rollouts: concatenate groups from different rollout batches (dynamic sampling)."""

from __future__ import annotations

import torch

from .experience import RolloutBatch
from .rollout import Experience


def _pad(tensors: list[torch.Tensor], value: int | float, left: bool) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    out = []
    for t in tensors:
        fill = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype, device=t.device)
        out.append(torch.cat([fill, t] if left else [t, fill], dim=1))
    return torch.cat(out)


def _group(batch: RolloutBatch, b: int) -> RolloutBatch:
    exp = batch.experience.prompt_slice(b, b + 1)
    g = exp.group_size
    rows = slice(b * g, (b + 1) * g)
    return RolloutBatch(
        exp,
        [batch.samples[b]],
        batch.texts[rows],
        batch.reward_matrix[rows],
        batch.reward_names,
        batch.rewards[rows],
        batch.zero_std[b : b + 1],
        batch.timings,
    )


def concat_rollout_batches(picks: list[tuple[RolloutBatch, int]]) -> RolloutBatch:
    """One RolloutBatch of the chosen (batch, prompt index) groups, re-padded (prompts left, completions right)."""
    groups = [_group(batch, b) for batch, b in picks]
    exps = [grp.experience for grp in groups]
    pad = 0
    mm: dict = {}
    for key in ("input_features", "feature_attention_mask", "pixel_values", "image_grid_thw"):
        parts = [e.mm[key] for e in exps if e.mm.get(key) is not None]
        if parts:
            mm[key] = torch.cat(parts) if key != "feature_attention_mask" else _pad(parts, 0, left=False)
    if "input_features" in mm:  # pad mel frames to a common length before stacking
        feats = [e.mm["input_features"] for e in exps if e.mm.get("input_features") is not None]
        frames = max(f.shape[-1] for f in feats)
        mm["input_features"] = torch.cat(
            [torch.nn.functional.pad(f, (0, frames - f.shape[-1])) for f in feats]
        )
    for owner in ("_audio_owner", "_image_owner"):
        parts = [e.mm[owner] + i for i, e in enumerate(exps) if e.mm.get(owner) is not None]
        if parts:
            mm[owner] = torch.cat(parts)
    optional = {}
    for name in ("old_logprobs", "ref_logprobs"):
        values = [getattr(e, name) for e in exps]
        optional[name] = None if any(v is None for v in values) else _pad(values, 0.0, left=False)
    exp = Experience(
        input_ids=_pad([e.input_ids for e in exps], pad, left=True),
        attention_mask=_pad([e.attention_mask for e in exps], 0, left=True),
        mm=mm,
        completion_ids=_pad([e.completion_ids for e in exps], pad, left=False),
        completion_mask=_pad([e.completion_mask for e in exps], 0, left=False),
        truncated=torch.cat([e.truncated for e in exps]),
        group_size=exps[0].group_size,
        advantages=torch.cat([e.advantages for e in exps]),
        **optional,
    )
    timings = {}
    for grp in {id(b): b for b, _ in picks}.values():
        for k, v in grp.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    return RolloutBatch(
        exp,
        [s for grp in groups for s in grp.samples],
        [t for grp in groups for t in grp.texts],
        torch.cat([grp.reward_matrix for grp in groups]),
        groups[0].reward_names,
        torch.cat([grp.rewards for grp in groups]),
        torch.cat([grp.zero_std for grp in groups]),
        timings,
    )
