"""The GRPO training loop on accelerate (launch set-up in distributed.py, DeepSpeed specifics in sharding.py).

    for step:  rollout -> rewards -> advantages -> μ optimisation passes -> log -> checkpoint

Shapes: B prompts per process per step, G completions each, N = B·G, T completion tokens.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from ..config import Config
from ..data import load_split
from ..model import Engine
from ..runlog import RunLog
from ..scoring.rewards import register_rewards
from . import algos, sharding
from .distributed import make_accelerator, write_launch
from .experience import Experience, collect_experience
from .metrics import step_metrics
from .persistence import check_policy, checkpoint, export_final, restore, rollout_rows
from .run_dir import apply_changes, prepare_run_dir
from .sampling import PromptSampler
from .trackers import log_to_trackers, start_trackers, stop_trackers
from .validation import make_validator, validation_metrics

log = logging.getLogger(__name__)


class TrainingAborted(RuntimeError):
    """Too many consecutive non-finite steps."""


@dataclass
class Run:
    """Everything the loop touches, built once by ``setup_run``."""

    cfg: Config
    accelerator: Accelerator
    engine: Engine  # the model family's processor, sampling and log-prob passes
    scorer: torch.nn.Module  # the engine's CompletionScorer(policy), prepared by accelerate
    policy: torch.nn.Module
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    sampler: PromptSampler
    samples: list
    gen_config: object  # transformers GenerationConfig for rollouts
    log: RunLog
    run_dir: Path
    zero_stage: int | None = None  # DeepSpeed's ZeRO stage, None without DeepSpeed (sharding.py)
    step: int = 0
    bad_steps: int = 0
    skipped_updates: int = 0


def train(cfg: Config, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Train with GRPO as ``cfg`` says; returns the run directory."""
    run = setup_run(cfg, resume, allow_config_change)
    validator = make_validator(run)  # None unless train.eval_every
    bar = tqdm(
        total=cfg.train.max_steps, initial=run.step, desc="GRPO", disable=not run.accelerator.is_main_process
    )
    while run.step < cfg.train.max_steps:
        t_start = time.perf_counter()
        batch = next_rollout_batch(run)
        update = optimise(run, batch)
        run.step += 1
        metrics = step_metrics(batch, update, run, time.perf_counter() - t_start)
        metrics.update(validation_metrics(run, validator))  # every process takes part
        if run.step % cfg.train.log_every == 0 or "eval/accuracy" in metrics:
            run.log.metrics(run.step, metrics)
            log_to_trackers(run.accelerator, run.step, metrics)
        if run.step % cfg.train.rollouts_every == 0:
            run.log.rollouts(rollout_rows(run.step, batch, cfg.train.rollouts_per_log))
        if run.step % cfg.train.save_every == 0 or run.step == cfg.train.max_steps:
            checkpoint(run)
        bar.set_postfix(
            reward=f"{metrics['reward']:.3f}", acc=f"{metrics.get('rewards/accuracy/mean', math.nan):.2f}"
        )
        bar.update(1)
    bar.close()
    export_final(run)
    stop_trackers(run.accelerator)
    return run.run_dir


