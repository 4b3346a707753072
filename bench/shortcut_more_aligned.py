"""GRPO arms from an existing shortcut experiment's SFT base on a train split with another aligned fraction.

    python bench/shortcut_more_aligned.py --exp runs/shortcut --out runs/shortcut_p1 --aligned 1.0

Same seed, so the same questions as the experiment's train split, only framed differently; every arm is
evaluated on the experiment's held-out split and made by the experiment's own ``ExperimentSpec.arm_config``
(the same defaults: the grounded arm's weight is ``--grounding-weight``, default the experiment's), from
the experiment's SFT base (its frame stage's model when it had one). Writes OUT/summary.json (as the experiment's model blocks).
This is how docs/grounding.md's "P = 1.0" rows were made (with --set train.max_steps=150).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from echoink.eval.evaluate import evaluate
from echoink.rl.trainer import train
from echoink_lab.shortcut_experiment import PARTS, ExperimentSpec, model_block, step_cost
from echoink_lab.synth import SynthSpec, generate


def _base(exp: Path) -> Path:
    """The experiment's SFT base: its frame stage's model when it had one, else the one-stage cold start's."""
    frame = exp / "sft_frame" / "final"
    return frame if frame.is_dir() else exp / "sft" / "final"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exp", type=Path, required=True, help="a finished shortcut experiment's --out")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--aligned", type=float, default=1.0)
    p.add_argument("--arms", default="paper,grounded")
    p.add_argument("--grounding-weight", type=float, default=ExperimentSpec.grounding_weight)
    p.add_argument("--set", action="append", default=[], dest="overrides")
    a = p.parse_args()
    spec = ExperimentSpec(
        overrides=tuple(a.overrides), arms=tuple(a.arms.split(",")), aligned=a.aligned,
        grounding_weight=a.grounding_weight,
    )  # fmt: skip
    cfg, d = spec.load([])
    synth = SynthSpec(
        d.seed, d.difficulty, families=("shortcut_where",), shortcut=spec.aligned, heldout=PARTS
    )
    generate(a.out / "bench", {"train": d.train_items}, synth)
    e, results = cfg.eval, {}
    for arm in spec.arms:
        train(spec.arm_config(arm, a.out / "bench" / "train.json", _base(a.exp), a.out / arm))
        s = evaluate(
            a.out / arm / "final", a.exp / "bench" / "test.json", a.out / f"eval_{arm}", ablate=["audio", "image"],
            batch_size=e.batch_size, max_new_tokens=e.max_new_tokens, template=e.template, decoding=e.decoding,
            max_pixels=cfg.data.max_pixels,
        )  # fmt: skip
        results[arm] = {**model_block(s), "step_cost": step_cost(a.out / arm / "metrics.jsonl")}
    (a.out / "summary.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
