"""Every script in bench/ runs end to end at its smallest size from a fresh state, so none rots unseen.

Each runs in its own process from an empty working directory, with TMPDIR inside it: a relative
path a script or its recipe reads (``runs/bench/val.json`` in configs/tiny_cpu.yaml) is missing
there, as in a fresh clone, whatever a developer's checkout has under runs/. The numbers are not
checked (seconds on a shared CPU); that each script finishes and prints its JSON is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from echoink.model.vllm_sampler import vllm_available

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# The audio+image benches' step at its smallest: one prompt, 2 new tokens, a 16-wide 1-layer thinker.
STEP = ["--prompts", "1", "--new-tokens", "2", "--repeats", "1"]
TINY = [*STEP, "--hidden", "16", "--layers", "1"]
VS_TRL_STEPS = ["--warmup-steps", "1", "--timed-steps", "1"]
# (script, arguments, a key of its last JSON line).
SMOKE = [
    ("av_step.py", ["--group-sizes", "2", "--audio-seconds", "1", *TINY], "ratio_step"),
    (
        "credit_cost.py",
        ["--group-size", "2", "--prompts", "1", "--steps", "1", "--new-tokens", "2", *TINY[-4:]],
        "step_on_over_off",
    ),
    ("checkpoint_memory.py", ["--groups", "2", "--per-pass", "1", "--tokens", "4", "--hidden", "16"], "mode"),
    ("memory_estimate.py", ["--json"], "setup"),
    ("profile_step.py", ["--group-size", "2", "--audio-seconds", "1", "--top", "3", *TINY], "top_ops"),
    ("reward_speed.py", ["--bytes", "1000", "--repeat", "1"], "max_ms"),
    ("rollout_sharing.py", ["--group-size", "2", "--audio-seconds", "1", *TINY], "step"),
    pytest.param("rollout_sharing.py", ["--video", "--group-size", "2", *TINY], "step", id="video"),
    ("roofline.py", ["--configs", "tiny", "--group-size", "2", "--audio-seconds", "1", *STEP], "step_mfu"),
    ("vs_trl.py", ["--rounds", "1", "--hidden", "16", "--layers", "1", *VS_TRL_STEPS], "throughput"),
    pytest.param(
        "vllm_api.py",
        [],
        "missing",
        marks=pytest.mark.skipif(
            not vllm_available(), reason="vLLM is not installed (make setup installs it)"
        ),
    ),
    pytest.param(
        "vllm_rollout.py",
        [
            "--prompts",
            "1",
            "--group-size",
            "2",
            "--new-tokens",
            "4",
            "--audio-seconds",
            "1",
            "--repeats",
            "1",
        ],
        "vllm_over_hf",
        marks=pytest.mark.skipif(
            not vllm_available(), reason="vLLM is not installed (make setup installs it)"
        ),
    ),
]
ELSEWHERE = {
    "av_common.py": "a module the audio+image benches import, not a script",
    "gpu_check.py": "gpu_check.sh runs it",
    "gpu_check.sh": "test_gpu_check_plan_runs_every_stage_at_tiny_size below",
    "gpu_resolve.sh": "needs the package registry (pip's resolver, minutes): run by hand, docs/gpu.md",
    "gpu_wheels.sh": "downloads ~57 MiB from the package registry: run by hand, docs/gpu.md",
    "shortcut_more_aligned.py": "test_shortcut_more_aligned_runs_from_a_toy_experiment below",
    # Its smallest run is two DeepSpeed processes; tests/dist/test_sharded.py already runs the script
    # itself (test_zero3_on_two_cpu_processes_equals_ddp and the resume tests) from a temporary
    # directory with its own tiny model and split, so a second run here would add a minute for nothing.
    "sharded_cpu.sh": "tests/dist/test_sharded.py runs it",
}


def test_every_bench_script_is_run_somewhere():
    scripts = {p.name for p in BENCH.iterdir() if p.suffix in (".py", ".sh")}
    smoke = {s.values[0] if hasattr(s, "values") else s[0] for s in SMOKE}
    assert scripts == smoke | set(ELSEWHERE), "a new bench script needs a smoke run here"


def _run(script: str, args: list[str], cwd: Path, extra_env: dict | None = None) -> list[dict]:
    """Run bench/``script`` from ``cwd`` (empty, TMPDIR inside it); the one-line JSON objects it printed."""
    (cwd / "tmp").mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
        "PYTHON": sys.executable,  # the shell scripts' interpreter
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(cwd / "tmp"),
        **(extra_env or {}),
    }
    cmd = ["bash" if script.endswith(".sh") else sys.executable, str(BENCH / script), *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"bench/{script} failed:\n{done.stderr[-4000:]}"
    lines = done.stdout.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]


@pytest.mark.parametrize(("script", "args", "key"), SMOKE)
def test_bench_script_runs_from_a_fresh_state(script: str, args: list[str], key: str, tmp_path: Path):
    rows = _run(script, args, tmp_path / "work")
    assert rows and key in rows[-1], f"bench/{script} printed no JSON line with {key!r}"


def test_gpu_check_plan_runs_every_stage_at_tiny_size(tmp_path: Path):
    """bench/gpu_check.sh --plan: the lent GPU's stages, same code, tiny model, this CPU; one row each."""
    out = tmp_path / "rows"
    rows = _run("gpu_check.sh", ["--plan"], tmp_path / "work", {"OUT": str(out)})
    assert [r["stage"] for r in rows] == ["env", "grpo_shared", "grpo_repeat", "lora", "zero3", "vllm"]
    assert sorted(p.name for p in out.glob("*.json")) == sorted(f"{r['stage']}.json" for r in rows)
    by = {r["stage"]: r for r in rows}
    assert all(by[s]["status"] == "ok" for s in ("env", "grpo_shared", "grpo_repeat", "lora", "zero3")), rows
    for s in ("grpo_shared", "grpo_repeat", "lora"):
        assert by[s]["completion_tokens"] == 8 * 4 and by[s]["step_s"] > 0 and by[s]["peak_memory_gib"] > 0
    assert by["zero3"]["engine"] == "deepspeed-zero3" and by["zero3"]["max_weight_diff"] <= 1e-5
    assert by["vllm"]["status"] == "skipped"


