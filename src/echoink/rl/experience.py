"""``Experience``: the one batch type between rollout, rewards, the loss and the logs, and the
re-batching of groups from several rollout batches (dynamic sampling).

The rollout that fills it is ``rollout.collect_experience``; this module is the type only.

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens, K rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..data import Sample
from ..model import PromptBatch


@dataclass
class Experience:
    """One rollout batch: prompts, completions, rewards and everything the loss needs."""

    prompts: PromptBatch  # B prompts with their media
    completion_ids: torch.Tensor  # [N, T], pad after the end token
    completion_mask: torch.Tensor  # [N, T], 1 on real tokens incl. the end token
    truncated: torch.Tensor  # [N] bool: no end token within max_new_tokens
    group_size: int  # G
    samples: list[Sample] = field(default_factory=list)  # B
    texts: list[str] = field(default_factory=list)  # N decoded completions
    reward_matrix: torch.Tensor | None = None  # [N, K], NaN where a reward does not apply
    reward_names: list[str] = field(default_factory=list)
    rewards: torch.Tensor | None = None  # [N] weighted sum
    zero_std: torch.Tensor | None = None  # [B] groups whose G rewards are all equal
    advantages: torch.Tensor | None = None  # [N]
    old_logprobs: torch.Tensor | None = None  # [N, T] when μ > 1
    ref_logprobs: torch.Tensor | None = None  # [N, T] when β > 0
    rollout_logprobs: torch.Tensor | None = None  # [N, T] the sampler's own (rollout.engine: vllm)
    timings: dict[str, float] = field(default_factory=dict)  # "time/…" seconds: summed when merged
    stats: dict[str, float] = field(default_factory=dict)  # other measurements: averaged when merged

    PER_COMPLETION = (
        "completion_ids",
        "completion_mask",
        "truncated",
        "reward_matrix",
        "rewards",
        "advantages",
        "old_logprobs",
        "ref_logprobs",
        "rollout_logprobs",
    )

    @property
    def num_prompts(self) -> int:
        return self.prompts.num_prompts

    def padded_to(self, width: int, pad_id: int) -> Experience:
        """The completions right-padded to ``width`` tokens (masked: the loss and metrics ignore them)."""
        extra = width - self.completion_ids.shape[1]
        if extra <= 0:
            return self
        logprobs = {
            n: F.pad(getattr(self, n), (0, extra), value=0.0)
            for n in ("old_logprobs", "ref_logprobs", "rollout_logprobs")
            if getattr(self, n) is not None
        }
        return replace(
            self,
            completion_ids=F.pad(self.completion_ids, (0, extra), value=pad_id),
            completion_mask=F.pad(self.completion_mask, (0, extra), value=0),
            **logprobs,
        )

    def prompt_slice(self, start: int, stop: int) -> Experience:
        """The experience of prompts [start, stop) and their G completions each (a mini-batch)."""
        g = self.group_size
        rows = slice(start * g, stop * g)
        per_completion = {
            n: None if getattr(self, n) is None else getattr(self, n)[rows] for n in self.PER_COMPLETION
        }
        return replace(
            self,
            prompts=self.prompts.slice(start, stop),
            samples=self.samples[start:stop],
            texts=self.texts[rows],
            zero_std=None if self.zero_std is None else self.zero_std[start:stop],
            **per_completion,
        )


def _pad_right(tensors: list[torch.Tensor], value: int | float) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    return torch.cat([F.pad(t, (0, width - t.shape[1]), value=value) for t in tensors])


def concat_groups(picks: list[tuple[Experience, int]], pad_id: int) -> Experience:
    """One Experience of the chosen (batch, prompt index) groups, re-padded (prompts left, completions right)."""
    groups = [batch.prompt_slice(b, b + 1) for batch, b in picks]
    optional = {}
    for name in ("old_logprobs", "ref_logprobs", "rollout_logprobs"):
        values = [getattr(e, name) for e in groups]
        optional[name] = None if any(v is None for v in values) else _pad_right(values, 0.0)
    sources = list({id(b): b for b, _ in picks}.values())  # each rollout batch once
    timings: dict[str, float] = {}
    for batch in sources:  # the time both rollout rounds took
        for k, v in batch.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    stats = {k: sum(b.stats[k] for b in sources) / len(sources) for k in sources[0].stats}
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
        stats=stats,
        **optional,
    )


def merge_signal_groups(first: Experience, extra: Experience, size: int, pad_id: int) -> Experience:
    """Keep groups with reward variance from ``first``, fill up from ``extra``'s, then zero-variance ones."""
    keep = [(first, b) for b in range(first.num_prompts) if not first.zero_std[b]]
    keep += [(extra, b) for b in range(extra.num_prompts) if not extra.zero_std[b]]
    keep += [(first, b) for b in range(first.num_prompts) if first.zero_std[b]]
    return concat_groups(keep[:size], pad_id)
