"""outdir.check_output_dir: new or empty -> False, the command's own earlier output -> True, else one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from echoink.outdir import OutputNotEmpty, check_output_dir
from echoink.runlock import run_lock


def test_new_empty_and_locked_directories_are_free(tmp_path: Path):
    assert check_output_dir(tmp_path / "new", "--out", "sft") is False
    assert check_output_dir(tmp_path, "--out", "sft") is False
    with run_lock(tmp_path / "locked"):  # the lock file the command itself put there is not content
        assert check_output_dir(tmp_path / "locked", "--out", "sft") is False


def test_own_output_is_continued_anything_else_refused_in_one_line(tmp_path: Path):
    (tmp_path / "suite" / "mmau").mkdir(parents=True)
    (tmp_path / "suite" / "mmau" / "eval_config.json").write_text("{}")
    assert check_output_dir(
        tmp_path / "suite", "--out", "eval --suite", own=("suite.json", "*/eval_config.json")
    )
    user = tmp_path / "user"
    user.mkdir()
    for name in ("a.json", "b.json", "c.json", "images"):
        (user / name).touch()
    with pytest.raises(OutputNotEmpty) as err:
        check_output_dir(user, "--out", "data synth")
    assert str(err.value) == (
        f"--out: {user} is not empty (a.json, b.json, c.json and 1 more); `echoink data synth` writes only "
        f"into a new or empty directory: choose another --out (or, if nothing in {user} is needed, remove it yourself)"
    )
    with pytest.raises(
        OutputNotEmpty, match=r"\(a.json, .*\) and holds no eval_config.json of an earlier `echoink eval`"
    ):
        check_output_dir(user, "--out", "eval", own=("eval_config.json",))
    with pytest.raises(NotADirectoryError, match="a.json is a file, not a directory"):
        check_output_dir(user / "a.json", "--out", "model tiny")
