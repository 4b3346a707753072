"""Per-token log-probabilities of G completions per prompt, sharing what the G completions share.

Three ways to score the same completions (``sharing``), equal up to float rounding:

- ``"prefix"`` (default): audio and vision towers run once per prompt, the prompt itself runs once
  (with grad) into a KV cache, the cache is expanded to the G completions, and only completion
  tokens run G times. For long audio the prompt is most of the LLM's tokens, so this is the big win.
- ``"towers"``: towers once per prompt, then the whole prompt+completion sequence G times. Used
  when gradient checkpointing is on (transformers turns ``use_cache`` off inside checkpointed layers
  during training, so the prompt cache cannot be kept).
- ``"repeat"``: what EchoInk/TRL/verl do: every prompt, media included, repeated G times through the
  full model. Kept for equivalence tests and benchmarks.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens (left padded), T completion
tokens (right padded), H hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .algos import token_logprobs

SHARING_MODES = ("prefix", "towers", "repeat")


def thinker_of(model: nn.Module) -> nn.Module:
    """The Qwen2.5-Omni thinker inside DDP / accelerate / peft wrappers (LoRA layers stay active)."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module  # DDP, DeepSpeed engine
    if isinstance(model, CompletionScorer):
        model = model.model
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()  # peft: adapters are injected in place, so they stay in use
    return model


@dataclass
class PromptEncoding:
    """A batch of prompts with audio/image features already placed at their placeholder tokens."""

    embeds: torch.Tensor  # [B, L, H]
    position_ids: torch.Tensor  # [3, B, L] M-RoPE (temporal, height, width)
    attention_mask: torch.Tensor  # [B, L], left padded

    @property
    def next_position(self) -> torch.Tensor:
        """[B] position of the first token after the prompt (the prompt ends in text, so all 3 rows agree)."""
        return self.position_ids[0, :, -1] + 1


def embed_prompts(
    thinker: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, mm: dict
) -> PromptEncoding:
    """Run the towers once and build prompt embeddings + 3-D positions.

    input_ids, attention_mask: [B, L]; mm: the processor's multimodal tensors (input_features,
    feature_attention_mask, pixel_values, image_grid_thw, ...). Grad flows into the towers when
    they require grad.
    """
    mm = model_mm(mm)
    base = thinker.model
    cfg = thinker.config
    embeds = thinker.get_input_embeddings()(input_ids)  # [B, L, H]
    audio_seqlens = None
    if mm.get("input_features") is not None:
        audio = base.get_audio_features(mm["input_features"], mm["feature_attention_mask"]).last_hidden_state
        slots = (input_ids == cfg.audio_token_id).unsqueeze(-1)  # [B, L, 1]
        embeds = embeds.masked_scatter(slots, audio.to(embeds.dtype))
        audio_seqlens = mm["feature_attention_mask"].sum(-1)
    if mm.get("pixel_values") is not None:
        # pooler_output holds the merged (2x2) patch embeddings per image; last_hidden_state is pre-merge.
        image = torch.cat(base.get_image_features(mm["pixel_values"], mm["image_grid_thw"]).pooler_output)
        slots = (input_ids == cfg.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, image.to(embeds.dtype))
    # Argument names differ from forward's: audio_seqlens, not feature_attention_mask.
    position_ids, _ = base.get_rope_index(
        input_ids,
        image_grid_thw=mm.get("image_grid_thw"),
        video_grid_thw=mm.get("video_grid_thw"),
        attention_mask=attention_mask,
        audio_seqlens=audio_seqlens,
    )
    return PromptEncoding(embeds, position_ids, attention_mask)


def text_positions(start: torch.Tensor, length: int) -> torch.Tensor:
    """[3, N, length] positions of plain text tokens starting at ``start`` [N]."""
    pos = start[:, None] + torch.arange(length, device=start.device)  # [N, length]
    return pos.unsqueeze(0).expand(3, -1, -1)


