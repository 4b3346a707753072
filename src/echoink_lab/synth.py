"""The embedded benchmark: procedural audio-visual multiple-choice questions in the AVQA-R1-6K schema.

``generate(out, {"train": 4000, "val": 500, "test": 1000}, SynthSpec(seed=0, difficulty="medium"))`` writes
``out/{train,val,test}.json``, ``out/images/*.png``, ``out/audios/*.wav`` (16 kHz mono) and
``out/synth.yaml`` (the parameters). Each item draws from its own RNG seeded by (seed, split, index),
and its family and answer letter from a shuffled schedule block seeded by (seed, split, index // block
size), so any item can be made alone, in any process, and a seed gives byte-identical files.

Families and knobs live in ``synth_scene`` (pure planning), drawing and sound in ``synth_media``.
Every row carries extra keys the loader keeps as ``Sample.metadata``: ``needs`` (audio/image/both),
``family``, ``conflict``, ``reasoning`` (a reference ``<think>..</think><answer>X</answer>`` trace),
``self_correction``, ``cue``, ``scene`` and ``difficulty``; with ``SynthSpec.shortcut`` set, also
``shortcut`` (aligned / broken / none: where a visual cue points, see ``synth_shortcut``).
"""

from __future__ import annotations

import json
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from echoink.errors import UserError

from .synth_media import render_audio, render_image, save_png, save_wav
from .synth_scene import DIFFICULTIES, FAMILIES, FAMILY_BLOCK, LETTERS, Plan, schedule_block
from .synth_shortcut import (
    HELDOUT,
    SHORTCUT_FAMILIES,
    STATUSES,
    cue_status,
    frame_trace,
    status_of,
    with_cue,
)

DATA_SOURCE = "echoink-synth"
_ITEM, _BLOCK, _CUE = 0, 1, 2  # RNG streams
_CHUNK = 200  # items per worker task


@dataclass(frozen=True)
class SynthSpec:
    """Everything an item depends on besides its split and index."""

    seed: int = 0
    difficulty: str = "medium"  # a DIFFICULTIES name
    correction_rate: float = 0.25  # fraction of traces with a "Wait, ..." self-correction
    families: tuple[str, ...] = tuple(FAMILY_BLOCK)  # a subset keeps their relative proportions
    # fraction of training items of shortcut families whose visual cue points to the answer (held-out
    # splits: half broken, half none); None: no cue and no ``shortcut`` row field (synth_shortcut)
    shortcut: float | None = None
    heldout: tuple[str, ...] = HELDOUT  # the cue statuses non-train splits cycle through, a block each
    # fraction of framed training items whose reference trace reads the frame ("A dark frame marks the
    # third object.") instead of the tone and the scene: a cold start that leans on the visual cue
    frame_traces: float = 0.0
    # fraction of training items of shortcut families framed on a *wrong* object (conflict data: the
    # frame stops being reliable), taken out of the aligned ones so the framed share stays ``shortcut``
    conflict_frames: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "heldout", tuple(self.heldout))
        if not self.families:
            raise UserError("families must name at least one question family")
        DIFFICULTIES.get(self.difficulty)  # unknown names list the valid ones
        schedule_block(self.families)
        if not 0.0 <= self.correction_rate <= 1.0:
            raise UserError(f"correction_rate must be in [0, 1], got {self.correction_rate}")
        if self.shortcut is not None:
            if not 0.0 <= self.shortcut <= 1.0:
                raise UserError(f"shortcut must be in [0, 1], got {self.shortcut}")
            if not set(self.families) & set(SHORTCUT_FAMILIES):
                raise UserError(f"shortcut needs one of the families {', '.join(SHORTCUT_FAMILIES)}")
        if not 0.0 <= self.frame_traces <= 1.0 or (self.frame_traces and self.shortcut is None):
            raise UserError(f"frame_traces must be in [0, 1] and needs shortcut, got {self.frame_traces}")
        if not 0.0 <= self.conflict_frames <= (self.shortcut or 0.0):
            raise UserError(
                f"conflict_frames must be in [0, shortcut] (needs shortcut), got {self.conflict_frames}"
            )
        if not self.heldout or set(self.heldout) - set(STATUSES):
            raise UserError(f"heldout must name cue statuses from {', '.join(STATUSES)}, got {self.heldout}")


def _rng(seed: int, split: str, stream: int, n: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), stream, n]))


