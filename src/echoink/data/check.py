"""Dataset report for ``echoink data check``: counts, modality mix, answer balance, media stats, problems."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import Progress
from .avqa import load_split
from .media import MIN_AUDIO_SAMPLES, Geometry, MediaError, load_audio, load_image
from .messages import VideoSettings
from .prompts import ROW_TOKEN, escape_row_text
from .schema import RowError, Sample


@dataclass
class SplitReport:
    path: str
    rows: int
    good: int
    problems: list[RowError]
    data_types: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    option_counts: Counter = field(default_factory=Counter)
    needs: Counter = field(default_factory=Counter)
    audio_seconds: list[float] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    video_stats: list[tuple[float, int]] = field(default_factory=list)  # (seconds, decoded frames)
    warnings: list[RowError] = field(default_factory=list)
    """Rows that load but hold something the user should know: control-token text (escaped in prompts)."""
    cut: list[tuple[int, float, float]] = field(default_factory=list)
    """Clips longer than the span the model sees: (row, seconds, span), cut to their first span seconds."""

    def to_json(self) -> dict:
        """The report as plain JSON values (``data check --json``)."""
        return {
            "path": self.path, "rows": self.rows, "good": self.good, "bad": len(self.problems),
            "data_types": dict(self.data_types), "answers": dict(self.answers),
            "option_counts": {str(k): v for k, v in self.option_counts.items()}, "needs": dict(self.needs),
            "audio_clips": len(self.audio_seconds), "images": len(self.image_sizes),
            "videos": len(self.video_stats), "cut": len(self.cut),
            "problems": [{"row": p.row, "reason": p.reason} for p in self.problems],
            "warnings": [{"row": w.row, "reason": w.reason} for w in self.warnings],
        }  # fmt: skip

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.rows} rows, {self.good} good, {len(self.problems)} bad"]
        out.append("  modality mix: " + _fmt(self.data_types))
        out.append("  answer letters: " + _fmt(self.answers, percent=True))
        out.append("  options per question: " + _fmt(self.option_counts))
        if self.needs:
            out.append("  needs: " + _fmt(self.needs))
        if self.audio_seconds:
            a = np.array(self.audio_seconds)
            out.append(
                f"  audio seconds: min {a.min():.2f}, mean {a.mean():.2f}, max {a.max():.2f} ({len(a)} clips)"
            )
        if self.video_stats:
            sec = np.array([v[0] for v in self.video_stats])
            frames = np.array([v[1] for v in self.video_stats])
            out.append(
                f"  video: seconds min {sec.min():.2f}, mean {sec.mean():.2f}, max {sec.max():.2f}; "
                f"frames {frames.min()}-{frames.max()} ({len(sec)} clips)"
            )
        if self.image_sizes:
            w = np.array([s[0] for s in self.image_sizes])
            h = np.array([s[1] for s in self.image_sizes])
            out.append(
                f"  image size: width {w.min()}-{w.max()}, height {h.min()}-{h.max()} ({len(w)} images)"
            )
        if self.cut:
            shown = ", ".join(f"row {row} ({sec:.1f} s -> {span:g} s)" for row, sec, span in self.cut[:5])
            more = f", and {len(self.cut) - 5} more" if len(self.cut) > 5 else ""
            out.append(f"  clips cut to their span, frames and sound ({len(self.cut)}): {shown}{more}")
        if self.warnings:
            out.append(f"  warnings ({len(self.warnings)}):")
            out.extend(f"    row {w.row}: {w.reason}" for w in self.warnings)
        if self.problems:
            out.append(f"  problems ({len(self.problems)}):")
            out.extend(f"    row {p.row}: {p.reason}" for p in self.problems)
        else:
            out.append("  problems: none")
        return out


def _fmt(counter: Counter, percent: bool = False) -> str:
    total = sum(counter.values()) or 1
    items = sorted(counter.items(), key=lambda kv: str(kv[0]))
    if percent:
        return ", ".join(f"{k} {v} ({100 * v / total:.1f}%)" for k, v in items)
    return ", ".join(f"{k} {v}" for k, v in items)


def check_split(
    path: str | Path, video: VideoSettings | None = None, max_audio_seconds: float | None = None
) -> SplitReport:
    """Validate every row (skip mode, so all problems are listed), decode every image and clip in full
    with the loaders ``train``, ``sft`` and ``eval`` use, and gather statistics of the good rows.

    A row this accepts loads at run time: the header checks of ``load_split`` miss a truncated JPEG,
    NaN samples or a clip too short for the audio encoder, so each medium is decoded here. Video clips
    longer than the span ``video`` and ``max_audio_seconds`` give them (``VideoSettings.span``) are
    listed in ``cut``: training and eval see their first span seconds only.
    """
    video = video or VideoSettings()
    result = load_split(path, on_error="skip")
    problems = list(result.skipped)
    report = SplitReport(path=str(path), rows=result.rows, good=0, problems=problems)
    with Progress(len(result.samples), f"check {Path(path).name}", unit="row") as bar:
        for s in result.samples:
            _check_sample(report, s, (path, result.row_of[s.id]), video, max_audio_seconds)
            bar.update()
    problems.sort(key=lambda p: p.row)
    return report


def _check_sample(
    report: SplitReport,
    s: Sample,
    where: tuple[str | Path, int],
    video: VideoSettings,
    max_audio_seconds: float | None,
) -> None:
    """Decode one sample's media; add its statistics to ``report``, or its problem."""
    path, row = where
    try:
        clip = load_audio(s.audio) if s.audio is not None else None
        image = load_image(s.image) if s.image is not None else None
        stats = _decode_video(s) if s.video is not None else None
    except MediaError as err:
        report.problems.append(RowError(path, row, str(err)))
        return
    report.good += 1
    report.warnings += control_token_text(s, path, row)
    report.data_types[s.data_type] += 1
    report.answers[s.answer] += 1
    report.option_counts[len(s.options)] += 1
    if "needs" in s.metadata:
        report.needs[s.metadata["needs"]] += 1
    if clip is not None:
        report.audio_seconds.append(clip.seconds)
    if image is not None:
        report.image_sizes.append(image.size)
    if stats is not None:
        report.video_stats.append(stats)
        span = video.span(s, max_audio_seconds)
        sound = clip.seconds if clip is not None and s.data_type == "video_audio" else 0.0  # its own file
        longest = max(stats[0], sound)
        if longest > span + 1e-3:
            report.cut.append((row, longest, span))


