"""Modality grounding: does the policy's answer depend on the modality the question needs?

For each prompt the policy answers M times with one modality removed (``algo.counterfactual_ablate``:
audio -> silence of equal length, or image -> blank of equal size). That counterfactual pass encodes
each prompt once (the towers and prompt prefill run once per prompt, the M completions share the
prefix) and gives, per prompt, the distribution of the answers the policy gives without the modality.
Two signals come from it:

* the ``grounding`` reward (``rewards.grounding_reward``, weight ``algo.rewards.grounding``): a correct
  completion is penalised by the probability that the policy gives the same answer without the
  modality, ``-P_cf(own answer)``; a correct answer that the removed modality did not decide earns less;
* ``algo.drop_unimodal_groups``: a group whose prompt the policy answers correctly without the modality
  (``P_cf(gold) >= algo.unimodal_threshold``) has its advantages scaled by
  ``algo.unimodal_group_weight`` (0 = dropped), in the spirit of OmniClean's data filtering.

Items without the removed modality, or whose ``needs`` metadata says they do not need it, get no
counterfactual (reward None, weight 1). This module is the maths, as pure functions (shapes: B prompts, G
completions each, N = B·G, M counterfactual answers per prompt); ``rollout.counterfactual_pass`` orders
the engine calls that sample the counterfactual answers. References:
HumanOmniV2 (the shortcut problem), OmniClean (arXiv 2605.12034), SFFL (2605.09906), RL-CoMM (2511.10059).

>>> own = answer_ids(["A", "B", None, "A"])             # B=2 prompts, G=2
>>> cf = answer_ids(["A", "A", "C", "A", "B", "B"]).view(2, 3)   # M=3 answers per prompt without audio
>>> counterfactual_prob(own, cf, G=2).tolist()
[0.6666..., 0.0, 0.0, 0.3333...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.answers import parse_answer_letters
from ..scoring.rewards import parse_answer

_NO_ANSWER = -1  # an unparseable answer: never equal to a letter, and never "the same answer" as one
GROUNDING_FIELD = "counterfactual_prob"


def answer_ids(answers: Sequence[str | None]) -> torch.Tensor:
    """Parsed answers ("A", "A,C", None) as ids [len] int64: one id per distinct letter set, -1 for None."""
    ids = []
    for a in answers:
        if a is None:
            ids.append(_NO_ANSWER)
        else:  # a letter set as a bit mask, so "A,C" and "C,A" agree and "A" differs from "A,C"
            ids.append(sum(1 << (ord(c) - ord("A")) for c in a.split(",")))
    return torch.tensor(ids, dtype=torch.int64)


def counterfactual_prob(own: torch.Tensor, cf: torch.Tensor, G: int) -> torch.Tensor:
    """P_cf(own answer): the fraction of the prompt's M counterfactual answers equal to each completion's.

    own: [N] answer ids (N = B·G, a prompt's completions adjacent); cf: [B, M]. Returns [N] float32;
    an unparseable own answer gets 0 (it has no answer to depend on anything).
    """
    B, _ = cf.shape
    same = (own.view(B, G, 1) == cf.view(B, 1, -1)) & (own.view(B, G, 1) != _NO_ANSWER)  # [B, G, M]
    return same.float().mean(-1).reshape(-1)


def unimodal_group_weights(cf_accuracy: torch.Tensor, threshold: float, weight: float) -> torch.Tensor:
    """Per-group advantage weights [B]: ``weight`` where the counterfactual accuracy [B] >= ``threshold``
    (the prompt is answerable without the modality), else 1. NaN (not applicable) keeps weight 1."""
    unimodal = ~torch.isnan(cf_accuracy) & (cf_accuracy >= threshold)
    return torch.where(unimodal, torch.tensor(float(weight)), torch.tensor(1.0))


@dataclass
class Counterfactual:
    """The answers the policy gave with one modality removed: M per prompt (None where not applicable)."""

    answers: list[list[str | None] | None]  # B lists of M parsed answers

    def reward_fields(self, texts: Sequence[str], G: int) -> dict[str, list[float | None]]:
        """``{"counterfactual_prob": [N]}`` for the rewards: P_cf of each completion's own answer."""
        own = answer_ids([parse_answer(t) for t in texts])
        out: list[float | None] = []
        for b, cf in enumerate(self.answers):
            if cf is None:
                out += [None] * G
            else:
                out += counterfactual_prob(own[b * G : (b + 1) * G], answer_ids(cf)[None], G).tolist()
        return {GROUNDING_FIELD: out}

    def accuracy(self, solutions: Sequence[str]) -> torch.Tensor:
        """[B] fraction of each prompt's M counterfactual answers that are right (NaN: not applicable)."""
        acc = []
        for cf, sol in zip(self.answers, solutions, strict=True):
            gold = ",".join(sorted({x.upper() for x in parse_answer_letters(sol)}))
            acc.append(float("nan") if cf is None else sum(a == gold for a in cf) / max(len(cf), 1))
        return torch.tensor(acc, dtype=torch.float32)


def wanted(algo) -> bool:
    """Whether a step needs the counterfactual pass (the reward or the filter is on)."""
    return "grounding" in algo.rewards or algo.drop_unimodal_groups


def needs_removed(sample, removed: str) -> bool:
    """Whether removing the modality can change the answer: the item has it, and ``needs`` (if given) says so."""
    if (sample.audio if removed == "audio" else sample.image) is None:
        return False  # nothing to remove: the "counterfactual" would be the prompt itself
    needs = sample.metadata.get("needs")
    return needs is None or needs in (removed, "both")


def weigh_advantages(
    advantages: torch.Tensor, cf: Counterfactual, samples: Sequence, G: int, algo
) -> tuple[torch.Tensor, dict[str, float]]:
    """Advantages [N] with unimodal groups down-weighted (when ``algo.drop_unimodal_groups``), and metrics."""
    acc = cf.accuracy([s.solution for s in samples])  # [B]
    valid = acc[~torch.isnan(acc)]
    metrics = {"grounding/counterfactual_accuracy": float(valid.mean()) if len(valid) else float("nan")}
    if not algo.drop_unimodal_groups:
        return advantages, metrics
    w = unimodal_group_weights(acc, algo.unimodal_threshold, algo.unimodal_group_weight)  # [B]
    metrics["grounding/unimodal_groups"] = float((w != 1.0).float().mean())
    return advantages * w.repeat_interleave(G).to(advantages.device), metrics
