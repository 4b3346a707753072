"""One model on every imported benchmark: ``echoink eval --model M --suite DIR --out OUT``.

DIR holds splits written by ``echoink data import`` (``omnibench.json``, ``mmau.json``, ...). Each is
evaluated into ``OUT/<name>/`` (predictions.jsonl, summary.json, as ``echoink eval --data`` writes
them) with the ablations of the modalities its rows carry, and ``OUT/suite.json`` / ``OUT/suite.md``
gather per benchmark: n, strict accuracy with its 95% CI, the benchmark's official score, the ablation
drops, and, when the model's recipe card names its training split, how many items overlap it and the
accuracy without them. ``echoink compare A/suite.json B/suite.json`` runs McNemar per benchmark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bounded import read_json_object
from ..data import read_rows
from ..data.importers import BENCHMARKS
from ..data.overlap import split_overlap
from ..errors import UserError
from ..outdir import check_output_dir
from .compare import compare, format_comparison, item_outcomes
from .evaluate import PREDICTIONS, SETTINGS, SUMMARY, ModelOnce, evaluate, read_predictions
from .weights import weights_fingerprint

SUITE, SUITE_MD = "suite.json", "suite.md"
_CARRIES = {"image_audio": {"audio", "image"}, "audio": {"audio"}, "image": {"image"},
            "video_audio": {"audio", "video"}, "video": {"video"}, "text": set()}  # fmt: skip


def suite_splits(suite_dir: str | Path) -> dict[str, Path]:
    """The imported splits in ``suite_dir``, by benchmark name."""
    found = {
        n: Path(suite_dir) / f"{n}.json"
        for n in BENCHMARKS.names()
        if (Path(suite_dir) / f"{n}.json").is_file()
    }
    if not found:
        names = ", ".join(f"{n}.json" for n in BENCHMARKS.names())
        raise UserError(f"{suite_dir}: no imported benchmark split ({names}); see `echoink data import`")
    return found


def carried(split: Path) -> set[str]:
    """The modalities the split's rows carry (what an ablation can remove)."""
    rows = read_rows(split)
    return set().union(
        *(_CARRIES.get(r.get("data_type", "image_audio"), set()) for r in rows if isinstance(r, dict))
    )


