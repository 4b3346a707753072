"""Milliseconds per reward call on 1 MB adversarial completions (the issue asks < 50 ms each).

Prints one JSON line: {"bench": "reward_speed", "bytes": ..., "ms": {case: {reward: ms}}, "max_ms": ...}.
Each number is the best of ``--repeat`` runs of one reward on a one-completion batch.

    .venv/bin/python bench/reward_speed.py
"""

from __future__ import annotations

import argparse
import json
import time

from echoink.scoring.rewards import REWARDS

MB = 1 << 20


def adversarial_completions(size: int = MB) -> dict[str, str]:
    """Inputs that make backtracking regexes quadratic or worse: openings with no closings, etc."""
    return {
        "think_openings": "<think>" * (size // 7),
        "answer_openings": "<answer>" * (size // 8),
        "answer_closings": "</answer>" * (size // 9),
        "one_close_after_openings": "<answer>" * (size // 8 - 2) + "</answer>",
        "long_letter_list": "<answer>" + "A, " * (size // 3 - 6) + "</answer>",
        "long_option_text": "<think>x</think><answer>C. " + "a " * (size // 2 - 16) + "</answer>",
        "interleaved": "<think><answer></think>" * (size // 23),
        "think_openings_well_ended": "<think>" * (size // 7 - 4) + "</think><answer>A</answer>",
    }


def measure(size: int = MB, repeat: int = 3) -> dict[str, dict[str, float]]:
    """Best-of-``repeat`` milliseconds for each (case, reward)."""
    out: dict[str, dict[str, float]] = {}
    for case, text in adversarial_completions(size).items():
        out[case] = {}
        for name in REWARDS:
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                REWARDS.get(name)([text], solution=["<answer>A</answer>"], counterfactual_prob=[0.5])
                best = min(best, time.perf_counter() - start)
            out[case][name] = round(best * 1e3, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=MB)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ms = measure(args.bytes, args.repeat)
    worst = max(v for case in ms.values() for v in case.values())
    print(json.dumps({"bench": "reward_speed", "bytes": args.bytes, "ms": ms, "max_ms": worst}))


if __name__ == "__main__":
    main()
