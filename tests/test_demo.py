"""The demo pipeline at toy size: every artefact is written and well-formed (no accuracy is asserted here)."""

import json
import math

from echoink.demo import run_demo


def test_demo_pipeline_writes_every_artefact(tmp_path):
    out = tmp_path / "demo"
    lines: list[str] = []
    overrides = [
        "demo.train_items=40", "demo.test_items=8", "demo.hidden=64",
        "sft.max_steps=3", "sft.batch_size=4", "sft.warmup_steps=0",
        "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=12", "eval.max_new_tokens=12", "eval.batch_size=4", "train.rollouts_every=1",
    ]  # fmt: skip
    summary = run_demo(out, budget_minutes=15, overrides=overrides, echo=lines.append)
    for path in [
        "bench/train.json", "bench/test.json", "model/config.json", "sft/final/config.json", "sft/metrics.jsonl",
        "eval_base/summary.json", "eval_base/predictions.jsonl", "grpo/metrics.jsonl", "grpo/rollouts.jsonl",
        "grpo/final/config.json", "eval_grpo/summary.json", "summary.json", "summary.md",
        "sft/final/echoink_recipe.json", "grpo/final/echoink_recipe.json",
    ]:  # fmt: skip
        assert (out / path).is_file(), path
    # The demo keeps the prompt it was tuned with; each final/ carries it for `echoink eval`.
    assert summary["prompt"] == "reasoning_short"
    sft_recipe = json.loads((out / "sft/final/echoink_recipe.json").read_text())["eval"]
    grpo_recipe = json.loads((out / "grpo/final/echoink_recipe.json").read_text())["eval"]
    assert sft_recipe == {"template": "reasoning_short", "max_audio_seconds": None, "max_pixels": 50176}
    assert grpo_recipe == {**sft_recipe, "max_new_tokens": 12}
    assert json.loads((out / "summary.json").read_text()) == summary
    for model in ("base", "grpo"):
        block = summary[model]
        assert block["n"] == 8
        lo, hi = block["ci95"]
        assert 0 <= lo <= block["accuracy"] <= hi <= 1
        assert 0 <= block["format_rate"] <= 1
        assert set(block["both_items"]) == {"full", "audio_removed", "image_removed"}
    assert math.isclose(
        summary["gain_points"], 100 * (summary["grpo"]["accuracy"] - summary["base"]["accuracy"])
    )
    assert set(summary["seconds"]) >= {"benchmark", "tiny model", "SFT cold start", "GRPO", "evaluate GRPO"}
    assert summary["figures"] and all((out / f).is_file() for f in summary["figures"])
    md = (out / "summary.md").read_text()
    assert "| accuracy (95% CI) |" in md and "audio -> silence" in md
    assert md in "\n".join(lines)
