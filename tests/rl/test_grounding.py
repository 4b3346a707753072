"""The grounding maths against loop references, the reward's cases, and the experience step's
counterfactual pass on the tiny model: one extra encode per prompt (tower hooks), the modality really
removed, the reward column and the filter wired in, and the trainer logging it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from echoink.config import load_config
from echoink.data import load_split
from echoink.rl.grounding import (
    Counterfactual,
    answer_ids,
    counterfactual_prob,
    unimodal_group_weights,
    weigh_advantages,
)
from echoink.rl.rollout import collect_experience, counterfactual_pass, encode_samples, prompt_spec
from echoink.rl.trainer import setup_run, train
from echoink.runlog import read_jsonl
from echoink.scoring.rewards import grounding_reward
from media_helpers import write_small_split

ANSWERS = ["A", "B", "C", "D", "A,C", None]


def _random_answers(gen: torch.Generator, n: int) -> list[str | None]:
    return [ANSWERS[int(i)] for i in torch.randint(len(ANSWERS), (n,), generator=gen)]


def test_counterfactual_prob_matches_a_loop_reference():
    gen = torch.Generator().manual_seed(0)
    for B, G, M in [(1, 2, 1), (3, 4, 5), (5, 8, 2)]:
        own, cf = _random_answers(gen, B * G), [_random_answers(gen, M) for _ in range(B)]
        got = counterfactual_prob(answer_ids(own), answer_ids([a for row in cf for a in row]).view(B, M), G)
        ref = [
            0.0 if own[n] is None else sum(a == own[n] for a in cf[n // G]) / M for n in range(B * G)
        ]  # loop reference: strings compared, not ids
        torch.testing.assert_close(got, torch.tensor(ref), atol=1e-6, rtol=0)


def test_answer_ids_distinguish_letter_sets():
    ids = answer_ids(["A", "A,C", "C", None, "A"]).tolist()
    assert ids[0] == ids[4] and len({ids[0], ids[1], ids[2], ids[3]}) == 4


def test_group_weights_match_a_loop():
    acc = torch.tensor([0.0, 0.5, 0.49, 1.0, float("nan")])
    for threshold, weight in [(0.5, 0.0), (0.0, 0.25), (1.0, 0.0)]:
        want = [1.0 if a != a or a < threshold else weight for a in acc.tolist()]  # NaN: not applicable
        assert unimodal_group_weights(acc, threshold, weight).tolist() == want


def test_grounding_reward_cases():
    got = grounding_reward(
        ["<think>t</think><answer>B</answer>", "<answer>C</answer>", "<answer>B</answer>", "nothing"],
        solution=["<answer>B</answer>"] * 4,
        counterfactual_prob=[1.0, 1.0, None, 0.0],
    )
    assert got == [-1.0, 0.0, None, 0.0]
    assert grounding_reward(["<answer>B</answer>"], ["B"]) == [None]  # no counterfactual computed


def test_counterfactual_fields_accuracy_and_weights():
    cf = Counterfactual([["B", "B", "A", None], None, ["C", "C", "C", "C"]])
    texts = ["<answer>B</answer>", "<answer>A</answer>", "<answer>B</answer>", "x", "<answer>C</answer>", "y"]
    assert cf.reward_fields(texts, 2)["counterfactual_prob"] == [0.5, 0.25, None, None, 1.0, 0.0]
    solutions = ["<answer>B</answer>", "<answer>B</answer>", "<answer>A</answer>"]
    acc = cf.accuracy(solutions)
    assert acc[0] == 0.5 and torch.isnan(acc[1]) and acc[2] == 0.0

    class Algo:
        drop_unimodal_groups, unimodal_threshold, unimodal_group_weight = True, 0.5, 0.0

    samples = [type("S", (), {"solution": s})() for s in solutions]
    adv, metrics = weigh_advantages(torch.ones(6), cf, samples, 2, Algo)
    assert adv.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert metrics["grounding/unimodal_groups"] == pytest.approx(1 / 3)


@pytest.fixture(autouse=True)
def _restore_rewards():
    """Recipes here name a user reward ("module:function"), which the trainer registers globally; take it
    out again so later test modules see the package's own registry."""
    from echoink.scoring.rewards import REWARDS

    before = dict(REWARDS._items)
    yield
    REWARDS._items.clear()
    REWARDS._items.update(before)


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("grounding_split"), n=4)


def _cfg(model_dir: Path, split: Path, out: Path, *extra: str):
    overrides = [
        f"model.path={model_dir}", f"data.train_path={split}", f"train.output_dir={out}",
        "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=2",
        "rollout.max_new_tokens=6", "train.save_every=100", "algo.counterfactual_samples=3",
    ]  # fmt: skip
    return load_config(None, overrides + list(extra))


