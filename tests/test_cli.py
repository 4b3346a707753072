import os
import subprocess
import sys
from pathlib import Path

import pytest

from echoink import __version__


def test_version():
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"echoink {__version__}"


SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}  # this checkout's package, not an installed one
    return subprocess.run([sys.executable, "-m", "echoink", *args], capture_output=True, text=True, env=env)


def test_user_errors_are_one_line_exit_2_and_debug_shows_the_trace(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("train:\n  lr: [1\n")
    out = _cli("train", str(recipe))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {recipe}: invalid YAML at line 3 column 1: expected ',' or ']', but got '<stream end>'"
    ]
    debug = _cli("train", str(recipe), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_missing_inputs_are_named_before_any_model_loads(tiny_model_dir, good_split, tmp_path):
    out = _cli(
        "eval", "--model", str(tmp_path / "nomodel"), "--data", str(good_split), "--out", str(tmp_path / "e")
    )
    assert out.returncode == 2 and out.stderr.startswith("error: --model: ") and "Traceback" not in out.stderr
    out = _cli("sft", str(tmp_path / "none.yaml"), "--set", f"model.path={tiny_model_dir}")
    assert (
        out.returncode == 2
        and out.stderr.strip()
        == f"error: {tmp_path / 'none.yaml'}: cannot read the recipe (No such file or directory)"
    )
    assert not (tmp_path / "e").exists()  # nothing written


def test_usage_errors_are_one_line_too(tmp_path):
    out = _cli(
        "eval",
        "--model",
        str(tmp_path),
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path),
        "--max-pixels",
        "10",
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: echoink eval: Invalid value for '--max-pixels': Input should be greater than or equal to 784"
    ]  # was typer's boxed panel


def _leaf_commands(command):
    for sub in getattr(command, "commands", {}).values():
        yield from _leaf_commands(sub) if hasattr(sub, "commands") else [sub]


def test_every_float_of_every_command_must_be_finite(tmp_path):
    """`--desync-seconds inf` was an OverflowError after the first pass and `nan` an error that did not
    name the flag; the app checks every parameter of every command, so a new float flag is covered."""
    import typer.main
    from typer.testing import CliRunner

    from echoink.cli import app

    params = [p for c in _leaf_commands(typer.main.get_command(app)) for p in c.params]
    assert len(params) > 50 and all("process_value" in vars(p) for p in params)  # every one wrapped
    for flag, value in [("--desync-seconds", "inf"), ("--desync-seconds", "nan"), ("--temperature", "-inf")]:
        args = ["eval", *(f"--{name}={tmp_path}" for name in ("model", "data", "out")), flag, value]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and f"{value} is not a finite number" in result.output, result.output
    out = _cli("data", "synth", "--out", str(tmp_path / "s"), "--shortcut", "nan")
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == "error: echoink data synth: Invalid value for '--shortcut': nan is not a finite number"
    )
    synth = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "s"), "--train", "-5"])
    assert synth.exit_code == 2 and not (tmp_path / "s").exists()


def test_commands_that_write_a_directory_refuse_one_they_did_not_write(tiny_model_dir, good_split, tmp_path):
    """data synth over a user's split folder, model tiny over a trained model (its recipe card would go
    stale), export over anything: one line, exit 2, nothing touched."""
    import shutil

    trained = shutil.copytree(tiny_model_dir, tmp_path / "trained")
    (trained / "echoink_recipe.json").write_text('{"trainer": "grpo"}\n')
    folder = good_split.parent
    before = {p: p.read_bytes() for d in (folder, trained) for p in sorted(d.rglob("*")) if p.is_file()}
    cases = [
        (
            ["data", "synth", "--out", str(folder), "--train", "2", "--val", "0", "--test", "0"],
            folder,
            "data synth",
        ),
        (["model", "tiny", "--out", str(trained)], trained, "model tiny"),
        (["export", str(trained), "--out", str(folder)], folder, "export"),
    ]
    for args, target, command in cases:
        out = _cli(*args)
        assert out.returncode == 2, out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"error: --out: {target} is not empty (") and "choose another --out" in line
        assert f"`echoink {command}` writes only into a new or empty directory" in line
    after = {p: p.read_bytes() for d in (folder, trained) for p in sorted(d.rglob("*")) if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    "args",
    [["sft", "configs/tiny_cpu.yaml"], ["eval", "--model", "m", "--data", "d.json", "--out", "o"], ["demo"]],
)
def test_one_process_commands_refuse_a_launch_of_several(args, monkeypatch):
    """Process 0 of a 2-process launch says why in one line; process 1 exits quietly."""
    from echoink.cli_errors import one_process_only

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=f"echoink {args[0]} runs on one process, but it was launched as 2"):
        one_process_only(args[0])
    done = _cli(*args)  # WORLD_SIZE and RANK as a launcher sets them
    assert done.returncode == 2 and done.stderr.startswith(f"error: echoink {args[0]} runs on one process")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit):
        one_process_only(args[0])


def test_data_show_counts_the_tokens_of_each_familys_processor(tiny_model_dir, tiny_qwen3_dir, tmp_path):
    """A 1920x1440 photo at --max-pixels 200704: Qwen3 (32-px cells) 12 x 16 = 192 image tokens, resized
    once; Qwen2.5 (28-px cells) 13 x 18 = 234, as EchoInk's images. A 1 s tone: 25 or 13 audio tokens."""
    from media_helpers import make_row, write_image, write_split, write_tone

    write_image(tmp_path / "images/sample_0.png", size=(1920, 1440))
    write_tone(tmp_path / "audios/sample_0.wav", seconds=1.0)
    split = write_split(tmp_path, [make_row(0)])
    from typer.testing import CliRunner

    from echoink.cli import app

    for model, image, audio in ((tiny_qwen3_dir, 192, 13), (tiny_model_dir, 234, 25)):
        args = ["data", "show", str(split), "--index", "0", "--model", str(model), "--max-pixels", "200704"]
        out = CliRunner().invoke(app, args)  # in process: no second torch import
        assert out.exit_code == 0, out.output
        lines = out.stdout.splitlines()
        assert (
            f"image tokens: {image}" in lines
            and f"audio tokens: {audio}" in lines
            and "video tokens: 0" in lines
        )
        prompt = next(line for line in lines if line.startswith("prompt tokens: "))
        assert int(prompt.split(": ")[1]) > image + audio
        assert any("Which object makes the sound 0?" in line for line in lines)  # the rendered prompt
    out = _cli("data", "show", str(split), "--index", "3", "--model", str(tiny_qwen3_dir))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: --index 3 out of range: {split} has 1 rows, 1 valid (indices 0..0)"
    ]
    out = _cli("data", "show", str(split), "--model", str(tmp_path / "nowhere"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: --model {tmp_path / 'nowhere'}: not a model directory (no config.json)"
    ]
