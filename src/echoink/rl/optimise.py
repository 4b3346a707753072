"""The optimisation of one GRPO step: μ passes over the rollout batch in mini-batches of prompts, one
optimiser step per pass, with every pass's loss and gradient checked before it is applied.

Shapes: B prompts per process, G completions each, N = B·G, T completion tokens.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from accelerate import Accelerator

from ..config import Config
from ..errors import UserError
from ..guards import check_weights
from ..runlog import timed
from . import algos
from .experience import Experience
from .state import Handles, LoopState

log = logging.getLogger(__name__)


class TrainingAborted(UserError, RuntimeError):
    """Too many consecutive non-finite steps."""


def optimise(cfg: Config, h: Handles, state: LoopState, exp: Experience) -> dict[str, float]:
    """μ passes over the batch in mini-batches of prompts; one optimiser step per pass.

    The LR schedule advances once per training step (after the μ passes), so ``max_steps`` of a
    cosine schedule means training steps whatever μ is. A pass whose loss or gradient is not finite
    skips that pass's update only; the step counts as bad (``train.max_bad_steps`` in a row abort)
    when any of its passes was skipped.
    """
    acc = h.accelerator
    b = exp.num_prompts
    mb = cfg.train.mini_batch_prompts or b
    chunks = [(s, min(s + mb, b)) for s in range(0, b, mb)]
    loss_mask = exp.completion_mask.float()
    if cfg.algo.mask_truncated_completions:
        loss_mask = loss_mask * (~exp.truncated).float()[:, None]
    weights = _chunk_weights(acc, loss_mask, chunks, exp.group_size, cfg.algo.loss_agg)
    totals: dict[str, float] = {}
    skipped = 0
    mismatch = [
        0.0,
        0.0,
        0.0,
    ]  # sum, max, count of |trainer - sampler| log-prob (first pass: rollout weights)
    for it in range(cfg.algo.num_iterations):
        pass_loss = 0.0
        with timed(totals, "time/policy_forward_backward"):
            for i, (start, stop) in enumerate(chunks):
                sync = acc.no_sync(h.scorer) if i < len(chunks) - 1 else contextlib.nullcontext()
                with sync:  # DDP decides in the forward whether the backward all-reduces: both go inside
                    loss, m, logp, rows = _mini_batch_loss(cfg, h.scorer, exp, start, stop, loss_mask)
                    h.backend.backward(h.scorer, loss * weights[i])
                pass_loss += float(loss.detach()) * weights[i]  # this process's share of the global loss
                _accumulate(totals, m, logp.detach(), loss_mask[rows])
                if it == 0 and exp.rollout_logprobs is not None:
                    total, worst, count = algos.rollout_mismatch(
                        logp, exp.rollout_logprobs[rows], exp.completion_mask[rows]
                    )
                    mismatch = [mismatch[0] + total, max(mismatch[1], worst), mismatch[2] + count]
        totals["loss"] = totals.get("loss", 0.0) + pass_loss
        with timed(totals, "time/optimizer"):
            skipped += not _step(cfg, h, state, totals, pass_loss)
    h.scheduler.step()  # once per training step
    _count_bad_step(state, skipped, cfg.train.max_bad_steps)
    totals["skipped_updates"] = float(state.skipped_updates)
    # Per-mini-batch statistics are averaged over the μ × chunks mini-batches; the loss over the μ
    # passes (each pass's is the loss it optimised: the weighted sum over its mini-batches).
    n_batches, n_passes = cfg.algo.num_iterations * len(chunks), cfg.algo.num_iterations
    out = {
        k: (v / n_batches if not k.startswith(("time/", "grad_norm", "skipped")) else v)
        for k, v in totals.items()
    }
    out["loss"] = totals["loss"] / n_passes
    if exp.rollout_logprobs is not None:
        out["rollout/logprob_diff_mean"] = mismatch[0] / max(mismatch[2], 1.0)
        out["rollout/logprob_diff_max"] = mismatch[1]
    return out


def loss_spec(cfg: Config) -> algos.LossSpec:
    """The policy loss's scalars from a recipe (``algo`` and the completion budget)."""
    a = cfg.algo
    return algos.LossSpec(
        a.epsilon_low, a.epsilon_high, a.beta, a.kl_estimator, a.loss_agg, cfg.rollout.max_new_tokens,
        a.importance_sampling_level, a.rollout_is_cap,
    )  # fmt: skip