def control_token_text(sample: Sample, file: str | Path, row: int) -> list[RowError]:
    """One RowError per field of the row whose text looks like a control or media token (``<|...|>``).

    Not a bad row: prompts escape such text (``prompts.escape_control_tokens``), so it trains and
    evaluates as text; but a question that spells ``<|im_end|>`` is worth a look.
    """
    fields = {"problem": sample.question, **{f"options[{i}]": o for i, o in enumerate(sample.options)}}
    found = []
    for name, text in fields.items():
        if tokens := sorted(set(ROW_TOKEN.findall(text))):
            shown = ", ".join(repr(t) for t in tokens[:3])
            reason = (
                f"field {name} holds {shown}, a tokenizer's control-token spelling; prompts keep it text "
                f"(escaped as {escape_row_text(tokens[0])!r})"
            )
            found.append(RowError(file, row, reason))
    return found


def _decode_video(sample) -> tuple[float, int]:
    """(seconds, frames) after decoding the whole clip and its soundtrack as training would."""
    from .video import load_video, video_info

    info = video_info(sample.video)
    frames = 2 * math.ceil(info.seconds) + 2  # at 2 fps, a span longer than the clip: all its sound
    # no model here: frames only decoded, not resized; the default temporal merge (2) is every family's
    clip = load_video(sample.video, fps=2.0, max_frames=frames, geometry=Geometry())
    if (
        sample.data_type == "video_audio"
        and clip.soundtrack is not None
        and len(clip.soundtrack) < MIN_AUDIO_SAMPLES
    ):
        raise MediaError(f"{sample.video}: soundtrack too short for the audio encoder")
    return info.seconds, info.frames
