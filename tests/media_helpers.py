"""Small real media files and rows that tests write themselves (numpy tones, Pillow images)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image


def write_tone(
    path: Path, seconds: float = 1.0, rate: int = 16_000, freq: float = 440.0, channels: int = 1
) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate)
    return path


def write_image(
    path: Path, size: tuple[int, int] = (56, 56), color: tuple[int, int, int] = (200, 30, 30)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def make_row(
    i: int,
    answer: str = "B",
    options: list[str] | None = None,
    image: str | None = None,
    audio: str | None = None,
) -> dict:
    return {
        "problem_id": i,
        "problem": f"Which object makes the sound {i}?",
        "data_type": "image_audio",
        "problem_type": "multiple choice",
        "options": options or ["A. the red circle", "B. the blue square", "C. none of them"],
        "solution": f"<answer>{answer}</answer>",
        "path": {"image": image or f"images/sample_{i}.png", "audio": audio or f"audios/sample_{i}.wav"},
        "data_source": "test",
    }


def write_split(root: Path, rows: list[dict], name: str = "train.json") -> Path:
    path = root / name
    path.write_text(json.dumps(rows, indent=1))
    return path


def parity_reward(completions: list[str], **_) -> list[float]:
    """A reward with variance even for an untrained model (length parity), so GRPO has a signal in tests.

    Used as ``algo.rewards={"media_helpers:parity_reward": 1.0}``.
    """
    return [float(len(c) % 2) for c in completions]


def write_small_split(root: Path, n: int = 8) -> Path:
    """``n`` rows of 56x56 images and 0.5 s tones, distinct per row, answers cycling A-C."""
    rows = []
    for i in range(n):
        write_image(
            root / f"images/sample_{i}.png", size=(56, 56), color=(30 * i % 256, 100, 200 - 20 * i % 200)
        )
        write_tone(root / f"audios/sample_{i}.wav", seconds=0.5, freq=300 + 50 * i)
        rows.append(make_row(i, answer="ABC"[i % 3]))
    return write_split(root, rows)


def write_avqa_r1(root: Path, splits: dict[str, Path]) -> Path:
    """The tree ``tar -xzvf AVQA_R1.tar.gz`` extracts, built from benchmark splits ({"train": ..., "valid": ...}):
    ``AVQA_R1/{split}/{audios/sample_N.wav, images/sample_N.jpg, omni_rl_format_{split}.json}``, rows with
    exactly the keys EchoInk's make_omniInstruct_r1_dataset.py writes, media paths relative to the split."""
    import shutil

    for split, source in splits.items():
        out_dir = root / "AVQA_R1" / split
        (out_dir / "audios").mkdir(parents=True)
        (out_dir / "images").mkdir()
        rows = []
        for idx, row in enumerate(json.loads(source.read_text())):
            audio, image = f"audios/sample_{idx}.wav", f"images/sample_{idx}.jpg"
            shutil.copy(source.parent / row["path"]["audio"], out_dir / audio)
            with Image.open(source.parent / row["path"]["image"]) as png:
                png.convert("RGB").save(out_dir / image, quality=95)
            rows.append(
                {
                    "problem_id": idx,
                    "problem": row["problem"],
                    "data_type": "image_audio",
                    "problem_type": "multiple choice",
                    "options": row["options"],
                    "solution": row["solution"],
                    "path": {"image": image, "audio": audio},
                    "data_source": "OmniInstruct_v1-AVQA",
                }
            )
        (out_dir / f"omni_rl_format_{split}.json").write_text(json.dumps(rows, indent=2))
    return root / "AVQA_R1"


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's signature) in 60 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )
    return path


def write_truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, "JPEG")
    path.write_bytes(path.read_bytes()[:-300])
    return path


def length_if_a(completions: list[str], solution: list[str], **_) -> list[float]:
    """Completion length for rows whose answer is A, 0 otherwise: A groups carry reward variance, the
    others never do (so dynamic sampling resamples exactly the non-A groups)."""
    return [float(len(c)) if "A" in s else 0.0 for c, s in zip(completions, solution, strict=True)]


MIXED_KINDS = ("image_audio", "audio", "video", "video_audio")


def write_mixed_row(root: Path, i: int, kind: str) -> dict:
    """Row ``i`` of data_type ``kind`` with its own small media (56x56 frames, 0.5-1 s sound)."""
    from echoink.data.video import write_video

    row = make_row(i, answer="ABC"[i % 3])
    row["data_type"] = kind
    if kind in ("image_audio", "image"):
        write_image(root / row["path"]["image"], color=(30 * i % 256, 100, 200 - 20 * i % 200))
    if kind in ("image_audio", "audio"):
        write_tone(root / row["path"]["audio"], seconds=0.5, freq=300 + 50 * i)
    if kind == "audio":
        del row["path"]["image"]
    if kind in ("video", "video_audio"):
        frames = np.zeros((4, 56, 56, 3), dtype=np.uint8)
        frames[:, :, :, 0] = np.arange(4)[:, None, None] * 60 + 10 * (i % 5)
        sound = None
        if kind == "video_audio":
            t = np.arange(16_000) / 16_000
            sound = (0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype(np.float32)
        row["path"] = {"video": f"videos/sample_{i}.mp4"}
        write_video(root / row["path"]["video"], frames, fps=2, soundtrack=sound)
    return row


def write_mixed_split(root: Path, kinds_in_order: list[str]) -> Path:
    """One row per entry of ``kinds_in_order`` (row i has data_type kinds_in_order[i])."""
    rows = [write_mixed_row(root, i, kind) for i, kind in enumerate(kinds_in_order)]
    return write_split(root, rows)


def kinds_apart(seed: int, steps: int, world: int = 2) -> list[str]:
    """Data types for a split of ``steps * world`` rows such that, with one prompt per process per step
    (``rl.sampling.PromptSampler``'s seeded order), the processes hold different data types at every
    step: rank r at step k gets MIXED_KINDS[(k + r) % 4]."""
    n = steps * world
    order = np.random.default_rng([seed, 0]).permutation(n)  # the sampler's epoch-0 order
    kinds = [""] * n
    for position, row in enumerate(order):
        step, rank = divmod(position, world)
        kinds[int(row)] = MIXED_KINDS[(step + rank) % len(MIXED_KINDS)]
    return kinds
