"""Two CPU processes: ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2`` (gloo DDP).

Measured with accelerate 1.x here: ``--cpu`` starts one process; ``--multi_gpu --num_processes 2``
without a GPU starts two processes that each believe they are alone (no process group, no error)
unless ``ACCELERATE_USE_CPU=1`` is set, which makes them a MULTI_CPU group on gloo.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from echoink.config import save_config
from echoink.rl.algos import ADVANTAGE_ESTIMATORS, POLICY_LOSSES
from echoink.rl.checkpoint import latest_checkpoint
from echoink.runlog import read_jsonl
from media_helpers import write_small_split

WORKER = Path(__file__).with_name("worker.py")
TESTS = Path(__file__).parents[1]
SIGNAL = "media_helpers:parity_reward"  # reward variance for an untrained model


@pytest.fixture(scope="module")
def dist_split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("distset"))


def _recipe(tmp_path: Path, model_dir: Path, split: Path, *extra: str) -> Path:
    from echoink.config import load_config

    overrides = [
        f"model.path={model_dir}", f"data.train_path={split}", "train.max_steps=3",
        "rollout.num_generations=2", "rollout.max_new_tokens=8", "train.lr=1e-3", "train.seed=5",
        "train.weight_decay=0", "train.save_every=100", "algo.beta=0.04", "train.threads=1",
        f"algo.rewards={{format: 1.0, '{SIGNAL}': 1.0}}",
    ]  # fmt: skip
    path = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    save_config(load_config(None, overrides + list(extra)), path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(recipe: Path | str, mode: str, out: Path | str, processes: int) -> None:
    """Train RECIPE into OUT (or comma-separated lists of both, one after the other) on ``processes``."""
    paths = os.pathsep.join(
        [str(TESTS.parent / "src"), str(TESTS)]
    )  # this checkout's package, not an installed one
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": paths, "ACCELERATE_USE_CPU": "1"}
    if processes == 1:
        cmd = [sys.executable, str(WORKER)]
    else:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
            str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), str(WORKER),
        ]  # fmt: skip
    done = subprocess.run([*cmd, str(recipe), mode, str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_processes_keep_identical_weights(tiny_model_dir, dist_split, tmp_path):
    """The real loop (own rollouts per process): DDP keeps the replicas bitwise equal; main writes files."""
    out = tmp_path / "run"
    _launch(_recipe(tmp_path, tiny_model_dir, dist_split, "train.prompts_per_step=2"), "real", out, 2)
    rank0, rank1 = (load_file(str(out / f"rank-{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = load_file(str(latest_checkpoint(out) / "trainable.safetensors"))
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]  # one writer
    assert (out / "final" / "config.json").exists()
    # rollouts.jsonl holds every process's groups (it held process 0's only), each row saying whose
    rollouts = read_jsonl(out / "rollouts.jsonl")
    for step in (1, 2, 3):
        assert {r["process"] for r in rollouts if r["step"] == step} == {0, 1}


def _variants() -> list[tuple[str, str, int]]:
    """(advantage estimator, policy loss, μ): every registered estimator and policy loss at least once,
    μ = 2 on every other variant (old log-probs, ratios away from 1)."""
    estimators, losses = ADVANTAGE_ESTIMATORS.names(), POLICY_LOSSES.names()
    n = max(len(estimators), len(losses))
    return [(estimators[i % len(estimators)], losses[i % len(losses)], 1 + i % 2) for i in range(n)]


VARIANTS = _variants()


@pytest.fixture(scope="module")
def two_and_one(tiny_model_dir, dist_split, tmp_path_factory) -> Path:
    """Every variant trained on 2 processes x 2 prompts (root/two-i) and 1 process x 4 prompts
    (root/one-i): one launch of each size runs all variants, one after the other."""
    root = tmp_path_factory.mktemp("two_and_one")
    base = ("algo.loss_agg=token-mean", "train.mini_batch_prompts=1")
    # Validation at step 3 on 5 items (variant 0): 3 + 2 per process, the second padded, sums gathered.
    val = (f"data.val_path={dist_split}", "train.eval_every=3", "eval.max_items=5", "eval.batch_size=2")
    for size, prompts in (("two", 2), ("one", 4)):
        recipes, outs = [], []
        for i, (scale, level, mu) in enumerate(VARIANTS):
            extra = (*base, f"algo.scale_rewards={scale}", f"algo.importance_sampling_level={level}")
            extra += (
                f"algo.num_iterations={mu}",
                f"train.prompts_per_step={prompts}",
                *(val if i == 0 else ()),
            )
            recipes.append(_recipe(root, tiny_model_dir, dist_split, *extra))
            outs.append(root / f"{size}-{i}")
        _launch(",".join(map(str, recipes)), "global", ",".join(map(str, outs)), 2 if size == "two" else 1)
    return root


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=["-".join(map(str, v)) for v in VARIANTS])
def test_two_processes_of_b_equal_one_process_of_2b(tiny_model_dir, two_and_one, index):
    """Same experience (see worker.py): 2 processes x 2 prompts == 1 process x 4 prompts within 1e-5,
    for every advantage estimator ("batch" needs every process's rewards) and policy loss.

    token-mean and one-prompt mini-batches: the aggregation whose weights differ across processes
    (token counts) and the no_sync gradient accumulation are both exercised.
    """
    two, one = two_and_one / f"two-{index}", two_and_one / f"one-{index}"
    start = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    w2, w1 = load_file(str(two / "rank-0.safetensors")), load_file(str(one / "rank-0.safetensors"))
    assert _max_diff(w2, w1) < 1e-5
    common = [k for k in w1 if k.removeprefix("model.") in start]  # the model dir has no "model." prefix
    moved = max(float((w1[k] - start[k.removeprefix("model.")]).abs().max()) for k in common)
    assert len(common) > 50 and moved > 1e-3  # the comparison is not between untrained copies
    rows2, rows1 = read_jsonl(two / "metrics.jsonl"), read_jsonl(one / "metrics.jsonl")
    for a, b in zip(rows2, rows1, strict=True):  # metrics describe the global batch
        for key in ("reward", "reward_std", "completions/mean_length", "frac_reward_zero_std", "grad_norm"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    if index == 0:
        assert rows2[-1]["eval/n"] == rows1[-1]["eval/n"] == 5  # every item once, padding not counted
        for key in ("eval/accuracy", "eval/format_rate", "eval/mean_length"):
            assert rows2[-1][key] == pytest.approx(rows1[-1][key]), key


def test_dynamic_sampling_keeps_every_process_on_one_global_order(tiny_model_dir, dist_split, tmp_path):
    """With drop_zero_std_groups, resampling rounds are agreed by all processes: every process draws
    the same number of batches, so all stay at the same place in the global prompt order (each used
    to resample on its own and drift apart). Not compared with a 1-process run: its rollouts come from
    another RNG stream, so its zero-variance groups, and with them its rounds, differ."""
    import json

    extra = (
        "algo.drop_zero_std_groups=true", "algo.max_resample_rounds=2", "train.max_steps=4",
        "algo.rewards={'media_helpers:length_if_a': 1.0}", "train.prompts_per_step=1",
    )  # fmt: skip
    two = tmp_path / "two"
    _launch(_recipe(tmp_path, tiny_model_dir, dist_split, *extra), "real", two, 2)
    states = [json.loads((two / f"rank-{r}.sampler.json").read_text()) for r in (0, 1)]
    assert states[0] == states[1]
    draws = states[0]["epoch"] * 8 + states[0]["cursor"]  # 8 prompts, 2 per global batch
    assert draws > 2 * 4, "some round must have resampled, or the test proves nothing"