def test_shortcut_more_aligned_runs_from_a_toy_experiment(tiny_model_dir: Path, tmp_path: Path):
    """Its input is a finished shortcut experiment: here its SFT base is the tiny model and its
    held-out split six items; each arm trains one step and is evaluated on them."""
    from echoink_lab.shortcut_experiment import PARTS
    from echoink_lab.synth import SynthSpec, generate

    exp = tmp_path / "exp"
    (exp / "sft").mkdir(parents=True)
    (exp / "sft" / "final").symlink_to(tiny_model_dir)
    spec = SynthSpec(0, "easy", families=("shortcut_where",), shortcut=0.8, heldout=PARTS)
    generate(exp / "bench", {"test": 6}, spec, workers=1)
    toy = [
        "demo.train_items=16", "train.max_steps=1", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=4", "eval.max_new_tokens=4", "eval.batch_size=6",
        "algo.counterfactual_samples=2",
    ]  # fmt: skip
    out = tmp_path / "out"
    _run(
        "shortcut_more_aligned.py",
        ["--exp", str(exp), "--out", str(out), *(f"--set={v}" for v in toy)],
        tmp_path / "work",
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"paper", "grounded"} and all("step_cost" in arm for arm in summary.values())
    # the experiment's own arm config: its grounding weight, from the experiment's SFT base
    grounded = (out / "grounded" / "config.yaml").read_text()
    assert "grounding: 2.0" in grounded and str(exp / "sft" / "final") in grounded