def setup_run(cfg: Config, resume: bool, allow_config_change: bool = False) -> Run:
    from ..model.loading import load_policy, load_processor, load_reference

    register_rewards(cfg.algo.rewards)  # fail on an unknown reward before loading anything
    accelerator = make_accelerator(cfg)
    run_dir = Path(cfg.train.output_dir)
    loaded = load_split(cfg.data.train_path, on_error=cfg.data.on_error, max_samples=cfg.data.max_samples)
    sampler = PromptSampler(
        len(loaded.samples),
        cfg.train.prompts_per_step,
        cfg.train.seed,
        accelerator.process_index,
        accelerator.num_processes,
    )
    changes = prepare_run_dir(cfg, resume, allow_config_change, main=accelerator.is_main_process)
    start_trackers(accelerator, cfg)  # train.report_to: TensorBoard / W&B / Trackio
    for skipped in loaded.skipped:
        log.warning("skipped %s", skipped)
    policy = load_policy(cfg.model, device=accelerator.device)
    reference = None
    if cfg.algo.beta > 0 and cfg.model.lora_rank == 0:
        reference = load_reference(cfg.model, device=accelerator.device)
    engine = Engine.for_model(policy, load_processor(cfg.model.path))
    vocab = engine.vocab_size(policy)  # before prepare: ZeRO-3 leaves each weight an empty placeholder
    optimizer, scheduler = make_optimizer(policy, cfg)
    # The scheduler is not prepared: accelerate would step it once per process per call.
    scorer = engine.scorer(
        policy, cfg.rollout.sharing, cfg.algo.router_aux_loss_coef, cfg.train.completions_per_pass
    )
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    if reference is not None:
        reference = sharding.shard_reference(accelerator, reference)  # ZeRO-3: partitioned too
    _log_layout(cfg, accelerator)
    r = cfg.rollout
    sampling = {"temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k}
    gen_config = engine.generation_config(vocab, max_new_tokens=r.max_new_tokens, do_sample=True, **sampling)
    run = Run(
        cfg=cfg,
        accelerator=accelerator,
        engine=engine,
        scorer=scorer,
        policy=policy,
        reference=reference,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        samples=loaded.samples,
        gen_config=gen_config,
        log=RunLog(run_dir, enabled=accelerator.is_main_process),
        run_dir=run_dir,
        zero_stage=sharding.zero_stage(accelerator),
    )
    write_launch(run)
    if resume:
        restore(run)
        apply_changes(run.optimizer, run.scheduler, cfg, changes)
    else:
        run.log.reset()
    return run


def _log_layout(cfg: Config, accelerator: Accelerator) -> None:
    """Say how the weights are held and, with gradient checkpointing, that prefix sharing stays on."""
    log.info("weights: %s on %d processes", sharding.engine_name(accelerator), accelerator.num_processes)
    if cfg.model.gradient_checkpointing and cfg.rollout.sharing == "prefix":
        per_pass = cfg.train.completions_per_pass or "all"
        log.info(
            "gradient checkpointing: prefix sharing is on (prompt once, completions checkpointed, %s per pass)",
            per_pass,
        )


def make_optimizer(policy: torch.nn.Module, cfg: Config):
    """(AdamW over the trainable parameters, its warm-up + cosine or constant LR schedule)."""
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    if cfg.train.lr_schedule == "cosine":
        scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.train.warmup_steps, cfg.train.max_steps)
    else:
        scheduler = get_constant_schedule_with_warmup(optimizer, cfg.train.warmup_steps)
    return optimizer, scheduler


def next_rollout_batch(run: Run) -> Experience:
    """Sample prompts and roll out; with dynamic sampling, replace zero-signal groups (capped rounds)."""
    cfg = run.cfg
    run.policy.eval()  # no dropout while sampling
    batch = _roll_out(run)
    rounds = 0
    while (
        cfg.algo.drop_zero_std_groups
        and rounds < cfg.algo.max_resample_rounds
        and _any_process(run, batch.zero_std)
    ):
        extra = _roll_out(run)
        batch = merge_signal_groups(batch, extra, cfg.train.prompts_per_step, run.engine.pad_id)
        rounds += 1
    run.policy.train()
    return batch


def _roll_out(run: Run) -> Experience:
    with sharding.full_weights(run.accelerator, run.scorer):  # ZeRO-3: one gather per rollout
        return collect_experience(run.engine, run.policy, run.reference, _draw(run), run.gen_config, run.cfg)


def _any_process(run: Run, flags: torch.Tensor) -> bool:
    """True on every process when any process has a set flag: resampling rounds are agreed by all, so
    every process draws the same number of batches and all stay on the one global prompt order."""
    acc = run.accelerator
    local = torch.tensor(float(flags.any()), device=acc.device)
    return bool(acc.reduce(local, "sum") > 0) if acc.num_processes > 1 else bool(local)


def _draw(run: Run) -> list:
    return [run.samples[i] for i in run.sampler.next_indices()]


def merge_signal_groups(first: Experience, extra: Experience, size: int, pad_id: int) -> Experience:
    """Keep groups with reward variance from ``first``, fill up from ``extra``'s, then zero-variance ones."""
    keep = [(first, b) for b in range(first.num_prompts) if not first.zero_std[b]]
    keep += [(extra, b) for b in range(extra.num_prompts) if not extra.zero_std[b]]
    keep += [(first, b) for b in range(first.num_prompts) if first.zero_std[b]]
    from .batching import concat_groups

    return concat_groups(keep[:size], pad_id)


