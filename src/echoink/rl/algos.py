"""GRPO maths as pure tensor functions (paper Sec. 3.2): group-relative advantages,
the KL penalty to a reference policy, and the clipped policy loss.

Shape letters: B prompts, G completions per prompt, N = B·G completions, T completion tokens,
V vocabulary. All maths runs in float32 whatever the input dtype. This module imports only torch
and the name registry.

Four registries, verl-style, hold the variants; a recipe names one entry of each, config checks and
CLI help read their keys, and an unknown name is an error that lists the valid ones:

* ``ADVANTAGE_ESTIMATORS`` (``algo.scale_rewards``): "group" (GRPO), "batch", "none" (Dr. GRPO);
* ``KL_ESTIMATORS`` (``algo.kl_estimator``): "k1", "k3", "abs";
* ``POLICY_LOSSES`` (``algo.importance_sampling_level``): "token" (GRPO/PPO), "sequence" (GSPO);
* ``LOSS_AGGREGATIONS`` (``algo.loss_agg``): GRPO, DAPO/BNPO and Dr. GRPO differ mainly here.

The per-token loss and its aggregation are separate (``policy_loss`` calls ``agg_loss``).

>>> rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])  # B=2 prompts, G=2
>>> adv, zero_std = group_advantages(rewards, G=2)
>>> adv.tolist(), zero_std.tolist()
([0.7071..., -0.7071..., 0.0, 0.0], [False, True])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry

AdvantageFn = Callable[[torch.Tensor, float], torch.Tensor]
KLFn = Callable[[torch.Tensor], torch.Tensor]
PolicyLossFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
AggFn = Callable[[torch.Tensor, torch.Tensor, "int | None"], torch.Tensor]

ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")
KL_ESTIMATORS: Registry[KLFn] = Registry("KL estimator")
POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss")
LOSS_AGGREGATIONS: Registry[AggFn] = Registry("loss aggregation")

# Clamps as verl's core_algos: one token whose log-ratio overflows exp() in float32 (past ~88) would
# make the whole pass's loss infinite, and the finite-step guard would then skip the entire update.
# Clamped, that token gets no gradient (it is far outside the clip range anyway) and the rest train.
LOG_RATIO_LIMIT = 20.0  # |log π/π_old| and |log π_ref/π| per token: exp(20) ≈ 4.9e8 stays finite
SEQ_LOG_RATIO_MAX = 10.0  # GSPO's sequence log-ratio (verl clamps it above only)
K3_LIMIT = 10.0  # the k3 estimate itself, per token


@ADVANTAGE_ESTIMATORS.register("group")
def _group_scaled(centred: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    return centred / (r.std(dim=1, keepdim=True) + eps)  # GRPO: each group's own std


@ADVANTAGE_ESTIMATORS.register("batch")
def _batch_scaled(centred: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    return centred / (r.std() + eps)  # one std over all N rewards


@ADVANTAGE_ESTIMATORS.register("none")
def _unscaled(centred: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    return centred  # Dr. GRPO: no std division (no difficulty bias)


def group_advantages(
    rewards: torch.Tensor, G: int, scale: str = "group", eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-relative advantages: ``(r - mean_group) / (std + eps)``.

    rewards: [N] with N = B·G, completions of one prompt adjacent. ``scale``: "group" divides by the
    group's std (GRPO), "batch" by the std of all N rewards, "none" not at all (Dr. GRPO). Stds are
    unbiased (Bessel), as in GRPO and TRL. A group whose G rewards are all equal gets advantage
    exactly 0 (never NaN, even with eps=0).

    Returns ``(advantages [N] float32, zero_std [B] bool)``; ``zero_std`` marks groups with no signal.

    >>> group_advantages(torch.tensor([2.0, 0.0, 1.0, 1.0]), G=2, scale="none")[0].tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    estimator = ADVANTAGE_ESTIMATORS.get(scale)  # [B, G] centred, [B, G] rewards, eps -> [B, G]
    if G < 2 or rewards.numel() % G:
        raise ValueError(f"need G >= 2 dividing the {rewards.numel()} rewards, got G={G}")
    r = rewards.float().view(-1, G)  # [B, G]
    zero_std = (r == r[:, :1]).all(dim=1)  # [B]; exact, unlike comparing a float std to 0
    adv = estimator(r - r.mean(dim=1, keepdim=True), r, eps)
    adv = torch.where(zero_std[:, None], torch.zeros_like(adv), adv)
    return adv.reshape(-1), zero_std


@KL_ESTIMATORS.register("k1")
def _kl_k1(delta: torch.Tensor) -> torch.Tensor:
    return -delta  # logp - ref: unbiased, can be negative


@KL_ESTIMATORS.register("k3")
def _kl_k3(delta: torch.Tensor) -> torch.Tensor:
    delta = delta.clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)  # exp() of a far-off token stays finite
    return (torch.exp(delta) - delta - 1).clamp(max=K3_LIMIT)  # unbiased, >= 0: the GRPO paper's


@KL_ESTIMATORS.register("abs")
def _kl_abs(delta: torch.Tensor) -> torch.Tensor:
    return delta.abs()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled-token log-probs, [N, T] -> [N, T].

    k1 = logp - ref (unbiased, can be negative); k3 = exp(ref - logp) - (ref - logp) - 1 (unbiased,
    >= 0, the GRPO paper's estimator; as verl's, its log-ratio clamped to ±20 and its value to at most
    10, so one far-off token cannot make the loss infinite); abs = |logp - ref|.

    >>> kl_penalty(torch.tensor([-200.0]), torch.tensor([0.0]), "k3").tolist()  # exp(200) overflows
    [10.0]

    >>> kl_penalty(torch.tensor([0.0]), torch.tensor([0.0]), "k3").tolist()
    [0.0]
    """
    return KL_ESTIMATORS.get(kind)(ref_logp.float() - logp.float())


