"""Chat messages -> model inputs through the real Qwen2.5-Omni processor, and generation that stays in text.

Multimodal tensors travel as one ``mm_inputs`` mapping (pixel_values, image_grid_thw, input_features,
feature_attention_mask, and video keys if present), so adding a modality touches only this file.
The placeholder/marker tokens that a model must never generate are defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

# Placeholders are expanded by the processor to one token per feature, and the bos markers steer
# get_rope_index; one of them inside a completion breaks the next forward (feature-count mismatch
# or wrong positions). A random model emits them readily, so generation masks them out.
PLACEHOLDER_TOKENS: tuple[str, ...] = (
    "<|AUDIO|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|im_start|>",
)
STOP_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
"""Generation ends at the first of these (Qwen2.5-Omni's own generation config stops at both)."""

# Processor outputs that are bookkeeping, not model inputs.
_NOT_MODEL_INPUTS = ("num_audio_tokens",)


@dataclass
class ModelInputs:
    """A left-padded prompt batch: B prompts of L tokens plus their media tensors."""

    input_ids: torch.Tensor
    """[B, L] token ids, left padded with the pad id."""
    attention_mask: torch.Tensor
    """[B, L] 1 for real tokens, 0 for left padding."""
    mm_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """Media tensors exactly as the thinker's forward takes them (flattened over the batch's images/audios)."""

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelInputs:
        """Move everything to ``device``; floating media tensors also to ``dtype`` when given."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device)

        return ModelInputs(
            move(self.input_ids),
            move(self.attention_mask),
            {k: move(v) for k, v in self.mm_inputs.items()},
        )

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for the thinker's ``forward`` / ``generate``."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **self.mm_inputs}

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]


def _tokenizer(processor_or_tokenizer: ProcessorMixin | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    return getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)


def _media(messages: list[dict[str, Any]], kind: str) -> list[Any]:
    """The ``kind`` blocks' payloads in the order the chat template emits their placeholders."""
    return [
        block[kind]
        for message in messages
        if not isinstance(message["content"], str)
        for block in message["content"]
        if block.get("type") == kind
    ]


def encode_prompts(
    processor: ProcessorMixin, batch_messages: list[list[dict[str, Any]]], add_generation_prompt: bool = True
) -> ModelInputs:
    """Render each conversation with the chat template and run the processor over the batch (left padded).

    Messages are the data layer's: content blocks carrying a PIL image / a 16 kHz float32 waveform.
    """
    texts = [
        processor.apply_chat_template(m, tokenize=False, add_generation_prompt=add_generation_prompt)
        for m in batch_messages
    ]
    images = [img for m in batch_messages for img in _media(m, "image")]
    audios = [wav for m in batch_messages for wav in _media(m, "audio")]
    kwargs: dict[str, Any] = {}
    if audios:
        # The Omni processor forces padding="max_length", whose default is Whisper's 30 s: mel features
        # for 30 s per clip (8x the work for 1 s clips). Capping max_length at the longest clip gives the
        # same valid frames, and the audio tower reads only those (feature_attention_mask). One STFT
        # window (n_fft) of zeros more keeps every clip's last frames as under 30 s padding, so a
        # prompt's features do not depend on what else is in its batch.
        n_fft = getattr(processor.feature_extractor, "n_fft", 400)
        kwargs["audio_kwargs"] = {"max_length": max(len(a) for a in audios) + n_fft}
    out = processor(
        text=texts,
        images=images or None,
        audio=audios or None,
        padding=True,
        padding_side="left",
        return_tensors="pt",
        **kwargs,
    )
    mm = {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask", *_NOT_MODEL_INPUTS)}
    return ModelInputs(out["input_ids"], out["attention_mask"], mm)


def suppressed_token_ids(
    processor_or_tokenizer: ProcessorMixin | PreTrainedTokenizerBase, vocab_size: int | None = None
) -> list[int]:
    """Ids generation must never produce: media placeholders/markers, and the model's rows past the tokenizer.

    ``vocab_size`` (the model's embedding rows, often larger than the tokenizer) adds the unused ids.
    """
    tok = _tokenizer(processor_or_tokenizer)
    ids = [tok.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS]
    ids = [i for i in ids if i is not None and i != tok.unk_token_id]
    if vocab_size is not None:
        ids += range(len(tok), vocab_size)
    return sorted(set(ids))


def stop_token_ids(processor_or_tokenizer: ProcessorMixin | PreTrainedTokenizerBase) -> list[int]:
    tok = _tokenizer(processor_or_tokenizer)
    return [tok.convert_tokens_to_ids(t) for t in STOP_TOKENS]


def generation_config(
    processor_or_tokenizer: ProcessorMixin | PreTrainedTokenizerBase,
    vocab_size: int | None = None,
    **sampling: Any,
) -> GenerationConfig:
    """Stops at <|im_end|>/<|endoftext|>, pads with the pad id, suppresses placeholders; ``sampling`` as in HF.

    >>> from echoink.model.tokenizer import train_tokenizer
    >>> cfg = generation_config(train_tokenizer(300), max_new_tokens=8, do_sample=False)
    >>> cfg.max_new_tokens, len(cfg.suppress_tokens), len(cfg.eos_token_id)
    (8, 9, 2)
    """
    tok = _tokenizer(processor_or_tokenizer)
    if sampling.get("do_sample") and "top_k" not in sampling:
        sampling["top_k"] = (
            0  # transformers' default is 50; "off" unless asked, so samples match the scored policy
        )
    return GenerationConfig(
        eos_token_id=stop_token_ids(tok),
        pad_token_id=tok.pad_token_id,
        suppress_tokens=suppressed_token_ids(tok, vocab_size),
        **sampling,
    )


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    inputs: ModelInputs,
    processor_or_tokenizer: ProcessorMixin | PreTrainedTokenizerBase,
    **sampling: Any,
) -> torch.Tensor:
    """Completion ids [B * num_return_sequences, T] (prompt stripped; pad id after the stop token).

    ``sampling``: max_new_tokens, do_sample, temperature, top_p, top_k, num_return_sequences, ...
    """
    vocab = model.get_output_embeddings().weight.shape[0]
    cfg = generation_config(processor_or_tokenizer, vocab, **sampling)
    out = model.generate(**inputs.as_kwargs(), generation_config=cfg)
    return out[:, inputs.input_ids.shape[1] :]
