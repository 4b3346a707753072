"""The run directory before training: refusals write nothing; resume compares recipes; changes apply for real."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from echoink.config import ConfigError
from echoink.data import RowError
from echoink.guards import NonFiniteWeights
from echoink.rl.checkpoint import latest_checkpoint
from echoink.rl.run_dir import HISTORY
from echoink.rl.trainer import setup_run, train
from media_helpers import write_small_split
from rl.test_trainer import recipe


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("runset"))


SAME = ("train.max_steps=2", "train.save_every=1")


@pytest.fixture(scope="module")
def trained(tiny_model_dir, split, tmp_path_factory) -> Path:
    """A 2-step run with checkpoints at steps 1 and 2 (train.lr 1e-3, cosine over 3 steps)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(recipe(tiny_model_dir, split, out, *SAME))
    return out


def _saved(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_fresh_run_over_checkpoints_is_refused_before_writing(tiny_model_dir, split, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step-000001").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("the other run's config\n")
    with pytest.raises(FileExistsError, match="already holds checkpoints; pass --resume"):
        setup_run(recipe(tiny_model_dir, split, run_dir), resume=False)
    assert (run_dir / "config.yaml").read_text() == "the other run's config\n"


def test_resume_refuses_trajectory_changes_and_lists_them(tiny_model_dir, split, trained):
    before = (trained / "config.yaml").read_text()
    changed = recipe(tiny_model_dir, split, trained, "train.lr=5e-3", "rollout.temperature=0.7", *SAME)
    with pytest.raises(ConfigError, match="--allow-config-change") as err:
        setup_run(changed, resume=True)
    assert "train.lr: 0.001 -> 0.005" in str(err.value) and "rollout.temperature: 1.0 -> 0.7" in str(
        err.value
    )
    with pytest.raises(ConfigError, match="cannot change train.seed"):  # never applicable, even when allowed
        setup_run(
            recipe(tiny_model_dir, split, trained, "train.seed=4", *SAME),
            resume=True,
            allow_config_change=True,
        )
    with pytest.raises(ConfigError, match="^train.max_steps: 1 is below the step"):
        setup_run(
            recipe(tiny_model_dir, split, trained, "train.max_steps=1"), resume=True, allow_config_change=True
        )
    assert (trained / "config.yaml").read_text() == before and not (trained / HISTORY).exists()
    run = setup_run(
        recipe(tiny_model_dir, split, trained, "train.log_every=2", *SAME), resume=True
    )  # harmless
    assert run.state.step == 2


def test_allowed_lr_change_rebuilds_the_schedule_and_is_recorded(tiny_model_dir, split, trained):
    changed = recipe(
        tiny_model_dir, split, trained, "train.lr=5e-3", "train.max_steps=4", "train.save_every=1"
    )
    run = setup_run(changed, resume=True, allow_config_change=True)
    assert run.state.step == 2
    cosine = 0.5 * (1 + math.cos(math.pi * 2 / 4))  # transformers' cosine, no warm-up, at step 2 of 4
    assert run.h.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3 * cosine, rel=1e-9)
    assert run.h.scheduler.get_last_lr()[0] == pytest.approx(5e-3 * cosine, rel=1e-9)
    run.h.scheduler.step()
    assert run.h.scheduler.get_last_lr()[0] == pytest.approx(5e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))
    assert _saved(trained)["train"]["lr"] == 5e-3  # config.yaml says what runs
    (record,) = [json.loads(line) for line in (trained / HISTORY).read_text().splitlines()]
    assert record["step"] == 2
    assert record["changes"] == {"train.lr": [1e-3, 5e-3], "train.max_steps": [2, 4]}


def test_weights_broken_by_a_step_stop_the_run_and_final_is_not_written(tiny_model_dir, split, tmp_path):
    cfg = recipe(tiny_model_dir, split, tmp_path / "run", "train.max_steps=2")
    # The recipe refuses lr=inf (test_config); this is the second line of defence, for whatever else
    # makes a step's update overflow: AdamW's first step at lr=inf makes the weights infinite.
    cfg.train.lr = math.inf
    with pytest.raises(NonFiniteWeights, match=r"^step 1: \d+ of \d+ trainable tensors are non-finite"):
        train(cfg)
    assert not (tmp_path / "run" / "final").exists() and latest_checkpoint(tmp_path / "run") is None


def test_a_split_that_fails_to_load_writes_nothing(tiny_model_dir, tmp_path):
    bad = tmp_path / "split.json"
    bad.write_bytes("[]".encode("utf-16"))
    with pytest.raises(RowError, match="UTF-16"):
        setup_run(recipe(tiny_model_dir, bad, tmp_path / "run"), resume=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # was written before the split was read


def test_a_batch_larger_than_the_split_is_refused_before_writing(tiny_model_dir, split, tmp_path):
    with pytest.raises(ValueError, match=r"^train.prompts_per_step: the dataset has 8 prompts"):
        setup_run(recipe(tiny_model_dir, split, tmp_path / "run", "train.prompts_per_step=9"), resume=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # was written, then the model loaded, then this