@LOSS_AGGREGATIONS.register("seq-mean-token-mean")  # GRPO (paper): each completion weighs the same
def _seq_mean_token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    return ((loss_mat * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


@LOSS_AGGREGATIONS.register("token-mean")  # DAPO / BNPO: each token weighs the same
def _token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    return (loss_mat * mask).sum() / mask.sum().clamp(min=1)


@LOSS_AGGREGATIONS.register("seq-mean-token-sum-norm")  # Dr. GRPO
def _seq_mean_token_sum_norm(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    # A constant denominator: no length bias (Dr. GRPO). T stands in when the caller gives no max length.
    return (loss_mat * mask).sum() / (loss_mat.shape[0] * (max_len or loss_mat.shape[-1]))


def agg_loss(
    loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None
) -> torch.Tensor:
    """Aggregate a per-token loss [N, T] over the tokens where ``mask`` [N, T] is set, to a scalar.

    ``mode``: "seq-mean-token-mean" (mean over completions of each one's token mean), "token-mean"
    (mean over all tokens), "seq-mean-token-sum-norm" (sum over all tokens / (N · max_len); ``max_len``
    defaults to T). Rows with an empty mask count as zero loss.

    >>> loss, mask = torch.tensor([[1.0, 1.0], [4.0, 0.0]]), torch.tensor([[1, 1], [1, 0]])
    >>> [agg_loss(loss, mask, m, max_len=4).item() for m in LOSS_AGGREGATIONS]  # sorted names
    [2.5, 0.75, 2.0]
    """
    return LOSS_AGGREGATIONS.get(mode)(loss_mat.float(), mask.to(torch.float32), max_len)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] == 1 and mask.shape[-1] != 1:  # one value per sequence (GSPO): a mean over sequences
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def sequence_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO's length-normalised sequence log-ratio ``mean_t(logp - old_logp)`` over the masked tokens,
    [N, T] -> [N, 1].

    >>> logp, old = torch.tensor([[0.0, -1.0, 5.0]]), torch.tensor([[-1.0, -1.0, 0.0]])
    >>> mask = torch.tensor([[1, 1, 0]])  # the third token is padding
    >>> sequence_log_ratio(logp, old, mask).tolist()
    [[0.5]]
    """
    mask = mask.to(torch.float32)
    log_ratio = logp.float() - old_logp.float()  # [N, T]
    return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1))[:, None]  # [N, 1]


def _clipped_surrogate(
    ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float
) -> torch.Tensor:
    """``-min(ρ·A, clip(ρ, 1-eps_low, 1+eps_high)·A)``; ratio [N, T] or [N, 1], adv [N, 1]."""
    return -torch.min(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)


@POLICY_LOSSES.register("token")
def clipped_token_loss(logp, old_logp, adv, mask, eps_low, eps_high) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO / GRPO: one ratio per token, clipped per token; its log clamped to ±20 (verl), so a token
    far from the old policy cannot overflow. Returns (loss [N, T], ratio [N, T])."""
    log_ratio = (logp.float() - old_logp.float()).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)  # [N, T]
    ratio = torch.exp(log_ratio)
    return _clipped_surrogate(ratio, adv, eps_low, eps_high), ratio


@POLICY_LOSSES.register("sequence")
def clipped_sequence_loss(logp, old_logp, adv, mask, eps_low, eps_high) -> tuple[torch.Tensor, torch.Tensor]:
    """GSPO (Zheng et al. 2025): one length-normalised ratio per completion, clipped once per
    completion, so one token's large ratio cannot dominate a sequence's update (TRL's
    ``importance_sampling_level="sequence"``). The log-ratio is clamped above at 10, as verl's.
    Returns (loss [N, T], ratio [N, 1])."""
    ratio = torch.exp(sequence_log_ratio(logp, old_logp, mask).clamp(max=SEQ_LOG_RATIO_MAX))  # [N, 1]
    return _clipped_surrogate(ratio, adv, eps_low, eps_high).expand_as(logp), ratio


def truncated_is_weights(old_logp: torch.Tensor, rollout_logp: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance-sampling weights min(π_old / π_rollout, cap) per token, [N, T] -> [N, T] (no grad).

    ``old_logp``: the trainer's log-probs of the sampled tokens at the weights the rollout used;
    ``rollout_logp``: the sampler's (vLLM's) log-probs of the same tokens. The rollout engine and the
    trainer compute the same distribution with different kernels; the weight corrects the policy
    gradient for sampling from the rollout engine's (verl's and TRL's TIS). Padding gets whatever its
    values give: the loss mask removes it.

    >>> w = truncated_is_weights(torch.tensor([[0.0, -1.0]]), torch.tensor([[-1.0, -1.0]]), cap=2.0)
    >>> [round(x, 4) for x in w[0].tolist()]
    [2.0, 1.0]
    """
    if cap < 1:
        raise ValueError(f"the cap must be >= 1, got {cap}")
    return torch.exp(old_logp.detach().float() - rollout_logp.float()).clamp(max=cap)


def rollout_mismatch(
    logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float, float]:
    """(sum, max, count) of |trainer's log-prob - sampler's| over the masked tokens of [N, T] tensors.

    Sums and counts (not a mean) so mini-batches and processes combine exactly.

    >>> rollout_mismatch(torch.tensor([[0.0, -1.0, 0.0]]), torch.tensor([[-0.5, -1.0, 9.0]]), torch.tensor([[1, 1, 0]]))
    (0.5, 0.5, 2.0)
    """
    diff = (logp.detach().float() - rollout_logp.float()).abs() * mask
    return float(diff.sum()), float(diff.max()) if diff.numel() else 0.0, float(mask.sum())


@dataclass(frozen=True)
class LossSpec:
    """The scalars of the policy loss, named once (a recipe's: ``optimise.loss_spec(cfg)``).

    ``eps_low``/``eps_high``: the clip range of ρ; ``beta``: the KL weight, with ``kl_kind`` a
    ``KL_ESTIMATORS`` name; ``agg`` a ``LOSS_AGGREGATIONS`` name, ``max_len`` its constant (Dr. GRPO);
    ``is_level`` a ``POLICY_LOSSES`` name; ``rollout_is_cap``: truncated IS against the sampler's
    log-probs (0: off)."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    kl_kind: str = "k3"
    agg: str = "seq-mean-token-mean"
    max_len: int | None = None
    is_level: str = "token"
    rollout_is_cap: float = 0.0


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    spec: LossSpec = LossSpec(),
    *,
    ref_logp: torch.Tensor | None = None,
    rollout_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-ratio GRPO loss with a KL penalty: the negative of the paper's objective.

    logp, old_logp, ref_logp, mask: [N, T]; advantages: [N]; ``spec``: the scalars (``LossSpec``). Per
    token: ``-min(ρ·A, clip(ρ, 1-eps_low, 1+eps_high)·A) + beta·KL(logp, ref_logp)`` with
    ρ = exp(logp - old_logp), then ``agg_loss(…, agg, max_len)``. With one update per rollout (μ=1) pass
    ``old_logp=logp.detach()``: ρ is 1 and the gradient is the plain policy gradient. ``is_level`` names
    the ``POLICY_LOSSES`` entry: "token" (one ρ per token) or "sequence" (GSPO: ``sequence_log_ratio``,
    clipped per sequence).

    Metrics (detached scalars, means over masked tokens, or over sequences for ``is_level="sequence"``
    as TRL logs them): ``clip_frac_low`` (ρ < 1-eps_low with A < 0),
    ``clip_frac_high`` (ρ > 1+eps_high with A > 0), ``ratio_mean``, and ``kl`` when ``ref_logp`` is given.

    >>> logp = torch.zeros(2, 3, requires_grad=True)
    >>> loss, m = policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    >>> loss.item(), m["ratio_mean"].item(), m["clip_frac_high"].item()
    (0.0, 1.0, 0.0)
    """
    eps_low, eps_high, beta = spec.eps_low, spec.eps_high, spec.beta
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp")
    surrogate = POLICY_LOSSES.get(spec.is_level)
    mask = mask.to(torch.float32)
    logp = logp.float()
    adv = advantages.float()[:, None]  # [N, 1]
    loss_mat, ratio = surrogate(logp, old_logp, adv, mask, eps_low, eps_high)  # [N, T]; [N, T] or [N, 1]
    metrics: dict[str, torch.Tensor] = {}
    if rollout_logp is not None and spec.rollout_is_cap > 0:
        weights = truncated_is_weights(old_logp, rollout_logp, spec.rollout_is_cap)  # [N, T]
        loss_mat = loss_mat * weights
        metrics["is_weight_mean"] = _masked_mean(weights, mask)
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp, spec.kl_kind)
        if beta > 0:
            loss_mat = loss_mat + beta * kl
        metrics["kl"] = _masked_mean(kl.detach(), mask)
    loss = agg_loss(loss_mat, mask, spec.agg, spec.max_len)
    with torch.no_grad():
        metrics["clip_frac_low"] = _masked_mean(((ratio < 1 - eps_low) & (adv < 0)).float(), mask)
        metrics["clip_frac_high"] = _masked_mean(((ratio > 1 + eps_high) & (adv > 0)).float(), mask)
        metrics["ratio_mean"] = _masked_mean(ratio, mask)
    return loss, metrics
