"""Read AVQA-R1-6K-schema splits (JSON list or JSONL) into validated ``Sample``s.

A row looks like::

    {"problem_id": 7, "problem": "Which ...?", "data_type": "image_audio",
     "problem_type": "multiple choice", "options": ["A. ...", "B. ..."],
     "solution": "<answer>B</answer>",
     "path": {"image": "images/sample_7.jpg", "audio": "audios/sample_7.wav"},
     "data_source": "..."}

Media paths are relative to the split file's folder (the dataset root). A split may also be named
by its directory as AVQA-R1-6K extracts (``AVQA_R1/train`` holding ``omni_rl_format_train.json``,
``audios/`` and ``images/``). Every problem with a row is
a ``RowError`` naming file, row index and reason; ``on_error="strict"`` raises the first one,
``"skip"`` keeps going and returns them all, so nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bounded import json_too_deep
from ..filehash import sha256_file
from .answers import parse_answer_letters
from .media import MediaError, audio_info, verify_image
from .schema import DATA_TYPES, OPTION_RE, RowError, Sample
from .video import video_info

# Row keys that become typed fields; everything else lands in Sample.metadata.
_CORE_KEYS = {"problem_id", "problem", "data_type", "problem_type", "options", "solution", "path"}
_NEEDS_MEDIA = {
    "image_audio": ("image", "audio"),
    "audio": ("audio",),
    "image": ("image",),
    "text": (),
    "video_audio": ("video",),
    "video": ("video",),
}


@dataclass
class LoadResult:
    samples: list[Sample]
    skipped: list[RowError] = field(default_factory=list)
    rows: int = 0
    row_of: dict[str, int] = field(default_factory=dict)
    """Row index in the file of each sample, by id."""


def read_rows(path: str | Path) -> list[Any]:
    """The raw rows of a split: a JSON list, or JSON Lines (one object per line).

    A file that is empty, not UTF-8 (UTF-16 is named), one JSON object, or not JSON is a RowError
    naming the file and saying which.
    """
    path = Path(path)
    text = _read_text(path)
    stripped = text.lstrip()
    if not stripped:
        raise RowError(path, -1, "the split is empty (no rows)")
    if deep := json_too_deep(text):  # json.loads would recurse once per level: a RecursionError
        raise RowError(path, -1, f"{deep}; not a split")
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise RowError(
                path, -1, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
    else:
        rows = _json_lines(path, text)
    if isinstance(rows, list) and not rows:
        raise RowError(path, -1, "the split has no rows")
    return rows


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RowError(path, -1, f"cannot read file ({err.strerror})") from err
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise RowError(path, -1, "the file is UTF-16 (or binary), not UTF-8; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless
    except UnicodeDecodeError as err:
        raise RowError(
            path, -1, f"not UTF-8 text (invalid byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None


def _json_lines(path: Path, text: str) -> list[Any]:
    rows = []
    for lineno, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if not rows and _is_one_object(text):
                raise RowError(
                    path,
                    -1,
                    "holds one JSON object, not rows: a split is a JSON list of rows or one row per line",
                ) from None
            raise RowError(path, len(rows), f"invalid JSON on line {lineno + 1}: {err.msg}") from err
    return rows


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _media_path(root: Path, rel: Any, kind: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"path.{kind} must be a non-empty string")
    if Path(rel).is_absolute():
        raise ValueError(f"path.{kind} {rel!r} is absolute; media paths must be relative to the dataset root")
    full = (root / rel).resolve()
    if not full.is_relative_to(root.resolve()):
        raise ValueError(f"path.{kind} {rel!r} escapes the dataset root {root}")
    if not full.is_file():
        raise ValueError(f"{kind} file not found: {full}")
    return full


def _options(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("options must be a non-empty list")
    for i, opt in enumerate(raw):
        want = chr(ord("A") + i)
        m = OPTION_RE.match(opt) if isinstance(opt, str) else None
        if m is None or m.group(1) != want:
            raise ValueError(
                f"option {i} must start with '{want}.' (options lettered A.. in order), got {opt!r}"
            )
        if not m.group(2).strip():
            raise ValueError(f"option {want} has no text")
    return tuple(raw)


def parse_row(row: Any, root: Path, check_media: bool = True) -> Sample:
    """Validate one raw row; raises ValueError with the reason (the caller adds file and row)."""
    if not isinstance(row, dict):
        raise ValueError(f"row must be an object, got {type(row).__name__}")
    for key in ("problem_id", "problem", "options", "solution"):
        if key not in row:
            raise ValueError(f"missing field {key!r}")
    data_type = row.get("data_type", "image_audio")
    if data_type not in DATA_TYPES:
        raise ValueError(f"data_type {data_type!r} not supported (supported: {', '.join(DATA_TYPES)})")
    if not isinstance(row["problem"], str) or not row["problem"].strip():
        raise ValueError("problem must be a non-empty string")
    options = _options(row["options"])
    letters = parse_answer_letters(str(row["solution"]))
    if not letters:
        raise ValueError(f"solution {row['solution']!r} names no option letter")
    for letter in letters:
        if ord(letter) - ord("A") >= len(options):
            raise ValueError(f"answer letter {letter} is out of range for {len(options)} options")
    paths = row.get("path") or {}
    if not isinstance(paths, dict):
        raise ValueError("path must be an object with image/audio keys")
    media: dict[str, Path | None] = {"image": None, "audio": None, "video": None}
    # A video_audio row may name its soundtrack as a file of its own (Daily-Omni ships {id}_audio.wav
    # beside {id}_video.mp4); the video then needs no audio stream.
    separate = data_type == "video_audio" and "audio" in paths
    for kind in _NEEDS_MEDIA[data_type] + (("audio",) if separate else ()):
        if kind not in paths:
            raise ValueError(f"data_type {data_type} needs path.{kind}")
        media[kind] = _media_path(root, paths[kind], kind)
        if check_media:
            _check_media(kind, media[kind], "video" if separate else data_type)
    metadata = {k: v for k, v in row.items() if k not in _CORE_KEYS}
    return Sample(
        id=str(row["problem_id"]),
        question=row["problem"].strip(),
        options=options,
        answer=",".join(letters),
        image=media["image"],
        audio=media["audio"],
        data_type=data_type,
        metadata=metadata,
        video=media["video"],
    )


def _check_media(kind: str, path: Path, data_type: str) -> None:
    if kind == "audio":
        audio_info(path)
    elif kind == "image":
        verify_image(path)
    else:
        info = video_info(path)  # decodes every frame
        if data_type == "video_audio" and not info.has_audio:
            raise MediaError(
                f"{path}: data_type video_audio needs a soundtrack, but the video has no audio stream"
            )


SPLIT_FILE_PATTERN = "omni_rl_format_*.json"  # AVQA-R1-6K: AVQA_R1/{train,valid}/omni_rl_format_{split}.json


def split_file(path: str | Path) -> Path:
    """The split file ``path`` names: itself, or the one ``omni_rl_format_*.json`` in a split directory."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted(path.glob(SPLIT_FILE_PATTERN))
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(f.name for f in found)
        raise RowError(path, -1, f"holds several split files ({names}); name one of them")
    splits = [d.name for d in sorted(path.iterdir()) if d.is_dir() and any(d.glob(SPLIT_FILE_PATTERN))]
    hint = f"; its split directories: {', '.join(splits)}" if splits else ""
    raise RowError(path, -1, f"a split directory must hold one {SPLIT_FILE_PATTERN} file{hint}")


