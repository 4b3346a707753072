"""A tiny, randomly initialised Qwen2.5-Omni thinker + tokenizer + the real processor, built locally in seconds.

Same classes and the same input geometry as Qwen2.5-Omni-7B (14-px patches merged 2x2, so a 28-px
cell is one image token; Whisper 128-mel features, 25 audio tokens per second), only every width and
depth shrunk. Tests, the CPU demo and anyone without the real weights use it.

>>> cfg = tiny_thinker_config(hidden=64, layers=2, vocab=1024, token_ids=_example_ids())
>>> cfg.text_config.rope_parameters["mrope_section"], cfg.vision_config.patch_size
([2, 3, 3], 14)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProcessorMixin,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from ..errors import UserError
from .tiny_common import (
    DEFAULT_ROPE_THETA,
    HEAD_DIM,
    instantiate,
    mrope_section,
    rescale_audio_convs,
    text_heads,
    token_ids_for_config,
    whisper_features,
)
from .tokenizer import train_tokenizer

log = logging.getLogger(__name__)


def _example_ids() -> dict[str, int]:
    names = ("audio", "image", "video", "audio_bos", "audio_eos", "vision_bos", "vision_eos", "user", "pad")
    return {name: 100 + i for i, name in enumerate(names)}


# The towers' tiny sizes (the 7B's input geometry: 128 mel bins, 14-px patches merged 2x2, 2 frames).
TINY_AUDIO = {
    "num_mel_bins": 128,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "d_model": 32,
    "n_window": 100,
    "max_source_positions": 1500,
}
TINY_VISION = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [1],
}


def tiny_thinker_config(
    hidden: int,
    layers: int,
    vocab: int,
    token_ids: dict[str, int],
    rope_theta: float = DEFAULT_ROPE_THETA,
    head_dim: int = HEAD_DIM,
) -> Qwen2_5OmniThinkerConfig:
    """Thinker config with tiny text/audio/vision towers and the 7B's input geometry."""
    heads = text_heads(hidden, head_dim)
    text = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "max_position_embeddings": 32768,
        # mrope_section must sum to head_dim/2 or the rotary split fails.
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": mrope_section(head_dim),
        },
        "pad_token_id": token_ids["pad"],
        "tie_word_embeddings": False,
    }
    cfg = Qwen2_5OmniThinkerConfig(
        text_config=text,
        audio_config={**TINY_AUDIO, "output_dim": hidden},
        vision_config={**TINY_VISION, "out_hidden_size": hidden},
        audio_token_index=token_ids["audio"],
        image_token_index=token_ids["image"],
        video_token_index=token_ids["video"],
        audio_start_token_id=token_ids["audio_bos"],
        audio_end_token_id=token_ids["audio_eos"],
        user_token_id=token_ids["user"],
    )
    # Not a declared field of the thinker config, but get_rope_index reads it: without it image inputs fail.
    cfg.vision_start_token_id = token_ids["vision_bos"]
    cfg.vision_end_token_id = token_ids["vision_eos"]
    return cfg


