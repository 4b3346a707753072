"""The optimisation passes: μ > 1 with a cosine schedule, bad-step accounting, truncation masking."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from echoink.rl import optimise as optimise_module
from echoink.rl import trainer
from echoink.rl.trainer import TrainingAborted, build_run, setup_run, train
from echoink.runlog import read_jsonl
from media_helpers import write_small_split
from rl.test_trainer import recipe


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("optimise"))


def test_mu_two_follows_the_cosine_over_max_steps(tiny_model_dir, split, tmp_path):
    """The schedule advances once per training step, not once per pass (it used to reach 0 halfway)."""
    cfg = recipe(
        tiny_model_dir, split, tmp_path / "run", "algo.num_iterations=2", "train.lr_schedule=cosine",
        "train.warmup_steps=0", "train.max_steps=4", "train.lr=1e-3",
    )  # fmt: skip
    rows = read_jsonl(train(cfg) / "metrics.jsonl")
    want = [1e-3 * 0.5 * (1 + math.cos(math.pi * step / 4)) for step in (1, 2, 3, 4)]
    assert [r["lr"] for r in rows] == pytest.approx(want, rel=1e-6)


def test_truncated_completions_leave_the_loss_when_masked(tiny_model_dir, split, tmp_path, monkeypatch):
    """With mask_truncated_completions, a truncated completion's tokens get no gradient (all are
    truncated at max_new_tokens=2 for an untrained model, so the loss and gradient are exactly 0)."""
    seen = []
    real = optimise_module.algos.policy_loss

    def recording(logp, old, adv, mask, *a, **k):
        seen.append(mask.clone())
        return real(logp, old, adv, mask, *a, **k)

    monkeypatch.setattr(optimise_module.algos, "policy_loss", recording)
    base = ["rollout.max_new_tokens=2", "train.max_steps=1"]
    for masked in (False, True):
        seen.clear()
        out = train(recipe(tiny_model_dir, split, tmp_path / f"m{masked}", *base,
                           f"algo.mask_truncated_completions={str(masked).lower()}"))  # fmt: skip
        rollouts = read_jsonl(out / "rollouts.jsonl")
        assert all(r["truncated"] for r in rollouts)
        assert (seen[0].sum() == 0) == masked and (seen[0].sum() > 0) == (not masked)
        assert (read_jsonl(out / "metrics.jsonl")[0]["grad_norm"] == 0.0) == masked


def _nan_losses(monkeypatch, bad_calls):
    """Make the mini-batch losses of the calls in ``bad_calls`` (1-based; None: all) non-finite."""
    calls = {"n": 0}
    real = optimise_module._mini_batch_loss

    def patched(cfg, scorer, exp, start, stop, mask):
        loss, m, logp, rows = real(cfg, scorer, exp, start, stop, mask)
        calls["n"] += 1
        bad = bad_calls is None or calls["n"] in bad_calls
        return (loss * float("nan") if bad else loss), m, logp, rows

    monkeypatch.setattr(optimise_module, "_mini_batch_loss", patched)


def test_non_finite_steps_abort_after_max_bad_steps(tiny_model_dir, split, tmp_path, monkeypatch):
    cfg = recipe(
        tiny_model_dir, split, tmp_path / "run", "train.max_bad_steps=2", "train.max_steps=5",
        "algo.num_iterations=2",
    )  # fmt: skip
    _nan_losses(monkeypatch, None)
    with pytest.raises(TrainingAborted, match="2 consecutive steps"):
        train(cfg)
    # μ = 2: two skipped passes per step, but bad steps are counted per step (it aborted after 2 steps)
    rows = read_jsonl(Path(cfg.train.output_dir) / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and rows[0]["skipped_updates"] == 2.0
    assert not (Path(cfg.train.output_dir) / "final").exists()


def test_a_bad_pass_skips_only_itself(tiny_model_dir, split, tmp_path, monkeypatch):
    """μ = 2 with a non-finite first pass: the second pass still steps (it used to be skipped too)."""
    cfg = recipe(tiny_model_dir, split, tmp_path / "run", "algo.num_iterations=2", "train.max_steps=1")
    _nan_losses(monkeypatch, {1})
    run = setup_run(cfg, resume=False)
    before = {n: p.detach().clone() for n, p in run.h.policy.named_parameters() if p.requires_grad}
    from echoink.rl.optimise import optimise
    from echoink.rl.trainer import next_rollout_batch

    update = optimise(cfg, run.h, run.state, next_rollout_batch(cfg, run))
    assert update["skipped_updates"] == 1.0 and run.state.bad_steps == 1
    moved = [
        n for n, p in run.h.policy.named_parameters() if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert moved, "the finite second pass must update the weights"


def test_bf16_mixed_precision_trains_policy_and_reference_on_cpu(tiny_model_dir, split, tmp_path):
    """accelerate's bf16 autocast on the CPU: the policy pass and the frozen reference both run in it,
    the finiteness guard sees finite numbers, and the weights move."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # earlier tests made it fp32, once per process
    request_reset = AcceleratorState._reset_state
    cfg = recipe(tiny_model_dir, split, tmp_path / "run", "train.mixed_precision=bf16", "algo.beta=0.04")
    run = build_run(cfg, resume=False)  # writes nothing: the run below starts in the same directory
    assert run.h.accelerator.mixed_precision == "bf16" and run.h.reference is not None
    before = {n: p.detach().clone() for n, p in run.h.policy.named_parameters() if p.requires_grad}
    del run
    rows = read_jsonl(train(cfg) / "metrics.jsonl")
    assert all(
        math.isfinite(r["loss"]) and math.isfinite(r["kl"]) and r["skipped_updates"] == 0 for r in rows
    )
    assert any(r["kl"] != 0 for r in rows), "the reference must differ from the moving policy"
    from safetensors.torch import load_file

    from echoink.rl.checkpoint import latest_checkpoint

    final = load_file(str(latest_checkpoint(Path(cfg.train.output_dir)) / "trainable.safetensors"))
    assert sum(not torch.equal(final[n], p) for n, p in before.items()) > len(before) // 2
    request_reset(reset_partial_state=True)  # leave no bf16 state to the tests after this one


def test_gradient_checkpointing_says_prefix_sharing_stays_on(tiny_model_dir, split, tmp_path, caplog):
    """With model.gradient_checkpointing the policy pass stays "prefix" and the log says so (it used to
    switch to "towers" silently), and the checkpointed pass trains."""
    import logging

    cfg = recipe(
        tiny_model_dir, split, tmp_path / "run", "model.gradient_checkpointing=true",
        "train.completions_per_pass=2", "train.max_steps=1",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="echoink.rl.trainer"):
        run = setup_run(cfg, resume=False)
    assert "gradient checkpointing: prefix sharing is on" in caplog.text and "2 per pass" in caplog.text
    assert run.h.scorer.sharing == "prefix" and cfg.rollout.sharing == "prefix"
    update = optimise_module.optimise(cfg, run.h, run.state, trainer.next_rollout_batch(cfg, run))
    assert math.isfinite(update["loss"]) and update["skipped_updates"] == 0.0
