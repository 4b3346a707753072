"""The shortcut experiment at toy size: every arm trains from the same base, every model is evaluated
by shortcut part with both ablations, and the counterfactual pass's cost is measured (no accuracy is
asserted here; the real run's numbers are in docs/grounding.md)."""

import json

import pytest
import yaml

from echoink_lab.shortcut_experiment import ExperimentSpec, run_experiment

TOY = (
    "demo.train_items=32", "demo.test_items=12", "demo.hidden=64", "sft.max_steps=2", "sft.batch_size=4",
    "sft.warmup_steps=0", "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
    "rollout.max_new_tokens=8", "eval.max_new_tokens=8", "eval.batch_size=12", "algo.counterfactual_samples=2",
)  # fmt: skip


def test_experiment_writes_the_table_for_every_arm(tmp_path):
    out = tmp_path / "exp"
    spec = ExperimentSpec(overrides=TOY, arms=("paper", "grounded"), frame_traces=0.5, frame_stage_steps=0)
    summary = run_experiment(out, spec, echo=lambda _: None)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert set(summary["models"]) == {"base", "paper", "grounded"}
    # the cold start leans on the frame: some framed training items' traces read it instead of the tone
    train = json.loads((out / "bench" / "train.json").read_text())
    leaning = [r for r in train if r["reasoning"].startswith("<think>A dark frame marks")]
    assert summary["frame_traces"] == 0.5 and leaning and all(r["shortcut"] == "aligned" for r in leaning)
    for block in summary["models"].values():
        assert {p: b["n"] for p, b in block["parts"].items()} == {"broken": 4, "none": 4, "aligned": 4}
        assert "audio_drop" in block and "image_drop" in block
    cost = summary["step_cost"]
    assert cost["paper"]["counterfactual_s"] == 0.0 and 0 < cost["grounded"]["counterfactual_fraction"] < 1
    for arm in ("paper", "grounded"):  # the same base and seed for every arm
        cfg = (out / arm / "config.yaml").read_text()
        assert str(out / "sft" / "final") in cfg and "seed: 0" in cfg
    assert "grounding" in (out / "grounded" / "config.yaml").read_text()
    assert "| model | broken |" in (out / "summary.md").read_text()


def test_unknown_arm_or_override_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="valid: paper, grounded, filtered"):
        run_experiment(tmp_path, ExperimentSpec(overrides=TOY, arms=("nope",)))
    with pytest.raises(ValueError, match="counterfactual_samples"):
        spec = ExperimentSpec(overrides=(*TOY, "algo.counterfactual_samples=0"), arms=("grounded",))
        run_experiment(tmp_path, spec)
    assert not (tmp_path / "bench").exists()


def test_two_stage_cold_start_reads_the_tone_first_then_the_frame(tmp_path):
    """--frame-stage-steps: the first SFT stage sees only tone traces, the second the same items with
    frame traces on part of the framed ones; the arms start from the second stage's model, and the
    grounded arm carries --grounding-weight."""
    out = tmp_path / "exp"
    spec = ExperimentSpec(overrides=TOY, arms=("grounded",), frame_traces=0.5, frame_stage_steps=1)
    summary = run_experiment(out, spec, echo=lambda _: None)
    tone = json.loads((out / "bench" / "train.json").read_text())
    framed = json.loads((out / "bench_frame" / "train.json").read_text())
    same = ("problem", "options", "solution", "shortcut")
    assert [[r[k] for k in same] for r in tone] == [[r[k] for k in same] for r in framed]
    assert not [r for r in tone if "A dark frame" in r["reasoning"]]
    assert [r for r in framed if "A dark frame" in r["reasoning"]]
    assert (out / "sft_frame" / "final").is_dir()
    cfg = (out / "grounded" / "config.yaml").read_text()
    assert str(out / "sft_frame" / "final") in cfg and "grounding: 2.0" in cfg
    assert summary["frame_stage_steps"] == 1 and summary["grounding_weight"] == 2.0
    with pytest.raises(ValueError, match="needs --frame-traces"):
        ExperimentSpec(overrides=TOY, frame_traces=0.0, frame_stage_steps=5)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--arms", "nope"], "unknown arm(s) ['nope']"),
        (["--frame-stage-steps", "-3", "--frame-traces", "0.5"], "--frame-stage-steps must be >= 0"),
        (["--set", "algo.counterfactual_samples=0"], "counterfactual_samples"),
    ],
)
def test_bad_arguments_end_in_one_line_before_any_work(tmp_path, capsys, argv, says):
    from echoink_lab.shortcut_experiment import main

    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_one_set_of_defaults_for_every_caller(tmp_path, monkeypatch):
    """``python -m`` runs the spec's defaults, and an arm's config comes from ``arm_config`` alone (the
    bench's follow-up uses it too: tests/test_bench_scripts.py)."""
    import echoink_lab.shortcut_experiment as experiment

    seen = []
    monkeypatch.setattr(experiment, "run_experiment", lambda out, spec: seen.append(spec))
    experiment.main(["--out", str(tmp_path / "x")])
    assert seen == [ExperimentSpec()] and seen[0].base == "sft_frame"
    cfg = ExperimentSpec().arm_config("grounded", tmp_path / "t.json", tmp_path / "m", tmp_path / "o")
    assert cfg.algo.rewards == {"accuracy": 1.0, "format": 1.0, "grounding": 2.0}
    assert (cfg.model.path, cfg.train.output_dir) == (str(tmp_path / "m"), str(tmp_path / "o"))
    assert ExperimentSpec().arm_config("filtered", *[tmp_path] * 3).algo.drop_unimodal_groups


def test_conflict_and_sft_only_arms_at_toy_size(tmp_path):
    """conflict: GRPO with the paper's rewards on the same items with some frames moved to a wrong
    object; sft_only: the cold start's last stage continued for GRPO's steps x prompts. Every part is also
    reported with the audio silenced."""
    out = tmp_path / "exp"
    spec = ExperimentSpec(
        overrides=TOY,
        arms=("conflict", "sft_only"),
        frame_traces=0.5,
        frame_stage_steps=1,
        conflict_frames=0.5,
    )
    summary = run_experiment(out, spec, echo=lambda _: None)
    train, conflict = (json.loads((out / d / "train.json").read_text()) for d in ("bench", "bench_conflict"))
    assert [r["problem"] for r in train] == [r["problem"] for r in conflict]
    assert "broken" not in {r["shortcut"] for r in train} and "broken" in {r["shortcut"] for r in conflict}
    cfg = yaml.safe_load((out / "conflict" / "config.yaml").read_text())
    assert cfg["data"]["train_path"] == str(out / "bench_conflict" / "train.json")
    assert cfg["algo"]["rewards"] == {"accuracy": 1.0, "format": 1.0}
    sft = yaml.safe_load((out / "sft_only" / "config.yaml").read_text())  # the sft run's own config
    assert (sft["sft"]["max_steps"], sft["sft"]["batch_size"]) == (2, 2)  # train.max_steps, prompts_per_step
    assert sft["model"]["path"] == str(out / "sft_frame" / "final")
    assert sft["data"]["train_path"] == str(out / "bench_frame" / "train.json")
    assert (out / "sft_only" / "final" / "config.json").is_file() and set(summary["step_cost"]) == {
        "conflict"
    }
    assert summary["conflict_frames"] == 0.5 and "optimizer steps" in summary["sft_only"]
    for block in summary["models"].values():
        assert set(block["parts_audio_silenced"]) == {"broken", "none", "aligned"}
    md = (out / "summary.md").read_text()
    assert "With the audio silenced" in md and "sft_only: the cold start" in md
