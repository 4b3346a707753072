"""The ``echoink`` command line. Each subcommand is a thin call into one module."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .cli_app import app, data_app, lab, model_app, run
from .cli_errors import one_process_only
from .config_sections import DataConfig
from .errors import UserError
from .outdir import check_output_dir

__all__ = ["app", "run"]


_DATA = DataConfig()
TEMPLATE_NAMES = ("direct", "paper_base", "paper_eval", "reasoning", "reasoning_short", "verl_omni_avqa")
"""data.TEMPLATES' names, spelled here so that `--help` imports no torch; a test holds them equal."""
_MAX_AUDIO_SECONDS = typer.Option(
    None,
    "--max-audio-seconds",
    min=0,
    help="data.max_audio_seconds: cut audio to this length; 0: no cut (default: none, the whole clip).",
)
_VIDEO_FPS = typer.Option(
    _DATA.video_fps, "--video-fps", min=0.01, help="data.video_fps: video frames per second."
)
_MAX_FRAMES = typer.Option(_DATA.max_frames, "--max-frames", min=2, help="data.max_frames: frames at most.")
_MAX_VIDEO_PIXELS = typer.Option(
    _DATA.max_video_pixels, "--max-video-pixels", min=784, help="data.max_video_pixels: pixels per frame."
)


def _no_cut(seconds: float | None) -> float | None:
    """``--max-audio-seconds 0`` means no cut, as in ``eval``."""
    return seconds or None


@data_app.command("check")
def data_check(
    split: list[Path] = typer.Argument(
        ...,
        help="Split file(s) (JSON list or JSONL, AVQA-R1-6K schema) or split directories (AVQA_R1/train).",
    ),
    video_fps: float = _VIDEO_FPS,
    max_frames: int = _MAX_FRAMES,
    max_audio_seconds: float = _MAX_AUDIO_SECONDS,
    json_out: Path | None = typer.Option(None, "--json", help="Also write each split's report as JSON here."),
    strict_against: Path | None = typer.Option(
        None,
        "--strict-against",
        help="Another split (e.g. validation): also write a strict copy of each SPLIT without the rows whose "
        "media (by content) appear in it.",
    ),
    strict_out: Path | None = typer.Option(
        None, "--strict-out", help="The strict copy's file, beside SPLIT (default: SPLIT's NAME.strict.json)."
    ),
) -> None:
    """Validate every row and print counts, modality mix, answer balance, media stats, the video clips
    longer than the span a model sees (max_frames / video_fps seconds, within max_audio_seconds with a
    soundtrack: cut to it) and every problem (exit 1 if any)."""
    from .data.check import check_split
    from .data.messages import VideoSettings
    from .data.schema import RowError

    if strict_against is not None:
        _strict_splits(split, strict_against, strict_out)
    bad, reports = False, []
    video = VideoSettings(video_fps, max_frames)
    for path in _split_files(split):
        try:
            report = check_split(path, video, _no_cut(max_audio_seconds))
        except RowError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        typer.echo("\n".join(report.lines()))
        reports.append(report.to_json())
        bad |= bool(report.problems)
    if json_out is not None:
        json_out.write_text(json.dumps(reports, indent=1))
    if not bad and strict_against is None and len(split) == 1:
        typer.echo(f"next: echoink data show {split[0]} --index 0")
    raise typer.Exit(1 if bad else 0)


def _split_files(paths: list[Path]) -> list[Path]:
    """Each path as given, except a folder of split files (``data synth``'s, ``data import``'s): its
    *.json and *.jsonl files. A split directory (AVQA_R1/train, one omni_rl_format_*.json) stays whole."""
    from .data.avqa import SPLIT_FILE_PATTERN

    out: list[Path] = []
    for path in paths:
        files = sorted([*path.glob("*.json"), *path.glob("*.jsonl")]) if path.is_dir() else []
        if files and not any(path.glob(SPLIT_FILE_PATTERN)):
            out += files
        else:
            out.append(path)
    return out


def _strict_splits(splits: list[Path], other: Path, out: Path | None) -> None:
    """``data check --strict-against``: each split without the rows whose media appear in ``other``."""
    from .data.avqa import split_file
    from .data.media_overlap import strict_split

    if out is not None and len(splits) > 1:
        raise typer.BadParameter("--strict-out names one file: check one split at a time with it")
    for path in splits:
        source = split_file(path)
        target = out or source.with_name(f"{source.stem}.strict.json")
        kept, dropped = strict_split(source, other, target)
        typer.echo(f"strict split: {target}: {kept} rows kept, {dropped} dropped (media also in {other})")


