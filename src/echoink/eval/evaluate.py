"""Evaluate a model on a split: batched generation, strict parsing, predictions.jsonl and summary.json.

Every model is measured the same way (one prompt template, one decoding, the rewards' strict parser);
an unparseable answer counts as wrong and is also counted separately. With K samples per item the
summary gives the mean accuracy over samples (item-bootstrap CI), majority-vote accuracy and pass@k.
Ablations replace the audio with silence of equal length or the image with a blank of equal size
(the data layer's ``load_media``) and report the accuracy drop against no ablation.

Output folder:
  eval_config.json   the settings; re-running into the folder with other settings is refused
  predictions.jsonl  one row per (condition, item, sample): id, condition, sample, prompt, decoding,
                     completion, pred (parsed letters or null), answer, correct, format_ok, length
                     (completion tokens before the stop token), truncated, and the item's short metadata
  summary.json       see :func:`summarize`, plus the settings and the split file's SHA-256 (``data_sha256``);
                     for a split imported by ``echoink data import``, also the benchmark's own score
                     (``official``) and accuracy by its categories (``eval/official.py``)
Re-running with the same folder skips the (condition, item) pairs already in predictions.jsonl.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..data import load_split
from ..data.avqa import split_file
from ..data.messages import ABLATIONS, VideoSettings, ablation_applies
from ..filehash import sha256_file
from ..jsonl import read_jsonl
from ..scoring.predict import Decoding, EvalSettings, predict_batch
from .official import official_summary
from .summary import summarize

log = logging.getLogger(__name__)

CONDITIONS = ABLATIONS
"""Ablation conditions: nothing replaced, audio -> silence, image -> blank, video -> blank frames,
desync -> a video's soundtrack shifted in time (default: by half the clip). A condition runs only on
the rows that carry what it removes (``data.messages.ablation_applies``); on none of them it is
reported "not applicable"."""
PREDICTIONS, SUMMARY, SETTINGS = "predictions.jsonl", "summary.json", "eval_config.json"


def load_model(model_dir: str | Path, device: str | None = None) -> tuple[torch.nn.Module, Any]:
    """(model in eval mode, its engine) through the model layer's loader: a thinker, a full Omni
    checkpoint or a LoRA adapter directory, of any family. bf16 on a GPU, fp32 on the CPU."""
    from ..model import Engine
    from ..model.loading import load_policy, load_processor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    model = load_policy(str(model_dir), device, dtype=dtype, gradient_checkpointing=False, lora_rank=0)
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: fold it in, generation runs the plain thinker
        model = model.merge_and_unload()
    model = model.requires_grad_(False).eval()
    return model, Engine.for_model(model, load_processor(model_dir))


def evaluate(
    model_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    template: str = "reasoning",
    decoding: str | Decoding = "greedy",
    ablate: Sequence[str] = ("none",),
    batch_size: int = 8,
    max_new_tokens: int = 256,
    limit: int | None = None,
    max_audio_seconds: float | None = None,
    max_pixels: int | None = 224 * 224,
    video: VideoSettings | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_dir`` on ``data_path`` under each condition in ``ablate``; write and return the summary.

    ``decoding``: "greedy", "sample" (one sample at temperature 1) or a :class:`Decoding`. ``limit``
    keeps the first N valid items. "none" is always evaluated (the ablation drops need it).
    """
    decoding = decoding if isinstance(decoding, Decoding) else Decoding(mode=decoding)
    settings = EvalSettings(
        template, decoding, max_new_tokens, max_audio_seconds, max_pixels, video or VideoSettings()
    )
    conditions = ["none", *[c for c in dict.fromkeys(ablate) if c != "none"]]
    if bad := [c for c in conditions if c not in CONDITIONS]:
        raise ValueError(f"unknown ablation(s) {bad}; valid: {', '.join(CONDITIONS)}")
    loaded = load_split(data_path, on_error="skip")
    for skipped in loaded.skipped:
        log.warning("skipped row: %s", skipped)
    samples = loaded.samples[:limit] if limit is not None else loaded.samples
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, {"model": str(model_dir), "data": str(data_path), **asdict(settings)})
    rows = _complete_rows(out / PREDICTIONS, decoding.samples)
    done = {(r["condition"], r["id"]) for r in rows}
    # An ablation runs only on the items that carry what it removes (see summarize: "not applicable").
    todo = {c: [s for s in samples if (c, s.id) not in done and ablation_applies(s, c)] for c in conditions}
    if any(todo.values()):
        model, engine = load_model(model_dir)
        for condition, pending in todo.items():
            for start in range(0, len(pending), batch_size):
                new = predict_batch(model, engine, pending[start : start + batch_size], condition, settings)
                _append(out / PREDICTIONS, new)
                rows += new
            log.info("%s: %d items evaluated", condition, len(pending))
    summary = summarize(rows, samples, conditions)
    summary.update(official_summary(rows, samples, conditions))  # an imported benchmark's own rule
    summary.update(model=str(model_dir), data=str(data_path), settings=asdict(settings))
    summary["data_sha256"] = sha256_file(split_file(data_path))  # what `compare` checks before pairing ids
    summary["skipped_rows"] = len(loaded.skipped)
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / SETTINGS
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            raise ValueError(f"{out} holds predictions made with other settings (old, new): {diff}")
    else:
        path.write_text(json.dumps(settings, indent=1))


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows of a predictions file; a last line cut short by a kill is dropped (and removed from the file)."""
    return read_jsonl(path, repair=True) if path.exists() else []


def _complete_rows(path: Path, k: int) -> list[dict[str, Any]]:
    """Rows of (condition, id) pairs with all K samples; a pair cut short by a kill is removed from the file."""
    rows = read_predictions(path)
    counts = Counter((r["condition"], r["id"]) for r in rows)
    kept = [r for r in rows if counts[r["condition"], r["id"]] >= k]
    if len(kept) < len(rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    return kept


def _append(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
        fh.flush()
