"""Video with its soundtrack: PyAV decode/encode, the tone_when benchmark, data check, ablations."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from echoink.data import load_split
from echoink.data.avqa import RowError
from echoink.data.media import Geometry
from echoink.data.messages import VideoSettings, video_block
from echoink.data.video import load_video, shifted, video_info, write_video
from echoink_lab.synth_video import VideoSpec, generate_video, glance_rows, glance_trace, plan_clip, trace

QWEN2_5 = Geometry()  # Qwen2.5-Omni's grid (the defaults of Geometry)

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video_bench")
    generate_video(out, {"train": 16, "test": 4}, VideoSpec(seed=0))
    return out


def test_written_clip_decodes_to_its_frames_and_tone(bench):
    row = json.loads((bench / "train.json").read_text())[0]
    clip = load_video(bench / row["path"]["video"], fps=2, max_frames=16, geometry=QWEN2_5)
    assert clip.frames.shape == (8, 56, 56, 3) and clip.fps == 2
    plan = plan_clip(VideoSpec(seed=0), "train", 0)
    from echoink_lab.synth_media import RGB

    for t in range(8):  # the centre pixel shows second t // 2's colour (h264 is lossy: within 12 levels)
        assert np.abs(clip.frames[t, 28, 28].astype(int) - RGB[plan["colours"][t // 2]]).max() < 12
    loud = np.flatnonzero(np.abs(clip.soundtrack) > 0.1) / 16_000
    assert abs(loud[0] - plan["onset"]) < 0.02 and loud[-1] < plan["onset"] + 0.32


def test_benchmark_is_deterministic_and_balanced(bench, tmp_path):
    again = tmp_path / "again"
    generate_video(again, {"train": 16, "test": 4}, VideoSpec(seed=0))
    for split in ("train", "test"):
        assert (again / f"{split}.json").read_text() == (bench / f"{split}.json").read_text()
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(again / "videos/train-00003.mp4") == digest(bench / "videos/train-00003.mp4")
    rows = json.loads((bench / "train.json").read_text())
    letters = [r["solution"][8] for r in rows]
    assert {c: letters.count(c) for c in "ABCD"} == {"A": 4, "B": 4, "C": 4, "D": 4}
    for r in rows:  # the answer is the colour shown in the tone's second; the options are the clip's colours
        plan = plan_clip(VideoSpec(seed=0), "train", int(r["problem_id"].split("-")[1]))
        answer = r["options"]["ABCD".index(r["solution"][8])][3:]
        assert answer == plan["colours"][plan["second"]] and sorted(o[3:] for o in r["options"]) == sorted(
            plan["colours"]
        )


def test_fixed_palette_keeps_the_options_in_place_and_the_answer_in_the_streams():
    """The fixed palette: every clip shows the same four colours in its own order, the options are always
    A. red .. D. blue, the letters stay balanced, and the tone's second and the order vary, so neither
    stream alone gives the answer."""
    spec = VideoSpec(seed=0, palette="fixed")
    plans = [plan_clip(spec, "train", i) for i in range(64)]
    assert all(p["options"] == ["red", "yellow", "green", "blue"] for p in plans)
    assert all(sorted(p["colours"]) == sorted(p["options"]) for p in plans)
    assert all(p["colours"][p["second"]] == p["options"][p["letter"]] for p in plans)
    assert sorted(p["letter"] for p in plans) == sorted(list(range(4)) * 16)
    assert len({p["second"] for p in plans}) == 4 and len({tuple(p["colours"]) for p in plans}) > 12
    with pytest.raises(ValueError, match="palette must be one of drawn, fixed"):
        VideoSpec(palette="rainbow")


def test_seconds_traces_name_each_second_in_order_and_the_tone_once():
    """The seconds trace: one line per second, its colour, tone or silent, and the answer so far (none
    before the tone, its colour's letter from then on), in the clip's order, then the answer; every
    line has the same length, so every trace has its tokens in the same places."""
    spec = VideoSpec(seed=0, palette="fixed", trace="seconds")
    for plan in (plan_clip(spec, "train", i) for i in range(16)):
        text = trace(plan, spec.trace)
        lines = text.removeprefix("<think>").split("</think>")[0].split(". ")
        assert [line.rstrip(".") for line in lines] == [
            f"Second {t + 1}: {c}, {'tone' if t == plan['second'] else 'silent'}, "
            f"so far {'ABCD'[plan['letter']] if t >= plan['second'] else 'none'}"
            for t, c in enumerate(plan["colours"])
        ]
        assert text.endswith(f"<answer>{'ABCD'[plan['letter']]}</answer>")
    with pytest.raises(ValueError, match="trace must be one of moment, seconds"):
        VideoSpec(trace="story")


@pytest.mark.parametrize("palette", ["fixed", "drawn"])
def test_glance_trace_answers_the_first_colour_right_only_when_the_tone_is_in_the_first_second(palette):
    """The one-frame shortcut names the first second's colour and answers its option's letter, so it is
    right exactly on the clips whose tone sounds in the first second."""
    spec = VideoSpec(seed=0, palette=palette)
    plans = [plan_clip(spec, "train", i) for i in range(64)]
    for plan in plans:
        text = glance_trace(plan)
        assert text.startswith(f"<think>The screen starts {plan['colours'][0]}.</think>")
        letter = text.split("<answer>")[1][0]
        assert plan["options"]["ABCD".index(letter)] == plan["colours"][0]
        assert (letter == "ABCD"[plan["letter"]]) == (plan["second"] == 0)
    assert 0 < sum(p["second"] == 0 for p in plans) < len(plans)  # both kinds of clip were checked


def test_glance_rows_swap_only_the_trace_on_the_asked_share(bench):
    """The glance split: the same rows (clips, questions, answers), the trace swapped on about the
    share asked, the same rows every time, none at 0 and all at 1; a share outside [0, 1] is refused."""
    spec = VideoSpec(seed=0)  # the bench's
    rows = json.loads((bench / "train.json").read_text()) * 25  # 400 rows (indices past 16: mechanics only)
    swapped = glance_rows(rows, spec, 0.65)
    assert swapped == glance_rows(rows, spec, 0.65)
    glanced = [i for i, (a, b) in enumerate(zip(rows, swapped, strict=True)) if a != b]
    assert 0.58 < len(glanced) / len(rows) < 0.72
    for i in glanced:
        assert {k: v for k, v in swapped[i].items() if k != "reasoning"} == {
            k: v for k, v in rows[i].items() if k != "reasoning"
        }
        assert swapped[i]["reasoning"].startswith("<think>The screen starts ")
    assert glance_rows(rows, spec, 0.0) == rows
    assert all(r["reasoning"].startswith("<think>The screen") for r in glance_rows(rows, spec, 1.0))
    with pytest.raises(ValueError, match=r"glance share must be in \[0, 1\]"):
        glance_rows(rows, spec, 1.5)


@pytest.mark.skipif(
    shutil.which("ffprobe") is None, reason="no ffprobe (Makefile test set-up installs ffmpeg)"
)
def test_ffprobe_sees_one_video_and_one_audio_stream(bench):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(bench / "videos/train-00000.mp4")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert sorted(s["codec_type"] for s in json.loads(out)["streams"]) == ["audio", "video"]


def test_check_rejects_a_silent_video_for_a_video_audio_row(bench, tmp_path):
    frames = np.zeros((4, 56, 56, 3), np.uint8)
    write_video(tmp_path / "videos/silent.mp4", frames, 2, None)
    assert not video_info(tmp_path / "videos/silent.mp4").has_audio
    rows = [
        {**json.loads((bench / "train.json").read_text())[0], "path": {"video": "videos/silent.mp4"}},
        {**json.loads((bench / "train.json").read_text())[0], "problem_id": "v", "data_type": "video",
         "path": {"video": "videos/silent.mp4"}},
    ]  # fmt: skip
    (tmp_path / "split.json").write_text(json.dumps(rows))
    with pytest.raises(RowError, match=r"row 0: .*silent.mp4.*no audio stream"):
        load_split(tmp_path / "split.json")
    assert [s.data_type for s in load_split(tmp_path / "split.json", on_error="skip").samples] == ["video"]


def test_truncated_video_is_a_row_error(bench, tmp_path):
    data = (bench / "videos/train-00000.mp4").read_bytes()
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos/cut.mp4").write_bytes(data[: len(data) // 3])
    row = {**json.loads((bench / "train.json").read_text())[0], "path": {"video": "videos/cut.mp4"}}
    (tmp_path / "split.json").write_text(json.dumps([row]))
    with pytest.raises(RowError, match="row 0: .*cut.mp4"):
        load_split(tmp_path / "split.json")


def test_ablations_change_only_what_they_name(bench):
    sample = load_split(bench / "test.json").samples[0]
    settings = VideoSettings(fps=2, max_frames=16)
    none = video_block(sample, settings, geometry=QWEN2_5)
    audio, video, desync = (
        video_block(sample, settings, a, geometry=QWEN2_5) for a in ("audio", "video", "desync")
    )
    assert not audio["soundtrack"].any() and np.array_equal(audio["video"], none["video"])
    assert (video["video"] == 128).all() and np.array_equal(video["soundtrack"], none["soundtrack"])
    half = int(2.0 * 16_000)  # default: half the 4 s clip, wrapping around
    np.testing.assert_array_equal(desync["soundtrack"], shifted(none["soundtrack"], 2.0))
    assert np.array_equal(desync["soundtrack"][half:], none["soundtrack"][:-half])
    assert np.array_equal(desync["soundtrack"][:half], none["soundtrack"][-half:])  # the tone is never lost
    assert np.array_equal(desync["video"], none["video"])


def test_data_check_passes_the_benchmark_and_names_a_silent_video_row(bench, tmp_path):
    from echoink.data.check import check_split

    report = check_split(bench / "train.json")
    assert report.good == 16 and not report.problems
    assert any("video: seconds min 4.00" in line and "frames 8-8" in line for line in report.lines())
    write_video(tmp_path / "videos/silent.mp4", np.zeros((4, 56, 56, 3), np.uint8), 2, None)
    rows = json.loads((bench / "train.json").read_text())[:2]
    rows[1] = {**rows[1], "path": {"video": "videos/silent.mp4"}}
    for r in rows[:1]:  # keep row 0 valid: point it at a copy in this folder
        (tmp_path / "videos" / "ok.mp4").write_bytes((bench / r["path"]["video"]).read_bytes())
        r["path"] = {"video": "videos/ok.mp4"}
    (tmp_path / "split.json").write_text(json.dumps(rows))
    report = check_split(tmp_path / "split.json")
    assert report.good == 1 and [p.row for p in report.problems] == [1]
    assert "no audio stream" in str(report.problems[0])


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """A 60 s clip at 4 fps, frame i grey level i (time t shows 4 t), its soundtrack silent but for a tone
    in [2, 3) s and another in [40, 41) s; rows: video_audio (0), the same with a separate 60 s wav whose
    tone is in [5, 6) s (1), frames only (2)."""
    root = tmp_path_factory.mktemp("long_clip")
    t = np.arange(60 * 16_000) / 16_000
    sound = (0.3 * np.sin(2 * np.pi * 440 * t) * (((t >= 2) & (t < 3)) | ((t >= 40) & (t < 41)))).astype(
        "float32"
    )
    frames = np.repeat(np.arange(240, dtype=np.uint8)[:, None, None, None], 56, 1).repeat(56, 2).repeat(3, 3)
    write_video(root / "videos/long.mp4", frames, 4, sound)
    separate = (0.3 * np.sin(2 * np.pi * 440 * t) * ((t >= 5) & (t < 6))).astype("float32")
    sf.write(root / "long.wav", separate, 16_000)
    base = {"problem": "q?", "problem_type": "multiple choice", "options": ["A. a", "B. b"],
            "solution": "<answer>A</answer>", "data_source": "test"}  # fmt: skip
    rows = [
        {**base, "problem_id": 0, "data_type": "video_audio", "path": {"video": "videos/long.mp4"}},
        {**base, "problem_id": 1, "data_type": "video_audio", "path": {"video": "videos/long.mp4", "audio": "long.wav"}},
        {**base, "problem_id": 2, "data_type": "video", "path": {"video": "videos/long.mp4"}},
    ]  # fmt: skip
    (root / "split.json").write_text(json.dumps(rows))
    return root / "split.json"


def _loud_seconds(sound: np.ndarray) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(sound) > 0.1) / 16_000
    return float(loud[0]), float(loud[-1])


def test_a_long_clip_is_one_span_of_frames_and_sound(long_clip):
    """16 frames at 2 fps show the first 8 s; the soundtrack is those 8 s too (not 60 s: its 40 s tone
    is gone), within data.max_audio_seconds, and the desync shift is half of that span."""
    from echoink.data import sample_messages

    clip, separate, frames_only = load_split(long_clip).samples
    settings = VideoSettings(fps=2, max_frames=16)
    block = lambda s, ablate="none", max_audio=None: sample_messages(  # noqa: E731
        [s], "reasoning", max_audio, None, ablate, settings, geometry=QWEN2_5
    )[0][-1]["content"][0]
    none = block(clip)
    levels = none["video"][:, 28, 28, 0].astype(int)  # frame k shows time k / 2: grey level 2 k
    assert len(levels) == 16 and np.abs(levels - 2 * np.arange(16)).max() <= 3
    assert len(none["soundtrack"]) == 8 * 16_000
    start, end = _loud_seconds(none["soundtrack"])
    assert start > 1.99 and end < 3.01  # the 2-3 s tone; the 40 s one is past the span
    desync = block(clip, "desync")  # half the 8 s span shown, not half of 60 s (or of 8 s frames of 60 s)
    np.testing.assert_array_equal(desync["soundtrack"], shifted(none["soundtrack"], 4.0))
    assert 5.99 < _loud_seconds(desync["soundtrack"])[0] < 6.01
    short = block(clip, max_audio=5.0)  # the soundtrack's budget cuts the frames with it: 10 frames, 5 s
    assert len(short["video"]) == 10 and len(short["soundtrack"]) == 5 * 16_000
    assert len(block(clip, max_audio=10.0)["soundtrack"]) == 8 * 16_000
    sound = block(separate)["soundtrack"]  # a row's own soundtrack file is cut to the same span
    assert len(sound) == 8 * 16_000 and _loud_seconds(sound)[0] > 4.99
    assert block(frames_only, max_audio=5.0)["video"].shape[0] == 16  # no sound: max_audio_seconds n/a


def test_a_clip_within_the_span_is_kept_whole(bench):
    row = json.loads((bench / "train.json").read_text())[0]
    whole = load_video(bench / row["path"]["video"], fps=2, max_frames=16, geometry=QWEN2_5)
    fit = load_video(bench / row["path"]["video"], fps=2, max_frames=8, geometry=QWEN2_5)  # its 4 s exactly
    assert not whole.cut and not fit.cut and fit.span == 4.0
    np.testing.assert_array_equal(fit.frames, whole.frames)
    np.testing.assert_array_equal(fit.soundtrack, whole.soundtrack)  # the codec's tail past 4 s stays
    assert len(fit.soundtrack) > 4 * 16_000


def test_data_check_lists_the_clips_that_will_be_cut(long_clip, bench):
    from echoink.data.check import check_split

    report = check_split(long_clip, VideoSettings(fps=2, max_frames=16), max_audio_seconds=5.0)
    assert [(row, round(sec), span) for row, sec, span in report.cut] == [
        (0, 60, 5.0),
        (1, 60, 5.0),
        (2, 60, 8.0),
    ]
    assert "  clips cut to their span, frames and sound (3): row 0 (60.0 s -> 5 s)" in "\n".join(
        report.lines()
    )
    assert not check_split(bench / "train.json", VideoSettings(fps=2, max_frames=8)).cut  # 4 s clips fit
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "data", "check", str(long_clip), "--max-audio-seconds", "10"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "clips cut to their span, frames and sound (3): row 0 (60.0 s -> 8 s)" in out.stdout
