"""Messages -> ModelInputs through the real processor; placeholder counts; padding; generation stays in text."""

from __future__ import annotations

import pytest
import torch

from echoink.model.inputs import PLACEHOLDER_TOKENS, encode_prompts, generate, suppressed_token_ids


def _audio_tokens_for(feature_lengths: torch.Tensor) -> torch.Tensor:
    # Qwen2.5-Omni audio encoder: conv stride 2, then 2x average pooling.
    return ((feature_lengths - 1) // 2 + 1 - 2) // 2 + 1


def test_placeholder_counts_match_the_features(tiny, make_messages):
    model, processor = tiny
    batch = encode_prompts(processor, [make_messages(1.0, (56, 56)), make_messages(2.5, (84, 112))])
    mm = batch.mm_inputs
    assert set(mm) == {"pixel_values", "image_grid_thw", "input_features", "feature_attention_mask"}
    tok = processor.tokenizer
    n_audio = (batch.input_ids == tok.audio_token_id).sum(1)
    n_image = (batch.input_ids == tok.image_token_id).sum(1)
    # 16 kHz, hop 160 -> 100 frames/s -> 25 audio tokens/s; one image token per 28x28 cell.
    assert n_audio.tolist() == [25, 62] == _audio_tokens_for(mm["feature_attention_mask"].sum(-1)).tolist()
    assert n_image.tolist() == [4, 12] == (mm["image_grid_thw"].prod(-1) // 4).tolist()
    with torch.no_grad():
        audio = model.model.get_audio_features(mm["input_features"], mm["feature_attention_mask"])
        image = model.model.get_image_features(mm["pixel_values"], mm["image_grid_thw"])
    assert audio.last_hidden_state.shape[0] == n_audio.sum()
    assert [p.shape[0] for p in image.pooler_output] == n_image.tolist()


def test_batch_is_left_padded(tiny, make_messages):
    _, processor = tiny
    batch = encode_prompts(processor, [make_messages(1.0), make_messages(3.0)])
    short = batch.attention_mask[0]
    assert short[0] == 0 and short[-1] == 1 and batch.attention_mask[1].all()
    assert (batch.input_ids[0][short == 0] == processor.tokenizer.pad_token_id).all()
    assert batch.input_ids[0, -1] != processor.tokenizer.pad_token_id


def test_text_only_and_audio_only_prompts(tiny, make_messages):
    model, processor = tiny
    for msgs, keys in (
        (make_messages(None, None), set()),
        (make_messages(1.0, None), {"input_features", "feature_attention_mask"}),
    ):
        batch = encode_prompts(processor, [msgs])
        assert set(batch.mm_inputs) == keys
        with torch.no_grad():
            assert torch.isfinite(model(**batch.as_kwargs()).logits).all()


def test_left_padded_batch_logits_equal_single_sample_logits(tiny, make_messages):
    model, processor = tiny
    msgs = [make_messages(1.0, (56, 56)), make_messages(2.5, (84, 112)), make_messages(1.5, (112, 56))]
    batch = encode_prompts(processor, msgs)
    with torch.no_grad():
        batched = model(**batch.as_kwargs()).logits
        for i, m in enumerate(msgs):
            single = encode_prompts(processor, [m])
            logits = model(**single.as_kwargs()).logits[0]
            torch.testing.assert_close(batched[i, -logits.shape[0] :], logits, atol=1e-4, rtol=0)


def test_to_moves_and_casts_only_floating_media(tiny, make_messages):
    _, processor = tiny
    batch = encode_prompts(processor, [make_messages()]).to("cpu", torch.bfloat16)
    assert batch.mm_inputs["pixel_values"].dtype == torch.bfloat16
    assert batch.mm_inputs["image_grid_thw"].dtype == torch.int64
    assert batch.input_ids.dtype == torch.int64


def test_suppressed_ids_cover_placeholders_and_unused_rows(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    vocab = model.config.text_config.vocab_size
    ids = suppressed_token_ids(processor, vocab)
    assert {tok.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS} <= set(ids)
    assert set(range(len(tok), vocab)) <= set(ids)
    assert tok.convert_tokens_to_ids("<|im_end|>") not in ids


@pytest.fixture
def boost(tiny):
    """boost(ids): a context in which the tiny model's logits for ``ids`` are raised by 100."""
    model, _ = tiny

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


def test_generation_never_emits_placeholder_tokens(tiny, make_messages, boost):
    model, processor = tiny
    batch = encode_prompts(processor, [make_messages(1.0), make_messages(2.0, (84, 84))])
    banned = suppressed_token_ids(processor, model.config.text_config.vocab_size)
    placeholders = [processor.tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS]
    with boost(placeholders):
        # Sanity: left alone, the boosted model emits nothing but placeholders.
        raw = model.generate(**batch.as_kwargs(), max_new_tokens=4, do_sample=False)
        assert set(raw[:, batch.input_ids.shape[1] :].flatten().tolist()) <= set(placeholders)
        torch.manual_seed(0)
        out = generate(
            model,
            batch,
            processor,
            max_new_tokens=24,
            do_sample=True,
            temperature=1.5,
            num_return_sequences=3,
        )
    assert out.shape[0] == 6
    assert not set(out.flatten().tolist()) & set(banned)


def test_generation_stops_at_im_end(tiny, make_messages, boost):
    model, processor = tiny
    tok = processor.tokenizer
    batch = encode_prompts(processor, [make_messages()])
    with boost([tok.convert_tokens_to_ids("<|im_end|>")]):
        out = generate(model, batch, processor, max_new_tokens=16, do_sample=False)
    assert out.tolist() == [[tok.convert_tokens_to_ids("<|im_end|>")]]


@pytest.mark.parametrize("top_k, expect_topk", [(None, False), (0, False), (5, True)])
def test_sampling_has_no_hidden_top_k(tiny, top_k, expect_topk):
    """transformers fills top_k=50 when none is given; ours samples the full distribution unless asked."""
    from echoink.model.inputs import generation_config

    model, processor = tiny
    sampling = {"do_sample": True} if top_k is None else {"do_sample": True, "top_k": top_k}
    cfg = generation_config(processor, max_new_tokens=4, **sampling)
    processors = model._get_logits_processor(
        generation_config=cfg, input_ids_seq_length=3, encoder_input_ids=None,
        prefix_allowed_tokens_fn=None, logits_processor=None,
    )  # fmt: skip
    assert any(type(p).__name__ == "TopKLogitsWarper" for p in processors) == expect_topk
