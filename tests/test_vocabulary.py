"""One vocabulary across commands: --out, --json, --model RUN, --prompt, media flags, null, help from registries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from media_helpers import make_row, write_image, write_split, write_tone


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_help_lists_every_valid_value_from_the_registries():
    from echoink.cli import TEMPLATE_NAMES
    from echoink.cli_eval import CONDITION_NAMES, DECODING_NAMES
    from echoink.data import TEMPLATES
    from echoink.data.messages import ABLATIONS
    from echoink.scoring.predict import DECODING_MODES

    assert tuple(ABLATIONS) == CONDITION_NAMES and (*DECODING_MODES, "paper") == DECODING_NAMES
    assert tuple(TEMPLATES.names()) == TEMPLATE_NAMES
    assert "greedy, sample, paper" in _help("eval")
    assert "none, audio, image, video, desync" in _help("compare")
    assert "verl_omni_avqa" in _help("data", "show") and "--template" in _help("data", "show")
    assert "runs/demo-video" in _help("demo") and "runs/demo_video" not in _help("demo")


def test_null_in_set_clears_a_path():
    from echoink.config import load_config

    cfg = load_config(None, ["data.val_path=elsewhere.json", "data.val_path=null"])
    assert cfg.data.val_path == ""


def test_model_takes_a_run_directory_and_says_which_model(tmp_path, capsys):
    from echoink.cli_eval import resolve_model

    run = tmp_path / "run1"
    (run / "final").mkdir(parents=True)
    (run / "final/config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    assert resolve_model(run) == run / "final"
    assert f"--model {run}: a run directory; using {run / 'final'}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"no model in .*best; it has final/ \(--best picks best/\)"):
        resolve_model(run, best=True)
    (run / "best").mkdir()
    (run / "best/adapter_config.json").write_text("{}")
    assert resolve_model(run, best=True) == run / "best"
    assert resolve_model(run / "final") == run / "final"  # a model directory as given


@pytest.fixture
def split(tmp_path: Path) -> Path:
    rows = []
    for i in range(2):
        write_image(tmp_path / f"images/sample_{i}.png")
        write_tone(tmp_path / f"audios/sample_{i}.wav", seconds=0.3, freq=300 + 100 * i)
        rows.append({**make_row(i), "reasoning": "<think>a tone</think><answer>B</answer>"})
    return write_split(tmp_path, rows)


def test_media_flags_mean_the_same_on_check_and_show(split, tmp_path):
    out = tmp_path / "check.json"
    check = CliRunner().invoke(
        app, ["data", "check", str(split), "--max-audio-seconds", "0", "--json", str(out)]
    )
    assert check.exit_code == 0, check.output
    assert json.loads(out.read_text())[0]["good"] == 2
    assert "next: echoink data show" in check.output
    for prompt in ("--prompt", "--template"):
        show = CliRunner().invoke(
            app,
            ["data", "show", str(split), prompt, "direct", "--max-audio-seconds", "0", "--video-fps", "1"],
        )
        assert show.exit_code == 0, show.output
    bad = CliRunner().invoke(app, ["data", "show", str(split), "--max-frames", "1"])
    assert bad.exit_code == 2  # the same range as eval's --max-frames


def test_sft_takes_out_and_ignores_grpo_only_checks(split, tiny_model_dir, tmp_path):
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(  # validation every 5 steps without data.val_path: a GRPO-only mistake sft never reads
        f"model: {{path: {tiny_model_dir}}}\ndata: {{train_path: {split}}}\ntrain: {{eval_every: 5}}\n"
        "sft: {max_steps: 1, batch_size: 2, warmup_steps: 0}\n"
    )
    out = tmp_path / "cold"
    result = CliRunner().invoke(app, ["sft", str(recipe), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "final/config.json").is_file() and f"next: echoink train {recipe}" in result.output
    train = CliRunner().invoke(app, ["train", str(recipe), "--out", str(tmp_path / "grpo")])
    assert train.exit_code != 0 and "train.eval_every" in str(train.exception or train.output)


def test_data_check_reads_a_folder_that_data_synth_wrote(tmp_path):
    synth = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "bench"), "--train", "3",
                                     "--val", "2", "--test", "2", "--workers", "1"])  # fmt: skip
    assert synth.exit_code == 0, synth.output
    assert f"next: echoink data check {tmp_path / 'bench'}/train.json" in synth.output
    check = CliRunner().invoke(app, ["data", "check", str(tmp_path / "bench")])
    assert check.exit_code == 0, check.output
    for name, n in (("test", 2), ("train", 3), ("val", 2)):
        assert f"{tmp_path / 'bench' / name}.json: {n} rows, {n} good, 0 bad" in check.output
