"""The run directory before training starts: refuse what would misrecord, then write config.yaml.

A fresh run into a directory that holds checkpoints is refused before anything is written (it used to
rewrite config.yaml first). ``--resume`` compares the recipe with the run's saved config.yaml: a
difference in a field that changes the trajectory is refused, listed, unless ``allow_change``; then it
is applied for real (the optimiser and learning-rate schedule are rebuilt from the current step by
:func:`apply_changes`) and appended, with the step, to ``config_history.jsonl``. So config.yaml is
always what is running, and the history says from which step.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, ConfigError, save_config
from .checkpoint import STEP_DIR, latest_checkpoint

log = logging.getLogger(__name__)

HISTORY = "config_history.jsonl"
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

Change = tuple[str, Any, Any]  # (field, old, new)


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


def _checkpoint_step(run_dir: Path) -> int | None:
    path = latest_checkpoint(run_dir)
    return None if path is None else int(STEP_DIR.match(path.name).group(1))


def prepare_run_dir(cfg: Config, resume: bool, allow_change: bool = False, main: bool = True) -> list[Change]:
    """Check the run directory against ``cfg`` and write config.yaml; returns the changes to apply.

    Raises FileExistsError (fresh run over checkpoints) or ConfigError (refused changes) before
    writing anything.
    """
    run_dir = Path(cfg.train.output_dir)
    step = _checkpoint_step(run_dir)
    if step is not None and not resume:
        raise FileExistsError(
            f"train.output_dir: {run_dir} already holds checkpoints; pass --resume to continue it "
            "or choose another train.output_dir"
        )
    if step is not None and resume and cfg.train.max_steps < step:
        raise ConfigError(
            f"train.max_steps: {cfg.train.max_steps} is below the step of the run's newest checkpoint "
            f"({step}); a resumed run cannot end before it started"
        )
    changes: list[Change] = []
    saved_path = run_dir / "config.yaml"
    if step is not None and saved_path.exists():
        changes = config_changes(yaml.safe_load(saved_path.read_text()) or {}, cfg)
        _refuse(changes, allow_change, run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, saved_path)
        if changes:
            record = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            record["changes"] = {name: [old, new] for name, old, new in changes}
            with open(run_dir / HISTORY, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
    for name, old, new in changes:
        log.warning("resume at step %s: %s changed from %r to %r", step, name, old, new)
    return changes


def _refuse(changes: list[Change], allow_change: bool, run_dir: Path) -> None:
    listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changes)
    fixed = [c for c in changes if c[0].startswith(FIXED)]
    if fixed:
        names = ", ".join(c[0] for c in fixed)
        raise ConfigError(
            f"{run_dir}/config.yaml: a resumed run cannot change {names} ({listed}); start a new run"
        )
    if changes and not allow_change:
        raise ConfigError(
            f"{run_dir}/config.yaml: the recipe differs from the run's saved config in fields that change "
            f"training ({listed}); resume with the saved values, or pass --allow-config-change to apply them"
        )


def apply_changes(optimizer: Any, scheduler: Any, cfg: Config, changes: list[Change]) -> None:
    """Make restored optimiser and schedule states follow ``cfg`` from the current step on.

    ``load_checkpoint`` restores the old run's peak LR (``initial_lr``, the scheduler's ``base_lrs``)
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
