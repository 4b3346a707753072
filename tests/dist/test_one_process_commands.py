"""Commands that run on one process refuse a launch of several, in one line, before doing anything:
SFT used to write every metrics row twice and (under ZeRO-3) save empty tensors, or crash under DDP
("Expected to have finished reduction"); eval evaluated every item on both processes and wrote each
prediction twice."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dist.launch import DDP, ROOT, _env, _free_port

ZERO3 = ["--config_file", "configs/accelerate/deepspeed_zero3_cpu.yaml"]


@pytest.mark.parametrize(("command", "launch"), [("sft", "zero3"), ("eval", "ddp")])
def test_a_one_process_command_under_two_processes_is_refused_in_one_line(
    tiny_model_dir, tmp_path, launch, command
):
    args = {
        "sft": ["sft", "configs/tiny_cpu.yaml", "--set", f"sft.output_dir={tmp_path / 'sft'}"],
        "eval": ["eval", "--model", str(tiny_model_dir), "--data", str(tmp_path / "x.json"), "--out", str(tmp_path / "e")],
    }[command]  # fmt: skip
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *(DDP if launch == "ddp" else ZERO3),
        "--main_process_port", str(_free_port()), "-m", "echoink", *args,
    ]  # fmt: skip
    env = {**_env(), "ACCELERATE_USE_CPU": "1", "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: echoink {command} runs on one process, but it was launched as 2: run it "
                      "without accelerate launch / torchrun (only echoink train shards its work across processes)"]  # fmt: skip
    assert not (tmp_path / "sft").exists() and not (tmp_path / "e").exists()
