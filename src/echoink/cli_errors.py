"""How the command line reports errors: one ``error: <file or field>: <reason>`` line, exit 2.

A user's mistake (a bad recipe, a missing file, a damaged split, a held lock) is not a bug, so it
gets no traceback. Anything else is ours: one line says it is an internal error and names the file
that holds its traceback (exit 1). ``--debug`` anywhere on the command line shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from .errors import UserError


def is_user_error(err: BaseException) -> bool:
    """Errors a user's input causes: shown as one line. echoink's own types (``errors.UserError``:
    ConfigError, RowError, MediaError, RunLocked, CheckpointDamaged, TrainingAborted, ...), a recipe
    that is not YAML, and a path that is missing, may not be read, or is a file where a folder belongs
    (or the reverse). Anything else, a ``ValueError``
    from deep inside torch included, is a bug: its trace is kept (``internal_error``)."""
    import yaml

    paths = FileNotFoundError | PermissionError | NotADirectoryError | IsADirectoryError
    return isinstance(err, UserError | paths | yaml.YAMLError)


def internal_error(err: BaseException) -> str:
    """Write ``err``'s full traceback to a new file and return the one line that says where.

    The file goes to the system's temporary folder (the command may have failed before its own
    output folder existed); each failure gets its own, so processes of one launch do not overwrite
    each other's."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="echoink-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write("".join(traceback.format_exception(err)))
    return (
        f"error: internal error ({type(err).__name__}: {one_line(err)}); the full traceback is in "
        f"{path}; run again with --debug to show it"
    )


def one_line(err: BaseException | str) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_app(app: typer.Typer, argv: list[str]) -> None:
    """Run ``app`` on ``argv`` with user errors as ``error: <where>: <reason>`` and exit 2, other errors
    as one ``internal error`` line and exit 1; exits.

    Usage errors (an unknown option, a value out of range) get the same one line instead of
    typer's boxed panel. ``--debug`` (anywhere on the command line) shows the full traceback instead.
    """
    try:  # typer >= 0.2x carries its own copy of click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    args = list(argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        code = typer.Typer.__call__(app, args=args, prog_name="echoink", standalone_mode=False)
    except cx.NoArgsIsHelpError as err:
        typer.echo(err.format_message(), err=True)  # the help text itself
        sys.exit(err.exit_code)
    except cx.ClickException as err:
        where = f"{err.ctx.command_path}: " if getattr(err, "ctx", None) is not None else ""
        typer.echo(f"error: {where}{one_line(err.format_message())}", err=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except Exception as err:
        if debug:
            raise
        if not is_user_error(err):
            typer.echo(internal_error(err), err=True)
            sys.exit(1)
        typer.echo(f"error: {one_line(err)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def one_process_only(command: str) -> None:
    """Refuse ``command`` under a launcher that started several processes (accelerate launch,
    torchrun: WORLD_SIZE > 1): each process would do the whole job and write every file again.
    Process 0 says so in one line and fails; the others exit quietly with status 0, because a
    launcher that sees a process fail kills the rest, which could kill process 0 before it has
    said why (seen under DeepSpeed's launcher in CI)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return
    if int(os.environ.get("RANK", "0") or 0) != 0:
        raise SystemExit(0)
    raise UserError(
        f"echoink {command} runs on one process, but it was launched as {world}: run it without "
        "accelerate launch / torchrun (only echoink train shards its work across processes)"
    )
