"""The aha detector on hand-labelled traces (tests/fixtures/aha_traces.jsonl), and its edge cases.

Labels (written by hand before the detector ran on them): aha = the <think> revises or explicitly
re-examines a claim it made earlier, or switches from an asserted option to another. Contrastive
"but"/"however", filler "hmm", weighing alternatives, and "wait" in quoted speech are not.
Splits: dev (44, the detector was tuned on these), heldout (20, written with dev, scored once
before one dev fix and once after), hard (16, adversarial, written after the detector was frozen).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echoink.eval.aha import detect

FIXTURE = Path(__file__).parents[1] / "fixtures" / "aha_traces.jsonl"
TRACES = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def _confusion(split: str | None) -> tuple[int, int, int, int]:
    rows = [r for r in TRACES if split is None or r["split"] == split]
    pred = [detect(r["completion"]).found for r in rows]
    tp = sum(p and r["aha"] for p, r in zip(pred, rows, strict=True))
    fp = sum(p and not r["aha"] for p, r in zip(pred, rows, strict=True))
    fn = sum(not p and r["aha"] for p, r in zip(pred, rows, strict=True))
    return tp, fp, fn, len(rows) - tp - fp - fn


@pytest.mark.parametrize(
    ("split", "confusion", "precision", "recall"),
    [
        ("dev", (19, 0, 0, 25), 1.0, 1.0),
        ("heldout", (10, 0, 0, 10), 1.0, 1.0),
        ("hard", (6, 3, 2, 5), 0.667, 0.75),
        (None, (35, 3, 2, 40), 0.921, 0.946),  # all 80
    ],
)
def test_measured_precision_and_recall(split, confusion, precision, recall):
    tp, fp, fn, tn = _confusion(split)
    assert (tp, fp, fn, tn) == confusion
    assert tp / (tp + fp) == pytest.approx(precision, abs=1e-3)
    assert tp / (tp + fn) == pytest.approx(recall, abs=1e-3)


def test_fixture_is_large_and_balanced_enough():
    assert len(TRACES) >= 40 and len({r["id"] for r in TRACES}) == len(TRACES)
    assert sum(r["aha"] for r in TRACES) >= 30 and sum(not r["aha"] for r in TRACES) >= 30


def test_markers_point_into_the_think_block():
    text = "<think>The answer is A. Hmm, wait. It is the kettle, so D.</think><answer>D</answer> Wait, no."
    aha = detect(text)
    assert aha.switch == ("A", "D")
    assert [m.text for m in aha.markers] == ["Hmm, wait"]
    assert all(text[m.start : m.end] == m.text and m.end < text.index("</think>") for m in aha.markers)


@pytest.mark.parametrize(
    "text",
    [
        "<answer>B</answer>",  # no think block
        '<think>He says "wait, stop" and leaves; option A.</think><answer>A</answer>',  # quoted
        "<think>The answer is a cat, so option B.</think><answer>B</answer>",  # the article is no letter
        "<think>It is loud, but the bird is small. However, it sings; option B.</think><answer>B</answer>",
    ],
)
def test_no_aha(text):
    assert not detect(text).found


def test_switch_needs_a_final_answer_and_respects_multi_letter_answers():
    assert detect("<think>The answer is A. Then B.</think>").switch is None  # unparseable final
    assert detect("<think>The answer is A.</think><answer>A, C</answer>").switch is None
