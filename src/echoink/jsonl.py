"""The one JSONL reader: metrics.jsonl, rollouts.jsonl and predictions.jsonl (one JSON object a line).

A process killed while appending leaves a torn last line. Readers that only look (``analyze``,
``report``) ignore it with a warning; writers about to append (a resumed training, a resumed
evaluation) call with ``repair=True``, which also cuts it from the file, so the next line does not
land glued to half a line. A bad line anywhere else is not a kill's trace but damage: it raises,
naming the file and line.

>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
>>> _ = p.write_text('{"step": 1}\\n{"step": 2, "lo')
>>> read_jsonl(p)
[{'step': 1}]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import UserError

log = logging.getLogger(__name__)


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a JSONL file of objects; a torn last line is dropped with a warning (and cut with ``repair``).

    A last line that parses but lacks its newline is kept; ``repair`` adds the newline.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: after the last newline ("" when the file ends in one)
    rows = [_parse(path, i + 1, line) for i, line in enumerate(complete) if line.strip()]
    if not tail.strip():
        return rows
    try:
        rows.append(_parse(path, len(complete) + 1, tail))
    except ValueError:
        log.warning(
            "%s: ignoring a torn last line %d (%d bytes; a write cut short)", path, len(lines), len(tail)
        )
        if repair:
            with open(path, "r+b") as fh:
                fh.truncate(len(data) - len(tail))
        return rows
    if repair:
        with open(path, "ab") as fh:
            fh.write(b"\n")
    return rows


def _parse(path: Path, lineno: int, line: bytes) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: line {lineno} is not JSON ({err})") from None
    if not isinstance(row, dict):
        raise UserError(f"{path}: line {lineno} is not a JSON object")
    return row
