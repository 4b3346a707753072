"""The benchmark side of the command line: ``data import``, ``data overlap`` and ``eval --suite``.

Registered on ``cli.data_app`` (``eval --suite`` is dispatched here by ``cli_eval``); each command is a
thin call into ``data/importers``, ``data/overlap.py`` or ``eval/suite.py``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .cli_app import data_app

BENCHMARK_NAMES = "omnibench, daily-omni, worldsense, mmau, mmar"  # the registry's; a test holds them equal


@data_app.command("import")
def data_import(
    name: str = typer.Argument(..., help=f"Benchmark: {BENCHMARK_NAMES}."),
    src: Path = typer.Argument(..., help="The release folder as its authors lay it out (see the README)."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for NAME.json; must hold SRC (media are not copied)."
    ),
) -> None:
    """Turn a released benchmark into a split every echoink command reads (rows left out for missing media are counted)."""
    from .data.importers import BENCHMARKS, import_benchmark

    typer.echo(import_benchmark(name, src, out).line())
    typer.echo(f"licence: {BENCHMARKS.get(name).licence}")


@data_app.command("overlap")
def data_overlap(
    split_a: Path = typer.Argument(..., help="Split A (e.g. the training split)."),
    split_b: Path = typer.Argument(..., help="Split B (e.g. an imported benchmark)."),
) -> None:
    """List B's items whose normalised question + options match an item of A (and whether their media files
    are identical), after the rows read and skipped in each split; exit 2 when a split yields no row."""
    from .data.overlap import split_overlap_counted

    matches, reads = split_overlap_counted(split_a, split_b)  # a split yielding no row: one line, exit 2
    for name, read in zip("AB", reads, strict=True):
        typer.echo(f"{name}: {read.line()}")
    typer.echo(f"{len(matches)} item(s) of {split_b} match an item of {split_a}")
    for m in matches:
        typer.echo(f"  {m.id_b}  = A's {m.id_a}  (media: {m.media})")


def run_suite_cli(
    model: Path, suite: Path | None, data: Path | None, out: Path, flags: dict, kwargs: dict
) -> None:
    """``eval --suite``: the training's settings where no flag is given, every imported split, one table."""
    from .eval.suite import format_suite, run_suite
    from .preflight import check_model_dir, check_suite_members
    from .preflight_model import check_eval_model
    from .recipe_card import evaluate_arguments, record_sources, training_split
    from .runlock import run_lock

    if (suite is None) == (data is None):
        raise typer.BadParameter("give exactly one of --data SPLIT and --suite DIR")
    check_model_dir(model, "--model")
    check_suite_members(suite)  # every member, before the first is evaluated
    desync = flags.pop("desync_seconds")
    used, sources = evaluate_arguments(flags, model, desync)
    check_eval_model(model, kwargs["engine"], used["max_new_tokens"])
    train = training_split(model)
    with run_lock(out):
        result = run_suite(model, suite, out, train_split=train, **kwargs, **used)
        for name in result["benchmarks"]:
            record_sources(out / name / "summary.json", sources)
    typer.echo(format_suite(result))
    typer.echo(f"written: {out / 'suite.json'}, {out / 'suite.md'}")
