"""The run directory before training: refusals write nothing; resume compares the run's record (recipe,
split contents, launch); changes apply for real and are recorded; logs are cut back to the restored step."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from echoink.config import ConfigError, save_config
from echoink.data import RowError
from echoink.filehash import sha256_file
from echoink.guards import NonFiniteWeights
from echoink.outdir import OutputNotEmpty
from echoink.rl.checkpoint import latest_checkpoint
from echoink.rl.run_dir import HISTORY, INPUTS, LAUNCH
from echoink.rl.trainer import setup_run, train
from echoink.runlog import read_jsonl
from media_helpers import write_small_split
from rl.test_trainer import _train_cmd, recipe


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
    with pytest.raises(
        FileExistsError, match=r"already holds a run \(config.yaml, checkpoints\); pass --resume"
    ):
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


def _one_step_logged(run_dir: Path) -> None:
    """A metrics row, as the first step writes it: the run is one to protect (a start alone is not)."""
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')


def test_a_start_that_never_stepped_is_replaced_by_the_next_launch(tiny_model_dir, split, tmp_path, caplog):
    """A failed start (record written, no metrics row, no checkpoint) must not block its corrected command,
    fresh or resumed, even with a changed recipe; one warning line says it was replaced."""
    run_dir = tmp_path / "run"
    setup_run(recipe(tiny_model_dir, split, run_dir, "rollout.temperature=0.7"), resume=False)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "rew')  # torn: the first step died writing it
    fixed = recipe(tiny_model_dir, split, run_dir, "train.lr=5e-3")
    with caplog.at_level(logging.WARNING, logger="echoink.rl.run_dir"):
        setup_run(fixed, resume=False)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "echoink.rl.run_dir"]
    assert "never completed a step (no metrics row, no checkpoint); replacing its record" in line
    assert _saved(run_dir)["train"]["lr"] == 5e-3 and _saved(run_dir)["rollout"]["temperature"] == 1.0
    assert not (run_dir / "metrics.jsonl").exists()  # the torn line does not carry into the new run
    setup_run(recipe(tiny_model_dir, split, run_dir, "train.lr=1e-2"), resume=True)  # no "differs"
    assert _saved(run_dir)["train"]["lr"] == 1e-2 and not (run_dir / HISTORY).exists()
    _one_step_logged(run_dir)  # from here on the run is protected as before
    with pytest.raises(FileExistsError, match="already holds a run"):
        setup_run(fixed, resume=False)
    with pytest.raises(ConfigError, match="--allow-config-change"):
        setup_run(fixed, resume=True)


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]


def test_kill_before_the_first_checkpoint_then_resume_keeps_one_row_per_step(
    tiny_model_dir, tmp_path, caplog
):
    """kill -9 after 2 of 6 steps, no checkpoint yet: a fresh run into the directory is refused and cuts
    nothing; --resume starts at step 0, says how many lines it cut, and logs each step once."""
    split = write_small_split(tmp_path / "data")
    run_dir = tmp_path / "run"
    cfg = recipe(tiny_model_dir, split, run_dir, "train.max_steps=6", "train.save_every=1000")
    save_config(cfg, tmp_path / "recipe.yaml")
    src, tests = (str(Path(__file__).parents[n] / d) for n, d in ((2, "src"), (1, "")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, tests])}
    proc = subprocess.Popen(_train_cmd(tmp_path / "recipe.yaml"), env=env)
    deadline, metrics = time.time() + 300, run_dir / "metrics.jsonl"
    while (not metrics.exists() or len(metrics.read_text().splitlines()) < 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(run_dir) is None
    logged = [r["step"] for r in read_jsonl(metrics)]
    assert logged == list(range(1, len(logged) + 1)) and 2 <= len(logged) < 6
    before = metrics.read_bytes()
    with pytest.raises(
        FileExistsError, match=r"already holds a run \(config.yaml, inputs.json, launch.json, metrics.jsonl"
    ):
        setup_run(cfg, resume=False)
    assert metrics.read_bytes() == before
    with caplog.at_level(logging.WARNING, logger="echoink.rl.trainer"):
        train(cfg, resume=True)
    assert f"resume at step 0: cut {len(logged)} lines of metrics.jsonl" in caplog.text
    assert [r["step"] for r in read_jsonl(metrics)] == [1, 2, 3, 4, 5, 6]
    per_step = Counter(r["step"] for r in read_jsonl(run_dir / "rollouts.jsonl"))
    assert sorted(per_step) == [1, 2, 3, 4, 5, 6] and len(set(per_step.values())) == 1


def test_a_directory_holding_other_files_is_refused_fresh_or_resumed(tiny_model_dir, split, tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("the user's own file\n")
    with pytest.raises(
        OutputNotEmpty, match=r"^train.output_dir: .*mine is not empty \(notes.txt\); `echoink train`"
    ):
        setup_run(recipe(tiny_model_dir, split, run_dir), resume=False)
    with pytest.raises(OutputNotEmpty, match="holds no config.yaml of an earlier `echoink train`"):
        setup_run(recipe(tiny_model_dir, split, run_dir), resume=True)
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]


def test_resume_refuses_a_split_changed_at_the_same_path_unless_allowed(tiny_model_dir, tmp_path):
    split = write_small_split(tmp_path / "data")
    run_dir = tmp_path / "run"
    cfg = recipe(tiny_model_dir, split, run_dir)
    setup_run(cfg, resume=False)  # writes the record
    _one_step_logged(run_dir)
    rows = json.loads(split.read_text())
    split.write_text(json.dumps(rows[::-1]))  # same rows, other order: other prompts at each step
    with pytest.raises(ConfigError, match=r"data.train_path content: 'sha256 \w{12}' -> 'sha256 \w{12}'"):
        setup_run(cfg, resume=True)
    assert not (run_dir / HISTORY).exists()
    setup_run(cfg, resume=True, allow_config_change=True)
    (entry,) = _history(run_dir)
    assert entry["step"] == 0 and list(entry["changes"]) == ["data.train_path content"]
    assert json.loads((run_dir / INPUTS).read_text())["data.train_path"]["sha256"] == sha256_file(split)


def test_resume_under_another_number_of_processes_is_refused_unless_allowed(tiny_model_dir, split, tmp_path):
    """A run launched on 2 processes (its launch.json says so) resumed on 1: the global batch halves."""
    run_dir = tmp_path / "run"
    cfg = recipe(tiny_model_dir, split, run_dir)
    setup_run(cfg, resume=False)
    _one_step_logged(run_dir)
    launch = json.loads((run_dir / LAUNCH).read_text())
    assert launch["processes"] == 1
    (run_dir / LAUNCH).write_text(json.dumps({**launch, "processes": 2, "engine": "ddp", "backend": "gloo"}))
    with pytest.raises(ConfigError, match=r"launch.processes: 2 -> 1; launch.engine: 'ddp' -> 'single'"):
        setup_run(cfg, resume=True)
    setup_run(cfg, resume=True, allow_config_change=True)
    (entry,) = _history(run_dir)
    assert entry["changes"]["launch.processes"] == [2, 1]
    assert json.loads((run_dir / LAUNCH).read_text()) == launch  # launch.json says what runs now
