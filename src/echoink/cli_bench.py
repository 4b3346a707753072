"""The benchmark side of the command line: ``data import`` and ``data overlap``.

Registered on ``cli.data_app``; each command is a thin call into ``data/importers`` or ``data/overlap.py``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .cli import data_app

BENCHMARK_NAMES = "omnibench, daily-omni, worldsense, mmau, mmar"  # the registry's; a test holds them equal


@data_app.command("import")
def data_import(
    name: str = typer.Argument(..., help=f"Benchmark: {BENCHMARK_NAMES}."),
    src: Path = typer.Argument(..., help="The release folder as its authors lay it out (see the README)."),
    out: Path = typer.Option(..., "--out", help="Folder for NAME.json; must hold SRC (media are not copied)."),
) -> None:
    """Turn a released benchmark into a split every echoink command reads (rows left out for missing media are counted)."""
    from .data.importers import import_benchmark

    typer.echo(import_benchmark(name, src, out).line())


@data_app.command("overlap")
def data_overlap(
    split_a: Path = typer.Argument(..., help="Split A (e.g. the training split)."),
    split_b: Path = typer.Argument(..., help="Split B (e.g. an imported benchmark)."),
) -> None:
    """List B's items whose normalised question + options match an item of A (and whether their media files are identical)."""
    from .data.overlap import split_overlap

    matches = split_overlap(split_a, split_b)
    typer.echo(f"{len(matches)} item(s) of {split_b} match an item of {split_a}")
    for m in matches:
        typer.echo(f"  {m.id_b}  = A's {m.id_a}  (media: {m.media})")

