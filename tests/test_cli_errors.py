"""The command line's two kinds of error: the user's mistake as one ``error:`` line (exit 2), a bug in
echoink as one line naming the file that holds its traceback (exit 1); ``--debug`` shows the trace."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from echoink.cli_errors import run_app
from echoink.config_sections import ConfigError
from echoink.data.media import MediaError
from echoink.rl.checkpoint import CheckpointDamaged
from echoink.runlock import RunLocked


def _app(err: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise err

    @app.command()
    def other() -> None:  # two commands: typer keeps the command's name on the line
        pass

    return app


def _run(err: BaseException, capsys, *args: str) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as done:
        run_app(_app(err), ["fail", *args])
    return done.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "err",
    [
        ConfigError("train.lr: expected a number"),
        MediaError("a.wav: not audio"),
        RunLocked("out: held by process 12"),
        CheckpointDamaged("ckpt: hash differs"),
        FileNotFoundError(2, "No such file or directory", "data.json"),
        PermissionError(13, "Permission denied", "data.json"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_user_errors_are_one_line_exit_2(err, capsys):
    code, lines = _run(err, capsys)
    assert code == 2 and lines == [f"error: {' '.join(str(err).split())}"]


@pytest.mark.parametrize("err", [ValueError("shapes [2, 3] and [3]"), RuntimeError("CUDA"), KeyError("x")])
def test_other_errors_are_internal_with_their_trace_in_a_file(err, capsys):
    """A ValueError from deep inside torch is a bug, not the user's mistake (it used to print as one)."""
    code, lines = _run(err, capsys)
    assert code == 1 and len(lines) == 1
    line = lines[0]
    assert line.startswith(f"error: internal error ({type(err).__name__}: ") and "--debug" in line
    path = Path(line.split("the full traceback is in ")[1].split("; ")[0])
    try:
        trace = path.read_text()
        assert trace.startswith("Traceback") and "raise err" in trace and type(err).__name__ in trace
    finally:
        path.unlink()


def test_debug_raises_the_error_itself(capsys):
    err = ValueError("shapes")
    with pytest.raises(ValueError, match="shapes"):
        run_app(_app(err), ["fail", "--debug"])
    with pytest.raises(ConfigError):
        run_app(_app(ConfigError("x")), ["--debug", "fail"])
