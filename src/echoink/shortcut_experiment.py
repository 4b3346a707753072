"""Does GRPO take a visual shortcut, and does grounding stop it? One rerunnable experiment on a CPU.

    python -m echoink.shortcut_experiment --out runs/shortcut [--recipe configs/shortcut_cpu.yaml]
        [--arms paper,grounded,filtered] [--aligned 0.8] [--frame-traces 0.5] [--frame-stage-steps 200]
        [--set train.max_steps=100 ...]

Stages (each the package's public path, as in ``echoink.demo``): the ``shortcut_where`` benchmark with a
fraction ``--aligned`` of training items framed on the answer (``--frame-traces`` of those with a
cold-start trace that reads the frame instead of the tone) and a held-out split in three equal
parts (broken, none, aligned), a tiny model, an SFT cold start (the common base; with
``--frame-stage-steps K``, two stages: every trace reads the tone for ``sft.max_steps``, then K steps on
the same items with ``--frame-traces`` of the framed ones reading the frame), then for each arm
GRPO from that base for the same steps and seed, and an evaluation of every model with both
ablations. Arms: ``paper`` (accuracy + format), ``grounded`` (+ the grounding reward, weight 1),
``filtered`` (paper rewards + ``algo.drop_unimodal_groups``). ``summary.md`` / ``summary.json``: accuracy
with 95% CIs on each part, the audio- and image-ablation drops, and the counterfactual pass's cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import ConfigError, load_config
from .demo import DEMO_MARKS, Stages, second_sft_stage
from .errors import UserError
from .outdir import check_output_dir
from .preflight import check_names

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "shortcut_cpu.yaml"
PARTS = ("broken", "none", "aligned")
ARMS: dict[str, list[str]] = {
    "paper": [],  # the recipe's rewards: accuracy + format, weights 1, 1
    "grounded": ["algo.rewards={accuracy: 1.0, format: 1.0, grounding: 1.0}"],  # --grounding-weight
    "filtered": ["algo.drop_unimodal_groups=true"],
}


def _arm_overrides(arm: str, grounding_weight: float) -> list[str]:
    """An arm's recipe changes. The grounding weight w sets where the reward stops pushing: a correct
    answer earns 1 - w * P_cf(gold) against a wrong one's 0, so a shortcut is rewarded until P_cf(gold)
    (the policy's accuracy without audio) reaches 1 / w; at w = 1 that is only a complete shortcut."""
    if arm == "grounded":
        return [f"algo.rewards={{accuracy: 1.0, format: 1.0, grounding: {grounding_weight}}}"]
    return ARMS[arm]


def _config(
    out: Path,
    recipe: Path,
    overrides: list[str],
    arm: str | None = None,
    base: str = "sft",
    weight: float = 1.0,
):
    paths = [
        f"data.train_path={out / 'bench' / 'train.json'}",
        f"model.path={out / 'model'}",
        f"sft.output_dir={out / 'sft'}",
    ]
    if arm is not None:  # every arm starts from the SFT base
        paths += [f"model.path={out / base / 'final'}", f"train.output_dir={out / arm}"]
    cfg = load_config(recipe, paths + list(overrides) + (_arm_overrides(arm, weight) if arm else []))
    check_names(cfg)
    return cfg


def _benchmark_and_model(
    out: Path, cfg, aligned: float, frame_traces: float, stages: Stages, two_stage: bool = False
) -> None:
    """The shortcut benchmark (``aligned`` of its training rows framed on the answer, ``frame_traces`` of
    those with a reference trace that reads the frame) and the tiny model, as the demo builds them.
    ``two_stage``: bench/ with every trace reading the tone, and bench_frame/ with the same items and the
    frame traces (the generator draws the cue and the trace choice from their own streams, so only the
    traces differ)."""
    from .data.synth import SynthSpec, benchmark_corpus, generate
    from .data.synth_shortcut import FRAME_CORPUS
    from .model.tiny import build_tiny

    d = cfg.demo
    spec = SynthSpec(
        d.seed,
        d.difficulty,
        families=("shortcut_where",),
        shortcut=aligned,
        heldout=PARTS,
        frame_traces=0.0 if two_stage else frame_traces,
    )
    sizes = {"train": d.train_items, "test": d.test_items}
    stages.run("benchmark", lambda: generate(out / "bench", sizes, spec))
    if two_stage:
        framed = replace(spec, frame_traces=frame_traces)
        stages.run(
            "benchmark, frame traces", lambda: generate(out / "bench_frame", {"train": d.train_items}, framed)
        )
    corpus = benchmark_corpus() + (list(FRAME_CORPUS) if frame_traces else [])
    stages.run(
        "tiny model",
        lambda: build_tiny(
            out / "model", d.hidden, d.layers, d.vocab, d.seed, corpus, d.rope_theta, d.family
        ),
    )


def run_experiment(
    out: Path,
    recipe: Path | None = None,
    overrides: list[str] | None = None,
    arms: list[str] | None = None,
    aligned: float = 0.8,
    echo=print,
    frame_traces: float = 0.0,
    frame_stage_steps: int = 0,
    grounding_weight: float = 1.0,
) -> dict[str, Any]:
    """Run every stage into ``out`` (earlier outputs there are removed); returns the summary."""
    from .eval.evaluate import evaluate
    from .rl.trainer import train
    from .sft import sft

    recipe, overrides, arms = recipe or RECIPE, list(overrides or []), list(arms or ARMS)
    if bad := [a for a in arms if a not in ARMS]:
        raise UserError(f"unknown arm(s) {bad}; valid: {', '.join(ARMS)}")
    if frame_stage_steps < 0 or (frame_stage_steps and not frame_traces):
        raise UserError("--frame-stage-steps must be >= 0 and needs --frame-traces > 0")
    base = "sft_frame" if frame_stage_steps else "sft"
    cfg = _config(out, recipe, overrides)
    for arm in arms:
        _config(
            out, recipe, overrides, arm, base, grounding_weight
        )  # a bad override fails now, not after the SFT
    check_output_dir(out, "--out", "shortcut experiment", own=DEMO_MARKS)  # never a user's own model/
    for name in ("bench", "bench_frame", "model", "sft", "sft_frame", "eval_base", *ARMS):
        shutil.rmtree(out / name, ignore_errors=True)
    for arm in ARMS:
        shutil.rmtree(out / f"eval_{arm}", ignore_errors=True)
    stages = Stages(60, echo)
    _benchmark_and_model(out, cfg, aligned, frame_traces, stages, two_stage=bool(frame_stage_steps))
    stages.run("SFT cold start", lambda: sft(cfg))
    if frame_stage_steps:
        frame_cfg = second_sft_stage(
            cfg, out / "sft" / "final", out / "bench_frame" / "train.json", out / base, frame_stage_steps
        )
        stages.run("SFT, frame stage", lambda: sft(frame_cfg))
    e, test = cfg.eval, out / "bench" / "test.json"
    kwargs = dict(ablate=["audio", "image"], batch_size=e.batch_size, max_new_tokens=e.max_new_tokens)
    kwargs.update(template=e.template, decoding=e.decoding, max_pixels=cfg.data.max_pixels)
    results = {
        "base": stages.run(
            "evaluate base", lambda: evaluate(out / base / "final", test, out / "eval_base", **kwargs)
        )
    }
    costs = {}
    for arm in arms:
        arm_cfg = _config(out, recipe, overrides, arm, base, grounding_weight)
        stages.run(f"GRPO {arm}", lambda c=arm_cfg: train(c))
        costs[arm] = step_cost(out / arm / "metrics.jsonl")
        results[arm] = stages.run(
            f"evaluate {arm}", lambda a=arm: evaluate(out / a / "final", test, out / f"eval_{a}", **kwargs)
        )
    summary = {
        "aligned_fraction": aligned,
        "frame_traces": frame_traces,
        "frame_stage_steps": frame_stage_steps,
        "grounding_weight": grounding_weight,
        "grpo_steps": cfg.train.max_steps,
        "group_size": cfg.rollout.num_generations,
        "counterfactual_samples": cfg.algo.counterfactual_samples,
        "models": {name: model_block(s) for name, s in results.items()},
        "step_cost": costs,
        "seconds": stages.seconds,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    echo("\n" + summary_markdown(summary))
    return summary


def model_block(summary: dict[str, Any]) -> dict[str, Any]:
    """Accuracy [CI] and n per shortcut part, and each ablation's drop (all items and per part)."""
    conds = summary["conditions"]
    by = conds["none"]["by"].get("shortcut", {})
    block: dict[str, Any] = {
        "accuracy": conds["none"]["accuracy"],
        "parts": {p: {k: by[p][k] for k in ("accuracy", "ci95", "n")} for p in PARTS if p in by},
    }
    for ablated in ("audio", "image"):
        if ablated in conds:
            block[f"{ablated}_drop"] = conds[ablated]["drop"]
            block[f"{ablated}_drop_by"] = conds[ablated]["drop_by"].get("shortcut", {})
    return block


def step_cost(metrics_path: Path) -> dict[str, float]:
    """Mean step time and the counterfactual pass's share of it, from a run's metrics.jsonl."""
    from .runlog import read_jsonl

    rows = read_jsonl(metrics_path)
    step = sum(r["step_time"] for r in rows) / max(len(rows), 1)
    cf = sum(r.get("time/counterfactual", 0.0) for r in rows) / max(len(rows), 1)
    return {"step_s": step, "counterfactual_s": cf, "counterfactual_fraction": cf / step if step else 0.0}


def _pct(block: dict | None) -> str:
    if not block:
        return "-"
    lo, hi = block["ci95"]
    return f"{100 * block['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={block['n']})"


def summary_markdown(s: dict[str, Any]) -> str:
    header = "| model | broken | neutral (none) | aligned | audio-ablation drop | image-ablation drop |"
    lines = [
        "# Visual shortcut vs grounding (echoink.shortcut_experiment)",
        "",
        f"Train: {100 * s['aligned_fraction']:.0f}% of items framed on the answer, "
        f"{100 * s.get('frame_traces', 0.0):.0f}% of those with a cold-start trace that reads the frame"
        + (
            f" (in a second SFT stage of {s['frame_stage_steps']} steps)"
            if s.get("frame_stage_steps")
            else ""
        )
        + f"; grounding weight {s.get('grounding_weight', 1.0):g}. "
        "Held-out test: broken / "
        f"neutral / aligned thirds. GRPO {s['grpo_steps']} steps, G = {s['group_size']}, "
        f"M = {s['counterfactual_samples']} counterfactual answers per prompt; greedy decoding; 95% Wilson CIs.",
        "",
        header,
        "|---|---|---|---|---|---|",
    ]
    for name, m in s["models"].items():
        parts = [_pct(m["parts"].get(p)) for p in PARTS]
        drops = [f"{100 * m[k]:+.1f} pts" if k in m else "-" for k in ("audio_drop", "image_drop")]
        lines.append(f"| {name} | " + " | ".join(parts + drops) + " |")
    lines += ["", "Step cost (mean over the run): "]
    for arm, c in s["step_cost"].items():
        lines.append(
            f"- {arm}: {c['step_s']:.2f} s/step, counterfactual pass {c['counterfactual_s']:.2f} s "
            f"({100 * c['counterfactual_fraction']:.0f}% of the step)"
        )
    lines += ["", "Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/shortcut"))
    p.add_argument("--recipe", type=Path, default=RECIPE)
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--aligned", type=float, default=0.8, help="fraction of train items framed on the answer")
    p.add_argument(
        "--frame-traces",
        type=float,
        default=0.3,
        help="fraction of framed training items whose cold-start trace reads the frame, not the tone "
        "(0.3: a frame route sampled about a third of the time, not yet the greedy one; docs/grounding.md)",
    )
    p.add_argument(
        "--frame-stage-steps",
        type=int,
        default=300,
        help="> 0: a two-stage cold start, every trace reading the tone first, then this many SFT steps "
        "with --frame-traces of the framed items reading the frame",
    )
    p.add_argument(
        "--grounding-weight",
        type=float,
        default=2.0,
        help="the grounded arm's grounding reward weight "
        "(2: the reward stops favouring the frame once the policy answers half the items without audio)",
    )
    p.add_argument("--set", action="append", default=[], dest="overrides", help="recipe override key=value")
    a = p.parse_args(argv)
    arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    # Bad arguments and overrides end in one line (argparse's "error:", exit 2) before any work; an
    # error later, in a stage, keeps its traceback.
    if bad := [x for x in arms if x not in ARMS]:
        p.error(f"unknown arm(s) {bad}; valid: {', '.join(ARMS)}")
    if a.frame_stage_steps < 0 or (a.frame_stage_steps and not a.frame_traces):
        p.error("--frame-stage-steps must be >= 0 and needs --frame-traces > 0")
    try:
        for arm in [None, *arms]:
            _config(a.out, a.recipe, a.overrides, arm, weight=a.grounding_weight)
    except ConfigError as err:
        p.error(str(err))
    run_experiment(
        a.out, a.recipe, a.overrides, arms, a.aligned, frame_traces=a.frame_traces,
        frame_stage_steps=a.frame_stage_steps, grounding_weight=a.grounding_weight,
    )  # fmt: skip


if __name__ == "__main__":
    main()
