"""The embedded benchmark: determinism, schema, balance, no text leakage, needs mix, conflicts, traces,
and that the media really carry what the rows say (a listening and looking check in code)."""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from echoink.data import load_audio, load_split
from echoink.data.check import check_split
from echoink_lab.synth import SynthSpec, benchmark_corpus, generate, plan_item
from echoink_lab.synth_media import BEEP_HZ, tone_hz
from echoink_lab.synth_scene import COLOURS, DIFFICULTIES, LETTERS, NONE, PITCHES, SHAPES

SIZES = {"train": 80, "val": 20, "test": 60}
TRACE_RE = re.compile(r"^<think>((?:(?!<think>|</think>).)+)</think><answer>([A-D])</answer>$", re.S)


@pytest.fixture(scope="module", params=["easy", "medium", "hard"])
def dataset(request, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp(f"synth_{request.param}")
    generate(out, SIZES, SynthSpec(seed=7, difficulty=request.param), workers=1)
    return out, request.param


def _rows(out: Path) -> list[dict]:
    return [row for split in SIZES for row in json.loads((out / f"{split}.json").read_text())]


def _plans(split: str, n: int, difficulty: str = "medium", **spec):
    spec = SynthSpec(difficulty=difficulty, **spec)
    return [plan_item(spec, split, i)[0] for i in range(n)]


def test_same_seed_gives_byte_identical_files_whatever_the_workers(tmp_path: Path):
    sizes = {"train": 10, "test": 205}  # > one 200-item chunk, so two workers really split the work
    generate(tmp_path / "a", sizes, SynthSpec(seed=3), workers=1)
    generate(tmp_path / "b", sizes, SynthSpec(seed=3), workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 * 215 + 3
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate(tmp_path / "c", {"test": 20}, SynthSpec(seed=4), workers=1)
    other = json.loads((tmp_path / "c/test.json").read_text())
    assert [r["reasoning"] for r in other] != [
        r["reasoning"] for r in json.loads((tmp_path / "a/test.json").read_text())[:20]
    ]


def test_rows_load_with_the_real_loader_and_check_reports_nothing(dataset):
    out, difficulty = dataset
    for split, n in SIZES.items():
        samples = load_split(out / f"{split}.json", on_error="strict").samples
        assert len(samples) == n
        assert {s.metadata["difficulty"] for s in samples} == {difficulty}
        report = check_split(out / f"{split}.json")
        assert report.problems == [] and report.good == n
    width, height = DIFFICULTIES.get(difficulty).canvas
    assert width % 28 == 0 and height % 28 == 0 and width <= 224 and height <= 224
    clip = load_audio(samples[0].audio)
    assert clip.seconds <= 3.0 and clip.waveform.dtype == np.float32


def test_answer_letters_are_balanced():
    for n in (40, 200, 1000):
        answers = Counter(p.answer for p in _plans("train", n))
        assert all(abs(answers[i] / n - 0.25) <= 0.03 for i in range(4)), answers


def test_needs_mix_is_mostly_both():
    needs = Counter(p.needs for p in _plans("train", 400))
    assert needs["both"] / 400 >= 0.6
    assert needs["audio"] > 0 and needs["image"] > 0


def test_a_family_subset_keeps_letters_balanced_and_rejects_unknown_names():
    plans = _plans("train", 240, families=("tone_where",))  # 20 blocks of 12
    assert {p.family for p in plans} == {"tone_where"}
    assert Counter(p.answer for p in plans) == {0: 60, 1: 60, 2: 60, 3: 60}
    with pytest.raises(KeyError, match="valid: audio_colour, beep_colour"):
        SynthSpec(families=("tone_where", "nope"))
    with pytest.raises(ValueError, match="correction_rate"):
        SynthSpec(correction_rate=1.5)


def test_text_only_baseline_is_at_chance():
    """Bag of words over the question and options, plus each option word tagged with its letter, trained on
    train and scored on test: within chance + 5 points. A leaky control proves the probe can see leaks."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    def text(plan, leak: bool = False) -> str:
        tagged = [f"{LETTERS[i]}_{w}" for i, o in enumerate(plan.options) for w in o.lower().split()]
        return " ".join(
            [plan.question, *plan.options, *tagged] + ([plan.options[plan.answer]] if leak else [])
        )

    train, test = _plans("train", 2000), _plans("test", 1000)
    for leak, bound in ((False, 0.25 + 0.05), (True, None)):
        vec = CountVectorizer(token_pattern=r"\S+")
        x_train = vec.fit_transform([text(p, leak) for p in train])
        clf = LogisticRegression(max_iter=2000).fit(x_train, [p.answer for p in train])
        acc = float(
            np.mean(clf.predict(vec.transform([text(p, leak) for p in test])) == [p.answer for p in test])
        )
        if bound is None:
            assert acc > 0.5, f"leaky control only reached {acc:.3f}"
        else:
            assert acc <= bound, f"text-only accuracy {acc:.3f} > chance + 5 points"


def test_conflicts_answer_none_of_them_and_really_conflict():
    plans = _plans("train", 400, "hard")
    conflicts = [p for p in plans if p.conflict]
    assert {p.family for p in conflicts} == {"tone_where", "tone_shape", "beep_colour", "colour_shape"}
    assert len(conflicts) / sum(p.needs == "both" for p in plans) == pytest.approx(0.25, abs=0.05)
    for p in plans:
        is_none = p.options[p.answer] == NONE
        assert is_none == p.conflict
        colours = [o.colour for o in p.scene]
        if p.family.startswith("tone_"):
            assert (COLOURS[p.cue.value] not in colours) == p.conflict
        if p.family == "beep_colour":
            assert (p.cue.value > len(p.scene)) == p.conflict


def test_answers_follow_from_cue_and_scene():
    """An independent solver per family, from the cue and scene alone."""
    for p in _plans("val", 400, "hard"):
        colours = [o.colour for o in p.scene]
        if p.conflict:
            continue
        if p.family == "tone_where":
            want = ["left", "middle", "right"][colours.index(COLOURS[p.cue.value])]
        elif p.family == "tone_shape":
            want = p.scene[colours.index(COLOURS[p.cue.value])].shape
        elif p.family == "beep_colour":
            want = colours[p.cue.value - 1]
        elif p.family == "audio_colour":
            want = COLOURS[p.cue.value]
        elif p.family == "colour_shape":  # "What shape is the <colour> object?"
            want = p.scene[colours.index(p.question.split(" the ")[1].split(" object")[0])].shape
        else:
            where = p.question.split(" the ")[1].split(" object")[0]
            want = colours[
                {"left": 0, "middle": 1, "right": 2, "first": 0, "second": 1, "third": 2}.get(where, 3)
            ]
        assert p.options[p.answer] == want, (p.family, p.question, p.options, p.answer)


def test_every_trace_parses_and_names_the_answer(dataset):
    out, _ = dataset
    rows = _rows(out)
    for row in rows:
        m = TRACE_RE.match(row["reasoning"])
        assert m, row["reasoning"]
        assert f"<answer>{m.group(2)}</answer>" == row["solution"]
        assert ("Wait," in m.group(1)) == row["self_correction"]
        letter = m.group(2)
        option = row["options"][LETTERS.index(letter)][3:]
        assert m.group(1).endswith(f"{option[0].upper() + option[1:]} is option {letter}.")
    rate = np.mean([r["self_correction"] for r in rows])
    assert 0.15 <= rate <= 0.35  # default correction_rate 0.25


def test_correction_rate_is_configurable_and_the_wrong_reading_differs():
    never, always = (
        SynthSpec(difficulty="easy", correction_rate=0.0),
        SynthSpec(difficulty="easy", correction_rate=1.0),
    )
    assert not any("Wait" in plan_item(never, "x", i)[1] for i in range(100))
    traces = [plan_item(always, "x", i)[1] for i in range(100)]
    assert all("Wait, listen again." in t or "Wait, look again." in t for t in traces)
    for t in traces:  # the misreading is a different sentence from its revision
        wrong, right = re.search(r"([^.]+\.) Wait, \w+ again\. ([^.]+\.)", t).groups()
        assert wrong != right


def _dominant_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    spectrum[: int(len(wave) * 180 / 16000)] = 0  # ignore the hard level's hum (110-150 Hz)
    return float(np.argmax(spectrum) * 16000 / len(wave))


def _count_beeps(wave: np.ndarray) -> int:
    frames = np.abs(wave[: len(wave) // 160 * 160]).reshape(-1, 160).mean(axis=1)  # 10 ms frames
    loud = frames > 0.5 * frames.max()
    return int(np.sum(loud[1:] & ~loud[:-1]) + loud[0])


def test_media_carry_the_cue_and_the_scene(dataset):
    """Listening and looking in code: the tone's pitch is its level, the beeps count, objects are where and
    what colour the row says (easy and medium; hard objects may overlap)."""
    out, difficulty = dataset
    diff = DIFFICULTIES.get(difficulty)
    for sample in load_split(out / "test.json").samples:
        cue, scene = sample.metadata["cue"], sample.metadata["scene"]
        wave = load_audio(sample.audio).waveform
        if cue["kind"] == "tone" and difficulty != "hard":  # hard: noise at 6 dB SNR makes this flaky
            nominal = [tone_hz(i, diff, np.random.default_rng(0)) for i in range(5)]
            heard = _dominant_hz(wave)
            assert int(np.argmin([abs(np.log(heard / f)) for f in nominal])) == PITCHES.index(cue["pitch"])
        elif cue["kind"] == "beeps" and difficulty == "easy":
            assert abs(_dominant_hz(wave) - BEEP_HZ) < 20 and _count_beeps(wave) == cue["count"]
        if difficulty != "hard":
            pixels = np.asarray(Image.open(sample.image).convert("RGB"), dtype=np.float32)
            centres = [((b[0] + b[2]) // 2, (b[1] + b[3] * 3) // 4) for b in (o["box"] for o in scene)]
            assert [c[0] for c in centres] == sorted(c[0] for c in centres)
            from echoink_lab.synth_media import RGB

            for o, (x, y) in zip(scene, centres, strict=True):
                seen = pixels[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
                nearest = min(RGB, key=lambda c: np.sum((np.array(RGB[c]) - seen) ** 2))
                assert nearest == o["colour"]


def test_corpus_covers_the_vocabulary():
    corpus = benchmark_corpus(60)
    assert corpus == benchmark_corpus(60)
    words = set(" ".join(corpus).replace(".", " ").replace(",", " ").split())
    assert set(COLOURS) | set(PITCHES) | set(SHAPES) | {"left", "middle", "right", "fourth", "Wait"} <= words


def test_cli_synth_writes_a_checkable_dataset(tmp_path: Path):
    cmd = [sys.executable, "-m", "echoink", "data", "synth", "--out", str(tmp_path), "--seed", "1"]
    cmd += ["--train", "8", "--val", "4", "--test", "4", "--difficulty", "easy", "--workers", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "16 items (easy)" in out.stdout
    check = subprocess.run(
        [sys.executable, "-m", "echoink", "data", "check", *(str(tmp_path / f"{s}.json") for s in SIZES)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and check.stdout.count("problems: none") == 3
    bad = subprocess.run([*cmd[:7], "--difficulty", "brutal"], capture_output=True, text=True)
    assert bad.returncode != 0 and "valid: easy, hard, medium" in re.sub(r"[\s│]+", " ", bad.stderr)
    manifest = yaml.safe_load((tmp_path / "synth.yaml").read_text())
    assert manifest["seed"] == 1 and manifest["difficulty"] == "easy" and manifest["sizes"]["train"] == 8
