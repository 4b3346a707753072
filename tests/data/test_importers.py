"""`echoink data import` on small copies of the five releases as laid out (bench_layouts.py), `data check`
on what it writes, the row errors it names, and the 2-8 option rows through prompts and rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_layouts import FIG1_OPTIONS, FIG1_QUESTION, WRITERS, import_all, write_mmau
from echoink.cli import app
from echoink.data import RowError, load_split
from echoink.data.check import check_split
from echoink.data.importers import BENCHMARKS, import_benchmark
from echoink.data.media import Geometry
from echoink.data.messages import sample_messages
from echoink.data.overlap import split_overlap
from echoink.scoring.rewards import accuracy_reward
from media_helpers import make_row, write_image, write_split, write_tone

QWEN2_5 = Geometry()  # Qwen2.5-Omni's grid (the defaults of Geometry)

ROWS = {"omnibench": 2, "daily-omni": 3, "worldsense": 4, "mmau": 3, "mmar": 3}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The five releases under one folder, each imported there with the CLI."""
    root = import_all(tmp_path_factory.mktemp("bench"))
    for name, rows in ROWS.items():
        assert len(json.loads((root / f"{name}.json").read_text())) == rows
    return root


def test_cli_lists_the_registry_names():
    from echoink.cli_bench import BENCHMARK_NAMES

    assert sorted(BENCHMARK_NAMES.split(", ")) == BENCHMARKS.names()


def test_missing_media_are_counted_in_one_line(imported: Path, tmp_path: Path):
    write = WRITERS["daily-omni"]
    report = import_benchmark("daily-omni", write(tmp_path), tmp_path)
    assert (
        report.line() == f"{tmp_path / 'daily-omni.json'}: 3 rows; 1 left out, media missing (absent00000#0)"
    )
    report = import_benchmark("omnibench", WRITERS["omnibench"](tmp_path), tmp_path)
    assert report.rows == 2 and report.missing == ["8"]  # item 8's image is absent


def test_every_split_passes_data_check(imported: Path):
    check = CliRunner().invoke(app, ["data", "check", *(str(imported / f"{n}.json") for n in WRITERS)])
    assert check.exit_code == 0, check.output
    for name, rows in ROWS.items():
        assert f"{name}.json: {rows} rows, {rows} good, 0 bad" in check.output
    assert "options per question: 2 1, 3 1, 8 1" in check_split(imported / "mmau.json").lines()[3]


def test_rows_keep_the_releases_fields_and_reference_media_in_place(imported: Path):
    omni = {s.id: s for s in load_split(imported / "omnibench.json").samples}
    item7 = omni["7"]
    assert (item7.question, item7.answer, item7.data_type) == (FIG1_QUESTION, "D", "image_audio")
    assert item7.options == tuple(f"{'ABCD'[i]}. {t}" for i, t in enumerate(FIG1_OPTIONS))
    assert item7.audio == imported / "OmniBench/mm_data/audio/3_011jenny.mp3"  # not copied
    assert item7.metadata["task type"] == "Action and Activity" and item7.metadata["audio type"] == "speech"
    assert item7.metadata["answer_text"] == "Searching for people in the crowd."
    daily = load_split(imported / "daily-omni.json").samples
    assert [s.id for s in daily] == ["Ec_lQgZ9wlg#0", "Ec_lQgZ9wlg#1", "RqA3LAo75kw#0"]
    assert daily[0].video.name == "Ec_lQgZ9wlg_video.mp4" and daily[0].audio.name == "Ec_lQgZ9wlg_audio.wav"
    assert (
        daily[2].metadata["Explaination"] == "because" and "content_parent_category" not in daily[2].metadata
    )
    world = load_split(imported / "worldsense.json").samples
    assert [s.id for s in world] == ["vid001#task1", "vid001#task2", "vid001#task10", "vid002#task1"]
    assert world[2].metadata["task_type"] == "Audio Counting" and world[2].metadata["domain"] == "Daily Life"
    mmau = {s.id: s for s in load_split(imported / "mmau.json").samples}
    assert mmau["u-1"].audio == imported / "MMAU/test-mini-audios/u-1.wav"  # "./" dropped
    assert mmau["u-2"].options == ("A. thirteen", "B. twenty", "C. five") and mmau["u-2"].answer == "B"
    assert mmau["u-2"].metadata["choices_as_released"] == ["thirteen", "twenty", "thirteen", "five"]
    assert len(mmau["u-3"].options) == 8 and mmau["u-3"].answer == "H"
    mmar = {s.id: s for s in load_split(imported / "mmar.json").samples}
    assert mmar["BV1_00-00-00"].options == ("A. Entered", "B. Did not enter")  # the blank choice dropped
    assert mmar["qx8_00-01-32"].metadata["modality"] == "music" and mmar["qx8_00-01-32"].answer == "C"


def test_a_separate_soundtrack_file_is_the_sound_and_its_ablation(imported: Path):
    sample = load_split(imported / "daily-omni.json").samples[0]
    [messages] = sample_messages([sample], "direct", None, None, geometry=QWEN2_5)
    block = messages[-1]["content"][0]
    assert block["type"] == "video" and block["soundtrack"] is not None  # the mp4 itself has no audio stream
    assert len(block["soundtrack"]) == 16_000 and abs(block["soundtrack"]).max() > 0.1
    [silent] = sample_messages([sample], "direct", None, None, ablate="audio", geometry=QWEN2_5)
    assert not silent[-1]["content"][0]["soundtrack"].any()


