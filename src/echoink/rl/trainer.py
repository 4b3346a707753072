"""The GRPO training loop on accelerate; each stage of a step is one call into its own module:

    for step:  rollout.py (encode -> sample -> rewards -> advantages -> reference log-probs)
               -> optimise.py (μ passes) -> metrics.py -> validation.py -> persistence.py (checkpoint)

The launch is set up in distributed.py, DeepSpeed specifics live in sharding.py.

Shapes: B prompts per process per step, G completions each, N = B·G, T completion tokens.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from ..config import Config
from ..data import Sample, load_split
from ..model import Engine
from ..model.loading import (
    adapter_base_path,
    load_policy,
    load_processor,
    load_reference,
    needs_reference_copy,
)
from ..model.vllm_sampler import VllmSettings
from ..progress import Progress
from ..runlog import RunLog
from ..scoring.rewards import register_rewards
from . import sharding
from .backend import make_backend
from .distributed import any_process, check_sharing, gather_rows, largest, launch_record, make_accelerator
from .experience import Experience, merge_signal_groups
from .metrics import rollout_rows, step_metrics
from .optimise import TrainingAborted, optimise
from .persistence import checkpoint, export_policy, restore, save_best
from .rollout import Across, collect_experience
from .run_dir import Change, RunRecord, apply_changes, check_run_dir, write_record
from .sampling import PromptSampler
from .state import Handles, LoopState
from .trackers import log_to_trackers, start_trackers, stop_trackers
from .validation import make_validator, validation_metrics

__all__ = [
    "Run",
    "TrainingAborted",
    "build_run",
    "make_optimizer",
    "next_rollout_batch",
    "setup_run",
    "train",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """What ``build_run`` builds: the handles and the loop's state, and the loop's fixed inputs."""

    h: Handles
    state: LoopState
    samples: list[Sample]  # the training split, indexed by the sampler
    gen_config: Any  # transformers GenerationConfig for rollouts
    log: RunLog
    run_dir: Path
    record: RunRecord  # what setup_run writes into run_dir (config.yaml, inputs, launch)
    changes: list[Change]  # recipe changes on a resume, appended to the record's history


def train(cfg: Config, resume: bool = False, allow_config_change: bool = False) -> Path:
    """Train with GRPO as ``cfg`` says; returns the run directory."""
    run = setup_run(cfg, resume, allow_config_change)
    h, state = run.h, run.state
    try:
        _loop(cfg, run)
        export_policy(h, cfg, run.run_dir / "final", state.step)  # collective: before the engine closes
        stop_trackers(h.accelerator)
    finally:
        h.engine.close()  # rollout.engine vllm: the engine (and groups it formed itself) go with the run
    return run.run_dir


def _loop(cfg: Config, run: Run) -> None:
    """Steps until ``train.max_steps``: roll out, optimise, log, validate, checkpoint."""
    h, state = run.h, run.state
    validator = make_validator(
        cfg, h.accelerator.process_index, h.accelerator.num_processes, run.log.metrics_path
    )
    bar = Progress(
        cfg.train.max_steps, "GRPO", unit="step", quiet=not h.accelerator.is_main_process, initial=state.step
    )
    while state.step < cfg.train.max_steps:
        t_start = time.perf_counter()
        batch = next_rollout_batch(cfg, run)
        update = optimise(cfg, h, state, batch)
        state.step += 1
        lr = h.scheduler.get_last_lr()[0]
        metrics = step_metrics(
            batch, update, h.accelerator, lr, state.sampler.epoch, time.perf_counter() - t_start
        )
        metrics.update(validation_metrics(cfg, h, validator, state.step))  # every process
        if validator is not None and validator.improved and cfg.train.keep_best:
            validator.improved = False
            save_best(h, cfg, run.run_dir / "best", state.step)  # every process: ZeRO-3 gathers
        if state.step % cfg.train.log_every == 0 or "eval/accuracy" in metrics:
            run.log.metrics(state.step, metrics)
            log_to_trackers(h.accelerator, state.step, metrics)
        if state.step % cfg.train.rollouts_every == 0:
            rows = rollout_rows(state.step, batch, cfg.train.rollouts_per_log, h.accelerator)  # every process
            run.log.rollouts(rows)
        if state.step % cfg.train.save_every == 0 or state.step == cfg.train.max_steps:
            checkpoint(h, state, run.run_dir, cfg.train.keep_checkpoints)
        bar.set_postfix(
            reward=f"{metrics['reward']:.3f}", acc=f"{metrics.get('rewards/accuracy/mean', math.nan):.2f}"
        )
        bar.update(1)
    bar.close()


def build_run(cfg: Config, resume: bool, allow_config_change: bool = False) -> Run:
    """Launch, data, models, optimiser; on ``resume`` the newest checkpoint restored. Writes nothing:
    the run directory is checked before anything loads (``setup_run`` writes it once all is set up,
    so a run that fails to start leaves it as it was, and a probe of a recipe leaves no trace)."""
    register_rewards(cfg.algo.rewards)  # fail on an unknown reward before loading anything
    accelerator = make_accelerator(cfg)
    run_dir = Path(cfg.train.output_dir)
    loaded = load_split(cfg.data.train_path, on_error=cfg.data.on_error, max_samples=cfg.data.max_samples)
    rank, world = accelerator.process_index, accelerator.num_processes
    check_sharing(accelerator, cfg.rollout.sharing, {s.data_type for s in loaded.samples})
    sampler = PromptSampler(len(loaded.samples), cfg.train.prompts_per_step, cfg.train.seed, rank, world)
    record = RunRecord.of(cfg, launch_record(accelerator, cfg.train.mixed_precision))
    changes = check_run_dir(cfg, record, resume, allow_config_change)  # every process, before any writes
    for skipped in loaded.skipped:
        log.warning("skipped %s", skipped)
    h, gen_config = _handles(cfg, accelerator)
    _log_layout(cfg, accelerator)
    runlog = RunLog(run_dir, enabled=accelerator.is_main_process)
    run = Run(h, LoopState(sampler), loaded.samples, gen_config, runlog, run_dir, record, changes)
    restored = restore(h, run_dir) if resume else None
    if restored is not None:
        run.state.load_state_dict(restored)
    apply_changes(h.optimizer, h.scheduler, cfg, changes)
    return run


def setup_run(cfg: Config, resume: bool, allow_config_change: bool = False) -> Run:
    """``build_run``, then the run directory written: the record (main process), on ``resume`` the logs
    cut back to the restored step, the trackers started."""
    run = build_run(cfg, resume, allow_config_change)
    accelerator = run.h.accelerator
    accelerator.wait_for_everyone()  # every process has read the old record before it is replaced
    if accelerator.is_main_process:
        write_record(run.run_dir, cfg, run.record, run.changes, run.state.step)
    if resume:
        _cut_logs(run.log, run.state.step)
    start_trackers(accelerator, cfg, run.state.step if resume else None)  # train.report_to
    return run


def _cut_logs(runlog: RunLog, step: int) -> None:
    """Cut metrics.jsonl and rollouts.jsonl back to the restored ``step`` (0: no checkpoint), saying so."""
    cut = runlog.truncate_after(step)
    if any(cut.values()):
        counts = ", ".join(f"{n} lines of {name}" for name, n in cut.items())
        since = "the restored checkpoint" if step else "the start (no checkpoint had been saved)"
        log.warning("resume at step %d: cut %s, logged after %s", step, counts, since)


def _handles(cfg: Config, accelerator: Accelerator) -> tuple[Handles, Any]:
    """The policy, its prepared scorer, the reference, the optimiser and schedule; the rollouts' generation config."""
    policy = load_policy(cfg.model, device=accelerator.device)
    reference = None
    if needs_reference_copy(cfg.model, cfg.algo.beta):
        reference = load_reference(cfg.model, device=accelerator.device)
    engine = Engine.for_model(policy, load_processor(cfg.model.path))
    engine.every_tower = accelerator.num_processes > 1  # the same collective calls on every process
    if cfg.rollout.engine == "vllm":  # a colocated engine per process; the weights come with each rollout
        engine.use_vllm(
            adapter_base_path(cfg.model.path) or cfg.model.path,
            cfg.model.dtype,
            _vllm_settings(cfg, accelerator),
        )
    vocab = engine.vocab_size(policy)  # before prepare: ZeRO-3 leaves each weight an empty placeholder
    optimizer, scheduler = make_optimizer(policy, cfg)
    # The scheduler is not prepared: accelerate would step it once per process per call.
    scorer = engine.scorer(
        policy, cfg.rollout.sharing, cfg.algo.router_aux_loss_coef, cfg.train.completions_per_pass
    )
    scorer, optimizer = accelerator.prepare(scorer, optimizer)
    backend = make_backend(accelerator)  # chosen once: the stages call it, never ask for the ZeRO stage
    if reference is not None:
        reference = backend.prepare_reference(reference)  # ZeRO-3: partitioned too
    r = cfg.rollout
    sampling = {"temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k}
    gen_config = engine.generation_config(vocab, max_new_tokens=r.max_new_tokens, do_sample=True, **sampling)
    return Handles(accelerator, engine, policy, scorer, reference, optimizer, scheduler, backend), gen_config


def _vllm_settings(cfg: Config, accelerator: Accelerator) -> VllmSettings:
    r = cfg.rollout
    return VllmSettings(
        r.vllm_gpu_memory_utilization,
        r.vllm_tensor_parallel_size,
        r.vllm_max_model_len,
        r.vllm_sleep,
        seed=cfg.train.seed + accelerator.process_index,
    )


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


def next_rollout_batch(cfg: Config, run: Run) -> Experience:
    """Sample prompts and roll out; with dynamic sampling, replace zero-signal groups (capped rounds).

    Resampling rounds are agreed by all processes (``any_process``), so every process draws the same
    number of batches and all stay on the one global prompt order."""
    h = run.h
    h.policy.eval()  # no dropout while sampling
    batch = _roll_out(cfg, run)
    rounds = 0
    while (
        cfg.algo.drop_zero_std_groups
        and rounds < cfg.algo.max_resample_rounds
        and any_process(h.accelerator, bool(batch.zero_std.any()))
    ):
        extra = _roll_out(cfg, run)
        batch = merge_signal_groups(batch, extra, cfg.train.prompts_per_step, h.engine.pad_id)
        batch = batch.padded_to(largest(h.accelerator, batch.completion_ids.shape[1]), h.engine.pad_id)
        rounds += 1
    h.policy.train()
    return batch


def _roll_out(cfg: Config, run: Run) -> Experience:
    h = run.h
    samples = [run.samples[i] for i in run.state.sampler.next_indices()]
    with h.backend.full_weights(h.scorer):  # ZeRO-3: one gather per rollout
        pushed = h.engine.sampler.sync(h.policy, version=run.state.step)  # this step's weights
        across = Across(partial(largest, h.accelerator), partial(gather_rows, h.accelerator))
        exp = collect_experience(h.engine, h.policy, h.reference, samples, run.gen_config, cfg, across)
    h.engine.sampler.release()  # e.g. vLLM on a GPU with rollout.vllm_sleep: its memory back to training
    if pushed is not None:  # a sampler with its own copy of the weights
        exp.timings["time/weight_push"] = pushed
    return exp
