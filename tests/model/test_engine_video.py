"""Video with its own soundtrack through the engine, for every family: ``use_audio_in_video`` end to end.

Shared log-probs equal repeat-mode ones, gradients too, greedy shared decoding equals ``generate``,
each clip's video and audio towers run once per pass, and the model does see the sync (a shifted
soundtrack changes its output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echoink.data import load_split, sample_messages
from echoink.data.messages import VideoSettings
from echoink.data.video import write_video

G = 2
SETTINGS = VideoSettings(fps=2, max_frames=16)


@pytest.fixture(scope="module")
def video_samples(tmp_path_factory):
    """Three clips of different lengths and widths (so padding and owners matter), one tone each."""
    root: Path = tmp_path_factory.mktemp("videos")
    rows = []
    for i in range(3):
        frames = np.full((4 + 2 * i, 56, 56 + 28 * i, 3), 128, np.uint8)
        for t in range(len(frames)):
            frames[t, 8:-8, 8:-8, t % 3] = 220
        seconds = len(frames) / 2
        t = np.arange(int(seconds * 16_000)) / 16_000
        sound = (0.4 * np.sin(2 * np.pi * (400 + 100 * i) * t) * (t > 1.2) * (t < 1.5)).astype(np.float32)
        write_video(root / f"videos/v{i}.mp4", frames, 2, sound)
        rows.append({
            "problem_id": i, "problem": f"Which colour was on the screen when the tone sounded {i}?",
            "data_type": "video_audio", "options": ["A. red", "B. green", "C. blue"],
            "solution": "<answer>A</answer>", "path": {"video": f"videos/v{i}.mp4"},
        })  # fmt: skip
    (root / "split.json").write_text(json.dumps(rows))
    return load_split(root / "split.json").samples


@pytest.fixture(scope="module")
def video_setup(family_tiny, video_samples):
    model, processor, engine = family_tiny
    prompts = engine.encode(
        sample_messages(video_samples, "reasoning", None, None, video=SETTINGS, geometry=engine.geometry)
    )
    return model, processor, engine, prompts


def _completions(prompts, n_tokens=7):
    torch.manual_seed(2)
    return torch.randint(20, 300, (prompts.num_prompts * G, n_tokens))


def test_soundtracks_are_interleaved_with_their_frames(video_setup):
    _, processor, _, prompts = video_setup
    assert prompts.mm.use_audio_in_video and prompts.mm.video_owner.tolist() == [0, 1, 2]
    assert prompts.mm.audio_owner.tolist() == [0, 1, 2]
    tok = processor.tokenizer
    longest = prompts.input_ids[2].tolist()  # 4 s: past Qwen2.5's 2 s chunk, so both families interleave
    kinds = [t for t in longest if t in (tok.audio_token_id, tok.video_token_id)]
    first_audio = kinds.index(tok.audio_token_id)
    assert tok.video_token_id in kinds[first_audio:], "audio and video tokens alternate in time"
    assert (prompts.input_ids == tok.audio_token_id).sum(1).tolist() == sorted(
        (prompts.input_ids == tok.audio_token_id).sum(1).tolist()
    )  # longer clips, more soundtrack tokens


@pytest.mark.parametrize("mode", ["prefix", "towers"])
def test_video_logprobs_equal_repeat(video_setup, mode):
    model, _, engine, prompts = video_setup
    comp = _completions(prompts)
    with torch.no_grad():
        ref = engine.logprobs(model, prompts, comp, G, 1.0, "repeat")
        got = engine.logprobs(model, prompts, comp, G, 1.0, mode)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_video_gradients_equal_repeat(video_setup):
    model, _, engine, prompts = video_setup
    comp = _completions(prompts)
    grads = {}
    for mode in ("repeat", "prefix"):
        model.zero_grad(set_to_none=True)
        (
            engine.logprobs(model, prompts, comp, G, 1.0, mode) * torch.linspace(-1, 1, len(comp))[:, None]
        ).sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    assert grads["repeat"].keys() == grads["prefix"].keys()
    assert any(".visual." in n for n in grads["prefix"]) and any(
        ".audio_tower." in n for n in grads["prefix"]
    )
    for name, ref in grads["repeat"].items():
        assert ((grads["prefix"][name] - ref).abs().max() / ref.abs().max().clamp(min=1e-6)) < 1e-4, name


def test_video_greedy_shared_decoding_equals_generate(video_setup):
    model, _, engine, prompts = video_setup
    cfg = engine.generation_config(engine.vocab_size(model), max_new_tokens=8, do_sample=False)
    shared = engine.sample(model, prompts, G, cfg, shared=True)
    plain = engine.sample(model, prompts, G, cfg, shared=False)
    assert torch.equal(shared.ids, plain.ids)


def test_video_and_audio_towers_run_once_per_pass(video_setup):
    model, _, engine, prompts = video_setup
    seen = {"audio": [], "vision": []}
    hooks = [
        model.model.audio_tower.register_forward_pre_hook(
            lambda _m, a, k: seen["audio"].append(int(k.get("feature_lens", a[1] if len(a) > 1 else None).shape[0])),
            with_kwargs=True,
        ),
        model.model.visual.register_forward_pre_hook(
            lambda _m, a, k: seen["vision"].append(int(k.get("grid_thw", a[1] if len(a) > 1 else None).shape[0])),
            with_kwargs=True,
        ),
    ]  # fmt: skip
    try:
        with torch.no_grad():
            engine.logprobs(model, prompts, _completions(prompts), G, 1.0, "prefix")
            cfg = engine.generation_config(engine.vocab_size(model), max_new_tokens=4, do_sample=True)
            engine.sample(model, prompts, G, cfg, shared=True)
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"audio": [3, 3], "vision": [3, 3]}  # 3 clips, 3 soundtracks: once per pass, not G times


def test_a_shifted_soundtrack_changes_only_the_audio_positions(video_setup, video_samples):
    """The desync ablation keeps tokens, positions and frames; only the soundtrack's features move."""
    model, processor, engine, prompts = video_setup
    desync = engine.encode(
        sample_messages(video_samples, "reasoning", None, None, "desync", SETTINGS, geometry=engine.geometry)
    )
    assert torch.equal(desync.input_ids, prompts.input_ids)
    with torch.no_grad():
        a, b = engine.family.prefix(model, prompts), engine.family.prefix(model, desync)
    torch.testing.assert_close(a.position_ids, b.position_ids, rtol=0, atol=0)
    assert (prompts.mm.audio_features - desync.mm.audio_features).abs().max() > 0.5  # other mel features
    audio = prompts.input_ids == processor.tokenizer.audio_token_id  # [B, L]
    # A random audio tower maps them to nearly the same output, but never to exactly the same.
    assert (a.embeds[audio] - b.embeds[audio]).abs().max() > 0
    torch.testing.assert_close(a.embeds[~audio], b.embeds[~audio], rtol=0, atol=0)


