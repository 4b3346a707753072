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


def _stamp(summary: Path, **fields) -> None:
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps(data | fields))


def test_different_splits_are_refused_unless_forced(two_evals):
    """Pairing by id across two splits (a video split's item 3 against an image split's) compares
    unrelated questions: the split files' SHA-256 must agree, or --force is needed and shown."""
    a, b = two_evals
    _stamp(a, data="video.json", data_sha256="1" * 64)
    _stamp(b, data="image.json", data_sha256="2" * 64)
    with pytest.raises(ValueError, match="different splits"):
        compare(a, b)
    refused = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert refused.exit_code == 2 and "--force" in refused.output and "paired on" not in refused.output
    forced = CliRunner().invoke(app, ["compare", str(a), str(b), "--force"])
    assert forced.exit_code == 0 and "DIFFERENT files" in forced.output
    assert compare(a, b, force=True)["split"] == "different (forced)"
    _stamp(b, data_sha256="1" * 64)
    assert compare(a, b)["split"] == "same"


def test_setting_differences_are_stated(two_evals, tmp_path):
    a, b = two_evals
    greedy = {"template": "reasoning", "decoding": {"mode": "greedy", "top_p": 1.0}, "max_pixels": 50_176}
    paper = {"template": "paper_eval", "decoding": {"mode": "sample", "top_p": 0.95}, "max_pixels": 50_176}
    _stamp(a, settings=greedy)
    _stamp(b, settings=paper)
    result = compare(a, b)
    assert result["differences"] == {
        "decoding.mode": ["greedy", "sample"], "decoding.top_p": [1.0, 0.95], "template": ["reasoning", "paper_eval"],
    }  # fmt: skip
    text = format_comparison(result)
    assert "settings differ (A vs B):" in text and "decoding.mode: greedy vs sample" in text
    _stamp(b, settings=greedy)
    assert "settings: the same" in format_comparison(compare(a, b))
    CliRunner().invoke(app, ["compare", str(a), str(b), "--json", str(tmp_path / "c.json")])
    assert json.loads((tmp_path / "c.json").read_text())["differences"] == {}


def test_a_file_that_is_not_a_summary_is_one_line(two_evals, tmp_path):
    (tmp_path / "list.json").write_text("[]")
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "list.json"), str(two_evals[0])])
    assert result.exit_code == 2 and "not an echoink summary.json" in result.output


def test_both_weights_fingerprints_are_shown(two_evals):
    a, b = two_evals
    assert "weights sha256: A not recorded  B not recorded" in format_comparison(compare(a, b))
    _stamp(a, weights_sha256="a" * 64)
    _stamp(b, weights_sha256="b" * 64)
    result = compare(a, b)
    assert result["weights_sha256"] == ["a" * 64, "b" * 64]
    assert f"weights sha256: A {'a' * 12}  B {'b' * 12}\n" in format_comparison(result)
    _stamp(b, weights_sha256="a" * 64)
    assert "(the same weights)" in format_comparison(compare(a, b))
