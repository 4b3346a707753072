"""The ``echoink`` command line. Each subcommand is a thin call into one module."""

from __future__ import annotations

from pathlib import Path

import typer

from .cli_app import app, lab, model_app, run
from .cli_errors import one_process_only
from .outdir import check_output_dir

__all__ = ["app", "run"]


@model_app.command("tiny")
def model_tiny(
    out: Path = typer.Option(
        ..., "--out", help="Directory to write the model, tokenizer and processor into."
    ),
    hidden: int = typer.Option(64, min=16, max=512, help="Text hidden size (a multiple of --head-dim)."),
    layers: int = typer.Option(2, min=1, help="Text decoder layers."),
    vocab: int = typer.Option(
        1024, min=1024, max=8192, help="Embedding rows (tokenizer size is at most this)."
    ),
    seed: int = typer.Option(0, help="Weight initialisation seed."),
    rope_theta: float = typer.Option(
        1e6, min=1.0, help="Rotary base; small values (e.g. 10) let a tiny model read image columns."
    ),
    corpus: list[Path] = typer.Option(
        [], "--corpus", help="Extra text file(s) to train the tokenizer on, one line per example."
    ),
    family: str = typer.Option("qwen2.5-omni", "--family", help="Model family: qwen2.5-omni or qwen3-omni."),
    head_dim: int = typer.Option(
        16, "--head-dim", min=8, max=256, help="Text attention head width (vLLM's CPU build needs >= 32)."
    ),
) -> None:
    """Build a tiny random Omni thinker (Qwen2.5-Omni or Qwen3-Omni MoE) + locally trained tokenizer +
    the real processor (seconds, offline)."""
    testing = lab("testing")
    if family not in testing.TINY_FAMILIES:
        valid = ", ".join(testing.TINY_FAMILIES)
        typer.echo(f"error: --family: unknown family {family!r}; valid: {valid}", err=True)
        raise typer.Exit(2)
    extra = [line for path in corpus for line in path.read_text().splitlines() if line.strip()]
    check_output_dir(out, "--out", "model tiny")  # a trained model's weights and recipe card stay
    path = testing.build_tiny(
        out, hidden=hidden, layers=layers, vocab=vocab, seed=seed, extra_corpus=extra, rope_theta=rope_theta,
        family=family, head_dim=head_dim,
    )  # fmt: skip
    typer.echo(f"tiny {family} thinker written to {path}")


def _recipe(recipe: Path, overrides: list[str]):
    """Load a recipe + overrides and check the files it names (errors reach ``run`` as one line)."""
    from .config import load_config
    from .preflight import check_kernels, check_names, check_recipe_inputs, check_vllm_platform

    cfg = load_config(recipe, overrides)
    check_names(cfg)
    check_kernels(cfg)  # before the data and model checks: the first thing a GPU recipe meets
    check_recipe_inputs(cfg)
    check_vllm_platform(cfg)
    return cfg


@app.command("train")
def train_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe (see configs/)."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set train.lr=1e-6 (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory (the recipe's train.output_dir)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in train.output_dir."
    ),
    allow_config_change: bool = typer.Option(
        False,
        "--allow-config-change",
        help="With --resume: apply changes to the recipe (lr, schedule, rollout, algo...), a split's content "
        "or the number of processes from the current step (recorded in config_history.jsonl) instead of "
        "refusing them.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Start even when a step's least memory (weights, rollout) exceeds the machine's.",
    ),
) -> None:
    """Train with GRPO (rollout -> rewards -> advantages -> policy update); writes a run directory."""
    from .preflight import check_run_record
    from .preflight_model import check_training_model
    from .rl.trainer import train
    from .runlock import run_lock

    cfg = _recipe(recipe, [*overrides, *_out_override("train.output_dir", out)])
    check_training_model(cfg, force)  # engine, lengths, memory: before the lock, the record, any load
    check_run_record(cfg.train.output_dir)
    with run_lock(cfg.train.output_dir):
        run_dir = train(cfg, resume=resume, allow_config_change=allow_config_change)
    typer.echo(f"run directory: {run_dir}")
    split = cfg.data.val_path or "SPLIT"
    typer.echo(
        f"next: echoink eval --model {run_dir} --data {split} --out {run_dir}/eval; echoink report {run_dir}"
    )


@app.command("sft")
def sft_cmd(
    recipe: Path = typer.Argument(..., help="YAML recipe; uses the data, model and sft sections."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Dotted override, e.g. --set sft.max_steps=100 (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (the recipe's sft.output_dir)."),
) -> None:
    """Supervised fine-tuning on the rows' reference reasoning traces (the cold start before GRPO).

    A GRPO recipe serves as is: its GRPO-only settings (validation during training, keep_best, the
    vLLM importance-sampling cap) are not read here, so they are not checked either."""
    from .runlock import run_lock
    from .sft import sft

    one_process_only("sft")
    cfg = _recipe(recipe, [*overrides, *_out_override("sft.output_dir", out), *SFT_IGNORES])
    with run_lock(cfg.sft.output_dir):
        done = sft(cfg)
    typer.echo(f"fine-tuned model: {done / 'final'}")
    typer.echo(f"next: echoink train {recipe} --set model.path={done / 'final'}")


SFT_IGNORES = ("train.eval_every=0", "train.keep_best=false", "algo.rollout_is_cap=0")
"""GRPO-only settings sft neither reads nor checks (a GRPO recipe's validation needs data.val_path)."""


def _out_override(field: str, out: Path | None) -> list[str]:
    """``--out DIR`` as the recipe override it stands for (``--out`` wins over a ``--set`` of the same field)."""
    return [] if out is None else [f"{field}={out}"]


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory for every stage's output."),
    budget_minutes: float = typer.Option(
        None, "--budget-minutes", min=0, help="Warn when the stages take longer (default 15; video 40)."
    ),
    recipe: Path = typer.Option(
        None,
        "--config",
        help="Demo recipe: an echoink recipe + a demo: section (default: the lab's demo.yaml).",
    ),
    overrides: list[str] = typer.Option([], "--set", help="Dotted override, e.g. --set train.max_steps=10."),
    modality: str = typer.Option(
        "image",
        "--modality",
        help="image (the lab's recipes/demo.yaml) or video (recipes/demo_video.yaml, runs/demo-video).",
    ),
) -> None:
    """The main job: benchmark -> tiny Omni model -> SFT -> evaluate -> GRPO -> evaluate -> summary."""
    demo = lab("demo")
    one_process_only("demo")
    if modality not in ("image", "video"):
        raise typer.BadParameter(f"--modality must be image or video, got {modality!r}")
    if modality == "video":
        recipe = recipe or demo.VIDEO_RECIPE
        out = Path("runs/demo-video") if out == Path("runs/demo") else out
    if budget_minutes is None:
        budget_minutes = 40.0 if modality == "video" else 15.0
    demo.run_demo(out, budget_minutes, recipe, overrides, echo=typer.echo)


# Last, so ``echoink --help`` lists train, sft and demo before the evaluation side.
from . import cli_data, cli_bench, cli_eval, doctor  # noqa: E402,F401,I001  (register data, eval, export, compare, ..., doctor)
from .cli_data import TEMPLATE_NAMES  # noqa: E402,F401  (the names `--help` lists; a test holds them to the registry)

if __name__ == "__main__":
    run()
