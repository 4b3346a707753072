"""Rewards: tiny input -> expected cases, the EchoInk regex counterexample, properties, linear time."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echoink.scoring.rewards import REWARDS, accuracy_reward, format_reward, parse_answer, score

# EchoInk-R1's format reward, verbatim; it is used with re.match and no flags.
ECHOINK_FORMAT = (
    r"^(?!.*<think>.*<think>)(?!.*<answer>.*<answer>)<think>[\s\S]+?</think>\s*<answer>[\s\S]+?</answer>$"
)
GOOD = "<think>The dog barks at second 3.</think>\n<answer>C</answer>"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("C", "C"),
        ("(C)", "C"),
        ("C.", "C"),
        ("c", "C"),
        (" C ", "C"),
        ("C. a dog barking", "C"),
        ("(C) a dog barking", "C"),
        ("C) a dog", "C"),
        ("C: a dog", "C"),
        ("A, C", "A,C"),
        ("C,A", "A,C"),
        ("a and c", "A,C"),
        ("A/C", "A,C"),
        ("A or B", None),
        ("Cat", None),
        ("I think C", None),
        ("C option text", None),
        ("", None),
        ("  ", None),
        ("42", None),
    ],
)
def test_parse_answer_forms(body: str, expected: str | None) -> None:
    assert parse_answer(f"<think>x</think><answer>{body}</answer>") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>A</answer> wait, no: <answer>B</answer>", "B"),  # the last block counts
        ("<answer>A</answer> <answer>B", "A"),  # an unclosed last block is not well-formed
        ("<answer><answer>B</answer>", "B"),
        ("<answer>A</answer>B</answer>", "A"),
        ("B</answer>", None),
        ("<answer>B", None),
        ("no tags at all: C", None),
        ("<ANSWER>C</ANSWER>", None),  # tags are case-sensitive, like the format reward
    ],
)
def test_parse_answer_picks_last_well_formed_block(text: str, expected: str | None) -> None:
    assert parse_answer(text) == expected


def test_accuracy_reward_cases() -> None:
    completions = [
        GOOD,
        "<think>x</think><answer>c. a dog</answer>",
        "<think>x</think><answer>A or C</answer>",
        "<think>x</think><answer>A, C</answer>",
        "<think>x</think><answer>A, C</answer>",
        "<think>x</think><answer>C, A</answer>",
        "<think>x</think>C",
        "<answer>B</answer>",
    ]
    solutions = [
        "<answer>C</answer>",
        "C",
        "<answer>C</answer>",
        "C",
        "<answer>A,C</answer>",
        "A, C",
        "C",
        "C",
    ]
    assert accuracy_reward(completions, solution=solutions) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    # Positional call and extra row fields (TRL passes prompts=, completion_ids=, ...) are fine.
    assert accuracy_reward([GOOD], ["C"], prompts=["p"], completion_ids=[[1]]) == [1.0]
    with pytest.raises(ValueError):
        accuracy_reward([GOOD, GOOD], solution=["C"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 1.0),
        ("  \n" + GOOD + "\n\n", 1.0),
        ("<think>x</think><answer>A</answer>", 1.0),
        ("<think>\nmulti\nline\n</think>\n\n<answer>\nA\n</answer>", 1.0),
        ("<answer>A</answer>", 0.0),
        ("<think>x</think>", 0.0),
        ("<think></think><answer>A</answer>", 0.0),
        ("<think>  </think><answer>A</answer>", 0.0),
        ("<think>x</think><answer> </answer>", 0.0),
        ("<think>x</think> so <answer>A</answer>", 0.0),
        ("<think>x</think><answer>A</answer> done", 0.0),
        ("preamble <think>x</think><answer>A</answer>", 0.0),
        ("<think>x</think><think>y</think><answer>A</answer>", 0.0),
        ("<think>x<answer>A</answer></think><answer>A</answer>", 0.0),
        ("<answer>A</answer><think>x</think>", 0.0),
        ("<think>x</think><answer>A</answer><answer>B</answer>", 0.0),
        ("<think>x</think>\n<answer>A</answer>\n<answer>B</answer>", 0.0),
    ],
)
def test_format_reward_cases(text: str, expected: float) -> None:
    assert format_reward([text]) == [expected]


def test_echoink_regex_counterexample() -> None:
    """EchoInk's lookaheads use ``.``, which stops at newlines: two answer blocks on separate lines pass."""
    text = "<think>a dog barks</think>\n<answer>A</answer>\n<answer>B</answer>"
    echoink_reward = 1.0 if re.match(ECHOINK_FORMAT, text) else 0.0
    assert echoink_reward == 1.0
    assert format_reward([text]) == [0.0]
    assert re.match(ECHOINK_FORMAT, GOOD) and format_reward([GOOD]) == [1.0]  # they agree on the good case


