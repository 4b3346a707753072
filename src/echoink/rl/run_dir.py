"""The run directory's record, checked on every start and resume, written only once the run is set up.

The record is what a run's numbers depend on besides its code: ``config.yaml`` (the recipe),
``inputs.json`` (the SHA-256 of each split file it reads: ``data.train_path``, and ``data.val_path``
when validating) and ``launch.json`` (processes, engine, ZeRO stage, device). A fresh run into a
directory that already holds a run (a record, metrics or checkpoints) is refused, and so is one into a
directory holding anything else (``outdir``): it used to cut the old metrics silently. A run that
never completed a step (no metrics or rollouts row, no checkpoint) is not protected: its failed start
would block the corrected command, so the next launch replaces it and says so in one line. ``--resume``
compares the record with what this launch would write: a difference that changes the trajectory (a
recipe field, a split's content swapped at the same path, another number of processes, which changes
the global batch) is refused, listed, unless ``allow_change``; then it is applied for real (the
optimiser and learning-rate schedule are rebuilt from the current step by :func:`apply_changes`) and
appended, with the step, to ``config_history.jsonl``. So the record always says what is running, and
the history from which step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bounded import FileFormatError, read_json, read_yaml
from ..config import Config, ConfigError, save_config
from ..data.avqa import split_file, split_fingerprint
from ..jsonl import read_jsonl
from ..outdir import OutputNotEmpty, check_output_dir
from .checkpoint import STEP_DIR, latest_checkpoint

log = logging.getLogger(__name__)

HISTORY, INPUTS, LAUNCH = "config_history.jsonl", "inputs.json", "launch.json"
RECORD = ("config.yaml", INPUTS, LAUNCH, "metrics.jsonl", "rollouts.jsonl", "checkpoints")
"""What a started run leaves in its directory; a fresh run refuses a directory holding any of it."""
# Fields that do not change what is computed: where and how often things are logged and kept.
HARMLESS = {
    "train.output_dir", "train.log_every", "train.rollouts_every", "train.rollouts_per_log",
    "train.save_every", "train.keep_checkpoints", "train.max_bad_steps", "train.threads",
}  # fmt: skip
HARMLESS_SECTIONS = ("eval.", "sft.", "demo.")
# Trajectory fields a resumed run cannot honestly take: the restored weights, RNG streams and
# sampler positions were made with the old values, so the "change" would silently not apply.
FIXED = ("model.", "train.seed", "train.mixed_precision", "data.train_path", "data.max_samples")
SCHEDULE = ("train.lr", "train.weight_decay", "train.warmup_steps", "train.lr_schedule", "train.max_steps")
LAUNCH_FIELDS = ("processes", "engine", "zero_stage", "device", "backend")
"""launch.json fields compared on resume (precision is the recipe's train.mixed_precision)."""

Change = tuple[str, Any, Any]  # (field, old, new)


@dataclass(frozen=True)
class RunRecord:
    """What a run directory records about the run besides its recipe (config.yaml): split
    fingerprints (inputs.json) and the launch (launch.json)."""

    inputs: dict[str, dict[str, str]]  # field ("data.train_path") -> {"file": split file, "sha256": hex}
    launch: dict[str, Any]

    @classmethod
    def of(cls, cfg: Config, launch: dict[str, Any]) -> RunRecord:
        """The record of ``cfg`` under ``launch`` (``distributed.launch_record``); hashes the splits."""
        return cls(input_fingerprints(cfg), launch)


def input_fingerprints(cfg: Config) -> dict[str, dict[str, str]]:
    """{field: {"file", "sha256"}} of each split file the run reads (validation's only when it runs)."""
    read = {"data.train_path": cfg.data.train_path}
    if cfg.data.val_path and cfg.train.eval_every:
        read["data.val_path"] = cfg.data.val_path
    return {name: {"file": str(split_file(p)), "sha256": split_fingerprint(p)} for name, p in read.items()}


def _flat(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, fields in tree.items()
        if isinstance(fields, dict)
        for key, value in fields.items()
    }


def config_changes(saved: dict[str, Any], cfg: Config) -> list[Change]:
    """Trajectory-changing differences between a saved config tree and ``cfg``, sorted by field.

    Fields missing from the saved tree (written by an older echoink) are not differences.
    """
    old, new = _flat(saved), _flat(cfg.to_dict())
    changes = []
    for name in sorted(new):
        if name in HARMLESS or name.startswith(HARMLESS_SECTIONS) or name not in old:
            continue
        if name == "train.max_steps" and cfg.train.lr_schedule == "constant":
            continue  # only the cosine schedule's shape depends on the run length
        if old[name] != new[name]:
            changes.append((name, old[name], new[name]))
    return changes


def record_changes(run_dir: Path, cfg: Config, record: RunRecord) -> list[Change]:
    """Differences between the record in ``run_dir`` and ``record``: recipe fields, then the content of
    each split (``data.train_path content``), then the launch (``launch.processes``). A part the
    directory does not hold (a run of an older echoink) has no differences."""
    saved = _read(run_dir / "config.yaml", read_yaml)
    changes = config_changes(saved, cfg) if saved else []
    inputs = _read(run_dir / INPUTS, read_json)
    for name, new in record.inputs.items():
        old = inputs.get(name, {}).get("sha256", new["sha256"])
        if old != new["sha256"]:  # the same path (a changed path is a recipe change), other bytes
            changes.append((f"{name} content", f"sha256 {old[:12]}", f"sha256 {new['sha256'][:12]}"))
    launch = _read(run_dir / LAUNCH, read_json)
    for key in LAUNCH_FIELDS:
        if key in launch and launch[key] != record.launch.get(key):
            changes.append((f"launch.{key}", launch[key], record.launch.get(key)))
    return changes


def _read(path: Path, parse) -> dict[str, Any]:
    """A record file through the bounded reader (a damaged one is a one-line FileFormatError)."""
    value = (parse(path) or {}) if path.exists() else {}
    if not isinstance(value, dict):
        raise FileFormatError(f"{path}: not a run record (a mapping expected); start a new run")
    return value


def _has_rows(path: Path) -> bool:
    try:
        return path.exists() and bool(read_jsonl(path))
    except ValueError:  # damaged: not ours to judge empty, so it stays protected
        return True


def never_stepped(run_dir: Path) -> bool:
    """No checkpoint and no complete row in metrics.jsonl or rollouts.jsonl: a start that failed
    before its first step (a refused engine, memory), with nothing a resume could continue. Anything
    under checkpoints/ (even an interrupted write), final/ or best/ keeps the run protected."""
    if any((run_dir / name).exists() for name in ("final", "best")):
        return False
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        return False
    return not any(_has_rows(run_dir / name) for name in ("metrics.jsonl", "rollouts.jsonl"))


def _checkpoint_step(run_dir: Path) -> int | None:
    path = latest_checkpoint(run_dir)
    return None if path is None else int(STEP_DIR.match(path.name).group(1))


def check_run_dir(cfg: Config, record: RunRecord, resume: bool, allow_change: bool = False) -> list[Change]:
    """Check the run directory against ``record``; returns the changes to apply. Writes nothing.

    Raises FileExistsError (a fresh run over a run, or over other files) or ConfigError (refused
    changes). Every process calls it before the main one writes (:func:`write_record`).
    """
    run_dir = Path(cfg.train.output_dir)
    found = [name for name in RECORD if (run_dir / name).exists()]
    if found and never_stepped(run_dir):
        # Its record would only block the corrected command ("pass --resume", then "differs"): replace it.
        check_output_dir(run_dir, "train.output_dir", "train", own=RECORD)
        if os.environ.get("RANK", "0") == "0":
            log.warning(
                "train.output_dir: %s holds a run that never completed a step (no metrics row, no "
                "checkpoint); replacing its record", run_dir
            )  # fmt: skip
        return []
    if found and not resume:
        raise OutputNotEmpty(
            f"train.output_dir: {run_dir} already holds a run ({', '.join(found)}); pass --resume to "
            "continue it, or choose another train.output_dir"
        )
    check_output_dir(run_dir, "train.output_dir", "train", own=RECORD if resume else ())
    step = _checkpoint_step(run_dir)
    if step is not None and resume and cfg.train.max_steps < step:
        raise ConfigError(
            f"train.max_steps: {cfg.train.max_steps} is below the step of the run's newest checkpoint "
            f"({step}); a resumed run cannot end before it started"
        )
    changes = record_changes(run_dir, cfg, record) if resume else []
    _refuse(changes, allow_change, run_dir)
    return changes


def write_record(run_dir: Path, cfg: Config, record: RunRecord, changes: list[Change], step: int) -> None:
    """Write the record (main process, once the run is set up) and append ``changes`` at ``step`` to
    the history."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if step == 0 and never_stepped(run_dir):  # a replaced failed start: none of its lines carry over
        for name in ("metrics.jsonl", "rollouts.jsonl", HISTORY):
            (run_dir / name).unlink(missing_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / INPUTS).write_text(json.dumps(record.inputs, indent=1) + "\n")
    (run_dir / LAUNCH).write_text(json.dumps(record.launch, indent=1) + "\n")
    if changes:
        entry = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        entry["changes"] = {name: [old, new] for name, old, new in changes}
        with open(run_dir / HISTORY, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    for name, old, new in changes:
        log.warning("resume at step %s: %s changed from %r to %r", step, name, old, new)


def _is_fixed(name: str) -> bool:
    return any(name == f or (f.endswith(".") and name.startswith(f)) for f in FIXED)


def _refuse(changes: list[Change], allow_change: bool, run_dir: Path) -> None:
    listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changes)
    fixed = [c for c in changes if _is_fixed(c[0])]
    if fixed:
        names = ", ".join(c[0] for c in fixed)
        raise ConfigError(
            f"{run_dir}/config.yaml: a resumed run cannot change {names} ({listed}); start a new run"
        )
    if changes and not allow_change:
        raise ConfigError(
            f"{run_dir}: the run's record (config.yaml, inputs.json, launch.json) differs from this launch in "
            f"what changes training ({listed}); resume with the recorded values, or pass "
            "--allow-config-change to apply them (recorded in config_history.jsonl)"
        )


def apply_changes(optimizer: Any, scheduler: Any, cfg: Config, changes: list[Change]) -> None:
    """Make restored optimiser and schedule states follow ``cfg`` from the current step on.

    ``apply_checkpoint`` restores the old run's peak LR (``initial_lr``, the scheduler's ``base_lrs``)
    and weight decay; the schedule's shape (warm-up, length, kind) is already ``cfg``'s, since the
    scheduler object was built from it. Here the peak and decay are replaced and the current LR is
    recomputed, so the next update uses the new schedule at the restored step.
    """
    if not any(name in SCHEDULE for name, _, _ in changes):
        return
    t = cfg.train
    for group in optimizer.param_groups:
        group["initial_lr"], group["weight_decay"] = t.lr, t.weight_decay
    scheduler.base_lrs = [t.lr for _ in optimizer.param_groups]
    step = scheduler.last_epoch
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports (and metrics.jsonl logs)
