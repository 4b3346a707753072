"""The evaluation summary: accuracy with CIs per condition and per metadata group, ablation drops
with McNemar p-values, and the plain-text table shared by the CLI and the HTML report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..data import Sample
from ..scoring.predict import short_metadata
from ..scoring.rewards import parse_answer
from .paper import is_paper_decoding, lenient_accuracy
from .stats import majority_vote, mcnemar, mean_and_interval, pass_at_k

NOT_APPLICABLE = "not applicable: no item carries what this ablation removes"
ALWAYS_GROUPED = ("needs", "shortcut")  # shortcut: a split of broken items only still reports its part


def _group_fields(samples: Sequence[Sample]) -> list[str]:
    """Metadata fields worth grouping by: present on every item, 2 to 20 values, fewer than the items.
    ``needs`` and ``shortcut`` always count (one value too): the modality analysis reads accuracy on
    "both" items, the shortcut analysis on "broken" ones."""
    if not samples:
        return []
    keys = set.intersection(*(set(short_metadata(s)) for s in samples))
    cap = min(20, len(samples) - 1)
    return sorted(k for k in keys if k in ALWAYS_GROUPED or 2 <= len({s.metadata[k] for s in samples}) <= cap)


def _accuracy_block(scores: list[list[float]]) -> dict[str, Any]:
    acc, ci, method = mean_and_interval(scores)
    return {"n": len(scores), "accuracy": acc, "ci95": list(ci), "ci_method": method}


def summarize(
    rows: Sequence[dict[str, Any]], samples: Sequence[Sample], conditions: Sequence[str]
) -> dict[str, Any]:
    """Summary of the rows that belong to ``samples``.

    Per condition: n, accuracy, ci95 + ci_method (Wilson for one sample per item, item bootstrap for K),
    for K > 1 majority_accuracy and pass@k, format_rate, unparseable_rate, mean_length,
    truncated_rate, ``by`` (accuracy per value of each grouping metadata field) and, for ablations,
    ``drop`` (accuracy with nothing ablated minus this one), ``drop_by`` and ``drop_p`` (McNemar on the
    per-item correctness: the single decode, or the majority vote for K > 1).
    """
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["condition"], r["id"]), []).append(r)
    gold = {s.id: parse_answer(s.solution) for s in samples}
    fields = _group_fields(samples)
    result: dict[str, Any] = {"n_items": len(samples), "group_fields": fields, "conditions": {}}
    per_item: dict[str, dict[str, bool]] = {}
    scores: dict[str, dict[str, list[float]]] = {}  # condition -> item -> correctness of its K samples
    for condition in conditions:
        groups = [sorted(by_key.get((condition, s.id), []), key=lambda r: r["sample"]) for s in samples]
        pairs = [(s, g) for s, g in zip(samples, groups, strict=True) if g]
        if not pairs and condition != "none":  # no item carries what this ablation removes
            result["conditions"][condition] = {"n": 0, "applicable": False, "note": NOT_APPLICABLE}
            continue
        scores[condition] = {s.id: [float(r["correct"]) for r in g] for s, g in pairs}
        flat = [r for _, g in pairs for r in g]
        block = _accuracy_block([[float(r["correct"]) for r in g] for _, g in pairs])
        k = max((len(g) for _, g in pairs), default=1)
        votes = {s.id: majority_vote([r["pred"] for r in g]) == gold[s.id] for s, g in pairs}
        per_item[condition] = votes if k > 1 else {s.id: g[0]["correct"] for s, g in pairs}
        if k > 1:
            block["samples"] = k
            block["majority_accuracy"] = sum(votes.values()) / max(len(votes), 1)
            ks = sorted({1, k, *(2**i for i in range(1, k.bit_length()) if 2**i < k)})
            block["pass@k"] = {
                str(j): sum(pass_at_k(len(g), sum(r["correct"] for r in g), j) for _, g in pairs) / len(pairs)
                for j in ks
            }
        n = max(len(flat), 1)
        block["format_rate"] = sum(r["format_ok"] for r in flat) / n
        block["unparseable_rate"] = sum(r["pred"] is None for r in flat) / n
        block["mean_length"] = sum(r["length"] for r in flat) / n
        block["truncated_rate"] = sum(r["truncated"] for r in flat) / n
        block["accuracy_echoink_parser"] = lenient_accuracy(flat)  # the paper's metric, beside the strict one
        block["by"] = {
            f: {
                str(value): _accuracy_block(
                    [[float(r["correct"]) for r in g] for s, g in pairs if s.metadata[f] == value]
                )
                for value in sorted({s.metadata[f] for s, _ in pairs}, key=str)
            }
            for f in fields
        }
        result["conditions"][condition] = block
    _add_drops(result, per_item, scores, {s.id: s.metadata for s in samples})
    base = result["conditions"].get("none", {})
    result.update(accuracy=base.get("accuracy"), ci95=base.get("ci95"))
    return result


def _add_drops(
    result: dict[str, Any],
    per_item: dict[str, dict[str, bool]],
    scores: dict[str, dict[str, list[float]]],
    metadata: dict[str, dict[str, Any]],
) -> None:
    """Drop (accuracy with nothing ablated minus ablated), by group too, and McNemar's p, each on the
    items the ablation ran on: an ablation that applies to some items only is measured on those."""
    if "none" not in scores:
        return
    for condition, block in result["conditions"].items():
        if condition == "none" or condition not in scores:
            continue
        ids = [i for i in scores[condition] if i in scores["none"]]

        def base(keep, ids=ids) -> float:
            kept = [scores["none"][i] for i in ids if keep(i)]
            return sum(sum(s) / len(s) for s in kept) / len(kept) if kept else math.nan

        block["drop"] = base(lambda i: True) - block["accuracy"]
        block["drop_by"] = {
            f: {
                v: base(lambda i, f=f, v=v: str(metadata[i][f]) == v) - b["accuracy"]
                for v, b in values.items()
            }
            for f, values in block["by"].items()
        }
        shared = per_item["none"].keys() & per_item[condition].keys()
        b = sum(per_item["none"][i] and not per_item[condition][i] for i in shared)
        c = sum(not per_item["none"][i] and per_item[condition][i] for i in shared)
        block["drop_p"] = mcnemar(b, c, exact=b + c < 25)


SUMMARY_COLUMNS = ("condition", "accuracy", "95% CI", "drop", "p", "format", "unparseable", "mean length")
_WIDTHS = (30, 9, 18, 8, 8, 8, 12, 12)


def pct(x: float) -> str:
    """A fraction as the tables show it, in percent (as suite.md and compare do): 0.5 -> "50.0%".

    >>> pct(0.5), pct(1 / 3)
    ('50.0%', '33.3%')
    """
    return f"{100 * x:.1f}%"


def points(x: float) -> str:
    """A difference of fractions in percentage points: 0.25 -> "+25.0"."""
    return f"{100 * x:+.1f}"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Formatted table lines of a summary as (kind, cells): kind "condition" or "group" (one cell per
    SUMMARY_COLUMNS), or "extra" (one cell: majority vote and pass@k)."""
    rows: list[tuple[str, list[str]]] = []
    for name, b in summary["conditions"].items():
        if b.get("applicable", True) is False:
            rows.append(("condition", [name, "n/a", NOT_APPLICABLE.split(":")[0], "", "", "", "", ""]))
            rows.append(("extra", [b["note"]]))
            continue
        lo, hi = b["ci95"]
        drop = points(b["drop"]) if "drop" in b else ""
        p = f"{b['drop_p']:.3g}" if "drop_p" in b else ""
        cells = [name, pct(b["accuracy"]), f"[{pct(lo)}, {pct(hi)}]", drop, p]
        cells += [pct(b["format_rate"]), pct(b["unparseable_rate"]), f"{b['mean_length']:.1f}"]
        rows.append(("condition", cells))
        if name != "none" and b["n"] < summary["n_items"]:
            note = f"on the {b['n']} of {summary['n_items']} items that carry what it removes; drop against the same items"
            rows.append(("extra", [note]))
        if "accuracy_echoink_parser" in b:
            note = "EchoInk's lenient parser (reads 'a' as A), for comparison with the paper only"
            rows.append(("extra", [f"accuracy {pct(b['accuracy_echoink_parser'])} under {note}"]))
        if "majority_accuracy" in b:
            passk = "  ".join(f"pass@{j} {pct(v)}" for j, v in b["pass@k"].items())
            rows.append(
                ("extra", [f"majority vote {pct(b['majority_accuracy'])}  {passk}  ({b['samples']} samples)"])
            )
        for f, values in b["by"].items():
            for v, g in values.items():
                lo, hi = g["ci95"]
                rows.append(
                    (
                        "group",
                        [
                            f"  {f}={v}",
                            pct(g["accuracy"]),
                            f"[{pct(lo)}, {pct(hi)}]",
                            "",
                            "",
                            "",
                            "",
                            f"n={g['n']}",
                        ],
                    )
                )
    return rows


