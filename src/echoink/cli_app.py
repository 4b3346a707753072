"""The ``echoink`` typer app, its global options and its one-line error handling.

Its own module so that the command modules (``cli``, ``cli_eval``) import it and not each other:
``cli`` registers the training-side commands and imports ``cli_eval`` for the evaluation side, so
importing ``echoink.cli`` (the console script ``echoink.cli:app``) registers every command.
"""

from __future__ import annotations

import math
import sys
import types

import typer
from typer.core import TyperGroup

from . import __version__

try:  # typer >= 0.2x carries its own copy of click
    from typer._click.exceptions import BadParameter
except ImportError:  # pragma: no cover
    from click.exceptions import BadParameter


def _finite_check(param) -> None:
    """Make ``param`` refuse a non-finite float after typer has converted it (its own range check
    passes "nan", which compares false, and "inf" against a lower bound)."""
    convert = param.process_value

    def process_value(ctx, value):
        value = convert(ctx, value)
        for number in value if isinstance(value, list | tuple) else (value,):
            if isinstance(number, float) and not math.isfinite(number):
                raise BadParameter(f"{number} is not a finite number", ctx=ctx, param=param)
        return value

    param.process_value = process_value


class CheckedGroup(TyperGroup):
    """Every float option and argument of every command must be finite, whoever declares it: one
    place instead of a check per flag (``--desync-seconds inf`` was an OverflowError after the first
    pass, ``nan`` an error not naming the flag). Ranges stay with each option (``min=``, ``max=``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if not isinstance(command, TyperGroup):  # a sub-app is a CheckedGroup itself
                for param in command.params:
                    _finite_check(param)


class _App(typer.Typer):
    """A Typer whose plain call (``app()``, what the ``echoink`` console script does) goes through
    :func:`run`, so an installed script shows user errors as one line without being regenerated."""

    def __call__(self, *args, **kwargs):
        if args or kwargs:
            return super().__call__(*args, **kwargs)
        return run()


app = _App(
    help="GRPO for audio-visual reasoning on the Qwen2.5-Omni and Qwen3-Omni thinkers (EchoInk-R1).",
    no_args_is_help=True,
    cls=CheckedGroup,
)
data_app = typer.Typer(
    help="Inspect and generate datasets in the AVQA-R1-6K schema.", no_args_is_help=True, cls=CheckedGroup
)
app.add_typer(data_app, name="data")
model_app = typer.Typer(help="Build and inspect models.", no_args_is_help=True, cls=CheckedGroup)
app.add_typer(model_app, name="model")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"echoink {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an error (accepted anywhere on the line)."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", help="No progress bars or progress lines (accepted anywhere on the line)."
    ),
) -> None:
    """echoink: train and evaluate omni-modal reasoning with GRPO."""
    import os

    from . import progress

    progress.QUIET = quiet
    if quiet:  # the libraries' own bars too (transformers' weight loading and saving), read at their import
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    _quiet_deepspeed_cpu_guess()

    # Idle OpenMP workers spin by default; on cores shared with other work they steal the time the
    # busy thread needs (over ten times slower: docs/architecture.md). PASSIVE makes them sleep. It must be set before torch starts its thread
    # pool (torch is imported only inside the commands), and it changes no arithmetic (same losses).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def lab(name: str) -> types.ModuleType:
    """The module a lab command (``echoink demo``, ``data synth``, ``model tiny``) dispatches to, imported
    when the command runs: ``demo``, ``synth``, ``synth_shortcut`` or ``synth_video`` of ``echoink_lab``,
    or ``testing`` (``echoink.testing``, the tiny-model builders).

    The lab and the tiny models are clients of the library: no other module of ``echoink`` imports them
    (``tests/test_boundary.py``), so the library runs and installs without them being imported."""
    if name == "testing":
        from . import testing

        return testing
    from echoink_lab import demo, synth, synth_shortcut, synth_video

    modules = {"demo": demo, "synth": synth, "synth_shortcut": synth_shortcut, "synth_video": synth_video}
    return modules[name]


def _quiet_deepspeed_cpu_guess() -> None:
    """Drop DeepSpeed's "Setting accelerator to CPU. If you have GPU ..., we were unable to detect it"
    warning, printed after every CPU command that imports accelerate: on a machine without a GPU it is
    noise, and on one with a GPU ``echoink doctor`` says what torch sees. Its other messages stay."""
    import logging

    ds = logging.getLogger("DeepSpeed")  # deepspeed.utils.logger's name; the filter stays when it is set up
    if not any(getattr(f, "echoink", False) for f in ds.filters):
        drop = logging.Filter()
        drop.filter = lambda record: not str(record.msg).startswith("Setting accelerator to CPU")  # type: ignore[method-assign]
        drop.echoink = True  # type: ignore[attr-defined]
        ds.addFilter(drop)


def run(argv: list[str] | None = None) -> None:
    """``app`` with every user error as one ``error:`` line (see ``cli_errors``); exits.

    The commands are those registered so far: the entry points import ``echoink.cli``, which
    registers them all."""
    from .cli_errors import run_app

    args = list(sys.argv[1:] if argv is None else argv)
    if "--quiet" in args:  # anywhere on the line, like --debug: moved to the front, where it is declared
        args = ["--quiet", *(a for a in args if a != "--quiet")]
    run_app(app, args)
