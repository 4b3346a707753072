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


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="Output dataset folder."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical files."),
    train: int = typer.Option(4000, "--train", help="Items in train.json."),
    val: int = typer.Option(500, "--val", help="Items in val.json."),
    test: int = typer.Option(1000, "--test", help="Items in test.json."),
    difficulty: str = typer.Option(
        "medium", "--difficulty", help="Perceptual knobs (noise, tone spacing, object size, count)."
    ),
    correction_rate: float = typer.Option(
        0.25, "--correction-rate", help="Fraction of traces with a 'Wait, ...' self-correction."
    ),
    families: str = typer.Option("", "--families", help="Comma-separated question families (default: all)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: up to 2 CPUs)."),
    shortcut: float = typer.Option(
        None,
        "--shortcut",
        help="Fraction of train items whose visual cue points to the answer (held-out: "
        "half broken, half none); default families: shortcut_where. See docs/grounding.md.",
    ),
) -> None:
    """Generate the embedded audio-visual benchmark (AVQA-R1-6K schema) with reference reasoning traces.

    A wrong --difficulty or --families name lists the valid ones."""
    import time

    from .data.synth import SynthSpec, generate

    names = tuple(f.strip() for f in families.split(",") if f.strip())
    if shortcut is not None and not names:
        from .data.synth_shortcut import SHORTCUT_FAMILIES

        names = SHORTCUT_FAMILIES
    chosen = {"families": names, "shortcut": shortcut} if names else {}
    try:
        spec = SynthSpec(seed, difficulty, correction_rate, **chosen)
    except (KeyError, ValueError) as err:
        raise typer.BadParameter(str(err).strip('"')) from None
    start = time.perf_counter()
    sizes = {"train": train, "val": val, "test": test}
    paths = generate(out, sizes, spec, workers or None)
    seconds = time.perf_counter() - start
    for split, path in paths.items():
        typer.echo(f"{path}: {sizes[split]} items")
    total = sum(sizes.values())
    typer.echo(f"{total} items ({difficulty}) in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} items/s)")


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
    rope_theta: float = typer.Option(
        1e6, min=1.0, help="Rotary base; small values (e.g. 10) let a tiny model read image columns."
    ),
    corpus: list[Path] = typer.Option(
        [], "--corpus", help="Extra text file(s) to train the tokenizer on, one line per example."
    ),
    family: str = typer.Option("qwen2.5-omni", "--family", help="Model family: qwen2.5-omni or qwen3-omni."),
) -> None:
    """Build a tiny random Omni thinker (Qwen2.5-Omni or Qwen3-Omni MoE) + locally trained tokenizer +
    the real processor (seconds, offline)."""
    from .model.tiny import TINY_FAMILIES, build_tiny

    if family not in TINY_FAMILIES:
        typer.echo(f"error: --family: unknown family {family!r}; valid: {', '.join(TINY_FAMILIES)}", err=True)
        raise typer.Exit(2)
    extra = [line for path in corpus for line in path.read_text().splitlines() if line.strip()]
    path = build_tiny(
        out, hidden=hidden, layers=layers, vocab=vocab, seed=seed, extra_corpus=extra, rope_theta=rope_theta,
        family=family,
    )  # fmt: skip
    typer.echo(f"tiny {family} thinker written to {path}")


def _recipe(recipe: Path, overrides: list[str]):
    """Load a recipe + overrides, or exit 2 with the field-named error."""
    from .config import ConfigError, load_config

    try:
        return load_config(recipe, overrides)
    except (ConfigError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


@app.command("train")
def train_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe (see configs/)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set train.lr=1e-6 (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in train.output_dir."
    ),
) -> None:
    """Train with GRPO (rollout -> rewards -> advantages -> policy update); writes a run directory."""
    from .rl.trainer import train

    cfg = _recipe(recipe, overrides)
    run_dir = train(cfg, resume=resume)
    typer.echo(f"run directory: {run_dir}")


