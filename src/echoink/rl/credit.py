"""Per-completion modality credit: how much each sampled completion owes to one modality.

For completion o of prompt q with media m, and m' the same media with one modality removed
(``algo.counterfactual_ablate``: audio -> silence of equal length, image -> blank, video frames -> grey),

    credit(o) = 1/|S| · Σ_{t ∈ S} [ log π(o_t | q, m, o_<t) − log π(o_t | q, m', o_<t) ]

over the span S of o's tokens named by ``algo.credit_span`` (``CREDIT_SPANS``): the ``<think>`` content
(default), the whole completion, or the answer. It is a per-token pointwise mutual information between
the completion and the removed modality: > 0 where the modality made the completion more likely.
Unlike ``grounding``'s P_cf (one number per prompt), it differs between completions of one prompt, so
a group can prefer the completion that listened over the one that looked. Why the mean and why the
think span: docs/grounding.md ("Per-completion credit").

Its uses (pure functions here; ``credit_pass`` runs the two log-prob passes):

* the ``modality_credit`` reward (``scoring.rewards``): the clipped credit as a reward term;
* an advantage weighting (``ADVANTAGE_WEIGHTINGS``, ``algo.credit_weighting``);
* a placebo (``algo.credit_placebo``): the same values moved to other prompts' completions.

This module imports only torch and the registry. Shapes: B prompts, G completions each, N = B·G,
T completion tokens.

>>> full = torch.tensor([[-1.0, -0.5, -2.0], [-1.0, -1.0, -1.0]])  # N=2, T=3
>>> removed = torch.tensor([[-2.0, -1.5, -2.0], [-1.0, -1.0, -1.0]])
>>> span = torch.tensor([[1, 1, 0], [1, 1, 1]])
>>> sequence_credit(full, removed, span).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..registry import Registry

CREDIT_FIELD = "modality_credit"
"""The row field that carries each completion's clipped credit to the rewards (None: not applicable)."""

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"

SpanFn = Callable[[str], "tuple[int, int] | None"]
WeightingFn = Callable[[torch.Tensor, torch.Tensor, int, float], torch.Tensor]
CREDIT_SPANS: Registry[SpanFn] = Registry("credit span")
ADVANTAGE_WEIGHTINGS: Registry[WeightingFn] = Registry("credit weighting")


@CREDIT_SPANS.register("think")
def _think_span(text: str) -> tuple[int, int] | None:
    """The characters between ``<think>`` and ``</think>``; a completion with no closed think block:
    all of it (no trace: the answer is all there is to have been decided by the media)."""
    start = text.find(_THINK_OPEN)
    end = text.find(_THINK_CLOSE, start + len(_THINK_OPEN)) if start >= 0 else -1
    return (start + len(_THINK_OPEN), end) if end >= 0 else None


@CREDIT_SPANS.register("completion")
def _completion_span(text: str) -> tuple[int, int] | None:
    return None  # None: every real token


@CREDIT_SPANS.register("answer")
def _answer_span(text: str) -> tuple[int, int] | None:
    """After ``</think>`` (the answer block); with no closed think block, all of it."""
    end = text.find(_THINK_CLOSE)
    return (end + len(_THINK_CLOSE), len(text)) if end >= 0 else None


def span_mask(pieces: Sequence[Sequence[str]], mask: torch.Tensor, span: str) -> torch.Tensor:
    """[N, T] float32: 1 on the real tokens (``mask`` [N, T]) that overlap the span's characters.

    ``pieces``: each completion's tokens as text, one string per position (padding included); the
    span is found in their concatenation, so a tag split over several tokens is found, and a token
    that straddles the span's edge counts as inside.

    >>> pieces = [["<think>", "low", " tone", "</think>", "<answer>", "A", "</answer>"]]
    >>> span_mask(pieces, torch.ones(1, 7), "think").tolist()
    [[0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]
    """
    find = CREDIT_SPANS.get(span)
    out = torch.zeros(mask.shape, dtype=torch.float32)
    for n, row in enumerate(pieces):
        ends = torch.tensor([len(p) for p in row]).cumsum(0)  # [T] char end of each token
        starts = ends - torch.tensor([len(p) for p in row])
        bounds = find("".join(row))
        if bounds is None:
            out[n, : len(row)] = 1.0
        else:
            out[n, : len(row)] = ((starts < bounds[1]) & (ends > bounds[0])).float()
    return out.to(mask.device) * mask.float()