def format_summary(summary: dict[str, Any], settings_line: bool = True) -> str:
    """A plain-text table of a summary, one line per condition and per metadata group; without the
    settings line when the caller has printed the settings already (``echoink eval``)."""
    lines = [f"model {summary['model']}  data {summary['data']}  items {summary['n_items']}"]
    if settings_line and (settings := summary.get("settings")) is not None:
        lines.append(_settings_line(settings))
    if (official := summary.get("official")) is not None:  # an imported benchmark (eval/official.py)
        lines.append(
            f"{summary['benchmark']}: official score ({official['rule']}) {pct(official['accuracy'])}"
        )
    lines.append("".join(f"{c:<{w}}" for c, w in zip(SUMMARY_COLUMNS, _WIDTHS, strict=True)).rstrip())
    lines.append("(percent; drop in percentage points against no ablation)")
    for kind, cells in summary_rows(summary):
        line = (
            "  " + cells[0]
            if kind == "extra"
            else "".join(f"{c:<{w}}" for c, w in zip(cells, _WIDTHS, strict=True))
        )
        lines.append(line.rstrip())
    return "\n".join(lines)


def decoding_text(d: dict[str, Any]) -> str:
    """``greedy``, or ``sample x4, T=1.0, top-p 0.95``, labelled when it is EchoInk's decoding."""
    text = (
        "greedy"
        if d["mode"] == "greedy"
        else f"sample x{d['samples']}, T={d['temperature']}, top-p {d['top_p']}"
    )
    return text + (" (EchoInk's RL-model decoding)" if is_paper_decoding(d) else "")


def _settings_line(settings: dict[str, Any]) -> str:
    """Prompt, decoding (labelled when it is EchoInk's) and media budgets, as the predictions were made."""
    decoding = decoding_text(settings["decoding"])
    line = (
        f"prompt {settings['template']}  decoding {decoding}  max_new_tokens {settings['max_new_tokens']}  "
        f"max_pixels {settings['max_pixels']}  max_audio_seconds {settings['max_audio_seconds']}"
    )
    if (video := settings.get("video")) is not None:
        line += (
            f"  video fps {video['fps']}, max_frames {video['max_frames']}, max_pixels {video['max_pixels']}"
        )
    return line
