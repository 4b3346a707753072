"""The evaluation side of the ``echoink`` command line: eval, export, compare, analyze, report.

Registered on ``cli_app.app`` (``cli`` imports this module); each command is a thin call into one module.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .cli_app import app
from .cli_errors import one_process_only
from .errors import UserError

# Options with long help, defined once here so eval_cmd's signature stays readable.
_SUITE = typer.Option(
    None,
    "--suite",
    help="Instead of --data: a folder of `data import` splits (writes suite.json, suite.md).",
)
# The registries' names, spelled here so that `--help` imports no torch; a test holds them equal.
CONDITION_NAMES = ("none", "audio", "image", "video", "desync")  # data.messages.ABLATIONS
DECODING_NAMES = ("greedy", "sample", "paper")  # scoring.predict.DECODING_MODES + paper


def _conditions() -> str:
    return ", ".join(CONDITION_NAMES)


def _decodings() -> str:
    return ", ".join(DECODING_NAMES)


_ABLATE = typer.Option(
    "none",
    "--ablate",
    help=f"Comma list of: {_conditions()} (silence, blank image, blank frames, shifted sound).",
)
_DESYNC_SECONDS = typer.Option(
    None,
    "--desync-seconds",
    help="Shift of the soundtrack in the desync ablation (default: half the span shown, frames and sound).",
)
_MAX_AUDIO_SECONDS = typer.Option(
    None,
    "--max-audio-seconds",
    min=0,
    help="Cut audio to this length; 0: no cut (default: the training's).",
)
_MAX_PIXELS = typer.Option(
    None,
    "--max-pixels",
    min=784,
    help="Image budget after rounding to the model's grid, 28 px (Qwen2.5) or 32 px (Qwen3) "
    "(default: the training's, else 50,176).",
)
_VIDEO_FPS = typer.Option(
    None, "--video-fps", min=0.01, help="Video rows: frames per second (default: the training's, else 2)."
)
_MAX_FRAMES = typer.Option(
    None,
    "--max-frames",
    min=2,
    help="Video rows: at most this many frames (default: the training's, else 16).",
)
_MAX_VIDEO_PIXELS = typer.Option(
    None,
    "--max-video-pixels",
    min=784,
    help="Video rows: pixels per frame (default: the training's, else 100,352).",
)


_MODEL = typer.Option(
    ...,
    "--model",
    help="Model directory (thinker, Omni checkpoint, LoRA adapter), or a run directory (its final/).",
)
_BEST = typer.Option(False, "--best", help="With a run directory as --model: its best/, not final/.")
_OUT = typer.Option(..., "--out", help="Output folder (predictions.jsonl, summary.json); resumable.")
_PROMPT = typer.Option(
    None, "--prompt", help="Prompt template (default: the model's training recipe, else reasoning)."
)


@app.command("eval")
def eval_cmd(
    model: Path = _MODEL,
    best: bool = _BEST,
    data: Path | None = typer.Option(None, "--data", help="Split file or split directory (AVQA_R1/valid)."),
    suite: Path | None = _SUITE,
    out: Path = _OUT,
    prompt: str | None = _PROMPT,
    decoding: str = typer.Option(
        "greedy",
        "--decoding",
        help=f"One of: {_decodings()} (paper: EchoInk's, one sample, T = 1, top-p 0.95).",
    ),
    samples: int = typer.Option(1, "--samples", min=1, help="Completions per item (sample decoding)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts per generation batch."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="Longest completion (default: the training's, else 256)."
    ),
    ablate: str = _ABLATE,
    video_fps: float | None = _VIDEO_FPS,
    max_frames: int | None = _MAX_FRAMES,
    max_video_pixels: int | None = _MAX_VIDEO_PIXELS,
    desync_seconds: float | None = _DESYNC_SECONDS,
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N items."),
    max_audio_seconds: float | None = _MAX_AUDIO_SECONDS,
    max_pixels: int | None = _MAX_PIXELS,
    engine: str = typer.Option(
        "hf", "--engine", help="What generates: hf (transformers) or vllm (vLLM with the same weights)."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Also write the summary (suite: suite.json's content) as JSON here."
    ),
) -> None:
    """Evaluate a model fairly: strict parsing, Wilson/bootstrap CIs, majority vote, pass@k, ablations."""
    from .scoring.predict import Decoding

    one_process_only("eval")
    model = resolve_model(model, best)
    # Every input-shaping setting: the flag, else the training's recipe, else the default (recipe_card).
    flags = {"template": prompt, "max_new_tokens": max_new_tokens, "max_pixels": max_pixels}
    flags |= {"max_audio_seconds": max_audio_seconds, "video_fps": video_fps, "max_frames": max_frames}
    flags |= {"max_video_pixels": max_video_pixels, "desync_seconds": desync_seconds}
    dec = Decoding(*_decoding(decoding, samples, temperature, top_p), seed=seed)
    kwargs = {"decoding": dec, "ablate": [a.strip() for a in ablate.split(",")], "batch_size": batch_size}
    kwargs |= {"limit": limit, "engine": engine}
    if engine not in ("hf", "vllm"):
        typer.echo(f"error: --engine: must be hf or vllm, got {engine!r}", err=True)
        raise typer.Exit(2)
    if suite is not None or data is None:  # every imported benchmark (cli_bench.py)
        from .cli_bench import run_suite_cli

        run_suite_cli(model, suite, data, out, flags, kwargs)
        _copy_json(out / "suite.json", json_out)
        return None
    _run_eval(model, data, out, flags, kwargs)
    _copy_json(out / "summary.json", json_out)
    typer.echo(f"next: echoink report {out}; echoink compare {out}/summary.json OTHER/summary.json")
    return None


def resolve_model(path: Path, best: bool = False) -> Path:
    """``--model``: a model directory as given, or a run directory's final/ (best/ with ``best``),
    saying which it took; a run directory without it is one line naming what it has."""
    if _is_model(path) and not best:
        return path
    wanted = path / ("best" if best else "final")
    if _is_model(wanted):
        typer.echo(f"--model {path}: a run directory; using {wanted}", err=True)
        return wanted
    if path.is_dir() and (path / "metrics.jsonl").is_file() or best:
        have = [p.name for p in (path / "final", path / "best") if _is_model(p)]
        raise UserError(
            f"--model {path}: no model in {wanted}"
            + (f"; it has {', '.join(have)}/ (--best picks best/)" if have else " (did the run finish?)")
        )
    return path  # check_model_dir names what is wrong with it


def _is_model(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def _copy_json(source: Path, target: Path | None) -> None:
    if target is not None and source.is_file():
        target.write_text(source.read_text())


def _run_eval(model: Path, data: Path, out: Path, flags: dict, kwargs: dict) -> None:
    """Check the inputs, take the training's settings where no flag is given, evaluate under the lock."""
    from .eval.evaluate import evaluate
    from .eval.summary import format_summary
    from .preflight import check_model_dir, check_split_file
    from .preflight_model import check_eval_model
    from .recipe_card import evaluate_arguments, record_sources
    from .runlock import run_lock

    check_model_dir(model, "--model")
    check_split_file(data, "--data")
    desync = flags.pop("desync_seconds")
    used, sources = evaluate_arguments(flags, model, desync)  # a ValueError is a one-line user error
    check_eval_model(model, kwargs["engine"], used["max_new_tokens"])  # engine and lengths, before loading
    from .cli_bench import settings_line

    typer.echo(settings_line(used, sources, kwargs["decoding"]))  # once, with where each came from
    with run_lock(out):
        summary = evaluate(model, data, out, **kwargs, **used)
        record_sources(out / "summary.json", sources)
    typer.echo(format_summary(summary, settings_line=False))
    typer.echo(f"written: {out / 'summary.json'}, {out / 'predictions.jsonl'}")


