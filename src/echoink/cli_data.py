"""``echoink data check | synth | show``: check a split, write the procedural benchmark, show a prompt."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .cli_app import data_app, lab
from .config_sections import DataConfig
from .errors import UserError
from .outdir import check_output_dir

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
