"""Does GRPO take a visual shortcut, and does grounding stop it? One rerunnable experiment on a CPU.

    python -m echoink_lab.shortcut_experiment --out runs/shortcut [--recipe recipes/shortcut_cpu.yaml]
        [--arms paper,grounded,filtered,credit,placebo,conflict,sft_only] [--aligned 0.8] [--frame-traces 0.3]
        [--frame-stage-steps 300] [--conflict-frames 0.3] [--set train.max_steps=100 ...]
        [--seeds 3 --one-seed-arms grounded,filtered,conflict,sft_only]

Stages (each the library's public path, as in ``echoink_lab.demo``): the ``shortcut_where`` benchmark with a
fraction ``--aligned`` of training items framed on the answer (``--frame-traces`` of those with a
cold-start trace that reads the frame instead of the tone) and a held-out split in three equal
parts (broken, none, aligned), a tiny model, an SFT cold start (the common base; with
``--frame-stage-steps K``, two stages: every trace reads the tone for ``sft.max_steps``, then K steps on
the same items with ``--frame-traces`` of the framed ones reading the frame), then for each arm
GRPO from that base for the same steps and seed, and an evaluation of every model with both
ablations. Arms: ``paper`` (accuracy + format), ``grounded`` (+ the grounding reward, weight 1),
``filtered`` (paper rewards + ``algo.drop_unimodal_groups``). ``summary.md`` / ``summary.json``: accuracy
with 95% CIs on each part, the audio- and image-ablation drops, and the counterfactual pass's cost.

One ``ExperimentSpec`` holds the knobs and their one set of defaults (the measured run's,
docs/grounding.md), and its ``arm_config`` is the one place an arm's GRPO config is made: this module's
``main`` and ``run_experiment`` and ``bench/shortcut_more_aligned.py`` all go through it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from echoink.config import Config
from echoink.errors import UserError
from echoink.outdir import check_output_dir
from echoink.preflight import check_names

from .demo import DEMO_MARKS, Stages, second_sft_stage
from .recipe import DemoConfig, load_lab_recipe, recipe
from .shortcut_summary import PARTS, model_block, step_cost, summary_markdown

RECIPE = recipe("shortcut_cpu.yaml")
ARMS = ("paper", "grounded", "filtered", "credit", "placebo", "conflict", "sft_only")
"""paper: the recipe's rewards (accuracy + format, weights 1, 1); grounded: + the grounding reward
(weight ``grounding_weight``); filtered: the paper's rewards + ``algo.drop_unimodal_groups``; credit: + the
per-completion ``modality_credit`` reward (weight ``CREDIT_WEIGHT``); placebo: the same, its values
permuted across the batch's prompts (same magnitude, no information); conflict: the paper's rewards on
a training split with ``conflict_frames`` of its items framed on a wrong object (conflict data);
sft_only: no GRPO, the cold start continued with SFT for GRPO's compute (``SFT_ONLY``)."""
SFT_ONLY = (
    "the cold start's last stage continued for as many optimizer steps as GRPO takes (train.max_steps), "
    "each on as many items as GRPO's prompts per step (sft.batch_size = train.prompts_per_step), on the "
    "same traces as that stage; GRPO's G completions per prompt are not matched (SFT has one target each)"
)
"""The equivalence the ``sft_only`` arm uses for "GRPO's compute": optimizer steps x prompts."""
CREDIT_WEIGHT = 0.4  # with algo.credit_clip 1: a right answer always out-earns a wrong one (2 · 0.4 < 1)


