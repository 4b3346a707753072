"""GRPO trainer on the tiny model: parameters move, metrics are complete, variants run, resume is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from echoink.rl.checkpoint import latest_checkpoint, list_checkpoints
from echoink.rl.trainer import build_run, setup_run, train
from echoink.runlog import read_jsonl
from media_helpers import write_small_split
from recipe_helpers import recipe

METRICS = [
    "reward", "reward_std", "rewards/accuracy/mean", "rewards/format/mean", "completions/mean_length",
    "completions/clipped_ratio", "kl", "clip_ratio/low", "clip_ratio/high", "frac_reward_zero_std", "sampled_token_nll",
    "grad_norm", "lr", "step_time", "tokens_per_second", "time/rollout", "time/reference",
    "time/policy_forward_backward", "time/optimizer", "time/rewards",
]  # fmt: skip


# Defined by transformers' audio encoder but never used in its forward, so no gradient can reach it.
UNUSED_PARAMETERS = {"model.audio_tower.audio_bos_eos_token.weight"}


@pytest.fixture(scope="module")
def train_split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("trainset"))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_three_steps_move_every_parameter_and_log_every_metric(family_model_dir, train_split, tmp_path):
    cfg = recipe(family_model_dir, train_split, tmp_path / "run", "algo.beta=0.04")
    run = build_run(cfg, resume=False)  # writes nothing: the run below starts in the same directory
    before = _weights(run.h.policy)
    assert run.h.reference is not None  # beta > 0 without LoRA: a frozen copy
    del run
    out = train(cfg)
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        missing = [m for m in METRICS if m not in row]
        assert not missing, missing
        assert all(v is None or isinstance(v, int | float) for v in row.values())
    assert read_jsonl(out / "rollouts.jsonl")[0]["completion"] is not None
    final = load_file(str(latest_checkpoint(out) / "trainable.safetensors"))
    unchanged = [n for n, p in before.items() if torch.equal(final[n], p) and n not in UNUSED_PARAMETERS]
    assert not unchanged, f"{len(unchanged)} trainable tensors never changed, e.g. {unchanged[:3]}"
    assert (out / "final" / "config.json").exists()


def test_beta_zero_loads_no_reference(tiny_model_dir, train_split, tmp_path, monkeypatch):
    from echoink.rl import rollout

    cfg = recipe(tiny_model_dir, train_split, tmp_path / "run", "algo.beta=0", "train.max_steps=1")
    run = build_run(cfg, resume=False)
    assert run.h.reference is None
    assert not any(tmp_path.iterdir())  # build_run wrote nothing: train() starts a fresh run there
    passes = []
    monkeypatch.setattr(rollout, "_logprobs", lambda *args: passes.append(args))  # a reference/old pass
    train(cfg)
    row = read_jsonl(Path(cfg.train.output_dir) / "metrics.jsonl")[0]
    assert "kl" not in row and not passes  # no reference pass ran, no KL is logged
    with pytest.raises(FileExistsError, match="--resume"):  # a fresh run never mixes into a used run dir
        setup_run(cfg, resume=False)


def test_lora_trains_only_adapters_with_disabled_adapter_reference(tiny_model_dir, train_split, tmp_path):
    cfg = recipe(
        tiny_model_dir,
        train_split,
        tmp_path / "run",
        "model.lora_rank=4",
        "algo.beta=0.1",
        "train.max_steps=2",
    )
    run = build_run(cfg, resume=False)
    assert run.h.reference is None  # the base with adapters disabled is the reference
    names = [n for n, p in run.h.policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    del run
    out = train(cfg)
    rows = read_jsonl(out / "metrics.jsonl")
    assert rows[-1]["kl"] > 0  # adapters moved the policy away from the base


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_run_from_a_saved_adapter_has_that_adapter_as_its_reference(tiny_model_dir, train_split, tmp_path):
    """β pulls towards the policy training starts from: base + the saved (SFT) adapter, not the
    adapter's base (the pre-SFT model), whether the new run adds LoRA or not."""
    from echoink.model.loading import load_thinker

    first = recipe(tiny_model_dir, train_split, tmp_path / "lora", "model.lora_rank=4", "train.lr=5e-2")
    adapter = train(first) / "final"
    assert (adapter / "adapter_config.json").exists()
    ids = torch.arange(3, 11)[None]  # [1, 8] plain text tokens
    base = _logits(load_thinker(tiny_model_dir), ids)
    for lora in ("0", "4"):
        cfg = recipe(
            adapter, train_split, tmp_path / f"run{lora}", "algo.beta=0.1", f"model.lora_rank={lora}"
        )
        run = setup_run(cfg, resume=False)
        assert run.h.reference is not None
        start, ref = _logits(run.h.policy, ids), _logits(run.h.reference, ids)
        torch.testing.assert_close(ref, start, atol=1e-5, rtol=1e-5)
        assert (ref - base).abs().max() > 1e-3, "the adapter moved nothing: the test would prove nothing"