def test_registry_and_score() -> None:
    # user rewards ("module:function") registered by earlier tests' recipes are left out
    assert [n for n in REWARDS.names() if ":" not in n] == [
        "accuracy",
        "format",
        "grounding",
        "modality_credit",
    ]
    assert REWARDS.get("accuracy") is accuracy_reward
    with pytest.raises(KeyError, match="valid: accuracy, format, grounding"):  # built-ins sort first
        REWARDS.get("length")
    completions = [GOOD, "<think>x</think><answer>B</answer>", "C"]
    fields = {"solution": ["C", "C", "C"]}
    matrix, total, names = score(completions, fields, {"format": 0.5, "accuracy": 1.0})
    assert names == ["format", "accuracy"]
    assert matrix.tolist() == [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]
    assert total.tolist() == [1.5, 0.5, 0.0]
    rows = [{"solution": s} for s in fields["solution"]]
    assert score(completions, rows, {"format": 0.5, "accuracy": 1.0})[1].tolist() == total.tolist()


def test_score_none_is_nan_and_ignored() -> None:
    @REWARDS.register("test_only_half")
    def half(completions: list[str], **_) -> list[float | None]:
        return [None if "skip" in c else 0.5 for c in completions]

    try:
        matrix, total, _ = score(
            [GOOD, "skip"], {"solution": ["C", "C"]}, {"accuracy": 1.0, "test_only_half": 2.0}
        )
    finally:
        REWARDS._items.pop("test_only_half")
    assert matrix[0].tolist() == [1.0, 0.5]
    assert matrix[1, 0].item() == 0.0 and math.isnan(matrix[1, 1].item())
    assert total.tolist() == [2.0, 0.0]


TAGS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "A",
    "b",
    "(C)",
    "D.",
    ", ",
    " and ",
    " or ",
    "\n",
    " ",
]
texts = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=8)), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, pad_left=st.text(" \n\t", max_size=3), pad_right=st.text(" \n\t", max_size=3))
def test_rewards_total_binary_and_whitespace_invariant(text: str, pad_left: str, pad_right: str) -> None:
    padded = pad_left + text + pad_right
    for name in [n for n in REWARDS if ":" not in n]:  # the built-in rewards; grounding: -P(...) or 0
        fields = {
            "solution": ["A,C", "A,C"],
            "counterfactual_prob": [0.5, 0.5],
            "modality_credit": [0.25, 0.25],
        }
        values = REWARDS.get(name)([text, padded], **fields)
        allowed = {"grounding": (0.0, -0.5), "modality_credit": (0.25,)}.get(name, (0.0, 1.0))
        assert values[0] in allowed
        assert values[0] == values[1]


@settings(max_examples=200, deadline=None)
@given(think=st.text(min_size=1).filter(lambda s: s.strip() and "<" not in s), letter=st.sampled_from("ABCD"))
def test_well_formed_completions_score_one(think: str, letter: str) -> None:
    text = f"<think>{think}</think>\n<answer>{letter}</answer>"
    assert format_reward([text]) == [1.0]
    assert accuracy_reward([text], solution=[f"<answer>{letter}</answer>"]) == [1.0]


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_parse_answer_is_normalised(text: str) -> None:
    got = parse_answer(text)
    if got is not None:
        letters = got.split(",")
        assert letters == sorted(set(letters)) and all(len(x) == 1 and x.isupper() for x in letters)


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "reward_speed.py"
    spec = importlib.util.spec_from_file_location("reward_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rewards_linear_time_on_1mb() -> None:
    """Generous bound on bench/reward_speed.py's numbers (measured: a few ms at most; the issue asks < 50 ms).

    A quadratic parser would take minutes on these 1 MB inputs, so 250 ms cannot hide one.
    """
    timings = _bench().measure(repeat=1)
    assert len(timings) >= 7
    slow = {(case, name): ms for case, row in timings.items() for name, ms in row.items() if ms > 250}
    assert not slow