@dataclass(frozen=True)
class ExperimentSpec:
    """One shortcut experiment: its recipe, overrides, arms and knobs. The defaults are the measured
    run's (docs/grounding.md), the same for every caller."""

    recipe: Path | Traversable = RECIPE
    """The lab recipe (an echoink ``Config`` + a ``demo:`` section for the benchmark and tiny model)."""
    overrides: tuple[str, ...] = ()
    """Dotted recipe overrides (``demo.train_items=32``, ``train.max_steps=100``), before each arm's."""
    arms: tuple[str, ...] = ARMS
    """The GRPO arms to train, each from the same base and seed."""
    aligned: float = 0.8
    """Fraction of training items framed on the answer."""
    frame_traces: float = 0.3
    """Fraction of framed training items whose cold-start trace reads the frame, not the tone (0.3: a
    frame route sampled about a third of the time, not yet the greedy one)."""
    frame_stage_steps: int = 300
    """> 0: a two-stage cold start, every trace reading the tone first, then this many SFT steps with
    ``frame_traces`` of the framed items reading the frame."""
    grounding_weight: float = 2.0
    """The grounded arm's grounding reward weight w (2: the reward stops favouring the frame once the
    policy answers half the items without audio)."""
    conflict_frames: float = 0.3
    """The conflict arm's share of RL training items framed on a wrong object, out of the ``aligned``
    share (0.3 of 0.8: the frame on the answer on 5 of 8 framed items, no longer a rule to follow)."""

    ablate: tuple[str, ...] = ("audio", "image")
    """The ablations every model is also evaluated under (the seeds mode keeps only audio: its drop and each
    part with the audio silenced are what the issue asks for, and a third of the evaluation time goes)."""

    def __post_init__(self) -> None:
        if bad := [a for a in self.arms if a not in ARMS]:
            raise UserError(f"unknown arm(s) {bad}; valid: {', '.join(ARMS)}")
        if self.frame_stage_steps < 0 or (self.frame_stage_steps and not self.frame_traces):
            raise UserError("--frame-stage-steps must be >= 0 and needs --frame-traces > 0")
        if not 0.0 <= self.conflict_frames <= self.aligned:
            raise UserError("--conflict-frames must be in [0, --aligned] (a share of the framed items)")

    @property
    def base(self) -> str:
        """The folder (under the experiment's ``--out``) of the SFT model every arm starts from."""
        return "sft_frame" if self.frame_stage_steps else "sft"

    def arm_overrides(self, arm: str) -> list[str]:
        """An arm's recipe changes. The grounding weight w sets where the reward stops pushing: a correct
        answer earns 1 - w * P_cf(gold) against a wrong one's 0, so a shortcut is rewarded until
        P_cf(gold) (the policy's accuracy without audio) reaches 1 / w; at w = 1 only a complete one."""
        credit = f"algo.rewards={{accuracy: 1.0, format: 1.0, modality_credit: {CREDIT_WEIGHT}}}"
        return {
            "grounded": [f"algo.rewards={{accuracy: 1.0, format: 1.0, grounding: {self.grounding_weight}}}"],
            "filtered": ["algo.drop_unimodal_groups=true"],
            "credit": [credit],
            "placebo": [credit, "algo.credit_placebo=true"],
        }.get(arm, [])

    def load(self, paths: list[str], arm: str | None = None) -> tuple[Config, DemoConfig]:
        """The recipe with ``paths``, the overrides and ``arm``'s changes (names checked)."""
        extra = self.arm_overrides(arm) if arm else []
        cfg, d = load_lab_recipe(self.recipe, [*paths, *self.overrides, *extra])
        check_names(cfg)
        return cfg, d

    def train_path(self, out: Path, arm: str) -> Path:
        """The split ``arm`` trains on: the conflict split for ``conflict``, for ``sft_only`` the traces
        of the cold start's last stage, the benchmark's training split otherwise."""
        if arm == "conflict":
            return out / "bench_conflict" / "train.json"
        if arm == "sft_only" and self.frame_stage_steps:
            return out / "bench_frame" / "train.json"
        return out / "bench" / "train.json"

    def sft_only_config(self, cfg: Config, out: Path) -> Config:
        """The sft_only arm: the cold start continued from its model for GRPO's steps x prompts (``SFT_ONLY``)."""
        c = second_sft_stage(
            cfg,
            out / self.base / "final",
            self.train_path(out, "sft_only"),
            out / "sft_only",
            cfg.train.max_steps,
        )
        c.sft.batch_size = cfg.train.prompts_per_step
        return c

    def arm_config(self, arm: str, train_path: Path, start: Path, output_dir: Path) -> Config:
        """``arm``'s GRPO config: from the model at ``start``, on ``train_path``, into ``output_dir``."""
        paths = [f"data.train_path={train_path}", f"model.path={start}", f"train.output_dir={output_dir}"]
        return self.load(paths, arm)[0]

    def eval_settings(self, cfg: Config) -> dict[str, Any]:
        """The settings every model of the experiment is evaluated with (no ablation)."""
        e = cfg.eval
        return dict(batch_size=e.batch_size, max_new_tokens=e.max_new_tokens, template=e.template,
                    decoding=e.decoding, max_pixels=cfg.data.max_pixels)  # fmt: skip

    def check(self, out: Path) -> tuple[Config, DemoConfig]:
        """The cold start's config and the demo section under ``out``; every arm's config is built too,
        so a bad override fails now, not after the SFT."""
        cfg, d = self.load(_cold_start_paths(out))
        for arm in self.arms:
            if arm == "sft_only":
                self.sft_only_config(cfg, out)
            else:
                self.arm_config(arm, self.train_path(out, arm), out / self.base / "final", out / arm)
        return cfg, d


