"""Model families as registry entries, chosen from config.json's ``model_type``.

Adding a family: one module here with a :class:`~.base.Family` subclass, registered below, and its tiny
builder in ``model/tiny*.py``. Nothing outside ``model/`` changes.
"""

from __future__ import annotations

from typing import Any

from ...errors import UserError
from ...registry import Registry
from .base import Family, PrefixEncoding
from .qwen2_5_omni import Qwen2_5Omni
from .qwen3_omni_moe import Qwen3OmniMoe

FAMILIES: Registry[Family] = Registry("model family")
for _family in (Qwen2_5Omni(), Qwen3OmniMoe()):
    FAMILIES.register(_family.name)(_family)


def family_for(config: Any) -> Family:
    """The family of a (full or thinker) config, by its ``model_type``."""
    model_type = getattr(config, "model_type", None)
    for name in FAMILIES.names():
        family = FAMILIES.get(name)
        if model_type in family.model_types:
            return family
    known = sorted(t for n in FAMILIES.names() for t in FAMILIES.get(n).model_types)
    raise UserError(f"model_type {model_type!r} is not a supported family; supported: {', '.join(known)}")


__all__ = ["FAMILIES", "Family", "PrefixEncoding", "family_for"]
