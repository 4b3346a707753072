"""The backend seam: how the weights are held and updated, chosen once at set-up (``make_backend``).

A ``Backend`` owns what its way of holding the weights needs: the backward, the clipped and checked
optimiser step, the full weights for a rollout and for saving, agreement across processes on a
weights check, and each process's part in checkpoints. The stages (optimise, rollout, validation,
persistence) call the same methods whatever the backend is, so none branches on the ZeRO stage.

- ``PlainBackend``: one process or DDP replicas (accelerate), every process holding all the weights;
- ``DeepSpeedBackend``: DeepSpeed ZeRO-1/2/3 partitions (``sharding`` holds its specifics).

A third (FSDP2, say) is one class with these methods and one line in ``make_backend``
(docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from torch import nn

from . import sharding
from .checkpoint import Processes
from .distributed import all_agree


class Backend(Protocol):
    name: str  # launch.json's "engine": "single", "ddp", "deepspeed-zero3", ...

    def backward(self, scorer: nn.Module, loss: torch.Tensor) -> None:
        """Accumulate ``loss``'s gradient (no optimiser step: ``step`` checks first)."""

    def step(
        self, policy: nn.Module, optimizer: Any, scorer: nn.Module, max_norm: float, loss: float
    ) -> tuple[bool, float]:
        """Clip to ``max_norm`` and step unless the pass's loss or gradient is not finite anywhere;
        gradients cleared either way. Returns (stepped, global grad norm)."""

    def full_weights(self, scorer: nn.Module) -> AbstractContextManager[None]:
        """A block in which every weight is whole on every process (a rollout, a validation)."""

    def gathered_weights(self, scorer: nn.Module) -> dict[str, torch.Tensor] | None:
        """The full weights for saving, where the policy's own are partitioned (main process; a
        collective), else None (the policy's own are whole)."""

    def prepare_reference(self, reference: nn.Module) -> nn.Module:
        """The frozen reference as this backend holds it (ZeRO-3: partitioned like the policy)."""

    def agreement(self) -> Callable[[bool], bool] | None:
        """How processes agree on a check of their weights: None when each holds whole replicas."""

    def processes(self) -> Processes:
        """This process's part in writing and reading checkpoints."""


class PlainBackend:
    """One process, or DDP replicas: whole weights everywhere, accelerate's backward and clipping."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator
        self.name = "ddp" if accelerator.num_processes > 1 else "single"

    def backward(self, scorer: nn.Module, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def step(self, policy, optimizer, scorer, max_norm: float, loss: float) -> tuple[bool, float]:
        params = [p for p in policy.parameters() if p.requires_grad]
        grad_norm = float(self.accelerator.clip_grad_norm_(params, max_norm))
        finite = math.isfinite(grad_norm) and math.isfinite(loss)  # DDP: the same norm on every replica
        if finite:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return finite, grad_norm

    def full_weights(self, scorer: nn.Module) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def gathered_weights(self, scorer: nn.Module) -> dict[str, torch.Tensor] | None:
        return None

    def prepare_reference(self, reference: nn.Module) -> nn.Module:
        return reference

    def agreement(self) -> Callable[[bool], bool] | None:
        return None

    def processes(self) -> Processes:
        acc = self.accelerator
        return Processes(
            rank=acc.process_index, world=acc.num_processes, barrier=acc.wait_for_everyone,
            all_agree=lambda ok: all_agree(acc, ok),
        )  # fmt: skip


class DeepSpeedBackend:
    """DeepSpeed ZeRO partitions: its own backward and step (checked for NaN first), ZeRO-3's weights
    gathered for rollouts and saving, optimiser partitions per process."""

    def __init__(self, accelerator: Accelerator, stage: int) -> None:
        self.accelerator, self.stage = accelerator, stage
        self.name = f"deepspeed-zero{stage}"

    def backward(self, scorer: nn.Module, loss: torch.Tensor) -> None:
        sharding.backward(scorer, loss)  # not accelerate's: it would step before the check in ``step``

    def step(self, policy, optimizer, scorer, max_norm: float, loss: float) -> tuple[bool, float]:
        return sharding.step_if_finite(scorer)  # DeepSpeed clips to gradient_clipping (= max_norm)

    def full_weights(self, scorer: nn.Module) -> AbstractContextManager[None]:
        return sharding.full_weights(self.accelerator, scorer)  # ZeRO-3: one gather; else nothing

    def gathered_weights(self, scorer: nn.Module) -> dict[str, torch.Tensor] | None:
        return sharding.gathered_state_dict(self.accelerator, scorer) if self.stage == 3 else None

    def prepare_reference(self, reference: nn.Module) -> nn.Module:
        return sharding.shard_reference(self.accelerator, reference)  # ZeRO-3: an inference engine

    def agreement(self) -> Callable[[bool], bool] | None:
        if self.stage == 3 and self.accelerator.num_processes > 1:  # each holds other partitions
            return lambda ok: all_agree(self.accelerator, ok)
        return None

    def processes(self) -> Processes:
        acc = self.accelerator
        return Processes(
            rank=acc.process_index, world=acc.num_processes, sharded_optimizer=True,
            weights_in_optimizer=self.stage == 3, barrier=acc.wait_for_everyone,
            all_agree=lambda ok: all_agree(acc, ok),
            load_optimizer=lambda opt, state: sharding.load_partition(acc, opt, state),
            safe_globals=sharding.partition_safe_globals(),
        )  # fmt: skip


def make_backend(accelerator: Accelerator) -> Backend:
    """The backend of this launch: DeepSpeed's when accelerate runs it, else the plain one."""
    stage = sharding.zero_stage(accelerator)
    return PlainBackend(accelerator) if stage is None else DeepSpeedBackend(accelerator, stage)