def _logprobs_prefix(thinker, enc: PromptEncoding, completion_ids, group_size, temperature):
    lm = thinker.model.language_model
    out = lm(
        inputs_embeds=enc.embeds,
        attention_mask=enc.attention_mask,
        position_ids=enc.position_ids,
        use_cache=True,
    )
    cache = out.past_key_values
    cache.batch_repeat_interleave(group_size)  # [B, ...] -> [N, ...]; differentiable, grads reach the prompt
    first_hidden = out.last_hidden_state[:, -1:].repeat_interleave(group_size, 0)  # [N, 1, H]
    n, t = completion_ids.shape
    hidden = first_hidden
    if t > 1:
        inputs = completion_ids[:, :-1]  # [N, T-1]: token t predicts token t+1
        past_mask = enc.attention_mask.repeat_interleave(group_size, 0)
        mask = torch.cat([past_mask, torch.ones_like(inputs, dtype=past_mask.dtype)], dim=1)
        start = enc.next_position.repeat_interleave(group_size, 0)
        out2 = lm(
            inputs_embeds=thinker.get_input_embeddings()(inputs),
            attention_mask=mask,
            position_ids=text_positions(start, t - 1),
            past_key_values=cache,
            use_cache=True,
        )
        hidden = torch.cat([first_hidden, out2.last_hidden_state], dim=1)  # [N, T, H]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def _logprobs_towers(thinker, enc: PromptEncoding, completion_ids, group_size, temperature):
    g = group_size
    n, t = completion_ids.shape
    length = enc.embeds.shape[1]
    embeds = torch.cat(
        [enc.embeds.repeat_interleave(g, 0), thinker.get_input_embeddings()(completion_ids)], dim=1
    )
    start = enc.next_position.repeat_interleave(g, 0)
    positions = torch.cat([enc.position_ids.repeat_interleave(g, 1), text_positions(start, t)], dim=2)
    mask = torch.cat([enc.attention_mask.repeat_interleave(g, 0), torch.ones_like(completion_ids)], dim=1)
    out = thinker.model.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
    hidden = out.last_hidden_state[:, length - 1 : length + t - 1]  # [N, T, H]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def attach_owners(mm: dict, input_ids: torch.Tensor, config) -> dict:
    """Add ``_audio_owner`` / ``_image_owner``: the prompt index of each audio clip / image, in order.

    The processor flattens media across the batch (input_features [n_audio, ...], pixel_values
    [sum of patches, D]); owners let us slice and repeat them per prompt. Keys starting with "_"
    are ours and are stripped by ``model_mm`` before the model sees the mapping.
    """
    out = dict(mm)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    if mm.get("input_features") is not None:
        counts = (input_ids == config.audio_start_token_id).sum(1)  # [B] audio clips per prompt
        out["_audio_owner"] = rows.repeat_interleave(counts)
    if mm.get("pixel_values") is not None:
        starts = input_ids[:, :-1] == config.vision_start_token_id
        counts = (starts & (input_ids[:, 1:] == config.image_token_id)).sum(1)  # [B] images per prompt
        out["_image_owner"] = rows.repeat_interleave(counts)
    return out


def model_mm(mm: dict) -> dict:
    """The multimodal mapping as the model takes it (our bookkeeping keys removed)."""
    return {k: v for k, v in mm.items() if not k.startswith("_") and v is not None}


def repeat_mm(mm: dict, group_size: int) -> dict:
    """Repeat each prompt's multimodal tensors G times (the anchors' way), keeping per-prompt order."""
    out = model_mm(mm)
    if "input_features" in out:
        index = torch.arange(len(out["input_features"])).repeat_interleave(group_size)
        out["input_features"] = out["input_features"][index]
        out["feature_attention_mask"] = out["feature_attention_mask"][index]
    if "pixel_values" in out:
        sizes = out["image_grid_thw"].prod(-1).tolist()  # patches per image
        chunks = torch.split(out["pixel_values"], sizes)
        out["pixel_values"] = torch.cat([c for c in chunks for _ in range(group_size)])
        out["image_grid_thw"] = out["image_grid_thw"].repeat_interleave(group_size, 0)
    return out


def _logprobs_repeat(thinker, input_ids, attention_mask, mm, completion_ids, group_size, temperature):
    g = group_size
    t = completion_ids.shape[1]
    length = input_ids.shape[1]
    ids = torch.cat([input_ids.repeat_interleave(g, 0), completion_ids], dim=1)
    mask = torch.cat([attention_mask.repeat_interleave(g, 0), torch.ones_like(completion_ids)], dim=1)
    rep = repeat_mm(mm, g)
    thinker.model.rope_deltas = None  # positions are recomputed from input_ids, never reused from generation
    out = thinker.model(input_ids=ids, attention_mask=mask, **rep)
    hidden = out.last_hidden_state[:, length - 1 : length + t - 1]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def completion_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mm: dict,
    completion_ids: torch.Tensor,
    group_size: int,
    temperature: float = 1.0,
    sharing: str = "prefix",
) -> torch.Tensor:
    """[N, T] log π(completion token | prompt, earlier tokens) for G completions per prompt.

    input_ids/attention_mask: [B, L] left-padded prompts; completion_ids: [N, T] with rows
    b·G .. b·G+G-1 belonging to prompt b. Padding after a completion's end gets a value too; mask it.
    """
    if sharing not in SHARING_MODES:
        raise ValueError(f"sharing must be one of {SHARING_MODES}, got {sharing!r}")
    thinker = thinker_of(model)
    if sharing == "repeat":
        return _logprobs_repeat(
            thinker, input_ids, attention_mask, mm, completion_ids, group_size, temperature
        )
    enc = embed_prompts(thinker, input_ids, attention_mask, mm)
    if sharing == "towers":
        return _logprobs_towers(thinker, enc, completion_ids, group_size, temperature)
    return _logprobs_prefix(thinker, enc, completion_ids, group_size, temperature)


class CompletionScorer(nn.Module):
    """The policy's log-prob pass as one ``forward``, so accelerate/DDP/DeepSpeed can wrap it.

    DDP only synchronises gradients of computations that go through the wrapped module's forward;
    calling the thinker's towers and language model directly from the trainer would bypass it.
    """

    def __init__(self, model: nn.Module, sharing: str = "prefix") -> None:
        super().__init__()
        self.model = model
        self.sharing = sharing

    def forward(
        self, input_ids, attention_mask, mm, completion_ids, group_size: int, temperature: float = 1.0
    ):
        return completion_logprobs(
            self.model, input_ids, attention_mask, mm, completion_ids, group_size, temperature, self.sharing
        )
