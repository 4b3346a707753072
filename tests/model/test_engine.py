"""The engine's shared-prefix passes equal the naive repeat path (the anchors' way), for every family:
log-probs, their gradients (audio tower, vision tower, LLM, experts), greedy decoding vs ``generate``,
and each prompt's towers run once per pass (counted with hooks)."""

from pathlib import Path

import pytest
import torch

from echoink.data import load_split, sample_messages
from echoink.model.decode import completion_mask_from, sample_categorical
from media_helpers import make_row, write_image, write_split, write_tone

G = 3


@pytest.fixture(scope="module")
def av_samples(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("av")
    rows = []
    for i in range(3):  # different image widths and clip lengths, so padding and owners matter
        write_image(root / f"images/sample_{i}.png", size=(56 + 28 * i, 56))
        write_tone(root / f"audios/sample_{i}.wav", seconds=0.5 + 0.5 * i, freq=300 + 200 * i)
        rows.append(make_row(i))
    rows.append({**make_row(3), "data_type": "audio", "path": {"audio": "audios/sample_0.wav"}})  # no image
    return load_split(write_split(root, rows)).samples


@pytest.fixture(scope="module")
def setup(family_tiny, av_samples):
    model, processor, engine = family_tiny
    prompts = engine.encode(sample_messages(av_samples, "reasoning", None, None, geometry=engine.geometry))
    return model, processor, engine, prompts


def _completions(prompts, processor, n_tokens=9):
    torch.manual_seed(1)
    ids = torch.randint(20, 300, (prompts.num_prompts * G, n_tokens))
    ids[0, 4] = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")  # one early stop, then padding
    return ids


@pytest.mark.parametrize("mode", ["prefix", "towers"])
def test_logprobs_equal_repeat(setup, mode):
    model, processor, engine, prompts = setup
    comp = _completions(prompts, processor)
    with torch.no_grad():
        ref = engine.logprobs(model, prompts, comp, G, 0.9, "repeat")
        got = engine.logprobs(model, prompts, comp, G, 0.9, mode)
    assert got.shape == comp.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def _grads(model, engine, prompts, comp, mode):
    model.zero_grad(set_to_none=True)
    logp = engine.logprobs(model, prompts, comp, G, 1.0, mode)
    weights = torch.linspace(-1, 1, comp.shape[0])[:, None]
    (logp * weights).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_equal_repeat(setup):
    model, processor, engine, prompts = setup
    comp = _completions(prompts, processor)
    ref = _grads(model, engine, prompts, comp, "repeat")
    got = _grads(model, engine, prompts, comp, "prefix")
    assert set(ref) == set(got)
    parts = {"audio_tower", "visual", "language_model"} | ({"experts"} if engine.family.is_moe else set())
    assert all(any(f".{t}." in n for n in got) for t in parts), "every part of the thinker must get gradient"
    for name in ref:
        scale = ref[name].abs().max().clamp(min=1e-6)
        assert ((got[name] - ref[name]).abs().max() / scale) < 1e-4, name
    model.zero_grad(set_to_none=True)


def _item_counter(model):
    """Hooks that count the clips / images each tower encodes (from its feature_lens / grid_thw argument)."""
    seen = {"audio": [], "vision": []}

    def hook(key, arg):
        def record(_module, args, kwargs):
            value = kwargs.get(arg, args[1] if len(args) > 1 else None)
            seen[key].append(int(value.shape[0]))

        return record

    hooks = [
        model.model.audio_tower.register_forward_pre_hook(hook("audio", "feature_lens"), with_kwargs=True),
        model.model.visual.register_forward_pre_hook(hook("vision", "grid_thw"), with_kwargs=True),
    ]
    return seen, hooks


@pytest.mark.parametrize("mode", ["prefix", "towers", "repeat"])
def test_towers_run_once_per_prompt_unless_repeat(setup, mode):
    """Scoring and the rollout each encode every clip and image once (repeat mode: G times over)."""
    model, processor, engine, prompts = setup
    seen, hooks = _item_counter(model)
    try:
        with torch.no_grad():
            engine.logprobs(model, prompts, _completions(prompts, processor), G, 1.0, mode)
            cfg = engine.generation_config(engine.vocab_size(model), max_new_tokens=4, do_sample=True)
            engine.sample(model, prompts, G, cfg, shared=mode != "repeat")
    finally:
        for h in hooks:
            h.remove()
    copies = G if mode == "repeat" else 1
    n_audio, n_image = len(prompts.mm.audio_owner), len(prompts.mm.image_owner)
    assert (n_audio, n_image) == (4, 3)
    assert seen == {"audio": [n_audio * copies] * 2, "vision": [n_image * copies] * 2}


@pytest.mark.parametrize("prompts_kind", ["left-padded batch", "one unpadded prompt"])
def test_shared_generation_equals_plain_generation(setup, prompts_kind):
    model, processor, engine, prompts = setup
    if prompts_kind == "one unpadded prompt":  # the longest prompt alone: the decode loop passes no mask
        i = int(prompts.attention_mask.sum(1).argmax())
        prompts = prompts.slice(i, i + 1)
        assert prompts.attention_mask.all()
    vocab = engine.vocab_size(model)
    greedy = engine.generation_config(vocab, max_new_tokens=10, do_sample=False)
    plain = engine.sample(model, prompts, G, greedy, shared=False)
    # Greedy: token-identical to generate. Sampling with top_k=1: the loop applies generate's
    # processors before its own draw, so it must land on the greedy tokens too.
    top1 = engine.generation_config(vocab, max_new_tokens=10, do_sample=True, temperature=1.0, top_k=1)
    for cfg in (greedy, top1):
        shared = engine.sample(model, prompts, G, cfg, shared=True)
        for a, b in zip(shared.ids, plain.ids, strict=True):
            assert torch.equal(a, b)
    # Full sampling: different draws than generate's, the same invariants.
    cfg = engine.generation_config(vocab, max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.95)
    done = engine.sample(model, prompts, G, cfg, shared=True)
    ids, mask, truncated = done.ids, done.mask, done.truncated
    assert ids.shape[0] == prompts.num_prompts * G
    assert len({tuple(r) for r in ids.tolist()}) > 1, "sampled rows should differ"
    assert not torch.isin(ids, torch.tensor(cfg.suppress_tokens)).any()
    ended = torch.isin(ids, torch.tensor(cfg.eos_token_id)).any(1)
    assert torch.equal(truncated, ~ended)
    assert torch.equal(mask.sum(1)[~ended], torch.full_like(mask.sum(1)[~ended], ids.shape[1]))


def test_batch_slice_repeat_concat_round_trip(setup):
    """Slicing a batch into single prompts and concatenating them back gives the same log-probs."""
    from echoink.model import PromptBatch

    model, processor, engine, prompts = setup
    parts = [prompts.slice(i, i + 1) for i in range(prompts.num_prompts)]
    again = PromptBatch.concat(parts, engine.pad_id)
    assert torch.equal(again.input_ids, prompts.input_ids)
    assert again.mm.audio_owner.tolist() == prompts.mm.audio_owner.tolist()
    comp = _completions(prompts, processor)
    with torch.no_grad():
        a = engine.logprobs(model, prompts, comp, G, 1.0, "prefix")
        b = engine.logprobs(model, again, comp, G, 1.0, "prefix")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_moe_router_aux_loss_only_when_asked(setup):
    model, processor, engine, prompts = setup
    comp = _completions(prompts, processor)
    with torch.no_grad():
        _, none = engine.scorer(model, "prefix", 0.0)(prompts, comp, G)
        _, aux = engine.scorer(model, "prefix", 0.01)(prompts, comp, G)
    assert none is None
    if engine.family.is_moe:  # Switch-style balance loss: num_experts * sum(f_i * P_i) >= 1 at best balance
        assert aux is not None and float(aux) >= 1.0 - 1e-4
    else:
        assert aux is None


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


@pytest.mark.parametrize("per_pass", [0, 5])
def test_gradient_checkpointing_keeps_prefix_sharing_exact(family_tiny, av_samples, per_pass):
    """With checkpointing on, the prefix pass (prompt once, completions checkpointed in chunks of
    ``per_pass``) gives repeat mode's log-probs and gradients, and each tower still runs once."""
    from echoink.testing import make_tiny

    _, processor, engine = family_tiny
    model, _ = make_tiny(family=engine.family.name)  # a fresh copy: checkpointing is switched on below
    model.train()
    prompts = engine.encode(sample_messages(av_samples, "reasoning", None, None, geometry=engine.geometry))
    comp = _completions(prompts, processor)
    ref_logp = engine.logprobs(model, prompts, comp, G, 1.0, "repeat").detach()
    ref = _grads(model, engine, prompts, comp, "repeat")
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    seen, hooks = _item_counter(model)
    try:
        model.zero_grad(set_to_none=True)
        logp, _ = engine.scorer(model, "prefix", 0.0, per_pass)(prompts, comp, G)
        (logp * torch.linspace(-1, 1, comp.shape[0])[:, None]).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(logp.detach(), ref_logp, atol=1e-5, rtol=0)
    assert set(got) == set(ref)
    for name in ref:
        assert ((got[name] - ref[name]).abs().max() / ref[name].abs().max().clamp(min=1e-6)) < 1e-4, name
    # Forward once each (the towers' own checkpointing replays them in backward, still once per clip).
    assert seen["audio"][0] == 4 and seen["vision"][0] == 3
