"""Video with its own soundtrack, through PyAV (FFmpeg's libraries, bundled in its wheels).

Why PyAV and not torchcodec: PyAV both decodes and *encodes* (the embedded benchmark writes real
mp4 files with an h264 video and an AAC audio stream), its wheels carry FFmpeg so nothing has to be
installed system-wide, and it reads the audio stream of a container as easily as the video stream.

Frames are sampled at ``fps`` (one frame at each ``i / fps`` seconds, the nearest decoded frame at or
before that time), capped at ``max_frames``, kept to a multiple of the family's temporal patch (both
Qwen families merge two frames) and resized once, like images, onto the family's cell grid within
``max_pixels`` each (``media.smart_resize``; the processor then keeps them as they are). The
soundtrack comes back as 16 kHz mono float32, like ``media.load_audio``.

A clip is one span. The model sees at most ``span = max_frames / fps`` seconds (less with
``max_seconds``, the soundtrack's budget): a longer clip is *cut* to its first ``span`` seconds,
frames and soundtrack alike, so the sound never runs past the frames shown with it. Cutting, not
spreading the frames over the whole clip, keeps ``fps`` the true frame rate: the processor places
frames and sound in time by it, and one batch's videos must share it. A clip that ends within the
span is kept whole, soundtrack included.

Shapes: T frames, H x W pixels, 3 channels (uint8 RGB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr
from PIL import Image

from ..errors import UserError
from .media import SAMPLE_RATE, Geometry, MediaError, smart_resize


@dataclass
class VideoClip:
    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: float  # the sampling rate of ``frames``
    soundtrack: np.ndarray | None  # [samples] float32 at 16 kHz, None when the file has no audio stream
    span: float = math.inf
    """Seconds of the clip the model may see (``clip_span``): frames and soundtrack stay within it."""
    cut: bool = False
    """The video runs on past ``span``: frames and soundtrack were cut to it."""

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


@dataclass
class VideoInfo:
    seconds: float
    frames: int  # decoded video frames
    has_audio: bool
    width: int
    height: int


def _open(path: str | Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError(f"{path}: cannot read video ({err})") from err


def video_info(path: str | Path) -> VideoInfo:
    """Stream facts after decoding every video frame (a header can lie; a truncated file fails here)."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        count, last = 0, 0.0
        try:
            for frame in container.decode(stream):
                count += 1
                last = float(frame.time or 0.0)
        except av.error.FFmpegError as err:
            raise MediaError(f"{path}: corrupt video stream after {count} frames ({err})") from err
    if count == 0:
        raise MediaError(f"{path}: video stream has no frames")
    rate = float(stream.average_rate or 0) or 1.0
    return VideoInfo(last + 1.0 / rate, count, has_audio, stream.width, stream.height)


