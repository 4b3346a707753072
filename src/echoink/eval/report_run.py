"""What a report gathers from a run: its training folder, its evals (inside it or named), and a header.

``echoink report RUN`` accepts a training run directory (metrics.jsonl, config.yaml), an eval folder
(eval_config.json, summary.json), or a folder holding such folders one level down (``make demo``'s
``runs/demo``: ``grpo/``, ``eval_base/``, ``eval_grpo/``); ``--eval DIR`` adds evals kept elsewhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..bounded import read_json_object, read_yaml
from ..errors import UserError
from ..jsonl import read_jsonl


def is_eval(folder: Path) -> bool:
    return (folder / "eval_config.json").is_file() and (folder / "summary.json").is_file()


def is_training(folder: Path) -> bool:
    return (folder / "metrics.jsonl").is_file() or (folder / "rollouts.jsonl").is_file()


def gather(run: Path, named: Sequence[str | Path] = ()) -> tuple[Path | None, dict[str, Path]]:
    """(the training folder or None, {label: eval folder}) for ``run`` plus the ``named`` evals."""
    inside = [run, *sorted(p for p in run.iterdir() if p.is_dir())] if run.is_dir() else []
    ranked = sorted((p for p in inside if is_training(p)), key=lambda p: not (p / "rollouts.jsonl").is_file())
    training = ranked[0] if ranked else None  # GRPO's run (rollouts) before an SFT stage's (metrics only)
    evals = {_label(p, run): p for p in inside if is_eval(p)}
    for folder in map(Path, named):
        if not is_eval(folder):
            raise UserError(f"--eval {folder}: not an eval folder (no eval_config.json and summary.json)")
        evals[_label(folder, run)] = folder
    return training, evals


def _label(folder: Path, run: Path) -> str:
    return folder.name if folder != run else run.resolve().name


def read_summaries(evals: dict[str, Path]) -> dict[str, dict[str, Any]]:
    # bounded: a damaged summary.json is one line, and is read before the report writes anything
    return {
        label: read_json_object(folder / "summary.json", "an echoink summary.json")
        for label, folder in evals.items()
    }


def header(training: Path | None, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Model, recipe, G, lr, steps and wall time of the training run; the evals' models and weights."""
    facts: dict[str, Any] = {}
    if training is not None and (training / "config.yaml").is_file():
        cfg = read_yaml(training / "config.yaml") or {}
        cfg = cfg if isinstance(cfg, dict) else {}
        model, rollout, train = (cfg.get(k) or {} for k in ("model", "rollout", "train"))
        facts |= {"model": model.get("path"), "recipe": str(training / "config.yaml"),
                  "G": rollout.get("num_generations"), "lr": train.get("lr"),
                  "steps": train.get("max_steps")}  # fmt: skip
    if training is not None and (training / "metrics.jsonl").is_file():
        facts |= _progress(read_jsonl(training / "metrics.jsonl", repair=False))
    for label, s in summaries.items():
        weights = s.get("weights_sha256")
        facts[f"eval {label}"] = f"{s.get('model')} on {s.get('data')}" + (
            f" (weights {weights[:12]})" if weights else ""
        )
    return facts


def _progress(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps done, and the wall time as the mean logged step time times the steps (logging may skip steps)."""
    steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
    times = [r["step_time"] for r in rows if isinstance(r.get("step_time"), int | float)]
    if not steps:
        return {}
    out: dict[str, Any] = {"steps done": max(steps)}
    if times and all(math.isfinite(t) for t in times):
        minutes = sum(times) / len(times) * max(steps) / 60
        out["wall time"] = f"{minutes:.1f} min (mean step time x steps)"
    return out


def header_html(facts: dict[str, Any]) -> str:
    if not facts:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    return f'<table class="header">{rows}</table>'