def optimise(run: Run, exp: Experience) -> dict[str, float]:
    """μ passes over the batch in mini-batches of prompts; one optimiser step per pass.

    The LR schedule advances once per training step (after the μ passes), so ``max_steps`` of a
    cosine schedule means training steps whatever μ is. A pass whose loss or gradient is not finite
    skips that pass's update only; the step counts as bad (``train.max_bad_steps`` in a row abort)
    when any of its passes was skipped.
    """
    cfg, acc = run.cfg, run.accelerator
    b = exp.num_prompts
    mb = cfg.train.mini_batch_prompts or b
    chunks = [(s, min(s + mb, b)) for s in range(0, b, mb)]
    loss_mask = exp.completion_mask.float()
    if cfg.algo.mask_truncated_completions:
        loss_mask = loss_mask * (~exp.truncated).float()[:, None]
    weights = _chunk_weights(acc, loss_mask, chunks, exp.group_size, cfg.algo.loss_agg)
    totals: dict[str, float] = {}
    skipped = 0
    for _ in range(cfg.algo.num_iterations):
        t0 = time.perf_counter()
        pass_loss = 0.0
        for i, (start, stop) in enumerate(chunks):
            sync = acc.no_sync(run.scorer) if i < len(chunks) - 1 else contextlib.nullcontext()
            with sync:  # DDP decides in the forward whether the backward all-reduces: both go inside
                loss, m, logp, rows = _mini_batch_loss(run, exp, start, stop, loss_mask)
                _backward(run, loss * weights[i])
            pass_loss += float(loss.detach())
            _accumulate(totals, m, logp.detach(), loss_mask[rows], loss.detach())
        totals["time/policy_forward_backward"] = (
            totals.get("time/policy_forward_backward", 0) + time.perf_counter() - t0
        )
        t0 = time.perf_counter()
        skipped += not _step(run, totals, pass_loss)
        totals["time/optimizer"] = totals.get("time/optimizer", 0) + time.perf_counter() - t0
    run.scheduler.step()  # once per training step
    _count_bad_step(run, skipped)
    totals["skipped_updates"] = float(run.skipped_updates)
    n_passes = cfg.algo.num_iterations * len(chunks)
    return {
        k: (v / n_passes if not k.startswith(("time/", "grad_norm", "skipped")) else v)
        for k, v in totals.items()
    }


def _mini_batch_loss(run: Run, exp: Experience, start: int, stop: int, loss_mask: torch.Tensor):
    """(loss, metrics, [rows, T] log-probs, row slice) of prompts [start, stop) and their completions."""
    cfg = run.cfg
    part = exp.prompt_slice(start, stop)
    rows = slice(start * exp.group_size, stop * exp.group_size)
    logp, aux = run.scorer(part.prompts, part.completion_ids, exp.group_size, cfg.rollout.temperature)
    old = part.old_logprobs if part.old_logprobs is not None else logp.detach()
    loss, m = algos.policy_loss(
        logp, old, part.advantages, loss_mask[rows], cfg.algo.epsilon_low, cfg.algo.epsilon_high,
        ref_logp=part.ref_logprobs, beta=cfg.algo.beta, kl_kind=cfg.algo.kl_estimator,
        agg=cfg.algo.loss_agg, max_len=cfg.rollout.max_new_tokens,
        is_level=cfg.algo.importance_sampling_level,
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


def _accumulate(
    totals: dict, metrics: dict, logp: torch.Tensor, mask: torch.Tensor, loss: torch.Tensor
) -> None:
    denom = mask.sum().clamp(min=1)
    values = {
        f"clip_ratio/{k.removeprefix('clip_frac_')}": v
        for k, v in metrics.items()
        if k.startswith("clip_frac")
    }
    values["kl"] = metrics.get("kl", torch.tensor(0.0))
    values["ratio_mean"] = metrics["ratio_mean"]
    if "aux_loss" in metrics:
        values["aux_loss"] = metrics["aux_loss"]
    values["entropy"] = -(logp * mask).sum() / denom  # Monte-Carlo estimate over the sampled tokens
    values["loss"] = loss
    for k, v in values.items():
        totals[k] = totals.get(k, 0.0) + float(v)


def _backward(run: Run, loss: torch.Tensor) -> None:
    if run.zero_stage is not None:
        sharding.backward(run.scorer, loss)  # not accelerate's: it would step before the check below
    else:
        run.accelerator.backward(loss)


def _step(run: Run, totals: dict, pass_loss: float) -> bool:
    """Clip, check this pass's loss and gradient, step; False when the update was skipped (not finite).

    DeepSpeed clips and steps itself: its gradient partitions are checked on every process first.
    """
    if run.zero_stage is not None:
        finite, grad_norm = sharding.step_if_finite(run.scorer)
    else:
        params = [p for p in run.policy.parameters() if p.requires_grad]
        grad_norm = float(run.accelerator.clip_grad_norm_(params, run.cfg.train.max_grad_norm))
        finite = math.isfinite(grad_norm) and math.isfinite(pass_loss)
        if finite:
            run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    totals["grad_norm"] = grad_norm
    if finite:
        check_policy(run, run.step + 1)
    else:
        run.skipped_updates += 1
        log.warning("step %d: non-finite loss or grad norm (%s); update skipped", run.step + 1, grad_norm)
    return finite


def _count_bad_step(run: Run, skipped_passes: int) -> None:
    """A step with any skipped pass is bad; ``train.max_bad_steps`` bad steps in a row abort."""
    run.bad_steps = run.bad_steps + 1 if skipped_passes else 0
    if run.bad_steps >= run.cfg.train.max_bad_steps:
        raise TrainingAborted(
            f"{run.bad_steps} consecutive steps with non-finite updates, the last at step {run.step + 1}; "
            "lower train.lr or check the data (see metrics.jsonl)"
        )
