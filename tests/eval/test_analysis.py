"""analyze(): curves from metrics.jsonl, aha rates from rollouts.jsonl / predictions.jsonl, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.eval.analysis import analyze, curve_panels

AHA = "<think>The answer is A. Wait, listen again: it is B.</think><answer>B</answer>"
PLAIN = "<think>The tone rises, so B.</think><answer>B</answer>"
WRONG_PLAIN = "<think>The tone rises, so A.</think><answer>A</answer>"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    metrics = [
        {
            "step": k,
            "reward": 0.5 + 0.1 * k,
            "reward_std": 0.2,
            "rewards/accuracy/mean": 0.1 * k,
            "rewards/format/mean": 0.5,
            "completions/mean_length": 100 - k,
            "kl": 0.01 * k,
            "clip_ratio/low": 0.0,
            "clip_ratio/high": 0.01,
            "frac_reward_zero_std": 0.25,
            "lr": 1e-6,
        }
        for k in range(1, 6)
    ]
    metrics[2]["kl"] = None  # a NaN logged as null
    _write_jsonl(tmp_path / "metrics.jsonl", metrics)
    rollouts = []
    for step, texts in ((1, [PLAIN, WRONG_PLAIN, WRONG_PLAIN, PLAIN]), (2, [AHA, PLAIN, AHA, WRONG_PLAIN])):
        for i, text in enumerate(texts):
            acc = 1.0 if text.endswith("<answer>B</answer>") else 0.0
            rollouts.append(
                {"step": step, "id": str(i), "completion": text, "rewards/accuracy": acc, "needs": "audio"}
            )
    _write_jsonl(tmp_path / "rollouts.jsonl", rollouts)
    return tmp_path


def test_curves_and_aha_rates(run_dir):
    result = analyze(run_dir)
    assert result["panels"] == [
        "reward",
        "reward: accuracy",
        "reward: format",
        "completion length",
        "KL to reference",
        "clip ratio",
        "groups with zero reward std",
    ]
    for name in ("curves.png", "aha_rate.png"):
        data = (run_dir / "analysis" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    aha = json.loads((run_dir / "analysis/aha.json").read_text())["rollouts"]
    assert (
        aha["rate"] == 2 / 8
        and aha["n_correct"] == 5
        and aha["rate_correct"] == 2 / 5
        and aha["rate_wrong"] == 0
    )
    assert [(s["step"], s["rate"], s["rate_correct"]) for s in aha["by_step"]] == [
        (1, 0.0, 0.0),
        (2, 0.5, 2 / 3),
    ]
    top = aha["top_examples"]
    assert len(top) == 1 and top[0]["markers"] == ["Wait", "listen again"] and top[0]["switch"] == ["A", "B"]


def test_panels_skip_missing_keys():
    assert curve_panels([{"step": 1, "kl": 0.1}, {"step": 2, "kl": None}]) == [("KL to reference", ["kl"])]
    assert curve_panels([{"step": 1}]) == []


def test_eval_folder_and_cli(tmp_path):
    rows = [
        {"id": "0", "condition": "none", "completion": AHA, "correct": True},
        {"id": "1", "condition": "none", "completion": PLAIN, "correct": False},
        {"id": "0", "condition": "audio", "completion": AHA, "correct": True},  # ablations are not counted
    ]
    _write_jsonl(tmp_path / "predictions.jsonl", rows)
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "aha moments in predictions: 50.0% of 2 (correct 100.0% of 1, wrong 0.0% of 1" in result.output
    assert not (tmp_path / "analysis/curves.png").exists()


def test_torn_last_lines_are_ignored(tmp_path):
    _write_jsonl(tmp_path / "metrics.jsonl", [{"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.7}])
    _write_jsonl(tmp_path / "rollouts.jsonl", [{"step": 1, "id": "0", "completion": AHA}])
    for name in ("metrics.jsonl", "rollouts.jsonl"):
        with open(tmp_path / name, "a") as fh:
            fh.write('{"step": 3, "completion": "<think>cut by a ki')  # a kill mid-write
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "analysis/curves.png").exists()


@pytest.mark.parametrize("row", [{"reward": 0.7}, {"step": "3", "reward": 0.7}, {"step": True}])
def test_a_metrics_row_without_a_step_is_one_line(tmp_path, row):
    """Curves are plotted against step; a row without one was a KeyError traceback."""
    (tmp_path / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "reward": 0.5}) + "\n" + json.dumps(row) + "\n"
    )
    with pytest.raises(ValueError, match=r"metrics.jsonl: row 1: a metrics row needs an integer 'step'"):
        analyze(tmp_path)
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)
