"""What a GRPO run writes and reads back: rollout rows for rollouts.jsonl, checkpoints (every
process waits; the main one writes), resume, and ``final/``.

Shapes: N = B·G completions of a step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..guards import check_weights
from .checkpoint import load_latest_intact, save_checkpoint
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


def checkpoint(run: Run) -> None:
    run.accelerator.wait_for_everyone()
    if run.accelerator.is_main_process:
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
        )
    run.accelerator.wait_for_everyone()


def restore(run: Run) -> None:
    found = load_latest_intact(run.run_dir, run.policy, run.optimizer, run.scheduler)
    if found is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", run.run_dir)
        return
    path, state = found
    run.step = int(state["step"])
    run.sampler.load_state_dict(state["sampler"])
    run.skipped_updates, run.bad_steps = int(state["skipped_updates"]), int(state["bad_steps"])
    run.log.truncate_after(run.step)
    log.info("resumed from %s (step %d)", path, run.step)


def export_final(run: Run) -> None:
    """Save the trained thinker (or adapter) + processor to run_dir/final for eval and plain transformers."""
    from ..model.loading import save_model
    from ..recipe_card import write_recipe

    run.accelerator.wait_for_everyone()
    check_weights(run.policy, run.step, "before writing final/")
    if run.accelerator.is_main_process:
        save_model(
            run.accelerator.unwrap_model(run.scorer).model, run.engine.processor, run.run_dir / "final"
        )
        write_recipe(run.cfg, run.run_dir / "final", "grpo")  # eval follows the training's prompt and budgets
