"""The one reader of every JSON, JSONL and YAML file the command line reads: nesting bounded, errors in one line.

Python's JSON and YAML parsers recurse once per level of nesting, so a file nested 100,000 deep (a
split, a benchmark release, a summary.json, a metrics.jsonl row, a run's config.yaml) ended
``data import``, ``compare``, ``analyze``, ``report`` and ``--resume`` in a ``RecursionError``
traceback; a file nested a few hundred deep parses but makes any recursive walk over it (settings
flattening, ``json.dumps``) fail later. Here nesting deeper than :data:`MAX_DEPTH` is refused before
parsing, and every failure is a :class:`FileFormatError` (a ``ValueError``) naming the file and line.

>>> json_text('{"a": [1, 2]}', "x.json")
{'a': [1, 2]}
>>> json_text("[" * 1000 + "]" * 1000, "x.json")
Traceback (most recent call last):
...
echoink.bounded.FileFormatError: x.json: line 1: JSON nested deeper than 100 levels; not a file echoink writes
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import UserError

MAX_DEPTH = 100
"""Deepest nesting accepted. echoink's own files nest at most ~6 levels (a summary's conditions by
category); a model's config.json ~4. Far below Python's recursion limit, so consumers that walk the
value recursively stay safe too."""

# A JSON string (skipped whole: brackets inside text do not nest) or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# YAML: quoted scalars in either style, a comment, or a flow bracket.
_YAML_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|\'(?:[^\']|\'\')*\'|#[^\n]*|[\[\]{}]')


class FileFormatError(UserError):
    """A file echoink reads is not what it should be; the message names the file (and line)."""


def _where(name: str | Path, line: int | None) -> str:
    return f"{name}: line {line}" if line else str(name)


def _too_deep(text: str, token: re.Pattern[str]) -> int | None:
    """The 1-based line where bracket nesting first passes MAX_DEPTH, or None."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common case, at C speed
        return None
    depth = 0
    for m in token.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, m.start()) + 1
        elif c in "]}":
            depth -= 1
    return None


def json_too_deep(text: str) -> str | None:
    """The reason ("line N: JSON nested deeper than ...") when ``text`` nests past MAX_DEPTH, else None (for
    readers with their own error type, such as the split loader's RowError)."""
    line = _too_deep(text, _JSON_TOKEN)
    return None if line is None else f"line {line}: JSON nested deeper than {MAX_DEPTH} levels"


def json_text(text: str | bytes, name: str | Path, line: int | None = None) -> Any:
    """Parse ``text`` (from ``name``, at ``line`` for a JSONL row); FileFormatError when too deep or not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise FileFormatError(
                f"{_where(name, line)} is not JSON (not UTF-8 at byte {err.start})"
            ) from None
    deep = _too_deep(text, _JSON_TOKEN)
    if deep is not None:
        raise FileFormatError(
            f"{_where(name, (line or 1) + deep - 1)}: JSON nested deeper than {MAX_DEPTH} levels; "
            "not a file echoink writes"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        at = (line or 1) + err.lineno - 1
        raise FileFormatError(f"{_where(name, at)} is not JSON ({err.msg}, column {err.colno})") from None
    except RecursionError:  # unreachable after the depth check; kept so no traceback can escape
        raise FileFormatError(f"{name}: JSON nested too deeply to read") from None


def read_text(path: str | Path) -> str:
    """A file's UTF-8 text; FileFormatError (naming it) when unreadable or not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise FileFormatError(f"{path}: cannot read ({err.strerror})") from None


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path`` (see :func:`json_text`)."""
    return json_text(read_text(path), path)


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; FileFormatError naming ``what`` it should be otherwise."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise FileFormatError(f"{path}: not {what} (a JSON object expected, found {type(value).__name__})")
    return value


def yaml_text(text: str, name: str | Path) -> Any:
    """A YAML file echoink wrote (a run's config.yaml, read as ``yaml.safe_load`` reads it), flow nesting
    bounded; FileFormatError. Recipes have their own reader (``config.load_config``: YAML 1.2 booleans,
    alias bombs refused); this one sits below the config layer, so it only bounds and names."""
    import yaml

    deep = _too_deep(text, _YAML_TOKEN)
    if deep is not None:
        raise FileFormatError(f"{_where(name, deep)}: YAML nested deeper than {MAX_DEPTH} levels")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise FileFormatError(f"{_where(name, line)}: not YAML ({problem})") from None
    except RecursionError:  # block nesting (indentation) past the recursion limit: no brackets to count
        raise FileFormatError(f"{name}: YAML nested too deeply to read") from None


def read_yaml(path: str | Path) -> Any:
    """The YAML value in ``path`` (see :func:`yaml_text`)."""
    return yaml_text(read_text(path), path)
