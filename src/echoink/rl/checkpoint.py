"""Checkpoints written atomically (temp dir + rename) and read back for an exact resume.

A checkpoint directory ``step-000012/`` holds: the trainable weights (``trainable.safetensors``, full
weights or only the LoRA adapters; gathered from every process under ZeRO-3), ``optimizer.pt`` (or,
when DeepSpeed partitions the optimiser, one ``optimizer-rank{r}.pt`` per process: its moments and
under ZeRO-3 its fp32 master weights), ``scheduler.pt``, ``rng.pt`` (python, numpy, torch CPU and CUDA
states; ``rng-rank{r}.pt`` for process r > 0) and ``trainer_state.json`` (step, sampler position,
counters, how many processes wrote it). Every process writes its own files into one hidden temp
directory; the main process writes the rest, the manifest, and renames it. It is written to a hidden temp
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

import json
import logging
import os
import pickle
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..bounded import read_json_object
from ..errors import UserError
from ..filehash import sha256_file as _sha256

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d+)$")
WEIGHTS = "trainable.safetensors"
MANIFEST = "manifest.json"
PER_PROCESS = re.compile(r"^(rng|optimizer)-rank\d+\.pt$")  # one process's file; others skip it


class CheckpointDamaged(UserError):
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


def write_manifest(ckpt: Path) -> None:
    files = {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(ckpt.iterdir())}
    (ckpt / MANIFEST).write_text(json.dumps(files, indent=1))


def verify(ckpt: Path, mine: Callable[[str], bool] = lambda name: True) -> None:
    """Raise CheckpointDamaged unless every file the manifest lists (that ``mine`` selects) is there,
    of its size and hash."""
    try:
        files = read_json_object(ckpt / MANIFEST, "a checkpoint manifest")  # nesting bounded
    except ValueError as err:
        raise CheckpointDamaged(f"{ckpt / MANIFEST}: unreadable manifest ({err})") from None
    for name, want in files.items():
        if not mine(name):
            continue
        f = ckpt / name
        if not f.is_file() or f.stat().st_size != want["bytes"] or _sha256(f) != want["sha256"]:
            raise CheckpointDamaged(f"{f}: missing or altered (size or SHA-256 differs from the manifest)")


@dataclass
class Processes:
    """This process's part in a checkpoint. One process (the default): it writes and reads everything.

    Several: each writes and reads its own RNG state (and, ``sharded_optimizer``, its optimiser
    partition); the main one (rank 0) writes the rest. ``barrier`` waits for all; ``all_agree(ok)`` is
    True on every process only when ``ok`` is True on every process (so all fall back together).
    ``load_optimizer(optimizer, state)`` restores a partition (DeepSpeed takes one state per process);
    ``weights_in_optimizer``: the partition holds the master weights (ZeRO-3), so the weights file is
    not copied back into the (partitioned) parameters. ``safe_globals``: classes a partition holds
    besides tensors and containers, allowed by name to ``torch.load(weights_only=True)``.
    """

    rank: int = 0
    world: int = 1
    sharded_optimizer: bool = False
    weights_in_optimizer: bool = False
    barrier: Callable[[], None] = lambda: None
    all_agree: Callable[[bool], bool] = lambda ok: ok
    load_optimizer: Callable[[Any, Any], None] | None = None
    safe_globals: list[type] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rng_file(self) -> str:
        return "rng.pt" if self.rank == 0 else f"rng-rank{self.rank}.pt"

    def optimizer_file(self) -> str:
        return f"optimizer-rank{self.rank}.pt" if self.sharded_optimizer else "optimizer.pt"


ONE = Processes()


def _safe_load(path: Path, allowed: list[type] | None = None) -> Any:
    try:
        with torch.serialization.safe_globals(allowed or []):
            return torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise CheckpointDamaged(f"{path}: does not load as plain data ({str(err).splitlines()[0]})") from None


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter that trains (full weights, or only the LoRA adapters), by name."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def _fsync_all(folder: Path, names: list[str] | None = None) -> None:
    for f in folder.iterdir() if names is None else (folder / n for n in names):
        with open(f, "rb") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    keep: int = 2,
    weights: dict[str, torch.Tensor] | None = None,
    procs: Processes = ONE,
) -> Path:
    """Write ``run_dir/checkpoints/step-N`` atomically and prune to the newest ``keep``.

    Every process calls it. ``weights``: the trainable weights when the model's own are partitioned
    (gathered on the main process; ignored elsewhere), else ``trainable_state(model)``.
    """
    root = run_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    if procs.main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in list(root.glob(".del-*")) + list(root.glob(".tmp-*")):  # left by a kill
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    procs.barrier()
    if not tmp.is_dir():  # created by the main process: another node without the shared filesystem
        raise UserError(
            f"{tmp}: process {procs.rank} cannot see the checkpoint directory the main process created; "
            "train.output_dir must be on a filesystem every node shares"
        )
    mine = [procs.rng_file()]
    torch.save(rng_state(), tmp / procs.rng_file())
    if procs.sharded_optimizer:
        torch.save(optimizer.state_dict(), tmp / procs.optimizer_file())
        mine.append(procs.optimizer_file())
    _fsync_all(tmp, mine)
    procs.barrier()
    if procs.main:
        save_file(weights if weights is not None else trainable_state(model), str(tmp / WEIGHTS))
        if not procs.sharded_optimizer:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        state = {
            "step": step,
            "processes": procs.world,
            "optimizer_partitioned": procs.sharded_optimizer,
            **trainer_state,
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
        write_manifest(tmp)
        _fsync_all(tmp)
        if final.exists():
            _remove(final)
        os.rename(tmp, final)
        for old in list_checkpoints(run_dir)[:-keep]:
            _remove(old)
    procs.barrier()
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


def read_checkpoint(path: Path, procs: Processes = ONE) -> dict[str, Any]:
    """Verify and load (without running code) what this process restores from ``path``.

    Raises CheckpointDamaged when a file is missing, altered or not plain data, or the checkpoint was
    written by a different number of processes than hold partitions now.
    """
    # Each process checks what it reads; the main one also every other shared file (so a damaged
    # weights file still makes all fall back, while 8 processes do not all hash 15 GB of weights).
    rng = procs.rng_file() if (path / procs.rng_file()).exists() else "rng.pt"  # written by fewer: rank 0's
    reads = {"trainer_state.json", "scheduler.pt", rng, procs.optimizer_file()}
    if not procs.weights_in_optimizer:
        reads.add(WEIGHTS)
    verify(path, lambda name: name in reads or (procs.main and not PER_PROCESS.match(name)))
    state = read_json_object(path / "trainer_state.json", "a trainer state")
    written_by, partitioned = int(state.get("processes", 1)), bool(state.get("optimizer_partitioned"))
    if partitioned != procs.sharded_optimizer:
        how = {True: "partitioned by DeepSpeed", False: "whole (one process or DDP)"}
        raise UserError(
            f"{path}: its optimiser state is {how[partitioned]} but this launch's is "
            f"{how[procs.sharded_optimizer]}; resume with the kind of launch that wrote it"
        )
    if partitioned and written_by != procs.world:
        raise UserError(
            f"{path}: written by {written_by} processes, each with its optimiser partition; "
            f"resume with {written_by} processes, not {procs.world}"
        )
    loaded = {
        "trainer_state": state,
        "optimizer": _safe_load(path / procs.optimizer_file(), procs.safe_globals),
        "scheduler": _safe_load(path / "scheduler.pt"),
        "rng": _safe_load(path / rng),
        "weights": None if procs.weights_in_optimizer else load_file(str(path / WEIGHTS)),
    }
    return loaded


def apply_checkpoint(
    path: Path, loaded: dict[str, Any], model: torch.nn.Module, optimizer, scheduler, procs: Processes = ONE
) -> dict[str, Any]:
    """Restore weights, optimiser, scheduler and RNG from :func:`read_checkpoint`; the trainer state."""
    if loaded["weights"] is not None:
        params = dict(model.named_parameters())
        missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(loaded["weights"]))
        if missing:
            raise CheckpointDamaged(f"{path}: checkpoint lacks trainable parameters, e.g. {missing[:3]}")
        with torch.no_grad():
            for name, value in loaded["weights"].items():
                params[name].copy_(value)
    if procs.load_optimizer is not None:
        procs.load_optimizer(optimizer, loaded["optimizer"])
    else:
        optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    set_rng_state(loaded["rng"])
    return loaded["trainer_state"]


def load_latest_intact(
    run_dir: Path, model, optimizer, scheduler, procs: Processes = ONE
) -> tuple[Path, dict[str, Any]] | None:
    """Restore the newest checkpoint that verifies on every process; a damaged newer one is skipped
    with a warning naming the bad file.

    None when there is no checkpoint; CheckpointDamaged when there are some and none is intact.
    """
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            loaded = read_checkpoint(path, procs)
        except CheckpointDamaged as err:
            loaded = None
            log.warning("checkpoint %s is damaged, trying the previous one: %s", path.name, err)
        if procs.all_agree(loaded is not None):
            return path, apply_checkpoint(path, loaded, model, optimizer, scheduler, procs)
        if loaded is not None:
            log.warning("checkpoint %s is damaged on another process, trying the previous one", path.name)
    if found:
        raise CheckpointDamaged(f"{run_dir / 'checkpoints'}: no intact checkpoint among {len(found)}")
    return None
