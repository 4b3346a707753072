"""The demo pipeline at toy size: every artefact is written and well-formed (no accuracy is asserted here)."""

import json
import math

import pytest
import yaml

from echoink_lab.demo import run_demo
from echoink_lab.recipe import load_lab_recipe


@pytest.mark.parametrize("family", ["qwen2.5-omni", "qwen3-omni"])
def test_demo_pipeline_writes_every_artefact(tmp_path, family):
    """SFT, eval (with ablations), GRPO and eval again, end to end on each family's tiny model."""
    out = tmp_path / "demo"
    lines: list[str] = []
    overrides = [
        f"demo.family={family}", "demo.train_items=40", "demo.test_items=8", "demo.hidden=64",
        "sft.max_steps=3", "sft.batch_size=4", "sft.warmup_steps=0",
        "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=12", "eval.max_new_tokens=12", "eval.batch_size=4", "train.rollouts_every=1",
    ]  # fmt: skip
    summary = run_demo(out, budget_minutes=15, overrides=overrides, echo=lines.append)
    for path in [
        "bench/train.json", "bench/test.json", "model/config.json", "sft/final/config.json", "sft/metrics.jsonl",
        "eval_base/summary.json", "eval_base/predictions.jsonl", "grpo/metrics.jsonl", "grpo/rollouts.jsonl",
        "grpo/final/config.json", "eval_grpo/summary.json", "summary.json", "summary.md",
        "sft/final/echoink_recipe.json", "grpo/final/echoink_recipe.json", "report.html",
    ]:  # fmt: skip
        assert (out / path).is_file(), path
    assert lines[-1].startswith(f"report: {out / 'report.html'}")
    assert (out / "report.html").read_text().count('<svg class="chart"') == 2
    # The demo keeps the prompt it was tuned with; each final/ carries it for `echoink eval`.
    assert summary["prompt"] == "reasoning_short"
    sft_recipe = json.loads((out / "sft/final/echoink_recipe.json").read_text())["eval"]
    grpo_recipe = json.loads((out / "grpo/final/echoink_recipe.json").read_text())["eval"]
    video = {"video_fps": 2.0, "max_frames": 16, "max_video_pixels": 100352}  # the recipe's defaults
    assert sft_recipe == {
        "template": "reasoning_short",
        "max_audio_seconds": None,
        "max_pixels": 50176,
        **video,
    }
    assert grpo_recipe == {**sft_recipe, "max_new_tokens": 12}
    assert json.loads((out / "summary.json").read_text()) == summary
    # the demo's knobs and the recipe it ran, rerunnable with --config (its paths set under out)
    cfg, d = load_lab_recipe(out / "recipe.yaml")
    assert (d.family, d.train_items, cfg.sft.max_steps) == (family, 40, 3)
    assert cfg.model.path == str(out / "model") and "demo" not in yaml.safe_load(
        (out / "grpo/config.yaml").read_text()
    )
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
    model_type = {"qwen2.5-omni": "qwen2_5_omni_thinker", "qwen3-omni": "qwen3_omni_moe_thinker"}[family]
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == model_type


def test_video_demo_pipeline_writes_every_artefact(tmp_path):
    """The video recipe at toy size: the tone_when clips, the audio / video / desync ablations."""
    from echoink_lab.demo import VIDEO_RECIPE

    out = tmp_path / "demo_video"
    overrides = [
        "demo.train_items=16", "demo.test_items=4", "demo.hidden=64", "sft.max_steps=2", "sft.batch_size=4",
        "sft.warmup_steps=0", "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=8", "eval.max_new_tokens=8", "eval.batch_size=4",
        "demo.glance_stage_steps=2", "demo.glance_traces=0.5",
    ]  # fmt: skip
    summary = run_demo(out, 15, VIDEO_RECIPE, overrides, echo=lambda _: None)
    assert summary["modality"] == "video" and summary["families"] == ["tone_when"]
    # the glance stage: its split (same clips, some traces swapped), its model, and GRPO started from it
    train, glance = (json.loads((out / "bench" / f).read_text()) for f in ("train.json", "train_glance.json"))
    assert [r["path"] for r in glance] == [r["path"] for r in train] and glance != train
    assert (out / "sft_glance" / "final" / "config.json").is_file()
    assert yaml.safe_load((out / "grpo" / "config.yaml").read_text())["model"]["path"] == str(
        out / "sft_glance" / "final"
    )
    assert (summary["glance_stage_steps"], summary["glance_traces"]) == (2, 0.5)
    assert (
        "then 2 on the same clips with 50% of the traces a one-frame glance"
        in (out / "summary.md").read_text()
    )
    assert set(summary["grpo"]["both_items"]) == {"full", "audio_removed", "video_removed", "desynced"}
    md = (out / "summary.md").read_text()
    assert "video -> blank frames" in md and "soundtrack shifted by half the clip" in md
    rows = [json.loads(line) for line in (out / "eval_grpo" / "predictions.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in rows} == {"none", "audio", "video", "desync"}
    _check_honest_fields(out, summary, md)


def _check_honest_fields(out, summary, md):
    """Issue 37 item 3: two GRPO seeds paired-tested against the base, the base's pass@1/4/8, the desync
    diagnostic of every model and the glance stage's wrong-target share, all in summary.json and .md."""
    seeds = summary["grpo_seeds"]
    assert [(r["seed"], r["run"]) for r in seeds] == [(0, "grpo"), (1, "grpo_seed1")]
    assert (out / "grpo_seed1" / "final" / "config.json").is_file()
    for r in seeds:
        assert r["paired"]["shared"] == 4 and 0.0 <= r["p"] <= 1.0
        assert f"GRPO seed {r['seed']}:" in md and r["words"] in md
    assert set(summary["base_pass_at_k"]) == {"1", "2", "4", "8"}
    assert "pass@8" in md and ("re-selection" in md or "more than re-selection" in md)
    assert set(summary["desync"]) == {"base", "grpo", "grpo_seed1"}
    for dg in summary["desync"].values():
        assert dg["n"] == 4 and 0.0 <= dg["shifted_colour_share"] + dg["gold_share"] <= 1.0
    g = summary["glance_targets"]
    assert g["items"] == 16 and 0 <= g["wrong"] <= g["glance"] <= 16
    assert f"{g['wrong']} of them end in a wrong letter" in md
    assert "intervals overlap" not in md and "intervals do not overlap" not in md


def test_demo_removes_only_an_earlier_demos_outputs(tmp_path):
    """--out at a folder of the user's own holding a model/: refused, not emptied; an earlier demo's is cleared."""
    from echoink.outdir import OutputNotEmpty
    from echoink_lab.demo import clear_previous

    mine = tmp_path / "mine"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "model.safetensors").write_bytes(b"the user's weights")
    with pytest.raises(
        OutputNotEmpty, match=r"^--out: .*mine is not empty \(model\) and holds no summary.json"
    ):
        run_demo(mine, overrides=["train.max_steps=1"])
    assert (mine / "model" / "model.safetensors").read_bytes() == b"the user's weights"
    earlier = tmp_path / "earlier"
    (earlier / "bench").mkdir(parents=True)
    (earlier / "bench" / "synth.yaml").write_text("seed: 0\n")
    (earlier / "model").mkdir()
    clear_previous(earlier)
    assert list(earlier.iterdir()) == []