def clip_span(fps: float, max_frames: int, max_seconds: float | None = None, temporal: int = 2) -> float:
    """Seconds of a clip the model sees: ``max_frames / fps``, or fewer frames' worth within ``max_seconds``
    (at least one temporal patch of frames).

    >>> clip_span(2.0, 16), clip_span(2.0, 16, max_seconds=5.3), clip_span(2.0, 16, max_seconds=0.2)
    (8.0, 5.0, 1.0)
    """
    frames = max_frames if max_seconds is None else min(max_frames, math.floor(max_seconds * fps + 1e-9))
    return max(temporal, frames // temporal * temporal) / fps


def _frame_size(frame, path, max_pixels: int | None, geometry: Geometry) -> tuple[int, int] | None:
    """(width, height) the frames are resized to (``smart_resize`` on the cell grid), None: as decoded."""
    if max_pixels is None:
        return None
    try:  # the processor's video minimum is one cell (``Family.video_kwargs``)
        height, width = smart_resize(frame.height, frame.width, max_pixels, geometry.cell**2, geometry.cell)
    except ValueError as err:
        raise MediaError(f"{path}: {err}") from err
    return None if (width, height) == (frame.width, frame.height) else (width, height)


def _rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    image = frame.to_image()
    if size is not None:  # a frame already on the grid is kept as decoded, not resampled
        image = image.resize(size, Image.BICUBIC)
    return np.asarray(image.convert("RGB"))


def _sample_frames(container, path, fps: float, count: int, max_pixels: int | None, geometry: Geometry):
    """([T, H, W, 3], cut): the frame shown at each i / fps seconds for i < ``count``, T a multiple of
    the temporal patch; ``cut``: the video goes on past the last of those instants."""
    picked: list[np.ndarray] = []
    target, current, size, cut = 0.0, None, None, False
    try:
        for frame in container.decode(container.streams.video[0]):
            t = float(frame.time or 0.0)
            while current is not None and t > target + 1e-6 and len(picked) < count:
                picked.append(_rgb(current, size))  # the frame on screen at ``target``
                target = len(picked) / fps
            if t >= count / fps - 1e-6:
                cut = True  # a frame at or past the span: the rest is never decoded
                break
            if current is None:
                size = _frame_size(frame, path, max_pixels, geometry)
            current = frame
        if current is not None and len(picked) < count:
            picked.append(_rgb(current, size))
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: corrupt video stream ({err})") from err
    if not picked:
        raise MediaError(f"{path}: video stream has no frames")
    whole = len(picked) // geometry.temporal * geometry.temporal
    picked = picked[:whole] if whole else picked * geometry.temporal  # a single frame is repeated
    return np.stack(picked), cut


def _soundtrack(path: str | Path) -> np.ndarray | None:
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        chunks = []
        try:
            for frame in container.decode(stream):
                data = frame.to_ndarray().astype(np.float32)  # [channels, n] (planar) or [1, n·channels]
                if not frame.format.is_planar:
                    data = data.reshape(-1, len(frame.layout.channels)).T
                chunks.append(data.mean(axis=0))
        except av.error.FFmpegError as err:
            raise MediaError(f"{path}: corrupt audio stream ({err})") from err
        rate = stream.rate
    if not chunks:
        raise MediaError(f"{path}: audio stream has no samples")
    mono = np.concatenate(chunks)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ")
    if not np.isfinite(mono).all():
        raise MediaError(f"{path}: audio stream holds non-finite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_video(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int = 16,
    max_pixels: int | None = None,
    max_seconds: float | None = None,
    *,
    geometry: Geometry,
) -> VideoClip:
    """Frames sampled at ``fps`` over the clip's first ``clip_span`` seconds (see the module docstring)
    and the soundtrack, if the file has one: cut to the span when the clip is, and to ``max_seconds``."""
    if fps <= 0 or max_frames < geometry.temporal:
        raise UserError(f"fps must be > 0 and max_frames >= {geometry.temporal}")
    span = clip_span(fps, max_frames, max_seconds, geometry.temporal)
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        frames, cut = _sample_frames(container, path, fps, round(span * fps), max_pixels, geometry)
    sound = _soundtrack(path)
    limit = min(span if cut else math.inf, math.inf if max_seconds is None else max_seconds)
    if sound is not None and len(sound) > limit * SAMPLE_RATE:
        sound = sound[: int(limit * SAMPLE_RATE)]
    return VideoClip(frames, fps, sound, span, cut)


def write_video(path: str | Path, frames: np.ndarray, fps: int, soundtrack: np.ndarray | None) -> Path:
    """Write [T, H, W, 3] uint8 frames (h264, yuv420p) and a 16 kHz mono soundtrack (AAC) to an mp4.

    Single-threaded encoders, so a given input always gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.codec_context.thread_count = 1
        video.options = {"crf": "10", "preset": "veryfast", "bf": "0"}
        audio = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if soundtrack is not None else None
        for image in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        if audio is not None:
            _write_audio(out, audio, soundtrack)
    return path


def _write_audio(out, stream, soundtrack: np.ndarray) -> None:
    n = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, len(soundtrack), n):
        chunk = np.zeros((1, n), dtype=np.float32)
        piece = soundtrack[start : start + n]
        chunk[0, : len(piece)] = piece
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, pts
        pts += n
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def shifted(soundtrack: np.ndarray, seconds: float) -> np.ndarray:
    """The soundtrack delayed by ``seconds`` (negative: advanced), wrapping around the clip.

    Circular, so nothing is lost: with the default half-span shift every event of the sound still
    happens, only at the wrong moment (a plain delay would push late events out of the clip).
    """
    return np.roll(soundtrack, int(round(seconds * SAMPLE_RATE)))
