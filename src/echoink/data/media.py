"""Audio and image loading with real libraries: soundfile + soxr for sound, Pillow for pictures.

Audio comes back as 16 kHz mono float32 (what Qwen2.5-Omni's Whisper feature extractor expects);
resampling uses soxr's VHQ polyphase resampler. Images come back as RGB, resized as qwen-omni-utils
(EchoInk's bundled copy) resizes them: each side a multiple of the model family's cell (``Geometry``:
28 px for Qwen2.5-Omni, 32 px for Qwen3-Omni), the area within [``min_pixels``, ``max_pixels``]
*after* that rounding, so a budget of P px never gives more than P / cell² image tokens. The
processor's own resize then leaves them as they are: an image is resized once, here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

SAMPLE_RATE = 16_000
# The shortest clip (16 kHz samples) that gives Qwen2.5-Omni's audio encoder one output token: it
# needs 3 mel frames (hop 160, so > 320 samples), which its two halvings, (L-1)//2+1 then
# (L-2)//2+1, leave as 1. A 0-token clip crashes get_rope_index on image+audio prompts (measured on
# the tiny thinker: 320 samples fail, 321 run).
MIN_AUDIO_SAMPLES = 321
# Qwen's vision processor refuses an aspect ratio of 200 or more. Downscaling to as few as 784 pixels
# (data.max_pixels' minimum) floors the short side to >= 2 pixels, which can raise the ratio by up to
# 1/2.28; 150 stays under 200 after that.
MAX_ASPECT = 150

# qwen-omni-utils v2_5/vision_process.py (HarryHsing/EchoInk src/qwen-omni-utils): MAX_RATIO.
MAX_RATIO = 200


@dataclass(frozen=True)
class Geometry:
    """How a model family cuts media into tokens: what the data layer needs to size images and frames.

    The family adapter fills it from its processor (``model.Engine.geometry``); the data layer knows no
    family. The default is Qwen2.5-Omni's (qwen-omni-utils' IMAGE_FACTOR 28 and MIN_PIXELS 4·28·28).

    >>> Geometry().cell, Geometry(patch=16, min_pixels=4 * 32 * 32).cell
    (28, 32)
    """

    patch: int = 14
    """Vision patch side in pixels (Qwen2.5-Omni 14, Qwen3-Omni 16)."""
    merge: int = 2
    """Patches merged per token along each side: one image or video token per ``cell`` x ``cell`` pixels."""
    temporal: int = 2
    """Video frames merged into one temporal patch: frame counts are kept a multiple of it."""
    min_pixels: int = 4 * 28 * 28
    """The image processor's smallest area (its ``size["shortest_edge"]``); smaller images are raised to it."""
    audio_tokens_per_second: float = 25.0
    """Audio tokens per second of sound (Qwen2.5-Omni 25, Qwen3-Omni ~13): an estimate; the processor counts."""

    @property
    def cell(self) -> int:
        """Pixels per image or video token side: patch x merge."""
        return self.patch * self.merge

    def __post_init__(self) -> None:
        if min(self.patch, self.merge, self.temporal) < 1 or self.min_pixels < 1:
            raise ValueError(f"a geometry needs positive sizes, got {self}")


"""Qwen2.5-Omni's geometry: the default wherever no model is at hand (``data check``, tests)."""


class MediaError(UserError):
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
    if not np.isfinite(data).all():
        raise MediaError(f"{path}: audio holds NaN or infinite samples")
    mono = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ")
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    _check_length(path, len(mono))
    clipped = False
    if max_seconds is not None and len(mono) > max_seconds * SAMPLE_RATE:
        mono, clipped = mono[: int(max_seconds * SAMPLE_RATE)], True
    return AudioClip(mono, clipped)


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(seconds, sample rate, channels) from the header alone; raises MediaError if unreadable or
    too short for the audio encoder (so even header-only loading skips such a clip)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise MediaError(f"{path}: cannot read audio ({err})") from err
    if info.frames <= 0:
        raise MediaError(f"{path}: audio file has no samples")
    _check_length(path, round(info.frames * SAMPLE_RATE / info.samplerate))
    return info.frames / info.samplerate, info.samplerate, info.channels


