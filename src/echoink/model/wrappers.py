"""The model inside the wrappers a launch (DDP, DeepSpeed, accelerate), peft and our own scorer put
around it."""

from __future__ import annotations

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / DeepSpeed / accelerate wrappers, each of which keeps it as ``.module``
    (peft and the completion scorer are not unwrapped: callers that want their insides say so).

    >>> inner = nn.Linear(1, 1)
    >>> outer = nn.Module()
    >>> outer.module = nn.Module()
    >>> outer.module.module = inner  # a DeepSpeed engine around a DDP wrapper, say
    >>> unwrap(outer) is inner
    True
    """
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


class Holder(nn.Module):
    """A module that runs another one, kept as ``.model`` (the engine's ``CompletionScorer``)."""

    model: nn.Module


def thinker_of(model: nn.Module) -> nn.Module:
    """The thinker inside DDP / DeepSpeed / accelerate / peft / scorer wrappers (LoRA layers stay active)."""
    model = unwrap(model)  # DDP, DeepSpeed engine
    if isinstance(model, Holder):
        model = model.model
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()  # peft: adapters are injected in place, so they stay in use
    return model
