"""Qwen2.5-Omni: dense thinker, Whisper-style audio tower (25 tokens per second), 14-px patches merged 2x2."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Qwen2_5OmniThinkerForConditionalGeneration

from ..mm import MMInputs
from .base import Family


class Qwen2_5Omni(Family):
    name = "qwen2.5-omni"
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")
    thinker_class = Qwen2_5OmniThinkerForConditionalGeneration
    placeholder_tokens = (
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
    vision_start_token = "<|vision_bos|>"
    audio_tokens_per_second = 25.0  # Whisper frames halved twice: 25 Hz
    serving_architecture = "Qwen2_5OmniForConditionalGeneration"
    speech_prefixes = ("talker.", "token2wav.")
    speaker_file = "spk_dict.pt"  # the full class's from_pretrained reads its voices from it

    def image_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        # pooler_output holds the merged (2x2) patch embeddings per image; last_hidden_state is pre-merge.
        out = thinker.model.get_image_features(mm.pixel_values, mm.image_grid_thw)
        return torch.cat(out.pooler_output), {}

    def video_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        out = thinker.model.get_video_features(mm.video_pixels, mm.video_grid_thw)
        return torch.cat(out.pooler_output), {}
