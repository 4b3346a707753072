"""Video with its soundtrack: PyAV decode/encode, the tone_when benchmark, data check, ablations."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from echoink.data import load_split
from echoink.data.avqa import RowError
from echoink.data.messages import VideoSettings, video_block
from echoink.data.synth_video import VideoSpec, generate_video, plan_clip
from echoink.data.video import load_video, shifted, video_info, write_video


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video_bench")
    generate_video(out, {"train": 16, "test": 4}, VideoSpec(seed=0))
    return out


def test_written_clip_decodes_to_its_frames_and_tone(bench):
    row = json.loads((bench / "train.json").read_text())[0]
    clip = load_video(bench / row["path"]["video"], fps=2, max_frames=16)
    assert clip.frames.shape == (8, 56, 56, 3) and clip.fps == 2
    plan = plan_clip(VideoSpec(seed=0), "train", 0)
    from echoink.data.synth_media import RGB

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
    none = video_block(sample, settings)
    audio, video, desync = (video_block(sample, settings, a) for a in ("audio", "video", "desync"))
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
