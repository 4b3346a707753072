"""Samples -> chat messages with their media decoded: what the model engine's ``encode`` takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .prompts import build_messages, load_media
from .schema import Sample


def sample_messages(
    samples: Sequence[Sample],
    template: str,
    max_audio_seconds: float | None,
    max_pixels: int | None,
    ablate: str = "none",
) -> list[list[dict[str, Any]]]:
    """One conversation per sample: media decoded (and ablated if asked), the prompt template rendered."""
    out = []
    for sample in samples:
        audio, image = load_media(sample, max_audio_seconds, max_pixels, ablate=ablate)
        out.append(build_messages(sample, template, audio=audio, image=image))
    return out
