"""The modality credit's maths against slow loop references, its reward and config, and the credit pass
on the tiny model: no new sampling, one extra encode of the B prompts with the modality removed, the
credit equal to an independent per-completion computation, the placebo a permutation of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from echoink.config import ConfigError, load_config
from echoink.data import load_split
from echoink.rl.credit import (
    ADVANTAGE_WEIGHTINGS,
    clip_credit,
    credit_scaled_advantages,
    placebo_credit,
    sequence_credit,
    span_mask,
)
from echoink.scoring.rewards import modality_credit_reward, score
from media_helpers import write_small_split


def test_sequence_credit_matches_a_loop_reference():
    gen = torch.Generator().manual_seed(0)
    for N, T in [(1, 1), (4, 7), (6, 3)]:
        full, removed = -torch.rand(N, T, generator=gen) * 3, -torch.rand(N, T, generator=gen) * 3
        span = (torch.rand(N, T, generator=gen) > 0.4).float()
        span[0] = 0  # an empty span: NaN
        got = sequence_credit(full, removed, span)
        for n in range(N):
            terms = [float(full[n, t] - removed[n, t]) for t in range(T) if span[n, t]]
            if not terms:
                assert torch.isnan(got[n])
            else:
                assert got[n].item() == pytest.approx(sum(terms) / len(terms), abs=1e-6)


def _char_loop_mask(row: list[str], span: str) -> list[float]:
    """Reference: mark each character of the concatenated text, then a token is in when any char is."""
    text = "".join(row)
    inside = [True] * len(text)
    open_, close = text.find("<think>"), text.find("</think>")
    if span == "think" and open_ >= 0 and close > open_:
        inside = [open_ + 7 <= i < close for i in range(len(text))]
    if span == "answer" and close >= 0:
        inside = [i >= close + 8 for i in range(len(text))]
    out, pos = [], 0
    for piece in row:
        out.append(1.0 if any(inside[pos : pos + len(piece)]) else 0.0)
        pos += len(piece)
    return out


def test_span_mask_matches_a_character_loop():
    rows = [
        ["<th", "ink>", "The", " tone", "</", "think>", "<answer>", "C", "</answer>", "<|im_end|>"],
        ["<think>", "x</", "think>", "<answer>B", "</answer>", "", ""],  # a tag split over tokens, padding
        ["no", " trace", " at", " all"],  # no think block: everything, whatever the span
        ["<think>", "never", " closed"],
    ]
    width = max(len(r) for r in rows)
    pieces = [r + [""] * (width - len(r)) for r in rows]
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows])
    mask[1, 5:] = 0
    for span in ("think", "completion", "answer"):
        got = span_mask(pieces, mask, span)
        want = torch.tensor([_char_loop_mask(r, span) for r in pieces]) * mask
        assert got.tolist() == want.tolist(), span
    assert span_mask(pieces, mask, "think")[0].tolist()[:6] == [0, 0, 1, 1, 0, 0]


def test_credit_scale_weighting_matches_a_loop():
    gen = torch.Generator().manual_seed(1)
    B, G = 3, 4
    adv, credit = torch.randn(B * G, generator=gen), torch.randn(B * G, generator=gen)
    credit[5] = float("nan")
    for strength in (0.0, 0.5, 3.0):
        got = credit_scaled_advantages(adv, credit, G, strength)
        for b in range(B):
            group = [credit[b * G + j].item() for j in range(G)]
            known = [c for c in group if c == c]
            mean = sum(known) / len(known)
            for j in range(G):
                a, c = adv[b * G + j].item(), group[j]
                centred = 0.0 if c != c else c - mean
                sign = (a > 0) - (a < 0)
                want = a * max(0.0, 1 + strength * sign * centred)
                assert got[b * G + j].item() == pytest.approx(want, abs=1e-5)
                assert want == 0 or (want > 0) == (a > 0)  # never flips a sign
    assert ADVANTAGE_WEIGHTINGS.get("none")(adv, credit, G, 2.0) is adv


def test_placebo_moves_whole_blocks_to_other_prompts():
    G = 3
    credit = torch.arange(15, dtype=torch.float32)  # B=5
    credit[6:9] = float("nan")  # a prompt with no credit keeps its NaNs and is no one's donor
    for seed in range(20):
        got = placebo_credit(credit, G, torch.Generator().manual_seed(seed)).view(5, G)
        assert torch.isnan(got[2]).all()
        sources = []
        for b in (0, 1, 3, 4):
            src = int(got[b, 0]) // G
            assert src != b and src != 2  # never its own block
            assert got[b].tolist() == credit[src * G : src * G + G].tolist()  # in order, whole
            sources.append(src)
        assert sorted(sources) == [0, 1, 3, 4]  # a permutation: the same values, each once
    one = torch.tensor([float("nan")] * 3 + [1.0, 2.0, 3.0])
    shuffled = placebo_credit(one, G, torch.Generator().manual_seed(0))
    assert sorted(shuffled[3:].tolist()) == [1.0, 2.0, 3.0] and torch.isnan(shuffled[:3]).all()


def test_clip_and_reward():
    c = torch.tensor([-3.0, 0.2, float("nan"), 5.0])
    assert clip_credit(c, 1.0)[[0, 1, 3]].tolist() == [-1.0, pytest.approx(0.2), 1.0]
    assert torch.isnan(clip_credit(c, 1.0)[2]) and clip_credit(c, 0.0)[3] == 5.0
    texts = ["<answer>A</answer>"] * 3
    assert modality_credit_reward(texts, [0.5, None, -0.25]) == [0.5, None, -0.25]
    assert modality_credit_reward(texts) == [None] * 3
    m, total, _ = score(texts, {"solution": ["A"] * 3, "modality_credit": [0.5, None, -0.25]},
                        {"accuracy": 1.0, "modality_credit": 0.4})  # fmt: skip
    assert total.tolist() == pytest.approx([1.2, 1.0, 0.9])


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return write_small_split(tmp_path_factory.mktemp("credit_split"), n=4)


def _cfg(model_dir: Path, split: Path, out: Path, *extra: str):
    overrides = [
        f"model.path={model_dir}", f"data.train_path={split}", f"train.output_dir={out}",
        "train.max_steps=2", "train.prompts_per_step=2", "rollout.num_generations=3",
        "rollout.max_new_tokens=6", "train.save_every=100",
    ]  # fmt: skip
    return load_config(None, overrides + list(extra))


def test_config_refuses_bad_credit_settings(tiny_model_dir, split, tmp_path):
    from echoink.preflight import check_names

    for bad in ("algo.credit_clip=-1", "algo.credit_strength=-1", "algo.credit_placebo=true"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            _cfg(tiny_model_dir, split, tmp_path, bad)
    with pytest.raises(ConfigError, match="algo.credit_clip.*out-earns"):  # 2·0.5·1 >= 1
        _cfg(tiny_model_dir, split, tmp_path, "algo.rewards={accuracy: 1.0, modality_credit: 0.5}")
    for bad in ("algo.credit_span=reasoning", "algo.credit_weighting=double"):
        with pytest.raises(ConfigError, match=bad.split("=")[0] + ".*valid"):
            check_names(_cfg(tiny_model_dir, split, tmp_path, bad))


def _tower_calls(model):
    """Hooks counting the clips each audio-tower call gets."""
    seen: list[int] = []

    def audio(_m, args, kwargs):
        seen.append(int(kwargs.get("feature_lens", args[1] if len(args) > 1 else None).shape[0]))

    return seen, model.model.audio_tower.register_forward_pre_hook(audio, with_kwargs=True)


def _completion_ids(engine, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [engine.text_ids(t) + engine.stop_token_ids()[:1] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [engine.pad_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def test_credit_pass_equals_a_per_completion_computation(tiny_model_dir, split, tmp_path):
    from echoink.rl.credit_pass import modality_credit
    from echoink.rl.rollout import encode_samples, prompt_spec
    from echoink.rl.trainer import setup_run

    cfg = _cfg(tiny_model_dir, split, tmp_path / "run", "algo.credit_clip=0", "algo.credit_weighting=scale")
    run = setup_run(cfg, resume=False)
    engine, policy = run.h.engine, run.h.policy
    samples = load_split(split).samples[:2]
    texts = [
        "<think>The tone is low, so yellow.</think><answer>A</answer>",
        "<think>A frame</think><answer>B</answer>",
        "no trace <answer>C</answer>",
    ] * 2  # B=2, G=3
    ids, mask = _completion_ids(engine, texts)
    prompts = encode_samples(engine, samples, prompt_spec(cfg.data, engine.geometry), "cpu")
    seen, hook = _tower_calls(policy)
    try:
        got = modality_credit(engine, policy, samples, prompts, ids, mask, cfg)
    finally:
        hook.remove()
    assert seen == [2, 2]  # the full and the silenced prompts, each once for the B=2 clips (not G times)
    silent = encode_samples(engine, samples, prompt_spec(cfg.data, engine.geometry), "cpu", ablate="audio")
    for n, text in enumerate(texts):  # independently: one completion at a time, the thinker's own forward
        b, row = n // 3, ids[n : n + 1, : int(mask[n].sum())]
        with torch.no_grad():
            full = engine.logprobs(policy, prompts.slice(b, b + 1), row, 1, sharing="repeat")[0]
            removed = engine.logprobs(policy, silent.slice(b, b + 1), row, 1, sharing="repeat")[0]
        decoded = [engine.tokenizer.decode([i]) for i in row[0].tolist()]
        ends = torch.tensor([len(p) for p in decoded]).cumsum(0)
        lo, hi = "".join(decoded).find("<think>") + 7, "".join(decoded).find("</think>")
        inside = [bool(e > lo and e - len(d) < hi) for e, d in zip(ends.tolist(), decoded, strict=True)]
        if "</think>" not in text:
            inside = [True] * len(decoded)
        diffs = [float(full[t] - removed[t]) for t in range(len(decoded)) if inside[t]]
        assert got.values[n].item() == pytest.approx(sum(diffs) / len(diffs), abs=2e-6), text
    assert got.values.abs().min() > 2e-5  # silence changes the (random) tiny model's log-probs a little
    for span in ("think", "completion", "answer"):
        assert f"credit/{span}" in got.stats and f"credit/{span}_tokens" in got.stats
    assert got.stats["credit/think_tokens"] < got.stats["credit/completion_tokens"]
    # the placebo: the same values, moved between the two prompts
    placebo = modality_credit(engine, policy, samples, prompts, ids, mask, _with(cfg, credit_placebo=True))
    assert placebo.values.tolist() == got.values[[3, 4, 5, 0, 1, 2]].tolist()


def _with(cfg, **algo):
    from dataclasses import replace

    return replace(cfg, algo=replace(cfg.algo, **algo))


def test_experience_carries_the_credit_reward_and_weighting(tiny_model_dir, split, tmp_path):
    from echoink.rl.rollout import collect_experience
    from echoink.rl.trainer import setup_run

    rewards = "algo.rewards={accuracy: 1.0, format: 1.0, modality_credit: 0.4}"
    cfg = _cfg(tiny_model_dir, split, tmp_path / "run", rewards)
    run = setup_run(cfg, resume=False)
    samples = load_split(split).samples[:2]
    seen, hook = _tower_calls(run.h.policy)
    try:
        torch.manual_seed(0)
        exp = collect_experience(run.h.engine, run.h.policy, None, samples, run.gen_config, cfg)
    finally:
        hook.remove()
    assert seen == [2, 2, 2]  # rollout, then the credit pass's two log-prob passes; no sampling added
    assert exp.reward_names == ["accuracy", "format", "modality_credit"]
    column = exp.reward_matrix[:, 2]
    assert not torch.isnan(column).any() and column.abs().max() <= 1.0  # clipped to algo.credit_clip
    assert "time/credit" in exp.timings and "credit/think" in exp.stats
    # an item without audio gets no credit (None in the reward, NaN in the column)
    from dataclasses import replace

    no_audio = [replace(samples[0], audio=None, data_type="image"), samples[1]]
    exp2 = collect_experience(run.h.engine, run.h.policy, None, no_audio, run.gen_config, cfg)
    assert torch.isnan(exp2.reward_matrix[:3, 2]).all() and not torch.isnan(exp2.reward_matrix[3:, 2]).any()


def test_trainer_logs_the_credit(tiny_model_dir, split, tmp_path):
    from echoink.rl.trainer import train
    from echoink.runlog import read_jsonl

    cfg = _cfg(
        tiny_model_dir, split, tmp_path / "run", "algo.credit_weighting=scale", "algo.credit_placebo=true",
        "algo.rewards={accuracy: 1.0, format: 1.0, modality_credit: 0.25}",
    )  # fmt: skip
    rows = read_jsonl(train(cfg) / "metrics.jsonl")
    assert len(rows) == 2
    for key in ("rewards/modality_credit/mean", "time/credit", "credit/think", "credit/answer"):
        assert all(key in r for r in rows), key
