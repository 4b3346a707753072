"""Where one tiny-model step spends its time: per phase, and per operator (torch.profiler, CPU).

The step is av_common.one_step (rollout of exactly ``--new-tokens`` tokens, reference forward when
β > 0, policy forward+backward), after one warm-up step, in ``--mode`` shared or repeat. Prints one
JSON line (phase ms, top operators by self CPU time) and the profiler's table; ``--trace FILE``
also writes a Chrome trace (open in chrome://tracing or Perfetto).

    nice -n 19 .venv/bin/python bench/profile_step.py --threads 1
"""

from __future__ import annotations

import argparse
import json

from torch.profiler import ProfilerActivity, profile, record_function

from av_common import add_step_args, av_prompts, fixed_length_config, one_step, step_info, tiny_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("shared", "repeat"), default="shared")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--audio-seconds", type=float, default=10.0)
    add_step_args(p, repeats=1)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--trace", default=None)
    a = p.parse_args()
    model, processor = tiny_model(a.hidden, a.layers, a.threads, a.family)
    prompts = av_prompts(processor, model.config, a.prompts, a.audio_seconds)
    gen = fixed_length_config(processor, model, a.new_tokens)
    one_step(model, prompts, a.group_size, gen, a.mode, a.beta)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof, record_function("step"):
        phases = one_step(model, prompts, a.group_size, gen, a.mode, a.beta)
    if a.trace:
        prof.export_chrome_trace(a.trace)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events)
    top = [
        {
            # Self time of the enclosing "step" range is time inside no torch op: Python / HF glue.
            "op": "python/glue (outside any op)" if e.key == "step" else e.key,
            "calls": e.count,
            "self_ms": round(e.self_cpu_time_total / 1e3, 1),
            "share": round(e.self_cpu_time_total / total_us, 3),
        }
        for e in events[: a.top]
    ]
    row = {"bench": "profile_step", "mode": a.mode, "G": a.group_size, "audio_s": a.audio_seconds}
    row |= step_info(a, prompts) | {
        **{f"{k}_ms": round(v * 1e3, 1) for k, v in phases.items() if k != "completion_tokens"},
        "top_ops": top,
    }
    print(json.dumps(row))
    print(f"\n{'phase':<26}{'ms':>10}{'share':>8}")
    for k in ("rollout", "reference", "policy_forward_backward"):
        print(f"{k:<26}{phases[k] * 1e3:>10.1f}{phases[k] / phases['step']:>8.1%}")
    print(f"\n{'operator (self CPU)':<58}{'calls':>7}{'ms':>10}{'share':>8}")
    for t in top:
        print(f"{t['op'][:57]:<58}{t['calls']:>7}{t['self_ms']:>10.1f}{t['share']:>8.1%}")


if __name__ == "__main__":
    main()
