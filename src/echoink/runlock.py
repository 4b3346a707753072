"""One writer per output directory: an exclusive lock held by ``train``, ``sft`` and ``eval --out``.

Two trainings into one run directory would interleave their metrics lines and mix their checkpoints,
``final/`` and config.yaml, and both would exit 0. The lock is an ``flock`` on ``DIR/.echoink.lock``:
the kernel drops it when the holder dies, however it dies, so a lock is never falsely held; the file
also records the holder's pid and command, so the second writer's error names it. A file still
naming a holder when the flock is free was left by a process that died without cleaning up (kill -9):
it is taken over with a warning.

Only the main process of a multi-process launch locks (``RANK`` unset or 0); the other ranks write
nothing of their own into the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .bounded import json_text
from .errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = ".echoink.lock"


class RunLocked(UserError, RuntimeError):
    """Another live process holds the output directory; the message names it."""


@dataclass
class HeldLock:
    file: TextIO  # open, flock'ed
    path: Path
    created_dir: bool  # acquire made the directory (release removes it if nothing else was written)


def _holder(fh) -> dict:
    fh.seek(0)
    try:
        info = json_text(fh.read() or "{}", fh.name)  # nesting bounded: a planted file is just unreadable
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')!r}, since {info.get('started')})"
    )


def acquire(directory: str | Path, command: str | None = None) -> HeldLock:
    """Lock ``directory`` (created if missing) for this process.

    Raises RunLocked at once if a live process holds it. Release with :func:`release`.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory}: exists and is not a directory; choose an output directory")
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _holder(fh)
        fh.close()
        raise RunLocked(
            f"{directory}: in use by {_describe(info)}; wait for it to finish or choose another directory"
        ) from None
    if not _still_there(fh, path):  # its last holder removed it between our open and flock: lock a new one
        fh.close()
        return acquire(directory, command)
    stale = _holder(fh)
    if stale:
        log.warning(
            "%s: taking over a stale lock of %s, which is no longer running", directory, _describe(stale)
        )
    fh.seek(0)
    fh.truncate()
    fh.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command or " ".join(sys.argv),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
    )
    fh.flush()
    return HeldLock(fh, path, created)


def _still_there(fh, path: Path) -> bool:
    """Whether ``path`` is still the file ``fh`` holds open (release unlinks it under the flock)."""
    try:
        return os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False


def release(lock: HeldLock) -> None:
    """Remove the lock file while the flock is held (no empty ``.echoink.lock`` is left behind; a process
    that opened it meanwhile sees it gone and locks a new one) and drop the flock.

    A directory this lock created and nothing else wrote into (the command failed its checks) is
    removed, lock file first while the flock is still held, so no other process can lock a file
    that is about to disappear.
    """
    fh, path = lock.file, lock.path
    path.unlink(missing_ok=True)
    if lock.created_dir and not any(path.parent.iterdir()):
        path.parent.rmdir()
    fh.seek(0)
    fh.truncate()
    fh.flush()
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    fh.close()


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def run_lock(directory: str | Path, command: str | None = None) -> Iterator[None]:
    """Hold the lock on ``directory`` for the block (on the main rank only)."""
    if not _is_main_rank():
        yield
        return
    lock = acquire(directory, command)
    try:
        yield
    finally:
        release(lock)
