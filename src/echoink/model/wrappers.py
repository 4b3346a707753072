"""The model inside the wrappers a launch puts around it."""

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
