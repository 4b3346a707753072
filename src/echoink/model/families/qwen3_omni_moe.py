"""Qwen3-Omni (MoE): what differs from Qwen2.5-Omni, and only that.

- Vision: 16-px patches merged 2x2 (32 px per image token); besides the merged output, the vision
  tower returns "deepstack" features of some of its layers, which the language model adds to the
  hidden states at the visual positions after its first layers. They belong to the prompt's tokens
  only, so they go with the prompt pass (``PrefixEncoding.prompt_kwargs``), never with completions.
- Audio: ~13 tokens per 100 mel frames (the processor's n_window chunks), not 25 Hz.
- Language model: sparse MoE blocks (router logits, optional load-balancing loss). The real
  checkpoint ships ``router_aux_loss_coef`` 0.001 in its text config; GRPO here uses
  ``algo.router_aux_loss_coef`` (default 0: no auxiliary loss, as TRL and verl default for RL).
- Generation builds 4-row position ids (text row + 3 M-RoPE rows); the engine passes the 3 M-RoPE
  rows, which the decoder accepts (it then derives the causal mask from the attention mask alone).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from transformers import Qwen3OmniMoeThinkerForConditionalGeneration
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import load_balancing_loss_func

from ..mm import MMInputs
from .base import Family


class Qwen3OmniMoe(Family):
    name = "qwen3-omni"
    model_types = ("qwen3_omni_moe", "qwen3_omni_moe_thinker")
    thinker_class = Qwen3OmniMoeThinkerForConditionalGeneration
    placeholder_tokens = (
        "<|audio_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<|audio_start|>",
        "<|audio_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|im_start|>",
    )
    vision_start_token = "<|vision_start|>"
    is_moe = True
    audio_tokens_per_second = 13.0  # 13 per 100 mel frames
    serving_architecture = "Qwen3OmniMoeForConditionalGeneration"
    speech_prefixes = ("talker.", "code2wav.")

    def serving_config(self, thinker_config: dict[str, Any]) -> dict[str, Any]:
        """vLLM also reads four fields the transformers config leaves out (docs/architecture.md): the
        image size its position-embedding grid is derived from (side = sqrt(num_position_embeddings)
        patches), whether that embedding is used, the text config's own tie flag, and whether M-RoPE is
        interleaved."""
        thinker = {**thinker_config}
        vision = thinker["vision_config"]
        side = math.isqrt(vision["num_position_embeddings"]) * vision["patch_size"]
        thinker["vision_config"] = {"image_size": side, "apply_vit_abs_pos_embed": True, **vision}
        tied = thinker.get("tie_word_embeddings", False)  # vLLM reads it from the text config only
        text = {"tie_word_embeddings": tied, **thinker["text_config"]}
        # transformers always interleaves Qwen3-Omni's M-RoPE sections; vLLM does only when
        # ``mrope_interleaved`` says so, and otherwise lays T/H/W out in chunks, which moves the log-probs
        # of images with h != w (docs/architecture.md) and nothing else. A thinker config without the key is
        # served as transformers runs it.
        for key in ("rope_parameters", "rope_scaling"):
            if isinstance(text.get(key), dict):
                text[key] = {**text[key], "mrope_interleaved": True}
        thinker["text_config"] = text
        return super().serving_config(thinker)

    def image_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        return _with_deepstack(thinker.model.get_image_features(mm.pixel_values, mm.image_grid_thw))

    def video_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        return _with_deepstack(thinker.model.get_video_features(mm.video_pixels, mm.video_grid_thw))

    def visual_kwargs(self, ids: torch.Tensor, cfg: Any, image: dict, video: dict) -> dict[str, Any]:
        """Deepstack features of images and videos, merged in token order at the visual positions."""
        image_mask, video_mask = ids == cfg.image_token_id, ids == cfg.video_token_id  # [B, L]
        if not image and not video:
            return {}
        if image and video:
            visual = image_mask | video_mask
            layers = []
            for img, vid in zip(image["deepstack"], video["deepstack"], strict=True):
                joint = img.new_zeros(int(visual.sum()), img.shape[-1])
                joint[image_mask[visual]], joint[video_mask[visual]] = img, vid
                layers.append(joint)
            return {"deepstack_visual_embeds": layers, "visual_pos_masks": visual}
        only, mask = (image, image_mask) if image else (video, video_mask)
        return {"deepstack_visual_embeds": only["deepstack"], "visual_pos_masks": mask}

    def processor_kwargs(self, processor: Any, audios: list) -> dict[str, Any]:
        kwargs = super().processor_kwargs(processor, audios)
        if kwargs:  # this processor pads to the longest clip unless told otherwise
            kwargs["audio_kwargs"]["padding"] = "max_length"
        return kwargs

    def aux_loss(
        self, router_logits: Any, thinker: nn.Module, mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        text = thinker.config.text_config
        return load_balancing_loss_func(
            tuple(router_logits), text.num_experts, text.num_experts_per_tok, mask
        )


def _with_deepstack(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """(merged embeddings [tokens, H], {"deepstack": one [tokens, H] per tapped vision layer})."""
    # deepstack_features: one tuple (per image / video) per tapped vision layer.
    return torch.cat(out.pooler_output), {
        "deepstack": [torch.cat(per_item) for per_item in out.deepstack_features]
    }
