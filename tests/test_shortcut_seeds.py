"""The multi-seed shortcut experiment's parts: the audio-swap split read back from the generated items,
the paired tests against a loop over predictions, the across-seed spread, and summary.md from
summary.json alone."""

from __future__ import annotations

import json
import statistics

import pytest

from echoink.eval.stats import mcnemar
from echoink_lab.shortcut_seeds import across_seeds, audio_swap_split, paired_tests, seeds_markdown


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    from echoink_lab.synth import SynthSpec, generate

    out = tmp_path_factory.mktemp("swap")
    spec = SynthSpec(
        0, "easy", families=("shortcut_where",), shortcut=0.8, heldout=("broken", "none", "aligned")
    )
    return generate(out, {"test": 24}, spec, workers=1)["test"]


def test_audio_swap_answers_where_the_heard_colour_is(test_split):
    rows = {r["problem_id"]: r for r in json.loads(test_split.read_text())}
    swapped = json.loads(audio_swap_split(test_split, seed=0).read_text())
    assert len(swapped) >= len(rows) // 2
    for r in swapped:
        own, donor = rows[r["problem_id"].removesuffix("-swap")], rows[r["swap_of"]]
        assert donor["cue"]["colour"] != own["cue"]["colour"]
        assert r["path"] == {**own["path"], "audio": donor["path"]["audio"]}  # picture and frame unchanged
        place = [o["colour"] for o in own["scene"]].index(donor["cue"]["colour"])
        assert r["solution"] == f"<answer>{'ABCD'[place]}</answer>" != r["original_solution"]
        assert r["shortcut"] == own["shortcut"] and "reasoning" not in r
    assert json.loads(audio_swap_split(test_split, seed=0).read_text()) == swapped  # seeded