def plan_item(spec: SynthSpec, split: str, index: int) -> tuple[Plan, str, bool, np.random.Generator]:
    """(plan, reference trace, whether it self-corrects, the item's RNG ready for rendering)."""
    block = schedule_block(spec.families)
    order = _rng(spec.seed, split, _BLOCK, index // len(block)).permutation(len(block))
    name, letter = block[order[index % len(block)]]
    rng = _rng(spec.seed, split, _ITEM, index)
    plan = FAMILIES.get(name).plan(rng, letter, DIFFICULTIES.get(spec.difficulty))
    if spec.shortcut is not None:  # its own stream: the item itself does not depend on its cue
        cue_rng = _rng(spec.seed, split, _CUE, index)
        status = cue_status(
            name, split, index // len(block), spec.shortcut, cue_rng, spec.heldout, spec.conflict_frames
        )
        plan = with_cue(plan, status, cue_rng)
    trace, corrected = plan.trace(rng, spec.correction_rate)
    # drawn from the cue's stream after the cue, and only when asked: nothing else about the item changes
    if (
        spec.frame_traces
        and plan.mark is not None
        and split == "train"
        and cue_rng.random() < spec.frame_traces
    ):
        trace, corrected = frame_trace(plan), False
    return plan, trace, corrected, rng


def make_item(out: Path, spec: SynthSpec, split: str, index: int) -> dict:
    """Plan one item, write its image and audio under ``out``, return its row."""
    plan, trace, corrected, rng = plan_item(spec, split, index)
    diff = DIFFICULTIES.get(spec.difficulty)
    diff = replace(diff, canvas=plan.canvas) if plan.canvas else diff
    image, boxes = render_image(plan.scene, diff, rng, plan.mark)
    stem = f"{split}-{index:05d}"
    paths = {"image": f"images/{stem}.png", "audio": f"audios/{stem}.wav"}
    save_png(image, out / paths["image"])
    save_wav(render_audio(plan.cue, diff, rng), out / paths["audio"])
    return {
        "problem_id": stem,
        "problem": plan.question,
        "data_type": "image_audio",
        "problem_type": "multiple choice",
        "options": [f"{LETTERS[i]}. {text}" for i, text in enumerate(plan.options)],
        "solution": f"<answer>{LETTERS[plan.answer]}</answer>",
        "path": paths,
        "data_source": DATA_SOURCE,
        "needs": plan.needs,
        "family": plan.family,
        "conflict": plan.conflict,
        "reasoning": trace,
        "self_correction": corrected,
        "cue": plan.cue.describe(),
        "scene": [
            {"colour": o.colour, "shape": o.shape, "box": list(b)}
            for o, b in zip(plan.scene, boxes, strict=True)
        ],
        "difficulty": diff.name,
    } | ({"shortcut": status_of(plan)} if spec.shortcut is not None else {})


def _make_chunk(args: tuple[Path, SynthSpec, str, range]) -> list[dict]:
    out, spec, split, indices = args
    return [make_item(out, spec, split, i) for i in indices]


def generate(
    out: str | Path, sizes: dict[str, int], spec: SynthSpec | None = None, workers: int | None = None
) -> dict[str, Path]:
    """Write the splits ``sizes`` names (e.g. {"train": 4000, "val": 500, "test": 1000}); returns their paths.

    ``workers``: processes (default: up to 2 of the CPUs); the output does not depend on it.
    """
    spec = spec or SynthSpec()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audios").mkdir(parents=True, exist_ok=True)
    tasks = [
        (out, spec, split, range(start, min(start + _CHUNK, n)))
        for split, n in sizes.items()
        for start in range(0, n, _CHUNK)
    ]
    workers = workers or min(2, os.cpu_count() or 1)
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            chunks = list(pool.map(_make_chunk, tasks))
    else:
        chunks = [_make_chunk(t) for t in tasks]
    rows: dict[str, list[dict]] = {split: [] for split in sizes}
    for task, chunk in zip(tasks, chunks, strict=True):
        rows[task[2]].extend(chunk)
    paths = {}
    for split, split_rows in rows.items():
        paths[split] = out / f"{split}.json"
        paths[split].write_text(json.dumps(split_rows, indent=1) + "\n", encoding="utf-8")
    # YAML, not JSON, so `echoink data check DIR/*.json` sees only the splits
    manifest = {"generator": DATA_SOURCE, **asdict(spec), "sizes": dict(sizes)}
    if not spec.frame_traces:  # manifests without the option stay as they were
        del manifest["frame_traces"]
    if not spec.conflict_frames:
        del manifest["conflict_frames"]
    if spec.shortcut is None:  # the manifest of a benchmark without the cue stays as it was
        del manifest["shortcut"], manifest["heldout"]
    else:
        manifest["heldout"] = list(spec.heldout)
    manifest["families"] = list(spec.families)
    (out / "synth.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return paths


def benchmark_corpus(n_per_difficulty: int = 400) -> list[str]:
    """Representative benchmark text (questions with lettered options, reference traces with and without
    self-corrections) for every difficulty, for building a tokenizer. Deterministic; no media is made.

    >>> corpus = benchmark_corpus(40)
    >>> any("Wait, listen again." in t for t in corpus), corpus[0].startswith("<think>") or "?" in corpus[0]
    (True, True)
    """
    texts = []
    for difficulty in DIFFICULTIES.names():
        spec = SynthSpec(seed=0, difficulty=difficulty, correction_rate=0.5)
        for index in range(n_per_difficulty):
            plan, trace, _, _ = plan_item(spec, "corpus", index)
            options = "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(plan.options))
            texts += [f"{plan.question}\n{options}", trace]
    return texts
