"""Analyse a run directory: Fig.-4-style training curves and aha-moment rates.

Reads what exists of ``metrics.jsonl`` (training curves), ``rollouts.jsonl`` (training completions) and
``predictions.jsonl`` (an evaluation), and writes into ``RUN_DIR/analysis/``:
  curves.png     reward (+- std), each reward by name, completion length, KL, clip ratios,
                 frac_reward_zero_std (and sampled-token NLL, grad norm when logged) against step
  aha_rate.png   share of rollouts with an aha moment per step, overall and among correct ones
  aha.json       the rates (overall, per step, among correct vs wrong) and the top examples
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from ..errors import UserError

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402

from ..jsonl import read_jsonl  # noqa: E402
from .aha import detect  # noqa: E402

log = logging.getLogger(__name__)

FIXED_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("completion length", ("completions/mean_length",)),
    ("KL to reference", ("kl",)),
    ("clip ratio", ("clip_ratio/low", "clip_ratio/high", "clip_ratio/region")),
    ("groups with zero reward std", ("frac_reward_zero_std",)),
    ("sampled-token NLL", ("sampled_token_nll", "entropy")),  # "entropy": its name before 2026-12
    ("grad norm", ("grad_norm",)),
    ("validation (greedy)", ("eval/accuracy", "eval/format_rate")),
)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; a row that is not an object with an integer ``step`` (every row the
    trainer writes has one) is a ValueError naming file and row, since curves are plotted against it."""
    rows = read_jsonl(path)
    for index, row in enumerate(rows):
        step = row.get("step") if isinstance(row, dict) else None
        if not isinstance(step, int) or isinstance(step, bool):
            raise UserError(f"{path}: row {index}: a metrics row needs an integer 'step', got {step!r}")
    return rows


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            steps.append(r["step"])
            values.append(float(v))
    return steps, values