@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(..., "--out", help="Output dataset folder."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical files."),
    train: int = typer.Option(4000, "--train", min=0, help="Items in train.json."),
    val: int = typer.Option(500, "--val", min=0, help="Items in val.json."),
    test: int = typer.Option(1000, "--test", min=0, help="Items in test.json."),
    difficulty: str = typer.Option(
        "medium", "--difficulty", help="Perceptual knobs (noise, tone spacing, object size, count)."
    ),
    correction_rate: float = typer.Option(
        0.25, "--correction-rate", help="Fraction of traces with a 'Wait, ...' self-correction."
    ),
    families: str = typer.Option("", "--families", help="Comma-separated question families (default: all)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes (0: up to 2 CPUs)."),
    modality: str = typer.Option(
        "image",
        "--modality",
        help="image (an image + an audio clip) or video (mp4 clips with their soundtrack).",
    ),
    palette: str = typer.Option(
        "drawn",
        "--palette",
        help="video only: drawn (four of five colours per clip, options shuffled) or fixed (red, "
        "yellow, green, blue in each clip's own order; options always A-D in that order).",
    ),
    video_trace: str = typer.Option(
        "moment",
        "--video-trace",
        help="video only: the reference reasoning, moment (the tone's second, then the colour then) or "
        "seconds (one line per second: its colour, and tone or silent).",
    ),
    shortcut: float = typer.Option(
        None,
        "--shortcut",
        help="Fraction of train items whose visual cue points to the answer (held-out: "
        "half broken, half none); default families: shortcut_where. See docs/grounding.md.",
    ),
) -> None:
    """Generate the embedded audio-visual benchmark (AVQA-R1-6K schema) with reference reasoning traces.

    A wrong --difficulty or --families name lists the valid ones. ``--modality video`` writes the
    ``tone_when`` family: which colour was on screen when the tone sounded (needs the two in sync)."""
    if modality not in ("image", "video"):
        raise typer.BadParameter(f"--modality must be image or video, got {modality!r}")
    if modality == "video":
        check_output_dir(out, "--out", "data synth")  # a split folder's train.json and media stay the user's
        return _synth_video(out, seed, palette, video_trace, {"train": train, "val": val, "test": test})

    names = tuple(f.strip() for f in families.split(",") if f.strip())
    if shortcut is not None and not names:
        names = lab("synth_shortcut").SHORTCUT_FAMILIES
    chosen = {"families": names, "shortcut": shortcut} if names else {}
    try:
        spec = lab("synth").SynthSpec(seed, difficulty, correction_rate, **chosen)
    except (KeyError, ValueError) as err:
        raise typer.BadParameter(str(err).strip('"')) from None
    check_output_dir(out, "--out", "data synth")  # after the arguments: a typo is named first
    _synth_images(out, spec, {"train": train, "val": val, "test": test}, workers)


def _synth_images(out: Path, spec, sizes: dict[str, int], workers: int) -> None:
    import time

    start = time.perf_counter()
    paths = lab("synth").generate(out, sizes, spec, workers or None)
    seconds = time.perf_counter() - start
    for split, path in paths.items():
        typer.echo(f"{path}: {sizes[split]} items")
    total = sum(sizes.values())
    rate = f"{total / max(seconds, 1e-9):.0f} items/s"
    typer.echo(f"{total} items ({spec.difficulty}) in {seconds:.1f} s ({rate})")
    typer.echo(f"next: echoink data check {out}/train.json")


def _synth_video(out: Path, seed: int, palette: str, style: str, sizes: dict[str, int]) -> None:
    import time

    video = lab("synth_video")
    start = time.perf_counter()
    try:
        spec = video.VideoSpec(seed=seed, palette=palette, trace=style)
    except ValueError as err:
        hint = "--video-trace" if str(err).startswith("trace") else "--palette"
        raise typer.BadParameter(str(err), param_hint=hint) from None
    for split, path in video.generate_video(out, sizes, spec).items():
        typer.echo(f"{path}: {sizes[split]} items")
    typer.echo(f"{sum(sizes.values())} video items in {time.perf_counter() - start:.1f} s")