def smart_resize(height: int, width: int, max_pixels: int, min_pixels: int, factor: int) -> tuple[int, int]:
    """(height, width): both multiples of ``factor``, area in [min_pixels, max_pixels], aspect kept closely.

    qwen-omni-utils' ``smart_resize``, the rule EchoInk's images went through; it rounds first and
    bounds the rounded area, so the budget holds for the pixels the vision tower sees.

    >>> smart_resize(1440, 1920, 200_704, 4 * 28 * 28, 28)  # Qwen2.5: 13 x 18 = 234 tokens <= 256
    (364, 504)
    >>> smart_resize(56, 168, 50_176, 4 * 28 * 28, 28)  # on the grid and inside the budget: unchanged
    (56, 168)
    >>> smart_resize(20, 20, 50_176, 4 * 28 * 28, 28)  # raised to min_pixels
    (56, 56)
    >>> smart_resize(1440, 1920, max_pixels=200_704, min_pixels=4 * 32 * 32, factor=32)  # Qwen3: 12 x 16
    (384, 512)
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise UserError(
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


def _check_length(path: str | Path, samples_16k: int) -> None:
    if samples_16k < MIN_AUDIO_SAMPLES:
        raise MediaError(
            f"{path}: audio too short ({samples_16k} samples at 16 kHz; the audio encoder needs "
            f"at least {MIN_AUDIO_SAMPLES}, {MIN_AUDIO_SAMPLES / SAMPLE_RATE * 1000:.0f} ms)"
        )


@contextmanager
def _open_image(path: str | Path) -> Iterator[Image.Image]:
    """Image.open with Pillow's decompression-bomb warning made an error: an image of more than
    ``Image.MAX_IMAGE_PIXELS`` pixels is refused as a bad row instead of decoded into memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                yield img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise MediaError(f"{path}: image too large to decode safely ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise MediaError(f"{path}: cannot read image ({err})") from err


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with 8 bits a channel; 16-bit and float grey levels are scaled, not clipped.

    Pillow's own ``convert`` clips I;16 / I values above 255, which turns a 16-bit PNG into {0, 255}.
    """
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            top = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        else:
            top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return img.convert("RGB")


def load_image(
    path: str | Path, max_pixels: int | None = None, geometry: Geometry | None = None
) -> Image.Image:
    """Decode an image fully as 8-bit RGB; with ``max_pixels``, resize it to ``smart_resize``'s size (bicubic)
    on ``geometry``'s cell grid, at least its ``min_pixels``.

    ``max_pixels=None`` returns the decoded image untouched (the processor applies its own bounds); a
    resize needs the model family's ``geometry`` (the data layer assumes none).
    """
    if max_pixels is not None and geometry is None:
        raise ValueError("load_image: resizing to max_pixels needs the model family's geometry")
    with _open_image(path) as img:
        img.load()  # the whole file: a truncated JPEG fails here, not in verify()
        rgb = _to_rgb(img)
    if max(rgb.size) > MAX_ASPECT * min(rgb.size):
        raise MediaError(
            f"{path}: aspect ratio {max(rgb.size) / min(rgb.size):.0f}:1 ({rgb.width}x{rgb.height}); "
            f"the vision processor needs at most {MAX_ASPECT}:1"
        )
    if max_pixels is None:
        return rgb
    try:
        height, width = smart_resize(rgb.height, rgb.width, max_pixels, geometry.min_pixels, geometry.cell)
    except ValueError as err:
        raise MediaError(f"{path}: {err}") from err
    if (width, height) != rgb.size:  # an image already on the grid is returned as decoded, not resampled
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    return rgb


def verify_image(path: str | Path) -> tuple[int, int]:
    """(width, height) after Pillow's cheap structure check (not a full decode: see ``load_image``)."""
    with _open_image(path) as img:
        img.verify()
    with _open_image(path) as img:
        return img.size


def silence_like(clip: np.ndarray) -> np.ndarray:
    """Silence of the same length (the audio ablation)."""
    return np.zeros_like(clip)


def blank_like(image: Image.Image) -> Image.Image:
    """A mid-grey image of the same size (the image ablation)."""
    return Image.new("RGB", image.size, (128, 128, 128))
