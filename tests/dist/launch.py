"""Launching the trainer on two CPU processes for the tests in tests/dist: DDP (gloo via
ACCELERATE_USE_CPU) and DeepSpeed (``bench/sharded_cpu.sh``: DeepSpeed's CPU accelerator + gloo), the
recipe values they share, and reading what the runs wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from echoink.rl.checkpoint import list_checkpoints

ROOT = Path(__file__).parents[2]
TESTS = ROOT / "tests"
SCRIPT = ROOT / "bench" / "sharded_cpu.sh"
STEPS = 6  # steps of the shared runs (conftest.mixed_runs), checkpointed at 3 and 6


def _values(model: Path, split: Path, *extra: str) -> list[str]:
    return [
        f"model.path={model}", f"data.train_path={split}", f"data.val_path={split}", f"train.max_steps={STEPS}",
        "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=8",
        "train.lr=1e-3", "train.seed=5", "train.save_every=4", "train.eval_every=0", "train.threads=1",
        "algo.beta=0.04", "algo.rewards={format: 1.0, 'media_helpers:parity_reward': 1.0}", *extra,
    ]  # fmt: skip


def _sets(model: Path, split: Path, *extra: str) -> list[str]:
    return [arg for v in _values(model, split, *extra) for arg in ("--set", v)]


def _worker(tmp: Path, values: list[str], mode: str) -> Path:
    """sharded_worker.py under the ZeRO-3 CPU launch (as bench/sharded_cpu.sh launches the trainer)."""
    from echoink.config import load_config, save_config

    recipe, out = tmp / f"{mode}.yaml", tmp / mode
    save_config(load_config(ROOT / "configs" / "tiny_cpu.yaml", values), recipe)
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        "configs/accelerate/deepspeed_zero3_cpu.yaml", "--main_process_port", str(_free_port()),
        str(Path(__file__).with_name("sharded_worker.py")), str(recipe), mode, str(out),
    ]  # fmt: skip
    env = {**_env(), "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, _errors(done.stderr)
    return out


def _env() -> dict[str, str]:
    paths = os.pathsep.join([str(ROOT / "src"), str(TESTS)])  # the parity reward lives in tests/
    # PYTHON: bench/sharded_cpu.sh launches with this interpreter (its default is the checkout's .venv).
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": paths, "PYTHON": sys.executable}


def _sharded(out: Path, sets: list[str], *flags: str) -> dict:
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out), *flags, *sets], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, _errors(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


DDP = [
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def _train(launch: list[str], out: Path, sets: list[str], *flags: str) -> subprocess.CompletedProcess:
    """``accelerate launch LAUNCH -m echoink train configs/tiny_cpu.yaml``: DDP (``DDP``, gloo via
    ACCELERATE_USE_CPU) or DeepSpeed (``--config_file ...``, gloo via DeepSpeed's CPU accelerator)."""
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *launch, "--main_process_port", str(_free_port()),
        "-m", "echoink", "train", "configs/tiny_cpu.yaml", "--set", f"train.output_dir={out}", *sets, *flags,
    ]  # fmt: skip
    env = {**_env(), "ACCELERATE_USE_CPU": "1"} if launch == DDP else {**_env(), "DS_ACCELERATOR": "cpu"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)


def _errors(stderr: str) -> str:
    """The trainer's own one-line errors first (the launcher's traceback after them says little)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    return "\n".join(lines[:4]) + "\n" + stderr[-2000:]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def kill_9_after_first_checkpoint(out: Path, sets: list[str]) -> None:
    """``bench/sharded_cpu.sh OUT`` killed (SIGKILL, the whole process group) once its first checkpoint exists."""
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), str(out), *sets], env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not list_checkpoints(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


SEED = 5  # _values' train.seed: the sampler order kinds_apart plans for


def mixed_sets(model, split, *extra: str) -> list[str]:
    """The shared runs' recipe: one prompt per process per step, checkpoints at steps 3 and 6."""
    return _sets(
        model, split, f"train.max_steps={STEPS}", "train.prompts_per_step=1", "train.save_every=3", *extra
    )