def build_processor(tokenizer: PreTrainedTokenizerBase) -> Qwen2_5OmniProcessor:
    """The real Qwen2.5-Omni processor with the 7B's feature extractor and image/video processor settings."""
    features = whisper_features()
    image = Qwen2VLImageProcessor(
        min_pixels=3136, max_pixels=12_845_056, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    video = Qwen2VLVideoProcessor(
        min_pixels=3136, max_pixels=12_845_056, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    return Qwen2_5OmniProcessor(
        image_processor=image,
        video_processor=video,
        feature_extractor=features,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


TINY_FAMILIES = ("qwen2.5-omni", "qwen3-omni")


def make_tiny(
    hidden: int = 64,
    layers: int = 2,
    vocab: int = 1024,
    seed: int = 0,
    extra_corpus: Iterable[str] = (),
    rope_theta: float = DEFAULT_ROPE_THETA,
    family: str = "qwen2.5-omni",
    head_dim: int = HEAD_DIM,
    audio_conv_gain: float = 0.0,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """The tiny thinker of ``family`` and its processor, in memory. Deterministic for given arguments.

    ``head_dim``: the text attention head width (heads = hidden / head_dim); vLLM's CPU attention
    needs at least 32 (its smallest supported size), the default 16 keeps the demo's models.
    ``audio_conv_gain`` > 0 redraws the audio tower's convolutions (``tiny_common.rescale_audio_convs``)."""
    if family not in TINY_FAMILIES:
        raise UserError(f"unknown tiny model family {family!r}; valid: {', '.join(TINY_FAMILIES)}")
    if family == "qwen3-omni":
        from .tiny_qwen3 import make_tiny_qwen3

        model, processor = make_tiny_qwen3(hidden, layers, vocab, seed, extra_corpus, rope_theta, head_dim)
    else:
        tokenizer = train_tokenizer(vocab, extra_corpus)
        cfg = tiny_thinker_config(
            hidden, layers, vocab, token_ids_for_config(tokenizer), rope_theta, head_dim
        )
        model = instantiate(Qwen2_5OmniThinkerForConditionalGeneration, cfg, tokenizer, seed)
        processor = build_processor(tokenizer)
    rescale_audio_convs(model, audio_conv_gain, seed)
    return model, processor


def build_tiny(
    out_dir: str | Path,
    hidden: int = 64,
    layers: int = 2,
    vocab: int = 1024,
    seed: int = 0,
    extra_corpus: Iterable[str] = (),
    rope_theta: float = DEFAULT_ROPE_THETA,
    family: str = "qwen2.5-omni",
    head_dim: int = HEAD_DIM,
    audio_conv_gain: float = 0.0,
) -> Path:
    """Write a tiny thinker + tokenizer + processor to ``out_dir``; loadable offline by plain transformers.

    Deterministic for a given (hidden, layers, vocab, seed, extra_corpus, family, head_dim, audio_conv_gain).
    """
    out = Path(out_dir)
    model, processor = make_tiny(
        hidden, layers, vocab, seed, extra_corpus, rope_theta, family,
        head_dim=head_dim, audio_conv_gain=audio_conv_gain,
    )  # fmt: skip
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny thinker: %d parameters, %d tokens, written to %s", n_params, len(processor.tokenizer), out)
    return out


def _tiny_talker_config(thinker: Qwen2_5OmniThinkerConfig) -> dict:
    """A tiny talker sharing the thinker's media token ids; codec ids sit inside its small vocabulary."""
    ids = {k: getattr(thinker, k) for k in ("audio_token_index", "image_token_index", "video_token_index")}
    ids |= {k: getattr(thinker, k) for k in ("audio_start_token_id", "audio_end_token_id")}
    ids |= {
        "vision_start_token_id": thinker.vision_start_token_id,
        "vision_end_token_id": thinker.vision_end_token_id,
    }
    vocab = thinker.text_config.vocab_size
    return {
        **ids,
        "vocab_size": vocab,
        "tts_text_start_token_id": vocab - 3,
        "tts_text_end_token_id": vocab - 2,
        "tts_text_pad_token_id": vocab - 1,
        "tts_codec_pad_token_id": vocab - 8,
        "tts_codec_start_token_id": vocab - 7,
        "tts_codec_end_token_id": vocab - 6,
        "tts_codec_mask_token_id": vocab - 4,
        "embedding_size": thinker.text_config.hidden_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": HEAD_DIM,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": thinker.text_config.rope_parameters["rope_theta"],
            "mrope_section": mrope_section(HEAD_DIM),
        },
    }


_TINY_TOKEN2WAV = {
    "dit_config": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "head_dim": 16,
        "ff_mult": 1,
        "emb_dim": 16,
        "num_embeds": 320,
        "enc_emb_dim": 16,
        "enc_dim": 16,
        "enc_channels": [16, 16, 16, 16, 48],
        "enc_attention_channels": 8,
        "enc_se_channels": 8,
        "look_ahead_layers": [1],
        "look_backward_layers": [0],
    },
    "bigvgan_config": {
        "upsample_initial_channel": 16,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "upsample_rates": [2, 2],
        "upsample_kernel_sizes": [4, 4],
    },
}


def build_tiny_full(out_dir: str | Path, seed: int = 0, max_shard_size: str = "200KB", **tiny: int) -> Path:
    """A tiny directory laid out like the Qwen2.5-Omni-7B repo: thinker + talker + token2wav, sharded.

    The thinker inside equals ``make_tiny(seed=seed, **tiny)``'s; loaders must read only ``thinker.*``.
    """
    out = Path(out_dir)
    thinker, processor = make_tiny(seed=seed, **tiny)
    cfg = Qwen2_5OmniConfig(
        thinker_config=thinker.config.to_dict(),
        talker_config=_tiny_talker_config(thinker.config),
        token2wav_config=_TINY_TOKEN2WAV,
    )
    torch.manual_seed(seed + 1)
    full = Qwen2_5OmniForConditionalGeneration(cfg)
    full.thinker.load_state_dict(thinker.state_dict())
    full.save_pretrained(out, max_shard_size=max_shard_size)
    processor.save_pretrained(out)
    return out
