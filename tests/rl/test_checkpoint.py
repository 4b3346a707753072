"""Checkpoints load without running code, are verified against their manifest, and a damaged newest
one falls back to the previous intact one with a warning naming the bad file."""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from echoink.errors import UserError
from echoink.rl.checkpoint import CheckpointDamaged, load_latest_intact, save_checkpoint


def _parts():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def _train_and_save(run_dir: Path, steps: int):
    model, opt, sched = _parts()
    for step in range(1, steps + 1):
        model(torch.randn(3, 4)).sum().backward()
        opt.step(), sched.step(), opt.zero_grad()
        save_checkpoint(run_dir, step, model, opt, sched, {"sampler": {"epoch": 0, "cursor": step}}, keep=3)
    return model


class _Planted:
    """A pickle that, if unpickled with full pickle, creates a file: what a malicious .pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _replant(ckpt: Path, name: str, payload: bytes) -> None:
    """Replace one file and make the manifest agree, as someone able to write the run dir could."""
    (ckpt / name).write_bytes(payload)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    import hashlib

    manifest[name] = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def test_planted_pickle_is_refused_and_the_previous_checkpoint_restored(tmp_path, caplog):
    _train_and_save(tmp_path, 2)
    marker = tmp_path / "pwned"
    newest = tmp_path / "checkpoints" / "step-000002"
    _replant(newest, "scheduler.pt", pickle.dumps(_Planted(marker)))
    model, opt, sched = _parts()
    with caplog.at_level(logging.WARNING):
        path, state = load_latest_intact(tmp_path, model, opt, sched)
    assert not marker.exists(), "loading a checkpoint ran code"
    assert path.name == "step-000001" and state["step"] == 1
    assert "step-000002" in caplog.text and "scheduler.pt" in caplog.text


def test_an_altered_file_fails_the_manifest_and_falls_back(tmp_path, caplog):
    _train_and_save(tmp_path, 2)
    weights = tmp_path / "checkpoints" / "step-000002" / "trainable.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    weights.write_bytes(bytes(data))
    model, opt, sched = _parts()
    with caplog.at_level(logging.WARNING):
        path, _ = load_latest_intact(tmp_path, model, opt, sched)
    assert path.name == "step-000001" and "trainable.safetensors" in caplog.text


def test_no_intact_checkpoint_is_an_error_naming_the_folder(tmp_path):
    _train_and_save(tmp_path, 1)
    (tmp_path / "checkpoints" / "step-000001" / "optimizer.pt").unlink()
    with pytest.raises(CheckpointDamaged, match="no intact checkpoint"):
        load_latest_intact(tmp_path, *_parts())


def test_restore_is_exact_weights_optimizer_and_every_rng(tmp_path):
    trained = _train_and_save(tmp_path, 2)
    draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(123), np.random.seed(123), torch.manual_seed(123)  # scramble, then restore
    model, opt, sched = _parts()
    path, state = load_latest_intact(tmp_path, model, opt, sched)
    assert state["sampler"]["cursor"] == 2 and sched.last_epoch == 2
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == draws


def test_a_planted_pickle_in_a_partition_file_is_refused_despite_the_allowed_classes(tmp_path):
    """Partition files are read with DeepSpeed's loss-scaler, stage and slice classes allowed by name;
    anything else, such as a payload that would create a file, is still refused."""
    pytest.importorskip("deepspeed")
    from echoink.rl.checkpoint import Processes, read_checkpoint
    from echoink.rl.sharding import partition_safe_globals

    procs = Processes(sharded_optimizer=True, safe_globals=partition_safe_globals())
    model, opt, sched = _parts()
    ckpt = save_checkpoint(tmp_path, 1, model, opt, sched, {"sampler": {}}, procs=procs)
    assert read_checkpoint(ckpt, procs)["optimizer"].keys() == opt.state_dict().keys()  # loads when clean
    marker = tmp_path / "pwned"
    _replant(ckpt, "optimizer-rank0.pt", pickle.dumps({"state": _Planted(marker)}))
    with pytest.raises(CheckpointDamaged, match="optimizer-rank0.pt"):
        read_checkpoint(ckpt, procs)
    assert not marker.exists(), "loading a partition ran code"


def test_a_process_that_cannot_see_the_main_checkpoint_directory_says_why(tmp_path):
    """Process 1 on a node whose train.output_dir is not the main process's: one clear error."""
    from echoink.rl.checkpoint import Processes

    model, opt, sched = _parts()
    with pytest.raises(UserError, match="filesystem every node shares"):  # one line, not a bug
        save_checkpoint(tmp_path, 1, model, opt, sched, {}, procs=Processes(rank=1, world=2))