@data_app.command("show")
def data_show(
    split: Path = typer.Argument(..., help="Split file."),
    index: int = typer.Option(0, "--index", "-i", help="Index of the sample (among the split's valid rows)."),
    template: str = typer.Option(
        "reasoning",
        "--prompt",
        "--template",
        help="Prompt template: one of " + ", ".join(TEMPLATE_NAMES) + ".",
    ),
    model: Path = typer.Option(
        None,
        "--model",
        help="Model directory: render with its chat template and count its processor's tokens.",
    ),
    max_pixels: int = typer.Option(
        _DATA.max_pixels, "--max-pixels", min=784, help="data.max_pixels (--model)."
    ),
    max_audio_seconds: float = _MAX_AUDIO_SECONDS,
    video_fps: float = _VIDEO_FPS,
    max_frames: int = _MAX_FRAMES,
    max_video_pixels: int = _MAX_VIDEO_PIXELS,
) -> None:
    """Print one sample rendered as the prompt the model sees (media shown as placeholders); with
    ``--model``, the chat template's text and the image, audio, video and prompt token counts."""
    from .data import TEMPLATES, load_split

    if template not in TEMPLATES:
        raise typer.BadParameter(f"unknown template {template!r}; valid: {', '.join(TEMPLATES.names())}")
    if model is not None:
        from .cli_eval import resolve_model

        model = resolve_model(model)
    if model is not None and not (model / "config.json").is_file():
        raise UserError(f"--model {model}: not a model directory (no config.json)")
    loaded = load_split(split, on_error="skip")
    samples = loaded.samples
    if not 0 <= index < len(samples):
        valid = f"0..{len(samples) - 1}" if samples else "none"
        typer.echo(
            f"error: --index {index} out of range: {split} has {loaded.rows} rows, {len(samples)} valid "
            f"(indices {valid})",
            err=True,
        )
        raise typer.Exit(1)
    s = samples[index]
    typer.echo(f"id: {s.id}   answer: {s.answer}   data_type: {s.data_type}")
    if model is not None:
        from .data.messages import VideoSettings

        video = VideoSettings(video_fps, max_frames, max_video_pixels)
        return _show_for_model(s, template, model, (max_pixels, _no_cut(max_audio_seconds)), video)
    if s.image:
        typer.echo(f"[image: {s.image}]")
    if s.audio:
        typer.echo(f"[audio: {s.audio}]")
    prompt = TEMPLATES.get(template)
    typer.echo(f"[system: {prompt.system or 'none sent (the chat template default applies)'}]")
    typer.echo(prompt(s))
    if s.metadata:
        typer.echo(f"metadata: {s.metadata}")


def _show_for_model(sample, template: str, model: Path, budgets: tuple, video) -> None:
    """The prompt as ``model``'s chat template renders it, its media decoded and sized as training does."""
    from .data import sample_messages
    from .model.loading import load_engine

    engine = load_engine(model)
    max_pixels, max_audio_seconds = budgets
    messages = sample_messages(
        [sample], template, max_audio_seconds, max_pixels, video=video, geometry=engine.geometry
    )
    typer.echo(engine.render(messages[0]))
    counts = engine.token_counts(engine.encode(messages))
    for kind in ("image", "audio", "video", "prompt"):
        typer.echo(f"{kind} tokens: {counts[kind]}")


@model_app.command("tiny")
def model_tiny(
    out: Path = typer.Option(
        ..., "--out", help="Directory to write the model, tokenizer and processor into."
    ),
    hidden: int = typer.Option(64, min=16, max=512, help="Text hidden size (a multiple of --head-dim)."),
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
    head_dim: int = typer.Option(
        16, "--head-dim", min=8, max=256, help="Text attention head width (vLLM's CPU build needs >= 32)."
    ),
) -> None:
    """Build a tiny random Omni thinker (Qwen2.5-Omni or Qwen3-Omni MoE) + locally trained tokenizer +
    the real processor (seconds, offline)."""
    testing = lab("testing")
    if family not in testing.TINY_FAMILIES:
        valid = ", ".join(testing.TINY_FAMILIES)
        typer.echo(f"error: --family: unknown family {family!r}; valid: {valid}", err=True)
        raise typer.Exit(2)
    extra = [line for path in corpus for line in path.read_text().splitlines() if line.strip()]
    check_output_dir(out, "--out", "model tiny")  # a trained model's weights and recipe card stay
    path = testing.build_tiny(
        out, hidden=hidden, layers=layers, vocab=vocab, seed=seed, extra_corpus=extra, rope_theta=rope_theta,
        family=family, head_dim=head_dim,
    )  # fmt: skip
    typer.echo(f"tiny {family} thinker written to {path}")