def sequence_credit(logp_full: torch.Tensor, logp_removed: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """[N] mean over the span of log π(token | full input) − log π(token | modality removed).

    logp_full, logp_removed: [N, T]; span: [N, T] 0/1. A completion with an empty span gets NaN
    (nothing to credit: not applicable)."""
    span = span.float()
    diff = (logp_full.float() - logp_removed.float()) * span  # [N, T]
    count = span.sum(-1)  # [N]
    return torch.where(count > 0, diff.sum(-1) / count.clamp(min=1), torch.full_like(count, float("nan")))


def clip_credit(credit: torch.Tensor, clip: float) -> torch.Tensor:
    """Credit [N] clipped to [-clip, clip] (NaN stays NaN); ``clip`` <= 0: unclipped."""
    return credit.clamp(-clip, clip) if clip > 0 else credit


def placebo_credit(credit: torch.Tensor, G: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The same credit values [N] given to other prompts' completions: each prompt's block of G values
    moves, in order, to another prompt (a random single cycle over the prompts that have any credit,
    so none keeps its own); with one such prompt, its G values are shuffled within the group.
    Same magnitudes, same not-applicable places, no information about the completion they land on.

    >>> placebo_credit(torch.tensor([1.0, 2.0, 3.0, 4.0]), G=2).tolist()  # B=2: the blocks swap
    [3.0, 4.0, 1.0, 2.0]
    """
    c = credit.view(-1, G)  # [B, G]
    live = (~torch.isnan(c)).any(-1).nonzero().flatten()  # prompts with any credit
    out = c.clone()
    if len(live) == 1:
        b = int(live[0])
        out[b] = c[b, torch.randperm(G, generator=generator)]
    elif len(live) > 1:
        order = live[torch.randperm(len(live), generator=generator)]
        out[order] = c[order.roll(-1)]  # order[i] gets order[i+1]'s block: one cycle, no fixed point
    return out.reshape(-1)


@ADVANTAGE_WEIGHTINGS.register("none")
def _no_weighting(advantages: torch.Tensor, credit: torch.Tensor, G: int, strength: float) -> torch.Tensor:
    return advantages


@ADVANTAGE_WEIGHTINGS.register("scale")
def credit_scaled_advantages(
    advantages: torch.Tensor, credit: torch.Tensor, G: int, strength: float
) -> torch.Tensor:
    """A·w with w = max(0, 1 + strength · sign(A) · (c − mean_group(c))), i.e. A + strength·|A|·c̃ before
    the clamp: among completions with the same advantage sign, the one whose credit is above its group's
    mean is pushed up more (A > 0) or down less (A < 0). Never flips an advantage's sign; NaN credit
    (not applicable) counts as the group mean (weight 1). advantages, credit: [N] -> [N].

    >>> credit_scaled_advantages(torch.tensor([1.0, 1.0, -1.0, -1.0]), torch.tensor([0.5, -0.5, 0.5, -0.5]),
    ...                          G=4, strength=1.0).tolist()
    [1.5, 0.5, -0.5, -1.5]
    """
    c = credit.float().view(-1, G)  # [B, G]
    known = ~torch.isnan(c)
    mean = torch.where(known, c, 0.0).sum(-1, keepdim=True) / known.sum(-1, keepdim=True).clamp(min=1)
    centred = torch.where(known, c - mean, 0.0).reshape(-1)  # [N]
    weight = (1 + strength * torch.sign(advantages) * centred.to(advantages.device)).clamp(min=0)
    return advantages * weight


def weigh_advantages(
    advantages: torch.Tensor, credit: torch.Tensor, G: int, weighting: str, strength: float
) -> torch.Tensor:
    """``ADVANTAGE_WEIGHTINGS[weighting]`` applied: advantages [N], credit [N] -> [N]."""
    return ADVANTAGE_WEIGHTINGS.get(weighting)(advantages, credit, G, strength)


def wanted(algo) -> bool:
    """Whether a step needs the credit pass (the reward or the weighting is on)."""
    return CREDIT_FIELD in algo.rewards or algo.credit_weighting != "none"