def test_logged_loss_is_the_optimised_global_loss(tiny_model_dir, train_split, tmp_path):
    """Mini-batches of unequal token counts under token-mean: the logged loss is the loss of the whole
    batch (what the accumulated gradient optimises), not the plain mean of the mini-batch losses."""
    from echoink.rl import algos
    from echoink.rl.optimise import optimise
    from echoink.rl.trainer import next_rollout_batch

    extra = ("algo.loss_agg=token-mean", "train.mini_batch_prompts=1", "rollout.max_new_tokens=6")
    cfg = recipe(tiny_model_dir, train_split, tmp_path / "run", *extra)
    run = setup_run(cfg, resume=False)
    exp = next_rollout_batch(cfg, run)  # B = 2 prompts, G = 2: two mini-batches of one group each
    exp.completion_mask[0, 2:] = 0  # the first mini-batch has fewer tokens than the second
    exp.advantages = torch.tensor([1.0, -0.5, 0.25, -0.75])
    mask = exp.completion_mask.float()
    with torch.no_grad():
        logp, _ = run.h.scorer(exp.prompts, exp.completion_ids, 2, cfg.rollout.temperature)
        spec = algos.LossSpec(agg="token-mean")
        whole, _ = algos.policy_loss(logp, logp, exp.advantages, mask, spec)  # one batch
        halves = [algos.policy_loss(logp[r], logp[r], exp.advantages[r], mask[r], spec)[0]
                  for r in (slice(0, 2), slice(2, 4))]  # fmt: skip
    assert abs(float(whole) - float(sum(halves)) / 2) > 1e-3  # the two summaries really differ here
    update = optimise(cfg, run.h, run.state, exp)
    assert update["loss"] == pytest.approx(float(whole), rel=1e-5, abs=1e-7)


def test_zero_variance_groups_give_zero_advantage_and_no_nan(tiny_model_dir, train_split, tmp_path):
    # An untrained model never closes <think>…<answer>, so the format reward is 0 for every completion.
    cfg = recipe(
        tiny_model_dir, train_split, tmp_path / "run", "algo.rewards={format: 1.0}", "train.max_steps=2"
    )
    out = train(cfg)
    for row in read_jsonl(out / "metrics.jsonl"):
        assert row["frac_reward_zero_std"] == 1.0
        assert row["grad_norm"] == 0.0 and row["loss"] == 0.0
    assert all(r["advantage"] == 0.0 for r in read_jsonl(out / "rollouts.jsonl"))


def _train_cmd(cfg_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "echoink", "train", str(cfg_path), *extra]


def test_kill_and_resume_is_bitwise_exact(family_model_dir, train_split, tmp_path):
    tiny_model_dir = family_model_dir
    tests_dir = str(Path(__file__).parents[1])  # the subprocess imports the test reward from media_helpers
    src_dir = str(Path(__file__).parents[2] / "src")  # this checkout's package, not an installed copy
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src_dir, tests_dir])}
    base = recipe(tiny_model_dir, train_split, tmp_path / "unused", "train.max_steps=4", "train.save_every=1")
    from echoink.config import save_config

    save_config(base, tmp_path / "recipe.yaml")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(
        _train_cmd(tmp_path / "recipe.yaml", "--set", f"train.output_dir={straight}"), env=env, check=True
    )
    proc = subprocess.Popen(
        _train_cmd(tmp_path / "recipe.yaml", "--set", f"train.output_dir={killed}"), env=env
    )
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step-000002").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = latest_checkpoint(killed)
    assert resumed_from is not None and resumed_from.name in ("step-000002", "step-000003")
    subprocess.run(
        _train_cmd(tmp_path / "recipe.yaml", "--set", f"train.output_dir={killed}", "--resume"),
        env=env,
        check=True,
    )
    a = load_file(str(straight / "checkpoints" / "step-000004" / "trainable.safetensors"))
    b = load_file(str(killed / "checkpoints" / "step-000004" / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_jsonl(killed / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]


WRITER = """
import sys, torch
from pathlib import Path
from echoink.rl.checkpoint import save_checkpoint
model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(8)])
opt = torch.optim.AdamW(model.parameters())
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
step = 0
while True:
    step += 1
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(step)
    save_checkpoint(Path(sys.argv[1]), step, model, opt, sched, {"marker": step}, keep=2)
"""


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled), or fail: never after a guessed sleep, which
    on a loaded machine can kill the writer before it wrote anything and let the test assert nothing."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the writer exited before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_checkpoint_write_is_atomic_under_sigkill(tmp_path):
    """Killed while a later checkpoint is being written (twice) and right after one appears: every visible
    checkpoint is complete and self-consistent, and there is always one to check."""
    moments = {
        "step 2 being written": lambda root: (root / ".tmp-step-000002").exists(),
        "step 3 visible": lambda root: (root / "step-000003").exists(),
        "step 4 being written (after a pruning)": lambda root: (root / ".tmp-step-000004").exists(),
    }
    for i, (what, ready) in enumerate(moments.items()):
        run_dir = tmp_path / f"d{i}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir)])
        _kill_when(proc, lambda r=run_dir / "checkpoints", f=ready: f(r), what)
        visible = list_checkpoints(run_dir)
        assert visible, what
        for ckpt in visible:  # every visible checkpoint is complete and self-consistent
            state = json.loads((ckpt / "trainer_state.json").read_text())
            weights = load_file(str(ckpt / "trainable.safetensors"))
            assert all(float(w.flatten()[0]) == state["marker"] for w in weights.values())
            assert (ckpt / "optimizer.pt").exists() and (ckpt / "rng.pt").exists()


def test_gspo_sequence_level_changes_the_off_policy_pass(tiny_model_dir, train_split, tmp_path):
    """algo.importance_sampling_level reaches the loss: with μ = 2 the second pass has ratio != 1."""
    rows = {}
    for level in ("token", "sequence"):
        cfg = recipe(
            tiny_model_dir, train_split, tmp_path / level, "train.max_steps=1", "algo.num_iterations=2",
            "rollout.max_new_tokens=6", f"algo.importance_sampling_level={level}",
        )  # fmt: skip
        rows[level] = read_jsonl(train(cfg) / "metrics.jsonl")[0]
    token, sequence = rows["token"], rows["sequence"]
    assert token["reward"] == sequence["reward"]  # same seed, same rollouts: only the loss differs
    assert token["ratio_mean"] != sequence["ratio_mean"]
    assert token["loss"] != sequence["loss"]