def _predictions(path, correct: dict[str, bool], part: dict[str, str]):
    path.mkdir(parents=True)
    rows = [
        {"id": i, "condition": "none", "correct": ok, "shortcut": part[i], "pred": "A", "answer": "A"}
        for i, ok in correct.items()
    ]
    (path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_paired_tests_count_discordant_items_per_part(tmp_path):
    import random

    rng = random.Random(0)
    ids = [f"i{k}" for k in range(60)]
    part = {i: ("broken", "none", "aligned")[k % 3] for k, i in enumerate(ids)}
    outcomes = {arm: {i: rng.random() < 0.5 for i in ids} for arm in ("paper", "credit", "placebo")}
    for arm, correct in outcomes.items():
        _predictions(tmp_path / f"eval_{arm}", correct, part)
        _predictions(tmp_path / f"swap_{arm}", correct, part)
    got = paired_tests(tmp_path, ["paper", "credit", "placebo"])
    assert set(got) == {"credit vs paper", "placebo vs paper", "credit vs placebo"}
    for name, tests in got.items():
        arm, ref = name.split(" vs ")
        for p, t in tests.items():
            keep = [i for i in ids if p == "audio_swap" or part[i] == p]
            b = sum(outcomes[arm][i] and not outcomes[ref][i] for i in keep)
            c = sum(outcomes[ref][i] and not outcomes[arm][i] for i in keep)
            assert (t["n"], t["only_arm"], t["only_ref"]) == (len(keep), b, c)
            assert t["p"] == pytest.approx(mcnemar(b, c, exact=b + c < 25))


def test_across_seeds_and_markdown_come_from_the_summary():
    def seed(acc: float, swap: float) -> dict:
        parts = {p: {"accuracy": acc, "ci95": [0, 1], "n": 3} for p in ("broken", "none", "aligned")}
        test = {"n": 3, "only_arm": 1, "only_ref": 0, "p": 1.0}
        return {
            "models": {"paper": {"parts": parts, "audio_drop": acc / 2}},
            "audio_swap": {"paper": {"accuracy": swap, "ci95": [0, 1], "n": 3, "follows_original": 0.25}},
            "paired": {"credit vs paper": {p: test for p in ("broken", "none", "aligned", "audio_swap")}},
        }

    per_seed = {"0": seed(0.2, 0.5), "1": seed(0.4, 0.7)}
    across = across_seeds(per_seed)
    assert across["paper"]["broken"]["mean"] == pytest.approx(0.3)
    assert across["paper"]["broken"]["sd"] == pytest.approx(statistics.stdev([0.2, 0.4]))
    assert across["paper"]["audio_swap"]["max"] == 0.7 and across["paper"]["audio_drop"][
        "mean"
    ] == pytest.approx(0.15)
    assert across["paper"]["swap_follows_original"]["sd"] == 0.0
    md = seeds_markdown({"seeds": 2, "arms": ["paper"], "per_seed": per_seed, "across_seeds": across})
    assert "| paper | 30.0 ± 14.1 [20.0, 40.0] |" in md and "| 1 | credit vs paper | 1 (1/0) |" in md


TOY = [
    "demo.train_items=32", "demo.test_items=12", "demo.hidden=64", "sft.max_steps=2", "sft.batch_size=4",
    "sft.warmup_steps=0", "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
    "rollout.max_new_tokens=8", "eval.max_new_tokens=8", "eval.batch_size=12",
]  # fmt: skip


def test_two_seeds_of_three_arms_at_toy_size(tmp_path):
    from echoink_lab.shortcut_experiment import ExperimentSpec, run_experiment
    from echoink_lab.shortcut_seeds import run_seeds

    out = tmp_path / "exp"
    arms = ["paper", "credit", "placebo"]
    spec = ExperimentSpec(overrides=tuple(TOY), arms=tuple(arms), frame_traces=0.5, frame_stage_steps=0)
    summary = run_seeds(out, 2, spec, run=run_experiment, echo=lambda _: None, one_seed_arms=("sft_only",))
    assert summary["one_seed_arms"] == ["sft_only"] and "on seed 0 only: sft_only" in seeds_markdown(summary)
    assert (
        "sft_only" in summary["per_seed"]["0"]["models"]
        and "sft_only" not in summary["per_seed"]["1"]["models"]
    )
    assert summary["across_seeds"]["sft_only"]["none"]["n"] == 1
    from echoink_lab.shortcut_seeds import SEEDS_SIZES

    assert summary["sizes"] == [*SEEDS_SIZES, *TOY]  # the seeds mode's sizes first, the caller's win
    models = summary["per_seed"]["1"]["models"]
    assert all("audio_drop" in m and "image_drop" not in m for m in models.values())  # audio ablation only
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "summary.md").read_text() == seeds_markdown(summary)  # from summary.json alone
    benches = [json.loads((out / f"seed{s}" / "bench" / "test.json").read_text()) for s in (0, 1)]
    assert [r["cue"] for r in benches[0]] != [r["cue"] for r in benches[1]]  # every stage seeded from s
    for s in ("0", "1"):
        seed = summary["per_seed"][s]
        extra = {"sft_only"} if s == "0" else set()
        pairs = {"credit vs paper", "placebo vs paper", "credit vs placebo"}
        pairs |= {"sft_only vs paper", "sft_only vs placebo"} if s == "0" else set()
        assert set(seed["audio_swap"]) == {"base", *arms, *extra} and set(seed["paired"]) == pairs
        assert seed["paired"]["credit vs paper"]["broken"]["n"] == 4
        assert f"seed: {s}" in (out / f"seed{s}" / "credit" / "config.yaml").read_text()
        assert "credit_placebo: true" in (out / f"seed{s}" / "placebo" / "config.yaml").read_text()
        assert seed["step_cost"]["credit"]["counterfactual_s"] > 0  # the credit pass ran
    assert set(summary["across_seeds"]["credit"]) == {
        "broken", "none", "aligned", "audio_swap", "swap_follows_original", "audio_drop"
    }  # fmt: skip
    for model, swap in summary["per_seed"]["0"]["audio_swap"].items():  # recount from the predictions
        rows = [json.loads(x) for x in (out / "seed0" / f"swap_{model}" / "predictions.jsonl").open()]
        stay = [
            r["pred"] is not None and f"<answer>{r['pred']}</answer>" == r["original_solution"] for r in rows
        ]
        assert swap["follows_original"] == sum(stay) / len(rows)


def test_targets_follow_the_per_seed_numbers():
    from echoink_lab.shortcut_seeds import targets

    def seed(swap_credit: float, none_credit: float, p: float, ahead: bool) -> dict:
        def parts(none):
            return {"parts": {"none": {"accuracy": none}}}

        test = {"p": p, "only_arm": 9 if ahead else 1, "only_ref": 1 if ahead else 9}
        return {
            "models": {"paper": parts(0.40), "credit": parts(none_credit)},
            "audio_swap": {"paper": {"accuracy": 0.30}, "credit": {"accuracy": swap_credit}},
            "paired": {"credit vs placebo": {"broken": test}},
        }

    t = targets(
        {
            "0": seed(0.50, 0.39, 0.01, True),
            "1": seed(0.45, 0.40, 0.2, True),
            "2": seed(0.50, 0.38, 0.01, True),
        }
    )
    assert (
        t["swap_gain_vs_paper"]["mean"] == pytest.approx(0.1833, abs=1e-4)
        and t["swap_gain_vs_paper"]["same_sign"]
    )
    assert t["broken_beats_placebo_seeds"] == 2 and t["met"] == {
        "swap": True,
        "placebo": True,
        "neutral": True,
    }
    t = targets(
        {
            "0": seed(0.50, 0.30, 0.01, False),
            "1": seed(0.20, 0.40, 0.01, True),
            "2": seed(0.9, 0.4, 0.5, True),
        }
    )
    assert not t["swap_gain_vs_paper"]["same_sign"] and t["broken_beats_placebo_seeds"] == 1
    assert t["met"] == {"swap": False, "placebo": False, "neutral": False}  # lost 3.3 points of neutral
