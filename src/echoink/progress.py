"""Progress of the commands that loop over items: a bar in a terminal, a line per step elsewhere.

In a terminal, a tqdm bar (items done of total, rate, ETA). Elsewhere (a log file, CI, a pipe) a
carriage-return bar is one unreadable line, so one plain line is written each time another
``every`` of the total is done (default 10%): ``eval omnibench/none: 40% (400/1000 items, 2.31
items/s, ETA 4:20)``. ``echoink --quiet`` (or ``--quiet`` anywhere on the line) silences both.
"""

from __future__ import annotations

import sys
import time
from typing import IO

QUIET = False
"""Set by the command line's ``--quiet``: no bars, no progress lines."""


def _eta(seconds: float) -> str:
    from tqdm import tqdm

    return tqdm.format_interval(max(0.0, seconds))


class Progress:
    """``with Progress(total, "eval none") as bar: bar.update(n)``; silent when ``quiet`` or ``QUIET``
    (``quiet``: this process should not report, e.g. not the main one of several)."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "item",
        stream: IO[str] | None = None,
        every: float = 0.1,
        quiet: bool | None = None,
        initial: int = 0,
    ) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.done, self._start, self._first = initial, time.perf_counter(), initial
        self._shown = int(initial / total / every + 1e-9) if total > 0 else 0
        self._bar, self._postfix = None, ""
        self.quiet = QUIET or bool(quiet)
        if not self.quiet and total > 0 and _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True,
                disable=False,  # decided here; TQDM_DISABLE (set by --quiet for the libraries) is not ours
            )  # fmt: skip

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.quiet and self.total > 0:
            step = int(self.done / self.total / self.every + 1e-9)
            if step > self._shown:
                self._shown = step
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def set_postfix(self, **values: str) -> None:
        """Shown after the bar (a terminal) or at the end of each progress line."""
        if self._bar is not None:
            self._bar.set_postfix(**values)
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self) -> str:
        """``desc: 40% (400/1000 items, 2.31 items/s, ETA 4:20)``."""
        elapsed = time.perf_counter() - self._start
        rate = (self.done - self._first) / elapsed if elapsed > 0 else 0.0
        eta = _eta((self.total - self.done) / rate) if rate > 0 else "?"
        pct = 100 * self.done / self.total
        tail = f"; {self._postfix}" if self._postfix else ""
        return (
            f"{self.desc}: {pct:.0f}% ({self.done}/{self.total} {self.unit}s, "
            f"{rate:.2f} {self.unit}s/s, ETA {eta}){tail}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
