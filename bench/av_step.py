"""Shared vs repeat step time over a grid: G in {4, 8, 16} x audio in {2, 10, 30} s, 224x224 image (issue 9).

Each cell: the tiny Omni thinker, one GRPO-shaped step (rollout of exactly ``--new-tokens`` tokens,
reference forward when β > 0, policy forward+backward; see av_common.one_step), both modes in this
one process, alternating, median of ``--repeats`` steps. Target: repeat/shared >= 3 at G=8, 10 s.

    nice -n 19 .venv/bin/python bench/av_step.py --threads 1

Prints one JSON line per cell, then a table of ratios.
"""

from __future__ import annotations

import argparse
import json

from av_common import add_step_args, av_prompts, compare_modes, fixed_length_config, step_info, tiny_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group-sizes", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--audio-seconds", type=float, nargs="+", default=[2.0, 10.0, 30.0])
    add_step_args(p, repeats=3)
    a = p.parse_args()
    model, processor = tiny_model(a.hidden, a.layers, a.threads, a.family)
    gen = fixed_length_config(processor, model, a.new_tokens)
    grid = {}
    for seconds in a.audio_seconds:
        prompts = av_prompts(processor, model.config, a.prompts, seconds)
        for g in a.group_sizes:
            res = compare_modes(model, prompts, g, gen, a.beta, a.repeats)
            row = {"bench": "av_step", "G": g, "audio_s": seconds} | step_info(a, prompts)
            for mode in ("shared", "repeat"):
                for k in ("step", "rollout", "reference", "policy_forward_backward"):
                    row[f"{mode}_{k}_ms"] = round(res[mode][k] * 1e3, 1)
            row["ratio_step"] = round(res["repeat"]["step"] / res["shared"]["step"], 2)
            row["ratio_scoring"] = round(
                (res["repeat"]["reference"] + res["repeat"]["policy_forward_backward"])
                / (res["shared"]["reference"] + res["shared"]["policy_forward_backward"]),
                2,
            )
            print(json.dumps(row), flush=True)
            grid[(seconds, g)] = row
    print("\nrepeat/shared step time (scoring passes only in brackets); rows: audio seconds, columns: G")
    print(f"{'audio':>8}" + "".join(f"{'G=' + str(g):>18}" for g in a.group_sizes))
    for seconds in a.audio_seconds:
        cells = [grid[(seconds, g)] for g in a.group_sizes]
        print(
            f"{seconds:>7}s"
            + "".join(f"{c['ratio_step']:>10.2f} ({c['ratio_scoring']:>4.2f})" for c in cells)
        )


if __name__ == "__main__":
    main()
