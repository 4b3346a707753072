"""The shared JSONL reader: a torn last line (kill mid-write) is ignored with a warning, cut on repair."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from echoink.jsonl import read_jsonl
from echoink.runlog import RunLog

TORN = '{"step": 3, "completion": "<think>half'


def _write(path: Path, rows: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def test_torn_tail_is_ignored_and_only_repair_cuts_it(tmp_path: Path, caplog):
    path = _write(tmp_path / "m.jsonl", [{"step": 1}, {"step": 2}], TORN)
    with caplog.at_level(logging.WARNING, logger="echoink.jsonl"):
        assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert "torn last line 3" in caplog.text
    assert path.read_text().endswith(TORN)  # a reader only looks
    assert read_jsonl(path, repair=True) == [{"step": 1}, {"step": 2}]
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_complete_last_line_without_newline_is_kept_and_repair_ends_it(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}')
    assert read_jsonl(path, repair=True) == [{"step": 1}, {"step": 2}]
    with open(path, "a") as fh:  # the next append must start on its own line
        fh.write('{"step": 3}\n')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]


@pytest.mark.parametrize("bad", ['{"step": 1', "[1, 2]", "\xff\xfe"])
def test_damage_before_the_last_line_raises_with_file_and_line(tmp_path: Path, bad: str):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"step": 0}\n' + bad.encode("latin-1") + b'\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl: line 2 is not (a )?JSON"):
        read_jsonl(path)


def test_resume_cuts_a_torn_tail(tmp_path: Path):
    log = RunLog(tmp_path)
    _write(log.metrics_path, [{"step": 1}, {"step": 2}, {"step": 3}], '{"step": 4, "rew')
    _write(log.rollouts_path, [{"step": 1, "id": "a"}], TORN)
    log.truncate_after(2)  # was: json.JSONDecodeError, and --resume crashed
    assert read_jsonl(log.metrics_path) == [{"step": 1}, {"step": 2}]
    assert log.rollouts_path.read_text() == '{"step": 1, "id": "a"}\n'
