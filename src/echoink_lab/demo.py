"""The main job on a CPU: benchmark -> tiny Omni model -> SFT cold start -> GRPO -> fair evaluation.

Every stage is the library's own public path (the same functions the CLI calls); the demo only
chooses sizes (its recipe, ``recipes/demo.yaml``: an echoink ``Config`` plus the lab's ``demo:``
section) and writes ``summary.md`` / ``summary.json`` in the run directory.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from echoink.config import Config
from echoink.outdir import check_output_dir
from echoink.preflight import check_names

from .demo_summary import ABLATIONS, build_summary, model_block, summary_markdown
from .recipe import DemoConfig, load_lab_recipe, recipe, save_lab_recipe

log = logging.getLogger(__name__)
DEFAULT_RECIPE = recipe("demo.yaml")
VIDEO_RECIPE = recipe("demo_video.yaml")


class Stages:
    """Runs named stages, timing each and warning when the budget is spent."""

    def __init__(self, budget_minutes: float, echo: Callable[[str], None]) -> None:
        self.budget_s, self.echo = budget_minutes * 60, echo
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.echo(f"\n== {name} ==")
        t0 = time.perf_counter()
        result = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        spent = time.perf_counter() - self.start
        self.echo(
            f"   {name}: {self.seconds[name]:.0f} s (total {spent / 60:.1f} of {self.budget_s / 60:.0f} min)"
        )
        if spent > self.budget_s:
            self.echo(f"   warning: over the {self.budget_s / 60:.0f}-minute budget")
        return result


def demo_config(
    out: Path, source: Path | Traversable | None = None, overrides: list[str] | None = None
) -> tuple[Config, DemoConfig]:
    """The demo recipe with every path placed under ``out``: echoink's ``Config`` and the demo's section."""
    paths = [
        f"data.train_path={out / 'bench' / 'train.json'}",
        f"model.path={out / 'model'}",
        f"sft.output_dir={out / 'sft'}",
        f"train.output_dir={out / 'grpo'}",
    ]
    cfg, d = load_lab_recipe(source or DEFAULT_RECIPE, paths + list(overrides or []))
    check_names(cfg)
    return cfg, d


def run_demo(
    out: Path,
    budget_minutes: float = 15,
    source: Path | Traversable | None = None,
    overrides: list[str] | None = None,
    echo=print,
) -> dict[str, Any]:
    """Run every stage into ``out``; returns the summary (also written to summary.json / summary.md)."""
    from echoink.eval.analysis import analyze
    from echoink.eval.evaluate import evaluate
    from echoink.sft import sft
    from echoink.testing import build_tiny

    cfg, d = demo_config(out, source, overrides)
    clear_previous(out)
    stages = Stages(budget_minutes, echo)
    counts = {"train": d.train_items, "test": d.test_items}
    corpus = stages.run("benchmark", lambda: make_benchmark(out / "bench", counts, d))
    # after the benchmark (its synth.yaml marks the folder as a demo's): the demo's knobs and the recipe
    # it ran, since a GRPO run's config.yaml holds none of them
    save_lab_recipe(cfg, d, out / "recipe.yaml")
    model_dir = out / "model"
    stages.run(
        "tiny model",
        lambda: build_tiny(
            model_dir,
            d.hidden,
            d.layers,
            d.vocab,
            d.seed,
            corpus,
            d.rope_theta,
            d.family,
            audio_conv_gain=d.audio_conv_gain,
        ),
    )
    stages.run("SFT cold start", lambda: sft(cfg))
    base_dir = glance_stage(out, cfg, d, stages) if d.glance_stage_steps else out / "sft" / "final"
    kwargs = eval_kwargs(cfg, d)
    test = out / "bench" / "test.json"
    base = stages.run("evaluate base", lambda: evaluate(base_dir, test, out / "eval_base", **kwargs))
    base_pass = base_sampled(out, base_dir, test, kwargs, d, stages)
    cfg.model.path = str(base_dir)  # GRPO starts from the SFT model
    runs = grpo_runs(out, cfg, d, stages, test, kwargs)
    analysis = stages.run("curves + aha analysis", lambda: analyze(out / "grpo", out / "analysis"))
    summary = build_summary(base, runs[0][2], stages.seconds, cfg, d)
    summary |= honest_fields(out, base, runs, base_pass, d)
    summary["figures"] = [str(Path(f).relative_to(out)) for f in analysis["files"] if f.endswith(".png")]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    echo("\n" + summary_markdown(summary))
    _report(out, echo)
    return summary


def base_sampled(
    out: Path, base_dir: Path, test: Path, kwargs: dict[str, Any], d: DemoConfig, stages: Stages
) -> dict[str, float] | None:
    """The base's pass@k (``demo.base_samples`` samples per item at T = 1, no ablation), or None when off."""
    from echoink.eval.evaluate import evaluate
    from echoink.scoring.predict import Decoding

    if not d.base_samples:
        return None
    sampled = kwargs | {"ablate": [], "decoding": Decoding("sample", d.base_samples, 1.0, 1.0, d.seed)}
    done = stages.run(
        f"sample base x{d.base_samples}",
        lambda: evaluate(base_dir, test, out / "eval_base_sampled", **sampled),
    )
    return done["conditions"]["none"].get("pass@k")


