"""The benchmarks' own scoring rules on hand-worked replies (each expected value worked out by reading the
release's script, not by running this code), and the summary block they produce."""

from __future__ import annotations

import pytest

from echoink.data.schema import Sample
from echoink.eval.official import (
    RULES,
    as_option_text,
    mmmu_parse,
    official_summary,
    omnibench_gold,
    reply_of,
    string_match,
    vlmevalkit_letter,
)


def sample(options, answer, benchmark, **meta) -> Sample:
    lettered = tuple(f"{'ABCDEFGH'[i]}. {t}" for i, t in enumerate(options))
    return Sample(
        meta.pop("id", "1"), "q?", lettered, answer, None, None, "audio", {"benchmark": benchmark, **meta}
    )


OMNI = ["A woman is explaining to a man", "A redhead lady is asking question",
        "A man is answering some questions", "A man in blue shirt explaining current situation to woman"]  # fmt: skip
IDX = dict(zip("ABCD", OMNI, strict=True))


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("(C)", "C"),  # a bracketed letter
        ("I pick (A) not (C)", "C"),  # two bracketed: the last one in the reply
        ("C", "C"),  # " C " once padded
        ("D.", "D"),  # no "D " but "D."
        ("the answer is c", None),  # lower case: no mark, under 6 words, no option text
        ("I believe a redhead lady is asking question here", "B"),  # > 5 words: option text found
        # "A man is answering some questions" contains "A " : the letter A wins before any text match
        ("A man is answering some questions", "A"),
    ],
)
def test_omnibench_mmmu_parser(reply, expected):
    assert mmmu_parse(reply, IDX) == expected


def test_omnibench_gold_is_its_parser_on_the_answer_text():
    """calculate_metrics.py parses the answer text for the gold letter: item 6's is "A", not C."""
    item = sample(OMNI, "C", "omnibench", answer_text=OMNI[2])
    assert omnibench_gold(item) == "A"
    rule = RULES.get("omnibench_mmmu")
    assert rule("A", item) and not rule("C", item)
    fig1 = sample(["Pursuing fugitives.", "Searching for someone on an empty square.", "Shooting with a gun.",
                   "Searching for people in the crowd."], "D", "omnibench",
                  answer_text="Searching for people in the crowd.")  # fmt: skip
    assert omnibench_gold(fig1) == "D" and rule("D", fig1) and rule("(D)", fig1) and not rule("B", fig1)


@pytest.mark.parametrize(
    "reply, ok",
    [("B", True), ("b", True), ("  B. Facial demo", True), ("Because of the bottle", True),  # "B" of Because
     ("The answer is B", False), ("", False), ("C", False), ("assistant\nB", True)],
)  # fmt: skip
def test_daily_omni_first_letter(reply, ok):
    assert RULES.get("daily_omni_letter")(reply, sample(["w", "x", "y", "z"], "B", "daily-omni")) is ok


@pytest.mark.parametrize(
    "reply, letter",
    [("C", "C"), ("The answer is C", "C"), ("Answer: (b) B", "B"), ("I think (c)", ""),
     ("Based on the video", "B"),  # the first capital A-D anywhere
     ("The best option isThe correct option is D", "D"), ("nothing here at all", "")],
)  # fmt: skip
def test_vlmevalkit_exact_match_letter(reply, letter):
    assert vlmevalkit_letter(reply) == letter


@pytest.mark.parametrize(
    "answer, prediction, choices, ok",
    [
        ("Man", "man", ["Man", "Woman", "Child", "Robot"], True),
        ("Man", "The speaker is a man.", ["Man", "Woman", "Child", "Robot"], True),
        (
            "Man",
            "a man or a woman",
            ["Man", "Woman", "Child", "Robot"],
            False,
        ),  # "woman" only a wrong choice has
        ("the red car", "red car", ["the red car", "the blue car"], False),  # "the" missing
        (
            "the red car",
            "It is THE RED CAR",
            ["the red car", "the blue car"],
            True,
        ),  # "the" shared: not wrong
        # "1.63 seconds" is the tokens {1, 63, seconds}; the wrong choice adds only {2, 74}
        ("1.63 seconds", "1.63 seconds", ["1.63 seconds", "2.74 seconds"], True),
        ("1.63 seconds", "1.53 seconds", ["1.63 seconds", "1.53 seconds"], False),  # "63" missing, "53" wrong
        ("twenty", "", ["thirteen", "twenty"], False),  # empty prediction
    ],
)
def test_string_match(answer, prediction, choices, ok):
    assert string_match(answer, prediction, choices) is ok


def test_string_match_reads_a_letter_reply_as_its_option():
    item = sample(["thirteen", "twenty", "five"], "B", "mmau", answer_text="twenty",
                  choices_as_released=["thirteen", "twenty", "thirteen", "five"])  # fmt: skip
    rule = RULES.get("string_match")
    assert [rule(r, item) for r in ["B", "(b)", "B. twenty", "twenty", "A", "twenty or five"]] == [
        True, True, True, True, False, False]  # fmt: skip
    assert as_option_text("A man", ["x", "y"]) == "A man"  # an article, not a letter mark


def test_reply_is_the_last_answer_block():
    assert reply_of("<think>A</think><answer>B</answer> <answer> C </answer>") == " C "
    assert reply_of("no tags: B") == "no tags: B"


def test_official_summary_scores_the_same_completions():
    items = [
        sample(["Man", "Woman"], "A", "mmau", id=str(i), task="speech" if i < 2 else "sound")
        for i in range(3)
    ]
    rows = [
        {"id": "0", "condition": "none", "completion": "<answer>A</answer>", "correct": True},
        {
            "id": "1",
            "condition": "none",
            "completion": "<answer>man</answer>",
            "correct": False,
        },  # not a letter
        {"id": "2", "condition": "none", "completion": "<answer>B</answer>", "correct": False},
        {"id": "0", "condition": "audio", "completion": "<answer>Woman</answer>", "correct": False},
    ]
    out = official_summary(rows, items, ["none", "audio"])
    assert out["benchmark"] == "mmau" and out["official"]["rule"] == "string_match"
    assert out["official"]["accuracy"] == pytest.approx(2 / 3) and out["official"]["n"] == 3
    assert out["official"]["by_condition"] == {"none": pytest.approx(2 / 3), "audio": 0.0}
    speech = out["by_category"]["task"]["speech"]
    assert (speech["n"], speech["accuracy"], speech["official_accuracy"]) == (2, 0.5, 1.0)
    assert official_summary(rows, [*items, sample(["a", "b"], "A", "omnibench", id="9")], ["none"]) == {}
