"""The credit pass: each sampled completion scored again with one modality removed (``credit`` is the maths).

One encode of the B prompts with ``algo.counterfactual_ablate`` removed, then two no-grad shared-prefix
log-prob passes over the same [N, T] completions (``Engine.logprobs``: towers and prompt prefill once per
prompt, the G completions on the expanded cache): one on the full prompts, one on the ablated ones. No
new sampling. Every prompt of the batch is encoded and scored, applicable or not, so every process of a
launch makes the same calls; an item without the modality, one whose ``needs`` says it does not need it,
or one whose media failed to decode gets NaN credit (reward None, weight 1).

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import Sample, sample_messages
from ..data.messages import ablation_applies
from ..data.prompts import build_messages
from ..model import Engine, PromptBatch
from . import credit as maths


@dataclass
class Credit:
    """Each completion's clipped credit [N] (NaN: not applicable) and the pass's statistics."""

    values: torch.Tensor  # [N] float32, on the CPU
    stats: dict[str, float] = field(default_factory=dict)

    def reward_fields(self) -> dict[str, list[float | None]]:
        """``{"modality_credit": [N]}`` for the rewards (None where not applicable)."""
        return {maths.CREDIT_FIELD: [None if v != v else float(v) for v in self.values.tolist()]}


def removed_ablation(sample: Sample, removed: str) -> str | None:
    """The data layer's ablation that removes ``removed`` from ``sample`` (a video's frames for "image"),
    or None where it does not apply: the item lacks it, or its ``needs`` metadata says it is not needed."""
    ablation = "video" if removed == "image" and sample.video is not None else removed
    needs = sample.metadata.get("needs")
    if not ablation_applies(sample, ablation) or needs not in (None, removed, "both"):
        return None
    return ablation


def _removed_messages(samples: Sequence[Sample], cfg, engine: Engine, failed: Sequence[bool]) -> list:
    """One conversation per sample with the modality removed; stand-ins (text only) for failed media."""
    d, out = cfg.data, []
    for s, bad in zip(samples, failed, strict=True):
        ablation = removed_ablation(s, cfg.algo.counterfactual_ablate) or "none"
        if bad:
            out.append(build_messages(s, d.template))
        else:
            out += sample_messages(
                [s],
                d.template,
                d.max_audio_seconds,
                d.max_pixels,
                ablation,
                d.video(),
                geometry=engine.geometry,
            )
    return out


def token_pieces(engine: Engine, ids: torch.Tensor) -> list[list[str]]:
    """Each completion's tokens as text [N][T] (special tokens kept), each distinct id decoded once."""
    rows = ids.tolist()
    distinct = sorted({i for row in rows for i in row})
    text = dict(zip(distinct, engine.tokenizer.batch_decode([[i] for i in distinct]), strict=True))
    return [[text[i] for i in row] for row in rows]


def span_stats(
    logp_full: torch.Tensor, logp_removed: torch.Tensor, pieces, mask: torch.Tensor, applies: torch.Tensor
) -> dict[str, float]:
    """Mean unclipped credit over the applicable completions for every span (``credit/<span>``), and each
    span's mean token count: what the choice of ``algo.credit_span`` changes, logged every step."""
    stats = {}
    for span in maths.CREDIT_SPANS.names():
        s = maths.span_mask(pieces, mask, span)  # [N, T]
        c = maths.sequence_credit(logp_full, logp_removed, s)[applies]
        stats[f"credit/{span}"] = float(c.nanmean()) if len(c) else float("nan")
        stats[f"credit/{span}_tokens"] = float(s[applies].sum(-1).mean()) if len(c) else float("nan")
    return stats


@torch.no_grad()
def modality_credit(
    engine: Engine,
    policy: nn.Module,
    samples: Sequence[Sample],
    prompts: PromptBatch,
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    cfg,
    failed: Sequence[bool] = (),
) -> Credit:
    """Credit [N] of the completions ``completion_ids`` [N, T] (``mask`` [N, T]) sampled from ``prompts``
    (the full B prompts, already encoded): ``credit.sequence_credit`` over ``algo.credit_span``, clipped
    to ``algo.credit_clip``, permuted across prompts when ``algo.credit_placebo``."""
    a, g = cfg.algo, completion_ids.shape[0] // len(samples)
    failed = list(failed) or [False] * len(samples)
    device = completion_ids.device
    removed = engine.encode(_removed_messages(samples, cfg, engine, failed)).to(device)
    temp, sharing = cfg.rollout.temperature, cfg.rollout.sharing
    logp_full = engine.logprobs(policy, prompts, completion_ids, g, temp, sharing).float().cpu()  # [N, T]
    logp_removed = engine.logprobs(policy, removed, completion_ids, g, temp, sharing).float().cpu()
    removable = [removed_ablation(s, a.counterfactual_ablate) is not None for s in samples]
    applies = torch.tensor([ok and not bad for ok, bad in zip(removable, failed, strict=True)])
    applies = applies.repeat_interleave(g)  # [N]
    pieces, mask = token_pieces(engine, completion_ids.cpu()), mask.cpu()
    raw = maths.sequence_credit(logp_full, logp_removed, maths.span_mask(pieces, mask, a.credit_span))  # [N]
    raw = torch.where(applies, raw, torch.full_like(raw, float("nan")))
    values = maths.clip_credit(raw, a.credit_clip)
    if a.credit_placebo:
        values = maths.placebo_credit(values, g)
    stats = span_stats(logp_full, logp_removed, pieces, mask, applies)
    live = raw[applies]
    stats["credit/clipped_fraction"] = (
        float((live.abs() > a.credit_clip).float().mean()) if len(live) and a.credit_clip > 0 else 0.0
    )
    return Credit(values, stats)
