"""Video with its own soundtrack, through PyAV (FFmpeg's libraries, bundled in its wheels).

Why PyAV and not torchcodec: PyAV both decodes and *encodes* (the embedded benchmark writes real
mp4 files with an h264 video and an AAC audio stream), its wheels carry FFmpeg so nothing has to be
installed system-wide, and it reads the audio stream of a container as easily as the video stream.

Frames are sampled at ``fps`` (one frame at each ``i / fps`` seconds, the nearest decoded frame at or
before that time), capped at ``max_frames``, kept to an even count (Qwen's video towers merge two
frames per temporal patch) and downscaled to at most ``max_pixels`` each. The soundtrack comes back
as 16 kHz mono float32, like ``media.load_audio``.

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

from .media import SAMPLE_RATE, MediaError

TEMPORAL_PATCH = 2
"""Frames merged into one temporal patch by both families' video towers: frame counts are kept even."""


@dataclass
class VideoClip:
    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: float  # the sampling rate of ``frames``
    soundtrack: np.ndarray | None  # [samples] float32 at 16 kHz, None when the file has no audio stream

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


def _downscale(image: Image.Image, max_pixels: int | None) -> Image.Image:
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (image.width * image.height))
    return image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.BICUBIC)


def _sample_frames(container, path, fps: float, max_frames: int, max_pixels: int | None) -> np.ndarray:
    """[T, H, W, 3]: the frame shown at each i / fps seconds, T even, at most max_frames."""
    picked: list[np.ndarray] = []
    target, current = 0.0, None
    try:
        for frame in container.decode(container.streams.video[0]):
            t = float(frame.time or 0.0)
            while current is not None and t > target + 1e-6 and len(picked) < max_frames:
                picked.append(current)  # the frame on screen at ``target``
                target = len(picked) / fps
            current = np.asarray(_downscale(frame.to_image(), max_pixels).convert("RGB"))
        if current is not None and len(picked) < max_frames:
            picked.append(current)
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: corrupt video stream ({err})") from err
    if not picked:
        raise MediaError(f"{path}: video stream has no frames")
    if len(picked) % TEMPORAL_PATCH:
        picked = picked[:-1] if len(picked) > 1 else picked * TEMPORAL_PATCH
    return np.stack(picked)


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
    path: str | Path, fps: float = 2.0, max_frames: int = 16, max_pixels: int | None = None
) -> VideoClip:
    """Frames sampled at ``fps`` (see the module docstring) and the soundtrack, if the file has one."""
    if fps <= 0 or max_frames < TEMPORAL_PATCH:
        raise ValueError(f"fps must be > 0 and max_frames >= {TEMPORAL_PATCH}")
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"{path}: no video stream")
        frames = _sample_frames(container, path, fps, max_frames, max_pixels)
    return VideoClip(frames, fps, _soundtrack(path))


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

    Circular, so nothing is lost: with the default half-clip shift every event of the sound still
    happens, only at the wrong moment (a plain delay would push late events out of the clip).
    """
    return np.roll(soundtrack, int(round(seconds * SAMPLE_RATE)))
