"""compare(): the side-by-side table and McNemar's paired test on a known 2x2 table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.eval.compare import compare, format_comparison, item_outcomes
from echoink.eval.stats import wilson_interval


def _write_eval(root: Path, outcomes: dict[str, bool], extra_ids: tuple[str, ...] = ()) -> Path:
    """An eval folder with one greedy prediction per id (answer A) and a matching minimal summary."""
    root.mkdir(parents=True)
    rows = [
        {"id": i, "condition": "none", "sample": 0, "pred": "A" if ok else "B", "answer": "A", "correct": ok}
        for i, ok in outcomes.items()
    ]
    rows += [
        {"id": i, "condition": "none", "sample": 0, "pred": None, "answer": "A", "correct": False}
        for i in extra_ids
    ]
    (root / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    k, n = sum(r["correct"] for r in rows), len(rows)
    block = {"accuracy": k / n, "ci95": list(wilson_interval(k, n)), "format_rate": 1.0, "mean_length": 40.0}
    path = root / "summary.json"
    path.write_text(json.dumps({"model": root.name, "conditions": {"none": block}}))
    return path


# Known table on 30 shared items: both right 10, only A 2, only B 9, both wrong 9.
CELLS = [(True, True)] * 10 + [(True, False)] * 2 + [(False, True)] * 9 + [(False, False)] * 9


@pytest.fixture
def two_evals(tmp_path: Path) -> tuple[Path, Path]:
    a = _write_eval(
        tmp_path / "base", {f"q{i}": ca for i, (ca, _) in enumerate(CELLS)}, extra_ids=("only_in_a",)
    )
    b = _write_eval(tmp_path / "rl", {f"q{i}": cb for i, (_, cb) in enumerate(CELLS)})
    return a, b


def test_mcnemar_on_a_known_table(two_evals):
    result = compare(*two_evals)
    paired = result["paired"]
    assert (paired["shared"], paired["both_right"], paired["only_a"], paired["only_b"], paired["both_wrong"]) == (
        30, 10, 2, 9, 9,
    )  # fmt: skip
    # exact: two-sided binomial, 2 of 11 discordant pairs at p = 1/2: 2 * (C(11,0)+C(11,1)+C(11,2)) / 2^11
    assert paired["p_exact"] == pytest.approx(2 * (1 + 11 + 55) / 2**11)
    # chi-squared with continuity correction: (|2 - 9| - 1)^2 / 11 = 36/11 on 1 df
    assert paired["p_chi2"] == pytest.approx(math.erfc(math.sqrt(36 / 11 / 2)))
    assert paired["test"] == "exact" and paired["accuracy_a"] == pytest.approx(12 / 30)
    assert result["metrics"]["accuracy"] == pytest.approx((12 / 31, 19 / 30))
    assert result["ci_overlap"] is True
    text = format_comparison(result)
    assert "McNemar: exact p = 0.06543" in text and "paired on 30 shared items" in text


def test_majority_vote_outcome_for_k_samples():
    rows = [
        {"id": "x", "condition": "none", "sample": j, "pred": p, "answer": "C", "correct": p == "C"}
        for j, p in enumerate(["C", "B", "C", None])
    ] + [{"id": "y", "condition": "none", "sample": 0, "pred": "A", "answer": "A", "correct": True}]
    assert item_outcomes(rows) == {"x": True, "y": True}


def test_compare_cli_and_missing_predictions(two_evals, tmp_path):
    a, b = two_evals
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--json", str(tmp_path / "cmp.json")])
    assert result.exit_code == 0, result.output
    assert (
        "B - A" in result.output and json.loads((tmp_path / "cmp.json").read_text())["paired"]["only_b"] == 9
    )
    (b.parent / "predictions.jsonl").unlink()
    assert "paired" not in compare(a, b) and "skipped" in format_comparison(compare(a, b))
    bad = CliRunner().invoke(app, ["compare", str(a), str(b), "--condition", "audio"])
    assert bad.exit_code == 2 and "no condition 'audio'" in bad.output