def grpo_runs(
    out: Path, cfg: Config, d: DemoConfig, stages: Stages, test: Path, kwargs: dict[str, Any]
) -> list[tuple[int, str, dict[str, Any]]]:
    """GRPO from the base with seeds ``train.seed`` .. + ``demo.grpo_seeds`` - 1, each evaluated; returns
    (seed, run name, evaluation summary). The first keeps the names grpo/ and eval_grpo/ (the report's)."""
    from echoink.eval.evaluate import evaluate
    from echoink.rl.trainer import train

    runs = []
    for i in range(d.grpo_seeds):
        seed = cfg.train.seed + i
        name = "grpo" if i == 0 else f"grpo_seed{seed}"
        run_cfg = copy.deepcopy(cfg)
        run_cfg.train.seed, run_cfg.train.output_dir = seed, str(out / name)
        label = "GRPO" if i == 0 else f"GRPO seed {seed}"
        stages.run(label, lambda c=run_cfg: train(c))
        done = stages.run(
            f"evaluate {label}", lambda n=name: evaluate(out / n / "final", test, out / f"eval_{n}", **kwargs)
        )
        runs.append((seed, name, done))
    return runs


def honest_fields(
    out: Path, base: dict, runs: list[tuple[int, str, dict[str, Any]]], base_pass: dict | None, d: DemoConfig
) -> dict[str, Any]:
    """Per GRPO seed: accuracy, the paired test against the base and its verdict; the base's pass@k; for
    video, the desync diagnostic of every model and the glance stage's wrong-letter targets."""
    from .demo_honest import desync_diagnostic, glance_targets, paired_vs_base, seed_verdict

    b = model_block(base, d.modality)
    seeds = []
    for seed, name, done in runs:
        g = model_block(done, d.modality)
        paired = paired_vs_base(out / "eval_base", out / f"eval_{name}")
        seeds.append({"seed": seed, "run": name, "accuracy": g["accuracy"], "ci95": g["ci95"],
                      "paired": paired} | seed_verdict(b, g, paired))  # fmt: skip
    fields: dict[str, Any] = {"grpo_seeds": seeds, "base_pass_at_k": base_pass}
    if d.modality == "video":
        rows = json.loads((out / "bench" / "test.json").read_text(encoding="utf-8"))
        models = {"base": "eval_base"} | {s["run"]: f"eval_{s['run']}" for s in seeds}
        fields["desync"] = {m: desync_diagnostic(out / e, rows) for m, e in models.items()}
    if d.glance_stage_steps:
        fields["glance_targets"] = glance_targets(out / "bench" / "train_glance.json")
    return fields


def glance_stage(out: Path, cfg: Config, d: DemoConfig, stages: Stages) -> Path:
    """The second cold-start stage on the glance traces (after the first SFT); returns its model."""
    from echoink.sft import sft

    glance = out / "bench" / "train_glance.json"
    stages.run("glance traces", lambda: write_glance_split(out / "bench", glance, d))
    glance_cfg = second_sft_stage(
        cfg, out / "sft" / "final", glance, out / "sft_glance", d.glance_stage_steps
    )
    stages.run("SFT, glance stage", lambda: sft(glance_cfg))
    return out / "sft_glance" / "final"


