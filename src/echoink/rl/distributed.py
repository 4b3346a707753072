"""The launch: the accelerator a run trains on, checked against what the trainer expects
(one process group; a DeepSpeed config that fits), ``launch.json`` saying what it is, and each
process's part in the collective decisions (agreeing on a flag; writing and reading checkpoints)."""

from __future__ import annotations

import os
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs, set_seed

from ..config import Config
from ..errors import UserError
from . import sharding
from .trackers import tracker_kwargs


def check_world(accelerator: Accelerator) -> None:
    """Fail if the launcher started several processes that did not form one group."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise UserError(
            f"launched as {launched} processes but accelerate formed a group of {accelerator.num_processes}: "
            "each would train alone. Without a GPU, set ACCELERATE_USE_CPU=1 (docs/scaling.md)."
        )


def deepspeed_problems(ds: dict, cfg: Config) -> list[str]:
    """What in a DeepSpeed config contradicts how this trainer drives it ("auto" entries are left alone).

    The trainer accumulates its own mini-batches (``_chunk_weights``) and DeepSpeed steps inside
    ``accelerator.backward`` at every accumulation boundary and divides the loss by its accumulation
    steps, so those must be 1 and a pass must be one mini-batch. There is no dataloader, so the
    micro-batch size must be a number. Clipping and precision must agree with the recipe.
    """
    out = []
    gas = ds.get("gradient_accumulation_steps", "auto")
    if gas not in (1, "auto"):
        out.append(f"gradient_accumulation_steps must be 1 (the trainer accumulates), got {gas}")
    if cfg.train.mini_batch_prompts not in (0, cfg.train.prompts_per_step):
        out.append("train.mini_batch_prompts must be 0 (one mini-batch per pass) under DeepSpeed")
    mbs = ds.get("train_micro_batch_size_per_gpu", "auto")
    if not isinstance(mbs, int):
        out.append(f"train_micro_batch_size_per_gpu must be an integer (no dataloader), got {mbs!r}")
    clip = ds.get("gradient_clipping", "auto")
    if clip != "auto" and float(clip) != cfg.train.max_grad_norm:
        out.append(f"gradient_clipping {clip} != train.max_grad_norm {cfg.train.max_grad_norm}")
    bf16 = ds.get("bf16", {}).get("enabled", False)
    if bf16 != "auto" and bool(bf16) != (cfg.train.mixed_precision == "bf16"):
        out.append(f"bf16.enabled={bf16} but train.mixed_precision={cfg.train.mixed_precision}")
    return out


def make_accelerator(cfg: Config) -> Accelerator:
    """The accelerator for this launch, checked (one process group; a DeepSpeed config that fits), seeded."""
    # find_unused_parameters: transformers' audio tower defines audio_bos_eos_token but never uses it,
    # and DDP would wait forever for its gradient (an error on the second step).
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" and not torch.cuda.is_available():
        # Without a GPU accelerate finds no backend for DeepSpeed and leaves every process alone (a
        # group of 1). Naming gloo makes DeepSpeed's CPU accelerator form the group: the sharded
        # engine then runs exactly as on GPUs, only its collectives go over gloo (docs/scaling.md).
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=cfg.train.mixed_precision, kwargs_handlers=handlers, **tracker_kwargs(cfg)
    )
    check_world(accelerator)
    if accelerator.state.deepspeed_plugin is not None:
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        problems = deepspeed_problems(ds, cfg)
        if problems:
            raise UserError("DeepSpeed config does not fit the trainer: " + "; ".join(problems))
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = cfg.train.max_grad_norm  # DeepSpeed clips inside its step
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    set_seed(cfg.train.seed)
    return accelerator


def launch_record(accelerator: Accelerator, mixed_precision: str) -> dict[str, Any]:
    """How this launch holds its weights: ``launch.json`` of the run directory (``run_dir.write_record``;
    what bench/sharded_cpu.sh reports). Known before the model is prepared, so a resume compares it first."""
    return {
        "engine": sharding.engine_name(accelerator),
        "processes": accelerator.num_processes,
        "zero_stage": sharding.zero_stage(accelerator),
        "device": accelerator.device.type,
        "backend": accelerator.state.backend,
        "mixed_precision": mixed_precision,
    }


def check_sharing(accelerator: Accelerator, sharing: str, data_types: set[str]) -> None:
    """Refuse ``rollout.sharing=repeat`` under ZeRO-3 on several processes with a split of several data
    types: the thinker's own forward calls only the towers its batch needs, and ZeRO-3 gathers each
    tower's weights as a collective, so processes holding different media would wait on each other.
    The shared passes (prefix, towers) call every tower on every process (``Family.prefix``)."""
    several = accelerator.num_processes > 1 and sharding.zero_stage(accelerator) == 3
    if several and sharing == "repeat" and len(data_types) > 1:
        raise UserError(
            f"rollout.sharing: repeat under ZeRO-3 on {accelerator.num_processes} processes needs one "
            f"data type in the split, which has {', '.join(sorted(data_types))}; use prefix or towers"
        )


def all_agree(accelerator: Accelerator, ok: bool) -> bool:
    """True on every process only when ``ok`` is True on every process (one all-reduce)."""
    if accelerator.num_processes == 1:
        return ok
    votes = accelerator.reduce(torch.tensor(float(ok), device=accelerator.device), "sum")
    return int(votes) == accelerator.num_processes


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """True on every process when ``flag`` is True on any process (one all-reduce)."""
    return not all_agree(accelerator, not flag)


def largest(accelerator: Accelerator, value: int) -> int:
    """The largest ``value`` over all processes (one gather): a width every process pads to, so the
    log-prob passes of all processes make the same calls."""
    if accelerator.num_processes == 1:
        return value
    return int(accelerator.gather(torch.tensor([value], device=accelerator.device)).max())


def gather_rows(accelerator: Accelerator, values: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's ``values`` [n] concatenated in rank order [W·n] (one all-gather; n is the same on
    every process: the sampler deals each the same number of prompts) and this process's first row."""
    if accelerator.num_processes == 1:
        return values, 0
    everyone = accelerator.gather(values.to(accelerator.device)).to(values.device)
    return everyone, accelerator.process_index * values.numel()
