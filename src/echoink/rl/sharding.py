"""What the trainer does differently when DeepSpeed partitions it (ZeRO-1/2/3), in one place.

The same lines run on a GPU launch (accelerate + NCCL) and on the CPU (accelerate + gloo + DeepSpeed's
CPU accelerator, ``bench/sharded_cpu.sh``); only the process group's backend differs (``make_accelerator``).

Under ZeRO-3 every process holds 1/W of each weight (``param.ds_tensor``; ``param`` itself is an empty
placeholder) and DeepSpeed's module hooks all-gather a layer's weights before its forward:
- generation: gathering per layer per generated token costs T·L all-gathers per rollout, so
  :func:`full_weights` gathers everything once and takes the hooks off while decoding (as TRL's
  ``unwrap_model_for_generation``);
- the frozen reference is partitioned too (:func:`shard_reference`, an inference-only engine, as
  TRL's ``prepare_deepspeed``): one forward per rollout, gathered layer by layer;
- DeepSpeed clips and steps inside its own ``step``, and in fp32/bf16 never checks for a NaN, so the
  trainer calls :func:`backward` (no step) and then :func:`step_if_finite`;
- the optimiser state (and under ZeRO-3 the fp32 master weights) is per process: every process saves
  its own ``optimizer.state_dict()`` and loads it back (:func:`load_partition`), and the weights for
  ``final/`` or a checkpoint are gathered (:func:`gathered_state_dict`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn


def zero_stage(accelerator: Accelerator) -> int | None:
    """The ZeRO stage of a DeepSpeed launch (0..3), or None when DeepSpeed is not in use."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return None
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def engine_name(accelerator: Accelerator) -> str:
    """How the weights are held: "deepspeed-zero3", "deepspeed-zero2", "ddp" or "single"."""
    stage = zero_stage(accelerator)
    if stage is not None:
        return f"deepspeed-zero{stage}"
    return "ddp" if accelerator.num_processes > 1 else "single"


def _offload(engine: nn.Module):
    """DeepSpeed's ZeRO-3 parameter coordinator (owner of the gather hooks) of a training engine."""
    optimizer = engine.optimizer
    return getattr(optimizer, "parameter_offload", optimizer)


@contextlib.contextmanager
def full_weights(accelerator: Accelerator, engine: nn.Module) -> Iterator[None]:
    """Under ZeRO-3: every weight gathered once, and the per-layer gather hooks off, for the block.

    The block may run any number of forwards (a whole rollout) without another all-gather. Outside
    ZeRO-3 it does nothing. Memory: the full weights on each process for the block's duration.
    """
    if zero_stage(accelerator) != 3:
        yield
        return
    import deepspeed

    offload = _offload(engine)
    with deepspeed.zero.GatheredParameters(list(engine.parameters())):
        for param in offload.module.parameters(recurse=True):
            param.ds_active_sub_modules.clear()
        for hook in offload.forward_hooks + offload.backward_hooks:
            hook.remove()
        offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            coordinator = getattr(offload, "param_coordinator", None)
            if coordinator is not None and not coordinator.is_invalid_trace():
                coordinator._invalidate_trace()  # the recorded module order no longer holds
            offload._register_deepspeed_module(offload.module)


def shard_reference(accelerator: Accelerator, reference: nn.Module) -> nn.Module:
    """Under ZeRO-3 the frozen reference is partitioned like the policy (an engine with no optimiser)."""
    if zero_stage(accelerator) != 3:
        return reference
    import deepspeed

    config = deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    for training_only in ("optimizer", "scheduler"):
        config.pop(training_only, None)
    config["zero_optimization"].pop("offload_optimizer", None)
    engine, *_ = deepspeed.initialize(model=reference, config=config)
    engine.eval()  # DeepSpeedEngine.eval returns None, not the engine
    return engine


def backward(engine: nn.Module, loss: torch.Tensor) -> None:
    """DeepSpeed's backward (its reduce-scatter of gradients) without its optimiser step."""
    engine.set_gradient_accumulation_boundary(is_boundary=True)
    engine.backward(loss)


def step_if_finite(engine: nn.Module) -> tuple[bool, float]:
    """(stepped, global grad norm): DeepSpeed's clip + step unless a gradient partition anywhere holds a
    NaN or an infinity (checked on every process's partition, agreed by all-reduce); then the
    gradients are dropped and nothing changes."""
    zero = engine.optimizer
    if bool(zero.has_overflow(partition_gradients=True)):
        zero.zero_grad(set_to_none=True)
        return False, float("nan")
    engine.step()  # clip to gradient_clipping, optimiser step, zero_grad
    norm = engine.get_global_grad_norm()
    return True, float(norm) if norm is not None else float("nan")


def gathered_state_dict(accelerator: Accelerator, engine: nn.Module) -> dict[str, torch.Tensor] | None:
    """The full trainable weights of the (wrapped) policy, by the thinker's names, on the main process.

    Every process must call it (ZeRO-3 gathers); others get None. Keys drop the scorer's ``model.``.
    """
    state = accelerator.get_state_dict(engine, unwrap=True)
    if not accelerator.is_main_process:
        return None
    return {k.removeprefix("model."): v.detach().cpu().contiguous() for k, v in state.items()}


def load_partition(accelerator: Accelerator, optimizer: Any, state: dict[str, Any]) -> None:
    """Restore this process's partition (ZeRO-3: the fp32 master weights and the weights from them).

    DeepSpeed's ZeRO loaders take one state per process and pick their own by rank.
    """
    zero = optimizer.optimizer  # accelerate's DeepSpeedOptimizerWrapper -> DeepSpeed's ZeRO optimiser
    per_process: list[Any] = [None] * accelerator.num_processes
    per_process[accelerator.process_index] = state
    # load_from_fp32_weights: ZeRO-1/2 take their fp32 master weights from the partition, not from
    # the 16-bit weights, which would lose the low bits under bf16 (a resume no longer exact).
    zero.load_state_dict(per_process, load_optimizer_states=True, load_from_fp32_weights=True)


def partition_safe_globals() -> list[type]:
    """Classes (besides tensors and containers) a ZeRO optimiser state holds: DeepSpeed's loss scalers,
    its stage enum and (ZeRO-1/2) the (numel, start) records of its parameter slices. Allowed by name
    for ``torch.load(weights_only=True)``, which still refuses every other object, so a planted pickle
    in a partition file is refused."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