def eval_kwargs(cfg: Config, d: DemoConfig) -> dict[str, Any]:
    """``evaluate``'s settings for both models: the recipe's eval section and the modality's ablations."""
    e = cfg.eval
    return dict(
        ablate=list(ABLATIONS[d.modality]), batch_size=e.batch_size, max_new_tokens=e.max_new_tokens,
        template=e.template, decoding=e.decoding, max_pixels=cfg.data.max_pixels, video=cfg.data.video(),
    )  # fmt: skip


def _report(out: Path, echo) -> None:
    """RUN/report.html (grpo/, eval_base/, eval_grpo/: charts, curves, cards) and where it is."""
    from echoink.eval.report import build_report

    report = build_report(out)
    echo(f"report: {report}  (open it in a browser; `echoink compare {out}/eval_base/summary.json "
         f"{out}/eval_grpo/summary.json` for the paired test)")  # fmt: skip


def make_benchmark(out: Path, counts: dict[str, int], d) -> list[str]:
    """Write the demo's benchmark (image+audio families, or the video family); returns a tokenizer corpus."""
    if d.modality == "video":
        from .synth_video import VideoSpec, generate_video, video_corpus

        generate_video(out, counts, VideoSpec(seed=d.seed, palette=d.video_palette, trace=d.video_trace))
        return video_corpus(palette=d.video_palette, style=d.video_trace)
    from .synth import SynthSpec, benchmark_corpus, generate

    families = {"families": tuple(d.families)} if d.families else {}  # empty: every family
    generate(out, counts, SynthSpec(seed=d.seed, difficulty=d.difficulty, **families))
    return benchmark_corpus()


def write_glance_split(bench: Path, dst: Path, d) -> None:
    """The training split with ``d.glance_traces`` of its traces swapped for the one-frame glance (each
    clip's colours re-planned from the spec the benchmark stage recorded in ``synth.yaml``)."""
    import dataclasses

    import yaml

    from .synth_video import VideoSpec, glance_rows

    manifest = yaml.safe_load((bench / "synth.yaml").read_text(encoding="utf-8"))
    spec = VideoSpec(**{f.name: manifest[f.name] for f in dataclasses.fields(VideoSpec)})
    rows = json.loads((bench / "train.json").read_text(encoding="utf-8"))
    dst.write_text(json.dumps(glance_rows(rows, spec, d.glance_traces), indent=1) + "\n", encoding="utf-8")


def second_sft_stage(cfg: Config, start: Path, train_path: Path, output_dir: Path, steps: int) -> Config:
    """The SFT settings of a second cold-start stage: ``steps`` more steps from the model at ``start``,
    on ``train_path`` (the same items with other traces), warm-up shortened to a quarter of the stage."""
    second = copy.deepcopy(cfg)
    second.model.path, second.data.train_path = str(start), str(train_path)
    second.sft.output_dir, second.sft.max_steps = str(output_dir), steps
    second.sft.warmup_steps = min(cfg.sft.warmup_steps, steps // 4)
    return second


DEMO_MARKS = ("summary.json", "bench/synth.yaml")
"""What shows a folder is an earlier demo's: its summary, or the benchmark its first stage wrote."""
STAGE_OUTPUTS = (
    "bench",
    "model",
    "sft",
    "sft_glance",
    "grpo",
    "eval_base",
    "eval_base_sampled",
    "eval_grpo",
    "analysis",
    "summary.json",
    "summary.md",
    "recipe.yaml",
    "report.html",
)


def clear_previous(out: Path) -> None:
    """Remove an earlier demo's outputs: evaluation resumes by item id and GRPO refuses a used run dir.

    Only from a folder an earlier demo (or experiment) wrote: in any other, a ``model/`` or ``bench/``
    is the user's own, and is refused (``outdir``) instead of removed."""
    import shutil

    check_output_dir(out, "--out", "demo", own=DEMO_MARKS)
    extra_seeds = [p.name for p in [*out.glob("grpo_seed*"), *out.glob("eval_grpo_seed*")]]
    for name in [*STAGE_OUTPUTS, *extra_seeds]:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
