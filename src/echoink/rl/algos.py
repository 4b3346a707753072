"""GRPO maths as pure tensor functions (paper Sec. 3.2): group-relative advantages, per-token
log-probs, the KL penalty to a reference policy, and the clipped policy loss.

Shape letters: B prompts, G completions per prompt, N = B·G completions, T completion tokens,
V vocabulary. All maths runs in float32 whatever the input dtype. This module imports only torch.

The per-token loss and its aggregation are separate (``policy_loss`` calls ``agg_loss``): GRPO,
DAPO/BNPO and Dr. GRPO differ mainly in ``agg``.

>>> rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])  # B=2 prompts, G=2
>>> adv, zero_std = group_advantages(rewards, G=2)
>>> adv.tolist(), zero_std.tolist()
([0.7071..., -0.7071..., 0.0, 0.0], [False, True])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SCALES = ("group", "batch", "none")
KL_KINDS = ("k1", "k3", "abs")
IS_LEVELS = ("token", "sequence")


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
    if scale not in SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; valid: {', '.join(SCALES)}")
    if G < 2 or rewards.numel() % G:
        raise ValueError(f"need G >= 2 dividing the {rewards.numel()} rewards, got G={G}")
    r = rewards.float().view(-1, G)  # [B, G]
    zero_std = (r == r[:, :1]).all(dim=1)  # [B]; exact, unlike comparing a float std to 0
    adv = r - r.mean(dim=1, keepdim=True)
    if scale == "group":
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        adv = adv / (r.std() + eps)
    adv = torch.where(zero_std[:, None], torch.zeros_like(adv), adv)
    return adv.reshape(-1), zero_std


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, chunk_tokens: int = 256
) -> torch.Tensor:
    """log softmax(logits / temperature) at ``targets``: logits [N, T, V], targets [N, T] -> [N, T] float32.

    Computed as ``x[target] - logsumexp(x)`` over tiles of about ``chunk_tokens`` positions, so the
    only float32 copy of the logits alive at a time is one [chunk_tokens, V] tile (a full log_softmax
    of a bf16 [N, T, V] would allocate twice the logits' size in float32). Sliced (non-contiguous)
    logits such as ``logits[:, P-1:-1]`` are read in place, never copied whole. Differentiable.

    >>> logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])  # N=1, T=2, V=2
    >>> token_logprobs(logits, torch.tensor([[0, 1]])).tolist()
    [[-0.6931..., -2.1269...]]
    """
    N, T, _ = logits.shape
    if N * T == 0:
        return torch.zeros(N, T, dtype=torch.float32, device=logits.device)
    # Tiles of rows x cols positions, cut from the [N, T, V] tensor itself: reshaping a sliced
    # (non-contiguous) logits tensor to [N·T, V] would copy all of it.
    rows, cols = max(1, chunk_tokens // T), min(T, max(1, chunk_tokens))
    out = []
    for n0 in range(0, N, rows):
        row_out = []
        for t0 in range(0, T, cols):
            x = logits[n0 : n0 + rows, t0 : t0 + cols].float()  # [rows, cols, V]; the only float32 copy
            if temperature != 1.0:
                x = x / temperature
            picked = x.gather(-1, targets[n0 : n0 + rows, t0 : t0 + cols, None]).squeeze(-1)
            row_out.append(picked - torch.logsumexp(x, dim=-1))
        out.append(torch.cat(row_out, dim=1))
    return torch.cat(out, dim=0)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled-token log-probs, [N, T] -> [N, T].

    k1 = logp - ref (unbiased, can be negative); k3 = exp(ref - logp) - (ref - logp) - 1 (unbiased,
    >= 0, the GRPO paper's estimator); abs = |logp - ref|.

    >>> kl_penalty(torch.tensor([0.0]), torch.tensor([0.0]), "k3").tolist()
    [0.0]
    """
    delta = ref_logp.float() - logp.float()
    if kind == "k1":
        return -delta
    if kind == "k3":
        return torch.exp(delta) - delta - 1
    if kind == "abs":
        return delta.abs()
    raise ValueError(f"unknown KL estimator {kind!r}; valid: {', '.join(KL_KINDS)}")


