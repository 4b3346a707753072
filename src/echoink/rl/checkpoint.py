"""Checkpoints written atomically (temp dir + rename) and read back for an exact resume.

A checkpoint directory ``step-000012/`` holds: the model (safetensors, or the LoRA adapter),
``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (python, numpy, torch CPU and CUDA states) and
``trainer_state.json`` (step, sampler position, counters). It is written to a hidden temp
directory and renamed into place only when complete, so a kill during the write leaves the previous
checkpoint as the newest complete one; pruning renames a checkpoint out of sight before deleting it,
so a kill while pruning never leaves a half-deleted one visible.

Nothing read back runs code: weights are safetensors, state is JSON, and the ``.pt`` files are
read with ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts only; the RNG
states are stored in that form). ``manifest.json`` records every file's size and SHA-256; a file that
does not match, or does not load, makes the checkpoint damaged, and :func:`load_latest_intact` falls
back to the newest intact one with a warning naming the bad file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")
WEIGHTS = "trainable.safetensors"
MANIFEST = "manifest.json"


class CheckpointDamaged(ValueError):
    """A checkpoint file is missing, altered or does not load safely; the message names it."""


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors, numbers and lists (loadable with weights_only)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), gauss))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(ckpt: Path) -> None:
    files = {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(ckpt.iterdir())}
    (ckpt / MANIFEST).write_text(json.dumps(files, indent=1))


def verify(ckpt: Path) -> None:
    """Raise CheckpointDamaged unless every file the manifest lists is there, of its size and hash."""
    try:
        files = json.loads((ckpt / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointDamaged(f"{ckpt / MANIFEST}: unreadable manifest ({err})") from None
    for name, want in files.items():
        f = ckpt / name
        if not f.is_file() or f.stat().st_size != want["bytes"] or _sha256(f) != want["sha256"]:
            raise CheckpointDamaged(f"{f}: missing or altered (size or SHA-256 differs from the manifest)")


def _safe_load(path: Path) -> Any:
    try:
        return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise CheckpointDamaged(f"{path}: does not load as plain data ({str(err).splitlines()[0]})") from None


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
    write_manifest(tmp)
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
    """Verify, then restore weights, optimizer, scheduler and RNG states; return the trainer state.

    Raises CheckpointDamaged (nothing restored) when a file is altered or does not load as plain data.
    """
    verify(path)
    loaded = {name: _safe_load(path / f"{name}.pt") for name in ("optimizer", "scheduler", "rng")}
    weights = load_file(str(path / WEIGHTS))
    params = dict(model.named_parameters())
    missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(weights))
    if missing:
        raise ValueError(f"{path}: checkpoint lacks trainable parameters, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    set_rng_state(loaded["rng"])
    return json.loads((path / "trainer_state.json").read_text())


def load_latest_intact(run_dir: Path, model, optimizer, scheduler) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest checkpoint that verifies; a damaged newer one is skipped with a warning.

    None when there is no checkpoint; CheckpointDamaged when there are some and none is intact.
    """
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            return path, load_checkpoint(path, model, optimizer, scheduler)
        except CheckpointDamaged as err:
            log.warning("checkpoint %s is damaged, trying the previous one: %s", path.name, err)
    if found:
        raise CheckpointDamaged(f"{run_dir / 'checkpoints'}: no intact checkpoint among {len(found)}")
    return None