def _cold_start_paths(out: Path) -> list[str]:
    return [
        f"data.train_path={out / 'bench' / 'train.json'}",
        f"model.path={out / 'model'}",
        f"sft.output_dir={out / 'sft'}",
    ]


def _benchmark_and_model(out: Path, d: DemoConfig, spec: ExperimentSpec, stages: Stages) -> None:
    """The shortcut benchmark (``spec.aligned`` of its training rows framed on the answer,
    ``spec.frame_traces`` of those with a reference trace that reads the frame) and the tiny model, as
    the demo builds them. A two-stage cold start: bench/ with every trace reading the tone, and
    bench_frame/ with the same items and the frame traces (the generator draws the cue and the trace
    choice from their own streams, so only the traces differ)."""
    from echoink.testing import build_tiny

    from .synth import SynthSpec, benchmark_corpus, generate
    from .synth_shortcut import FRAME_CORPUS

    two_stage = bool(spec.frame_stage_steps)
    synth = SynthSpec(
        d.seed,
        d.difficulty,
        families=("shortcut_where",),
        shortcut=spec.aligned,
        heldout=PARTS,
        frame_traces=0.0 if two_stage else spec.frame_traces,
    )
    sizes = {"train": d.train_items, "test": d.test_items}
    stages.run("benchmark", lambda: generate(out / "bench", sizes, synth))
    if two_stage:
        framed = replace(synth, frame_traces=spec.frame_traces)
        stages.run(
            "benchmark, frame traces", lambda: generate(out / "bench_frame", {"train": d.train_items}, framed)
        )
    if (
        "conflict" in spec.arms
    ):  # the same items, some frames moved to a wrong object (no frame traces: RL only)
        conflict = replace(synth, frame_traces=0.0, conflict_frames=spec.conflict_frames)
        stages.run(
            "benchmark, conflict frames",
            lambda: generate(out / "bench_conflict", {"train": d.train_items}, conflict),
        )
    corpus = benchmark_corpus() + (list(FRAME_CORPUS) if spec.frame_traces else [])
    stages.run(
        "tiny model",
        lambda: build_tiny(
            out / "model", d.hidden, d.layers, d.vocab, d.seed, corpus, d.rope_theta, d.family
        ),
    )


def _clear(out: Path) -> None:
    """Remove an earlier experiment's outputs (never a user's own model/: ``outdir`` refuses those)."""
    check_output_dir(out, "--out", "shortcut experiment", own=DEMO_MARKS)
    for name in ("bench", "bench_frame", "bench_conflict", "model", "sft", "sft_frame", "eval_base", *ARMS):
        shutil.rmtree(out / name, ignore_errors=True)
    for arm in ARMS:
        shutil.rmtree(out / f"eval_{arm}", ignore_errors=True)


def _cold_start(out: Path, cfg: Config, d: DemoConfig, spec: ExperimentSpec, stages: Stages) -> None:
    """Benchmark, tiny model and the SFT base every arm starts from (one or two stages)."""
    from echoink.sft import sft

    _benchmark_and_model(out, d, spec, stages)
    stages.run("SFT cold start", lambda: sft(cfg))
    if spec.frame_stage_steps:
        frame_cfg = second_sft_stage(
            cfg, out / "sft" / "final", out / "bench_frame" / "train.json", out / spec.base,
            spec.frame_stage_steps,
        )  # fmt: skip
        stages.run("SFT, frame stage", lambda: sft(frame_cfg))


