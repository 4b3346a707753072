"""Audio and image loading with real libraries: soundfile + soxr for sound, Pillow for pictures.

Audio comes back as 16 kHz mono float32 (what Qwen2.5-Omni's Whisper feature extractor expects);
resampling uses soxr's VHQ polyphase resampler. Images come back as RGB, resized as qwen-omni-utils
(EchoInk's bundled copy) resizes them: each side a multiple of 28 px, the area within
[``min_pixels``, ``max_pixels``] *after* that rounding, so a budget of P px never gives more than
P / 784 image tokens. The processor's own resize then leaves them as they are.
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

# qwen-omni-utils v2_5/vision_process.py (HarryHsing/EchoInk src/qwen-omni-utils): IMAGE_FACTOR,
# MIN_PIXELS, MAX_RATIO. 28 = Qwen2.5-Omni's 14-px patch x 2x2 merge: one image token per 28x28 cell.
IMAGE_FACTOR = 28
MIN_PIXELS = 4 * 28 * 28
MAX_RATIO = 200


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


def smart_resize(
    height: int, width: int, max_pixels: int, min_pixels: int = MIN_PIXELS, factor: int = IMAGE_FACTOR
) -> tuple[int, int]:
    """(height, width): both multiples of ``factor``, area in [min_pixels, max_pixels], aspect kept closely.

    qwen-omni-utils' ``smart_resize``, the rule EchoInk's images went through; it rounds first and
    bounds the rounded area, so the budget holds for the pixels the vision tower sees.

    >>> smart_resize(1440, 1920, max_pixels=200_704)  # 13 x 18 = 234 tokens <= 256
    (364, 504)
    >>> smart_resize(56, 168, max_pixels=50_176)  # on the grid and inside the budget: unchanged
    (56, 168)
    >>> smart_resize(20, 20, max_pixels=50_176)  # raised to min_pixels
    (56, 56)
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(
            f"aspect ratio must be at most {MAX_RATIO}, got {max(height, width) / min(height, width):.0f}"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        # max(factor, .): a side of a very thin image would floor to 0 px (qwen-omni-utils would then
        # fail in PIL); transformers' copy of this function keeps one cell, as here.
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def load_image(path: str | Path, max_pixels: int | None = None, min_pixels: int = MIN_PIXELS) -> Image.Image:
    """Open an image as RGB; with ``max_pixels``, resize it to ``smart_resize``'s size (bicubic, as PIL's default).

    ``max_pixels=None`` returns the decoded image untouched (the processor applies its own bounds).
    """
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise MediaError(f"{path}: cannot read image ({err})") from err
    if max_pixels is None:
        return rgb
    try:
        height, width = smart_resize(rgb.height, rgb.width, max_pixels, min_pixels)
    except ValueError as err:
        raise MediaError(f"{path}: {err}") from err
    if (width, height) != rgb.size:  # an image already on the grid is returned as decoded, not resampled
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
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
