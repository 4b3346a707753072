"""Messages -> PromptBatch through the engine (real processors of both families); placeholder counts; padding;
generation stays in text."""

from __future__ import annotations

import pytest
import torch


def _audio_tokens_for(feature_lengths: torch.Tensor) -> torch.Tensor:
    # Qwen2.5-Omni audio encoder: conv stride 2, then 2x average pooling.
    return ((feature_lengths - 1) // 2 + 1 - 2) // 2 + 1


def _qwen3_audio_tokens_for(frames: torch.Tensor) -> torch.Tensor:
    # Qwen3-Omni: 13 tokens per full 100-frame chunk, the remainder through three stride-2 convolutions.
    rest = (frames % 100 - 1) // 2 + 1
    return ((rest - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13


# (audio tokens of 1 s and 2.5 s, image tokens of 56x56 and 84x112, and how they follow from the features)
GEOMETRY = {
    "qwen2.5-omni": ([25, 62], [4, 12], _audio_tokens_for),  # 25 Hz; a token per 28-px cell
    "qwen3-omni": ([13, 33], [4, 12], _qwen3_audio_tokens_for),  # ~13 per 100 frames; 32-px cells
}


def test_placeholder_counts_match_the_features(family_tiny, make_messages):
    model, processor, engine = family_tiny
    batch = engine.encode([make_messages(1.0, (56, 56)), make_messages(2.5, (84, 112))])
    mm = batch.mm.model_kwargs()
    assert set(mm) == {"pixel_values", "image_grid_thw", "input_features", "feature_attention_mask"}
    tok = processor.tokenizer
    n_audio = (batch.input_ids == tok.audio_token_id).sum(1)
    n_image = (batch.input_ids == tok.image_token_id).sum(1)
    audio_tokens, image_tokens, rule = GEOMETRY[engine.family.name]
    assert n_audio.tolist() == audio_tokens == rule(mm["feature_attention_mask"].sum(-1)).tolist()
    assert n_image.tolist() == image_tokens == (mm["image_grid_thw"].prod(-1) // 4).tolist()
    assert batch.mm.audio_owner.tolist() == [0, 1] and batch.mm.image_owner.tolist() == [0, 1]
    with torch.no_grad():
        audio = model.model.get_audio_features(mm["input_features"], mm["feature_attention_mask"])
        image = model.model.get_image_features(mm["pixel_values"], mm["image_grid_thw"])
    assert audio.last_hidden_state.shape[0] == n_audio.sum()
    assert [p.shape[0] for p in image.pooler_output] == n_image.tolist()


def test_batch_is_left_padded(family_tiny, make_messages):
    _, processor, engine = family_tiny
    batch = engine.encode([make_messages(1.0), make_messages(3.0)])
    short = batch.attention_mask[0]
    assert short[0] == 0 and short[-1] == 1 and batch.attention_mask[1].all()
    assert (batch.input_ids[0][short == 0] == processor.tokenizer.pad_token_id).all()
    assert batch.input_ids[0, -1] != processor.tokenizer.pad_token_id


def test_text_only_and_audio_only_prompts(family_tiny, make_messages):
    model, processor, engine = family_tiny
    for msgs, keys in (
        (make_messages(None, None), set()),
        (make_messages(1.0, None), {"input_features", "feature_attention_mask"}),
    ):
        batch = engine.encode([msgs])
        assert set(batch.mm.model_kwargs()) == keys
        with torch.no_grad():
            assert torch.isfinite(model(**batch.model_kwargs()).logits).all()


def test_left_padded_batch_logits_equal_single_sample_logits(family_tiny, make_messages):
    model, processor, engine = family_tiny
    msgs = [make_messages(1.0, (56, 56)), make_messages(2.5, (84, 112)), make_messages(1.5, (112, 56))]
    batch = engine.encode(msgs)
    with torch.no_grad():
        batched = model(**batch.model_kwargs()).logits
        for i, m in enumerate(msgs):
            single = engine.encode([m])
            logits = model(**single.model_kwargs()).logits[0]
            torch.testing.assert_close(batched[i, -logits.shape[0] :], logits, atol=1e-4, rtol=0)


def test_to_moves_and_casts_only_floating_media(family_tiny, make_messages):
    _, processor, engine = family_tiny
    batch = engine.encode([make_messages()]).to("cpu", torch.bfloat16)
    assert batch.mm.pixel_values.dtype == torch.bfloat16
    assert batch.mm.image_grid_thw.dtype == torch.int64
    assert batch.input_ids.dtype == torch.int64


def test_suppressed_ids_cover_placeholders_and_unused_rows(family_tiny):
    model, processor, engine = family_tiny
    tok = processor.tokenizer
    vocab = model.config.text_config.vocab_size
    ids = engine.suppressed_token_ids(vocab)
    placeholders = {tok.convert_tokens_to_ids(t) for t in engine.family.placeholder_tokens}
    assert tok.unk_token_id not in placeholders and None not in placeholders  # every name is a real token
    assert {tok.image_token_id, tok.audio_token_id, tok.video_token_id} <= placeholders <= set(ids)
    assert set(range(len(tok), vocab)) <= set(ids)
    assert tok.convert_tokens_to_ids("<|im_end|>") not in ids


@pytest.fixture
def boost(family_tiny):
    """boost(ids): a context in which the tiny model's logits for ``ids`` are raised by 100."""
    model, _, _ = family_tiny

    class Boost:
        def __init__(self, ids: list[int]) -> None:
            self.ids = ids

        def __enter__(self):
            def hook(_module, _args, out):
                out[..., self.ids] += 100.0
                return out

            self.handle = model.lm_head.register_forward_hook(hook)

        def __exit__(self, *exc):
            self.handle.remove()

    return Boost


def test_generation_never_emits_placeholder_tokens(family_tiny, make_messages, boost):
    model, processor, engine = family_tiny
    batch = engine.encode([make_messages(1.0), make_messages(2.0, (84, 84))])
    banned = engine.suppressed_token_ids(model.config.text_config.vocab_size)
    placeholders = [processor.tokenizer.convert_tokens_to_ids(t) for t in engine.family.placeholder_tokens]
    with boost(placeholders):
        # Sanity: left alone, the boosted model emits nothing but placeholders.
        raw = model.generate(**batch.model_kwargs(), max_new_tokens=4, do_sample=False)
        assert set(raw[:, batch.input_ids.shape[1] :].flatten().tolist()) <= set(placeholders)
        torch.manual_seed(0)
        out = engine.generate(
            model,
            batch,
            max_new_tokens=24,
            do_sample=True,
            temperature=1.5,
            num_return_sequences=3,
        )
    assert out.shape[0] == 6
    assert not set(out.flatten().tolist()) & set(banned)


def test_generation_stops_at_im_end(family_tiny, make_messages, boost):
    model, processor, engine = family_tiny
    tok = processor.tokenizer
    batch = engine.encode([make_messages()])
    with boost([tok.convert_tokens_to_ids("<|im_end|>")]):
        out = engine.generate(model, batch, max_new_tokens=16, do_sample=False)
    assert out.tolist() == [[tok.convert_tokens_to_ids("<|im_end|>")]]


@pytest.mark.parametrize("top_k, expect_topk", [(None, False), (0, False), (5, True)])
def test_sampling_has_no_hidden_top_k(tiny, top_k, expect_topk):
    """transformers fills top_k=50 when none is given; ours samples the full distribution unless asked."""
    from echoink.model import Engine

    model, processor = tiny
    sampling = {"do_sample": True} if top_k is None else {"do_sample": True, "top_k": top_k}
    cfg = Engine(processor, "qwen2.5-omni").generation_config(max_new_tokens=4, **sampling)
    processors = model._get_logits_processor(
        generation_config=cfg, input_ids_seq_length=3, encoder_input_ids=None,
        prefix_allowed_tokens_fn=None, logits_processor=None,
    )  # fmt: skip
    assert any(type(p).__name__ == "TopKLogitsWarper" for p in processors) == expect_topk
