"""One stage of the GPU check (bench/gpu_check.sh runs each in its own process): one JSON row to --out.

Stages (``--size 7b`` on the lent GPU; ``--size tiny`` the same code on a CPU in seconds):
  env          torch / CUDA / GPU / the packages the other stages import
  grpo_shared  one GRPO step of the released Qwen2.5-Omni-7B thinker's size (8.93B, random init), bf16,
  grpo_repeat  gradient checkpointing, G = 8, 10 s audio + a 448x448 image, 128 new tokens forced:
               prefix sharing vs the anchors' repeat (step time, peak memory, completion tokens/s)
  lora         the same step with LoRA r=64 on the LLM (the base frozen)
  zero3        4 GRPO steps of the tiny recipe under accelerate + DeepSpeed ZeRO-3 on one device vs
               plain training: max weight difference in fp32 (the bar: 1e-5)
  vllm         vLLM's rollout parity and tokens/s (bench/vllm_rollout.py) when vllm imports, else skipped

A row: {"stage", "status": ok | oom | error | skipped, "message"?, ...measurements}. An out-of-memory
or any error ends that stage's process only; the shell script then runs the next.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

import torch

from av_common import av_prompts, fixed_length_config

ROOT = Path(__file__).resolve().parents[1]


def build(size: str, device: str, lora_rank: int = 0):
    """(thinker in bf16 on ``device``, engine). 7b: the released 7B's thinker config, random init."""
    from echoink.config import ModelConfig
    from echoink.model import FAMILIES, Engine
    from echoink.model.loading import lora_config
    from echoink.testing.tiny import build_processor, make_tiny, token_ids_for_config
    from echoink.testing.tokenizer import train_tokenizer

    if size == "tiny":
        model, processor = make_tiny(hidden=64, layers=2)
        model = model.to(device=device, dtype=torch.bfloat16)
    else:
        from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

        from memory_estimate import QWEN25_7B

        tokenizer = train_tokenizer(1024)
        ids = token_ids_for_config(tokenizer)
        cfg = Qwen2_5OmniThinkerConfig(
            **QWEN25_7B, audio_token_index=ids["audio"], image_token_index=ids["image"],
            video_token_index=ids["video"], audio_start_token_id=ids["audio_bos"],
            audio_end_token_id=ids["audio_eos"], user_token_id=ids["user"],
        )  # fmt: skip
        cfg.vision_start_token_id, cfg.vision_end_token_id = ids["vision_bos"], ids["vision_eos"]
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(device):
            model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
        torch.set_default_dtype(torch.float32)
        processor = build_processor(tokenizer)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if lora_rank:
        from peft import get_peft_model

        lora = lora_config(
            ModelConfig(lora_rank=lora_rank, lora_alpha=2 * lora_rank), FAMILIES.get("qwen2.5-omni")
        )
        model = get_peft_model(model, lora)
    return model.train(), Engine(processor, "qwen2.5-omni")


def peak_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's peak RSS


def grpo_step(size: str, device: str, mode: str, lora_rank: int = 0) -> dict:
    """One GRPO-shaped step (rollout, policy pass + backward; twice, the second timed)."""
    g, new = 8, (128 if size == "7b" else 4)
    t0 = time.perf_counter()
    model, engine = build(size, device, lora_rank)
    n_params = sum(p.numel() for p in model.parameters())
    _, batch = av_prompts(engine, None, 1, 10.0, image_side=448)
    batch = batch.to(device, torch.bfloat16)
    gen = fixed_length_config(engine, model, new)
    scorer = engine.scorer(model, "prefix" if mode == "shared" else "repeat", completions_per_pass=2)
    row = {
        "params_B": round(n_params / 1e9, 3),
        "G": g,
        "new_tokens": new,
        "build_s": round(time.perf_counter() - t0, 1),
    }
    row["prompt_tokens"] = int(batch.input_ids.shape[1])
    for _ in range(2):  # the first warms up (kernels, allocator); the second is timed
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            done = engine.sample(model, batch, g, gen, shared=mode == "shared")
        rollout = time.perf_counter() - t0
        model.train()
        logp, _ = scorer(batch, done.ids, g)
        (-(logp * done.mask).sum() / done.mask.sum()).backward()
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        step = time.perf_counter() - t0
    tokens = int(done.mask.sum())
    return row | {"mode": mode, "step_s": round(step, 3), "rollout_s": round(rollout, 3), "completion_tokens": tokens,
                  "tokens_per_s": round(tokens / step, 1), "peak_memory_gib": round(peak_gib(device), 2)}  # fmt: skip


