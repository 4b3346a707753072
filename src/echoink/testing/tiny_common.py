"""What both tiny builders (``tiny`` for Qwen2.5-Omni, ``tiny_qwen3`` for Qwen3-Omni) share.

Its own module so that ``tiny`` may import ``tiny_qwen3`` (to dispatch on the family) while
``tiny_qwen3`` imports only this, not ``tiny`` back.

>>> mrope_section(HEAD_DIM)
[2, 3, 3]
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, WhisperFeatureExtractor

from ..errors import UserError

HEAD_DIM = 16
"""Text attention head width of the tiny models (heads = hidden / HEAD_DIM)."""

DEFAULT_ROPE_THETA = 1e6
"""The 7B's rotary base. With 16-wide heads it leaves the width section of M-RoPE (the lowest
frequencies) at <= 2e-4 rad per image column, so a tiny model cannot tell left from right by position;
a small base (e.g. 10) gives those frequencies 0.13-0.24 rad per column."""


def text_heads(hidden: int, head_dim: int) -> int:
    """Attention heads of a tiny decoder of width ``hidden`` with ``head_dim``-wide heads.

    >>> text_heads(64, 32)
    2
    """
    if head_dim < 8 or head_dim % 8:
        raise UserError(f"head_dim must be a multiple of 8 (M-RoPE splits it in three), got {head_dim}")
    if hidden % head_dim or hidden < head_dim:
        raise UserError(f"hidden must be a positive multiple of head_dim {head_dim}, got {hidden}")
    return hidden // head_dim


def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (time, height, width) in the 7B's 16:24:24 proportion."""
    half = head_dim // 2
    t = max(1, half // 4)
    h = (half - t) // 2
    return [t, h, half - t - h]


def rescale_audio_convs(model: PreTrainedModel, gain: float, seed: int) -> None:
    """Redraw the audio tower's convolutions with std ``gain / sqrt(fan_in)`` (``gain`` 0: leave them).

    The config's initializer (std 0.02) makes the tiny tower's first convolutions ~30x smaller than the
    sinusoidal positions added after them, so a tone changes its output tokens by ~1% (measured: a 0.3 s
    tone moves its tokens by 0.015 in norm 1.3); with gain 1 they move by 0.6, and a model can tell *when*
    a sound was. Its own generator: nothing else in the model changes."""
    if not gain:
        return
    tower = next(m for name, m in model.named_modules() if name.endswith("audio_tower"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in tower.modules():
            if isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, gain / fan_in**0.5, generator=generator)


def token_ids_for_config(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """The ids the thinker config must agree on with the tokenizer."""
    ids = tokenizer.convert_tokens_to_ids
    user = tokenizer.encode("user", add_special_tokens=False)
    return {
        "audio": tokenizer.audio_token_id,
        "image": tokenizer.image_token_id,
        "video": tokenizer.video_token_id,
        "audio_bos": ids(tokenizer.audio_bos_token),
        "audio_eos": ids(tokenizer.audio_eos_token),
        "vision_bos": ids(tokenizer.vision_bos_token),
        "vision_eos": ids(tokenizer.vision_eos_token),
        "user": user[0],
        "pad": tokenizer.pad_token_id,
    }


def instantiate(model_class: type, cfg, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    """A randomly initialised thinker (seeded) that stops at <|im_end|> / pad, in eval mode."""
    torch.manual_seed(seed)
    model = model_class(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    return model.eval()


def whisper_features() -> WhisperFeatureExtractor:
    """Both Omni families' audio front end: Whisper's 128-mel features, 16 kHz, hop 160."""
    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16_000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        return_attention_mask=True,
    )
