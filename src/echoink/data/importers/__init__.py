"""Benchmarks as released -> splits in the AVQA-R1-6K schema that every echoink command reads.

``import_benchmark("mmau", "/data/bench/MMAU", "/data/bench")`` reads the release laid out as its
authors ship it and writes ``/data/bench/mmau.json``. Media stay where they are: a split's media paths
are relative to its folder and may not leave it (the loader's rule), so the release must lie inside
the output folder; nothing is copied. A row keeps the benchmark's own fields (categories, the answer
as text under ``answer_text``, captions) beside the schema's, and ``benchmark`` names its release, so
evaluation can score it with the benchmark's own rule (``eval/official.py``).

A question whose media files are absent is left out and counted; a question whose answer is not one of
its options (or that a reader cannot make sense of) stops the import with a ``RowError`` naming the
file, the row and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...bounded import read_json
from ...errors import UserError
from ...filehash import sha256_file
from ...outdir import OutputNotEmpty
from ...progress import Progress
from ...registry import Registry
from ..schema import RowError
from .releases import Item, read_daily_omni, read_mmar, read_mmau, read_omnibench, read_worldsense


@dataclass(frozen=True)
class Benchmark:
    """How one release is read and scored."""

    name: str
    title: str
    read: Callable[[Path], list[Item]]
    data_type: str
    category_fields: tuple[str, ...]
    """The benchmark's own grouping fields; evaluation reports accuracy by each."""
    official_rule: str
    """The name of the benchmark's own scoring rule in ``eval/official.py``."""
    licence: str
    """Printed by ``echoink data import``: the terms differ, and some are non-commercial."""


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
for _b in (
    Benchmark("omnibench", "OmniBench", read_omnibench, "image_audio", ("task type", "audio type"),
              "omnibench_mmmu", "none stated in its repository"),
    Benchmark("daily-omni", "Daily-Omni", read_daily_omni, "video_audio",
              ("Type", "video_category", "video_duration", "content_parent_category"), "daily_omni_letter",
              "the data's terms are not stated (its GitHub repository's GPL-3.0 covers the code)"),
    Benchmark("worldsense", "WorldSense", read_worldsense, "video_audio",
              ("domain", "sub_category", "task_domain", "task_type"), "vlmevalkit_exact_match",
              "not checked here: read its Hugging Face dataset card"),
    Benchmark("mmau", "MMAU", read_mmau, "audio", ("task", "difficulty", "category", "sub-category"),
              "string_match", "Apache-2.0 (its repository's LICENSE)"),
    Benchmark("mmar", "MMAR", read_mmar, "audio", ("modality", "category", "sub-category"),
              "string_match", "CC BY-NC 4.0, non-commercial use only (its GitHub repository has no LICENSE file)"),
):  # fmt: skip
    BENCHMARKS.register(_b.name)(_b)


@dataclass
class ImportReport:
    path: Path
    rows: int
    missing: list[str] = field(default_factory=list)
    """Ids of the questions left out because a media file is absent."""

    def line(self) -> str:
        out = f"{self.path}: {self.rows} rows"
        if self.missing:
            first = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            out += f"; {len(self.missing)} left out, media missing ({first})"
        return out


class NothingImported(UserError):
    """No question of a release could be imported (every one misses media)."""


def import_benchmark(name: str, src: str | Path, out: str | Path) -> ImportReport:
    """Read release ``name`` laid out in ``src`` and write ``out/<name>.json``; see the module docstring."""
    bench = BENCHMARKS.get(name)
    src, out = Path(src).resolve(), Path(out).resolve()
    if not src.is_dir():
        raise RowError(src, -1, f"not a directory (the {bench.title} release as extracted)")
    if not src.is_relative_to(out):
        raise UserError(
            f"{src} is not inside --out {out}: media are referenced relative to the split, not copied; "
            f"put the release under {out} or pass an --out folder that holds it"
        )
    target = out / f"{name}.json"
    check_replaceable(target)  # before reading the release: a refusal costs nothing
    rows, missing, seen = [], [], set()
    items = bench.read(src)
    with Progress(len(items), f"import {name}", unit="question") as bar:
        for item in items:
            if item.id in seen:
                raise RowError(src, len(rows) + len(missing), f"duplicate question id {item.id!r}")
            seen.add(item.id)
            if _media_present(item, src, out):
                rows.append(_row(item, bench, src.relative_to(out)))
            else:
                missing.append(item.id)
            bar.update()
    report = ImportReport(out / f"{name}.json", len(rows), missing)
    if not rows:
        raise NothingImported(
            f"{bench.title}: nothing imported from {src}; {report.line().split('; ', 1)[-1]}"
        )
    report.path.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    _mark(report.path)
    return report


def _media_present(item: Item, src: Path, out: Path) -> bool:
    """Whether every media file of ``item`` is there; a RowError for one that resolves outside ``out``."""
    if not all((src / rel).is_file() for rel in item.media.values()):
        return False
    for rel in item.media.values():  # a symlink out of the folder: the loader would refuse every such row
        if not (src / rel).resolve().is_relative_to(out):
            raise RowError(src, -1, f"question {item.id}: {rel} resolves outside {out} (a symlink?); "
                           "the loader refuses media outside the split's folder")  # fmt: skip
    return True


def _marker(split: Path) -> Path:
    return split.with_name(f".{split.name}.echoink")


def _mark(split: Path) -> None:
    """Record that this import wrote ``split`` (its SHA-256), so a re-import may replace it, and only it."""
    _marker(split).write_text(json.dumps({"written_by": "echoink data import", "sha256": sha256_file(split)}))


def check_replaceable(split: Path) -> None:
    """Refuse to replace a ``split`` this command did not write, or that was edited since (a hand-fixed
    benchmark file would be lost silently)."""
    if not split.exists():
        return
    try:
        ours = read_json(_marker(split))["sha256"] == sha256_file(split)
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    if not ours:
        raise OutputNotEmpty(
            f"--out: {split} exists and was not written by `echoink data import` (or was edited since); "
            "move it away or import into another --out"
        )


def _row(item: Item, bench: Benchmark, prefix: Path) -> dict[str, Any]:
    letter = chr(ord("A") + item.answer)
    return {
        **item.fields,  # first: a release field never overrides the schema's keys
        "problem_id": item.id,
        "problem": item.question,
        "data_type": bench.data_type,
        "problem_type": "multiple choice",
        "options": [f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(item.options)],
        "solution": f"<answer>{letter}</answer>",
        "path": {kind: (prefix / rel).as_posix() for kind, rel in item.media.items()},
        "data_source": bench.title,
        "benchmark": bench.name,
    }


def benchmark_of(metadata: dict[str, Any]) -> Benchmark | None:
    """The benchmark a row was imported from (its ``benchmark`` field), or None for other rows."""
    name = metadata.get("benchmark")
    return BENCHMARKS.get(name) if isinstance(name, str) and name in BENCHMARKS else None
