"""The ``echoink`` command line. Each subcommand is a thin call into one module."""

from __future__ import annotations

from pathlib import Path

import typer

from . import __version__

app = typer.Typer(
    help="GRPO for audio-visual reasoning on the Qwen2.5-Omni thinker (EchoInk-R1).", no_args_is_help=True
)
data_app = typer.Typer(help="Inspect and generate datasets in the AVQA-R1-6K schema.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"echoink {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """echoink: train and evaluate omni-modal reasoning with GRPO."""


@data_app.command("check")
def data_check(
    split: list[Path] = typer.Argument(
        ..., help="Split file(s): JSON list or JSONL in the AVQA-R1-6K schema."
    ),
) -> None:
    """Validate every row and print counts, modality mix, answer balance, media stats and every problem (exit 1 if any)."""
    from .data.check import check_split
    from .data.schema import RowError

    bad = False
    for path in split:
        try:
            report = check_split(path)
        except RowError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo("\n".join(report.lines()))
        bad |= bool(report.problems)
    raise typer.Exit(1 if bad else 0)


@data_app.command("show")
def data_show(
    split: Path = typer.Argument(..., help="Split file."),
    index: int = typer.Option(0, "--index", "-i", help="Row index of the sample to render."),
    template: str = typer.Option("reasoning", help="Prompt template name."),
) -> None:
    """Print one sample rendered as the prompt the model sees (media shown as placeholders)."""
    from .data import TEMPLATES, load_split

    if template not in TEMPLATES:
        raise typer.BadParameter(f"unknown template {template!r}; valid: {', '.join(TEMPLATES.names())}")
    samples = load_split(split, on_error="skip").samples
    if not 0 <= index < len(samples):
        typer.echo(f"error: index {index} out of range (0..{len(samples) - 1} valid samples)", err=True)
        raise typer.Exit(1)
    s = samples[index]
    typer.echo(f"id: {s.id}   answer: {s.answer}   data_type: {s.data_type}")
    if s.image:
        typer.echo(f"[image: {s.image}]")
    if s.audio:
        typer.echo(f"[audio: {s.audio}]")
    typer.echo(TEMPLATES.get(template)(s))
    if s.metadata:
        typer.echo(f"metadata: {s.metadata}")


if __name__ == "__main__":
    app()
