"""Experiment trackers (TensorBoard, W&B, Trackio) through accelerate, beside metrics.jsonl.

metrics.jsonl stays the source of truth (resume cuts it back to the checkpoint; TensorBoard is told
to hide the events of the steps cut, other trackers keep what they were sent). Every numeric metric of a logged step goes to each tracker in ``train.report_to``,
validation ones included; the flattened recipe is stored as the run's hyperparameters.
TensorBoard writes under ``RUN_DIR/echoink`` (``tensorboard --logdir RUN_DIR``); W&B honours
``WANDB_MODE=offline``.

>>> flat_config({"train": {"lr": 1e-6, "report_to": ["tensorboard"]}, "data": {"max_audio_seconds": None}})
{'train.lr': 1e-06, 'train.report_to': "['tensorboard']", 'data.max_audio_seconds': 'None'}
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ..config import Config
from ..errors import UserError

PROJECT = "echoink"
# The import each tracker needs (accelerate's TensorBoard tracker also takes tensorboardX).
_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",)}
TRACKERS = tuple(_MODULES)


def tracker_kwargs(cfg: Config) -> dict[str, Any]:
    """Accelerator(...) arguments for ``train.report_to`` (nothing when it is empty).

    A tracker whose package is missing is an error here: accelerate would only warn and drop it.
    """
    unknown = [t for t in cfg.train.report_to if t not in _MODULES]
    if unknown:
        raise UserError(f"train.report_to: unknown tracker(s) {unknown}; valid: {', '.join(TRACKERS)}")
    missing = [t for t in cfg.train.report_to if not any(importlib.util.find_spec(m) for m in _MODULES[t])]
    if missing:
        raise UserError(
            f"train.report_to: {', '.join(missing)} not installed (pip install {' '.join(missing)})"
        )
    if not cfg.train.report_to:
        return {}
    return {"log_with": list(cfg.train.report_to), "project_dir": str(Path(cfg.train.output_dir))}


def flat_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys, values a tracker accepts as hyperparameters (numbers, bools, strings; the rest as text)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            out.update(flat_config(value, name + "."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def start_trackers(accelerator: Accelerator, cfg: Config, resumed_at: int | None = None) -> None:
    """Start ``train.report_to``'s trackers; a run resumed at step S hides TensorBoard's events of steps
    after S (``purge_step``), as resume cuts metrics.jsonl, so a step run twice is shown once."""
    if cfg.train.report_to:
        init = {"tensorboard": {"purge_step": resumed_at + 1}} if resumed_at is not None else {}
        accelerator.init_trackers(PROJECT, config=flat_config(cfg.to_dict()), init_kwargs=init)


def log_to_trackers(accelerator: Accelerator, step: int, metrics: dict[str, Any]) -> None:
    """Send a step's finite numeric metrics (no-op without trackers; only the main process writes)."""
    if accelerator.trackers:
        numbers = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        accelerator.log(numbers, step=step)


def stop_trackers(accelerator: Accelerator) -> None:
    """Flush and close the trackers; not ``end_training``, which also destroys the process group."""
    for tracker in accelerator.trackers:
        tracker.finish()
