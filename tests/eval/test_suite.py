"""import -> data check -> eval --suite -> compare on small copies of the five releases, with a tiny model
whose recipe card names a training split holding EchoInk's Figure 1 question (OmniBench item 7); and
validation while training on an imported split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench_layouts import FIG1_OPTIONS, FIG1_QUESTION, import_all
from echoink.cli import app
from echoink.config import load_config
from echoink.outdir import contents
from echoink.recipe_card import write_recipe
from media_helpers import make_row, write_image, write_small_split, write_split, write_tone

CARRIED = {"omnibench": {"audio", "image"}, "daily-omni": {"audio", "video"}, "worldsense": {"audio", "video"},
           "mmau": {"audio"}, "mmar": {"audio"}}  # fmt: skip
RULES = {"omnibench": "omnibench_mmmu", "daily-omni": "daily_omni_letter", "worldsense": "vlmevalkit_exact_match",
         "mmau": "string_match", "mmar": "string_match"}  # fmt: skip


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return import_all(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def carded_model(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """The session's tiny model with a recipe card whose training split holds Figure 1's question."""
    root = tmp_path_factory.mktemp("train")
    write_image(root / "images/fig1.png")
    write_tone(root / "audios/fig1.wav")
    options = [f"{'ABCD'[i]}. {t}" for i, t in enumerate(FIG1_OPTIONS)]
    row = make_row(0, "D", options, "images/fig1.png", "audios/fig1.wav") | {"problem": FIG1_QUESTION}
    train = write_split(root, [row])
    model = shutil.copytree(tiny_model_dir, root / "model")
    cfg = load_config(None, [f"data.train_path={train}", "data.template=direct", "rollout.max_new_tokens=4"])
    write_recipe(cfg, model, "grpo")
    return model


def _suite(model: Path, bench: Path, out: Path, *extra: str) -> dict:
    args = [
        "eval",
        "--model",
        str(model),
        "--suite",
        str(bench),
        "--out",
        str(out),
        "--ablate",
        "audio,image,video",
    ]
    result = CliRunner().invoke(app, [*args, "--batch-size", "4", "--max-frames", "2", *extra])
    assert result.exit_code == 0, result.output
    assert "| omnibench | 2 |" in result.output
    return json.loads((out / "suite.json").read_text())


def test_suite_official_scores_ablations_overlap_and_compare(
    bench: Path, carded_model: Path, tmp_path: Path, monkeypatch
):
    from echoink.eval import evaluate as ev

    check = CliRunner().invoke(app, ["data", "check", *(str(p) for p in sorted(bench.glob("*.json")))])
    assert check.exit_code == 0, check.output
    loads, load = [], ev.load_model
    monkeypatch.setattr(ev, "load_model", lambda *a, **k: loads.append(a) or load(*a, **k))
    suite = _suite(carded_model, bench, tmp_path / "a")
    assert len(loads) == 1  # one model for the five benchmarks
    assert len(suite["weights_sha256"]) == 64
    assert list(suite["benchmarks"]) == ["daily-omni", "mmar", "mmau", "omnibench", "worldsense"]
    for name, b in suite["benchmarks"].items():
        assert set(b["drops"]) == CARRIED[name], name  # only the modalities its rows carry
        assert b["official"]["rule"] == RULES[name] and 0 <= b["official"]["accuracy"] <= 1
        assert 0 <= b["accuracy"] <= 1 and b["ci95"][0] - 1e-9 <= b["accuracy"] <= b["ci95"][1] + 1e-9
        assert b["overlap"]["items"] == (1 if name == "omnibench" else 0)
    omni = suite["benchmarks"]["omnibench"]["overlap"]
    assert omni["ids"] == ["7"] and omni["media"] == {"identical": 0, "different": 1, "n/a": 0}
    summary = json.loads((tmp_path / "a/omnibench/summary.json").read_text())
    outcomes = {r["id"]: r["correct"] for r in map(json.loads, (tmp_path / "a/omnibench/predictions.jsonl").open())
                if r["condition"] == "none"}  # fmt: skip
    assert omni["accuracy_without"] == float(outcomes["6"])  # item 7 left out
    assert (
        summary["settings"]["template"] == "direct"
        and summary["settings_source"]["template"] == "training recipe"
    )
    assert summary["official"]["gold_differs"] == ["6"]  # "A man is answering ..." parses as A
    assert set(summary["by_category"]) == {"task type", "audio type"}
    md = (tmp_path / "a/suite.md").read_text()
    assert "| benchmark | n | strict accuracy [95% CI] |" in md and "drop: video" in md

    _suite(carded_model, bench, tmp_path / "b", "--prompt", "reasoning_short")
    compared = CliRunner().invoke(app, ["compare", str(tmp_path / "a/suite.json"), str(tmp_path / "b")])
    assert compared.exit_code == 0, compared.output
    for name in CARRIED:
        assert f"== {name}" in compared.output
    assert compared.output.count("McNemar: exact p") == 5


def test_validation_while_training_reads_an_imported_split(bench: Path, tiny_model_dir: Path, tmp_path: Path):
    from echoink.rl.trainer import train
    from echoink.runlog import read_jsonl

    cfg = load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train_path={write_small_split(tmp_path / 'train', n=2)}",
        f"data.val_path={bench / 'mmau.json'}", f"train.output_dir={tmp_path / 'run'}", "train.max_steps=1",
        "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=4", "train.eval_every=1",
        "eval.max_items=3", "eval.batch_size=3", "train.save_every=100",
    ])  # fmt: skip
    train(cfg)
    [evals] = [r for r in read_jsonl(tmp_path / "run/metrics.jsonl") if "eval/accuracy" in r]
    assert evals["eval/n"] == 3 and 0 <= evals["eval/accuracy"] <= 1


def test_a_suite_folder_holding_other_files_is_refused(bench: Path, carded_model: Path, tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    result = CliRunner().invoke(
        app, ["eval", "--model", str(carded_model), "--suite", str(bench), "--out", str(out)]
    )
    assert result.exit_code != 0 and "holds no suite.json of an earlier `echoink eval --suite`" in str(
        result.exception
    )
    assert contents(out) == ["notes.txt"]  # besides the (emptied) lock file
