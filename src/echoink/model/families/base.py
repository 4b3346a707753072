"""What a model family must tell the engine, and the behaviour the Qwen Omni thinkers share.

A family adapter is the only code that calls a thinker's towers, ``get_rope_index`` or its language
model by name. The engine (``model/engine.py``) runs the same shared-prefix maths for every family
through these methods:

- ``prefix(thinker, prompts)``: towers once, features placed at their placeholders, M-RoPE positions,
  and whatever else the prompt's language-model pass needs (Qwen3's deepstack features);
- ``language_model(thinker)``: the decoder that takes ``inputs_embeds`` and a KV cache;
- ``placeholder_tokens``: tokens generation must never produce.

Shapes: B prompts, L prompt tokens, H hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ...data.media import Geometry
from ..mm import MMInputs, PromptBatch


@dataclass
class PrefixEncoding:
    """A batch of prompts with audio/image features in place, ready for the language model."""

    embeds: torch.Tensor  # [B, L, H]
    position_ids: torch.Tensor  # [3, B, L] M-RoPE (temporal, height, width)
    attention_mask: torch.Tensor  # [B, L], left padded
    prompt_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra language-model arguments for the prompt's own tokens only (Qwen3: deepstack features)."""

    @property
    def next_position(self) -> torch.Tensor:
        """[B] position of the first token after the prompt (the prompt ends in text, so all 3 rows agree)."""
        return self.position_ids[0, :, -1] + 1

    def without_last(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(embeds, mask, positions, prompt kwargs) of prompt[:-1]: what a decode cache must hold."""
        return (
            self.embeds[:, :-1],
            self.attention_mask[:, :-1],
            self.position_ids[:, :, :-1],
            {k: _drop_last(v, self.attention_mask.shape) for k, v in self.prompt_kwargs.items()},
        )


def _total(outputs: list[Any]) -> torch.Tensor:
    """The sum of every tensor in tower outputs (tensors, (tensor, extras) pairs, lists of tensors)."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().sum()
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    parts = [_total(o) for o in outputs if isinstance(o, torch.Tensor | list | tuple | dict)]
    return torch.stack(parts).sum() if parts else torch.zeros(())


def _drop_last(value: Any, shape: torch.Size) -> Any:
    """A per-token [B, L] prompt argument cut to prompt[:-1]; per-feature ones (deepstack) unchanged."""
    if isinstance(value, torch.Tensor) and value.shape[:2] == shape:
        return value[:, :-1]
    return value


class Family:
    """Behaviour common to the Qwen Omni thinkers; subclasses override what differs."""

    name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # config.json model_type values (full model, thinker)
    thinker_class: ClassVar[type[nn.Module]]
    placeholder_tokens: ClassVar[tuple[str, ...]]
    """Tokens the processor expands or get_rope_index steers by: never generated (one breaks the next forward)."""
    vision_start_token: ClassVar[str]
    is_moe: ClassVar[bool] = False
    audio_tokens_per_second: ClassVar[float]
    """Audio tower output tokens per second of 16 kHz sound (approximate; the processor counts exactly)."""
    serving_architecture: ClassVar[str]
    """The full model's class: transformers' and vLLM's name for it (``full_config``)."""
    speech_prefixes: ClassVar[tuple[str, ...]]
    """The full model's tensors that are not the thinker's (its talker and vocoder: its voice)."""
    speaker_file: ClassVar[str | None] = None
    """A file the full class's ``from_pretrained`` requires beside the weights, if any."""

    @property
    def full_type(self) -> str:
        """config.json's ``model_type`` of the full model (thinker, talker, vocoder)."""
        return self.model_types[0]

    @property
    def thinker_type(self) -> str:
        """config.json's ``model_type`` of the thinker alone (what GRPO trains and saves)."""
        return self.model_types[1]

    # --- loading -------------------------------------------------------------------------------
    def thinker_config(self, config: Any) -> Any:
        """The thinker's config inside a full model's config (or the config itself)."""
        return getattr(config, "thinker_config", config)

    def lora_target_regex(self, names: str) -> str:
        """LoRA module names inside the language model only (the towers reuse q_proj, gate_proj, ...)."""
        return rf"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.({names})"

    def tower_modules(self, thinker: nn.Module) -> dict[str, list[nn.Module]]:
        """The three parts the freeze flags name: audio tower, vision tower, LLM (decoder + output head)."""
        inner = thinker.model
        return {
            "audio_tower": [inner.audio_tower],
            "vision_tower": [inner.visual],
            "llm": [inner.language_model, thinker.get_output_embeddings()],
        }

    # --- the processor ---------------------------------------------------------------------------
    def geometry(self, processor: Any) -> Geometry:
        """How this family's processor cuts media into tokens, for the data layer to size images and
        frames once (on the processor's own grid, so the processor does not resize them again)."""
        image, video = processor.image_processor, processor.video_processor
        size = image.size
        min_pixels = size["shortest_edge"] if isinstance(size, dict) else size.shortest_edge
        return Geometry(
            patch=image.patch_size,
            merge=image.merge_size,
            temporal=video.temporal_patch_size,
            min_pixels=int(min_pixels),
            audio_tokens_per_second=self.audio_tokens_per_second,
        )

    def processor_kwargs(self, processor: Any, audios: list) -> dict[str, Any]:
        """Processor arguments that make each prompt's features independent of its batch.

        The Omni processors pad audio to a fixed length (2.5: Whisper's 30 s) or to the longest clip.
        Capping it at the longest clip plus one STFT window (n_fft) of zeros gives every clip its last
        frames as under 30 s padding, so a prompt's features do not depend on what else is in its
        batch; the audio tower reads only the valid frames (the frame mask).
        """
        if not audios:
            return {}
        n_fft = getattr(processor.feature_extractor, "n_fft", 400)
        return {"audio_kwargs": {"max_length": max(len(a) for a in audios) + n_fft}}

    def video_kwargs(self, processor: Any, fps: float, audio_from_video: list | None) -> dict[str, Any]:
        """Processor arguments for videos sampled at ``fps`` (already downscaled by the data layer).

        Frames are taken as given (no resampling, no upscaling to the processor's default minimum);
        ``audio_from_video`` (per audio slot: None or its video's index) interleaves each soundtrack
        with its frames in time, as ``use_audio_in_video`` means in both families.
        """
        video = processor.video_processor
        cell = video.patch_size * video.merge_size  # pixels per video token side
        kwargs: dict[str, Any] = {
            "videos_kwargs": {
                "fps": fps,
                "do_sample_frames": False,
                "size": {"shortest_edge": cell * cell, "longest_edge": 1 << 40},
                "cap_pixels_per_frame": True,  # the reference behaviour (frames are already downscaled)
            }
        }
        if audio_from_video is not None:
            kwargs |= {"load_audio_from_video": True, "audio_from_video_indices": audio_from_video}
        return kwargs

    # --- the full model around a thinker (export, serving) -------------------------------------------
    def full_config(
        self, thinker_config: dict[str, Any], base_config: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A full model's config.json around a thinker's. With ``base_config`` (a full model's): the
        base's talker and vocoder with this thinker; without: ``enable_audio_output`` off, so the full
        class builds no talker (none of default size either) and loads the thinker alone."""
        if base_config is None:
            full = {"model_type": self.full_type, "enable_audio_output": False}
            return {**full, "architectures": [self.serving_architecture], "thinker_config": thinker_config}
        thinker = {**base_config["thinker_config"], **thinker_config}
        return {**base_config, "architectures": [self.serving_architecture], "thinker_config": thinker}

    # --- serving (vLLM) ---------------------------------------------------------------------------
    def serving_config(self, thinker_config: dict[str, Any]) -> dict[str, Any]:
        """The config vLLM serves a thinker with: the full model's, without a talker (vLLM serves the
        thinker only in the full layout)."""
        return self.full_config(thinker_config)

    def serving_video_kwargs(
        self, processor: Any, fps: float, audio_from_video: list | None
    ) -> dict[str, Any]:
        """``video_kwargs`` as vLLM passes them to the processor (flat); vLLM itself reads
        ``use_audio_in_video``, transformers >= 5.20 the slots' videos (``audio_from_video_indices``)."""
        kwargs: dict[str, Any] = dict(self.video_kwargs(processor, fps, None)["videos_kwargs"])
        if audio_from_video is not None:
            kwargs |= {"use_audio_in_video": True, "audio_from_video_indices": audio_from_video}
        return kwargs

    # --- the towers and positions ------------------------------------------------------------------
    def language_model(self, thinker: nn.Module) -> nn.Module:
        return thinker.model.language_model

    def audio_embeds(self, thinker: nn.Module, mm: MMInputs) -> torch.Tensor:
        """[audio tokens, H] the audio tower's output for every clip, in order."""
        return thinker.model.get_audio_features(mm.audio_features, mm.audio_mask).last_hidden_state

    def image_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        """([image tokens, H] merged patch embeddings, extra prompt kwargs)."""
        raise NotImplementedError

    def video_features(self, thinker: nn.Module, mm: MMInputs) -> tuple[torch.Tensor, dict[str, Any]]:
        """([video tokens, H] merged patch embeddings, extra prompt kwargs)."""
        raise NotImplementedError

    def visual_kwargs(self, ids: torch.Tensor, cfg: Any, image: dict, video: dict) -> dict[str, Any]:
        """Prompt-pass arguments from the image and video towers' extras (none for dense families)."""
        return {}

    def rope_index(self, thinker: nn.Module, prompts: PromptBatch) -> torch.Tensor:
        """[3, B, L] M-RoPE positions of the prompts (audio and image spans placed in time and space).

        ``get_rope_index`` takes one ``use_audio_in_video`` for the batch; a batch that mixes videos
        with and without their soundtrack is placed in two calls, prompts with a sounding video and
        the rest (each prompt's positions depend on its own tokens and media only)."""
        mm = prompts.mm
        if mm.mixes_video_sound:
            sounding = set(mm.video_owner[mm.video_sound].tolist())
            out = torch.empty(3, *prompts.input_ids.shape, dtype=torch.long, device=prompts.device)
            for rows in (sorted(sounding), [b for b in range(prompts.num_prompts) if b not in sounding]):
                part = PromptBatch(prompts.input_ids[rows], prompts.attention_mask[rows], mm.select(rows))
                out[:, rows] = self.rope_index(thinker, part).to(out.dtype)
            return out
        # Argument names differ from forward's: audio_seqlens, second_per_grids.
        position_ids, _ = thinker.model.get_rope_index(
            prompts.input_ids,
            image_grid_thw=mm.image_grid_thw,
            video_grid_thw=mm.video_grid_thw,
            attention_mask=prompts.attention_mask,
            use_audio_in_video=mm.use_audio_in_video and mm.has_video,
            audio_seqlens=mm.audio_lengths,
            second_per_grids=mm.video_second_per_grid,
        )
        return position_ids

    def prefix(self, thinker: nn.Module, prompts: PromptBatch, every_tower: bool = False) -> PrefixEncoding:
        """Towers once per prompt; embeddings with features at their placeholders; positions.

        Grad flows into the towers when they require grad. ``every_tower`` (a launch of several
        processes): a tower call this batch does not need (no audio, no image or no video) runs on
        ``idle_media`` instead, contributing exactly zero, so every process calls the same modules in
        the same order whatever its batch holds. ZeRO-3 all-gathers each module's weights as a
        collective when it is called, and a process that skipped a tower would wait on another's
        gather (gloo: "collective mismatch"; NCCL: a hang); under DDP every weight then gets a
        gradient on every process (zeros where unused), as it does under ZeRO.
        """
        ids, cfg, mm = prompts.input_ids, thinker.config, prompts.mm
        embeds = thinker.get_input_embeddings()(ids)  # [B, L, H]
        image_extra: dict[str, Any] = {}
        video_extra: dict[str, Any] = {}
        idle: list[Any] = []  # outputs of towers run on idle_media: summed times zero into the embeddings
        dummy = self.idle_media(thinker, embeds.device, embeds.dtype) if every_tower else None
        if mm.has_audio:  # standalone clips and video soundtracks alike sit at the audio tokens, in order
            slots = (ids == cfg.audio_token_id).unsqueeze(-1)  # [B, L, 1]
            embeds = embeds.masked_scatter(slots, self.audio_embeds(thinker, mm).to(embeds.dtype))
        elif dummy is not None:
            idle.append(self.audio_embeds(thinker, dummy))
        if mm.has_image:
            image, image_extra = self.image_features(thinker, mm)
            slots = (ids == cfg.image_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(slots, image.to(embeds.dtype))
        elif dummy is not None:
            idle.append(self.image_features(thinker, dummy))
        if mm.has_video:
            video, video_extra = self.video_features(thinker, mm)
            slots = (ids == cfg.video_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(slots, video.to(embeds.dtype))
        elif dummy is not None:
            idle.append(self.video_features(thinker, dummy))
        if idle:
            embeds = embeds + 0.0 * _total(idle).to(embeds.dtype)  # exactly zero; every weight in the graph
        extra = self.visual_kwargs(ids, cfg, image_extra, video_extra)
        return PrefixEncoding(embeds, self.rope_index(thinker, prompts), prompts.attention_mask, extra)

    def idle_media(self, thinker: nn.Module, device: torch.device, dtype: torch.dtype) -> MMInputs:
        """The smallest input each tower takes, all zeros: one 8-frame mel clip, one image and one
        one-frame video of a single merged cell (``spatial_merge_size``² patches each)."""
        audio, vision = thinker.config.audio_config, thinker.config.vision_config
        merge = vision.spatial_merge_size
        patch_dim = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
        pixels = torch.zeros(merge * merge, patch_dim, device=device, dtype=dtype)  # [patches, D]
        grid = torch.tensor([[1, merge, merge]], device=device)  # [1, 3] (t, h, w) in patches
        frames = 8
        return MMInputs(
            audio_features=torch.zeros(1, audio.num_mel_bins, frames, device=device, dtype=dtype),
            audio_mask=torch.ones(1, frames, dtype=torch.long, device=device),
            pixel_values=pixels,
            image_grid_thw=grid,
            video_pixels=pixels,
            video_grid_thw=grid,
        )

    def forget_positions(self, thinker: nn.Module) -> None:
        """Drop positions a previous ``generate`` cached, so a full forward recomputes them from the ids."""
        thinker.model.rope_deltas = None

    def aux_loss(
        self, router_logits: Any, thinker: nn.Module, mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The MoE load-balancing loss of a pass (None for dense families)."""
        return None
