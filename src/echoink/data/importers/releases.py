"""Readers of five benchmark releases, each exactly as its authors lay it out.

Each reader takes the release folder and returns ``Item``s: question, option texts, the answer's index,
media paths relative to the folder, and the benchmark's own fields. Quirks kept on purpose:

- OmniBench (``dataset/*.jsonl``): keys with spaces ("task type", "audio type"), four option texts
  (sometimes one "A. ... B. ..." string, which its own ``calculate_metrics.py`` splits), the answer as
  option *text*, media as basenames under ``mm_data/audio`` (mp3) and ``mm_data/image``.
- Daily-Omni (``qa.json``): "Choice" lettered "A. ...", a letter "Answer", the video at
  ``Videos/{id}/{id}_video.mp4`` and its sound as a file of its own, ``Videos/{id}/{id}_audio.wav``.
- WorldSense (``worldsense_qa.json``): one object per video id, its questions under keys ``task0``,
  ``task1``, ...; lettered "candidates", a letter answer; ``videos/{id}.mp4`` carries its own sound.
- MMAU (``mmau-test-mini.json``): "./test-mini-audios/{id}.wav" paths, 2 to 8 "choices", answer as text.
- MMAR (``MMAR-meta.jsonl``, JSON Lines): "./audio/{id}.wav" paths, 2 to 6 choices, answer as text.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...bounded import FileFormatError, read_json
from ..avqa import read_rows
from ..schema import OPTION_RE, RowError

MAX_OPTIONS = 8  # letters A-H: what the prompts, the parser and the tiny tokenizer are built for


@dataclass(frozen=True)
class Item:
    """One question of a release, before it becomes a row."""

    id: str
    question: str
    options: list[str]  # texts, without letters
    answer: int  # index into options
    media: dict[str, str]  # kind -> path relative to the release folder
    fields: dict[str, Any]  # the benchmark's own fields, kept in the row


class _Row:
    """One raw release row and where it came from, so every complaint names file, row and field."""

    def __init__(self, path: Path, index: int, raw: Any, label: str = "") -> None:
        if not isinstance(raw, dict):
            raise RowError(path, index, f"{label}row must be an object, got {type(raw).__name__}")
        self.path, self.index, self.raw, self.label = path, index, raw, label

    def error(self, key: str, reason: str) -> RowError:
        return RowError(self.path, self.index, f"{self.label}{key}: {reason}")

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "missing or not a non-empty string")
        return value.strip()

    def texts(self, key: str, lettered: bool = False, tidy: bool = False) -> list[str]:
        """Option texts of ``key`` (2 to 8); ``lettered``: strip the "A. " marks, which must run A, B, ... in
        order; ``tidy``: drop blank and repeated choices first (MMAR has a few "" choices, MMAU test-mini
        lists some choices twice: one option each, as their word-matching scorer sees them)."""
        value = self.raw.get(key)
        if tidy and isinstance(value, list):
            value = list(dict.fromkeys(v.strip() for v in value if isinstance(v, str) and v.strip()))
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        if not 2 <= len(value) <= MAX_OPTIONS:
            raise self.error(key, f"{len(value)} options; 2 to {MAX_OPTIONS} are supported (letters A-H)")
        if not lettered:
            return list(value)
        out = []
        for i, option in enumerate(value):
            m = OPTION_RE.match(option)
            if m is None or m.group(1) != chr(ord("A") + i) or not m.group(2).strip():
                raise self.error(key, f"option {i} must read '{chr(ord('A') + i)}. text', got {option!r}")
            out.append(m.group(2).strip())
        return out

    def answer_by_text(self, key: str, options: list[str]) -> int:
        answer = self.text(key)
        found = [i for i, text in enumerate(options) if text.strip() == answer]
        if len(found) != 1:
            why = "is not among its options" if not found else "matches several options"
            raise self.error(key, f"answer {answer!r} {why} {options!r}")
        return found[0]

    def answer_by_letter(self, key: str, n: int) -> int:
        letter = self.text(key).upper()
        index = ord(letter[0]) - ord("A") if len(letter) == 1 else -1
        if not 0 <= index < n:
            raise self.error(key, f"answer {letter!r} is not among the options A-{chr(ord('A') + n - 1)}")
        return index

    def rest(self, *consumed: str) -> dict[str, Any]:
        return {k: v for k, v in self.raw.items() if k not in consumed}


def _inside(row: _Row, key: str, rel: str) -> str:
    """``rel`` ("./audio/x.wav") normalised, refused when absolute or leaving the release folder."""
    norm = os.path.normpath(rel.replace("\\", "/"))
    if os.path.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise row.error(key, f"media path {rel!r} leaves the release folder")
    return Path(norm).as_posix()


def _find(src: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (src / name).is_file():
            return src / name
    raise RowError(src, -1, f"no {what} here (looked for {', '.join(names)})")


def read_omnibench(src: Path) -> list[Item]:
    found = sorted((src / "dataset").glob("*.jsonl"))
    if len(found) != 1:
        raise RowError(src, -1, "expected one dataset/*.jsonl (OmniBench's batch-5_1142_20240817.jsonl), "
                       f"found {len(found)}")  # fmt: skip
    items = []
    for i, raw in enumerate(read_rows(found[0])):
        row = _Row(found[0], i, raw)
        if isinstance(raw.get("options"), str):  # its calculate_metrics.py splits such a string
            parts = re.findall(r"(A\..*?)(B\..*?)(C\..*?)(D\..*)", raw["options"], re.S)
            raw = {**raw, "options": [p.strip() for p in parts[0]] if parts else raw["options"]}
            row = _Row(found[0], i, raw)
            options = row.texts("options", lettered=True)
        else:
            options = row.texts("options")
        audio = _inside(row, "audio_path", "mm_data/audio/" + row.text("audio_path"))
        image = _inside(row, "image_path", "mm_data/image/" + row.text("image_path"))
        index = raw.get("index", i)
        items.append(
            Item(str(index), row.text("question"), options, row.answer_by_text("answer", options),
                 {"image": image, "audio": audio},
                 {**row.rest("question", "options", "answer"), "answer_text": raw["answer"]})
        )  # fmt: skip
    return items


def read_daily_omni(src: Path) -> list[Item]:
    path = _find(src, ("qa.json",), "Daily-Omni qa.json")
    items, per_video = [], Counter()
    for i, raw in enumerate(read_rows(path)):
        row = _Row(path, i, raw)
        vid = row.text("video_id")
        options = row.texts("Choice", lettered=True)
        folder = _inside(row, "video_id", f"Videos/{vid}")
        media = {"video": f"{folder}/{vid}_video.mp4", "audio": f"{folder}/{vid}_audio.wav"}
        items.append(
            Item(f"{vid}#{per_video[vid]}", row.text("Question"), options,
                 row.answer_by_letter("Answer", len(options)), media, row.rest("Question", "Choice", "Answer"))
        )  # fmt: skip
        per_video[vid] += 1  # a video has several questions; the id numbers them
    return items


def read_worldsense(src: Path) -> list[Item]:
    path = _find(src, ("worldsense_qa.json",), "WorldSense worldsense_qa.json")
    try:
        videos = read_json(path)  # nesting bounded
    except FileFormatError as err:
        raise RowError(path, -1, str(err).removeprefix(f"{path}: ")) from None
    if not isinstance(videos, dict):
        raise RowError(path, -1, "must be one object keyed by video id")
    items = []
    for vid, video in videos.items():
        shared = _Row(path, len(items), video, f"{vid}.")
        tasks = sorted((k for k in video if re.fullmatch(r"task\d+", k)), key=lambda k: int(k[4:]))
        common = {"video_id": vid, **shared.rest(*tasks)}
        for key in tasks:
            row = _Row(path, len(items), video[key], f"{vid}.{key}.")
            options = row.texts("candidates", lettered=True)
            media = {"video": _inside(row, "video_id", f"videos/{vid}.mp4")}
            fields = {**common, "task_key": key, **row.rest("question", "candidates", "answer")}
            items.append(
                Item(f"{vid}#{key}", row.text("question"), options, row.answer_by_letter("answer", len(options)),
                     media, fields)
            )  # fmt: skip
    return items


def _text_answer_items(path: Path, audio_key: str) -> list[Item]:
    """MMAU and MMAR: ``id``, an audio path with "./", ``choices`` and the answer as one choice's text."""
    items = []
    for i, raw in enumerate(read_rows(path)):
        row = _Row(path, i, raw)
        options = row.texts("choices", tidy=True)
        answer = row.answer_by_text("answer", options)
        audio = _inside(row, audio_key, row.text(audio_key))
        fields = {**row.rest("question", "choices", "answer"), "answer_text": raw["answer"]}
        if len(options) != len(raw["choices"]):
            fields["choices_as_released"] = raw["choices"]
        items.append(Item(row.text("id"), row.text("question"), options, answer, {"audio": audio}, fields))
    return items


def read_mmau(src: Path) -> list[Item]:
    return _text_answer_items(_find(src, ("mmau-test-mini.json",), "MMAU mmau-test-mini.json"), "audio_id")


def read_mmar(src: Path) -> list[Item]:
    path = _find(src, ("MMAR-meta.jsonl", "MMAR-meta.json"), "MMAR MMAR-meta.jsonl")
    return _text_answer_items(path, "audio_path")
