"""The run directory's per-step files: metrics.jsonl and rollouts.jsonl (one JSON object a line).

Every line carries ``step``. On resume, lines of steps after the restored checkpoint (all of them when
there was none) are cut, so a run killed between logging and checkpointing does not end up with two
lines for one step; the trainer says how many. A fresh run starts only in an empty directory
(``rl/run_dir.py``, ``outdir.py``), so nothing here ever starts a file over.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .jsonl import read_jsonl

__all__ = ["RunLog", "read_jsonl"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class RunLog:
    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled  # only the main process writes
        self.metrics_path = run_dir / "metrics.jsonl"
        self.rollouts_path = run_dir / "rollouts.jsonl"

    def _append(self, path: Path, rows: list[dict[str, Any]]) -> None:
        if not self.enabled or not rows:
            return
        with open(path, "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self._append(self.metrics_path, [{"step": step, **values}])

    def rollouts(self, rows: list[dict[str, Any]]) -> None:
        self._append(self.rollouts_path, rows)

    def truncate_after(self, step: int) -> dict[str, int]:
        """Drop lines of steps > ``step`` (called on resume from checkpoint ``step``, 0 when there was none),
        and a torn last line; returns how many lines each file lost ({file name: lines cut})."""
        cut = {}
        if not self.enabled:
            return cut
        for path in (self.metrics_path, self.rollouts_path):
            if path.exists():
                rows = read_jsonl(path, repair=True)
                kept = [row for row in rows if row["step"] <= step]
                path.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
                cut[path.name] = len(rows) - len(kept)
        return cut


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall-clock seconds to ``timings[key]`` (summed over repeated blocks): the
    ``time/…`` metrics of a step.

    >>> timings = {}
    >>> with timed(timings, "time/rewards"):
    ...     pass
    >>> timings["time/rewards"] >= 0.0
    True
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
