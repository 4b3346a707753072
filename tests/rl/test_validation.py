"""Validation while training: eval/* lines every train.eval_every steps, equal to evaluating the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echoink.config import ConfigError, load_config
from echoink.eval.analysis import curve_panels
from echoink.eval.evaluate import evaluate
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from echoink.sft import sft
from media_helpers import write_small_split


def _split_with_traces(root: Path, n: int) -> Path:
    """write_small_split's rows (answers A, B, C, ...) with one fixed trace that always answers A."""
    path = write_small_split(root, n=n)
    rows = json.loads(path.read_text())
    path.write_text(json.dumps([{**r, "reasoning": "<think>a</think><answer>A</answer>"} for r in rows]))
    return path


def test_eval_every_two_steps_logs_twice_and_matches_echoink_eval(tiny_model_dir: Path, tmp_path: Path):
    train_split = _split_with_traces(tmp_path / "train", 4)
    val_split = write_small_split(tmp_path / "val", n=5)
    common = [f"data.train_path={train_split}", "rollout.max_new_tokens=12", "eval.batch_size=2"]
    # A short SFT teaches the tiny model to answer "A" in format, so the validation numbers are not all 0.
    sft_cfg = load_config(None, [f"model.path={tiny_model_dir}", f"sft.output_dir={tmp_path / 'sft'}",
        "sft.max_steps=40", "sft.batch_size=4", "sft.lr=5e-3", "sft.warmup_steps=0", *common])  # fmt: skip
    base = sft(sft_cfg) / "final"
    run = tmp_path / "run"
    cfg = load_config(
        None,
        [
            f"model.path={base}", f"data.val_path={val_split}", f"train.output_dir={run}", *common,
            "train.max_steps=4", "train.prompts_per_step=2", "train.lr=1e-5", "rollout.num_generations=2",
            "train.eval_every=2", "eval.max_items=3", "train.keep_best=true", "train.save_every=100",
        ],
    )  # fmt: skip
    train(cfg)
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert ("validation (greedy)", ["eval/accuracy", "eval/format_rate"]) in curve_panels(evals)
    assert all(r["eval/n"] == 3 for r in evals)
    assert evals[-1]["eval/format_rate"] > 0 and 0 < evals[-1]["eval/accuracy"] < 1  # not a trivial 0
    assert int((run / "best" / "step.txt").read_text()) in (2, 4)
    assert json.loads((run / "best" / "echoink_recipe.json").read_text())["stage"] == "grpo"

    # The step-4 validation is the final model decoded by `echoink eval` on the same 3 items.
    summary = evaluate(
        run / "final", val_split, tmp_path / "eval", template="reasoning", limit=3, batch_size=2,
        max_new_tokens=12, max_pixels=cfg.data.max_pixels, max_audio_seconds=None,
    )  # fmt: skip
    block = summary["conditions"]["none"]
    assert evals[-1]["eval/accuracy"] == block["accuracy"]
    assert evals[-1]["eval/format_rate"] == block["format_rate"]
    assert evals[-1]["eval/mean_length"] == pytest.approx(block["mean_length"])


def test_eval_every_needs_a_val_path():
    with pytest.raises(ConfigError, match="data.val_path"):
        load_config(None, ["train.eval_every=2"])
    with pytest.raises(ConfigError, match="train.keep_best"):
        load_config(None, ["train.keep_best=true"])
