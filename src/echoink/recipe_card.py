"""The recipe a model was trained with, written next to its weights so evaluation can follow it.

``final/`` of a GRPO or SFT run gets ``echoink_recipe.json``: the prompt template, every setting that
shapes an input (audio cut, image budget, video frame rate, frame count and frame budget) and the
completion length the model learned with, plus the whole config. ``echoink eval --model DIR`` takes
those as its defaults (a flag still wins), so the README's plain command evaluates a run the way it
was trained rather than at the evaluator's own defaults.

>>> eval_settings({"template": None, "max_new_tokens": 64}, {"template": "direct", "max_new_tokens": 768})
({'template': 'direct', 'max_new_tokens': 64}, {'template': 'training recipe', 'max_new_tokens': 'flag'})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .bounded import read_json, read_json_object
from .config import Config, DataConfig
from .errors import UserError

RECIPE_FILE = "echoink_recipe.json"

_DATA = DataConfig()
EVAL_DEFAULTS: dict[str, Any] = {
    "template": "reasoning",
    "max_new_tokens": 256,
    "max_audio_seconds": None,
    "max_pixels": 224 * 224,
    "video_fps": _DATA.video_fps,
    "max_frames": _DATA.max_frames,
    "max_video_pixels": _DATA.max_video_pixels,
}
"""What ``echoink eval`` uses for a model without a recipe and no flag. Every key but
``max_new_tokens`` is a ``data.*`` field of the recipe, recorded by :func:`write_recipe` under the same name."""
FOLLOWED_DATA_FIELDS = tuple(k for k in EVAL_DEFAULTS if k != "max_new_tokens")


def write_recipe(cfg: Config, model_dir: str | Path, stage: str) -> Path:
    """Write ``model_dir/echoink_recipe.json`` for a model trained by ``stage`` ("grpo" or "sft") under ``cfg``.

    SFT records no completion length (it never generated); its model is evaluated at the default.
    """
    follow = {key: getattr(cfg.data, key) for key in FOLLOWED_DATA_FIELDS}
    if stage == "grpo":
        follow["max_new_tokens"] = cfg.rollout.max_new_tokens
    path = Path(model_dir) / RECIPE_FILE
    card = {"stage": stage, "eval": follow, "config": cfg.to_dict(), "splits": split_record(cfg)}
    path.write_text(json.dumps(card, indent=1))
    return path


def split_record(cfg: Config) -> dict[str, dict[str, str]]:
    """{field: {"path" as the recipe wrote it, "absolute", "sha256"}} of each split the run read: the
    config keeps paths relative to the training's working directory, which an eval run elsewhere
    (the suite's overlap check) cannot resolve."""
    from .data.avqa import split_fingerprint

    fields = {"data.train_path": cfg.data.train_path, "data.val_path": cfg.data.val_path}
    return {
        field: {"path": str(p), "absolute": str(Path(p).resolve()), "sha256": split_fingerprint(p)}
        for field, p in fields.items()
        if p and Path(p).exists()
    }


def read_recipe(model_dir: str | Path) -> dict[str, Any]:
    """The evaluation settings a model directory's recipe asks for ({} when it has none)."""
    path = Path(model_dir) / RECIPE_FILE
    if not path.is_file():
        return {}
    try:
        follow = dict(read_json(path)["eval"])
        # The data fields pass the recipe's own checks (a hand-edited video_fps of -1 is named here).
        DataConfig(**{k: follow[k] for k in FOLLOWED_DATA_FIELDS if k in follow})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: not an echoink recipe ({err})") from None
    return follow


def eval_settings(flags: dict[str, Any], recipe: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(value, source) per setting in ``flags``: the flag when given (not None), else the recipe, else the default."""
    values, sources = {}, {}
    for key, flag in flags.items():
        if flag is not None:
            values[key], sources[key] = flag, "flag"
        elif key in recipe:
            values[key], sources[key] = recipe[key], "training recipe"
        else:
            values[key], sources[key] = EVAL_DEFAULTS[key], "default"
    return values, sources


def evaluate_arguments(
    flags: dict[str, Any], model_dir: str | Path, desync_seconds: float | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(keyword arguments for ``eval.evaluate``, the source of each setting) for ``echoink eval``.

    ``flags`` holds every key of EVAL_DEFAULTS (None: not given). One place for ``--data`` and
    ``--suite``, so both follow the recipe the same way; ValueError names an unknown template.
    """
    from .data import TEMPLATES
    from .data.messages import VideoSettings

    used, sources = eval_settings(flags, read_recipe(model_dir))
    if used["max_audio_seconds"] == 0:  # an explicit "no cut", overriding the recipe's
        used["max_audio_seconds"] = None
    if used["template"] not in TEMPLATES:
        raise UserError(f"unknown template {used['template']!r}; valid: {', '.join(TEMPLATES.names())}")
    video = VideoSettings(
        used.pop("video_fps"), used.pop("max_frames"), used.pop("max_video_pixels"), desync_seconds
    )
    return {**used, "video": video}, sources


def record_sources(summary_path: str | Path, sources: dict[str, str]) -> None:
    """Add where each evaluation setting came from (flag, training recipe, default) to a summary.json."""
    path = Path(summary_path)
    summary = read_json_object(path, "an echoink summary.json")
    summary["settings_source"] = sources
    path.write_text(json.dumps(summary, indent=1))


def training_split(model_dir: str | Path) -> str | None:
    """The training split (``data.train_path``) a model directory's recipe card names, or None: its
    absolute path when the card records one that exists (a card written before: the path as given)."""
    path = Path(model_dir) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        card = read_json(path)
        absolute = (card.get("splits") or {}).get("data.train_path", {}).get("absolute")
        if absolute and Path(absolute).exists():
            return absolute
        return card["config"]["data"]["train_path"] or None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
