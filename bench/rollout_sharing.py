"""Step time of shared vs repeat mode (issue 6): tiny Omni thinker, 10 s audio + 224x224 image, G=8.

One step = one rollout (G completions per prompt, 64 new tokens, fixed seed) + a reference log-prob
forward (β > 0) + the policy log-prob forward+backward. Both modes run in ONE process, alternating,
and the median of ``--repeats`` steps is reported. Target: repeat/shared >= 3.

    nice -n 19 .venv/bin/python bench/rollout_sharing.py --threads 1

Prints one JSON line per mode, one for the ratio, then a readable table.
"""

from __future__ import annotations

import argparse
import json
import platform

from av_common import (
    MODES,
    add_step_args,
    av_prompts,
    compare_modes,
    fixed_length_config,
    step_info,
    tiny_model,
    video_prompts,
)

PHASES = ("rollout", "reference", "policy_forward_backward", "step")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--audio-seconds", type=float, default=10.0)
    p.add_argument(
        "--video",
        action="store_true",
        help="video prompts instead: 4 s at 2 fps, 224x224, soundtrack interleaved",
    )
    add_step_args(p)
    a = p.parse_args()
    model, processor = tiny_model(a.hidden, a.layers, a.threads, a.family)
    if a.video:
        prompts = video_prompts(processor, a.prompts)
    else:
        prompts = av_prompts(processor, model.config, a.prompts, a.audio_seconds)
    gen = fixed_length_config(processor, model, a.new_tokens)
    res = compare_modes(model, prompts, a.group_size, gen, a.beta, a.repeats)
    media = (
        {"video": "4 s at 2 fps, 224x224, soundtrack"}
        if a.video
        else {"audio_s": a.audio_seconds, "image": "224x224"}
    )
    common = {"bench": "rollout_sharing", "family": a.family, "G": a.group_size, **media}
    common |= step_info(a, prompts) | {"machine": platform.machine()}
    for mode in MODES:
        ms = {f"{k}_ms": round(res[mode][k] * 1e3, 1) for k in PHASES}
        print(
            json.dumps(
                common | {"mode": mode} | ms | {"steps_ms": [round(s * 1e3) for s in res[mode]["steps_s"]]}
            )
        )
    ratio = {k: round(res["repeat"][k] / res["shared"][k], 2) for k in PHASES if res["shared"][k] > 0}
    print(json.dumps(common | {"mode": "ratio_repeat_over_shared"} | ratio))
    print(f"\n{'phase':<26}{'shared ms':>12}{'repeat ms':>12}{'repeat/shared':>15}")
    for k in PHASES:
        s, r = res["shared"][k] * 1e3, res["repeat"][k] * 1e3
        print(f"{k:<26}{s:>12.1f}{r:>12.1f}{(r / s if s else float('nan')):>15.2f}")


if __name__ == "__main__":
    main()
