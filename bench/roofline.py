"""How far a training step is from this machine's fp32 matmul limit (MFU), for the tiny and a "small" config.

1. Sustained fp32 matmul GFLOP/s with torch at ``--threads`` (square n x n matmuls for ~1 s each size).
2. Model FLOPs of one GRPO-shaped step (rollout generation, reference forward, policy forward+backward;
   see av_common.one_step, shared mode), counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmul,
   attention and convolution FLOPs, forward and backward, exactly as executed).
3. The step timed without the counter (median of ``--repeats``): MFU = FLOPs / (seconds x peak).

A low MFU with most time outside matmuls means Python/dispatch overhead, not maths, is the limit.

    nice -n 19 .venv/bin/python bench/roofline.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from av_common import add_step_args, av_prompts, fixed_length_config, one_step, step_info, tiny_model

CONFIGS = {"tiny": (64, 2), "small": (512, 8)}
PHASES = ("rollout", "reference", "policy_forward_backward")


def matmul_gflops(sizes=(512, 1024, 2048), seconds: float = 1.0) -> dict[int, float]:
    """Sustained GFLOP/s of fp32 n x n matmuls (2 n^3 FLOPs each)."""
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        out[n] = 2 * n**3 * count / (time.perf_counter() - start) / 1e9
    return out


def phase_flops(model, prompts, g, gen) -> dict[str, float]:
    """FLOPs of each phase of one shared-mode step, each counted on its own."""
    engine, batch = prompts
    flops = {}
    counter = FlopCounterMode(display=False)
    with counter:
        done = engine.sample(model, batch, g, gen)
        ids, cmask = done.ids, done.mask
    flops["rollout"] = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        engine.logprobs(model, batch, ids, g, 1.0, "prefix")
    flops["reference"] = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        logp = engine.logprobs(model, batch, ids, g, 1.0, "prefix")
        (-(logp * cmask).sum()).backward()
    model.zero_grad(set_to_none=True)
    flops["policy_forward_backward"] = counter.get_total_flops()
    return flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--audio-seconds", type=float, default=10.0)
    add_step_args(p, repeats=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    peak_by_n = matmul_gflops()
    peak = max(peak_by_n.values())
    print(json.dumps({"bench": "roofline", "what": "matmul_fp32", "threads": a.threads,
                      "gflops_by_n": {n: round(v, 1) for n, v in peak_by_n.items()}, "peak_gflops": round(peak, 1)}))  # fmt: skip
    rows = []
    for name in a.configs:
        hidden, layers = CONFIGS[name]
        model, processor = tiny_model(hidden, layers, a.threads, a.family)
        prompts = av_prompts(processor, model.config, a.prompts, a.audio_seconds)
        gen = fixed_length_config(processor, model, a.new_tokens)
        flops = phase_flops(model, prompts, a.group_size, gen)
        if a.beta == 0:
            flops["reference"] = 0.0
        runs = [
            one_step(model, prompts, a.group_size, gen, "shared", a.beta, seed=r)
            for r in range(a.repeats + 1)
        ]
        secs = {k: statistics.median(r[k] for r in runs[1:]) for k in PHASES}
        row = {"bench": "roofline", "config": name, "G": a.group_size, "audio_s": a.audio_seconds}
        row |= step_info(a, prompts) | {"hidden": hidden, "layers": layers, "peak_gflops": round(peak, 1)}
        row["params_M"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        for k in PHASES:
            row[f"{k}_gflop"] = round(flops[k] / 1e9, 3)
            row[f"{k}_ms"] = round(secs[k] * 1e3, 1)
            row[f"{k}_mfu"] = round(flops[k] / secs[k] / 1e9 / peak, 4)
        total_f, total_s = sum(flops.values()), sum(secs.values())
        row |= {"step_gflop": round(total_f / 1e9, 3), "step_ms": round(total_s * 1e3, 1),
                "step_mfu": round(total_f / total_s / 1e9 / peak, 4)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\npeak fp32 matmul: {peak:.1f} GFLOP/s at {a.threads} thread(s)")
    print(f"{'config':<8}{'phase':<26}{'GFLOP':>10}{'ms':>10}{'GFLOP/s':>10}{'MFU':>8}")
    for row in rows:
        for k in (*PHASES, "step"):
            f, ms = row[f"{k}_gflop"], row[f"{k}_ms"]
            print(
                f"{row['config']:<8}{k:<26}{f:>10.3f}{ms:>10.1f}{f / ms * 1e3:>10.2f}{row[f'{k}_mfu']:>8.1%}"
            )


if __name__ == "__main__":
    main()
