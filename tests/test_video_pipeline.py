"""The video benchmark end to end on each family's tiny model: GRPO (2 steps, then resumed to 3),
and evaluation under the audio, video and desync ablations."""

from __future__ import annotations

from pathlib import Path

import pytest

from echoink.config import load_config
from echoink.eval.evaluate import evaluate
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from echoink_lab.synth_video import VideoSpec, generate_video


@pytest.fixture(scope="module")
def video_bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tone_when")
    generate_video(out, {"train": 8, "test": 4}, VideoSpec(seed=1))
    return out


def test_video_grpo_resume_and_ablations(family_model_dir, video_bench, tmp_path):
    run = tmp_path / "run"
    overrides = [
        f"model.path={family_model_dir}", f"data.train_path={video_bench / 'train.json'}", f"train.output_dir={run}",
        "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=6", "train.save_every=1",
        "algo.rewards={accuracy: 1.0, format: 1.0, 'media_helpers:parity_reward': 1.0}", "data.max_frames=8",
        "train.lr_schedule=constant",  # a longer run with the same schedule: an honest resume
    ]  # fmt: skip
    train(load_config(None, [*overrides, "train.max_steps=2"]))
    train(load_config(None, [*overrides, "train.max_steps=3"]), resume=True)
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    summary = evaluate(
        run / "final", video_bench / "test.json", tmp_path / "eval", ablate=["audio", "video", "desync"],
        batch_size=4, max_new_tokens=6,
    )  # fmt: skip
    assert list(summary["conditions"]) == ["none", "audio", "video", "desync"]
    assert summary["n_items"] == 4
    assert summary["settings"]["video"]["fps"] == 2.0
