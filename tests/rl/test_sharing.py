"""Shared-prefix scoring and generation equal the naive repeat path (the anchors' way) on audio+image prompts."""

from pathlib import Path

import pytest
import torch

from echoink.data import load_split
from echoink.model.inputs import generation_config
from echoink.model.tiny import make_tiny
from echoink.rl.experience import prompt_inputs
from echoink.rl.rollout import completion_mask_from, sample_categorical, sample_completions, slice_mm
from echoink.rl.scoring import attach_owners, completion_logprobs
from media_helpers import make_row, write_image, write_split, write_tone

G = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    model, processor = make_tiny()
    root: Path = tmp_path_factory.mktemp("av")
    rows = []
    for i in range(3):  # different image widths and clip lengths, so padding and owners matter
        write_image(root / f"images/sample_{i}.png", size=(56 + 28 * i, 56))
        write_tone(root / f"audios/sample_{i}.wav", seconds=0.5 + 0.5 * i, freq=300 + 200 * i)
        rows.append(make_row(i))
    rows.append({**make_row(3), "data_type": "audio", "path": {"audio": "audios/sample_0.wav"}})  # no image
    samples = load_split(write_split(root, rows)).samples
    batch = prompt_inputs(processor, samples, "reasoning", None, None)
    mm = attach_owners(batch.mm, batch.input_ids, model.config)
    return model, processor, batch, mm


def _completions(batch, processor, n_tokens=9):
    torch.manual_seed(1)
    ids = torch.randint(20, 300, (batch.input_ids.shape[0] * G, n_tokens))
    ids[0, 4] = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")  # one early stop, then padding
    return ids


@pytest.mark.parametrize("mode", ["prefix", "towers"])
def test_logprobs_equal_repeat(setup, mode):
    model, processor, batch, mm = setup
    comp = _completions(batch, processor)
    with torch.no_grad():
        ref = completion_logprobs(model, batch.input_ids, batch.attention_mask, mm, comp, G, 0.9, "repeat")
        got = completion_logprobs(model, batch.input_ids, batch.attention_mask, mm, comp, G, 0.9, mode)
    assert got.shape == comp.shape
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)


def _grads(model, batch, mm, comp, mode):
    model.zero_grad(set_to_none=True)
    logp = completion_logprobs(model, batch.input_ids, batch.attention_mask, mm, comp, G, 1.0, mode)
    weights = torch.linspace(-1, 1, comp.shape[0])[:, None]
    (logp * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_equal_repeat(setup):
    model, processor, batch, mm = setup
    comp = _completions(batch, processor)
    ref = _grads(model, batch, mm, comp, "repeat")
    got = _grads(model, batch, mm, comp, "prefix")
    assert set(ref) == set(got)
    towers = {"audio_tower", "visual", "language_model"}
    assert all(any(f".{t}." in n for n in got) for t in towers), "every part of the thinker must get gradient"
    for name in ref:
        scale = ref[name].abs().max().clamp(min=1e-6)
        assert ((got[name] - ref[name]).abs().max() / scale) < 1e-4, name
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("prompts", ["left-padded batch", "one unpadded prompt"])
def test_shared_generation_equals_plain_generation(setup, prompts):
    model, processor, batch, mm = setup
    input_ids, attention_mask = batch.input_ids, batch.attention_mask
    if prompts == "one unpadded prompt":  # the longest prompt alone: the decode loop passes no mask
        i = int(attention_mask.sum(1).argmax())
        assert attention_mask[i].all()
        input_ids, attention_mask, mm = (
            input_ids[i : i + 1],
            attention_mask[i : i + 1],
            slice_mm(mm, i, i + 1),
        )
    vocab = model.get_output_embeddings().weight.shape[0]
    greedy = generation_config(processor, vocab, max_new_tokens=10, do_sample=False)
    plain = sample_completions(model, input_ids, attention_mask, mm, G, greedy, shared=False)
    # Greedy: token-identical to generate. Sampling with top_k=1: the loop applies generate's
    # processors before its own draw, so it must land on the greedy tokens too.
    top1 = generation_config(processor, vocab, max_new_tokens=10, do_sample=True, temperature=1.0, top_k=1)
    for cfg in (greedy, top1):
        shared = sample_completions(model, input_ids, attention_mask, mm, G, cfg, shared=True)
        for a, b in zip(shared, plain, strict=True):
            assert torch.equal(a, b)
    # Full sampling: different draws than generate's, the same invariants.
    cfg = generation_config(processor, vocab, max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.95)
    ids, mask, truncated = sample_completions(model, input_ids, attention_mask, mm, G, cfg, shared=True)
    assert ids.shape[0] == input_ids.shape[0] * G
    assert len({tuple(r) for r in ids.tolist()}) > 1, "sampled rows should differ"
    assert not torch.isin(ids, torch.tensor(cfg.suppress_tokens)).any()
    ended = torch.isin(ids, torch.tensor(cfg.eos_token_id)).any(1)
    assert torch.equal(truncated, ~ended)
    assert torch.equal(mask.sum(1)[~ended], torch.full_like(mask.sum(1)[~ended], ids.shape[1]))


def test_sample_categorical_draws_the_softmax_distribution():
    scores = torch.tensor(
        [[0.0, 1.0, -float("inf"), 2.0, -1.0], [-float("inf"), 0.0, 0.0, -float("inf"), 3.0]]
    )
    torch.manual_seed(0)
    n = 100_000
    draws = sample_categorical(scores.repeat_interleave(n, 0)).view(2, n)  # [2, n]
    freq = torch.stack([torch.bincount(row, minlength=5).float() / n for row in draws])
    probs = torch.softmax(scores, -1)
    assert freq[probs == 0].sum() == 0, "a -inf score was drawn"
    torch.testing.assert_close(freq, probs, atol=0.006, rtol=0)  # ~4 standard errors at n = 1e5


def test_completion_mask_stops_after_first_end():
    ids = torch.tensor([[5, 9, 7, 9, 3], [1, 2, 3, 4, 5]])
    mask, truncated = completion_mask_from(ids, [9])
    assert mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert truncated.tolist() == [False, True]
