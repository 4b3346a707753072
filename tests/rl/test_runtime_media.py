"""A media file that breaks after the split loaded (changed since ``data check``, or never checked):
``data.on_error=skip`` keeps the row's place with a stand-in that has no weight (so every process of
a launch keeps its batch shape), with a warning naming row and file; ``strict``
stops with one error naming them. The same holds for SFT and evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from echoink.data.media import MediaError
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from media_helpers import write_small_split, write_truncated_jpeg
from rl.test_trainer import recipe


@pytest.fixture
def broken_split(tmp_path) -> Path:
    split = write_small_split(tmp_path / "data")
    write_truncated_jpeg(tmp_path / "data" / "images" / "sample_0.png")  # its header still reads
    return split


def test_skip_mode_stands_the_broken_row_in_with_no_weight_and_names_it(
    tiny_model_dir, broken_split, tmp_path, caplog
):
    cfg = recipe(tiny_model_dir, broken_split, tmp_path / "run", "data.on_error=skip",
                 "train.prompts_per_step=8", "train.max_steps=1")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        out = train(cfg)
    assert "row 0 failed at run time and stands in with no weight" in caplog.text
    assert "sample_0.png" in caplog.text
    ids = {r["id"] for r in read_jsonl(out / "rollouts.jsonl")}
    assert ids and "0" not in ids  # the stand-in's completions are not logged as the row's
    (row,) = read_jsonl(out / "metrics.jsonl")
    assert row["completions/min_length"] > 0  # the stand-in's rows count in no statistic


def test_strict_mode_stops_naming_row_and_file(tiny_model_dir, broken_split, tmp_path):
    cfg = recipe(
        tiny_model_dir, broken_split, tmp_path / "run", "train.prompts_per_step=8", "train.max_steps=1"
    )
    with pytest.raises(MediaError, match=r"row 0: .*sample_0\.png"):
        train(cfg)


def test_a_step_whose_every_prompt_failed_still_completes(tiny_model_dir, broken_split, tmp_path, caplog):
    """Every prompt of the step stands in: no update signal, but the step (and the run) completes, as
    it must on a process of a launch whose other processes' prompts decoded."""
    only = broken_split.with_name("only_row_0.json")  # the broken row alone: every step draws it
    only.write_text(json.dumps(json.loads(broken_split.read_text())[:1]))
    cfg = recipe(tiny_model_dir, only, tmp_path / "run", "data.on_error=skip", "train.prompts_per_step=1",
                 "train.max_steps=2", f"data.val_path={only}")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        out = train(cfg)
    assert "every prompt of this step failed to decode on this process" in caplog.text
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(r["grad_norm"] == 0.0 for r in rows)
    assert (out / "final" / "model.safetensors").exists()
