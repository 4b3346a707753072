"""Prompt templates (a registry, one per name) and chat messages ready for a Qwen2.5-Omni processor.

Messages put the image block, then the audio block, then the text, as EchoInk-R1 does. Content
blocks carry the decoded media themselves (a PIL image, a 16 kHz float32 waveform) so the model
layer never re-reads files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ..registry import Registry
from .media import blank_like, load_audio, load_image, silence_like
from .schema import Sample

# Qwen2.5-Omni's own system prompt; the model was trained with it, and EchoInk-R1 keeps it.
SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)

TEMPLATES: Registry[Callable[[Sample], str]] = Registry("prompt template")


def question_with_options(sample: Sample) -> str:
    return sample.question + " Options:\n" + "\n".join(sample.options)


MULTI_ANSWER = (
    "Please provide all correct option letters, separated by commas (e.g., A, C), "
    "within the <answer> </answer> tags."
)


def answer_instruction(sample: Sample, single: str) -> str:
    """The template's own one-letter instruction ``single``, or, for a row with several correct
    options, ``MULTI_ANSWER``, which asks for all of them.

    A multi-answer row scores only when every correct letter is given (the accuracy reward compares
    sets), so a prompt demanding "only the single option letter" would make obeying it always wrong.

    >>> from echoink.data.schema import Sample
    >>> row = Sample("1", "q", ("A. x", "B. y", "C. z"), "A,C", None, None, "text")
    >>> answer_instruction(row, "One letter.") == MULTI_ANSWER
    True
    """
    return MULTI_ANSWER if "," in sample.answer else single


@TEMPLATES.register("reasoning")
def reasoning_template(sample: Sample) -> str:
    """EchoInk-R1's reasoning prompt: think in <think>, answer one letter (all correct letters for a
    multi-answer row) in <answer>."""
    return (
        question_with_options(sample) + "\n"
        "Please think about this question as if you were a human pondering deeply. "
        "Make sure to carefully consider both the visual and audio information before answering. "
        "Provide your detailed reasoning between the <think> </think> tags, and then give your final "
        "answer between the <answer> </answer> tags. "
        + answer_instruction(
            sample,
            "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
            "within the <answer> </answer> tags.",
        )
    )


@TEMPLATES.register("direct")
def direct_template(sample: Sample) -> str:
    """Direct answer: the option letter(s) only, still inside <answer> so one parser serves both."""
    single = "Answer with only the single option letter within the <answer> </answer> tags."
    return (
        question_with_options(sample)
        + "\nConsider both the visual and audio information. "
        + answer_instruction(sample, single)
    )


def load_media(
    sample: Sample,
    max_audio_seconds: float | None = None,
    max_pixels: int | None = None,
    ablate: str = "none",
) -> tuple[np.ndarray | None, Image.Image | None]:
    """Decode a sample's audio and image. ``ablate``: "audio" -> silence of equal length, "image" -> blank of equal size."""
    if ablate not in ("none", "audio", "image"):
        raise ValueError(f"ablate must be none, audio or image, got {ablate!r}")
    audio = load_audio(sample.audio, max_audio_seconds).waveform if sample.audio else None
    image = load_image(sample.image, max_pixels) if sample.image else None
    if ablate == "audio" and audio is not None:
        audio = silence_like(audio)
    if ablate == "image" and image is not None:
        image = blank_like(image)
    return audio, image


def build_messages(
    sample: Sample,
    template: str = "reasoning",
    audio: np.ndarray | None = None,
    image: Image.Image | None = None,
) -> list[dict[str, Any]]:
    """Chat messages: system prompt, then the user turn with [image][audio][text] content blocks."""
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    if audio is not None:
        content.append({"type": "audio", "audio": audio})
    content.append({"type": "text", "text": TEMPLATES.get(template)(sample)})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]
