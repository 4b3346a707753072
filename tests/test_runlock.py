"""One writer per output directory: a live holder is named and refused at once; a dead one's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from echoink.runlock import LOCK_FILE, RunLocked, acquire, release, run_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")
HOLD = textwrap.dedent(
    """
    import os, signal, sys, time
    from echoink.runlock import acquire
    fh = acquire(sys.argv[1], "holder-test")
    print("locked", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup: the record stays, the flock goes
    time.sleep(60)
    """
)


def _holder(directory: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), mode], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_live_holder_is_named_and_a_second_writer_fails_at_once(tmp_path: Path, monkeypatch):
    import fcntl

    tries, flock = [], fcntl.flock

    def spy(fd, operation):
        tries.append(operation)
        return flock(fd, operation)

    proc = _holder(tmp_path / "run", "hold")
    try:
        monkeypatch.setattr(fcntl, "flock", spy)
        with pytest.raises(RunLocked, match=f"in use by pid {proc.pid} .*'holder-test'"):
            acquire(tmp_path / "run")
        assert tries == [fcntl.LOCK_EX | fcntl.LOCK_NB]  # one non-blocking try: no wait, no retry
        monkeypatch.undo()
    finally:
        proc.kill()
        proc.wait()
    with run_lock(tmp_path / "run", "second"):  # the holder died: free again
        assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_stale_lock_of_a_dead_pid_is_taken_over_with_a_warning(tmp_path: Path, caplog):
    proc = _holder(tmp_path / "run", "die")
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="echoink.runlock"):
        lock = acquire(tmp_path / "run", "me")
    assert f"stale lock of pid {proc.pid}" in caplog.text
    assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["command"] == "me"
    release(lock)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="echoink.runlock"), run_lock(tmp_path / "run"):
        pass  # a clean release leaves nothing stale
    assert "stale" not in caplog.text


def test_same_directory_twice_in_one_process_is_refused(tmp_path: Path):
    with run_lock(tmp_path), pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        acquire(tmp_path)


def test_a_directory_made_only_for_the_lock_is_removed_on_release(tmp_path: Path):
    with run_lock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_FILE).exists()
    assert not (tmp_path / "new").exists()  # a command that failed its checks leaves nothing behind
    with run_lock(tmp_path / "used"):
        (tmp_path / "used" / "metrics.jsonl").write_text("")
    assert sorted(p.name for p in (tmp_path / "used").iterdir()) == [
        "metrics.jsonl"
    ]  # no empty lock file left


def test_cli_train_into_a_held_directory_fails_before_writing(tiny_model_dir, good_split, tmp_path):
    run_dir = tmp_path / "run"
    proc = _holder(run_dir, "hold")
    try:
        cmd = [
            sys.executable, "-m", "echoink", "train", "--set", f"model.path={tiny_model_dir}",
            "--set", f"data.train_path={good_split}", "--set", f"train.output_dir={run_dir}",
        ]  # fmt: skip
        out = subprocess.run(
            [cmd[0], *cmd[1:4], str(_recipe(tmp_path)), *cmd[4:]],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120,
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: {run_dir}: in use by pid {proc.pid} ") and "'holder-test'" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]  # no config.yaml, no logs


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text("train:\n  max_steps: 1\n")
    return path


def test_an_output_path_that_is_a_file_is_named(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file: exists and is not a directory"):
        acquire(tmp_path / "file")


def test_no_empty_lock_file_is_left_and_a_removed_file_is_not_held(tmp_path: Path):
    """Release removes .echoink.lock; a process that opened the file before it was removed locks a new one."""
    import fcntl

    from echoink.runlock import LOCK_FILE, acquire, release

    (tmp_path / "out").mkdir()
    first = acquire(tmp_path / "out")
    early = open(tmp_path / "out" / LOCK_FILE, "a+")  # noqa: SIM115  (a second process's open, before release)
    (tmp_path / "out/kept.txt").write_text("x")
    release(first)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kept.txt"]
    fcntl.flock(early.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # the removed file's flock is free ...
    second = acquire(tmp_path / "out")  # ... and holding it excludes nobody: acquire locks the path's file
    with pytest.raises(RunLocked):
        acquire(tmp_path / "out")
    release(second)
    early.close()
    assert not (tmp_path / "out" / LOCK_FILE).exists()
