"""Compare two evaluations: side-by-side metrics with CIs, and McNemar's paired test on the shared items.

Each summary.json is read with the predictions.jsonl beside it (written by :mod:`echoink.eval.evaluate`).
The paired test uses one correct/wrong outcome per item: the single decode, or the majority vote when
an evaluation drew K > 1 samples.

Items are paired by id, which means something only on the same split: two summaries whose splits'
SHA-256 (``data_sha256``) differ are refused unless ``force`` (item "3" of a video split is not item
"3" of an image split). Any difference in prompt, decoding or media settings is listed in the result
(``differences``) and the printed table, since it, not the model, may explain the gap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..bounded import read_json
from ..errors import UserError
from ..scoring.rewards import parse_answer
from .evaluate import PREDICTIONS, read_predictions
from .stats import majority_vote, mcnemar

METRICS = (
    "accuracy",
    "majority_accuracy",
    "format_rate",
    "unparseable_rate",
    "mean_length",
    "truncated_rate",
)
EXACT_BELOW = 25
"""Discordant pairs below which McNemar's exact binomial test is the headline p-value (chi-squared above)."""


def item_outcomes(rows: list[dict[str, Any]], condition: str = "none") -> dict[str, bool]:
    """id -> correct for one condition: the single decode, or the majority vote of K samples."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["condition"] == condition:
            by_id.setdefault(r["id"], []).append(r)
    outcomes = {}
    for item, group in by_id.items():
        if len(group) == 1:
            outcomes[item] = bool(group[0]["correct"])
        else:
            gold = parse_answer(f"<answer>{group[0]['answer']}</answer>")
            group.sort(key=lambda r: r["sample"])
            outcomes[item] = majority_vote([r["pred"] for r in group]) == gold
    return outcomes


def paired_table(a: dict[str, bool], b: dict[str, bool]) -> dict[str, int]:
    """2x2 counts on the ids both have: both right, only A right (b), only B right (c), both wrong."""
    shared = a.keys() & b.keys()
    return {
        "shared": len(shared),
        "both_right": sum(a[i] and b[i] for i in shared),
        "only_a": sum(a[i] and not b[i] for i in shared),
        "only_b": sum(b[i] and not a[i] for i in shared),
        "both_wrong": sum(not a[i] and not b[i] for i in shared),
    }


def _overlap(ci_a: list[float] | None, ci_b: list[float] | None) -> bool | None:
    if not ci_a or not ci_b or any(x is None or math.isnan(x) for x in [*ci_a, *ci_b]):
        return None
    return ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"decoding": {"mode": "greedy"}} -> {"decoding.mode": "greedy"}."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def setting_differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    """{setting: [A's, B's]} for each prompt, decoding or media setting, or the engine that decoded, that
    differs (dotted names). A summary without ``engine`` predates ``--engine``: it decoded with hf."""
    fa, fb = ({**_flat(s.get("settings") or {}), "engine": s.get("engine", "hf")} for s in (a, b))
    return {k: [fa.get(k), fb.get(k)] for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)}


def split_check(paths: list[Path], summaries: list[dict[str, Any]], force: bool) -> str:
    """ "same", "different (forced)" or "unverified" (a summary written before ``data_sha256`` existed);
    a ValueError for different splits without ``force``.

    Without a hash (a summary written before ``data_sha256`` existed) the ``data`` paths are compared
    instead: the same path is "unverified" (its content may have changed), another path is refused
    like another hash, since ids of unrelated splits pair unrelated questions."""
    hashes = [s.get("data_sha256") for s in summaries]
    if None in hashes:
        data = [s.get("data") for s in summaries]
        if None in data or _same_path(*data):
            return "unverified"
        if force:
            return "different (forced)"
        raise UserError(
            f"{paths[0]} ({data[0]}) and {paths[1]} ({data[1]}) record no split hash and name different "
            "splits: pairing their items by id would compare unrelated questions; pass --force to compare anyway"
        )
    if hashes[0] == hashes[1]:
        return "same"
    if not force:
        data = [s.get("data") for s in summaries]
        raise UserError(
            f"{paths[0]} ({data[0]}) and {paths[1]} ({data[1]}) were evaluated on different splits "
            "(data_sha256 differs): pairing their items by id would compare unrelated questions; "
            "pass --force to compare anyway"
        )
    return "different (forced)"


def _same_path(a: Any, b: Any) -> bool:
    """The same split file: equal as written, or resolving to one file (relative to where eval ran)."""
    return a == b or (Path(str(a)).exists() and Path(str(a)).resolve() == Path(str(b)).resolve())


def _read_summary(path: Path) -> dict[str, Any]:
    summary = read_json(path)  # nesting bounded; an error names the file
    if not isinstance(summary, dict) or not isinstance(summary.get("conditions"), dict):
        raise UserError(f"{path}: not an echoink summary.json (no 'conditions' object)")
    return summary


def compare(
    summary_a: str | Path, summary_b: str | Path, condition: str = "none", force: bool = False
) -> dict[str, Any]:
    """Compare two summaries under one condition; returns metrics, CI overlap, setting differences and
    the paired test. (Two suite runs are compared benchmark by benchmark by ``suite.compare_runs``.)"""
    paths = [Path(summary_a), Path(summary_b)]
    summaries = [_read_summary(p) for p in paths]
    split = split_check(paths, summaries, force)
    blocks = []
    for path, summary in zip(paths, summaries, strict=True):
        if condition not in summary["conditions"]:
            raise UserError(f"{path}: no condition {condition!r} (has {', '.join(summary['conditions'])})")
        if "accuracy" not in summary["conditions"][condition]:
            raise UserError(f"{path}: condition {condition!r} is not applicable to that split")
        if not isinstance(summary["conditions"][condition].get("ci95"), list):
            raise UserError(f"{path}: condition {condition!r} has no ci95; not an echoink summary.json")
        blocks.append(summary["conditions"][condition])
    a, b = blocks
    metrics = {m: (a.get(m), b.get(m)) for m in METRICS if m in a or m in b}
    result: dict[str, Any] = {
        "a": str(paths[0]),
        "b": str(paths[1]),
        "labels": [s.get("model", str(p)) for s, p in zip(summaries, paths, strict=True)],
        "condition": condition,
        "metrics": metrics,
        "ci95": (a["ci95"], b["ci95"]),
        "ci_overlap": _overlap(a["ci95"], b["ci95"]),
        "split": split,
        "weights_sha256": [s.get("weights_sha256") for s in summaries],
        "differences": setting_differences(*summaries),
    }
    predictions = [p.parent / PREDICTIONS for p in paths]
    if all(p.exists() for p in predictions):
        outcomes = [_outcomes(p, condition) for p in predictions]
        table = paired_table(*outcomes)
        n = table["shared"]
        result["paired"] = {
            **table,
            "accuracy_a": (table["both_right"] + table["only_a"]) / n if n else math.nan,
            "accuracy_b": (table["both_right"] + table["only_b"]) / n if n else math.nan,
            "p_exact": mcnemar(table["only_a"], table["only_b"], exact=True),
            "p_chi2": mcnemar(table["only_a"], table["only_b"], exact=False),
            "test": "exact" if table["only_a"] + table["only_b"] < EXACT_BELOW else "chi2",
        }
    return result


def _outcomes(path: Path, condition: str) -> dict[str, bool]:
    try:
        return item_outcomes(read_predictions(path), condition)
    except (KeyError, TypeError) as err:  # a row lacking id/condition/correct: name the file, not the key
        raise UserError(f"{path}: not an echoink predictions.jsonl (a row lacks {err})") from None


RATES = frozenset(METRICS) - {"mean_length"}
"""The metrics that are fractions, shown in percent (mean_length is in tokens)."""


def _fmt(value: Any, name: str = "") -> str:
    if value is None:
        return "-"
    if name in RATES:
        return f"{100 * value:.1f}%"
    return f"{value:.1f}" if isinstance(value, float) and abs(value) >= 10 else f"{value:.3f}"


def _diff(name: str, va: Any, vb: Any) -> str:
    if va is None or vb is None:
        return "-"
    return f"{100 * (vb - va):+.1f} pts" if name in RATES else f"{vb - va:+.1f}"


def format_comparison(result: dict[str, Any]) -> str:
    """A plain-text side-by-side table."""
    label_a, label_b = result["labels"]
    lines = [
        f"A: {label_a}  ({result['a']})",
        f"B: {label_b}  ({result['b']})",
        f"condition: {result['condition']}",
        _weights_line(result.get("weights_sha256") or [None, None]),
        *_caveats(result),
    ]
    lines.append(f"{'metric':<20}{'A':>10}{'B':>10}{'B - A':>11}")
    for name, (va, vb) in result["metrics"].items():
        lines.append(f"{name:<20}{_fmt(va, name):>10}{_fmt(vb, name):>10}{_diff(name, va, vb):>11}")
    (la, ha), (lb, hb) = result["ci95"]
    overlap = {True: "overlap", False: "do not overlap", None: "n/a"}[result["ci_overlap"]]
    ci_a, ci_b = (f"[{100 * lo:.1f}%, {100 * hi:.1f}%]" for lo, hi in ((la, ha), (lb, hb)))
    lines.append(f"95% CI: A {ci_a}  B {ci_b}  ({overlap})")
    paired = result.get("paired")
    if paired is None:
        lines.append("paired test: skipped (predictions.jsonl missing next to a summary)")
        return "\n".join(lines)
    lines += [
        f"paired on {paired['shared']} shared items:    B right   B wrong",
        f"                          A right {paired['both_right']:>8} {paired['only_a']:>9}",
        f"                          A wrong {paired['only_b']:>8} {paired['both_wrong']:>9}",
        f"McNemar: exact p = {paired['p_exact']:.4g}, chi2 (continuity-corrected) p = {paired['p_chi2']:.4g}"
        f"  [headline: {paired['test']}]",
    ]
    return "\n".join(lines)


def _weights_line(hashes: list[str | None]) -> str:
    """Both weights' SHA-256 (eval/weights.py), first 12 digits; "the same weights" when they agree."""
    a, b = (h[:12] if h else "not recorded" for h in hashes)
    same = "  (the same weights)" if hashes[0] and hashes[0] == hashes[1] else ""
    return f"weights sha256: A {a}  B {b}{same}"


def _caveats(result: dict[str, Any]) -> list[str]:
    """What the reader must know before trusting the gap: the split check and any setting that differs."""
    split = {
        "same": "split: the same file (SHA-256)",
        "unverified": "split: not verified (a summary without data_sha256; re-run its eval to record it)",
        "different (forced)": "split: DIFFERENT files, compared with --force; the paired test pairs unrelated items",
    }[result.get("split", "unverified")]
    diffs = result.get("differences", {})
    if not diffs:
        return [split, "settings: the same prompt, decoding and media settings"]
    return [split, "settings differ (A vs B):", *(f"  {k}: {va} vs {vb}" for k, (va, vb) in diffs.items())]