def test_a_batch_mixing_videos_with_and_without_a_soundtrack_scores_each_as_alone(family_tiny, video_samples):
    """Frames-only and sounding videos in one batch (a split holding both data types): each prompt's
    log-probs equal those of its batch of one, and sampling runs (it used to refuse the batch)."""
    from dataclasses import replace

    model, _, engine = family_tiny
    silent = replace(video_samples[1], data_type="video")  # the same file, its soundtrack unused
    batch = [video_samples[0], silent, video_samples[2]]
    prompts = engine.encode(
        sample_messages(batch, "reasoning", None, None, video=SETTINGS, geometry=engine.geometry)
    )
    assert prompts.mm.video_sound.tolist() == [True, False, True]
    completions = _completions(prompts)
    with torch.no_grad():
        together = engine.logprobs(model, prompts, completions, G, 1.0, "prefix")
        for b, sample in enumerate(batch):
            alone = engine.encode(
                sample_messages([sample], "reasoning", None, None, video=SETTINGS, geometry=engine.geometry)
            )
            rows = slice(b * G, (b + 1) * G)
            mine = engine.logprobs(model, alone, completions[rows], G, 1.0, "prefix")
            assert torch.allclose(mine, together[rows], atol=1e-5), sample.data_type
        cfg = engine.generation_config(engine.vocab_size(model), max_new_tokens=4, do_sample=True)
        assert engine.sample(model, prompts, G, cfg).ids.shape[0] == 3 * G


def test_every_tower_runs_each_tower_once_and_changes_nothing(family_tiny, video_samples):
    """A launch of several processes: an audio-only batch still calls the vision tower for images and
    for videos (on idle inputs), the embeddings are bit-identical and the idle towers get zero gradients."""
    from dataclasses import replace

    model, _, engine = family_tiny
    calls = {"audio": 0, "vision": 0}
    hooks = [
        model.model.audio_tower.register_forward_pre_hook(lambda *_: calls.__setitem__("audio", calls["audio"] + 1)),
        model.model.visual.register_forward_pre_hook(lambda *_: calls.__setitem__("vision", calls["vision"] + 1)),
    ]  # fmt: skip
    audio_only = replace(video_samples[0], data_type="video")  # frames only: no audio tower needed
    prompts = engine.encode(
        sample_messages([audio_only], "reasoning", None, None, video=SETTINGS, geometry=engine.geometry)
    )
    try:
        plain = engine.family.prefix(model, prompts)
        seen_plain = dict(calls)
        every = engine.family.prefix(model, prompts, every_tower=True)
    finally:
        for h in hooks:
            h.remove()
    assert seen_plain == {"audio": 0, "vision": 1}
    assert {k: calls[k] - seen_plain[k] for k in calls} == {"audio": 1, "vision": 2}  # idle audio + image
    assert torch.equal(plain.embeds, every.embeds)
    model.zero_grad(set_to_none=True)
    every.embeds.sum().backward()
    grads = [p.grad for p in model.model.audio_tower.parameters() if p.grad is not None]
    assert len(grads) > 10 and not any(g.any() for g in grads)  # in the graph (DDP, ZeRO), adding zero
    model.zero_grad(set_to_none=True)