def env_row(device: str) -> dict:
    import importlib.metadata as md

    row = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "python": platform.python_version()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        row |= {"gpu": props.name, "gpu_gib": round(props.total_memory / 2**30, 1)}
    for dist in (
        "transformers",
        "accelerate",
        "peft",
        "deepspeed",
        "av",
        "soundfile",
        "soxr",
        "typer",
        "vllm",
    ):
        try:
            row[dist] = md.version(dist)
        except md.PackageNotFoundError:
            row[dist] = None
    import transformers

    row["transformers_imported_from"] = str(Path(transformers.__file__).parents[1])
    return row


TINY_RUN = [
    "train.max_steps=4", "train.prompts_per_step=2", "rollout.num_generations=2", "rollout.max_new_tokens=8",
    "algo.beta=0.04", "train.lr=1e-3", "train.save_every=4", "train.eval_every=0", "data.val_path=",
    "model.dtype=float32", "train.mixed_precision=no", "train.seed=0",
]  # fmt: skip


def _run(cmd: list[str], env: dict, timeout: float) -> None:
    import subprocess

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(cmd[2:5])}... exited {done.returncode}: {tail[0][:300]}")


def zero3_vs_plain(device: str, work: Path) -> dict:
    """4 steps of the tiny recipe, plain and under accelerate + DeepSpeed ZeRO-3 on one process."""
    import os
    import socket

    from safetensors.torch import load_file

    py, env = sys.executable, {**os.environ, "OMP_NUM_THREADS": "1"}
    if device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    data, model = work / "bench", work / "tiny-model"
    from echoink.testing.tiny import build_tiny
    from echoink_lab.synth import SynthSpec, generate

    generate(data, {"train": 8}, SynthSpec(0, "easy"), workers=1)  # in process: two interpreter starts fewer
    build_tiny(model, seed=0)
    common = [
        "configs/tiny_cpu.yaml",
        "--set",
        f"data.train_path={data / 'train.json'}",
        "--set",
        f"model.path={model}",
    ]
    for kv in TINY_RUN:
        common += ["--set", kv]
    t0 = time.perf_counter()
    _run([py, "-m", "echoink", "train", *common, "--set", f"train.output_dir={work / 'plain'}"], env, 240)
    plain_s = time.perf_counter() - t0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    t0 = time.perf_counter()
    _run([py, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/deepspeed_zero3_cpu.yaml",
          "--num_processes", "1", "--main_process_port", port, "-m", "echoink", "train", *common,
          "--set", f"train.output_dir={work / 'zero3'}"], env, 300)  # fmt: skip
    a, b = (load_file(str(work / run / "final" / "model.safetensors")) for run in ("plain", "zero3"))
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    launch = json.loads((work / "zero3" / "launch.json").read_text())
    return {"engine": launch.get("engine"), "steps": 4, "max_weight_diff": diff, "equal_within_1e-5": diff <= 1e-5,
            "plain_s": round(plain_s, 1), "zero3_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def vllm_row(size: str, device: str) -> dict:
    import importlib.util
    import subprocess

    if importlib.util.find_spec("vllm") is None:
        return {"status": "skipped", "message": "skipped: no vllm"}
    if size == "tiny":
        return {
            "status": "skipped",
            "message": "skipped at --plan: bench/vllm_rollout.py has its own smoke test",
        }
    cmd = [sys.executable, "bench/vllm_rollout.py", "--device", device, "--hidden", "1024", "--layers", "8",
           "--prompts", "8", "--group-size", "8", "--new-tokens", "128"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    rows = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode or not rows:
        raise RuntimeError(
            f"vllm_rollout exited {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:300]}"
        )
    return rows[-1]


def run_stage(stage: str, size: str, device: str, work: Path) -> dict:
    if stage == "env":
        return env_row(device)
    if stage in ("grpo_shared", "grpo_repeat"):
        return grpo_step(size, device, stage.split("_")[1])
    if stage == "lora":
        return grpo_step(size, device, "shared", lora_rank=64)
    if stage == "zero3":
        return zero3_vs_plain(device, work)
    if stage == "vllm":
        return vllm_row(size, device)
    raise ValueError(f"unknown stage {stage!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("env", "grpo_shared", "grpo_repeat", "lora", "zero3", "vllm"))
    p.add_argument("--size", choices=("7b", "tiny"), default="7b")
    p.add_argument("--out", type=Path, required=True, help="the JSON row's file")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (zero3's runs)")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    row = {"stage": a.stage, "size": a.size, "device": device, "status": "ok"}
    t0 = time.perf_counter()
    try:
        row |= run_stage(a.stage, a.size, device, a.work or a.out.parent / f"{a.stage}-work")
    except torch.cuda.OutOfMemoryError as err:
        row |= {
            "status": "oom",
            "message": str(err).splitlines()[0][:300],
            "peak_memory_gib": round(peak_gib(device), 2),
        }
    except Exception as err:  # noqa: BLE001  (the row says what failed; the next stage still runs)
        traceback.print_exc()
        row |= {"status": "error", "message": f"{type(err).__name__}: {str(err)[:300]}"}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    a.out.write_text(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
