"""Evaluate a model on a split: batched generation, strict parsing, predictions.jsonl and summary.json.

Every model is measured the same way (one prompt template, one decoding, the rewards' strict parser);
an unparseable answer counts as wrong and is also counted separately. With K samples per item the
summary gives the mean accuracy over samples (item-bootstrap CI), majority-vote accuracy and pass@k.
Ablations replace the audio with silence of equal length or the image with a blank of equal size
(the data layer's ``load_media``) and report the accuracy drop against no ablation.

Output folder:
  eval_config.json   the settings, the split's SHA-256 and the weights' (``weights_sha256``: eval/weights.py);
                     re-running into the folder with other settings, after the split's content changed, or
                     with other weights at the same path (``train --resume`` rewrote ``final/``), is
                     refused (a folder holding anything else is refused too: ``outdir``)
  predictions.jsonl  one row per (condition, item, sample): id, condition, sample, prompt, decoding,
                     completion, pred (parsed letters or null), answer, correct, format_ok, length
                     (completion tokens before the stop token), truncated, and the item's short metadata
  summary.json       see :func:`summarize`, plus the settings, the split file's SHA-256 (``data_sha256``) and
                     the weights' (``weights_sha256``);
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

from ..bounded import read_json_object
from ..data import load_split
from ..data.avqa import split_fingerprint
from ..data.messages import ABLATIONS, VideoSettings, ablation_applies
from ..errors import UserError
from ..jsonl import read_jsonl
from ..outdir import check_output_dir
from ..progress import Progress
from ..scoring.predict import Decoding, EvalSettings, predict_batch
from .official import official_summary
from .summary import summarize
from .weights import short, weights_fingerprint

log = logging.getLogger(__name__)

CONDITIONS = ABLATIONS
"""Ablation conditions: nothing replaced, audio -> silence, image -> blank, video -> blank frames,
desync -> a video's soundtrack shifted in time (default: by half the span shown). A condition runs only on
the rows that carry what it removes (``data.messages.ablation_applies``); on none of them it is
reported "not applicable"."""
PREDICTIONS, SUMMARY, SETTINGS = "predictions.jsonl", "summary.json", "eval_config.json"


def load_model(
    model_dir: str | Path, device: str | None = None, engine: str = "hf"
) -> tuple[torch.nn.Module, Any]:
    """(model in eval mode, its engine) through the model layer's loader: a thinker, a full Omni
    checkpoint or a LoRA adapter directory, of any family. bf16 on a GPU, fp32 on the CPU.

    ``engine="vllm"``: generation runs on a vLLM engine started with the model's weights (LoRA merged)."""
    from ..model import Engine
    from ..model.loading import adapter_base_path, load_policy, load_processor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    model = load_policy(str(model_dir), device, dtype=dtype, gradient_checkpointing=False, lora_rank=0)
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: fold it in, generation runs the plain thinker
        model = model.merge_and_unload()
    model = model.requires_grad_(False).eval()
    out = Engine.for_model(model, load_processor(model_dir))
    if engine == "vllm":
        out.use_vllm(str(adapter_base_path(model_dir) or model_dir), dtype, initial=model)
    elif engine != "hf":
        raise UserError(f"engine must be hf or vllm, got {engine!r}")
    return model, out