def run_experiment(out: Path, spec: ExperimentSpec | None = None, echo=print) -> dict[str, Any]:
    """Run every stage into ``out`` (earlier outputs there are removed); returns the summary."""
    from echoink.eval.evaluate import evaluate

    spec = spec or ExperimentSpec()
    cfg, d = spec.check(out)
    _clear(out)
    stages = Stages(60, echo)
    _cold_start(out, cfg, d, spec, stages)
    test = out / "bench" / "test.json"
    kwargs = dict(ablate=list(spec.ablate), **spec.eval_settings(cfg))
    start = out / spec.base / "final"
    results = {
        "base": stages.run("evaluate base", lambda: evaluate(start, test, out / "eval_base", **kwargs))
    }
    costs = {}
    for arm in spec.arms:
        if cost := _train_arm(out, arm, spec, cfg, stages):
            costs[arm] = cost
        results[arm] = stages.run(
            f"evaluate {arm}", lambda a=arm: evaluate(out / a / "final", test, out / f"eval_{a}", **kwargs)
        )
    summary = {
        "aligned_fraction": spec.aligned,
        "frame_traces": spec.frame_traces,
        "frame_stage_steps": spec.frame_stage_steps,
        "grounding_weight": spec.grounding_weight,
        "conflict_frames": spec.conflict_frames if "conflict" in spec.arms else None,
        "sft_only": SFT_ONLY if "sft_only" in spec.arms else None,
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


def _train_arm(out: Path, arm: str, spec: ExperimentSpec, cfg: Config, stages: Stages) -> dict | None:
    """Train ``arm`` from the base into ``out/arm``; its step cost (None for sft_only, no GRPO steps)."""
    from echoink.rl.trainer import train
    from echoink.sft import sft

    if arm == "sft_only":
        stages.run("SFT only", lambda: sft(spec.sft_only_config(cfg, out)))
        return None
    arm_cfg = spec.arm_config(arm, spec.train_path(out, arm), out / spec.base / "final", out / arm)
    stages.run(f"GRPO {arm}", lambda: train(arm_cfg))
    return step_cost(out / arm / "metrics.jsonl")


def _parser(default: ExperimentSpec, knobs: dict[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/shortcut"))
    p.add_argument(
        "--recipe", type=Path, default=None, help="a lab recipe (default: recipes/shortcut_cpu.yaml)"
    )
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    for name, text in knobs.items():
        value = getattr(default, name)
        flag = "--" + name.replace("_", "-")
        p.add_argument(
            flag, type=type(value), default=value, help=f"{text} (default {value}; ExperimentSpec)"
        )
    p.add_argument("--set", action="append", default=[], dest="overrides", help="recipe override key=value")
    p.add_argument(
        "--seeds", type=int, default=0, help="N > 0: seeds 0..N-1 in --out/seed<s> (shortcut_seeds)"
    )
    p.add_argument(
        "--one-seed-arms",
        default="",
        help="with --seeds: arms run on seed 0 only, besides --arms (e.g. grounded,filtered,conflict,sft_only)",
    )
    return p


KNOBS = {
    "aligned": "fraction of train items framed on the answer",
    "frame_traces": "fraction of framed training items whose cold-start trace reads the frame, not the tone",
    "frame_stage_steps": "> 0: a two-stage cold start, this many SFT steps in the frame stage",
    "grounding_weight": "the grounded arm's grounding reward weight",
    "conflict_frames": "the conflict arm's share of RL training items framed on a wrong object",
}


def _arm_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> None:
    p = _parser(ExperimentSpec(), KNOBS)
    a = p.parse_args(argv)
    # Bad arguments and overrides end in one line (argparse's "error:", exit 2) before any work; an
    # error later, in a stage, keeps its traceback.
    try:
        arms, extra = _arm_list(a.arms), _arm_list(a.one_seed_arms)
        spec = ExperimentSpec(
            a.recipe or RECIPE, tuple(a.overrides), arms, **{k: getattr(a, k) for k in KNOBS}
        )
        replace(spec, arms=(*arms, *extra)).check(a.out)  # every arm any seed runs
    except ValueError as err:  # ConfigError included
        p.error(str(err))
    if a.seeds > 0:
        from .shortcut_seeds import run_seeds

        run_seeds(a.out, a.seeds, spec, run=run_experiment, one_seed_arms=extra)
        return
    run_experiment(a.out, replace(spec, arms=(*arms, *extra)) if extra else spec)


if __name__ == "__main__":
    main()
