"""Rollout tokens/s of our decode loop (``rollout.engine: hf``) and a colocated vLLM engine (``vllm``).

The same tiny Qwen2.5-Omni thinker (32-wide heads, which vLLM's CPU attention needs), the same B
audio + image prompts, G completions each, exactly ``--new-tokens`` tokens per completion (stop tokens
blocked until then); the median of ``--repeats`` rollouts per engine, after one warm-up each. Also
reported: vLLM's engine start, one weight push, and the largest |vLLM - ours| log-prob of its samples.

    OMP_NUM_THREADS=1 .venv/bin/python bench/vllm_rollout.py

Prints one JSON line per engine, then one with the ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from av_common import av_prompts, fixed_length_config
from echoink.model import Engine, load_policy
from echoink.model.loading import load_processor
from echoink.testing.tiny import build_tiny


def _rollouts(engine: Engine, model, prompts, g: int, gen, repeats: int) -> tuple[float, int, object]:
    """(median seconds of a rollout, tokens per rollout, the last rollout's completions)."""
    engine.sample(model, prompts, g, gen)  # warm-up
    times = []
    for seed in range(repeats):
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        done = engine.sample(model, prompts, g, gen)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), int(done.mask.sum()), done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=8, help="B prompts per rollout")
    p.add_argument("--group-size", type=int, default=8, help="G completions per prompt")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--audio-seconds", type=float, default=10.0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="where our engine runs (vLLM picks its own)")
    a = p.parse_args()
    path = build_tiny(Path(tempfile.mkdtemp(prefix="echoink-vllm-bench-")), a.hidden, a.layers, head_dim=32)
    model = load_policy(
        str(path), a.device, dtype="float32", gradient_checkpointing=False, lora_rank=0
    ).eval()
    engine = Engine.for_model(model, load_processor(path))
    _, prompts = av_prompts(engine, model.config, a.prompts, a.audio_seconds)
    prompts = prompts.to(a.device)
    gen = fixed_length_config(engine, model, a.new_tokens)
    common = {"bench": "vllm_rollout", "B": a.prompts, "G": a.group_size, "new_tokens": a.new_tokens}
    common |= {"audio_s": a.audio_seconds, "image": "224x224", "machine": platform.machine()}
    common |= {"threads": torch.get_num_threads(), "device": a.device, "hidden": a.hidden, "layers": a.layers}
    rows = {}
    with torch.no_grad():
        seconds, tokens, _ = _rollouts(engine, model, prompts, a.group_size, gen, a.repeats)
        rows["hf"] = {"engine": "hf", "rollout_s": round(seconds, 3), "tokens": tokens}
        t0 = time.perf_counter()
        sampler = engine.use_vllm(str(path), "float32")
        start = time.perf_counter() - t0
        push = engine.sampler.sync(model)
        seconds, tokens, done = _rollouts(engine, model, prompts, a.group_size, gen, a.repeats)
        ours = engine.logprobs(model, prompts, done.ids, a.group_size)
        diff = float(((ours - done.logprobs).abs() * done.mask).max())
        rows["vllm"] = {"engine": "vllm", "rollout_s": round(seconds, 3), "tokens": tokens}
        rows["vllm"] |= {
            "engine_start_s": round(start, 1),
            "push_s": round(push, 3),
            "logprob_diff_max": diff,
        }
        sampler.close()
    for row in rows.values():
        row["tokens_per_s"] = round(row["tokens"] / row["rollout_s"], 1)
        print(json.dumps({**common, **row}))
    ratio = rows["vllm"]["tokens_per_s"] / rows["hf"]["tokens_per_s"]
    print(json.dumps({**common, "vllm_over_hf": round(ratio, 2)}))


if __name__ == "__main__":
    main()
