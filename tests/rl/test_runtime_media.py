"""A media file that breaks after the split loaded (changed since ``data check``, or never checked):
``data.on_error=skip`` leaves that row out of the step with a warning naming row and file; ``strict``
stops with one error naming them. The same holds for SFT and evaluation."""

from __future__ import annotations

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


def test_skip_mode_leaves_the_broken_row_out_and_names_it(tiny_model_dir, broken_split, tmp_path, caplog):
    cfg = recipe(tiny_model_dir, broken_split, tmp_path / "run", "data.on_error=skip",
                 "train.prompts_per_step=8", "train.max_steps=1")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        out = train(cfg)
    assert "skipped row 0 at run time" in caplog.text and "sample_0.png" in caplog.text
    ids = {r["id"] for r in read_jsonl(out / "rollouts.jsonl")}
    assert "0" not in ids and len(read_jsonl(out / "metrics.jsonl")) == 1


def test_strict_mode_stops_naming_row_and_file(tiny_model_dir, broken_split, tmp_path):
    cfg = recipe(
        tiny_model_dir, broken_split, tmp_path / "run", "train.prompts_per_step=8", "train.max_steps=1"
    )
    with pytest.raises(MediaError, match=r"row 0: .*sample_0\.png"):
        train(cfg)
