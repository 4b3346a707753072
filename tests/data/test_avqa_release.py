"""AVQA-R1-6K as released: the extracted AVQA_R1/{train,valid} layout is checked, trained on and evaluated
with the README's commands (the 7B recipe, shrunk to the tiny model by overrides)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.data import RowError, load_split
from echoink_lab.synth import SynthSpec, generate
from media_helpers import write_avqa_r1

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "echoink_r1_7b.yaml"
TINY = [
    "model.dtype=float32", "model.attn_implementation=sdpa", "model.gradient_checkpointing=false",
    "train.mixed_precision=no", "train.max_steps=2", "rollout.num_generations=2", "rollout.max_new_tokens=4",
    "train.prompts_per_step=2", "train.save_every=100",
]  # fmt: skip


@pytest.fixture(scope="module")
def avqa_r1(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release")
    bench = generate(
        root / "bench", {"train": 6, "valid": 4}, SynthSpec(seed=0, difficulty="easy"), workers=1
    )
    return write_avqa_r1(root, bench)


def test_split_directory_or_its_json(avqa_r1: Path):
    by_dir = load_split(avqa_r1 / "train").samples
    by_file = load_split(avqa_r1 / "train" / "omni_rl_format_train.json").samples
    assert by_dir == by_file and len(by_dir) == 6
    assert by_dir[0].image == avqa_r1 / "train" / "images" / "sample_0.jpg"  # relative to the split directory
    with pytest.raises(RowError, match="its split directories: train, valid"):
        load_split(avqa_r1)  # the archive root, not a split


def test_readme_commands_check_train_and_eval(avqa_r1: Path, tiny_model_dir: Path, tmp_path: Path):
    runner = CliRunner()
    check = runner.invoke(app, ["data", "check", str(avqa_r1 / "train"), str(avqa_r1 / "valid")])
    assert check.exit_code == 0, check.output
    assert "6 rows, 6 good, 0 bad" in check.output and "4 rows, 4 good, 0 bad" in check.output

    run = tmp_path / "run"
    paths = [
        f"model.path={tiny_model_dir}",
        f"data.train_path={avqa_r1 / 'train'}",
        f"train.output_dir={run}",
    ]
    train = runner.invoke(app, ["train", str(RECIPE), *[a for o in paths + TINY for a in ("--set", o)]])
    assert train.exit_code == 0, train.output
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()] == [1, 2]

    out = tmp_path / "eval"
    ev = runner.invoke(
        app, ["eval", "--model", str(run / "final"), "--data", str(avqa_r1 / "valid"), "--out", str(out)]
    )
    assert ev.exit_code == 0, ev.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_items"] == 4 and summary["skipped_rows"] == 0
    assert summary["settings"]["max_pixels"] == 200_704 and summary["settings"]["max_audio_seconds"] == 10.0