@pytest.mark.parametrize("template", ["reasoning", "direct", "reasoning_short", "paper_eval"])
def test_eight_options_reach_the_prompt_and_the_reward(imported: Path, template: str):
    sample = {s.id: s for s in load_split(imported / "mmau.json").samples}["u-3"]
    [messages] = sample_messages([sample], template, None, None, geometry=QWEN2_5)
    text = messages[-1]["content"][-1]["text"]
    assert all(option in text for option in sample.options) and "H. eight" in text
    assert accuracy_reward(["<answer>H</answer>", "<answer>G</answer>"], [sample.solution] * 2) == [1.0, 0.0]


def test_an_answer_not_among_the_options_is_a_named_row_error(tmp_path: Path):
    src = write_mmau(tmp_path)
    rows = json.loads((src / "mmau-test-mini.json").read_text())
    rows[1]["answer"] = "twelve"
    (src / "mmau-test-mini.json").write_text(json.dumps(rows))
    with pytest.raises(RowError, match=r"mmau-test-mini.json: row 1: answer: answer 'twelve' is not among"):
        import_benchmark("mmau", src, tmp_path)
    result = CliRunner().invoke(app, ["data", "import", "mmau", str(src), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "row 1: answer" in str(result.exception)
    assert not (tmp_path / "mmau.json").exists()


def test_cli_errors_are_one_line(tmp_path: Path):
    from echoink.cli import run

    src = write_mmau(tmp_path)
    for args, expected in [
        (["data", "import", "mmau", str(src), "--out", str(tmp_path / "elsewhere")], "is not inside --out"),
        (
            ["data", "import", "nope", str(src), "--out", str(tmp_path)],
            "unknown benchmark 'nope'; valid: daily-omni",
        ),
    ]:
        proc = _run_cli(run, args)
        assert proc[0] == 2 and proc[1].count("\n") == 1 and expected in proc[1], proc
    for wav in (src / "test-mini-audios").iterdir():
        wav.unlink()
    code, err = _run_cli(run, ["data", "import", "mmau", str(src), "--out", str(tmp_path)])
    assert code == 2 and "nothing imported" in err and "3 left out, media missing (u-1, u-2, u-3)" in err


def _run_cli(run, args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        run(args)
    return exit_.value.code, err.getvalue()


def test_a_media_path_that_leaves_the_release_is_refused(tmp_path: Path):
    src = write_mmau(tmp_path)
    rows = json.loads((src / "mmau-test-mini.json").read_text())
    rows[0]["audio_id"] = "../../../etc/passwd"
    (src / "mmau-test-mini.json").write_text(json.dumps(rows))
    with pytest.raises(
        RowError, match="row 0: audio_id: media path '../../../etc/passwd' leaves the release"
    ):
        import_benchmark("mmau", src, tmp_path)


def test_overlap_finds_echoinks_figure_1_question_in_omnibench(imported: Path, tmp_path: Path):
    """A training split holding Figure 1's question (options reordered, other case and punctuation)."""
    write_image(tmp_path / "images/fig1.png")
    write_tone(tmp_path / "audios/fig1.wav")
    options = [f"{'ABCD'[i]}. {t.upper().rstrip('.')}" for i, t in enumerate(reversed(FIG1_OPTIONS))]
    rows = [
        make_row(0, "A", options, "images/fig1.png", "audios/fig1.wav")
        | {"problem": "what is this MAN doing"}
    ]
    train = write_split(tmp_path, [*rows, make_row(1, "A")])
    (tmp_path / "images/sample_1.png").write_bytes(
        (imported / "OmniBench/mm_data/image/3_011jenny.jpg").read_bytes()
    )
    write_tone(tmp_path / "audios/sample_1.wav")
    [match] = split_overlap(train, imported / "omnibench.json")
    assert (match.id_b, match.id_a, match.media) == ("7", "0", "different")  # re-encoded media
    out = CliRunner().invoke(app, ["data", "overlap", str(train), str(imported / "omnibench.json")])
    assert out.exit_code == 0 and "1 item(s)" in out.output and "7  = A's 0  (media: different)" in out.output
    assert [m.media for m in split_overlap(imported / "omnibench.json", imported / "omnibench.json")] == [
        "identical", "identical"]  # fmt: skip


def test_release_fields_never_override_the_schema_and_symlinks_out_are_refused(tmp_path: Path):
    (tmp_path / "in").mkdir()
    src = write_mmau(tmp_path / "in")
    rows = json.loads((src / "mmau-test-mini.json").read_text())
    rows[0] |= {"solution": "<answer>B</answer>", "path": {"audio": "/etc/passwd"}, "benchmark": "other"}
    (src / "mmau-test-mini.json").write_text(json.dumps(rows))
    import_benchmark("mmau", src, tmp_path / "in")
    row = json.loads((tmp_path / "in/mmau.json").read_text())[0]
    assert (row["solution"], row["path"], row["benchmark"]) == (
        "<answer>A</answer>",
        {"audio": "MMAU/test-mini-audios/u-1.wav"},
        "mmau",
    )
    outside = write_tone(tmp_path / "outside.wav")
    (src / "test-mini-audios/u-1.wav").unlink()
    (src / "test-mini-audios/u-1.wav").symlink_to(outside)
    with pytest.raises(RowError, match="question u-1: test-mini-audios/u-1.wav resolves outside"):
        import_benchmark("mmau", src, tmp_path / "in")