def _mini_batch_loss(cfg: Config, scorer, exp: Experience, start: int, stop: int, loss_mask: torch.Tensor):
    """(loss, metrics, [rows, T] log-probs, row slice) of prompts [start, stop) and their completions."""
    part = exp.prompt_slice(start, stop)
    rows = slice(start * exp.group_size, stop * exp.group_size)
    logp, aux = scorer(part.prompts, part.completion_ids, exp.group_size, cfg.rollout.temperature)
    old = part.old_logprobs if part.old_logprobs is not None else logp.detach()
    loss, m = algos.policy_loss(
        logp, old, part.advantages, loss_mask[rows], loss_spec(cfg),
        ref_logp=part.ref_logprobs, rollout_logp=part.rollout_logprobs,
    )  # fmt: skip
    if aux is not None:  # MoE load balancing (algo.router_aux_loss_coef > 0)
        loss = loss + cfg.algo.router_aux_loss_coef * aux
        m["aux_loss"] = aux.detach()
    return loss, m, logp, rows


def _chunk_weights(acc: Accelerator, mask: torch.Tensor, chunks: list, g: int, agg: str) -> list[float]:
    """Weight of each mini-batch's loss so the accumulated gradient is that of the global batch's loss.

    Each mini-batch's loss is a mean over its own completions (over its tokens for "token-mean"), and
    DDP averages gradients over the W processes. Weighting a mini-batch by W · (its completions or
    tokens) / (all processes' completions or tokens) makes the result the loss aggregated over the
    global batch, exactly what one process with W times the prompts computes. Completion counts are
    equal on every process, but token counts are not: "token-mean" needs the global sum (one
    all-reduce). One process, one mini-batch: the weight is exactly 1.
    """
    token = agg == "token-mean"
    sizes = [float(mask[s * g : e * g].sum()) if token else float((e - s) * g) for s, e in chunks]
    total = sum(sizes)
    if acc.num_processes > 1:
        total = float(acc.reduce(torch.tensor(total, dtype=torch.float64, device=acc.device), "sum"))
    return [acc.num_processes * n / max(total, 1.0) for n in sizes]


def _accumulate(totals: dict, metrics: dict, logp: torch.Tensor, mask: torch.Tensor) -> None:
    """Add one mini-batch's statistics. ``kl`` only when a reference computed it (β > 0 or logged);
    ``sampled_token_nll`` is what it says: the mean -log π of the sampled completion tokens at the
    sampling temperature (an estimate of the per-token entropy only when sampling used no top-p/top-k)."""
    denom = mask.sum().clamp(min=1)
    values = {
        f"clip_ratio/{k.removeprefix('clip_frac_')}": v
        for k, v in metrics.items()
        if k.startswith("clip_frac")
    }
    if "kl" in metrics:
        values["kl"] = metrics["kl"]
    values["ratio_mean"] = metrics["ratio_mean"]
    for name in ("aux_loss", "is_weight_mean"):
        if name in metrics:
            values[name] = metrics[name]
    values["sampled_token_nll"] = -(logp * mask).sum() / denom
    for k, v in values.items():
        totals[k] = totals.get(k, 0.0) + float(v)


def _step(cfg: Config, h: Handles, state: LoopState, totals: dict, pass_loss: float) -> bool:
    """Clip, check this pass's loss and gradient, step (the backend's); False when the update was
    skipped (not finite anywhere)."""
    finite, grad_norm = h.backend.step(h.policy, h.optimizer, h.scorer, cfg.train.max_grad_norm, pass_loss)
    totals["grad_norm"] = grad_norm
    if finite:  # a step that makes a weight non-finite stops here, naming the step
        check_weights(h.policy, state.step + 1, all_agree=h.backend.agreement())
    else:
        state.skipped_updates += 1
        log.warning("step %d: non-finite loss or grad norm (%s); update skipped", state.step + 1, grad_norm)
    return finite


def _count_bad_step(state: LoopState, skipped_passes: int, max_bad_steps: int) -> None:
    """A step with any skipped pass is bad; ``train.max_bad_steps`` bad steps in a row abort."""
    state.bad_steps = state.bad_steps + 1 if skipped_passes else 0
    if state.bad_steps >= max_bad_steps:
        raise TrainingAborted(
            f"{state.bad_steps} consecutive steps with non-finite updates, the last at step {state.step + 1}; "
            "lower train.lr or check the data (see metrics.jsonl)"
        )
