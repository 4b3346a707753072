"""vLLM's Qwen2.5-Omni thinker with the trainer's M-RoPE positions around a video's own soundtrack.

A video with its soundtrack is laid out as ``<|vision_bos|><|audio_bos|> [frames and sound interleaved]
<|audio_eos|><|vision_eos|>``. transformers (the trainer's scoring, and our decode loop) gives each of
those two pairs *one* position shared by both tokens (its ``get_rope_index`` appends the same position
twice); vLLM gives each token its own, so the interleaved span and every later token sit one or two
positions higher than where the trainer scores them (the size of the error: docs/architecture.md,
"Measurements behind the code"). The rollout must sample from the distribution the trainer scores, so the engine
serves this subclass, which shifts vLLM's positions onto transformers'. Everything else is vLLM's.

Imported only where vLLM is installed (``vllm_sampler``); the class is registered in this process (the
engine core runs in process, ``VLLM_ENABLE_V1_MULTIPROCESSING=0``).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm import ModelRegistry
from vllm.model_executor.models.qwen2_5_omni_thinker import Qwen2_5OmniThinkerForConditionalGeneration

ARCHITECTURE = "EchoinkQwen2_5OmniThinkerForConditionalGeneration"


class Qwen2_5OmniThinkerTrainerPositions(Qwen2_5OmniThinkerForConditionalGeneration):
    """vLLM's thinker, positions as transformers' ``get_rope_index`` gives them."""

    def get_mrope_input_positions(
        self, input_tokens: list[int], mm_features: list[Any]
    ) -> tuple[torch.Tensor, int]:
        positions, _ = super().get_mrope_input_positions(input_tokens, mm_features)  # [3, L]
        config = self.config
        for offset, modality, data in self.iter_mm_features(mm_features):
            if modality != "video" or not data["use_audio_in_video"]:
                continue
            # vLLM's feature offset is the <|audio_bos|> token, and it lays its C interleaved positions
            # on tokens [offset, offset + C): one token early, so the last sound token and the two closing
            # tokens take text positions. The trainer's layout, token by token:
            #   <|vision_bos|> s, <|audio_bos|> s, frames/sound (vLLM's C positions, from s + 1),
            #   <|audio_eos|> M + 1, <|vision_eos|> M + 1, then text from M + 2 (M: the span's last).
            count = data["grid_t"] * data["grid_h"] * data["grid_w"]
            count += self._compute_audio_token_count(data["audio_feature_length"])
            framing = [input_tokens[i] for i in (offset - 1, offset, offset + count + 1, offset + count + 2)]
            expected = [
                config.vision_start_token_id,
                config.audio_start_token_id,
                config.audio_end_token_id,
                config.vision_end_token_id,
            ]
            if framing != expected:
                raise ValueError(
                    f"a video with its soundtrack at token {offset} is not framed as vLLM 0.32 frames it "
                    f"(<|vision_bos|> at {offset - 1}, <|audio_bos|> at {offset}, <|audio_eos|><|vision_eos|> "
                    f"after {count} frame/sound tokens; found ids {framing}, expected {expected}): vLLM's "
                    "layout changed, its positions cannot be matched to the trainer's"
                )
            span = positions[:, offset : offset + count].clone()
            positions[:, offset] = positions[:, offset - 1]
            positions[:, offset + 1 : offset + 1 + count] = span
            positions[:, offset + 1 + count] -= 1
            positions[:, offset + 2 + count :] -= 2
        delta = int(positions.max()) + 1 - len(input_tokens)
        return positions, delta


SERVED = {"Qwen2_5OmniForConditionalGeneration": (ARCHITECTURE, Qwen2_5OmniThinkerTrainerPositions)}
"""The full model's architecture (``Family.serving_architecture``) -> the one the engine is told to load."""


def architecture_overrides(serving_architecture: str) -> dict[str, Any]:
    """``LLM(hf_overrides=...)`` that make vLLM load our subclass for this family (registered on first use);
    empty when vLLM's own class already gives the trainer's positions."""
    if serving_architecture not in SERVED:
        return {}
    name, cls = SERVED[serving_architecture]
    if name not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(name, cls)
    return {"architectures": [name]}
