"""Audio and image loading with real libraries: soundfile + soxr for sound, Pillow for pictures.

Audio comes back as 16 kHz mono float32 (what Qwen2.5-Omni's Whisper feature extractor expects);
resampling uses soxr's VHQ polyphase resampler. Images come back as RGB, downscaled to at most
``max_pixels`` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, UnidentifiedImageError

SAMPLE_RATE = 16_000


class MediaError(ValueError):
    """A media file is missing, unreadable or corrupt; the message names the file."""


@dataclass
class AudioClip:
    waveform: np.ndarray  # [samples] float32 at SAMPLE_RATE
    clipped: bool  # True when max_seconds cut the clip

    @property
    def seconds(self) -> float:
        return len(self.waveform) / SAMPLE_RATE


def load_audio(path: str | Path, max_seconds: float | None = None) -> AudioClip:
    """Read wav/flac/ogg, down-mix to mono, resample to 16 kHz, optionally cut to ``max_seconds``."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [frames, channels]
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(f"{path}: cannot read audio ({err})") from err
    if data.shape[0] == 0:
        raise MediaError(f"{path}: audio file has no samples")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    clipped = False
    if max_seconds is not None and len(mono) > max_seconds * SAMPLE_RATE:
        mono, clipped = mono[: int(max_seconds * SAMPLE_RATE)], True
    return AudioClip(mono, clipped)


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(seconds, sample rate, channels) from the header alone; raises MediaError if unreadable."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(f"{path}: cannot read audio ({err})") from err
    if info.frames <= 0:
        raise MediaError(f"{path}: audio file has no samples")
    return info.frames / info.samplerate, info.samplerate, info.channels


def load_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """Open an image as RGB; if it has more than ``max_pixels`` pixels, downscale keeping the aspect."""
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise MediaError(f"{path}: cannot read image ({err})") from err
    if max_pixels is not None and rgb.width * rgb.height > max_pixels:
        scale = math.sqrt(max_pixels / (rgb.width * rgb.height))
        size = (max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return rgb


def verify_image(path: str | Path) -> tuple[int, int]:
    """(width, height) after a full decode check; raises MediaError if unreadable."""
    try:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise MediaError(f"{path}: cannot read image ({err})") from err


def silence_like(clip: np.ndarray) -> np.ndarray:
    """Silence of the same length (the audio ablation)."""
    return np.zeros_like(clip)


def blank_like(image: Image.Image) -> Image.Image:
    """A mid-grey image of the same size (the image ablation)."""
    return Image.new("RGB", image.size, (128, 128, 128))