def _seq_mean_token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    return ((loss_mat * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def _token_mean(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    return (loss_mat * mask).sum() / mask.sum().clamp(min=1)


def _seq_mean_token_sum_norm(loss_mat: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    # A constant denominator: no length bias (Dr. GRPO). T stands in when the caller gives no max length.
    return (loss_mat * mask).sum() / (loss_mat.shape[0] * (max_len or loss_mat.shape[-1]))


AGG_MODES: dict[str, Callable[[torch.Tensor, torch.Tensor, int | None], torch.Tensor]] = {
    "seq-mean-token-mean": _seq_mean_token_mean,  # GRPO (paper): each completion weighs the same
    "token-mean": _token_mean,  # DAPO / BNPO: each token weighs the same
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,  # Dr. GRPO
}


def agg_loss(
    loss_mat: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None
) -> torch.Tensor:
    """Aggregate a per-token loss [N, T] over the tokens where ``mask`` [N, T] is set, to a scalar.

    ``mode``: "seq-mean-token-mean" (mean over completions of each one's token mean), "token-mean"
    (mean over all tokens), "seq-mean-token-sum-norm" (sum over all tokens / (N · max_len); ``max_len``
    defaults to T). Rows with an empty mask count as zero loss.

    >>> loss, mask = torch.tensor([[1.0, 1.0], [4.0, 0.0]]), torch.tensor([[1, 1], [1, 0]])
    >>> [agg_loss(loss, mask, m, max_len=4).item() for m in AGG_MODES]
    [2.5, 2.0, 0.75]
    """
    try:
        fn = AGG_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown loss aggregation {mode!r}; valid: {', '.join(AGG_MODES)}") from None
    return fn(loss_mat.float(), mask.to(torch.float32), max_len)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] == 1 and mask.shape[-1] != 1:  # one value per sequence (GSPO): a mean over sequences
        return x.mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def log_importance_weights(
    logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, level: str = "token"
) -> torch.Tensor:
    """log ρ: "token" -> [N, T] per-token ``logp - old_logp`` (GRPO/PPO); "sequence" -> [N, 1] GSPO's
    length-normalised sequence log-ratio ``mean_t(logp - old_logp)`` over the masked tokens.

    GSPO (Zheng et al. 2025) clips ``exp`` of the sequence value once per completion, so one token's
    large ratio cannot dominate a sequence's update; TRL names it ``importance_sampling_level="sequence"``.

    >>> logp, old = torch.tensor([[0.0, -1.0, 5.0]]), torch.tensor([[-1.0, -1.0, 0.0]])
    >>> mask = torch.tensor([[1, 1, 0]])  # the third token is padding
    >>> log_importance_weights(logp, old, mask, "sequence").tolist()
    [[0.5]]
    """
    log_ratio = logp.float() - old_logp.float()  # [N, T]
    if level == "token":
        return log_ratio
    if level == "sequence":
        mask = mask.to(torch.float32)
        return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1))[:, None]  # [N, 1]
    raise ValueError(f"unknown importance sampling level {level!r}; valid: {', '.join(IS_LEVELS)}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    *,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    kl_kind: str = "k3",
    agg: str = "seq-mean-token-mean",
    max_len: int | None = None,
    is_level: str = "token",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped-ratio GRPO loss with a KL penalty: the negative of the paper's objective.

    logp, old_logp, ref_logp, mask: [N, T]; advantages: [N]. Per token:
    ``-min(ρ·A, clip(ρ, 1-eps_low, 1+eps_high)·A) + beta·KL(logp, ref_logp)`` with ρ = exp(logp - old_logp),
    then ``agg_loss(…, agg, max_len)``. With one update per rollout (μ=1) pass ``old_logp=logp.detach()``:
    ρ is 1 and the gradient is the plain policy gradient. ``is_level="sequence"`` (GSPO) uses one ρ per
    completion, ``log_importance_weights``'s length-normalised sequence ratio, clipped per sequence.

    Metrics (detached scalars, means over masked tokens, or over sequences for ``is_level="sequence"``
    as TRL logs them): ``clip_frac_low`` (ρ < 1-eps_low with A < 0),
    ``clip_frac_high`` (ρ > 1+eps_high with A > 0), ``ratio_mean``, and ``kl`` when ``ref_logp`` is given.

    >>> logp = torch.zeros(2, 3, requires_grad=True)
    >>> loss, m = policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    >>> loss.item(), m["ratio_mean"].item(), m["clip_frac_high"].item()
    (0.0, 1.0, 0.0)
    """
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp")
    mask = mask.to(torch.float32)
    logp = logp.float()
    ratio = torch.exp(log_importance_weights(logp, old_logp, mask, is_level))  # [N, T] or [N, 1]
    adv = advantages.float()[:, None]  # [N, 1]
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
    loss_mat = -torch.min(ratio * adv, clipped * adv).expand_as(logp)  # [N, T]
    metrics: dict[str, torch.Tensor] = {}
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp, kl_kind)
        if beta > 0:
            loss_mat = loss_mat + beta * kl
        metrics["kl"] = _masked_mean(kl.detach(), mask)
    loss = agg_loss(loss_mat, mask, agg, max_len)
    with torch.no_grad():
        metrics["clip_frac_low"] = _masked_mean(((ratio < 1 - eps_low) & (adv < 0)).float(), mask)
        metrics["clip_frac_high"] = _masked_mean(((ratio > 1 + eps_high) & (adv > 0)).float(), mask)
        metrics["ratio_mean"] = _masked_mean(ratio, mask)
    return loss, metrics
