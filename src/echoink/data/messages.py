"""Samples -> chat messages with their media decoded: what the model engine's ``encode`` takes.

A video row becomes one ``video`` content block carrying its frames, their fps and its soundtrack
(``video_audio`` rows: the video's own audio track, or the row's ``path.audio`` file when it names one;
``None`` for ``video`` rows); the engine tells the processor to interleave a
soundtrack with its frames in time. A clip is one span: frames and soundtrack cover the same first
``VideoSettings.span`` seconds (``video.load_video``); a separate soundtrack file is cut to it too.

Images and frames are sized on the model family's grid (``media.Geometry``, from the engine), once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .media import SAMPLE_RATE, Geometry, MediaError, load_audio, silence_like
from .prompts import build_messages, load_media
from .schema import Sample
from .video import clip_span, load_video, shifted

log = logging.getLogger(__name__)

ABLATIONS = ("none", "audio", "image", "video", "desync")
"""none; audio -> silence; image -> blank; video -> blank frames; desync -> soundtrack shifted in time."""


def ablation_applies(sample: Sample, condition: str) -> bool:
    """Whether ``condition`` removes something ``sample`` carries: audio (its clip or a video's sound),
    image, video (frames) or desync (a video with its sound). Elsewhere the ablated prompt is the
    unablated one, and counting it would dilute the drop towards zero.

    >>> from pathlib import Path
    >>> row = Sample("1", "q", ("A. x", "B. y"), "A", Path("i.png"), Path("a.wav"), "image_audio")
    >>> [c for c in ABLATIONS if ablation_applies(row, c)]
    ['none', 'audio', 'image']
    """
    carried = {
        "none": True,
        "audio": sample.audio is not None or sample.data_type == "video_audio",
        "image": sample.image is not None,
        "video": sample.video is not None,
        "desync": sample.data_type == "video_audio",
    }
    if condition not in carried:
        raise ValueError(f"ablate must be one of {', '.join(ABLATIONS)}, got {condition!r}")
    return carried[condition]


@dataclass(frozen=True)
class VideoSettings:
    """How videos are sampled (``data.video_fps``, ``data.max_frames``, ``data.max_video_pixels``)."""

    fps: float = 2.0
    max_frames: int = 16
    max_pixels: int | None = 128 * 28 * 28
    desync_seconds: float | None = None
    """Shift of the soundtrack in the desync ablation; None: half the span shown (frames and sound)."""

    def span(self, sample: Sample, max_audio_seconds: float | None) -> float:
        """Seconds of ``sample``'s clip the model sees: ``max_frames / fps``, within ``max_audio_seconds``
        when the clip has a soundtrack (``video_audio`` rows), so the frames cover what the sound does."""
        return clip_span(self.fps, self.max_frames, sound_budget(sample, max_audio_seconds))


def sound_budget(sample: Sample, max_audio_seconds: float | None) -> float | None:
    """``max_audio_seconds`` for a clip with a soundtrack; None for frames only (no sound to fit)."""
    return max_audio_seconds if sample.data_type == "video_audio" else None


def video_block(
    sample: Sample,
    video: VideoSettings,
    ablate: str = "none",
    max_audio_seconds: float | None = None,
    *,
    geometry: Geometry,
) -> dict[str, Any]:
    """The content block of a video row, with the ablation applied (audio, video or desync)."""
    budget = sound_budget(sample, max_audio_seconds)
    clip = load_video(sample.video, video.fps, video.max_frames, video.max_pixels, budget, geometry=geometry)
    frames, sound = clip.frames, None
    if sample.data_type == "video_audio":  # a separate soundtrack file, when the row names one, is the sound
        sound = load_audio(sample.audio, clip.span).waveform if sample.audio is not None else clip.soundtrack
    if ablate == "video":
        frames = np.full_like(frames, 128)  # mid-grey, same size and count
    if ablate == "audio" and sound is not None:
        sound = silence_like(sound)
    if ablate == "desync" and sound is not None:
        shown = min(clip.seconds, len(sound) / SAMPLE_RATE)  # the span both streams cover
        sound = shifted(sound, video.desync_seconds if video.desync_seconds is not None else shown / 2)
    return {"type": "video", "video": frames, "fps": clip.fps, "soundtrack": sound}


def sample_messages(
    samples: Sequence[Sample],
    template: str,
    max_audio_seconds: float | None,
    max_pixels: int | None,
    ablate: str = "none",
    video: VideoSettings | None = None,
    *,
    geometry: Geometry,
) -> list[list[dict[str, Any]]]:
    """One conversation per sample: media decoded (and ablated if asked) and sized on ``geometry``'s grid
    (the model family's: ``Engine.geometry``; required, so no caller sizes Qwen3's 32-px cells on
    Qwen2.5's 28-px grid by forgetting it), the prompt template rendered."""
    if ablate not in ABLATIONS:
        raise ValueError(f"ablate must be one of {', '.join(ABLATIONS)}, got {ablate!r}")
    out = []
    for sample in samples:
        if sample.video is not None:
            messages = build_messages(sample, template)
            block = video_block(
                sample, video or VideoSettings(), ablate, max_audio_seconds, geometry=geometry
            )
            messages[-1]["content"].insert(0, block)
        else:
            still = ablate if ablate in ("none", "audio", "image") else "none"  # video ablations: no-op here
            audio, image = load_media(sample, max_audio_seconds, max_pixels, still, geometry=geometry)
            messages = build_messages(sample, template, audio=audio, image=image)
        out.append(messages)
    return out


def decodable_messages(
    samples: Sequence[Sample],
    template: str,
    max_audio_seconds: float | None,
    max_pixels: int | None,
    on_error: str = "strict",
    ablate: str = "none",
    video: VideoSettings | None = None,
    *,
    geometry: Geometry,
) -> tuple[list[Sample], list[list[dict[str, Any]]]]:
    """(the samples whose media decode, their conversations). A file that fails at run time (changed
    since ``data check``, or never checked): ``on_error="skip"`` leaves its row out with a warning
    naming row and file, ``"strict"`` raises a MediaError naming them."""
    kept, out = [], []
    for sample in samples:
        try:
            out += sample_messages(
                [sample], template, max_audio_seconds, max_pixels, ablate, video, geometry=geometry
            )
        except MediaError as err:
            if on_error != "skip":
                raise MediaError(f"row {sample.id}: {err}") from None
            log.warning("skipped row %s at run time: %s", sample.id, err)
            continue
        kept.append(sample)
    return kept, out


def messages_or_stand_ins(
    samples: Sequence[Sample],
    template: str,
    max_audio_seconds: float | None,
    max_pixels: int | None,
    on_error: str = "strict",
    video: VideoSettings | None = None,
    *,
    geometry: Geometry,
) -> tuple[list[list[dict[str, Any]]], list[bool]]:
    """(one conversation per sample, which samples failed). A file that fails at run time:
    ``on_error="skip"`` keeps its place with a stand-in (the row's text with no media) and a warning
    naming row and file, so every process of a launch keeps the same batch shape (the trainer gives a
    stand-in no weight); ``"strict"`` raises a MediaError naming them."""
    out, failed = [], []
    for sample in samples:
        try:
            out += sample_messages(
                [sample], template, max_audio_seconds, max_pixels, "none", video, geometry=geometry
            )
            failed.append(False)
        except MediaError as err:
            if on_error != "skip":
                raise MediaError(f"row {sample.id}: {err}") from None
            log.warning("row %s failed at run time and stands in with no weight: %s", sample.id, err)
            out.append(build_messages(sample, template))
            failed.append(True)
    return out, failed


@dataclass(frozen=True)
class PromptSpec:
    """How a row becomes a prompt, named once: the template, the media budgets, the video settings,
    what a file that fails at run time does (``on_error``), and the model family's media geometry
    (required: nothing here sizes media on a default family's grid)."""

    template: str
    max_audio_seconds: float | None
    max_pixels: int | None
    geometry: Geometry
    video: VideoSettings | None = None
    on_error: str = "strict"

    def messages(self, samples: Sequence[Sample], ablate: str = "none") -> list[list[dict[str, Any]]]:
        """``sample_messages`` of ``samples`` under this spec (a failing file raises)."""
        return sample_messages(
            samples, self.template, self.max_audio_seconds, self.max_pixels, ablate, self.video,
            geometry=self.geometry,
        )  # fmt: skip

    def messages_or_stand_ins(
        self, samples: Sequence[Sample]
    ) -> tuple[list[list[dict[str, Any]]], list[bool]]:
        """``messages_or_stand_ins`` of ``samples`` under this spec (``on_error`` decides)."""
        return messages_or_stand_ins(
            samples, self.template, self.max_audio_seconds, self.max_pixels, self.on_error, self.video,
            geometry=self.geometry,
        )  # fmt: skip
