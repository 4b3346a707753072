"""Save a trained thinker (or its LoRA adapter) with its processor, for ``echoink eval`` and plain transformers.

A full thinker directory loads with ``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained``; an
adapter directory holds ``adapter_config.json`` (pointing at the base directory) + adapter weights, and
loads with :func:`echoink.model.loading.load_policy`, peft, or transformers' own peft integration.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn
from transformers import ProcessorMixin

from .wrappers import unwrap

log = logging.getLogger(__name__)


def save_model(
    model: nn.Module, processor: ProcessorMixin, out_dir: str | Path, state_dict: dict | None = None
) -> Path:
    """Write safetensors weights (the thinker, or only the adapter of a peft model) + config + processor.

    ``state_dict``: the weights to write when the model's own are partitioned (gathered under ZeRO-3).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    model.save_pretrained(out, state_dict=state_dict)  # safetensors
    processor.save_pretrained(out)
    log.info("saved %s to %s", type(model).__name__, out)
    return out