def run_suite(
    model_dir: str | Path,
    suite_dir: str | Path,
    out_dir: str | Path,
    ablate: Sequence[str] = ("audio", "image", "video"),
    train_split: str | Path | None = None,
    **eval_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate every imported split with one loaded model (and one fingerprint of its weights);
    write and return suite.json (and suite.md)."""
    out = Path(out_dir)
    check_output_dir(out, "--out", "eval --suite", own=(SUITE, f"*/{SETTINGS}"))  # resumes its own folder
    benchmarks = {}
    shared = ModelOnce(model_dir, eval_kwargs.pop("engine", "hf"))
    weights = weights_fingerprint(model_dir)
    try:
        for name, split in suite_splits(suite_dir).items():
            wanted = [a for a in ablate if a in carried(split)]
            summary = evaluate(model_dir, split, out / name, ablate=wanted, engine=shared.engine,
                               shared=shared, weights_sha256=weights, name=name, **eval_kwargs)  # fmt: skip
            benchmarks[name] = _entry(summary, out / name, split, train_split)
    finally:
        shared.close()
    suite = {"model": str(model_dir), "suite": str(suite_dir), "train_split": _str(train_split),
             "weights_sha256": weights, "benchmarks": benchmarks}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / SUITE).write_text(json.dumps(suite, indent=1))
    (out / SUITE_MD).write_text(format_suite(suite))
    return suite


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _entry(summary: dict[str, Any], out: Path, split: Path, train_split: str | Path | None) -> dict[str, Any]:
    official = summary.get("official", {})
    ablations = {c: b for c, b in summary["conditions"].items() if c != "none" and "drop" in b}  # applicable
    entry = {
        "n": summary["n_items"],
        "skipped_rows": summary["skipped_rows"],
        "accuracy": summary["accuracy"],
        "ci95": summary["ci95"],
        "official": {"rule": official.get("rule"), "accuracy": official.get("accuracy")},
        "drops": {c: b["drop"] for c, b in ablations.items()},
        "drop_p": {c: b["drop_p"] for c, b in ablations.items()},
        "summary": str(out / SUMMARY),
    }
    if train_split is not None:
        entry["overlap"] = _overlap(Path(train_split), split, out)
    return entry


def _overlap(train_split: Path, split: Path, out: Path) -> dict[str, Any]:
    """Items of the benchmark that the training split also holds, and the accuracy without them."""
    if not train_split.exists():
        return {"error": f"training split {train_split} not found"}
    matches = split_overlap(train_split, split)
    shared = {m.id_b for m in matches}
    outcomes = item_outcomes(read_predictions(out / PREDICTIONS), "none")
    rest = [ok for item, ok in outcomes.items() if item not in shared]
    return {
        "items": len(shared),
        "ids": sorted(shared)[:20],
        "media": {v: sum(m.media == v for m in matches) for v in ("identical", "different", "n/a")},
        "accuracy_without": sum(rest) / len(rest) if rest else math.nan,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def format_suite(suite: dict[str, Any]) -> str:
    """The suite as a Markdown table (suite.md)."""
    kinds = sorted({c for b in suite["benchmarks"].values() for c in b["drops"]})
    head = [
        "benchmark",
        "n",
        "strict accuracy [95% CI]",
        "official score (rule)",
        *(f"drop: {k}" for k in kinds),
    ]
    if suite["train_split"]:
        head += ["overlap with training", "accuracy without overlap"]
    lines = [f"model `{suite['model']}`, suite `{suite['suite']}`", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]  # fmt: skip
    for name, b in suite["benchmarks"].items():
        lo, hi = b["ci95"]
        cells = [name, str(b["n"]), f"{_pct(b['accuracy'])} [{_pct(lo)}, {_pct(hi)}]",
                 f"{_pct(b['official']['accuracy'])} ({b['official']['rule']})"]  # fmt: skip
        cells += [f"{100 * b['drops'][k]:+.1f}" if k in b["drops"] else "n/a" for k in kinds]
        if suite["train_split"]:
            o = b.get("overlap", {})
            cells += [o.get("error") or str(o["items"]), _pct(o.get("accuracy_without"))]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "Drops are points of strict accuracy lost with that modality removed; n/a: the rows do not carry it."
    )
    return "\n".join([*lines, "", note]) + "\n"


def is_suite(path: str | Path) -> bool:
    path = Path(path)
    return path.name == SUITE or (path.is_dir() and (path / SUITE).is_file())


def compare_suites(
    a: str | Path, b: str | Path, condition: str = "none", force: bool = False
) -> dict[str, Any]:
    """``compare`` (McNemar on shared items) for every benchmark both suite runs evaluated; each
    benchmark's splits must be the same file (``compare``'s check) unless ``force``."""
    paths = [Path(p) / SUITE if Path(p).is_dir() else Path(p) for p in (a, b)]
    suites = [read_json_object(p, "an echoink suite.json") for p in paths]
    shared = [n for n in suites[0]["benchmarks"] if n in suites[1]["benchmarks"]]
    if not shared:
        raise UserError(f"{paths[0]} and {paths[1]} share no benchmark")
    return {
        "a": str(paths[0]),
        "b": str(paths[1]),
        "benchmarks": {
            n: compare(*(p.parent / n / SUMMARY for p in paths), condition, force) for n in shared
        },
    }


def format_suite_comparison(result: dict[str, Any]) -> str:
    lines = [f"A: {result['a']}", f"B: {result['b']}", ""]
    for name, r in result["benchmarks"].items():
        lines += [f"== {name}", format_comparison(r), ""]
    return "\n".join(lines).rstrip()


def compare_runs(
    a: str | Path, b: str | Path, condition: str = "none", force: bool = False
) -> dict[str, Any]:
    """``echoink compare``: two suite runs benchmark by benchmark, else two summaries (``compare``)."""
    if is_suite(a) and is_suite(b):
        return compare_suites(a, b, condition, force)
    return compare(a, b, condition, force)


def format_run_comparison(result: dict[str, Any]) -> str:
    """The plain-text table of ``compare_runs``'s result (one per benchmark for two suite runs)."""
    return format_suite_comparison(result) if "benchmarks" in result else format_comparison(result)
