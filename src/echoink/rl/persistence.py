"""What a GRPO run writes and reads back of its weights and optimiser: checkpoints (every process
writes its own RNG state and, under DeepSpeed, its optimiser partition; the main one the rest),
resume, and the saved policy (``final/``, ``best/``; gathered from every process under ZeRO-3).

Every function here is a collective: each process calls it at the same point.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import Config
from ..guards import check_weights
from ..model.loading import save_model
from ..recipe_card import write_recipe
from .checkpoint import load_latest_intact, save_checkpoint
from .state import Handles, LoopState

log = logging.getLogger(__name__)


def check_policy(h: Handles, step: int, what: str = "after the optimiser step") -> None:
    """Raise NonFiniteWeights on every process if a trainable weight is NaN or infinite anywhere."""
    check_weights(h.policy, step, what, all_agree=h.backend.agreement())


def checkpoint(h: Handles, state: LoopState, run_dir: Path, keep: int) -> None:
    """``run_dir/checkpoints/step-N``: weights, optimiser, schedule, RNG and the loop's position."""
    h.accelerator.wait_for_everyone()
    full = h.backend.gathered_weights(h.scorer)  # partitioned weights: gathered (all take part)
    trainable = None
    if full is not None:
        names = {n for n, p in h.policy.named_parameters() if p.requires_grad}
        trainable = {k: v for k, v in full.items() if k in names}
    save_checkpoint(
        run_dir, state.step, h.policy, h.optimizer, h.scheduler, state.state_dict(), keep=keep,
        weights=trainable, procs=h.backend.processes(),
    )  # fmt: skip


def restore(h: Handles, run_dir: Path) -> dict[str, Any] | None:
    """Load the newest intact checkpoint into the policy, optimiser and schedule; its loop state
    (for ``LoopState.load_state_dict``), or None when there is none."""
    procs = h.backend.processes()
    found = load_latest_intact(run_dir, h.policy, h.optimizer, h.scheduler, procs)
    if found is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", run_dir)
        return None
    path, state = found
    log.info("resumed from %s (step %d)", path, int(state["step"]))
    return state


def save_policy(h: Handles, out: Path) -> None:
    """The policy as plain transformers loads it (or its adapter) + processor; every process calls it."""
    full = h.backend.gathered_weights(h.scorer)  # partitioned weights: gathered (all take part)
    if h.accelerator.is_main_process:
        save_model(h.accelerator.unwrap_model(h.scorer).model, h.engine.processor, out, state_dict=full)
    h.accelerator.wait_for_everyone()


def export_policy(h: Handles, cfg: Config, out: Path, step: int) -> None:
    """Save the trained thinker (or adapter) + processor + recipe card to ``out`` (``final/``, ``best/``),
    checked finite first; eval follows the recipe card's prompt and budgets."""
    h.accelerator.wait_for_everyone()
    check_policy(h, step, f"before writing {Path(out).name}/")
    save_policy(h, out)
    if h.accelerator.is_main_process:
        write_recipe(cfg, out, "grpo")
    h.accelerator.wait_for_everyone()


def save_best(h: Handles, cfg: Config, out: Path, step: int) -> None:
    """``best/``: the policy as ``final/`` would be, with its recipe card and ``step.txt`` (its step)."""
    export_policy(h, cfg, out, step)
    if h.accelerator.is_main_process:
        (Path(out) / "step.txt").write_text(f"{step}\n")
