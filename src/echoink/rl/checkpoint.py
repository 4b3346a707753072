"""Checkpoints written atomically (temp dir + rename) and read back for an exact resume.

A checkpoint directory ``step-000012/`` holds: the model (safetensors, or the LoRA adapter),
``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (python, numpy, torch CPU and CUDA states) and
``trainer_state.json`` (step, sampler position, counters). It is written to a hidden temp
directory and renamed into place only when complete, so a kill during the write leaves the previous
checkpoint as the newest complete one; pruning renames a checkpoint out of sight before deleting it,
so a kill while pruning never leaves a half-deleted one visible.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STEP_DIR = re.compile(r"^step-(\d+)$")
WEIGHTS = "trainable.safetensors"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that trains (full weights, or only the LoRA adapters), by name."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``run_dir/checkpoints/step-N`` atomically and prune to the newest ``keep``."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".del-*"):  # hidden by a deletion that a kill interrupted
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / WEIGHTS))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **trainer_state}, indent=1))
    for f in tmp.iterdir():  # data on disk before the rename makes it visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        _remove(final)
    os.rename(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        _remove(old)
    return final


def _remove(ckpt: Path) -> None:
    """Delete a checkpoint so that a kill midway never leaves a visible, half-deleted one: hide it
    first (one atomic rename out of ``list_checkpoints``' sight), then delete the hidden copy."""
    hidden = ckpt.with_name(f".del-{ckpt.name}-{os.getpid()}")
    os.rename(ckpt, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs of interrupted writes are ignored)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG states; return the trainer state."""
    weights = load_file(str(path / WEIGHTS))
    params = dict(model.named_parameters())
    missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(weights))
    if missing:
        raise ValueError(f"{path}: checkpoint lacks trainable parameters, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "trainer_state.json").read_text())
