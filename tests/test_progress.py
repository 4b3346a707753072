"""Progress: a line per tenth off a terminal, a tqdm bar on one, nothing under --quiet."""

from __future__ import annotations

import io
import os

import pytest
from typer.testing import CliRunner

from echoink import progress
from echoink.cli import app
from echoink.progress import Progress


@pytest.fixture
def restore_loud():
    """--quiet sets progress.QUIET and the libraries' environment variables for the process: undo both."""
    yield
    progress.QUIET = False
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.pop(name, None)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_per_tenth_off_a_terminal():
    stream = io.StringIO()
    with Progress(25, "eval none", stream=stream) as bar:
        for _ in range(25):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("eval none: 12% (3/25 items, ")
    assert lines[-1].startswith("eval none: 100% (25/25 items, ") and "ETA 00:00" in lines[-1]
    assert "\r" not in stream.getvalue()


def test_a_bar_on_a_terminal_and_nothing_when_quiet():
    term = _Terminal()
    with Progress(4, "check val.json", unit="row", stream=term) as bar:
        bar.update(4)
    assert (
        "check val.json: 100%" in term.getvalue() and "4/4" in term.getvalue() and "row/s" in term.getvalue()
    )
    quiet = io.StringIO()
    with Progress(4, "x", stream=quiet, quiet=True) as bar:
        bar.update(4)
    assert quiet.getvalue() == ""


def test_data_check_reports_progress_and_quiet_silences_it(good_split, restore_loud):
    loud = CliRunner().invoke(app, ["data", "check", str(good_split)])
    assert loud.exit_code == 0, loud.output
    assert "check train.json: 100% (4/4 rows" in loud.stderr
    quiet = CliRunner().invoke(app, ["--quiet", "data", "check", str(good_split)])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "4 good" in quiet.stdout
    assert os.environ["TQDM_DISABLE"] == "1"  # transformers' own bars too


def test_quiet_is_accepted_anywhere_on_the_line(good_split, capsys, restore_loud):
    from echoink.cli import run

    with pytest.raises(SystemExit) as code:
        run(["data", "check", str(good_split), "--quiet"])
    out = capsys.readouterr()
    assert code.value.code == 0 and out.err == "" and "4 good" in out.out


def test_resumed_progress_counts_from_where_it_was_and_shows_the_postfix():
    stream = io.StringIO()
    with Progress(10, "GRPO", unit="step", stream=stream, initial=6) as bar:
        for _ in range(4):
            bar.set_postfix(reward="0.500")
            bar.update()
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == ["70", "80", "90", "100"]
    assert lines[-1].startswith("GRPO: 100% (10/10 steps, ") and lines[-1].endswith("; reward=0.500")
