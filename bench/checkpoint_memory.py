"""Peak memory of the policy's log-prob forward+backward vs G, with and without activation checkpointing.

One prompt (10 s audio + 224x224 image), G completions of T tokens, the prefix-shared pass. With
checkpointing the prompt runs once and the completions are checkpointed in chunks of
``--per-pass`` rows, so the backward replay holds one chunk's activations whatever G is. Each
(G, mode) runs in a fresh process; the number is the growth of its peak RSS over the pass (CPU
memory: what the allocator took from the OS), in MiB.

    .venv/bin/python bench/checkpoint_memory.py --groups 4 8 16 32 --per-pass 4

Prints one JSON line per (G, mode), then a table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys


def one(g: int, mode: str, per_pass: int, tokens: int, hidden: int, family: str) -> dict:
    import torch

    from av_common import av_prompts, tiny_model

    torch.manual_seed(0)
    model, engine = tiny_model(hidden, 2, 1, family)
    if mode == "checkpointing":
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    _, prompts = av_prompts(engine, model.config, 1, 10.0)
    comp = torch.randint(20, 300, (g, tokens))
    scorer = engine.scorer(model, "prefix", 0.0, per_pass if mode == "checkpointing" else 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    logp, _ = scorer(prompts, comp, g)
    logp.sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"G": g, "mode": mode, "peak_growth_mib": round((peak - before) / 1024, 1), "T": tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--per-pass", type=int, default=4)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--family", default="qwen2.5-omni")
    p.add_argument("--one", nargs=2, metavar=("G", "MODE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1], a.per_pass, a.tokens, a.hidden, a.family)))
        return
    rows = []
    for g in a.groups:
        for mode in ("plain", "checkpointing"):
            args = [sys.executable, __file__, "--one", str(g), mode, "--per-pass", str(a.per_pass)]
            args += ["--tokens", str(a.tokens), "--hidden", str(a.hidden), "--family", a.family]
            out = (
                subprocess.run(args, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            rows.append(json.loads(out) | {"per_pass": a.per_pass, "hidden": a.hidden, "family": a.family})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'G':>4}{'plain MiB':>12}{'checkpointing MiB':>20}")
    for g in a.groups:
        plain, ck = (
            next(r for r in rows if r["G"] == g and r["mode"] == m) for m in ("plain", "checkpointing")
        )
        print(f"{g:>4}{plain['peak_growth_mib']:>12.1f}{ck['peak_growth_mib']:>20.1f}")


if __name__ == "__main__":
    main()
