"""Where a command may write: a new or empty directory, or one the same command wrote before and
continues (an eval folder, a run directory on ``--resume``). Anything else is someone's work.

``data synth`` used to replace a user's train.json and media, ``model tiny`` a trained model's weights
(leaving its stale recipe card), ``sft`` an earlier fine-tune's metrics and ``final/``. Every command
that writes a directory asks :func:`check_output_dir` first, before it writes anything, so a refusal
leaves the directory as it was. The lock file ``run_lock`` puts there is not content.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import UserError
from .runlock import LOCK_FILE

__all__ = ["OutputNotEmpty", "check_output_dir", "contents"]


class OutputNotEmpty(UserError, FileExistsError):
    """The output directory holds files this command did not write; the message says how to proceed."""


def contents(directory: str | Path) -> list[str]:
    """The names in ``directory`` besides the lock file, sorted ([] when it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name != LOCK_FILE)


def check_output_dir(directory: str | Path, option: str, command: str, own: Sequence[str] = ()) -> bool:
    """May ``echoink COMMAND`` write into ``directory`` (named by ``option``, e.g. ``--out``)?

    False: it is new or empty. True: it holds a file matching one of the glob patterns ``own``
    (this command's earlier output, which it continues). Otherwise raises OutputNotEmpty, one line
    naming what is there and how to proceed; NotADirectoryError when it is a file.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{option}: {directory} is a file, not a directory; choose another {option}")
    names = contents(directory)
    if not names:
        return False
    if any(next(directory.glob(pattern), None) is not None for pattern in own):
        return True
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    why = (
        f" and holds no {own[0]} of an earlier `echoink {command}`"
        if own
        else f"; `echoink {command}` writes only into a new or empty directory"
    )
    raise OutputNotEmpty(
        f"{option}: {directory} is not empty ({shown}){why}: choose another {option} "
        f"(or, if nothing in {directory} is needed, remove it yourself)"
    )
