"""Each vectorised function in echoink.rl.algos against a slow, obviously-correct loop version."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from echoink.model.logprobs import token_logprobs
from echoink.rl.algos import (
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    LossSpec,
    agg_loss,
    group_advantages,
    kl_penalty,
    policy_loss,
    rollout_mismatch,
)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float]) -> float:  # unbiased
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def loop_group_advantages(
    rewards: list[float], G: int, scale: str, eps: float
) -> tuple[list[float], list[bool]]:
    out, zero = [], []
    for b in range(len(rewards) // G):
        group = rewards[b * G : (b + 1) * G]
        flat = len(set(group)) == 1
        zero.append(flat)
        for r in group:
            if flat:
                out.append(0.0)
            elif scale == "group":
                out.append((r - _mean(group)) / (_std(group) + eps))
            elif scale == "batch":
                out.append((r - _mean(group)) / (_std(rewards) + eps))
            else:
                out.append(r - _mean(group))
    return out, zero


def loop_token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    N, T, V = logits.shape
    out = torch.zeros(N, T, dtype=torch.float64)
    for n in range(N):
        for t in range(T):
            row = [float(x) / temperature for x in logits[n, t]]
            log_z = math.log(sum(math.exp(x) for x in row))
            out[n, t] = row[int(targets[n, t])] - log_z
    return out


def loop_kl(logp: float, ref: float, kind: str) -> float:
    if kind == "k1":
        return logp - ref
    if kind == "k3":  # verl's clamps: the log-ratio to ±20, the estimate to at most 10
        delta = max(-20.0, min(20.0, ref - logp))
        return min(math.exp(delta) - delta - 1, 10.0)
    return abs(logp - ref)


def loop_agg(loss: list[list[float]], mask: list[list[int]], mode: str, max_len: int) -> float:
    if mode == "token-mean":
        num = sum(x for row, m in zip(loss, mask, strict=True) for x, k in zip(row, m, strict=True) if k)
        return num / max(1, sum(map(sum, mask)))
    if mode == "seq-mean-token-mean":
        per_seq = []
        for row, m in zip(loss, mask, strict=True):
            kept = [x for x, k in zip(row, m, strict=True) if k]
            per_seq.append(sum(kept) / max(1, len(kept)))
        return _mean(per_seq)
    total = sum(x for row, m in zip(loss, mask, strict=True) for x, k in zip(row, m, strict=True) if k)
    return total / (len(loss) * max_len)


def loop_policy_loss(logp, old, adv, mask, eps_low, eps_high, ref, beta, mode, max_len):
    N, T = len(logp), len(logp[0])
    loss = [[0.0] * T for _ in range(N)]
    for n in range(N):
        for t in range(T):
            ratio = math.exp(max(-20.0, min(20.0, logp[n][t] - old[n][t])))
            clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
            loss[n][t] = -min(ratio * adv[n], clipped * adv[n]) + beta * loop_kl(logp[n][t], ref[n][t], "k3")
    return loop_agg(loss, mask, mode, max_len)


def _random_mask(N: int, T: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(0, T + 1, (N,), generator=gen)  # includes empty completions
    return (torch.arange(T)[None, :] < lengths[:, None]).long()


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("eps", [0.0, 1e-4])
def test_group_advantages_matches_loop(scale: str, eps: float) -> None:
    gen = torch.Generator().manual_seed(0)
    B, G = 7, 5
    rewards = torch.randint(0, 3, (B * G,), generator=gen).float() / 2  # ties and flat groups happen
    rewards[:G] = 1.0  # one flat group for sure
    adv, zero = group_advantages(rewards, G, scale, eps)
    ref_adv, ref_zero = loop_group_advantages(rewards.tolist(), G, scale, eps)
    assert adv.shape == (B * G,) and zero.shape == (B,)
    torch.testing.assert_close(adv, torch.tensor(ref_adv), atol=1e-5, rtol=1e-5)
    assert zero.tolist() == ref_zero and zero[0]


@settings(max_examples=100, deadline=None)
@given(
    rewards=st.lists(st.integers(-40, 40).map(lambda k: k / 4), min_size=2, max_size=24),  # reward-like grid
    G=st.integers(2, 6),
    scale=st.sampled_from(["group", "batch", "none"]),
)
def test_group_advantages_finite_and_centred(rewards: list[float], G: int, scale: str) -> None:
    rewards = rewards[: len(rewards) // G * G] or [0.0] * G
    adv, zero = group_advantages(torch.tensor(rewards), G, scale, eps=0.0)
    assert torch.isfinite(adv).all()
    grouped = adv.view(-1, G)
    assert (grouped[zero] == 0).all()
    torch.testing.assert_close(grouped.sum(1), torch.zeros(len(grouped)), atol=1e-3, rtol=0)


def test_group_advantages_rejects_bad_args() -> None:
    with pytest.raises(ValueError, match="valid: batch, group, none"):
        group_advantages(torch.zeros(4), 2, "rank")
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), 2)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_token_logprobs_matches_loop(temperature: float, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    N, T, V = 3, 5, 11
    logits = (torch.randn(N, T, V, generator=gen) * 3).to(dtype)
    targets = torch.randint(0, V, (N, T), generator=gen)
    want = loop_token_logprobs(logits.float(), targets, temperature).float()
    for chunk in (1, 4, 10, 1024):  # tiles inside a row, a row and a half, two rows, everything
        got = token_logprobs(logits, targets, temperature, chunk_tokens=chunk)
        assert got.dtype == torch.float32 and got.shape == (N, T)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # A sliced, non-contiguous view (how completion logits are cut from a prompt+completion forward).
    padded = torch.cat([torch.zeros(N, 2, V, dtype=dtype), logits], dim=1)[:, 2:]
    assert not padded.is_contiguous()
    torch.testing.assert_close(
        token_logprobs(padded, targets, temperature, chunk_tokens=4), want, atol=1e-5, rtol=1e-5
    )


def test_token_logprobs_gradient_matches_log_softmax() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 9, generator=gen, requires_grad=True)
    targets = torch.randint(0, 9, (2, 4), generator=gen)
    token_logprobs(logits, targets, 0.9, chunk_tokens=3).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    torch.log_softmax(logits / 0.9, -1).gather(-1, targets[..., None]).sum().backward()
    torch.testing.assert_close(ours, logits.grad)


def test_token_logprobs_empty() -> None:
    assert token_logprobs(torch.zeros(2, 0, 5), torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0)


@pytest.mark.parametrize("kind", ["k1", "k3", "abs"])
def test_kl_penalty_matches_loop(kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    logp, ref = -torch.rand(4, 6, generator=gen) * 4, -torch.rand(4, 6, generator=gen) * 4
    got = kl_penalty(logp, ref, kind)
    want = [
        [loop_kl(a, b, kind) for a, b in zip(r1, r2, strict=True)]
        for r1, r2 in zip(logp.tolist(), ref.tolist(), strict=True)
    ]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-6, rtol=1e-5)
    if kind != "k1":
        assert (got >= 0).all()
    with pytest.raises(ValueError, match="valid: abs, k1, k3"):
        kl_penalty(logp, ref, "k2")


@pytest.mark.parametrize("mode", list(LOSS_AGGREGATIONS))
def test_agg_loss_matches_loop(mode: str) -> None:
    gen = torch.Generator().manual_seed(4)
    N, T = 6, 7
    loss, mask = torch.randn(N, T, generator=gen), _random_mask(N, T, gen)
    got = agg_loss(loss, mask, mode, max_len=10)
    torch.testing.assert_close(
        got, torch.tensor(loop_agg(loss.tolist(), mask.tolist(), mode, 10)), atol=1e-6, rtol=1e-5
    )
    with pytest.raises(ValueError, match="valid: seq-mean-token-mean"):
        agg_loss(loss, mask, "sum")


@pytest.mark.parametrize("mode", list(LOSS_AGGREGATIONS))
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_policy_loss_matches_loop(mode: str, beta: float) -> None:
    gen = torch.Generator().manual_seed(5)
    N, T = 8, 6
    logp = (-torch.rand(N, T, generator=gen) * 3).requires_grad_()
    old = logp.detach() + torch.randn(N, T, generator=gen) * 0.3  # ratios well outside [0.8, 1.28]
    ref = logp.detach() + torch.randn(N, T, generator=gen) * 0.3
    adv, mask = torch.randn(N, generator=gen), _random_mask(N, T, gen)
    spec = LossSpec(0.2, 0.28, beta=beta, agg=mode, max_len=T + 2)
    loss, metrics = policy_loss(logp, old, adv, mask, spec, ref_logp=ref)
    args = (
        logp.tolist(),
        old.tolist(),
        adv.tolist(),
        mask.tolist(),
        0.2,
        0.28,
        ref.tolist(),
        beta,
        mode,
        T + 2,
    )
    torch.testing.assert_close(loss, torch.tensor(loop_policy_loss(*args)), atol=1e-6, rtol=1e-5)
    # Metrics against loops over the kept tokens.
    kept = [(n, t) for n in range(N) for t in range(T) if mask[n, t]]
    ratios = {(n, t): math.exp(logp[n, t].item() - old[n, t].item()) for n, t in kept}
    low = _mean([float(ratios[k] < 0.8 and adv[k[0]] < 0) for k in kept])
    high = _mean([float(ratios[k] > 1.28 and adv[k[0]] > 0) for k in kept])
    assert low > 0 and high > 0  # the case exercises both clips
    torch.testing.assert_close(metrics["clip_frac_low"], torch.tensor(low))
    torch.testing.assert_close(metrics["clip_frac_high"], torch.tensor(high))
    torch.testing.assert_close(metrics["ratio_mean"], torch.tensor(_mean(list(ratios.values()))))
    kl = _mean([loop_kl(logp[k].item(), ref[k].item(), "k3") for k in kept])
    torch.testing.assert_close(metrics["kl"], torch.tensor(kl))
    assert all(not v.requires_grad for v in metrics.values())
    loss.backward()
    assert torch.isfinite(logp.grad).all()


def test_policy_loss_on_policy_gradient_is_reinforce() -> None:
    """μ = 1 (the paper): old = logp.detach(), ratio 1, so d loss / d logp = -A / |o| per kept token."""
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.1, 0.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = torch.tensor([2.0, -1.0])
    loss, _ = policy_loss(logp, logp.detach(), adv, mask)
    loss.backward()
    want = torch.tensor([[-1.0, -1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]) / 2  # mean over 2 sequences
    torch.testing.assert_close(logp.grad, want)


@pytest.mark.parametrize("level", list(POLICY_LOSSES))
def test_a_far_off_token_no_longer_voids_the_pass(level: str) -> None:
    """A token the old policy gave log-prob -200 (its ratio e^198 overflows float32) and one the policy
    now gives -200 (its k3 term e^198 overflows): the loss used to be inf, and the finite-step guard
    skipped the whole pass. Clamped as verl's, the loss and every gradient are finite, and the other
    completions train exactly as in the same pass without the far-off tokens."""
    gen = torch.Generator().manual_seed(7)
    N, T = 4, 5
    base = -torch.rand(N, T, generator=gen) * 3
    old, ref = base + torch.randn(N, T, generator=gen) * 0.1, base + torch.randn(N, T, generator=gen) * 0.1
    adv, mask = torch.tensor([1.0, -1.0, 0.5, -0.5]), torch.ones(N, T)

    def grad(logp: torch.Tensor, old: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = logp.clone().requires_grad_()
        spec = LossSpec(0.2, 0.28, beta=0.04, is_level=level)
        loss, _ = policy_loss(logp, old, adv, mask, spec, ref_logp=ref)
        loss.backward()
        return loss, logp.grad

    far_old, far_logp = old.clone(), base.clone()
    far_old[1, 2], far_logp[2, 3] = -200.0, -200.0
    loss, g = grad(far_logp, far_old)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    _, clean = grad(base, old)
    torch.testing.assert_close(g[[0, 3]], clean[[0, 3]])  # the completions without a far-off token
    assert g[[0, 3]].abs().min() > 0


def test_policy_loss_needs_ref_for_beta() -> None:
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(
            torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.ones(1, 1), LossSpec(beta=0.1)
        )


def loop_tis_policy_loss(logp, old, rollout, adv, mask, cap, mode, max_len):
    """The clipped surrogate of each token times min(exp(old - rollout), cap), then aggregated."""
    N, T = len(logp), len(logp[0])
    loss = [[0.0] * T for _ in range(N)]
    for n in range(N):
        for t in range(T):
            ratio = math.exp(max(-20.0, min(20.0, logp[n][t] - old[n][t])))
            clipped = min(max(ratio, 0.8), 1.2)
            weight = min(math.exp(old[n][t] - rollout[n][t]), cap)
            loss[n][t] = -min(ratio * adv[n], clipped * adv[n]) * weight
    return loop_agg(loss, mask, mode, max_len)


@pytest.mark.parametrize("mode", sorted(LOSS_AGGREGATIONS.names()))
def test_truncated_importance_sampling_matches_loop(mode: str) -> None:
    gen = torch.Generator().manual_seed(11)
    N, T, cap = 6, 5, 2.0
    logp = (-torch.rand(N, T, generator=gen) * 3).requires_grad_()
    old = logp.detach() + torch.randn(N, T, generator=gen) * 0.1
    rollout = old + torch.randn(N, T, generator=gen) * 0.8  # weights both under and over the cap
    adv, mask = torch.randn(N, generator=gen), _random_mask(N, T, gen)
    spec = LossSpec(agg=mode, max_len=T, rollout_is_cap=cap)
    loss, metrics = policy_loss(logp, old, adv, mask, spec, rollout_logp=rollout)
    want = loop_tis_policy_loss(
        logp.tolist(), old.tolist(), rollout.tolist(), adv.tolist(), mask.tolist(), cap, mode, T
    )
    torch.testing.assert_close(loss, torch.tensor(want), atol=1e-6, rtol=1e-5)
    weights = [
        min(math.exp(old[n, t] - rollout[n, t]), cap) for n in range(N) for t in range(T) if mask[n, t]
    ]
    assert min(weights) < 1 < cap == max(weights)  # the case exercises the cap
    torch.testing.assert_close(metrics["is_weight_mean"], torch.tensor(_mean(weights)), atol=1e-6, rtol=1e-5)
    off = LossSpec(agg=mode, max_len=T)  # cap 0: off
    untouched, _ = policy_loss(logp, old, adv, mask, off, rollout_logp=rollout)
    torch.testing.assert_close(untouched, policy_loss(logp, old, adv, mask, off)[0])


def test_rollout_mismatch_matches_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    logp, other = torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)
    mask = _random_mask(4, 7, gen)
    total, worst, count = rollout_mismatch(logp, other, mask)
    diffs = [abs(logp[n, t].item() - other[n, t].item()) for n in range(4) for t in range(7) if mask[n, t]]
    assert (
        count == len(diffs)
        and worst == pytest.approx(max(diffs))
        and total == pytest.approx(sum(diffs), rel=1e-5)
    )
