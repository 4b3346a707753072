"""A tiny, randomly initialised Qwen3-Omni (MoE) thinker + tokenizer + the real Qwen3OmniMoeProcessor.

Same classes and input geometry as Qwen3-Omni-30B-A3B (16-px patches merged 2x2, so a 32-px cell is
one image token, with deepstack features from a vision layer; Whisper 128-mel features, ~13 audio
tokens per 100 frames; sparse MoE blocks, top-2 of 4 experts), every width and depth shrunk. Its
tokenizer has Qwen3's special tokens (<|audio_start|>, <|image_pad|>, ...) and chat template.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import (
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)

from .tiny_common import (
    DEFAULT_ROPE_THETA,
    HEAD_DIM,
    instantiate,
    mrope_section,
    text_heads,
    token_ids_for_config,
    whisper_features,
)
from .tokenizer import QWEN3_OMNI_TOKENS, train_tokenizer


def _text_config(
    hidden: int, layers: int, vocab: int, pad_id: int, rope_theta: float, experts: int, head_dim: int
) -> dict:
    """A tiny MoE decoder: top-2 of ``experts``, M-RoPE interleaved as in Qwen3-Omni."""
    heads = text_heads(hidden, head_dim)
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "moe_intermediate_size": hidden // 2,
        "num_experts": experts,
        "num_experts_per_tok": 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "head_dim": head_dim,
        "max_position_embeddings": 32768,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": mrope_section(head_dim),
            # Both spellings, as Qwen3-Omni's own config.json has them: transformers always interleaves
            # (and ignores both keys), vLLM reads only ``mrope_interleaved`` and without it lays the
            # T/H/W sections out in chunks, which moves image tokens (h != w) and nothing else.
            "interleaved": True,
            "mrope_interleaved": True,
        },
        "pad_token_id": pad_id,
    }


def tiny_qwen3_config(
    hidden: int,
    layers: int,
    vocab: int,
    token_ids: dict[str, int],
    rope_theta: float,
    experts: int = 4,
    head_dim: int = HEAD_DIM,
) -> Qwen3OmniMoeThinkerConfig:
    """Thinker config with tiny text (MoE) / audio / vision towers and the 30B-A3B's input geometry."""
    text = _text_config(hidden, layers, vocab, token_ids["pad"], rope_theta, experts, head_dim)
    audio = {
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "d_model": 32,
        "output_dim": hidden,
        "n_window": 50,
        "n_window_infer": 800,
        "conv_chunksize": 500,
        "downsample_hidden_size": 16,
        "max_source_positions": 1500,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": hidden,
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [0],
    }
    cfg = Qwen3OmniMoeThinkerConfig(
        text_config=text,
        audio_config=audio,
        vision_config=vision,
        audio_token_id=token_ids["audio"],
        image_token_id=token_ids["image"],
        video_token_id=token_ids["video"],
        audio_start_token_id=token_ids["audio_bos"],
        user_token_id=token_ids["user"],
        # The released checkpoint's value; the config class's default of 25 is Qwen2.5-Omni's. The
        # processor interleaves a video's frames and sound at 13 positions per second, and vLLM and
        # get_rope_index place them by this field: at 25 vLLM interleaves other chunks than the
        # processor (prompt ids differ) and the trainer's positions disagree with the processor's.
        position_id_per_seconds=13,
    )
    # Read by get_rope_index, not declared by the config class.
    cfg.vision_start_token_id = token_ids["vision_bos"]
    cfg.audio_end_token_id = token_ids["audio_eos"]
    cfg.vision_end_token_id = token_ids["vision_eos"]
    return cfg


def build_qwen3_processor(tokenizer) -> Qwen3OmniMoeProcessor:
    """The real Qwen3-Omni processor: Whisper 128-mel features, 16-px patches merged 2x2."""
    features = whisper_features()
    geometry = {
        "min_pixels": 4096,
        "max_pixels": 12_845_056,
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
    }
    return Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**geometry),
        video_processor=Qwen2VLVideoProcessor(**geometry),
        feature_extractor=features,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )


def make_tiny_qwen3(
    hidden: int = 64,
    layers: int = 2,
    vocab: int = 1024,
    seed: int = 0,
    extra_corpus: Iterable[str] = (),
    rope_theta: float = DEFAULT_ROPE_THETA,
    head_dim: int = HEAD_DIM,
) -> tuple[Qwen3OmniMoeThinkerForConditionalGeneration, Qwen3OmniMoeProcessor]:
    """The tiny Qwen3-Omni thinker and its processor, in memory. Deterministic for given arguments."""
    tokenizer = train_tokenizer(vocab, extra_corpus, QWEN3_OMNI_TOKENS)
    cfg = tiny_qwen3_config(
        hidden, layers, vocab, token_ids_for_config(tokenizer), rope_theta, head_dim=head_dim
    )
    model = instantiate(Qwen3OmniMoeThinkerForConditionalGeneration, cfg, tokenizer, seed)
    return model, build_qwen3_processor(tokenizer)
