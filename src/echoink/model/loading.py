"""Load a Qwen Omni thinker (any registered family) as a policy (freezing, gradient checkpointing, LoRA) or as a frozen reference.

One path serves the real model and the tiny one: ``path`` is a full Qwen2.5-Omni checkpoint directory
(the 7B repo layout: thinker + talker + token2wav weights; only ``thinker.*`` tensors are read, the talker
is never built), a thinker-only directory (``echoink model tiny``, our own saves), or a LoRA adapter
directory written by :func:`echoink.model.saving.save_model` (its base is loaded first).
With LoRA and beta > 0 the reference is the policy itself with adapters disabled (:func:`adapters_disabled`),
so no second copy of the model is held.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
)

from ..config import ModelConfig
from ..errors import UserError
from .engine import Engine
from .families import Family, family_for
from .saving import save_model  # noqa: F401  (re-exported: callers load and save through this module)
from .wrappers import unwrap

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ADAPTER_CONFIG = "adapter_config.json"


def _model_config(cfg_or_path: ModelConfig | str | Path, overrides: dict[str, Any]) -> ModelConfig:
    cfg = cfg_or_path if isinstance(cfg_or_path, ModelConfig) else ModelConfig(path=str(cfg_or_path))
    cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
    if not cfg.path or not Path(cfg.path).is_dir():
        raise FileNotFoundError(
            f"model.path {cfg.path!r} is not a directory (no hub is contacted; "
            "point it at a local Qwen2.5-Omni checkpoint or build one with `echoink model tiny --out DIR`)"
        )
    return cfg


def adapter_base_path(path: str | Path) -> Path | None:
    """The base model directory a saved LoRA adapter points to, or None if ``path`` holds full weights."""
    file = Path(path) / ADAPTER_CONFIG
    if not file.exists():
        return None
    return Path(json.loads(file.read_text())["base_model_name_or_path"])


def thinker_config(path: str | Path) -> tuple[Family, PretrainedConfig]:
    """(family, the thinker's config) from a full Omni or thinker-only directory, vision_start_token_id set."""
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    try:
        family = family_for(config)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None
    config = family.thinker_config(config)
    if getattr(config, "vision_start_token_id", None) is None:
        # get_rope_index reads it; without it every image prompt fails.
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        config.vision_start_token_id = tokenizer.convert_tokens_to_ids(family.vision_start_token)
    return family, config


def load_thinker(
    path: str | Path,
    dtype: str = "float32",
    device: torch.device | str = "cpu",
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """The thinker alone, straight onto ``device``; talker/token2wav tensors in the checkpoint are never read."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    family, config = thinker_config(path)
    # Under a DeepSpeed ZeRO-3 launch transformers loads each weight straight into its partitions
    # (deepspeed.zero.Init), so no process ever holds the whole model; it refuses a device_map then.
    zero3 = is_deepspeed_zero3_enabled()
    thinker = family.thinker_class.from_pretrained(
        path,
        config=config,
        dtype=DTYPES[dtype],
        attn_implementation=attn_implementation,
        device_map=None if zero3 else {"": device},
        local_files_only=True,
    )
    if zero3:
        # transformers' ZeRO-3 loader records every candidate key renaming, not only those it used,
        # and save_pretrained then "reverts" renamings that never happened (keys like
        # thinker.model.thinker.audio_tower...). Without the record it uses the model type's default
        # renamings: the names a plain load writes back.
        thinker.__dict__.pop("_weight_conversions", None)
    return thinker


def load_processor(path: str | Path) -> ProcessorMixin:
    """The processor saved next to the weights (adapter directories carry a copy too)."""
    return AutoProcessor.from_pretrained(path, local_files_only=True)


def load_engine(path: str | Path) -> Engine:
    """A model directory's engine (its processor and family) without its weights: enough to encode prompts."""
    family, _ = thinker_config(path)
    return Engine(load_processor(path), family)


def tower_modules(thinker: nn.Module) -> dict[str, list[nn.Module]]:
    """The three parts the freeze flags name: audio tower, vision tower, LLM (decoder + output head)."""
    return family_for(thinker.config).tower_modules(thinker)


def freeze(thinker: nn.Module, cfg: ModelConfig) -> None:
    """Set requires_grad=False on exactly the parts named by ``cfg.freeze_*``."""
    flags = {
        "audio_tower": cfg.freeze_audio_tower,
        "vision_tower": cfg.freeze_vision_tower,
        "llm": cfg.freeze_llm,
    }
    for name, modules in tower_modules(thinker).items():
        if flags[name]:
            for module in modules:
                module.requires_grad_(False)


def lora_config(cfg: ModelConfig, family: Family) -> LoraConfig:
    """LoRA on the LLM's modules named in ``cfg.lora_target_modules`` (the towers reuse those names; they stay out)."""
    return LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=family.lora_target_regex("|".join(cfg.lora_target_modules)),
    )


def load_policy(
    cfg_or_path: ModelConfig | str | Path, device: torch.device | str = "cpu", **overrides: Any
) -> nn.Module:
    """The trainable policy: a thinker (freeze flags applied) or a peft model (only adapters train), in train mode.

    ``overrides`` replace ``ModelConfig`` fields, e.g. ``load_policy(path, lora_rank=8)``.
    """
    cfg = _model_config(cfg_or_path, overrides)
    base = adapter_base_path(cfg.path)
    thinker = load_thinker(base or cfg.path, cfg.dtype, device, cfg.attn_implementation)
    if cfg.gradient_checkpointing:
        # Non-reentrant: correct with frozen inputs (LoRA, frozen towers) without forcing input grads.
        thinker.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if base is not None:
        model: nn.Module = PeftModel.from_pretrained(thinker, cfg.path, is_trainable=True)
    elif cfg.lora_rank > 0:
        if cfg.freeze_audio_tower or cfg.freeze_vision_tower or cfg.freeze_llm:
            log.info("LoRA: every base weight is frozen; freeze_* flags have no further effect")
        model = get_peft_model(thinker, lora_config(cfg, family_for(thinker.config)))
    else:
        freeze(thinker, cfg)
        model = thinker
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.info("policy from %s: %d / %d parameters trainable", cfg.path, n_train, n_all)
    return model.train()


def load_reference(
    cfg_or_path: ModelConfig | str | Path, device: torch.device | str = "cpu", **overrides: Any
) -> PreTrainedModel:
    """The frozen reference policy (eval mode, no grads): the starting policy, ignoring LoRA and freeze flags.

    For a full-weights directory it is that thinker. For a saved LoRA adapter (a run that starts from
    an SFT adapter) it is the base with that adapter merged in: the policy training starts from, not
    the adapter's base (which would pull the policy back to the pre-SFT model). A fresh LoRA run
    (full-weights directory, ``lora_rank`` > 0) needs no copy: use :func:`reference_mode`.
    """
    cfg = _model_config(cfg_or_path, overrides)
    base = adapter_base_path(cfg.path)
    thinker = load_thinker(base or cfg.path, cfg.dtype, device, cfg.attn_implementation)
    if base is not None:
        thinker = PeftModel.from_pretrained(thinker, cfg.path).merge_and_unload()
    return thinker.requires_grad_(False).eval()


def needs_reference_copy(cfg: ModelConfig, beta: float) -> bool:
    """Whether a run needs a frozen reference copy (``load_reference``), or none at all.

    β = 0: none. A fresh LoRA run: none (the policy with its adapters disabled is the start). Full
    weights, or a start from a saved adapter (whose adapters cannot be disabled to get the start): a copy.
    """
    return beta > 0 and (cfg.lora_rank == 0 or adapter_base_path(cfg.path) is not None)


def _peft_of(model: nn.Module) -> PeftModel | None:
    model = unwrap(model)
    return model if isinstance(model, PeftModel) else None


@contextmanager
def adapters_disabled(policy: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the LoRA policy computes its base model: the reference, with no second copy.

    Yields ``policy`` itself (call it as usual; wrap in ``torch.no_grad()`` for reference log-probs).
    """
    peft_model = _peft_of(policy)
    if peft_model is None:
        raise ValueError(
            "adapters_disabled needs a LoRA policy; without LoRA load a reference with load_reference"
        )
    with peft_model.disable_adapter():
        yield policy


@contextmanager
def reference_mode(policy: nn.Module, ref: nn.Module | None):
    """Yield the module that gives reference log-probs: the frozen copy, or the LoRA policy with adapters off."""
    if ref is not None:
        yield ref
        return
    with adapters_disabled(policy) as base:
        yield base