def curve_panels(metrics: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(title, keys) of every panel that has data: reward, each ``rewards/<name>/mean``, then FIXED_PANELS."""
    keys = {k for r in metrics for k, v in r.items() if isinstance(v, int | float)}
    panels = [("reward", ["reward"])] if "reward" in keys else []
    names = sorted(k for k in keys if k.startswith("rewards/") and k.endswith("/mean"))
    panels += [(f"reward: {k.split('/')[1]}", [k]) for k in names]
    panels += [(title, [k for k in group if k in keys]) for title, group in FIXED_PANELS]
    return [(title, ks) for title, ks in panels if ks]


def plot_curves(metrics: Sequence[dict[str, Any]], path: Path) -> list[str]:
    """Write one PNG with a panel per logged quantity against step; returns the panel titles."""
    panels = curve_panels(metrics)
    if not panels:
        return []
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        for key in keys:
            steps, values = _series(metrics, key)
            ax.plot(steps, values, label=key, linewidth=1.2, marker="o", markersize=3)  # one point shows too
            if key == "reward":
                s_steps, std = _series(metrics, "reward_std")
                if s_steps == steps:  # a band only when both were logged at the same steps
                    lo = [v - s for v, s in zip(values, std, strict=True)]
                    hi = [v + s for v, s in zip(values, std, strict=True)]
                    ax.fill_between(steps, lo, hi, alpha=0.2, label="± std")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1 or keys == ["reward"]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [title for title, _ in panels]


def is_correct(row: dict[str, Any]) -> bool | None:
    """A row's correctness: ``correct`` (predictions) or ``rewards/accuracy`` == 1 (rollouts); None if neither."""
    if "correct" in row:
        return bool(row["correct"])
    acc = row.get("rewards/accuracy")
    return None if acc is None else acc == 1.0


def _rate(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def aha_stats(rows: Sequence[dict[str, Any]], top: int = 5) -> dict[str, Any]:
    """Aha rates over completions: overall, per step, among correct and wrong ones; and the top examples.

    Top examples: correct ones first, then by the number of signals (markers + switch), latest step first.
    """
    found = [detect(r["completion"]) for r in rows]
    flags = [d.found for d in found]
    steps = sorted({r.get("step", 0) for r in rows})
    by_step = []
    for step in steps:
        idx = [i for i, r in enumerate(rows) if r.get("step", 0) == step]
        ok = [i for i in idx if is_correct(rows[i])]
        by_step.append(
            {
                "step": step,
                "n": len(idx),
                "rate": _rate([flags[i] for i in idx]),
                "rate_correct": _rate([flags[i] for i in ok]),
            }
        )
    correct = [f for f, r in zip(flags, rows, strict=True) if is_correct(r) is True]
    wrong = [f for f, r in zip(flags, rows, strict=True) if is_correct(r) is False]
    ranked = sorted(
        (i for i, f in enumerate(flags) if f),
        key=lambda i: (
            bool(is_correct(rows[i])),
            len(found[i].markers) + (found[i].switch is not None),
            rows[i].get("step", 0),
        ),
        reverse=True,
    )
    examples, seen = [], set()
    for i in ranked:
        if rows[i]["completion"] in seen or len(examples) >= top:
            continue
        seen.add(rows[i]["completion"])
        examples.append(
            {
                "id": rows[i].get("id"),
                "step": rows[i].get("step"),
                "correct": is_correct(rows[i]),
                "markers": [m.text for m in found[i].markers],
                "switch": found[i].switch,
                "completion": rows[i]["completion"],
            }
        )
    return {
        "n": len(rows),
        "rate": _rate(flags),
        "n_correct": len(correct),
        "rate_correct": _rate(correct),
        "n_wrong": len(wrong),
        "rate_wrong": _rate(wrong),
        "with_switch": sum(d.switch is not None for d in found),
        "by_step": by_step,
        "top_examples": examples,
    }


def plot_aha_rate(by_step: Sequence[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3))
    for key, label in (("rate", "all completions"), ("rate_correct", "correct completions")):
        pts = [(s["step"], s[key]) for s in by_step if s[key] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
    ax.set(xlabel="step", ylabel="share with an aha moment", title="aha moments", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def analyze(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write curves and aha analysis for ``run_dir`` (a training run or an eval folder); returns what was done."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run / "analysis"
    # Every file is read before anything is written: a damaged one leaves no half-made folder.
    metrics = read_metrics(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else None
    aha: dict[str, Any] = {}
    for name in ("rollouts", "predictions"):
        path = run / f"{name}.jsonl"
        if path.exists():
            rows = [r for r in read_jsonl(path) if r.get("condition", "none") == "none"]
            aha[name] = aha_stats(rows)
    if metrics is not None or aha:
        out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"run_dir": str(run), "files": []}
    if metrics is not None:
        result["panels"] = plot_curves(metrics, out / "curves.png")
        if result["panels"]:
            result["files"].append(str(out / "curves.png"))
    if "rollouts" in aha and aha["rollouts"]["n"]:
        plot_aha_rate(aha["rollouts"]["by_step"], out / "aha_rate.png")
        result["files"].append(str(out / "aha_rate.png"))
    if aha:
        (out / "aha.json").write_text(json.dumps(aha, indent=1))
        result["files"].append(str(out / "aha.json"))
    result["aha"] = aha
    if not result["files"]:
        log.warning("%s: no metrics.jsonl, rollouts.jsonl or predictions.jsonl to analyse", run)
    return result


def format_analysis(result: dict[str, Any]) -> str:
    lines = [f"analysis of {result['run_dir']}"]
    if result.get("panels"):
        lines.append("curves: " + ", ".join(result["panels"]))
    for name, s in result["aha"].items():

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}%"

        lines.append(
            f"aha moments in {name}: {pct(s['rate'])} of {s['n']} (correct {pct(s['rate_correct'])} of "
            f"{s['n_correct']}, wrong {pct(s['rate_wrong'])} of {s['n_wrong']}; answer switches {s['with_switch']})"
        )
    lines += [f"written: {f}" for f in result["files"]]
    return "\n".join(lines)
