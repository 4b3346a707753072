"""Eval follows the model's training: final/ carries its recipe and `echoink eval --model DIR` uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.config import load_config
from echoink.rl.trainer import train
from media_helpers import write_small_split

TRAINED = {"template": "direct", "max_pixels": 12_544, "max_audio_seconds": 0.25, "max_new_tokens": 5}


def _eval(model: Path, split: Path, out: Path, *flags: str) -> dict:
    args = ["eval", "--model", str(model), "--data", str(split), "--out", str(out), "--limit", "2", *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


def test_eval_takes_prompt_budgets_and_length_from_the_training(tiny_model_dir, tmp_path):
    split = write_small_split(tmp_path / "data", n=4)
    cfg = load_config(
        None,
        [
            f"model.path={tiny_model_dir}", f"data.train_path={split}", f"train.output_dir={tmp_path / 'run'}",
            "train.max_steps=1", "train.prompts_per_step=2", "rollout.num_generations=2",
            f"data.template={TRAINED['template']}", f"data.max_pixels={TRAINED['max_pixels']}",
            f"data.max_audio_seconds={TRAINED['max_audio_seconds']}",
            f"rollout.max_new_tokens={TRAINED['max_new_tokens']}",
        ],
    )  # fmt: skip
    final = train(cfg) / "final"

    summary = _eval(final, split, tmp_path / "e1")  # no flags: the training's settings
    assert {k: summary["settings"][k] for k in TRAINED} == TRAINED
    assert set(summary["settings_source"].values()) == {"training recipe"}
    assert max(json.loads(line)["length"] for line in (tmp_path / "e1/predictions.jsonl").open()) <= 5

    summary = _eval(final, split, tmp_path / "e2", "--max-pixels", "3136", "--max-audio-seconds", "0")
    assert summary["settings"]["max_pixels"] == 3136 and summary["settings"]["max_audio_seconds"] is None
    assert summary["settings_source"]["max_pixels"] == "flag"
    assert summary["settings"]["template"] == "direct"  # the rest still follows the training

    summary = _eval(tiny_model_dir, split, tmp_path / "e3")  # a model with no recipe: the defaults
    assert summary["settings"]["template"] == "reasoning" and summary["settings"]["max_pixels"] == 50_176
    assert set(summary["settings_source"].values()) == {"default"}


VIDEO = {"video_fps": 1.0, "max_frames": 4, "max_video_pixels": 12_544}


def test_eval_takes_the_video_settings_from_the_training_and_records_their_source(tiny_model_dir, tmp_path):
    """The recipe card carries every input-shaping setting; eval uses it unless a flag overrides it."""
    import shutil

    from echoink.recipe_card import read_recipe, write_recipe

    split = write_small_split(tmp_path / "data", n=2)
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    write_recipe(load_config(None, [f"data.{k}={v}" for k, v in VIDEO.items()]), model, "grpo")
    assert {k: read_recipe(model)[k] for k in VIDEO} == VIDEO

    summary = _eval(model, split, tmp_path / "e1", "--max-new-tokens", "2")
    video = summary["settings"]["video"]
    assert (video["fps"], video["max_frames"], video["max_pixels"]) == tuple(VIDEO.values())
    assert all(summary["settings_source"][k] == "training recipe" for k in VIDEO)

    summary = _eval(
        model, split, tmp_path / "e2", "--max-new-tokens", "2", "--video-fps", "3", "--max-frames", "6"
    )
    assert (summary["settings"]["video"]["fps"], summary["settings"]["video"]["max_frames"]) == (3.0, 6)
    assert (
        summary["settings_source"]["video_fps"] == "flag"
        and summary["settings_source"]["max_frames"] == "flag"
    )
    assert summary["settings"]["video"]["max_pixels"] == 12_544  # the rest still follows the training


def test_a_recipe_cards_settings_pass_the_recipes_checks(tmp_path):
    from echoink.recipe_card import RECIPE_FILE, read_recipe

    for value, reason in [(-1, "data.video_fps: must be > 0"), ("fast", "not supported between")]:
        (tmp_path / RECIPE_FILE).write_text(json.dumps({"eval": {"video_fps": value}}))
        with pytest.raises(ValueError, match=reason):
            read_recipe(tmp_path)
