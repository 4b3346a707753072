"""What a GRPO run holds between steps, in two parts with one job each.

* ``Handles``: the objects the loop acts with, built once by ``trainer.setup_run`` and never
  reassigned (the accelerator, the model family's engine, the policy and its prepared scorer, the
  reference, the optimiser and its schedule).
* ``LoopState``: what the loop advances and a checkpoint saves (the step, the prompt sampler's
  position, the counters of skipped updates and bad steps).

Checkpointing, validation and metrics take the parts of these they use, not the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .backend import Backend
from .sampling import PromptSampler


@dataclass(frozen=True)
class Handles:
    """The objects a run acts with (frozen: nothing reassigns them once the run is set up)."""

    accelerator: Any  # accelerate.Accelerator
    engine: Any  # echoink.model.Engine: the model family's processor, sampling and log-prob passes
    policy: nn.Module
    scorer: nn.Module  # the engine's CompletionScorer(policy), prepared by accelerate (DDP / DeepSpeed)
    reference: nn.Module | None  # a frozen copy (beta > 0 without LoRA), else None
    optimizer: Any
    scheduler: Any  # stepped once per training step, not prepared (accelerate would step it per process)
    backend: Backend  # how the weights are held and updated (plain/DDP, DeepSpeed): chosen once


@dataclass
class LoopState:
    """The position of the loop: restored from a checkpoint on ``--resume``."""

    sampler: PromptSampler
    step: int = 0
    bad_steps: int = 0  # consecutive steps with a skipped (non-finite) update
    skipped_updates: int = 0  # all skipped updates so far

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``state`` (the step itself is the checkpoint's own field)."""
        return {
            "sampler": self.sampler.state_dict(),
            "skipped_updates": self.skipped_updates,
            "bad_steps": self.bad_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.sampler.load_state_dict(state["sampler"])
        self.skipped_updates, self.bad_steps = int(state["skipped_updates"]), int(state["bad_steps"])
