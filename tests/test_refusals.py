"""Issue 39: every foreseeable failure is one line before any engine or model loads, and writes nothing.

Each case runs the real command line in process (``cli_errors.run_app``: what the ``echoink`` script
runs) and asserts: a non-zero exit, one ``error:`` line naming the field or file, no traceback, and
that the output it would have written does not exist.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest

from echoink.cli import app
from echoink.cli_errors import run_app
from echoink.config import save_config
from media_helpers import make_row, write_image, write_split, write_tone
from recipe_helpers import recipe

DEEP = "[" * 100_000 + "]" * 100_000  # Python's parsers recurse once per level: a RecursionError before


def _run(capsys, *args: str) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of ``echoink ARGS`` in this process."""
    with pytest.raises(SystemExit) as exit_:
        run_app(app, [str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return exit_.value.code, err


def _refused(capsys, *args: str, says: str) -> str:
    code, err = _run(capsys, *args)
    assert code != 0 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    assert says in err[0], err[0]
    return err[0]


def _split(root: Path, n: int = 3, name: str = "train.json") -> Path:
    rows = []
    for i in range(n):
        write_image(root / f"images/sample_{i}.png", size=(56, 56))
        write_tone(root / f"audios/sample_{i}.wav", seconds=0.5, freq=300 + 50 * i)
        rows.append(make_row(i))
    return write_split(root, rows, name)


def _recipe_file(tmp_path: Path, model: Path, split: Path, *extra: str) -> Path:
    path = tmp_path / "recipe.yaml"
    save_config(recipe(model, split, tmp_path / "run", *extra), path)
    return path


# --- 1. preflight: engine, lengths, memory, suites --------------------------------------------------
def test_vllm_with_narrow_heads_is_refused_before_the_engine(tiny_model_dir, tmp_path, capsys):
    split = _split(tmp_path / "data")
    cfg = _recipe_file(tmp_path, tiny_model_dir, split, "rollout.engine=vllm")
    _refused(capsys, "train", cfg, says="rollout.engine: vLLM's CPU build needs text heads of at least 32")
    out = tmp_path / "eval"
    line = _refused(capsys, "eval", "--model", tiny_model_dir, "--data", split, "--out", out, "--engine", "vllm",
                    says="--engine vllm: vLLM's CPU build needs text heads")  # fmt: skip
    assert "text_config.head_dim" in line and "--head-dim 32" in line
    assert not (tmp_path / "run").exists() and not out.exists()


def _with_text(model: Path, dest: Path, **text: int) -> Path:
    """``model`` with text_config fields replaced (files linked, config.json rewritten): what preflight reads."""
    dest.mkdir()
    for f in model.iterdir():
        if f.name != "config.json":
            (dest / f.name).symlink_to(f)
    config = json.loads((model / "config.json").read_text())
    config["text_config"].update(text)
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def test_qwen3_with_vllm_on_a_cpu_is_refused_before_the_engine(tiny_qwen3_dir, tmp_path, capsys):
    model = _with_text(tiny_qwen3_dir, tmp_path / "wide", head_dim=32)
    cfg = _recipe_file(tmp_path, model, _split(tmp_path / "data"), "rollout.engine=vllm")
    line = _refused(
        capsys, "train", cfg, says="rollout.engine: vLLM's CPU build cannot update a mixture-of-experts"
    )
    assert "rollout.engine=hf" in line and not (tmp_path / "run").exists()


def test_lengths_past_the_models_positions_are_refused(tiny_model_dir, tmp_path, capsys):
    split = _split(tmp_path / "data")
    cfg = _recipe_file(tmp_path, tiny_model_dir, split, f"rollout.max_new_tokens={10**12}")
    _refused(capsys, "train", cfg, says="rollout.max_new_tokens: 1,000,000,000,000 new tokens leave no room")
    out = tmp_path / "eval"
    line = _refused(capsys, "eval", "--model", tiny_model_dir, "--data", split, "--out", out,
                    "--max-new-tokens", 32768, says="--max-new-tokens: 32,768 new tokens")  # fmt: skip
    assert "max_position_embeddings" in line and not out.exists() and not (tmp_path / "run").exists()


def test_a_step_past_the_machines_memory_is_refused_unless_forced(tiny_model_dir, tmp_path, capsys):
    from echoink.config_sections import ConfigError
    from echoink.preflight_model import check_training_model, machine_memory, step_memory, text_shape

    split = _split(tmp_path / "data")
    # configs/tiny_cpu.yaml's batch with 10**6 completions a prompt; 8 prompts > the split's 3, so even
    # a check that let it through would stop before training (after loading the model).
    many = (f"rollout.num_generations={10**6}", "rollout.max_new_tokens=64", "train.prompts_per_step=8")
    cfg = recipe(tiny_model_dir, split, tmp_path / "run", *many)
    with pytest.raises(ConfigError):
        check_training_model(cfg)
    line = _refused(capsys, "train", _recipe_file(tmp_path, tiny_model_dir, split, *many),
                    says="rollout.num_generations: a step needs at least")  # fmt: skip
    assert f"this machine has {machine_memory()[0] / 2**30:,.1f} GiB of RAM" in line and "--force" in line
    assert not (tmp_path / "run").exists()
    # The floor, by hand: 8 prompts x 10**6 completions, each reserving 64 tokens of keys and values in
    # each of 2 layers (2 heads of 16 floats), and one step's logits over the vocabulary (fp32).
    shape = text_shape(tiny_model_dir)
    parts = step_memory(cfg, shape, False)
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (2, 2, 16)
    assert parts["rollout KV cache"] == 8 * 10**6 * 64 * 2 * 2 * 2 * 16 * 4
    assert parts["rollout logits"] == 8 * 10**6 * shape.vocab * 4
    check_training_model(cfg, force=True)  # --force: the other checks only


def test_a_suites_broken_member_is_found_before_the_first_is_evaluated(tiny_model_dir, tmp_path, capsys):
    suite = tmp_path / "suite"
    _split(suite, name="mmau.json")  # a good member, evaluated first today
    bad = [make_row(i, image=f"images/missing_{i}.png") for i in range(2)]
    write_split(suite, bad, "omnibench.json")
    out = tmp_path / "out"
    line = _refused(capsys, "eval", "--model", tiny_model_dir, "--suite", suite, "--out", out,
                    says="--suite: ")  # fmt: skip
    assert "omnibench.json: none of its 2 rows loads" in line and not out.exists()


# --- 2. bounded readers: JSON nested 100,000 deep in every file the CLI reads -------------------------
def test_deep_json_splits_and_releases_are_one_line(tmp_path, capsys):
    good = _split(tmp_path / "a")
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    _refused(capsys, "data", "check", deep, says=f"{deep}: line 1: JSON nested deeper than 100 levels")
    _refused(capsys, "data", "overlap", good, deep, says=f"{deep}: line 1: JSON nested deeper")
    release = tmp_path / "bench" / "MMAU"
    release.mkdir(parents=True)
    (release / "mmau-test-mini.json").write_text(DEEP)
    _refused(
        capsys, "data", "import", "mmau", release, "--out", tmp_path / "bench", says="JSON nested deeper"
    )
    ws = tmp_path / "bench" / "WS"
    ws.mkdir()
    (ws / "worldsense_qa.json").write_text('{"v": ' + DEEP + "}")
    _refused(
        capsys, "data", "import", "worldsense", ws, "--out", tmp_path / "bench", says="JSON nested deeper"
    )
    assert (
        not (tmp_path / "bench" / "mmau.json").exists()
        and not (tmp_path / "bench" / "worldsense.json").exists()
    )


def test_deep_json_in_eval_and_run_files_is_one_line(tmp_path, capsys):
    summary = {"model": "m", "data": "d", "data_sha256": "0" * 64, "conditions": {"none": {"accuracy": 0.5}}}
    good = tmp_path / "good" / "summary.json"
    good.parent.mkdir()
    good.write_text(json.dumps(summary))
    deep = tmp_path / "deep" / "summary.json"
    deep.parent.mkdir()
    deep.write_text('{"conditions": ' + DEEP + "}")
    _refused(capsys, "compare", deep, good, says=f"{deep}: line 1: JSON nested deeper")
    _refused(capsys, "report", deep.parent, says=f"{deep}: line 1: JSON nested deeper")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "x": ' + DEEP + "}\n")
    _refused(capsys, "analyze", run, says=f"{run / 'metrics.jsonl'}: line 2: JSON nested deeper")
    assert not (run / "analysis").exists() and not (deep.parent / "report.html").exists()
    assert sorted(p.name for p in deep.parent.iterdir()) == ["summary.json"]


def test_a_deep_run_config_on_resume_is_one_line(tiny_model_dir, tmp_path, capsys):
    cfg = _recipe_file(tmp_path, tiny_model_dir, _split(tmp_path / "data"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train:\n  lr: " + DEEP + "\n")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')  # a run with a step: --resume reads its record
    _refused(capsys, "train", cfg, "--resume", says=f"{run / 'config.yaml'}: line 2: YAML nested deeper")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.jsonl"]  # not even a lock


# --- 3. weight files read as data ----------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_weight_file_is_refused_in_one_line_and_never_unpickled(tiny_model_dir, tmp_path, capsys):
    import torch

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    real = tmp_path / "real.bin"
    torch.save({"w": torch.zeros(2)}, real)
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(model / "pytorch_model.bin", "w") as dst:
        for info in src.infolist():  # torch's archive as saved, its pickle swapped for a payload
            payload = pickle.dumps({"w": _Payload(marker)}, protocol=2)
            dst.writestr(info, payload if info.filename.endswith("data.pkl") else src.read(info))
    line = _refused(capsys, "eval", "--model", model, "--data", _split(tmp_path / "d"), "--out", tmp_path / "e",
                    says=f"--model: {model / 'pytorch_model.bin'}: its pickle would call posix system")  # fmt: skip
    assert "refused without unpickling" in line and not marker.exists() and not (tmp_path / "e").exists()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x02not a zip")
    _refused(capsys, "eval", "--model", model, "--data", tmp_path / "d" / "train.json", "--out", tmp_path / "e",
             says="is damaged or not a torch zip archive")  # fmt: skip


def test_torch_save_of_tensors_passes_the_weight_check(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from echoink.preflight_model import check_torch_bin

    torch.save(load_file(str(tiny_model_dir / "model.safetensors")), tmp_path / "pytorch_model.bin")
    check_torch_bin(tmp_path / "pytorch_model.bin", "--model")  # real weights are not refused


# --- 4. the smaller cases ------------------------------------------------------------------------------
def test_overlap_counts_rows_and_refuses_a_split_that_yields_none(tmp_path, capsys):
    good = _split(tmp_path / "a")
    broken = write_split(tmp_path, [{"problem_id": i, "problem": "q"} for i in range(3)], "b.json")
    with pytest.raises(SystemExit) as exit_:
        run_app(app, ["data", "overlap", str(good), str(good)])
    lines = capsys.readouterr().out.splitlines()
    assert exit_.value.code == 0
    assert lines[:2] == [
        f"A: {good}: 3 rows read, 3 compared, 0 skipped",
        f"B: {good}: 3 rows read, 3 compared, 0 skipped",
    ]
    line = _refused(
        capsys, "data", "overlap", good, broken, says=f"{broken}: none of its 3 rows could be read"
    )
    assert "no overlap could be found" in line  # was "0 item(s) match": a false all-clear


def _summary(path: Path, data: str | None, sha: str | None, engine: str = "hf") -> Path:
    body = {
        "model": "m",
        "data": data,
        "engine": engine,
        "conditions": {"none": {"accuracy": 0.5, "ci95": [0.4, 0.6]}},
    }
    if sha:
        body["data_sha256"] = sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


def test_compare_names_the_file_refuses_unrelated_splits_and_shows_the_engine(tmp_path, capsys):
    from echoink.eval.compare import compare

    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    metrics.write_text('{"step": 1}\n{"step": 2}\n')
    a = _summary(tmp_path / "a" / "summary.json", "bench/video.json", None)
    _refused(capsys, "compare", metrics, a, says=f"{metrics}: line 2 is not JSON")
    b = _summary(tmp_path / "b" / "summary.json", "bench/image.json", None, engine="vllm")
    line = _refused(capsys, "compare", a, b, says="record no split hash and name different splits")
    assert "--force" in line
    forced = compare(a, b, force=True)
    assert forced["split"] == "different (forced)" and forced["differences"]["engine"] == ["hf", "vllm"]
    same = _summary(tmp_path / "c" / "summary.json", "bench/video.json", None)
    assert compare(a, same)["split"] == "unverified"


def test_recipe_card_records_absolute_split_paths_the_suite_can_find(tiny_model_dir, tmp_path, monkeypatch):
    from echoink.data.avqa import split_fingerprint
    from echoink.recipe_card import training_split, write_recipe

    split = _split(tmp_path / "work" / "data")
    monkeypatch.chdir(tmp_path / "work")
    cfg = recipe(tiny_model_dir, Path("data/train.json"), tmp_path / "run")  # relative, as recipes write it
    card_dir = tmp_path / "final"
    card_dir.mkdir()
    write_recipe(cfg, card_dir, "grpo")
    monkeypatch.chdir(tmp_path)  # the eval runs elsewhere
    card = json.loads((card_dir / "echoink_recipe.json").read_text())["splits"]["data.train_path"]
    assert card == {"path": "data/train.json", "absolute": str(split), "sha256": split_fingerprint(split)}
    assert training_split(card_dir) == str(split)


def test_sharded_cpu_passes_every_train_flag_through(tmp_path):
    import subprocess

    stub = tmp_path / "python"  # stands in for the venv's python: records what accelerate would run
    log = tmp_path / "argv"
    stub.write_text(f'#!/bin/sh\ncase "$1" in -c) echo 1;; -) echo {{}};; *) echo "$@" >> {log};; esac\n')
    stub.chmod(0o755)
    script = Path(__file__).parents[1] / "bench" / "sharded_cpu.sh"
    args = [
        "--set",
        "data.train_path=x",
        "--set",
        "model.path=y",
        "--resume",
        "--allow-config-change",
        "--force",
    ]
    done = subprocess.run([str(script), str(tmp_path / "out"), *args], env={**os.environ, "PYTHON": str(stub)},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        log.read_text()
        .rstrip()
        .endswith(
            f"--set train.output_dir={tmp_path / 'out'} --set data.train_path=x --set model.path=y --resume "
            "--allow-config-change --force"
        )
    )


def test_data_import_replaces_only_a_split_it_wrote(tmp_path, capsys):
    from bench_layouts import write_mmau

    src = write_mmau(tmp_path)
    target = tmp_path / "mmau.json"
    code, _ = _run(capsys, "data", "import", "mmau", src, "--out", tmp_path)
    assert code == 0 and target.exists()
    code, _ = _run(capsys, "data", "import", "mmau", src, "--out", tmp_path)  # its own file: replaced
    assert code == 0
    edited = target.read_text().replace("Is the speaker a man?", "Is the speaker a woman?")
    target.write_text(edited)  # a hand fix
    _refused(capsys, "data", "import", "mmau", src, "--out", tmp_path,
             says=f"--out: {target} exists and was not written by `echoink data import` (or was edited since)")  # fmt: skip
    assert target.read_text() == edited
    (tmp_path / ".mmau.json.echoink").unlink()
    _refused(capsys, "data", "import", "mmau", src, "--out", tmp_path, says="was not written by")


def test_damaged_safetensors_and_configs_are_one_line(tiny_model_dir, tmp_path):
    """Hostile variants of the files preflight reads: each a ConfigError naming the file, no traceback."""
    import struct

    from echoink.config_sections import ConfigError
    from echoink.preflight import check_model_dir
    from echoink.preflight_model import text_shape

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    for header, says in [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10**12]}}, "runs past the end of the file"),
        ({"w": {"dtype": ["F32"], "data_offsets": "x"}}, "has no data_offsets"),
        ([1, 2], "not a JSON object"),
    ]:
        raw = json.dumps(header).encode()
        weights.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
        with pytest.raises(ConfigError, match=f"^--model: {weights} is damaged .*{says}"):
            check_model_dir(model, "--model")
    weights.write_bytes(struct.pack("<Q", 2**40))  # a header length past the file
    with pytest.raises(ConfigError, match="header length"):
        check_model_dir(model, "--model")
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["text_config"]["num_attention_heads"] = 0
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="config.json: text_config is incomplete"):
        text_shape(model, "--model")


def test_deep_json_in_a_model_config_a_lock_or_an_import_marker(tiny_model_dir, tmp_path, capsys):
    """Hostile pass: the other JSON files a command reads before its work are bounded too."""
    from echoink.runlock import LOCK_FILE, run_lock

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text('{"text_config": ' + DEEP + "}")
    split = _split(tmp_path / "d")
    _refused(capsys, "eval", "--model", model, "--data", split, "--out", tmp_path / "e",
             says=f"--model: {model / 'config.json'}: line 1: JSON nested deeper")  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(DEEP)  # a planted lock record: read as "no holder", never a traceback
    with run_lock(run):
        pass
    target = tmp_path / "b" / "mmau.json"
    target.parent.mkdir()
    target.write_text("[]")
    (target.parent / ".mmau.json.echoink").write_text(DEEP)
    from bench_layouts import write_mmau

    src = write_mmau(target.parent)
    _refused(capsys, "data", "import", "mmau", src, "--out", target.parent, says="was not written by")
