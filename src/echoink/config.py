"""Configuration: nested dataclasses, one per concern, loaded from a YAML recipe plus dotted overrides.

Each field is documented once, here, by the string under it. Validation lives in ``__post_init__``
and names the offending field, so a bad recipe fails before any model is loaded.

>>> cfg = load_config(None, ["algo.beta=0.04", "rollout.num_generations=4"])
>>> cfg.algo.beta, cfg.rollout.num_generations
(0.04, 4)
>>> load_config(None, ["algo.bogus=1"])
Traceback (most recent call last):
...
echoink.config_sections.ConfigError: algo.bogus: unknown field; valid fields of algo: ...
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from .config_commands import EvalConfig, SFTConfig
from .config_sections import (
    AlgoConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RolloutConfig,
    TrainConfig,
)

__all__ = [
    "AlgoConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "RolloutConfig",
    "SFTConfig",
    "TrainConfig",
    "apply_override",
    "load_config",
    "load_recipe",
    "save_config",
]


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    def __post_init__(self) -> None:
        if self.train.eval_every and not self.data.val_path:
            raise ConfigError("train.eval_every: validation needs data.val_path")
        if self.train.keep_best and not self.train.eval_every:
            raise ConfigError("train.keep_best: needs train.eval_every > 0 (best by validation accuracy)")
        if self.algo.rollout_is_cap and self.rollout.engine != "vllm":
            raise ConfigError(
                "algo.rollout_is_cap: needs rollout.engine=vllm (the hf engine samples from the policy itself)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


log = logging.getLogger(__name__)

RETIRED_SECTIONS = {"demo": "the demo's knobs moved to the lab's recipes (echoink_lab)"}
"""Sections an older echoink's ``Config`` held: a recipe or a run's config.yaml that still has one loads,
the section ignored with a warning (``echoink demo`` reads its own through ``load_recipe``)."""


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false are bools. YAML 1.1 also reads no/yes/on/off as bools,
    which turned the documented ``train.mixed_precision: no`` into False and then failed validation."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


MAX_YAML_NODES = 100_000
"""Most values a recipe may expand to. Aliases are references, so a 1 KB "billion laughs" recipe
(each level a list of nine aliases to the one before) expands to 9^9 strings, and checking or printing
it never ends; a real recipe has a few hundred values."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """Values under ``node`` counting every alias as a copy; memoised, so linear in the file's nodes."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise ConfigError("the recipe holds a recursive YAML alias (a value that contains itself)")
    open_.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, memo, open_) for child in children)
    open_.discard(key)
    memo[key] = min(size, MAX_YAML_NODES + 1)  # capped: the sum cannot grow past the limit
    return memo[key]


def _yaml(text: str) -> Any:
    """YAML 1.2 booleans, and at most MAX_YAML_NODES values once aliases are expanded (ConfigError)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_YAML_NODES:
            raise ConfigError(
                f"the recipe expands to more than {MAX_YAML_NODES:,} values through YAML aliases "
                "(an alias bomb?); write the values out"
            )
        return loader.construct_document(node)
    except RecursionError:  # PyYAML composes recursively: thousands of nested brackets
        raise ConfigError("the recipe nests values too deeply to read") from None
    finally:
        loader.dispose()


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Turn a YAML value (or an override string parsed by YAML) into the field's declared type.

    Booleans are not numbers here (``max_steps: true`` is an error, not 1) and every float must be
    finite: a NaN weight or an infinite learning rate is refused by name, not discovered mid-run.
    ``null`` for a text field (a path) is the empty text these fields use for "none" (``data.val_path``).
    """
    if value is None and tp is str:
        return ""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], name)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, name)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got the boolean {value!r}")
    if tp is float:
        return _finite_float(value, name)
    if tp is str and isinstance(value, int | float):
        return str(value)
    if origin is dict and isinstance(value, dict):
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return {
            _coerce(k, key_tp, name): _coerce(v, value_tp, f"{name}.{k}") if value_tp is not Any else v
            for k, v in value.items()
        }
    if origin is list and isinstance(value, list):
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{name}[{i}]") if item_tp is not Any else v for i, v in enumerate(value)]
    check = origin or tp
    if isinstance(check, type) and not isinstance(value, check):
        raise ConfigError(f"{name}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    return value


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, str):
        # YAML 1.1 reads "2e-6" (no dot) as a string; users mean a number.
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not isinstance(value, int | float):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = _field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        where = prefix or "the recipe"
        raise ConfigError(
            f"{_join(prefix, unknown[0])}: unknown field; valid fields of {where}: {', '.join(hints)}"
        )
    kwargs = {k: _coerce(v, hints[k], _join(prefix, k)) for k, v in values.items()}
    return cls(**kwargs)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Apply one ``section.field=value`` override to a nested dict; the value is parsed as YAML."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.field=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    try:
        node[parts[-1]] = _yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: invalid YAML value{_yaml_where(err)}") from None
    except ConfigError as err:
        raise ConfigError(f"override {override!r}: {err}") from None


def load_config(path: str | Path | Traversable | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (or defaults when ``path`` is None), apply dotted overrides, validate.

    Values are checked here (types, ranges); names a registry resolves (rewards, templates, the GRPO
    core's variants) are checked by ``preflight.check_names``, which every command runs before it
    loads a model.
    """
    return load_recipe(path, overrides, {})[0]


def load_recipe(
    path: str | Path | Traversable | None, overrides: list[str] | None, sections: dict[str, type]
) -> tuple[Config, dict[str, Any]]:
    """A recipe that holds an echoink ``Config`` and a client's own sections (the lab's ``demo:``).

    Each section named in ``sections`` is split off and built as its dataclass (validated, by the same
    rules as ``Config``'s); the rest is the ``Config``. ``path`` may be package data
    (``importlib.resources.files(...) / "recipe.yaml"``). Overrides reach either part
    (``demo.seed=1``, ``train.lr=1e-5``).
    """
    tree: dict[str, Any] = {}
    if path is not None:
        tree = _read_recipe(Path(path) if isinstance(path, str) else path)
    for item in overrides or []:
        apply_override(tree, item)
    own = {
        name: _build(cls, _mapping(tree.pop(name, None) or {}, name), name) for name, cls in sections.items()
    }
    for name, why in RETIRED_SECTIONS.items():
        if tree.pop(name, None) is not None:
            log.warning("%s: section ignored (%s)", name, why)
    return _build(Config, tree, ""), own


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a mapping, got {type(value).__name__}")
    return value


def _read_recipe(path: Path | Traversable) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the recipe ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the recipe is not UTF-8 text") from None
    try:
        loaded = _yaml(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML{_yaml_where(err)}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    return loaded


def _yaml_where(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or ""
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
