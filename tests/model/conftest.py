"""Fixtures for the model-layer tests: the session's tiny model loaded once, and chat messages with media."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from echoink.data.prompts import build_messages
from echoink.data.schema import Sample

SAMPLE = Sample(
    "s0",
    "Which object makes the rising tone?",
    ("A. the red circle", "B. the blue square", "C. None of them"),
    "A",
    None,
    None,
    "image_audio",
)


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def make_messages() -> Callable[..., list[dict[str, Any]]]:
    """messages(seconds=1.0, size=(56, 56)); None drops that modality."""

    def make(seconds: float | None = 1.0, size: tuple[int, int] | None = (56, 56)) -> list[dict[str, Any]]:
        audio = tone(seconds) if seconds is not None else None
        image = Image.new("RGB", size, (200, 30, 30)) if size is not None else None
        return build_messages(SAMPLE, "reasoning", audio=audio, image=image)

    return make


@pytest.fixture(scope="session")
def tiny(tiny_model_dir: Path):
    """(thinker, processor) loaded from the session's tiny model directory; do not modify the thinker."""
    from transformers import AutoProcessor, Qwen2_5OmniThinkerForConditionalGeneration

    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    return model, AutoProcessor.from_pretrained(tiny_model_dir)


FAMILY_NAMES = ("qwen2.5-omni", "qwen3-omni")


@pytest.fixture(scope="session")
def qwen3_tiny():
    """(thinker, processor) of a tiny Qwen3-Omni (MoE) model, built in memory once per session."""
    from echoink.testing import make_tiny

    return make_tiny(family="qwen3-omni")


@pytest.fixture(scope="session", params=FAMILY_NAMES)
def family_tiny(request, tiny, qwen3_tiny):
    """(thinker, processor, engine) of each family's tiny model (do not modify the thinker)."""
    from echoink.model import Engine

    model, processor = tiny if request.param == "qwen2.5-omni" else qwen3_tiny
    return model, processor, Engine(processor, request.param)