def _decoding(mode: str, samples: int, temperature: float, top_p: float) -> tuple[str, int, float, float]:
    """(mode, samples, temperature, top_p); "paper" is EchoInk's RL-model decoding and admits no overrides."""
    from .eval.paper import PAPER_SAMPLING

    if mode != "paper":
        return mode, samples, temperature, top_p
    if (samples, temperature, top_p) != (1, 1.0, 1.0):
        raise typer.BadParameter(
            "--decoding paper fixes 1 sample, T = 1, top-p 0.95; drop --samples/--temperature/--top-p"
        )
    p = PAPER_SAMPLING
    return "sample", p["samples"], p["temperature"], p["top_p"]


@app.command("export")
def export_cmd(
    source: Path = typer.Argument(..., help="Run directory (its final/) or a thinker model directory."),
    out: Path = typer.Option(..., "--out", help="Empty or new folder for the full Qwen2.5-Omni model."),
    base: Path | None = typer.Option(
        None, "--base", help="The full model trained from (its talker, token2wav and speakers are kept)."
    ),
) -> None:
    """A full Qwen2.5-Omni directory (Qwen2_5OmniForConditionalGeneration) from a trained thinker."""
    from .export import ExportError, export_omni

    try:
        path = export_omni(source, out, base)
    except ExportError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    speech = (
        "with the base model's talker and token2wav" if base else "text only (enable_audio_output: false)"
    )
    typer.echo(f"full model: {path} ({speech})")


@app.command("compare")
def compare_cmd(
    summary_a: Path = typer.Argument(..., help="A's summary.json (its predictions.jsonl beside it)."),
    summary_b: Path = typer.Argument(..., help="B's summary.json."),
    condition: str = typer.Option(
        "none", "--condition", help=f"Which condition to compare: {_conditions()}."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
    force: bool = typer.Option(False, "--force", help="Compare even when the two splits differ (SHA-256)."),
) -> None:
    """Side-by-side metrics with CIs, and McNemar's paired test on the items both evaluated (same split only)."""
    import json

    from .eval.suite import compare_runs, format_run_comparison

    try:
        result = compare_runs(summary_a, summary_b, condition, force)
    except (OSError, ValueError, KeyError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_run_comparison(result))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))


@app.command("analyze")
def analyze_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory (metrics.jsonl, rollouts.jsonl) or eval folder."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN_DIR/analysis)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the analysis as JSON here."),
) -> None:
    """Training curves (PNG) and aha-moment rates: overall, per step, among correct vs wrong, top examples."""
    import json

    from .eval.analysis import analyze, format_analysis

    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir} is not a directory", err=True)
        raise typer.Exit(2)
    result = analyze(run_dir, out)
    typer.echo(format_analysis(result))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1, default=str))


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(
        ...,
        help="Run directory, eval folder, or a folder of both (runs/demo: grpo/, eval_base/, eval_grpo/).",
    ),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)."),
    data: Path | None = typer.Option(
        None, "--data", help="Split whose media to embed (default: from each eval and the run)."
    ),
    max_items: int = typer.Option(300, "--max-items", min=1, help="Most completions listed."),
    evals: list[Path] = typer.Option([], "--eval", help="An eval folder kept elsewhere (repeatable)."),
) -> None:
    """One self-contained HTML page: a header (model, recipe, G, lr, steps, wall time), charts (accuracy
    with CI per model and condition, ablation drops, curves), tables, completions with media and parsed
    predictions, aha highlights, filters."""
    from .eval.report import build_report

    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir} is not a directory", err=True)
        raise typer.Exit(2)
    path = build_report(run_dir, out, data, max_items, evals)
    typer.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
