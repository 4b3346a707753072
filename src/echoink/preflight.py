"""Checks of the names and files a command will use, made before any model loads or anything is written.

``check_names`` resolves every name of a recipe against the registry that owns it (prompt templates,
rewards, the GRPO core's estimators, losses and aggregations, sharing modes, trackers), so the valid
names in an error come from the registry itself and are written once. It runs here, above every
layer, not inside ``load_config``: loading a recipe must not import the training code.

Each failure is a ``ConfigError`` whose message starts with the field or option that named the
path, so the CLI prints one ``error: <field>: <reason>`` line instead of a loader's traceback (a
model directory without tokenizer.json otherwise surfaces as "Image features and image tokens do
not match", minutes later).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bounded import read_json, read_json_object
from .config_sections import ConfigError

ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json")


def check_names(cfg: Any) -> None:
    """Raise ConfigError naming the field of the first unknown name in ``cfg`` (a ``Config``)."""
    from .data.prompts import TEMPLATES
    from .model.passes import SHARING_MODES
    from .rl.algos import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, LOSS_AGGREGATIONS, POLICY_LOSSES
    from .rl.credit import ADVANTAGE_WEIGHTINGS, CREDIT_SPANS
    from .rl.trackers import TRACKERS
    from .scoring.rewards import register_rewards

    algo = cfg.algo
    for value, valid, field, kind in [
        (cfg.data.template, TEMPLATES.names(), "data.template", "prompt template"),
        (cfg.eval.template, TEMPLATES.names(), "eval.template", "prompt template"),
        (cfg.rollout.sharing, list(SHARING_MODES), "rollout.sharing", "sharing mode"),
        (algo.scale_rewards, ADVANTAGE_ESTIMATORS.names(), "algo.scale_rewards", "advantage estimator"),
        (algo.kl_estimator, KL_ESTIMATORS.names(), "algo.kl_estimator", "KL estimator"),
        (
            algo.importance_sampling_level,
            POLICY_LOSSES.names(),
            "algo.importance_sampling_level",
            "policy loss",
        ),
        (algo.loss_agg, LOSS_AGGREGATIONS.names(), "algo.loss_agg", "loss aggregation"),
        (algo.credit_span, CREDIT_SPANS.names(), "algo.credit_span", "credit span"),
        (algo.credit_weighting, ADVANTAGE_WEIGHTINGS.names(), "algo.credit_weighting", "credit weighting"),
        *((t, list(TRACKERS), "train.report_to", "tracker") for t in cfg.train.report_to),
    ]:
        if value not in valid:
            raise ConfigError(f"{field}: unknown {kind} {value!r}; valid: {', '.join(valid)}")
    register_rewards(algo.rewards)


def check_split_file(path: str | Path, field: str) -> Path:
    """``path`` is a readable file, or a split directory holding one (AVQA-R1-6K's ``AVQA_R1/train``)."""
    from .data.avqa import split_file
    from .data.schema import RowError

    if not str(path):
        raise ConfigError(f"{field}: no split given")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{field}: {p} does not exist")
    if p.is_dir():
        try:
            p = split_file(p)
        except RowError as err:
            raise ConfigError(f"{field}: {err}") from None
    if not p.is_file():
        raise ConfigError(f"{field}: {p} is not a file")
    return p


def check_model_dir(path: str | Path, field: str) -> Path:
    """``path`` holds a loadable model: config.json, weights and tokenizer.json (or a LoRA adapter whose base does)."""
    if not str(path):
        raise ConfigError(f"{field}: no model directory given")
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(
            f"{field}: {p} is not a directory (no hub is contacted; build a model with `echoink model tiny --out DIR`)"
        )
    adapter = p / ADAPTER_CONFIG
    if adapter.exists():
        base = _adapter_base(adapter, field)
        if not any(p.glob("adapter_model.*")):
            raise ConfigError(f"{field}: {p} holds {ADAPTER_CONFIG} but no adapter weights")
        check_model_dir(base, f"{field} (the adapter's base {base})")
    else:
        if not (p / "config.json").is_file():
            raise ConfigError(f"{field}: {p} has no config.json; not a model directory")
        try:  # parsed here, bounded: transformers' reader would recurse on a deeply nested one
            read_json_object(p / "config.json", "a model config")
        except ValueError as err:
            raise ConfigError(f"{field}: {err}") from None
        if not any(f for pattern in WEIGHT_PATTERNS for f in p.glob(pattern)):
            raise ConfigError(f"{field}: {p} holds no weights (*.safetensors or *.bin)")
    if not (p / "tokenizer.json").is_file():
        raise ConfigError(f"{field}: {p} has no tokenizer.json (copy the tokenizer files of its base model)")
    from .preflight_model import check_weight_files

    check_weight_files(p, field)  # headers and pickles read as data: a payload is refused, never run
    return p


def _adapter_base(adapter: Path, field: str) -> Path:
    try:
        base = read_json(adapter)["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{field}: {adapter} is unreadable or names no base model ({err})") from None
    return Path(base)


def check_recipe_inputs(cfg: Any) -> None:
    """The data splits and model directory a ``train`` or ``sft`` recipe names exist and look loadable."""
    check_split_file(cfg.data.train_path, "data.train_path")
    if cfg.data.val_path:
        check_split_file(cfg.data.val_path, "data.val_path")
    check_model_dir(cfg.model.path, "model.path")


def check_suite_members(suite_dir: str | Path) -> dict[str, Path]:
    """Every split of an ``eval --suite`` folder loads and keeps at least one row, checked before the
    first is evaluated (a broken last member was found after an hour of a 7B's time on the others)."""
    from .data.avqa import load_split
    from .eval.suite import suite_splits

    splits = suite_splits(suite_dir)
    for name, path in splits.items():
        try:
            loaded = load_split(path, on_error="skip")
        except ValueError as err:  # RowError, FileFormatError: not a split at all
            raise ConfigError(f"--suite: {name}: {err}") from None
        if not loaded.samples:
            first = f"; first: {loaded.skipped[0]}" if loaded.skipped else ""
            raise ConfigError(
                f"--suite: {path}: none of its {loaded.rows} rows loads{first}; re-import it "
                "(`echoink data import`) or move it out of the suite"
            )
    return splits


def check_run_record(run_dir: str | Path) -> None:
    """The record files a launch into ``run_dir`` reads (config.yaml, inputs.json, launch.json) parse,
    bounded, before the directory is locked: a damaged one is refused with nothing written."""
    from .bounded import read_yaml

    for name, read in (("config.yaml", read_yaml), ("inputs.json", read_json), ("launch.json", read_json)):
        path = Path(run_dir) / name
        if path.is_file():
            try:
                read(path)
            except ValueError as err:
                raise ConfigError(f"train.output_dir: {err}; start a new run") from None


OPTIONAL_KERNELS = {"flash_attention_2": ("flash_attn", "flash-attn")}
"""``model.attn_implementation`` values that need a package of their own: kernel -> (module, pip name)."""


def kernel_problem(kernel: str, installed: bool, cuda: bool) -> str | None:
    """Why ``model.attn_implementation: kernel`` cannot run here (None if it can): its package is
    missing, or it is a CUDA kernel and there is no CUDA device. Both fixes are named."""
    if kernel not in OPTIONAL_KERNELS:
        return None
    module, pip_name = OPTIONAL_KERNELS[kernel]
    fixes = f"install {pip_name} (pip install {pip_name} --no-build-isolation: an nvcc build, 1-2 h) or use --set model.attn_implementation=sdpa"
    if not installed:
        return (
            f"model.attn_implementation: {kernel} needs the {module} package, which is not installed; {fixes}"
        )
    if not cuda:
        return f"model.attn_implementation: {kernel} runs only on a CUDA device and this machine has none; use --set model.attn_implementation=sdpa"
    return None


def check_kernels(cfg: Any) -> None:
    """The attention kernel ``cfg`` names can run here; else one ConfigError, before any model loads."""
    import importlib.util

    kernel = cfg.model.attn_implementation
    if kernel not in OPTIONAL_KERNELS:
        return
    import torch

    installed = importlib.util.find_spec(OPTIONAL_KERNELS[kernel][0]) is not None
    problem = kernel_problem(kernel, installed, torch.cuda.is_available())
    if problem:
        raise ConfigError(problem)


def vllm_platform_problem(platform: str, policy_device: str) -> str | None:
    """Why vLLM on ``platform`` (vLLM's ``current_platform.device_type``: cuda, cpu, ...) must not sample
    for a policy on ``policy_device`` (cuda or cpu), or None. A CUDA policy with vLLM's CPU build (what
    ``make setup`` installs) would roll out on the CPU, silently hundreds of times slower."""
    if policy_device == "cuda" and platform != "cuda":
        return (
            f"rollout.engine: vllm: the installed vLLM runs on its {platform} platform while the policy is on "
            "CUDA (rollouts would run on the CPU); install vLLM's CUDA build (make setup-gpu, docs/gpu.md) "
            "or use --set rollout.engine=hf"
        )
    return None


def check_vllm_platform(cfg: Any) -> None:
    """``rollout.engine: vllm`` samples on the policy's device type (see ``vllm_platform_problem``)."""
    if cfg.rollout.engine != "vllm":
        return
    import torch

    if not torch.cuda.is_available():
        return  # a CPU policy: vLLM's CPU build is the one that serves it (the tests' set-up)
    try:
        from vllm.platforms import current_platform
    except ImportError:
        raise ConfigError("rollout.engine: vllm is not installed (make setup-gpu, docs/gpu.md)") from None
    problem = vllm_platform_problem(str(current_platform.device_type), "cuda")
    if problem:
        raise ConfigError(problem)
