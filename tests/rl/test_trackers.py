"""train.report_to=[tensorboard]: the event files hold the metrics.jsonl curves (read back with TensorBoard's reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from echoink.config import ConfigError, load_config
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from media_helpers import write_small_split


def _tensorboard_recipe(model_dir: Path, tmp_path: Path, *extra: str):
    """A tiny run into ``tmp_path/run`` on 4 rows, reporting to TensorBoard, with a reward that varies."""
    split = write_small_split(tmp_path / "data", n=4)
    return load_config(
        None,
        [
            f"model.path={model_dir}", f"data.train_path={split}", f"train.output_dir={tmp_path / 'run'}",
            "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=4",
            "train.report_to=[tensorboard]", "algo.rewards={'media_helpers:parity_reward': 1.0}", *extra,
        ],
    )  # fmt: skip


def test_tensorboard_event_files_hold_the_reward_curve(tiny_model_dir: Path, tmp_path: Path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    validation = (
        "train.eval_every=2",
        f"data.val_path={tmp_path / 'data' / 'train.json'}",
        "eval.max_items=2",
    )
    cfg = _tensorboard_recipe(
        tiny_model_dir, tmp_path, "train.max_steps=4", "train.save_every=100", *validation
    )
    train(cfg)
    rows = read_jsonl(run / "metrics.jsonl")
    events = list(run.glob("echoink/events.out.tfevents.*"))
    assert events, sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file())
    acc = event_accumulator.EventAccumulator(str(events[0].parent), size_guidance={"scalars": 0})
    acc.Reload()
    reward = [(e.step, e.value) for e in acc.Scalars("reward")]
    assert reward == [(r["step"], pytest.approx(r["reward"])) for r in rows]
    assert len({v for _, v in reward}) > 1  # a curve, not a constant
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [2, 4]


def test_a_resumed_run_shows_each_step_once_in_tensorboard(tiny_model_dir: Path, tmp_path: Path):
    """Step 3 runs twice (its checkpoint lost, resumed from step 2): TensorBoard shows the second one only."""
    import shutil

    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    cfg = _tensorboard_recipe(tiny_model_dir, tmp_path, "train.max_steps=3", "train.save_every=2")
    train(cfg)
    shutil.rmtree(run / "checkpoints" / "step-000003")
    train(cfg, resume=True)
    rows = read_jsonl(run / "metrics.jsonl")
    acc = event_accumulator.EventAccumulator(str(run / "echoink"), size_guidance={"scalars": 0})
    acc.Reload()
    assert len(list((run / "echoink").glob("events.out.tfevents.*"))) == 2
    # step_time differs between the two runs of step 3: the one shown is the one metrics.jsonl kept
    assert [(e.step, e.value) for e in acc.Scalars("step_time")] == [
        (r["step"], pytest.approx(r["step_time"])) for r in rows
    ]


def test_unknown_tracker_is_named():
    """Named by the pre-flight check (every command runs it), and by the trainer's own set-up."""
    from echoink.preflight import check_names
    from echoink.rl.trackers import tracker_kwargs

    cfg = load_config(None, ["train.report_to=[tensorbord]"])
    with pytest.raises(ConfigError, match="train.report_to: unknown tracker 'tensorbord'"):
        check_names(cfg)
    with pytest.raises(ValueError, match="train.report_to: unknown tracker"):
        tracker_kwargs(cfg)


def test_a_tracker_that_is_not_installed_fails_before_training(tmp_path: Path):
    import importlib.util

    from echoink.rl.trackers import tracker_kwargs

    if importlib.util.find_spec("trackio") is not None:
        pytest.skip("trackio is installed here")
    cfg = load_config(None, ["train.report_to=[trackio]", f"train.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="trackio not installed"):
        tracker_kwargs(cfg)  # accelerate itself would only warn and log nowhere
