"""Non-finite weight guard: checked after every optimiser step and before ``final/`` is written.

The loss and gradient-norm checks in the loop catch a NaN that flows into a step, not one the step
itself makes: with a huge learning rate AdamW turns finite gradients into infinite weights, every
later loss is NaN, and ``final/`` used to be saved with 103 of 104 tensors non-finite. Stopping at
the step that broke the weights names it while the last checkpoint is still good.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import UserError


class NonFiniteWeights(UserError, RuntimeError):
    """An optimiser step left trainable weights NaN or infinite; the message names the step."""


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of trainable parameters holding a NaN or an infinity (one device sync when all are finite)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    # Under DeepSpeed ZeRO-3 a parameter is an empty placeholder; this process's share is ds_tensor.
    ok = torch.stack([torch.isfinite(getattr(p, "ds_tensor", p).detach()).all() for _, p in named])  # [P]
    if bool(ok.all()):
        return []
    return [n for (n, _), good in zip(named, ok.tolist(), strict=True) if not good]


def check_weights(
    model: torch.nn.Module,
    step: int,
    what: str = "after the optimiser step",
    all_agree: Callable[[bool], bool] | None = None,
) -> None:
    """Raise NonFiniteWeights if any trainable weight of ``model`` is not finite.

    ``all_agree(ok)`` (True on every process only when ``ok`` is True on every process) is for
    processes that hold different partitions of the weights (ZeRO-3): then every process raises when
    any holds a non-finite weight, or the finite ones would go on and wait for the others forever.
    Replicas (one process, DDP, ZeRO-1/2) are equal, so each checks its own and passes None.
    """
    bad = nonfinite_parameters(model)
    if all_agree is not None and not all_agree(not bad) and not bad:
        raise NonFiniteWeights(f"step {step}: trainable weights are non-finite {what} on another process")
    if bad:
        total = sum(1 for p in model.parameters() if p.requires_grad)
        raise NonFiniteWeights(
            f"step {step}: {len(bad)} of {total} trainable tensors are non-finite {what} "
            f"(e.g. {', '.join(bad[:3])}); nothing of this step was saved; lower the learning rate "
            "and resume from the last checkpoint"
        )
