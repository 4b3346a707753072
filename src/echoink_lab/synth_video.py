"""The embedded video benchmark: a question that needs the picture and the sound *in sync*.

Family ``tone_when``: a clip of ``segments`` seconds shows one coloured square per second (four
different colours, one after another); a single tone sounds once, inside one of those seconds. The
question asks which colour was on screen when the tone sounded. Neither stream alone answers it
(the frames show all four colours, the sound says only *when*), and the soundtrack shifted by half
the clip (the desync ablation) points at another second, so the wrong colour. Written as real mp4
files (h264 video + AAC soundtrack, ``video.write_video``); each item draws from its own RNG seeded
by (seed, split, index) and its answer letter from a shuffled block of A-D, so letters are balanced
and a seed gives the same files.

``generate_video(out, {"train": 400, "test": 200}, VideoSpec(seed=0))`` writes ``out/{split}.json``
and ``out/videos/*.mp4``; rows are ``data_type: video_audio`` with a reference trace in ``reasoning``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from echoink.data.media import SAMPLE_RATE
from echoink.data.video import write_video
from echoink.errors import UserError

from .synth_media import RGB

DATA_SOURCE = "echoink-synth-video"
LETTERS = "ABCD"
COLOURS = tuple(RGB)  # red, yellow, green, blue, purple
QUESTION = "Which colour was on the screen when the tone sounded?"
PALETTES = ("drawn", "fixed")
TRACES = ("moment", "seconds")
FIXED = COLOURS[: len(LETTERS)]  # the fixed palette's colours, in option order


@dataclass(frozen=True)
class VideoSpec:
    seed: int = 0
    segments: int = 4  # seconds, one colour each (also the number of options)
    fps: int = 2
    side: int = 56  # frame width and height (two 28-px cells; Qwen3 rounds to 64)
    tone_hz: float = 660.0
    tone_seconds: float = 0.3
    # "drawn": each clip shows four of the five colours and its options list them in a shuffled
    # order, so the answer letter also needs a text lookup (which colour is option C?). "fixed": every
    # clip shows red, yellow, green and blue in its own order and the options are always A. red,
    # B. yellow, C. green, D. blue: the letter names the colour, and what is left to learn is in the
    # streams (the order on screen from the frames, the moment from the sound).
    palette: str = "drawn"
    # The cold start's reference reasoning. "moment": "The tone sounds in second 2. At that moment the
    # screen shows blue." "seconds": one line per second, in order, each naming the colour on screen,
    # whether the tone sounds, and the answer so far ("Second 1: red, silent, so far none. Second 2:
    # blue, tone, so far D. Second 3: green, silent, so far D. ..."). Every line has the same length,
    # so every token sits at the same place in every trace and each step is a lookup at a fixed
    # distance: this line's frames, this line's stretch of sound, this line's colour or the previous
    # line's answer, and for the final answer the last line's. Measured on the tiny model: "moment"
    # (where to look depends on the second just named) never read the colour; lines without the
    # running answer read every colour and tone right but left the answer at chance, and so did a
    # letter on the tone line alone (the answer then has to find it, at a place that varies).
    trace: str = "moment"

    def __post_init__(self) -> None:
        if self.segments != len(LETTERS):
            raise UserError(f"segments must be {len(LETTERS)} (one option per second)")
        if self.palette not in PALETTES:
            raise UserError(f"palette must be one of {', '.join(PALETTES)}, got {self.palette!r}")
        if self.trace not in TRACES:
            raise UserError(f"trace must be one of {', '.join(TRACES)}, got {self.trace!r}")
        if self.fps < 1 or self.side < 28 or self.side % 2:
            raise UserError("fps must be >= 1 and side an even number >= 28")


def _rng(seed: int, split: str, stream: int, n: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), stream, n]))


def plan_clip(spec: VideoSpec, split: str, index: int) -> dict:
    """The item's colours per second, the second the tone sounds in, its onset, and the answer letter."""
    block = _rng(spec.seed, split, 1, index // len(LETTERS)).permutation(len(LETTERS))
    letter = int(block[index % len(LETTERS)])
    rng = _rng(spec.seed, split, 0, index)
    if spec.palette == "fixed":  # the answer's colour is option ``letter``'s; the others fill the rest
        second = int(rng.integers(spec.segments))
        others = [FIXED[i] for i in rng.permutation(len(FIXED)) if i != letter]
        colours = others[:second] + [FIXED[letter]] + others[second:]
        onset = second + float(rng.uniform(0.15, 1.0 - spec.tone_seconds - 0.15))
        return {"colours": colours, "second": second, "onset": round(onset, 3), "letter": letter,
                "options": list(FIXED)}  # fmt: skip
    colours = [COLOURS[i] for i in rng.choice(len(COLOURS), spec.segments, replace=False)]
    second = int(rng.integers(spec.segments))  # when the tone sounds
    onset = second + float(rng.uniform(0.15, 1.0 - spec.tone_seconds - 0.15))
    # Options: the four colours of the clip, ordered so that the on-screen one lands on ``letter``.
    others = [c for c in colours if c != colours[second]]
    order = [int(i) for i in rng.permutation(len(others))]
    options = [others[i] for i in order]
    options.insert(letter, colours[second])
    return {
        "colours": colours,
        "second": second,
        "onset": round(onset, 3),
        "letter": letter,
        "options": options,
    }


def render_clip(spec: VideoSpec, plan: dict) -> tuple[np.ndarray, np.ndarray]:
    """([T, side, side, 3] frames: a coloured square on grey, one colour per second; [samples] soundtrack)."""
    frames = np.full((spec.segments * spec.fps, spec.side, spec.side, 3), 128, dtype=np.uint8)
    pad = spec.side // 8
    for t in range(len(frames)):
        frames[t, pad:-pad, pad:-pad] = RGB[plan["colours"][t // spec.fps]]
    n = spec.segments * SAMPLE_RATE
    sound = np.zeros(n, dtype=np.float32)
    start, length = int(plan["onset"] * SAMPLE_RATE), int(spec.tone_seconds * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)  # 20 ms fades: no clicks
    sound[start : start + length] = 0.4 * np.sin(2 * np.pi * spec.tone_hz * t) * ramp
    return frames, sound


def trace(plan: dict, style: str = "moment") -> str:
    """The reference reasoning for the SFT cold start (``VideoSpec.trace``)."""
    answer = f"<answer>{LETTERS[plan['letter']]}</answer>"
    if style == "seconds":
        letter = LETTERS[plan["letter"]]
        lines = [
            f"Second {t + 1}: {colour}, {'tone' if t == plan['second'] else 'silent'}, "
            f"so far {letter if t >= plan['second'] else 'none'}."
            for t, colour in enumerate(plan["colours"])
        ]
        return f"<think>{' '.join(lines)}</think>{answer}"
    colour = plan["colours"][plan["second"]]
    return (
        f"<think>The tone sounds in second {plan['second'] + 1}. At that moment the screen shows "
        f"{colour}.</think>{answer}"
    )


def glance_trace(plan: dict) -> str:
    """A one-frame shortcut: the colour of the first second, answered as if it were the one. Right only
    when the tone sounds in the first second (a quarter of the clips); needs neither the sound nor the
    rest of the clip. What a cold start that mixes it in leaves the policy preferring (``glance_rows``)."""
    first = plan["colours"][0]
    letter = LETTERS[plan["options"].index(first)]
    return f"<think>The screen starts {first}.</think><answer>{letter}</answer>"


def glance_rows(rows: list[dict], spec: VideoSpec, share: float, split: str = "train") -> list[dict]:
    """``rows`` (one split, in index order) with the reference trace swapped for ``glance_trace`` on a
    fraction ``share``, drawn per item from its own RNG stream: the videos, questions and answers are
    the same rows', so a second cold-start stage can reuse the written clips."""
    if not 0.0 <= share <= 1.0:
        raise UserError(f"glance share must be in [0, 1], got {share}")
    out = []
    for index, row in enumerate(rows):
        if _rng(spec.seed, split, 2, index).random() < share:
            row = {**row, "reasoning": glance_trace(plan_clip(spec, split, index))}
        out.append(row)
    return out


def make_video_item(out: Path, spec: VideoSpec, split: str, index: int) -> dict:
    plan = plan_clip(spec, split, index)
    frames, sound = render_clip(spec, plan)
    stem = f"{split}-{index:05d}"
    write_video(out / "videos" / f"{stem}.mp4", frames, spec.fps, sound)
    return {
        "problem_id": stem,
        "problem": QUESTION,
        "data_type": "video_audio",
        "problem_type": "multiple choice",
        "options": [f"{LETTERS[i]}. {c}" for i, c in enumerate(plan["options"])],
        "solution": f"<answer>{LETTERS[plan['letter']]}</answer>",
        "path": {"video": f"videos/{stem}.mp4"},
        "data_source": DATA_SOURCE,
        "needs": "both",
        "family": "tone_when",
        "reasoning": trace(plan, spec.trace),
        "tone_second": plan["second"] + 1,
        "tone_onset": plan["onset"],
        # the colour of every second, so an evaluation can say which colour a shifted tone lands on
        # (the desync diagnostic, ``echoink_lab.demo_honest``); a list, so never a grouping field
        "second_colours": list(plan["colours"]),
    }


def generate_video(out: str | Path, sizes: dict[str, int], spec: VideoSpec | None = None) -> dict[str, Path]:
    """Write the splits ``sizes`` names; returns their paths (and writes ``synth.yaml``)."""
    spec = spec or VideoSpec()
    out = Path(out)
    paths = {}
    for split, n in sizes.items():
        rows = [make_video_item(out, spec, split, i) for i in range(n)]
        paths[split] = out / f"{split}.json"
        paths[split].parent.mkdir(parents=True, exist_ok=True)
        paths[split].write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    manifest = {"generator": DATA_SOURCE, **asdict(spec), "sizes": dict(sizes)}
    (out / "synth.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return paths


def video_corpus(n: int = 200, palette: str = "drawn", style: str = "moment") -> list[str]:
    """Question, options and traces of the video family, for building a tokenizer."""
    spec, texts = VideoSpec(palette=palette, trace=style), []
    for index in range(n):
        plan = plan_clip(spec, "corpus", index)
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(plan["options"]))
        texts += [f"{QUESTION}\n{options}", trace(plan, style), glance_trace(plan)]
    return texts
