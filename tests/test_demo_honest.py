"""The demo's verdict words follow from the numbers (issue 37 item 3): crafted numbers, no model."""

import json

import pytest

from echoink_lab.demo_honest import (
    desync_diagnostic,
    difference_words,
    glance_targets,
    intervals_apart,
    paired_vs_base,
    reselection_words,
    seed_verdict,
    shifted_letter,
)


def _block(acc, lo, hi):
    return {"accuracy": acc, "ci95": [lo, hi]}


@pytest.mark.parametrize(
    ("p", "base", "grpo", "real", "word"),
    [
        (0.001, _block(0.3, 0.26, 0.34), _block(0.9, 0.87, 0.93), True, "a real gain"),
        (0.001, _block(0.9, 0.87, 0.93), _block(0.3, 0.26, 0.34), True, "a real loss"),
        # significant in the paired test but the intervals overlap: never "a real gain"
        (0.01, _block(0.50, 0.45, 0.55), _block(0.54, 0.49, 0.59), False, "not called a real gain"),
        # intervals apart but the paired test not significant (few shared items): no gain either
        (0.2, _block(0.3, 0.26, 0.34), _block(0.9, 0.87, 0.93), False, "no measurable difference"),
    ],
)
def test_the_verdict_needs_the_paired_test_and_apart_intervals(p, base, grpo, real, word):
    v = seed_verdict(base, grpo, {"p": p})
    assert v["real"] is real and word in v["words"]
    assert v["gain_points"] == pytest.approx(100 * (grpo["accuracy"] - base["accuracy"]))
    assert ("real gain" in v["words"] and "not called" not in v["words"]) == (real and v["gain_points"] > 0)


def test_intervals_apart_and_difference_words_edges():
    assert intervals_apart([0.1, 0.2], [0.21, 0.3]) and not intervals_apart([0.1, 0.2], [0.2, 0.3])
    assert not intervals_apart([float("nan"), 0.2], [0.5, 0.6])
    assert difference_words(0.1, 0.05, True).startswith("no measurable")  # p must be below 0.05


def test_reselection_when_the_bases_pass_at_k_reaches_grpos_pass_at_1():
    k = {"1": 0.3, "4": 0.7, "8": 0.93}
    assert "re-selection of answers the base samples" in reselection_words(k, 0.926, 0.296)
    more = reselection_words({"1": 0.3, "4": 0.5, "8": 0.6}, 0.926, 0.296)
    assert "more than re-selection" in more and "pass@8 (60.0%)" in more  # the largest k, not the first
    assert "not measured" in reselection_words(None, 0.9, 0.3)
    assert "no gain" in reselection_words({"8": 0.0}, 0.0, 0.0)  # nothing gained, nothing re-selected


def _video_row(i, onset, colours, letter):
    options = [f"{c}. {n}" for c, n in zip("ABCD", ("red", "yellow", "green", "blue"), strict=True)]
    return {"problem_id": f"test-{i:05d}", "tone_onset": onset, "second_colours": colours, "options": options,
            "solution": f"<answer>{letter}</answer>"}  # fmt: skip


def test_shifted_letter_follows_the_rolled_onset():
    colours = ["green", "blue", "red", "yellow"]
    assert shifted_letter(_video_row(0, 0.3, colours, "C"), 2.0) == "A"  # second 1 -> second 3: red
    assert shifted_letter(_video_row(0, 3.4, colours, "D"), 2.0) == "D"  # wraps: 5.4 mod 4 -> second 2: blue
    assert shifted_letter({"tone_onset": 1.0, "options": []}, 2.0) is None  # an older benchmark


def test_desync_diagnostic_counts_shifted_gold_and_unparseable(tmp_path):
    colours = ["green", "blue", "red", "yellow"]
    rows = [_video_row(i, 0.3, colours, "C") for i in range(4)]  # gold green (C), shifted tone on red (A)
    preds = [("A", False), ("A", False), ("C", True), (None, False)]
    lines = [
        {"id": f"test-{i:05d}", "condition": "desync", "pred": p, "correct": c}
        for i, (p, c) in enumerate(preds)
    ]
    lines.append({"id": "test-00000", "condition": "none", "pred": "C", "correct": True})  # other condition
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    dg = desync_diagnostic(tmp_path, rows)
    assert dg == {"n": 4, "shifted_colour_share": 0.5, "gold_share": 0.25, "unparseable_rate": 0.25}


def test_paired_vs_base_counts_discordant_items(tmp_path):
    for name, right in (("base", [1, 0, 0, 0, 1]), ("grpo", [1, 1, 1, 1, 0])):
        (tmp_path / name).mkdir()
        rows = [
            {"id": str(i), "condition": "none", "correct": bool(c), "sample": 0} for i, c in enumerate(right)
        ]
        (tmp_path / name / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = paired_vs_base(tmp_path / "base", tmp_path / "grpo")
    assert (t["shared"], t["only_base"], t["only_model"]) == (5, 1, 3)
    assert t["p"] == pytest.approx(0.625)  # exact binomial, 1 of 4 discordant at 1/2


def test_glance_targets_counts_wrong_letters_from_the_split(tmp_path):
    rows = [
        {
            "reasoning": "<think>The screen starts red.</think><answer>A</answer>",
            "solution": "<answer>A</answer>",
        },
        {
            "reasoning": "<think>The screen starts red.</think><answer>A</answer>",
            "solution": "<answer>C</answer>",
        },
        {"reasoning": "<think>Second 1: red ...</think><answer>B</answer>", "solution": "<answer>B</answer>"},
        {
            "reasoning": "<think>The screen starts blue.</think><answer>D</answer>",
            "solution": "<answer>B</answer>",
        },
    ]
    path = tmp_path / "train_glance.json"
    path.write_text(json.dumps(rows))
    assert glance_targets(path) == {"items": 4, "glance": 3, "wrong": 2, "wrong_share": 0.5}


def test_shifted_letter_matches_where_the_evals_desync_puts_the_tone(tmp_path):
    """The diagnostic's target against the real ablation: clips written by the generator, loaded through
    ``video_block(..., ablate="desync")`` with the video demo's settings; the loudest stretch of the
    shifted soundtrack lies in the second whose colour ``shifted_letter`` names."""
    import numpy as np

    from echoink.data import load_split
    from echoink.data.media import SAMPLE_RATE, Geometry
    from echoink.data.messages import VideoSettings, video_block
    from echoink_lab.synth_video import VideoSpec, generate_video

    generate_video(tmp_path, {"test": 6}, VideoSpec(seed=4, palette="fixed", trace="seconds"))
    rows = json.loads((tmp_path / "test.json").read_text())
    samples = load_split(tmp_path / "test.json").samples
    for row, sample in zip(rows, samples, strict=True):
        sound = video_block(sample, VideoSettings(2.0, 8, 3136), ablate="desync", geometry=Geometry())[
            "soundtrack"
        ]
        loud = np.convolve(np.abs(sound), np.ones(SAMPLE_RATE // 10), mode="same")
        second = int(np.argmax(loud) // SAMPLE_RATE)
        letter = "ABCD"[["red", "yellow", "green", "blue"].index(row["second_colours"][second])]
        assert shifted_letter(row, 2.0) == letter != row["solution"][8]