def _tower_inputs(model):
    """Hooks recording (clips, features) of each audio-tower call and the images of each vision-tower call."""
    seen = {"audio": [], "vision": []}

    def audio(_m, args, kwargs):
        features = (args[0] if args else kwargs["input_features"]).detach().clone()
        seen["audio"].append(
            (int(kwargs.get("feature_lens", args[1] if len(args) > 1 else None).shape[0]), features)
        )

    def vision(_m, args, kwargs):
        seen["vision"].append(int(kwargs.get("grid_thw", args[1] if len(args) > 1 else None).shape[0]))

    return seen, [
        model.model.audio_tower.register_forward_pre_hook(audio, with_kwargs=True),
        model.model.visual.register_forward_pre_hook(vision, with_kwargs=True),
    ]


def _experience(run, samples, cfg):
    seen, hooks = _tower_inputs(run.h.policy)
    try:
        torch.manual_seed(0)
        exp = collect_experience(run.h.engine, run.h.policy, None, samples, run.gen_config, cfg)
    finally:
        for h in hooks:
            h.remove()
    return exp, seen


def test_counterfactual_pass_runs_once_per_prompt_on_silence(tiny_model_dir, split, tmp_path):
    rewards = "algo.rewards={accuracy: 1.0, format: 1.0, grounding: 1.0}"
    cfg = _cfg(tiny_model_dir, split, tmp_path / "run", rewards)
    run = setup_run(cfg, resume=False)
    samples = load_split(split).samples[:2]
    exp, seen = _experience(run, samples, cfg)
    # rollout, then the counterfactual pass: each encodes the B=2 clips and images once (not G or M times)
    assert [n for n, _ in seen["audio"]] == [2, 2] and seen["vision"] == [2, 2]
    # the second pass saw silence: the features the tower gets from the audio-ablated prompts
    direct, hooks = _tower_inputs(run.h.policy)
    spec = prompt_spec(cfg.data, run.h.engine.geometry)
    silent = encode_samples(run.h.engine, samples, spec, "cpu", ablate="audio")
    run.h.engine.sample(run.h.policy, silent, 1, run.gen_config)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(seen["audio"][1][1], direct["audio"][0][1])
    assert not torch.equal(seen["audio"][0][1], direct["audio"][0][1])
    assert exp.reward_names == ["accuracy", "format", "grounding"]
    assert "time/counterfactual" in exp.timings and "grounding/counterfactual_accuracy" in exp.stats
    assert not any(k.startswith("grounding/") for k in exp.timings)  # statistics are not times
    # the paper's rewards alone: no extra pass at all
    plain_cfg = _cfg(tiny_model_dir, split, tmp_path / "run2")
    _, plain = _experience(run, samples, plain_cfg)
    assert len(plain["audio"]) == 1 and len(plain["vision"]) == 1


def test_drop_unimodal_groups_zeroes_their_advantages(tiny_model_dir, split, tmp_path):
    # threshold 0: every group counts as answerable without audio, so all are dropped
    cfg = _cfg(
        tiny_model_dir, split, tmp_path / "run", "algo.drop_unimodal_groups=true", "algo.unimodal_threshold=0",
        "algo.rewards={accuracy: 1.0, 'media_helpers:parity_reward': 1.0}",
    )  # fmt: skip
    run = setup_run(cfg, resume=False)
    samples = load_split(split).samples[:2]
    exp, seen = _experience(run, samples, cfg)
    assert len(seen["audio"]) == 2
    assert exp.advantages.abs().sum() == 0 and exp.stats["grounding/unimodal_groups"] == 1.0


def test_trainer_logs_grounding_metrics(tiny_model_dir, split, tmp_path):
    cfg = _cfg(
        tiny_model_dir, split, tmp_path / "run", "algo.drop_unimodal_groups=true",
        "algo.rewards={accuracy: 1.0, grounding: 1.0, 'media_helpers:parity_reward': 1.0}",
    )  # fmt: skip
    rows = read_jsonl(train(cfg) / "metrics.jsonl")
    assert len(rows) == 2
    for key in ("rewards/grounding/mean", "time/counterfactual", "grounding/unimodal_groups"):
        assert all(key in r for r in rows), key


def test_bad_grounding_settings_are_refused(tiny_model_dir, split, tmp_path):
    from echoink.config import ConfigError

    for bad in (
        "algo.counterfactual_ablate=video",
        "algo.counterfactual_samples=0",
        "algo.unimodal_threshold=2",
    ):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            _cfg(tiny_model_dir, split, tmp_path, bad)


def test_items_that_do_not_need_or_lack_the_modality_get_no_counterfactual(tiny_model_dir, split, tmp_path):
    from dataclasses import replace

    cfg = _cfg(tiny_model_dir, split, tmp_path / "run", "algo.drop_unimodal_groups=true")
    run = setup_run(cfg, resume=False)
    s = load_split(split).samples
    samples = [
        replace(
            s[0], metadata={"needs": "image"}
        ),  # answerable from the picture: removing audio proves nothing
        replace(s[1], audio=None, data_type="image"),  # no audio to remove
        replace(s[2], metadata={"needs": "both"}),
    ]
    cf = counterfactual_pass(run.h.engine, run.h.policy, samples, run.gen_config, cfg, "cpu")
    assert cf.answers[0] is None and cf.answers[1] is None and len(cf.answers[2]) == 3
