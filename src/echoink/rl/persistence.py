"""What a GRPO run writes and reads back: rollout rows for rollouts.jsonl, checkpoints (every process
writes its own RNG state and, under DeepSpeed, its optimiser partition; the main one the rest), resume,
and ``final/`` (gathered from every process under ZeRO-3).

Shapes: N = B·G completions of a step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..guards import NonFiniteWeights, check_weights, nonfinite_parameters
from . import sharding
from .checkpoint import Processes, load_latest_intact, save_checkpoint
from .experience import Experience

if TYPE_CHECKING:
    from .trainer import Run

log = logging.getLogger(__name__)


def rollout_rows(step: int, batch: Experience, limit: int) -> list[dict]:
    """A sample of this step's completions for rollouts.jsonl: the first ``limit``, whole groups first."""
    g = batch.group_size
    rows = []
    for i, text in enumerate(batch.texts[:limit]):
        sample = batch.samples[i // g]
        rows.append(
            {
                "step": step,
                "id": sample.id,
                "answer": sample.answer,
                "completion": text,
                "reward": float(batch.rewards[i]),
                "advantage": float(batch.advantages[i]),
                "truncated": bool(batch.truncated[i]),
                **{
                    f"rewards/{n}": float(batch.reward_matrix[i, k]) for k, n in enumerate(batch.reward_names)
                },
                **{k: v for k, v in sample.metadata.items() if isinstance(v, str | int | float)},
            }
        )
    return rows


def processes(run: Run) -> Processes:
    """This process's part in writing and reading checkpoints (see ``checkpoint.Processes``)."""
    acc, stage = run.accelerator, run.zero_stage

    def all_agree(ok: bool) -> bool:
        if acc.num_processes == 1:
            return ok
        votes = acc.reduce(torch.tensor(float(ok), device=acc.device), "sum")
        return int(votes) == acc.num_processes

    sharded = stage is not None
    return Processes(
        rank=acc.process_index,
        world=acc.num_processes,
        sharded_optimizer=sharded,
        weights_in_optimizer=stage == 3,
        barrier=acc.wait_for_everyone,
        all_agree=all_agree,
        load_optimizer=(lambda opt, state: sharding.load_partition(acc, opt, state)) if sharded else None,
        safe_globals=sharding.partition_safe_globals() if sharded else [],
    )


def check_policy(run: Run, step: int, what: str = "after the optimiser step") -> None:
    """Raise NonFiniteWeights on every process if a trainable weight is NaN or infinite anywhere.

    Replicas (DDP, ZeRO-1/2) are equal, so each checks its own; under ZeRO-3 each holds a different
    partition and all must agree, or the finite ones would go on and wait for the others forever.
    """
    if run.zero_stage == 3 and run.accelerator.num_processes > 1:
        local_ok = not nonfinite_parameters(run.policy)
        if not processes(run).all_agree(local_ok) and local_ok:
            raise NonFiniteWeights(f"step {step}: trainable weights are non-finite {what} on another process")
    check_weights(run.policy, step, what)


def _gathered_weights(run: Run) -> dict[str, torch.Tensor] | None:
    """Under ZeRO-3 the full weights (every process takes part; the main one gets them), else None."""
    if run.zero_stage != 3:
        return None
    return sharding.gathered_state_dict(run.accelerator, run.scorer)


def checkpoint(run: Run) -> None:
    run.accelerator.wait_for_everyone()
    full = _gathered_weights(run)
    trainable = None
    if full is not None:
        names = {n for n, p in run.policy.named_parameters() if p.requires_grad}
        trainable = {k: v for k, v in full.items() if k in names}
    state = {
        "sampler": run.sampler.state_dict(),
        "skipped_updates": run.skipped_updates,
        "bad_steps": run.bad_steps,
    }
    save_checkpoint(
        run.run_dir,
        run.step,
        run.policy,
        run.optimizer,
        run.scheduler,
        state,
        keep=run.cfg.train.keep_checkpoints,
        weights=trainable,
        procs=processes(run),
    )


def restore(run: Run) -> None:
    found = load_latest_intact(run.run_dir, run.policy, run.optimizer, run.scheduler, processes(run))
    if found is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", run.run_dir)
        return
    path, state = found
    run.step = int(state["step"])
    run.sampler.load_state_dict(state["sampler"])
    run.skipped_updates, run.bad_steps = int(state["skipped_updates"]), int(state["bad_steps"])
    run.log.truncate_after(run.step)
    log.info("resumed from %s (step %d)", path, run.step)


def save_policy(run: Run, out: Path) -> None:
    """The policy as plain transformers loads it (or its adapter) + processor; every process calls it."""
    from ..model.loading import save_model

    full = _gathered_weights(run)
    if run.accelerator.is_main_process:
        save_model(run.accelerator.unwrap_model(run.scorer).model, run.engine.processor, out, state_dict=full)
    run.accelerator.wait_for_everyone()


def export_final(run: Run) -> None:
    """Save the trained thinker (or adapter) + processor to run_dir/final for eval and plain transformers."""
    from ..recipe_card import write_recipe

    run.accelerator.wait_for_everyone()
    check_policy(run, run.step, "before writing final/")
    save_policy(run, run.run_dir / "final")
    if run.accelerator.is_main_process:
        write_recipe(run.cfg, run.run_dir / "final", "grpo")  # eval follows the training's prompt and budgets
