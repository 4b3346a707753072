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
model_app = typer.Typer(help="Build and inspect models.", no_args_is_help=True)
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


@model_app.command("tiny")
def model_tiny(
    out: Path = typer.Option(
        ..., "--out", help="Directory to write the model, tokenizer and processor into."
    ),
    hidden: int = typer.Option(64, min=16, max=512, help="Text hidden size (a multiple of 16)."),
    layers: int = typer.Option(2, min=1, help="Text decoder layers."),
    vocab: int = typer.Option(
        1024, min=1024, max=8192, help="Embedding rows (tokenizer size is at most this)."
    ),
    seed: int = typer.Option(0, help="Weight initialisation seed."),
    corpus: list[Path] = typer.Option(
        [], "--corpus", help="Extra text file(s) to train the tokenizer on, one line per example."
    ),
) -> None:
    """Build a tiny random Qwen2.5-Omni thinker + locally trained tokenizer + real processor (seconds, offline)."""
    from .model.tiny import build_tiny

    extra = [line for path in corpus for line in path.read_text().splitlines() if line.strip()]
    path = build_tiny(out, hidden=hidden, layers=layers, vocab=vocab, seed=seed, extra_corpus=extra)
    typer.echo(f"tiny thinker written to {path}")


if __name__ == "__main__":
    app()
