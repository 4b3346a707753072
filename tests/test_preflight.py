"""Input checks made before any model loads: each names the field and the reason in one message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from echoink.config import ConfigError, load_config
from echoink.preflight import check_model_dir, check_recipe_inputs, check_split_file


def _copy_without(src: Path, dst: Path, *names: str) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*names))
    return dst


def test_model_dir_checks(tiny_model_dir: Path, tmp_path: Path):
    assert check_model_dir(tiny_model_dir, "model.path") == tiny_model_dir
    cases = {
        tmp_path / "missing": "is not a directory",
        _copy_without(tiny_model_dir, tmp_path / "no_weights", "*.safetensors"): "holds no weights",
        _copy_without(tiny_model_dir, tmp_path / "no_tok", "tokenizer.json"): "has no tokenizer.json",
        _copy_without(tiny_model_dir, tmp_path / "no_cfg", "config.json"): "has no config.json",
    }
    for path, reason in cases.items():
        with pytest.raises(ConfigError, match=f"^model.path: .*{reason}"):
            check_model_dir(path, "model.path")


def test_split_and_recipe_checks(tiny_model_dir: Path, good_split: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="^--data: .*does not exist"):
        check_split_file(tmp_path / "nope.json", "--data")
    with pytest.raises(ConfigError, match="^--data: .*a split directory must hold one omni_rl_format"):
        check_split_file(tmp_path, "--data")
    ok = [f"model.path={tiny_model_dir}", f"data.train_path={good_split}"]
    check_recipe_inputs(load_config(None, ok))
    with pytest.raises(ConfigError, match="^data.val_path: "):
        check_recipe_inputs(load_config(None, [*ok, f"data.val_path={tmp_path / 'val.json'}"]))
    with pytest.raises(ConfigError, match="^data.train_path: no split given"):
        check_recipe_inputs(load_config(None, ok[:1]))
