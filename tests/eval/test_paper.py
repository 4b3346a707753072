"""Paper-comparable numbers: EchoInk's lenient parser beside the strict accuracy, and --decoding paper."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from echoink.cli import app
from echoink.eval.evaluate import evaluate
from echoink.eval.paper import echoink_choice
from echoink.eval.summary import format_summary


def test_echoink_parser_cases():
    # The behaviours of extract_choice in EchoInk's eval script that a strict parser refuses.
    assert echoink_choice("<answer> b </answer>") == "B"
    assert echoink_choice("It is a dog.") == "A"  # the article
    assert echoink_choice("<answer>A or C</answer>") == "A"
    assert echoink_choice("<answer>B</answer> no, <answer>C</answer>") == "B"  # the first tag, not the last
    assert echoink_choice("<answer>E</answer>") == "?"
    assert echoink_choice("system\nQ: A. x\nassistant\n<answer>D</answer>") == "D"  # its prompt + reply split


def test_summary_reports_both_parsers(scripted, eval_split, tmp_path):
    # answers A B C A
    scripted.script = {
        0: ["I think it is a dog"],  # strict: no answer; lenient: "a" -> A, right
        1: ["<think>x</think><answer>B</answer>"],  # both right
        2: ["the answer is C"],  # strict: no answer; lenient: C, right
        3: ["<answer>B</answer> no, <answer>A</answer>"],  # strict: the last block, A, right; lenient: B
    }
    summary = evaluate("tiny", eval_split, tmp_path / "out", max_new_tokens=64)
    block = summary["conditions"]["none"]
    assert block["accuracy"] == 0.5 and block["accuracy_echoink_parser"] == 0.75
    text = format_summary(summary)
    assert "accuracy 75.0% under EchoInk's lenient parser" in text and "decoding greedy" in text


def test_cli_decoding_paper_is_one_sample_at_t1_top_p_095(scripted, eval_split, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    # a real model directory passes the CLI's checks; the scripted model then stands in for it
    args = ["eval", "--model", str(tiny_model_dir), "--data", str(eval_split), "--out", str(out)]
    args += ["--decoding", "paper"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    decoding = json.loads((out / "summary.json").read_text())["settings"]["decoding"]
    assert (decoding["mode"], decoding["samples"], decoding["temperature"], decoding["top_p"]) == (
        "sample",
        1,
        1.0,
        0.95,
    )
    assert "(EchoInk's RL-model decoding)" in result.output
    clash = CliRunner().invoke(app, [*args[:-1], "paper", "--samples", "4", "--out", str(tmp_path / "o2")])
    assert clash.exit_code != 0 and "fixes 1 sample" in clash.output
