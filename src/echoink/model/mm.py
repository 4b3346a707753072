"""The media of a prompt batch as one typed value (``MMInputs``) and the batch itself (``PromptBatch``).

The processor flattens media across the batch: audio features [n_audio, mel, frames] with their frame
mask, image patches [sum of patches, D] with one grid (t, h, w) per image. ``MMInputs`` keeps those
tensors together with the prompt that owns each clip / image, so a batch can be sliced into
mini-batches, repeated G times (the anchors' way) or concatenated (dynamic sampling) without anyone
outside ``model/`` knowing a tensor key. The processor's key names appear only in ``model_kwargs`` and
``from_processor``.

Shapes: B prompts, L prompt tokens (left padded), G completions per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from ..errors import UserError

# The processor's names for our fields (and the thinker's forward argument names).
_KEYS = {
    "audio_features": "input_features",
    "audio_mask": "feature_attention_mask",
    "pixel_values": "pixel_values",
    "image_grid_thw": "image_grid_thw",
    "video_pixels": "pixel_values_videos",
    "video_grid_thw": "video_grid_thw",
    "video_second_per_grid": "video_second_per_grid",
}


@dataclass
class MMInputs:
    """Audio clips and images of B prompts, in the order their placeholders appear."""

    audio_features: torch.Tensor | None = None  # [n_audio, mel, frames]
    audio_mask: torch.Tensor | None = None  # [n_audio, frames], 1 on valid frames
    pixel_values: torch.Tensor | None = None  # [sum of patches, D]
    image_grid_thw: torch.Tensor | None = None  # [n_image, 3]
    video_pixels: torch.Tensor | None = None  # [sum of video patches, D]
    video_grid_thw: torch.Tensor | None = None  # [n_video, 3]
    video_second_per_grid: torch.Tensor | None = None  # [n_video] seconds per temporal patch
    audio_owner: torch.Tensor | None = None  # [n_audio] index of the prompt each clip belongs to
    image_owner: torch.Tensor | None = None  # [n_image]
    video_owner: torch.Tensor | None = None  # [n_video]
    video_sound: torch.Tensor | None = None  # [n_video] bool: that video's soundtrack is among the clips
    use_audio_in_video: bool = False
    """Some video's soundtrack is among the audio clips, interleaved with its frames in time
    (``video_sound`` says which; videos without one are frames only)."""

    @classmethod
    def from_processor(
        cls, out: dict, owners: dict[str, torch.Tensor], video_sound: list[bool] | None = None
    ) -> MMInputs:
        """The media tensors of a processor output, with each item's owning prompt (owners by kind) and,
        per video, whether its soundtrack is interleaved with it."""
        values = {name: out.get(key) for name, key in _KEYS.items()}
        if values["video_second_per_grid"] is not None:
            values["video_second_per_grid"] = torch.as_tensor(
                values["video_second_per_grid"], dtype=torch.float32
            )
        present = {"audio": "audio_features", "image": "pixel_values", "video": "video_pixels"}
        kinds = {
            f"{kind}_owner": owners[kind] if values[key] is not None else None
            for kind, key in present.items()
        }
        sound = (
            torch.tensor(video_sound, dtype=torch.bool)
            if video_sound and values["video_pixels"] is not None
            else None
        )
        return cls(
            **values, **kinds, video_sound=sound, use_audio_in_video=bool(video_sound and any(video_sound))
        )

    @property
    def mixes_video_sound(self) -> bool:
        """Some videos of the batch have their soundtrack interleaved and others are frames only."""
        return self.video_sound is not None and len(set(self.video_sound.tolist())) > 1

    @property
    def has_audio(self) -> bool:
        return self.audio_features is not None

    @property
    def has_image(self) -> bool:
        return self.pixel_values is not None

    @property
    def has_video(self) -> bool:
        return self.video_pixels is not None

    @property
    def audio_lengths(self) -> torch.Tensor | None:
        """[n_audio] valid mel frames per clip."""
        return None if self.audio_mask is None else self.audio_mask.sum(-1)

    def model_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for the thinker's ``forward`` / ``generate`` (absent media left out)."""
        if self.mixes_video_sound:  # the thinker's forward takes one use_audio_in_video for the batch
            raise UserError(
                "a batch mixes videos with and without their soundtrack: the thinker's own forward cannot "
                "take it; use the shared passes (rollout.sharing prefix or towers)"
            )
        out = {key: getattr(self, name) for name, key in _KEYS.items() if getattr(self, name) is not None}
        if self.use_audio_in_video and self.has_video:
            out["use_audio_in_video"] = True
        return out

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> MMInputs:
        """Everything on ``device``; floating tensors (features, patches) also in ``dtype`` when given."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device)

        moved = {f.name: move(getattr(self, f.name)) for f in fields(self) if f.name != "use_audio_in_video"}
        return MMInputs(**moved, use_audio_in_video=self.use_audio_in_video)

    def _image_chunks(self) -> tuple[torch.Tensor, ...]:
        return torch.split(self.pixel_values, self.image_grid_thw.prod(-1).tolist())  # patches per image

    def _video_chunks(self) -> tuple[torch.Tensor, ...]:
        return torch.split(self.video_pixels, self.video_grid_thw.prod(-1).tolist())  # patches per video

    def slice(self, start: int, stop: int) -> MMInputs:
        """The media of prompts [start, stop), owners renumbered from 0."""
        return self.select(list(range(start, stop)))

    def select(self, rows: list[int]) -> MMInputs:
        """The media of prompts ``rows`` (ascending), owners renumbered 0 .. len(rows) - 1."""
        new = {r: i for i, r in enumerate(rows)}
        out = replace(self)

        def kept(owner: torch.Tensor) -> list[int]:
            return [i for i, o in enumerate(owner.tolist()) if o in new]

        def owners(owner: torch.Tensor, keep: list[int]) -> torch.Tensor:
            return torch.tensor(
                [new[o] for o in owner[keep].tolist()], dtype=owner.dtype, device=owner.device
            )

        if self.has_audio:
            keep = kept(self.audio_owner)
            out.audio_features, out.audio_mask = self.audio_features[keep], self.audio_mask[keep]
            out.audio_owner = owners(self.audio_owner, keep)
            if not keep:
                out.audio_features = out.audio_mask = out.audio_owner = None
        if self.has_image:
            keep = kept(self.image_owner)
            chunks = self._image_chunks()
            out.pixel_values = torch.cat([chunks[i] for i in keep]) if keep else None
            out.image_grid_thw = self.image_grid_thw[keep] if keep else None
            out.image_owner = owners(self.image_owner, keep) if keep else None
        if self.has_video:
            keep = kept(self.video_owner)
            chunks = self._video_chunks()
            out.video_pixels = torch.cat([chunks[i] for i in keep]) if keep else None
            out.video_grid_thw = self.video_grid_thw[keep] if keep else None
            out.video_second_per_grid = self.video_second_per_grid[keep] if keep else None
            out.video_owner = owners(self.video_owner, keep) if keep else None
            if self.video_sound is not None:
                out.video_sound = self.video_sound[keep] if keep else None
            out.use_audio_in_video = (
                bool(keep)
                and self.use_audio_in_video
                and (out.video_sound is None or bool(out.video_sound.any()))
            )
        return out

    def repeat(self, group_size: int) -> MMInputs:
        """Each prompt's media G times over (prompt b's copies become prompts b·G .. b·G+G-1)."""
        g = group_size
        out = replace(self)
        if self.has_audio:
            index = torch.arange(
                len(self.audio_features), device=self.audio_features.device
            ).repeat_interleave(g)
            out.audio_features, out.audio_mask = self.audio_features[index], self.audio_mask[index]
            out.audio_owner = _repeat_owner(self.audio_owner, g)
        if self.has_image:
            out.pixel_values = torch.cat([c for c in self._image_chunks() for _ in range(g)])
            out.image_grid_thw = self.image_grid_thw.repeat_interleave(g, 0)
            out.image_owner = _repeat_owner(self.image_owner, g)
        if self.has_video:
            out.video_pixels = torch.cat([c for c in self._video_chunks() for _ in range(g)])
            out.video_grid_thw = self.video_grid_thw.repeat_interleave(g, 0)
            out.video_second_per_grid = self.video_second_per_grid.repeat_interleave(g, 0)
            out.video_owner = _repeat_owner(self.video_owner, g)
            if self.video_sound is not None:
                out.video_sound = self.video_sound.repeat_interleave(g, 0)
        return out

    @staticmethod
    def concat(parts: list[MMInputs], prompts_per_part: list[int]) -> MMInputs:
        """The media of several batches, one after the other (owners shifted by the prompts before)."""
        offsets = torch.tensor([0, *prompts_per_part]).cumsum(0)[:-1].tolist()
        out = MMInputs()
        audio = [(p, o) for p, o in zip(parts, offsets, strict=True) if p.has_audio]
        if audio:
            frames = max(p.audio_features.shape[-1] for p, _ in audio)  # pad mel frames to a common length
            out.audio_features = torch.cat(
                [F.pad(p.audio_features, (0, frames - p.audio_features.shape[-1])) for p, _ in audio]
            )
            out.audio_mask = torch.cat(
                [F.pad(p.audio_mask, (0, frames - p.audio_mask.shape[-1])) for p, _ in audio]
            )
            out.audio_owner = torch.cat([p.audio_owner + o for p, o in audio])
        images = [(p, o) for p, o in zip(parts, offsets, strict=True) if p.has_image]
        if images:
            out.pixel_values = torch.cat([p.pixel_values for p, _ in images])
            out.image_grid_thw = torch.cat([p.image_grid_thw for p, _ in images])
            out.image_owner = torch.cat([p.image_owner + o for p, o in images])
        videos = [(p, o) for p, o in zip(parts, offsets, strict=True) if p.has_video]
        if videos:
            out.video_pixels = torch.cat([p.video_pixels for p, _ in videos])
            out.video_grid_thw = torch.cat([p.video_grid_thw for p, _ in videos])
            out.video_second_per_grid = torch.cat([p.video_second_per_grid for p, _ in videos])
            out.video_owner = torch.cat([p.video_owner + o for p, o in videos])
            out.video_sound = torch.cat([p.sound_flags() for p, _ in videos])
            out.use_audio_in_video = bool(out.video_sound.any())
        return out

    def sound_flags(self) -> torch.Tensor:
        """[n_video] bool: which videos have their soundtrack interleaved."""
        if self.video_sound is not None:
            return self.video_sound
        return torch.full((len(self.video_grid_thw),), self.use_audio_in_video, dtype=torch.bool)


def _repeat_owner(owner: torch.Tensor, g: int) -> torch.Tensor:
    """Owners after each prompt b became prompts b·G .. b·G+G-1 (each item copied G times in a row)."""
    copies = torch.arange(g, device=owner.device).repeat(len(owner))  # [n·G]: 0..G-1 per item
    return owner.repeat_interleave(g) * g + copies


def _pad_to(tensors: list[torch.Tensor], value: int, left: bool) -> torch.Tensor:
    """Stack [rows_i, width_i] tensors into [sum rows, max width], padding each on the left or right."""
    width = max(t.shape[1] for t in tensors)
    pads = [(width - t.shape[1], 0) if left else (0, width - t.shape[1]) for t in tensors]
    return torch.cat([F.pad(t, pad, value=value) for t, pad in zip(tensors, pads, strict=True)])


@dataclass
class PromptBatch:
    """B prompts as the thinker takes them: left-padded token ids and their media."""

    input_ids: torch.Tensor  # [B, L], left padded with the pad id
    attention_mask: torch.Tensor  # [B, L], 0 on left padding
    mm: MMInputs
    sources: list | None = None
    """Per prompt, what a serving engine (vLLM) encodes again: (rendered text, its media); set by
    ``Engine.encode``, kept by ``to``, ``slice`` and ``concat``; None for batches built otherwise."""

    @property
    def num_prompts(self) -> int:
        return self.input_ids.shape[0]

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PromptBatch:
        return PromptBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.mm.to(device, dtype), self.sources
        )

    def slice(self, start: int, stop: int) -> PromptBatch:
        """Prompts [start, stop) with their media."""
        return PromptBatch(
            self.input_ids[start:stop],
            self.attention_mask[start:stop],
            self.mm.slice(start, stop),
            None if self.sources is None else self.sources[start:stop],
        )

    def repeat(self, group_size: int) -> PromptBatch:
        """Every prompt and its media G times over: the input of the naive (repeat) passes."""
        return PromptBatch(
            self.input_ids.repeat_interleave(group_size, 0),
            self.attention_mask.repeat_interleave(group_size, 0),
            self.mm.repeat(group_size),
        )

    def model_kwargs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **self.mm.model_kwargs()}

    @staticmethod
    def concat(parts: list[PromptBatch], pad_id: int) -> PromptBatch:
        """One batch of several, re-padded on the left to the longest prompt."""
        sources = None if any(p.sources is None for p in parts) else [s for p in parts for s in p.sources]
        return PromptBatch(
            _pad_to([p.input_ids for p in parts], pad_id, left=True),
            _pad_to([p.attention_mask for p in parts], 0, left=True),
            MMInputs.concat([p.mm for p in parts], [p.num_prompts for p in parts]),
            sources,
        )
