"""What the demo's numbers can and cannot say (issue 37, item 3): the paired test, pass@k, the desync
diagnostic, the share of wrong cold-start targets, and the verdict words that follow from them.

Pure functions over evaluation folders and split files (no model), so each can be tested with crafted
numbers. ``echoink_lab.demo`` calls them and puts their results into ``summary.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

LETTERS = "ABCD"
ALPHA = 0.05


def paired_vs_base(base_dir: Path, model_dir: Path) -> dict[str, Any]:
    """McNemar on the items both evaluations share (no ablation): {shared, only_base, only_model, p}.
    Exact binomial below ``compare.EXACT_BELOW`` discordant pairs, chi-squared above (as ``echoink compare``)."""
    from echoink.eval.compare import EXACT_BELOW, item_outcomes, paired_table
    from echoink.eval.evaluate import PREDICTIONS, read_predictions
    from echoink.eval.stats import mcnemar

    table = paired_table(
        item_outcomes(read_predictions(base_dir / PREDICTIONS)),
        item_outcomes(read_predictions(model_dir / PREDICTIONS)),
    )
    b, c = table["only_a"], table["only_b"]
    return {
        "shared": table["shared"],
        "only_base": b,
        "only_model": c,
        "p": mcnemar(b, c, b + c < EXACT_BELOW),
    }


def intervals_apart(a: list[float], b: list[float]) -> bool:
    """Whether two 95% intervals are disjoint (a NaN bound: not apart)."""
    if any(x is None or math.isnan(x) for x in [*a, *b]):
        return False
    return a[1] < b[0] or b[1] < a[0]


def difference_words(gain: float, p: float, apart: bool) -> str:
    """ "a real gain" / "a real loss" only when the paired test says so (p < 0.05) AND the intervals are
    apart; a significant paired test with overlapping intervals is named as such, not as a gain."""
    if p < ALPHA and apart:
        return f"a real {'gain' if gain > 0 else 'loss'} (paired McNemar p = {p:.3g}, 95% intervals apart)"
    if p < ALPHA:
        return (
            f"a paired difference (McNemar p = {p:.3g}) within overlapping 95% intervals: "
            "not called a real gain"
        )
    return f"no measurable difference (paired McNemar p = {p:.3g})"


def reselection_words(base_pass: dict[str, float] | None, grpo_accuracy: float, base_accuracy: float) -> str:
    """ "re-selection" when GRPO gained over the base's greedy accuracy and the base's best pass@k already
    reaches GRPO's one-answer accuracy: GRPO then picks out a behaviour the base samples, and the gain
    says nothing about a new ability. Without a gain there is nothing to explain."""
    if grpo_accuracy <= base_accuracy:
        return "GRPO's accuracy is not above the base's: no gain to call re-selection or teaching."
    if not base_pass:
        return "The base's pass@k was not measured, so re-selection cannot be told from teaching."
    k, best = max(base_pass.items(), key=lambda kv: int(kv[0]))
    if best >= grpo_accuracy:
        return (
            f"The base's pass@{k} ({100 * best:.1f}%) already reaches GRPO's pass@1 ({100 * grpo_accuracy:.1f}%): "
            "re-selection of answers the base samples, not a new ability."
        )
    return (
        f"GRPO's pass@1 ({100 * grpo_accuracy:.1f}%) is above the base's pass@{k} ({100 * best:.1f}%): "
        "more than re-selection among the base's samples."
    )


def seed_verdict(base: dict[str, Any], grpo: dict[str, Any], paired: dict[str, Any]) -> dict[str, Any]:
    """One GRPO seed against the base: the gain, the paired test, the intervals, and the words."""
    gain = grpo["accuracy"] - base["accuracy"]
    apart = intervals_apart(base["ci95"], grpo["ci95"])
    real = paired["p"] < ALPHA and apart
    return {"gain_points": 100 * gain, "p": paired["p"], "intervals_apart": apart, "real": real,
            "words": difference_words(gain, paired["p"], apart)}  # fmt: skip


def shifted_letter(row: dict[str, Any], shift_s: float) -> str | None:
    """The option letter of the colour on screen where the shifted tone lands: the soundtrack rolled by
    ``shift_s`` seconds around the clip (``data.video.shifted``), so the tone's onset moves to
    (onset + shift) mod clip length. None for a row without ``second_colours`` (an older benchmark)."""
    colours = row.get("second_colours")
    if not colours:
        return None
    second = int(((row["tone_onset"] + shift_s) % len(colours)) // 1)
    names = [o.split(". ", 1)[1] for o in row["options"]]
    colour = colours[second]
    return LETTERS[names.index(colour)] if colour in names else None


def desync_diagnostic(eval_dir: Path, test_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Among the desync condition's answers: the share naming the shifted second's colour (what a model
    that reads the sound's moment answers), the share naming the gold colour, and the unparseable rate.
    The demo's shift is the eval's default, half the clip (2 s of a 4 s clip)."""
    from echoink.eval.evaluate import PREDICTIONS, read_predictions

    rows = [r for r in read_predictions(eval_dir / PREDICTIONS) if r["condition"] == "desync"]
    by_id = {str(r["problem_id"]): r for r in test_rows}
    targets = {
        i: shifted_letter(by_id[i], len(by_id[i]["second_colours"]) / 2)
        for i in by_id
        if by_id[i].get("second_colours")
    }
    scored = [r for r in rows if targets.get(r["id"])]
    if not scored:
        return None
    n = len(scored)
    return {
        "n": n,
        "shifted_colour_share": sum(r["pred"] == targets[r["id"]] for r in scored) / n,
        "gold_share": sum(bool(r["correct"]) for r in scored) / n,
        "unparseable_rate": sum(r["pred"] is None for r in scored) / n,
    }


def glance_targets(glance_path: Path) -> dict[str, Any]:
    """The glance stage's training split, counted: items, glance traces, and those whose trace ends in a
    letter other than the gold one (the share of wrong-letter targets the stage trains on)."""
    from echoink.scoring.rewards import parse_answer

    rows = json.loads(glance_path.read_text(encoding="utf-8"))
    glance = [r for r in rows if r["reasoning"].startswith("<think>The screen starts")]
    wrong = sum(parse_answer(r["reasoning"]) != parse_answer(r["solution"]) for r in glance)
    return {
        "items": len(rows),
        "glance": len(glance),
        "wrong": wrong,
        "wrong_share": wrong / max(len(rows), 1),
    }
