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
    json_out: Path | None = typer.Option(None, "--json", help="Also write the counts as JSON here."),
) -> None:
    """Turn a released benchmark into a split every echoink command reads (rows left out for missing media are counted)."""
    import json

    from .data.importers import BENCHMARKS, import_benchmark

    report = import_benchmark(name, src, out)
    typer.echo(report.line())
    typer.echo(f"licence: {BENCHMARKS.get(name).licence}")
    if json_out is not None:
        fields = {"path": str(report.path), "rows": report.rows, "left_out": len(report.missing)}
        json_out.write_text(json.dumps(fields | {"missing": report.missing}, indent=1))
    typer.echo(f"next: echoink data check {report.path}; echoink eval --model MODEL --suite {out} --out EVAL")


@data_app.command("overlap")
def data_overlap(
    split_a: Path = typer.Argument(..., help="Split A (e.g. the training split)."),
    split_b: Path = typer.Argument(..., help="Split B (e.g. an imported benchmark)."),
    media: bool = typer.Option(
        False,
        "--media",
        help="Also B's items that use a medium of A by content (SHA-256), whatever the text.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the matches as JSON here."),
) -> None:
    """List B's items whose normalised question + options match an item of A (and whether their media files
    are identical), after the rows read and skipped in each split; exit 2 when a split yields no row; with
    --media, apart, the items sharing an audio, image or video file's content."""
    import json

    from .data.media_overlap import format_overlap_report, overlap_report
    from .data.overlap import split_overlap_counted

    matches, reads = split_overlap_counted(split_a, split_b)  # a split yielding no row: one line, exit 2
    for name, read in zip("AB", reads, strict=True):
        typer.echo(f"{name}: {read.line()}")
    if media or json_out is not None:
        report = overlap_report(split_a, split_b)
        if not media:
            report.pop("media")
        report["rows"] = {
            n: {"read": r.rows, "skipped": len(r.skipped)} for n, r in zip("AB", reads, strict=True)
        }
        typer.echo("\n".join(format_overlap_report(report)))
        if json_out is not None:
            json_out.write_text(json.dumps(report, indent=1))
        return
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
    typer.echo(settings_line(used, sources, kwargs["decoding"]))
    train = training_split(model)
    with run_lock(out):
        result = run_suite(model, suite, out, train_split=train, **kwargs, **used)
        for name in result["benchmarks"]:
            record_sources(out / name / "summary.json", sources)
    typer.echo(format_suite(result))
    typer.echo(f"written: {out / 'suite.json'}, {out / 'suite.md'}")


def settings_line(used: dict, sources: dict, decoding) -> str:
    """``settings: template=... (training recipe), ..., decoding=greedy``: printed once, before the work."""
    from dataclasses import asdict

    from .eval.summary import decoding_text

    flat = ", ".join(f"{k}={v} ({sources[k]})" for k, v in _flat(used).items())
    return f"settings: {flat}, decoding={decoding_text(asdict(decoding))}"


def _flat(used: dict) -> dict:
    """The settings under their recipe names (the video ones out of their VideoSettings), for the echo."""
    video = used["video"]
    flat = {k: v for k, v in used.items() if k != "video"}
    return flat | {
        "video_fps": video.fps,
        "max_frames": video.max_frames,
        "max_video_pixels": video.max_pixels,
    }