@app.command("sft")
def sft_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe; uses the data, model and sft sections."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set sft.max_steps=100 (repeatable)."
    ),
) -> None:
    """Supervised fine-tuning on the rows' reference reasoning traces (the cold start before GRPO)."""
    from .sft import sft

    cfg = _recipe(recipe, overrides)
    out = sft(cfg)
    typer.echo(f"fine-tuned model: {out / 'final'}")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(
        ..., "--model", help="Model directory (thinker, full Omni checkpoint or LoRA adapter)."
    ),
    data: Path = typer.Option(..., "--data", help="Split file in the AVQA-R1-6K schema."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (predictions.jsonl, summary.json); re-run to resume."
    ),
    prompt: str = typer.Option("reasoning", "--prompt", help="Prompt template: reasoning or direct."),
    decoding: str = typer.Option("greedy", "--decoding", help="greedy or sample."),
    samples: int = typer.Option(1, "--samples", min=1, help="Completions per item (sample decoding)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts per generation batch."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest completion."),
    ablate: str = typer.Option(
        "none", "--ablate", help="Comma list of none, audio (silence), image (blank)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate only the first N items."),
    max_audio_seconds: float | None = typer.Option(
        None, "--max-audio-seconds", help="Cut audio to this length."
    ),
    max_pixels: int = typer.Option(
        224 * 224, "--max-pixels", help="Downscale larger images to this many pixels."
    ),
) -> None:
    """Evaluate a model fairly: strict parsing, Wilson/bootstrap CIs, majority vote, pass@k, ablations."""
    from .data import TEMPLATES
    from .eval.evaluate import Decoding, evaluate
    from .eval.summary import format_summary

    if prompt not in TEMPLATES:
        raise typer.BadParameter(f"unknown template {prompt!r}; valid: {', '.join(TEMPLATES.names())}")
    try:
        dec = Decoding(decoding, samples, temperature, top_p, seed)
        summary = evaluate(
            model, data, out, template=prompt, decoding=dec, ablate=[a.strip() for a in ablate.split(",")],
            batch_size=batch_size, max_new_tokens=max_new_tokens, limit=limit,
            max_audio_seconds=max_audio_seconds, max_pixels=max_pixels,
        )  # fmt: skip
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_summary(summary))
    typer.echo(f"written: {out / 'summary.json'}, {out / 'predictions.jsonl'}")


@app.command("compare")
def compare_cmd(
    summary_a: Path = typer.Argument(..., help="A's summary.json (its predictions.jsonl beside it)."),
    summary_b: Path = typer.Argument(..., help="B's summary.json."),
    condition: str = typer.Option(
        "none", "--condition", help="Which condition to compare: none, audio, image."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
) -> None:
    """Side-by-side metrics with CIs, and McNemar's paired test on the items both evaluated."""
    import json

    from .eval.compare import compare, format_comparison

    try:
        result = compare(summary_a, summary_b, condition)
    except (OSError, ValueError, KeyError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_comparison(result))
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory for every stage's output."),
    budget_minutes: float = typer.Option(15.0, "--budget-minutes", help="Warn when the stages take longer."),
    recipe: Path = typer.Option(None, "--config", help="Demo recipe (default: configs/demo.yaml)."),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override, e.g. --set train.max_steps=10."),
) -> None:
    """The main job: benchmark -> tiny Omni model -> SFT -> evaluate -> GRPO -> evaluate -> summary."""
    from .demo import run_demo

    run_demo(out, budget_minutes, recipe, overrides, echo=typer.echo)


@app.command("analyze")
def analyze_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory (metrics.jsonl, rollouts.jsonl) or eval folder."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN_DIR/analysis)."),
) -> None:
    """Training curves (PNG) and aha-moment rates: overall, per step, among correct vs wrong, top examples."""
    from .eval.analysis import analyze, format_analysis

    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir} is not a directory", err=True)
        raise typer.Exit(2)
    typer.echo(format_analysis(analyze(run_dir, out)))


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory or eval folder."),
    out: Path | None = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)."),
    data: Path | None = typer.Option(
        None, "--data", help="Split whose media to embed (default: from the run)."
    ),
    max_items: int = typer.Option(300, "--max-items", min=1, help="Most completions listed."),
) -> None:
    """One self-contained HTML page: curves, summary tables, completions with media, aha highlights, filters."""
    from .eval.report import build_report

    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir} is not a directory", err=True)
        raise typer.Exit(2)
    path = build_report(run_dir, out, data, max_items)
    typer.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    app()