def _recipe(recipe: Path, overrides: list[str]):
    """Load a recipe + overrides and check the files it names (errors reach ``run`` as one line)."""
    from .config import load_config
    from .preflight import check_kernels, check_names, check_recipe_inputs, check_vllm_platform

    cfg = load_config(recipe, overrides)
    check_names(cfg)
    check_kernels(cfg)  # before the data and model checks: the first thing a GPU recipe meets
    check_recipe_inputs(cfg)
    check_vllm_platform(cfg)
    return cfg


@app.command("train")
def train_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe (see configs/)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set train.lr=1e-6 (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory (the recipe's train.output_dir)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in train.output_dir."
    ),
    allow_config_change: bool = typer.Option(
        False,
        "--allow-config-change",
        help="With --resume: apply changes to the recipe (lr, schedule, rollout, algo...), a split's content "
        "or the number of processes from the current step (recorded in config_history.jsonl) instead of "
        "refusing them.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Start even when a step's least memory (weights, rollout) exceeds the machine's.",
    ),
) -> None:
    """Train with GRPO (rollout -> rewards -> advantages -> policy update); writes a run directory."""
    from .preflight import check_run_record
    from .preflight_model import check_training_model
    from .rl.trainer import train
    from .runlock import run_lock

    cfg = _recipe(recipe, [*overrides, *_out_override("train.output_dir", out)])
    check_training_model(cfg, force)  # engine, lengths, memory: before the lock, the record, any load
    check_run_record(cfg.train.output_dir)
    with run_lock(cfg.train.output_dir):
        run_dir = train(cfg, resume=resume, allow_config_change=allow_config_change)
    typer.echo(f"run directory: {run_dir}")
    split = cfg.data.val_path or "SPLIT"
    typer.echo(
        f"next: echoink eval --model {run_dir} --data {split} --out {run_dir}/eval; echoink report {run_dir}"
    )


@app.command("sft")
def sft_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe; uses the data, model and sft sections."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set sft.max_steps=100 (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (the recipe's sft.output_dir)."),
) -> None:
    """Supervised fine-tuning on the rows' reference reasoning traces (the cold start before GRPO).

    A GRPO recipe serves as is: its GRPO-only settings (validation during training, keep_best, the
    vLLM importance-sampling cap) are not read here, so they are not checked either."""
    from .runlock import run_lock
    from .sft import sft

    one_process_only("sft")
    cfg = _recipe(recipe, [*overrides, *_out_override("sft.output_dir", out), *SFT_IGNORES])
    with run_lock(cfg.sft.output_dir):
        done = sft(cfg)
    typer.echo(f"fine-tuned model: {done / 'final'}")
    typer.echo(f"next: echoink train {recipe} --set model.path={done / 'final'}")


SFT_IGNORES = ("train.eval_every=0", "train.keep_best=false", "algo.rollout_is_cap=0")
"""GRPO-only settings sft neither reads nor checks (a GRPO recipe's validation needs data.val_path)."""


def _out_override(field: str, out: Path | None) -> list[str]:
    """``--out DIR`` as the recipe override it stands for (``--out`` wins over a ``--set`` of the same field)."""
    return [] if out is None else [f"{field}={out}"]


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory for every stage's output."),
    budget_minutes: float = typer.Option(
        None, "--budget-minutes", min=0, help="Warn when the stages take longer (default 15; video 40)."
    ),
    recipe: Path = typer.Option(
        None,
        "--config",
        help="Demo recipe: an echoink recipe + a demo: section (default: the lab's demo.yaml).",
    ),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override, e.g. --set train.max_steps=10."),
    modality: str = typer.Option(
        "image",
        "--modality",
        help="image (the lab's recipes/demo.yaml) or video (recipes/demo_video.yaml, runs/demo-video).",
    ),
) -> None:
    """The main job: benchmark -> tiny Omni model -> SFT -> evaluate -> GRPO -> evaluate -> summary."""
    demo = lab("demo")
    one_process_only("demo")
    if modality not in ("image", "video"):
        raise typer.BadParameter(f"--modality must be image or video, got {modality!r}")
    if modality == "video":
        recipe = recipe or demo.VIDEO_RECIPE
        out = Path("runs/demo-video") if out == Path("runs/demo") else out
    if budget_minutes is None:
        budget_minutes = 40.0 if modality == "video" else 15.0
    demo.run_demo(out, budget_minutes, recipe, overrides, echo=typer.echo)


# Last, so ``echoink --help`` lists train, sft and demo before the evaluation side.
from . import cli_bench, cli_eval, doctor  # noqa: E402,F401  (register eval, export, compare, ..., data import, doctor)

if __name__ == "__main__":
    run()
