"""Check every name in a recipe that a registry resolves, when the recipe loads.

Reward names, prompt templates, loss aggregations and KL estimators are otherwise looked up only at
the first rollout or loss, after the model has loaded (minutes on a 7B). Each check asks the registry
itself, so the list of valid names in the error cannot go stale.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config_sections import ConfigError


def check_names(cfg: Any) -> None:
    """Raise ConfigError naming the field of the first unknown name in ``cfg`` (a ``Config``)."""
    from .data.prompts import TEMPLATES
    from .rl.algos import AGG_MODES, KL_KINDS

    _one_of(cfg.data.template, TEMPLATES.names(), "data.template", "prompt template")
    _one_of(cfg.eval.template, TEMPLATES.names(), "eval.template", "prompt template")
    _one_of(cfg.algo.loss_agg, list(AGG_MODES), "algo.loss_agg", "loss aggregation")
    _one_of(cfg.algo.kl_estimator, list(KL_KINDS), "algo.kl_estimator", "KL estimator")
    for name in cfg.algo.rewards:
        check_reward_name(name)


def _one_of(value: str, valid: list[str], field: str, kind: str) -> None:
    if value not in valid:
        raise ConfigError(f"{field}: unknown {kind} {value!r}; valid: {', '.join(valid)}")


def check_reward_name(name: str) -> None:
    """A registered reward, or ``package.module:function`` naming a callable that imports."""
    from .rl.rewards import REWARDS

    field = f"algo.rewards.{name}"
    if name in REWARDS:
        return
    if ":" not in name:
        raise ConfigError(
            f"{field}: unknown reward {name!r}; valid: {', '.join(REWARDS.names())} "
            "or 'package.module:function'"
        )
    module, _, attr = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{field}: cannot import the reward ({err})") from None
    if not callable(fn):
        raise ConfigError(f"{field}: {name} is not a function")