class ModelOnce:
    """The model and its engine, loaded on first use and kept: ``eval --suite`` shares one across its
    benchmarks (loading a 7B takes minutes); ``close`` releases the engine (vLLM's process groups)."""

    def __init__(self, model_dir: str | Path, engine: str = "hf") -> None:
        self.model_dir, self.engine, self.loads = model_dir, engine, 0
        self._pair: tuple[torch.nn.Module, Any] | None = None

    def get(self) -> tuple[torch.nn.Module, Any]:
        if self._pair is None:
            self._pair = load_model(self.model_dir, engine=self.engine)
            self.loads += 1
        return self._pair

    def close(self) -> None:
        if self._pair is not None:
            self._pair[1].close()
            self._pair = None


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
    engine: str = "hf",
    shared: ModelOnce | None = None,
    weights_sha256: str | None = None,
    name: str = "eval",
) -> dict[str, Any]:
    """Evaluate ``model_dir`` on ``data_path`` under each condition in ``ablate``; write and return the summary.

    ``engine``: what generates, ``hf`` (transformers) or ``vllm`` (a vLLM engine with the same weights);
    recorded in the summary, not in the settings a resumed folder must match (both decode the same model).

    ``decoding``: "greedy", "sample" (one sample at temperature 1) or a :class:`Decoding`. ``limit``
    keeps the first N valid items. "none" is always evaluated (the ablation drops need it).

    ``shared``: a model loaded once for several calls (a suite), else one is loaded here if any item
    is left; ``weights_sha256``: the weights' fingerprint when the caller has it (else computed);
    ``name``: the progress bar's label (a suite's benchmark).
    """
    decoding = decoding if isinstance(decoding, Decoding) else Decoding(mode=decoding)
    settings = EvalSettings(
        template, decoding, max_new_tokens, max_audio_seconds, max_pixels, video or VideoSettings()
    )
    conditions = _conditions(ablate)
    out = Path(out_dir)
    check_output_dir(out, "--out", "eval", own=(SETTINGS,))  # before reading: a refusal writes nothing
    loaded, samples = _load_items(data_path, limit)
    data = {"data": str(data_path), "data_sha256": split_fingerprint(data_path)}
    weights = weights_sha256 or weights_fingerprint(model_dir)
    settings_record = {"model": str(model_dir), **data, "weights_sha256": weights, **asdict(settings)}
    _check_settings(out, settings_record | {"engine": engine})
    rows = _complete_rows(out / PREDICTIONS, decoding.samples)
    done = {(r["condition"], r["id"]) for r in rows}
    # An ablation runs only on the items that carry what it removes (see summarize: "not applicable").
    todo = {c: [s for s in samples if (c, s.id) not in done and ablation_applies(s, c)] for c in conditions}
    if any(todo.values()):
        model = shared or ModelOnce(model_dir, engine)
        for condition, pending in todo.items():
            rows += _predict(model, pending, condition, settings, (out / PREDICTIONS, batch_size, name))
        if shared is None:
            model.close()  # vLLM: its engine and process groups
    summary = summarize(rows, samples, conditions)
    summary.update(official_summary(rows, samples, conditions))  # an imported benchmark's own rule
    summary.update(model=str(model_dir), data=str(data_path), settings=asdict(settings), engine=engine)
    # data_sha256: what `compare` checks before pairing ids; weights_sha256: what it shows beside each model
    summary |= {**data, "weights_sha256": weights, "skipped_rows": len(loaded.skipped)}
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


def _conditions(ablate: Sequence[str]) -> list[str]:
    """ "none" first (the ablation drops need it), then each named ablation once, each a known one."""
    conditions = ["none", *[c for c in dict.fromkeys(ablate) if c != "none"]]
    if bad := [c for c in conditions if c not in CONDITIONS]:
        raise UserError(f"unknown ablation(s) {bad}; valid: {', '.join(CONDITIONS)}")
    return conditions


def _load_items(data_path: str | Path, limit: int | None) -> tuple[Any, list]:
    """The split's valid rows (each skipped one logged) and the first ``limit`` of its samples."""
    loaded = load_split(data_path, on_error="skip")
    for skipped in loaded.skipped:
        log.warning("skipped row: %s", skipped)
    return loaded, loaded.samples[:limit] if limit is not None else loaded.samples


def _predict(
    model: ModelOnce, pending: list, condition: str, settings: EvalSettings, where: tuple[Path, int, str]
) -> list[dict[str, Any]]:
    """Predict ``pending`` in batches under one condition, appending each batch to the predictions file."""
    path, batch_size, name = where
    rows: list[dict[str, Any]] = []
    if not pending:
        return rows
    thinker, decoder = model.get()
    with Progress(len(pending), f"{name} {condition}") as bar:
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            new = predict_batch(thinker, decoder, batch, condition, settings)
            _append(path, new)
            rows += new
            bar.update(len(batch))
    log.info("%s: %d items evaluated", condition, len(pending))
    return rows


def _check_weights(out: Path, old: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse to resume predictions another set of weights made (same path, other bytes)."""
    before, now = old.get("weights_sha256"), settings["weights_sha256"]
    if before is None or now is None:  # an older folder, or a directory without weight files
        old["weights_sha256"] = now
        return
    if before != now and old.get("model") == settings["model"]:
        raise UserError(
            f"{out}: its predictions were made by other weights than {settings['model']}'s now (sha256 "
            f"{short(before)}, now {short(now)}: retrained or rewritten since); evaluate into another "
            f"--out, or remove {out} to start over"
        )


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write ``eval_config.json``, or refuse to resume a folder evaluated with other settings or on a
    split whose content changed since (its predictions would be scored against the new answers)."""
    path = out / SETTINGS
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))
        return
    old = read_json_object(path, "an eval_config.json")
    old.setdefault("engine", "hf")  # written before --engine existed: every eval decoded with hf
    if "data_sha256" not in old:  # written before fingerprints were recorded: nothing to compare
        log.warning("%s: records no fingerprint of its split; a changed split cannot be noticed", path)
        old["data_sha256"] = settings["data_sha256"]
    if old.get("data") == settings["data"] and old["data_sha256"] != settings["data_sha256"]:
        raise UserError(
            f"{path}: {settings['data']} changed since these predictions were made (sha256 "
            f"{old['data_sha256'][:12]}, now {settings['data_sha256'][:12]}); evaluate into another --out, "
            f"or remove {out} to start over"
        )
    _check_weights(out, old, settings)
    if old != settings:
        diff = "; ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
        raise UserError(
            f"{path}: {out} holds predictions made with other settings ({diff}); evaluate into another "
            f"--out, or remove {out} to start over"
        )


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
