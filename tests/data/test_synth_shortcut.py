"""The shortcut family: deterministic, balanced, the cue where the rows say, and a cue-following rule
"model" that reads only the picture scores ~100% on aligned, ~0% on broken and chance on neutral items."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echoink.data import load_split
from echoink.eval.summary import summarize
from echoink_lab.synth import SynthSpec, generate, plan_item
from echoink_lab.synth_scene import COLOURS, LETTERS
from echoink_lab.synth_shortcut import framed_object

SIZES = {"train": 200, "test": 200}


@pytest.fixture(scope="module", params=["easy", "medium"])
def bench(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"shortcut_{request.param}")
    spec = SynthSpec(seed=5, difficulty=request.param, families=("shortcut_where",), shortcut=0.8)
    generate(out, SIZES, spec, workers=1)
    return out


def _rows(out: Path, split: str) -> list[dict]:
    return json.loads((out / f"{split}.json").read_text())


def cue_follower(row: dict, split_dir: Path) -> str:
    """The rule-based model: answer the place of the framed object (read from the pixels), else A."""
    pixels = np.asarray(Image.open(split_dir / row["path"]["image"]).convert("RGB"))
    framed = framed_object(pixels, [o["box"] for o in row["scene"]])
    return LETTERS[0 if framed is None else framed]


def test_cue_follower_scores_all_aligned_none_broken_chance_neutral(bench: Path):
    by: dict[str, list[bool]] = {}
    for split in SIZES:
        for row in _rows(bench, split):
            correct = f"<answer>{cue_follower(row, bench)}</answer>" == row["solution"]
            by.setdefault(row["shortcut"], []).append(correct)
    acc = {k: float(np.mean(v)) for k, v in by.items()}
    assert acc["aligned"] >= 0.99 and acc["broken"] <= 0.01, acc
    assert 0.1 <= acc["none"] <= 0.4, acc  # "always A" on unframed items: chance


def test_statuses_fractions_and_letters_are_balanced(bench: Path):
    train, test = _rows(bench, "train"), _rows(bench, "test")
    status = Counter(r["shortcut"] for r in train)
    assert set(status) == {"aligned", "none"} and abs(status["aligned"] / len(train) - 0.8) < 0.08, status
    assert Counter(r["shortcut"] for r in test) == {"broken": 100, "none": 100}
    for part in ("broken", "none"):  # each held-out part: every letter equally often
        letters = Counter(r["solution"] for r in test if r["shortcut"] == part)
        assert set(letters.values()) == {25}, (part, letters)
    assert set(Counter(r["solution"] for r in train).values()) == {50}


def test_the_answer_follows_from_tone_and_picture_whatever_the_cue():
    """An independent solver: the tone's colour, found in the scene, is the answer's place."""
    spec = SynthSpec(seed=1, families=("shortcut_where",), shortcut=1.0)
    for split in ("train", "test"):
        for i in range(80):
            plan = plan_item(spec, split, i)[0]
            colours = [o.colour for o in plan.scene]
            assert colours.index(COLOURS[plan.cue.value]) == plan.answer
            assert len(set(colours)) == 4


def test_the_cue_changes_nothing_but_the_frame(tmp_path: Path):
    """Same seed with and without the cue: identical questions, traces, scenes and audio."""
    generate(
        tmp_path / "cue", {"train": 12}, SynthSpec(seed=2, families=("shortcut_where",), shortcut=1.0), 1
    )
    generate(tmp_path / "plain", {"train": 12}, SynthSpec(seed=2, families=("shortcut_where",)), 1)
    cue, plain = _rows(tmp_path / "cue", "train"), _rows(tmp_path / "plain", "train")
    for a, b in zip(cue, plain, strict=True):
        assert a.pop("shortcut") == "aligned" and "shortcut" not in b
        assert a == b
        assert (tmp_path / "cue" / a["path"]["audio"]).read_bytes() == (
            tmp_path / "plain" / b["path"]["audio"]
        ).read_bytes()


def test_deterministic_per_seed(tmp_path: Path):
    spec = SynthSpec(seed=9, families=("shortcut_where",), shortcut=0.5)
    generate(tmp_path / "a", {"train": 20, "test": 8}, spec, workers=1)
    generate(tmp_path / "b", {"train": 20, "test": 8}, spec, workers=2)
    for rel in sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    other = SynthSpec(seed=10, families=("shortcut_where",), shortcut=0.5)
    assert [plan_item(spec, "train", i)[0].mark for i in range(20)] != [
        plan_item(other, "train", i)[0].mark for i in range(20)
    ]


def test_bad_shortcut_settings_are_refused():
    with pytest.raises(ValueError, match="shortcut must be in"):
        SynthSpec(families=("shortcut_where",), shortcut=1.5)
    with pytest.raises(ValueError, match="needs one of the families shortcut_where"):
        SynthSpec(families=("tone_where",), shortcut=0.8)


def test_eval_summary_reports_accuracy_by_shortcut(bench: Path):
    """The evaluation summary groups by ``shortcut`` (the cue follower's predictions as the rows)."""
    samples = load_split(bench / "test.json").samples
    rows = []
    for sample, row in zip(samples, _rows(bench, "test"), strict=True):
        pred = cue_follower(row, bench)
        rows.append(
            {"id": sample.id, "condition": "none", "sample": 0, "pred": pred, "correct": pred == sample.answer,
             "format_ok": True, "length": 1, "truncated": False, "answer": sample.answer,
             "completion": f"<answer>{pred}</answer>"}
        )  # fmt: skip
    by = summarize(rows, samples, ["none"])["conditions"]["none"]["by"]["shortcut"]
    assert set(by) == {"broken", "none"} and by["broken"]["n"] == 100
    assert by["broken"]["accuracy"] == 0.0 and by["broken"]["ci95"][1] < 0.05
    broken = [s for s in samples if s.metadata["shortcut"] == "broken"]  # one part alone is still reported
    only = summarize([r for r in rows if r["id"] in {s.id for s in broken}], broken, ["none"])
    assert set(only["conditions"]["none"]["by"]["shortcut"]) == {"broken"}


def test_cli_shortcut_defaults_to_the_shortcut_family(tmp_path: Path):
    cmd = [sys.executable, "-m", "echoink", "data", "synth", "--out", str(tmp_path), "--train", "8"]
    cmd += ["--val", "0", "--test", "4", "--difficulty", "easy", "--shortcut", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rows = _rows(tmp_path, "train")
    assert {r["family"] for r in rows} == {"shortcut_where"} and {r["shortcut"] for r in rows} == {"aligned"}
    bad = subprocess.run([*cmd[:-2], "--shortcut", "0.5", "--families", "tone_where"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert bad.returncode != 0 and "shortcut_where" in bad.stderr


def test_heldout_parts_can_include_aligned():
    spec = SynthSpec(families=("shortcut_where",), shortcut=0.8, heldout=("broken", "none", "aligned"))
    from echoink_lab.synth_shortcut import status_of

    statuses = Counter(status_of(plan_item(spec, "test", i)[0]) for i in range(120))
    assert statuses == {"broken": 40, "none": 40, "aligned": 40}
    with pytest.raises(ValueError, match="heldout must name"):
        SynthSpec(families=("shortcut_where",), shortcut=0.8, heldout=("sometimes",))


def test_frame_traces_read_the_frame_on_some_framed_training_items():
    """``frame_traces``: that share of framed training items' traces name the framed place and its letter;
    every other item (unframed, held out) and every item's question, scene, cue and answer stay the same."""
    plain = SynthSpec(seed=3, families=("shortcut_where",), shortcut=0.8)
    leaning = SynthSpec(seed=3, families=("shortcut_where",), shortcut=0.8, frame_traces=0.5)
    framed = read = 0
    for split in ("train", "test"):
        for i in range(200):
            a, ta, _, _ = plan_item(plain, split, i)
            b, tb, _, _ = plan_item(leaning, split, i)
            assert a == b
            if split == "train" and b.mark is not None:
                framed += 1
                if tb != ta:
                    read += 1
                    place = ("first", "second", "third", "fourth")[b.mark]
                    assert f"A dark frame marks the {place} object." in tb
                    assert tb.endswith(f"<answer>{LETTERS[b.answer]}</answer>")
            else:
                assert tb == ta
    assert framed > 100 and 0.35 < read / framed < 0.65, (framed, read)
    with pytest.raises(ValueError, match="frame_traces"):
        SynthSpec(families=("shortcut_where",), frame_traces=0.5)


def test_conflict_frames_move_a_share_of_aligned_training_frames_to_wrong_objects():
    """Conflict data (the experiment's ``conflict`` arm): ``conflict_frames`` of the training items framed on
    a wrong object, out of the framed share; the items themselves, the unframed ones and the held-out
    split unchanged, and ``conflict_frames = 0`` the same benchmark as before the option."""
    from echoink_lab.synth_shortcut import status_of

    plain = SynthSpec(seed=3, families=("shortcut_where",), shortcut=0.8)
    conflict = SynthSpec(seed=3, families=("shortcut_where",), shortcut=0.8, conflict_frames=0.3)
    n = 400
    a = [plan_item(plain, "train", i)[0] for i in range(n)]
    b = [plan_item(conflict, "train", i)[0] for i in range(n)]
    status = Counter(status_of(p) for p in b)
    assert abs(status["broken"] / n - 0.3) < 0.06 and abs(status["aligned"] / n - 0.5) < 0.06, status
    assert sum(p.mark is not None for p in a) == sum(p.mark is not None for p in b)  # same framed share
    for pa, pb in zip(a, b, strict=True):
        assert (pa.answer, pa.scene, pa.cue) == (pb.answer, pb.scene, pb.cue)
        assert (status_of(pb) == "broken") == (pb.mark is not None and pb.mark != pb.answer)
        if status_of(pa) == "none":
            assert status_of(pb) == "none"
    tests = [plan_item(s, "test", i)[0].mark for s in (plain, conflict) for i in range(40)]
    assert tests[:40] == tests[40:]
    with pytest.raises(ValueError, match="conflict_frames"):
        SynthSpec(families=("shortcut_where",), shortcut=0.2, conflict_frames=0.3)
