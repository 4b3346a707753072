"""Solutions and answers parse the way the paper means them, through one parser; the prompt asks for what is scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from echoink.data import TEMPLATES, load_split
from echoink.scoring.rewards import accuracy_reward
from media_helpers import make_row, write_image, write_split, write_tone


@pytest.mark.parametrize(
    "solution, answer",
    [
        ("<answer>C. a cat</answer>", "C"),  # was stored as "C,A" (the "a" of "a cat")
        ("<answer>(B) the blue square</answer>", "B"),
        ("<answer>C, A</answer>", "A,C"),
        ("C", "C"),
        ("<answer>a and c</answer>", "A,C"),
    ],
)
def test_solution_letters(tmp_path: Path, solution: str, answer: str):
    write_image(tmp_path / "images/sample_0.png")
    write_tone(tmp_path / "audios/sample_0.wav", seconds=0.2)
    row = {**make_row(0), "solution": solution}
    (sample,) = load_split(write_split(tmp_path, [row])).samples
    assert sample.answer == answer
    assert accuracy_reward([f"<answer>{answer}</answer>"], [solution]) == [1.0]


def test_a_solution_that_names_no_letter_is_a_row_error(tmp_path: Path):
    write_image(tmp_path / "images/sample_0.png")
    write_tone(tmp_path / "audios/sample_0.wav", seconds=0.2)
    rows = [{**make_row(0), "solution": "<answer>the red circle</answer>"}]
    result = load_split(write_split(tmp_path, rows), on_error="skip")
    assert not result.samples and "names no option letter" in result.skipped[0].reason


# verl_omni_avqa keeps its answer instruction in verl-omni's system turn, verbatim: not a user-turn template.
@pytest.mark.parametrize("template", [n for n in TEMPLATES.names() if n != "verl_omni_avqa"])
def test_multi_answer_rows_are_asked_for_every_letter(tmp_path: Path, template: str):
    for i in range(2):
        write_image(tmp_path / f"images/sample_{i}.png")
        write_tone(tmp_path / f"audios/sample_{i}.wav", seconds=0.2)
    single, multi = load_split(write_split(tmp_path, [make_row(0, "B"), make_row(1, "A, C")])).samples
    render = TEMPLATES.get(template)
    assert "single option letter" in render(single) and "all correct option letters" not in render(single)
    assert "all correct option letters" in render(multi) and "single" not in render(multi)
    # A model that does what the multi-answer prompt asks scores; one naming a single letter does not.
    assert accuracy_reward(["<answer>A, C</answer>", "<answer>A</answer>"], [multi.solution] * 2) == [
        1.0,
        0.0,
    ]
