import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echoink.data import RowError, build_messages, load_audio, load_image, load_media, load_split
from echoink.data.media import Geometry, MediaError
from media_helpers import make_row, write_image, write_split, write_tone


@pytest.fixture
def mixed_split(tmp_path: Path) -> Path:
    """Six rows: good, answer out of range, missing audio, corrupt wav, path escaping root, options unlettered."""
    for i in range(6):
        write_image(tmp_path / f"images/sample_{i}.png")
        if i != 2:
            write_tone(tmp_path / f"audios/sample_{i}.wav")
    (tmp_path / "audios/sample_3.wav").write_bytes(b"RIFF\x00\x00garbage-not-a-wav" * 10)
    write_tone(tmp_path.parent / "outside.wav")
    rows = [
        make_row(0, answer="B"),
        make_row(1, answer="E"),
        make_row(2),
        make_row(3),
        make_row(4, audio="../outside.wav"),
        make_row(5, options=["1. red", "2. blue", "3. none"], answer="A"),
    ]
    return write_split(tmp_path, rows)


def test_strict_stops_at_first_bad_row(mixed_split: Path):
    with pytest.raises(RowError) as err:
        load_split(mixed_split, on_error="strict")
    assert err.value.row == 1
    assert str(mixed_split) in str(err.value) and "out of range" in str(err.value)


def test_skip_reports_every_bad_row(mixed_split: Path):
    result = load_split(mixed_split, on_error="skip")
    assert [s.id for s in result.samples] == ["0"]
    assert [e.row for e in result.skipped] == [1, 2, 3, 4, 5]
    reasons = [e.reason for e in result.skipped]
    assert "out of range" in reasons[0]
    assert "not found" in reasons[1]
    assert "cannot read audio" in reasons[2]
    assert "escapes the dataset root" in reasons[3]
    assert "lettered" in reasons[4]


def test_data_check_lists_all_problems(mixed_split: Path):
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "data", "check", str(mixed_split)], capture_output=True, text=True
    )
    assert out.returncode == 1
    for row in range(1, 6):
        assert f"row {row}:" in out.stdout
    assert "6 rows, 1 good, 5 bad" in out.stdout


def test_data_check_clean_split_exits_zero(good_split: Path):
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "data", "check", str(good_split)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "problems: none" in out.stdout and "answer letters: A 2" in out.stdout


def test_data_show_renders_prompt(good_split: Path):
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "data", "show", str(good_split), "--index", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Options:\nA. the red circle" in out.stdout and "<think>" in out.stdout


def test_jsonl_and_absolute_path(tmp_path: Path):
    write_image(tmp_path / "images/sample_0.png")
    write_tone(tmp_path / "audios/sample_0.wav")
    import json

    rows = [make_row(0), make_row(1, audio=str(tmp_path / "audios/sample_0.wav"))]
    path = tmp_path / "val.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = load_split(path, on_error="skip")
    assert len(result.samples) == 1 and "absolute" in result.skipped[0].reason


def test_single_modality_rows(tmp_path: Path):
    write_tone(tmp_path / "a.wav")
    write_image(tmp_path / "i.png")
    rows = [
        {**make_row(0), "data_type": "audio", "path": {"audio": "a.wav"}},
        {**make_row(1), "data_type": "image", "path": {"image": "i.png"}},
        {**make_row(2), "data_type": "text", "path": {}},
    ]
    samples = load_split(write_split(tmp_path, rows)).samples
    assert samples[0].image is None and samples[0].audio is not None
    assert samples[1].audio is None and samples[1].image is not None
    assert samples[2].audio is None and samples[2].image is None
    assert [b["type"] for b in build_messages(samples[2])[-1]["content"]] == ["text"]
    blocks = [b["type"] for b in build_messages(samples[0], audio=np.zeros(10, np.float32))[-1]["content"]]
    assert blocks == ["audio", "text"]


def test_audio_resampled_to_16k_mono(tmp_path: Path):
    path = write_tone(tmp_path / "stereo.wav", seconds=1.5, rate=44_100, channels=2)
    clip = load_audio(path)
    assert clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert abs(len(clip.waveform) - 24_000) <= 1
    # the tone survives resampling: dominant frequency still 440 Hz
    spectrum = np.abs(np.fft.rfft(clip.waveform))
    assert abs(np.argmax(spectrum) * 16_000 / len(clip.waveform) - 440) < 2


def test_audio_cut_counts_clipped(tmp_path: Path):
    path = write_tone(tmp_path / "long.wav", seconds=3.0)
    clip = load_audio(path, max_seconds=1.0)
    assert clip.clipped and len(clip.waveform) == 16_000
    assert not load_audio(path).clipped


def test_image_rgb_and_max_pixels(tmp_path: Path):
    path = tmp_path / "big.png"
    Image.new("L", (400, 200), 90).save(path)
    img = load_image(path, max_pixels=200 * 100, geometry=Geometry())
    assert img.mode == "RGB" and img.width * img.height <= 20_000
    assert img.size == (196, 84)  # each side on the 28-px grid (7 x 3 cells); 16,464 px


def test_corrupt_image_names_file(tmp_path: Path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"not a png")
    with pytest.raises(MediaError, match="bad.png"):
        load_image(path)


def test_messages_order_and_ablation(good_split: Path):
    sample = load_split(good_split).samples[0]
    audio, image = load_media(sample, ablate="audio", geometry=Geometry())
    assert audio is not None and not audio.any()
    msgs = build_messages(sample, "reasoning_short", audio=audio, image=image)
    assert msgs[0]["role"] == "system"
    assert [b["type"] for b in msgs[1]["content"]] == ["image", "audio", "text"]
    _, blank = load_media(sample, ablate="image", geometry=Geometry())
    assert len(blank.getcolors()) == 1
