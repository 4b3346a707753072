"""Re-batching rollouts: concatenate groups from different rollout batches (dynamic sampling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import PromptBatch
from .experience import Experience


def _pad_right(tensors: list[torch.Tensor], value: int | float) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    return torch.cat([F.pad(t, (0, width - t.shape[1]), value=value) for t in tensors])


def concat_groups(picks: list[tuple[Experience, int]], pad_id: int) -> Experience:
    """One Experience of the chosen (batch, prompt index) groups, re-padded (prompts left, completions right)."""
    groups = [batch.prompt_slice(b, b + 1) for batch, b in picks]
    optional = {}
    for name in ("old_logprobs", "ref_logprobs"):
        values = [getattr(e, name) for e in groups]
        optional[name] = None if any(v is None for v in values) else _pad_right(values, 0.0)
    timings: dict[str, float] = {}
    for batch in {id(b): b for b, _ in picks}.values():
        for k, v in batch.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    return Experience(
        prompts=PromptBatch.concat([e.prompts for e in groups], pad_id),
        completion_ids=_pad_right([e.completion_ids for e in groups], pad_id),
        completion_mask=_pad_right([e.completion_mask for e in groups], 0),
        truncated=torch.cat([e.truncated for e in groups]),
        group_size=groups[0].group_size,
        samples=[s for e in groups for s in e.samples],
        texts=[t for e in groups for t in e.texts],
        reward_matrix=torch.cat([e.reward_matrix for e in groups]),
        reward_names=groups[0].reward_names,
        rewards=torch.cat([e.rewards for e in groups]),
        zero_std=torch.cat([e.zero_std for e in groups]),
        advantages=torch.cat([e.advantages for e in groups]),
        timings=timings,
        **optional,
    )