def split_fingerprint(path: str | Path) -> str:
    """SHA-256 of the split file ``path`` names (``split_file``): what a run or an evaluation read,
    recorded so that a split whose content changed at the same path is noticed."""
    return sha256_file(split_file(path))


def load_split(
    path: str | Path,
    on_error: str = "strict",
    check_media: bool = True,
    max_samples: int | None = None,
) -> LoadResult:
    """Load and validate a split. ``on_error``: "strict" raises the first RowError, "skip" collects them."""
    if on_error not in ("strict", "skip"):
        raise ValueError(f"on_error must be 'strict' or 'skip', got {on_error!r}")
    path = split_file(path)
    rows = read_rows(path)
    if not isinstance(rows, list):
        raise RowError(path, -1, "a split must be a JSON list of rows (or JSON Lines)")
    root = path.parent
    result = LoadResult(samples=[], rows=len(rows))
    seen = result.row_of
    for index, row in enumerate(rows):
        try:
            sample = parse_row(row, root, check_media=check_media)
            if sample.id in seen:
                raise ValueError(f"duplicate problem_id {sample.id!r} (first at row {seen[sample.id]})")
            seen[sample.id] = index
        except (ValueError, MediaError) as err:
            error = RowError(path, index, str(err))
            if on_error == "strict":
                raise error from err
            result.skipped.append(error)
            continue
        result.samples.append(sample)
        if max_samples is not None and len(result.samples) >= max_samples:
            break
    return result
