"""data overlap --media and the strict training split: shared media found by content, whatever the text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.data.media_overlap import media_overlap, strict_split
from media_helpers import make_row, write_image, write_split, write_tone


def _split(root: Path, n: int, offset: int, question: str) -> Path:
    """``n`` rows with media of their own (colours and tones distinct across both splits)."""
    rows = []
    for i in range(n):
        k = offset + i
        write_image(root / f"images/sample_{i}.png", color=(20 * k % 256, 40 + 7 * k, 90))
        write_tone(root / f"audios/sample_{i}.wav", seconds=0.5, freq=300 + 40 * k)
        rows.append(make_row(i, answer="ABC"[i % 3]) | {"problem": f"{question} {k}?"})
    return write_split(root, rows, f"{root.name}.json")


def _planted(tmp_path: Path) -> tuple[Path, Path]:
    """Train (6 rows) and val (4 rows), every question text different; val's item 0 shows train's
    image 2 and val's item 1 plays train's audio 4, copied under other names."""
    train = _split(tmp_path / "train", 6, 0, "Which colour did the lamp show at second")
    val = _split(tmp_path / "val", 4, 100, "How many beeps come before tone")
    shutil.copy(tmp_path / "train/images/sample_2.png", tmp_path / "val/images/copied.png")
    shutil.copy(tmp_path / "train/audios/sample_4.wav", tmp_path / "val/audios/renamed.wav")
    rows = json.loads(val.read_text())
    rows[0]["path"]["image"] = "images/copied.png"
    rows[1]["path"]["audio"] = "audios/renamed.wav"
    val.write_text(json.dumps(rows))
    return train, val


def test_planted_shared_media_are_found_with_all_question_texts_different(tmp_path):
    train, val = _planted(tmp_path)
    out = tmp_path / "overlap.json"
    result = CliRunner().invoke(app, ["data", "overlap", str(train), str(val), "--media", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["text"]["items"] == 0  # the text comparison alone sees nothing
    assert report["media"]["items"] == 2 and report["media"]["media_only"] == 2
    assert report["media"]["by_kind"] == {"audio": 1, "image": 1, "video": 0}
    found = {(m["id_b"], m["kind"], m["id_a"]) for m in report["media"]["matches"]}
    assert found == {("0", "image", "2"), ("1", "audio", "4")}
    assert "text: 0 item(s)" in result.output and "media: 2 item(s) of B use a medium of A" in result.output
    assert "0  image = A's 2" in result.output


def test_identical_looking_but_different_media_do_not_match(tmp_path):
    a = _split(tmp_path / "a", 3, 0, "Question")
    b = _split(tmp_path / "b", 3, 10, "Question")  # same file names, other content
    from echoink.data import load_split

    load = [load_split(p).samples for p in (a, b)]
    assert media_overlap(*load) == []
    assert len(media_overlap(load[0], load[0])) == 6  # every image and audio against itself


def test_data_check_writes_a_strict_training_split(tmp_path):
    train, val = _planted(tmp_path)
    result = CliRunner().invoke(app, ["data", "check", str(train), "--strict-against", str(val)])
    assert result.exit_code == 0, result.output
    strict = tmp_path / "train/train.strict.json"
    assert f"strict split: {strict}: 4 rows kept, 2 dropped" in result.output
    assert [r["problem_id"] for r in json.loads(strict.read_text())] == [0, 1, 3, 5]
    check = CliRunner().invoke(app, ["data", "overlap", str(strict), str(val), "--media"])
    assert "media: 0 item(s)" in check.output
    with pytest.raises(ValueError, match="beside"):
        strict_split(train, val, tmp_path / "elsewhere.json")  # its media paths would point nowhere
