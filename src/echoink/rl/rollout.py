"""Rollouts: G sampled completions per prompt, with each prompt's towers and prefill run once.

Shared mode: the prompt minus its last token is prefilled once per prompt with the audio/image
features in place; the cache is expanded to G rows with room reserved for the completion
(``kv_cache.reserved_cache``: each step writes one column instead of copying the cache); a short
decode loop continues from there: the language model on one token per step, then transformers' own
logits processors (built by ``generate``'s ``_get_logits_processor`` from the same GenerationConfig:
suppression, min length, temperature, top-k, top-p), then one draw from the resulting distribution
(``sample_categorical``: the distribution ``generate``'s ``torch.multinomial`` draws from, at a
twentieth of its CPU cost; the random stream differs, so sampled tokens are not ``generate``'s).

Why not ``generate`` on the cache (what this module did first, and what transformers 5.23 supports
with prompt[:-1] cached and explicit 3-D positions): its per-token bookkeeping (the thinker's
multimodal ``prepare_inputs_for_generation``, model-kwargs updates, stopping-criteria objects) was
~30% of a tiny-model step. The loop runs the same maths (greedy output is token-identical to
``generate``'s, tested); with the cheaper draw and the reserved cache, the rollout of
``bench/rollout_sharing.py`` went from 236 ms to 149 ms. Repeat mode (the anchors' way) calls
``generate`` with every prompt and its media repeated G times.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens, T completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn
from transformers import GenerationConfig

from .kv_cache import reserved_cache
from .scoring import embed_prompts, repeat_mm, thinker_of


@dataclass
class Experience:
    """One rollout batch, the typed hand-off between rollout, scoring and the loss."""

    input_ids: torch.Tensor  # [B, L] left-padded prompts
    attention_mask: torch.Tensor  # [B, L]
    mm: dict[str, torch.Tensor]  # the processor's multimodal tensors for the B prompts
    completion_ids: torch.Tensor  # [N, T], pad after the end token
    completion_mask: torch.Tensor  # [N, T], 1 on real tokens incl. the end token
    truncated: torch.Tensor  # [N] bool: no end token within max_new_tokens
    group_size: int  # G
    old_logprobs: torch.Tensor | None = None  # [N, T] when μ > 1
    ref_logprobs: torch.Tensor | None = None  # [N, T] when β > 0
    advantages: torch.Tensor | None = None  # [N]
    extras: dict = field(default_factory=dict)

    @property
    def num_prompts(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> Experience:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                moved[f.name] = value.to(device)
            elif f.name == "mm":
                moved[f.name] = {
                    k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in value.items()
                }
        return replace(self, **moved)

    def prompt_slice(self, start: int, stop: int) -> Experience:
        """The experience of prompts [start, stop) and their G completions each (a mini-batch)."""
        g = self.group_size
        rows = slice(start * g, stop * g)
        per_completion = {}
        for name in (
            "completion_ids",
            "completion_mask",
            "truncated",
            "old_logprobs",
            "ref_logprobs",
            "advantages",
        ):
            value = getattr(self, name)
            per_completion[name] = None if value is None else value[rows]
        return replace(
            self,
            input_ids=self.input_ids[start:stop],
            attention_mask=self.attention_mask[start:stop],
            mm=slice_mm(self.mm, start, stop),
            **per_completion,
        )


def slice_mm(mm: dict, start: int, stop: int) -> dict:
    """Multimodal tensors of prompts [start, stop) (needs the owners from ``attach_owners``)."""
    out = dict(mm)
    if mm.get("input_features") is not None:
        keep = (mm["_audio_owner"] >= start) & (mm["_audio_owner"] < stop)
        out["input_features"] = mm["input_features"][keep]
        out["feature_attention_mask"] = mm["feature_attention_mask"][keep]
        out["_audio_owner"] = mm["_audio_owner"][keep] - start
    if mm.get("pixel_values") is not None:
        owners = mm["_image_owner"]
        chunks = torch.split(mm["pixel_values"], mm["image_grid_thw"].prod(-1).tolist())
        keep = [i for i, o in enumerate(owners.tolist()) if start <= o < stop]
        out["pixel_values"] = torch.cat([chunks[i] for i in keep]) if keep else None
        out["image_grid_thw"] = mm["image_grid_thw"][keep] if keep else None
        out["_image_owner"] = owners[keep] - start
    return out


def completion_mask_from(
    completion_ids: torch.Tensor, end_ids: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, T] mask up to and including the first end token, [N] truncated flags)."""
    is_end = torch.isin(completion_ids, torch.tensor(end_ids, device=completion_ids.device))  # [N, T]
    seen_before = is_end.long().cumsum(1) - is_end.long()  # ends strictly before t
    mask = (seen_before == 0).long()
    truncated = ~is_end.any(1)
    return mask, truncated


@torch.no_grad()
def sample_completions(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mm: dict,
    group_size: int,
    config: GenerationConfig,
    shared: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample G completions per prompt: ([N, T] ids, [N, T] mask, [N] truncated).

    ``config`` comes from ``echoink.model.inputs.generation_config`` (stop ids, pad id, suppressed
    placeholder ids, sampling settings) and must have num_return_sequences 1: groups come from the cache.
    """
    thinker = thinker_of(model)
    g = group_size
    if shared:
        completion = _decode_shared_prefix(thinker, input_ids, attention_mask, mm, g, config)
    else:
        rep = repeat_mm(mm, g)
        thinker.model.rope_deltas = None
        ids, mask = input_ids.repeat_interleave(g, 0), attention_mask.repeat_interleave(g, 0)
        out = thinker.generate(input_ids=ids, attention_mask=mask, generation_config=config, **rep)
        completion = out[:, input_ids.shape[1] :]
    end_ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    cmask, truncated = completion_mask_from(completion, end_ids)
    completion = completion.masked_fill(cmask == 0, config.pad_token_id)
    return completion, cmask, truncated


def sample_categorical(scores: torch.Tensor) -> torch.Tensor:
    """[N, 1] one draw per row from softmax(scores [N, V]), by inverting the cumulative distribution.

    The same distribution as ``torch.multinomial`` (which ``generate`` uses), ~20x cheaper on a CPU:
    multinomial draws an exponential per vocabulary entry, this one uniform per row. A token whose
    probability is 0 (a -inf score) is never drawn: its cdf step is empty.
    """
    cdf = torch.softmax(scores, dim=-1).cumsum(-1)  # [N, V], non-decreasing
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]  # [N, 1] in [0, total)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)  # first cdf > u


def _decode_shared_prefix(
    thinker: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mm: dict,
    g: int,
    config: GenerationConfig,
) -> torch.Tensor:
    """[N, T] tokens sampled after each prompt, G rows per prompt, from one prefill per prompt."""
    if config.max_new_tokens is None:
        raise ValueError("the generation config must set max_new_tokens")
    enc = embed_prompts(thinker, input_ids, attention_mask, mm)
    lm = thinker.model.language_model
    # Without left padding (prompts of one length; always so at one prompt per GPU, as in the paper)
    # the causal mask alone is right: passing None spares transformers building a mask every step.
    padded = not bool(attention_mask.all())
    cache = lm(
        inputs_embeds=enc.embeds[:, :-1],
        attention_mask=attention_mask[:, :-1] if padded else None,
        position_ids=enc.position_ids[:, :, :-1],
        use_cache=True,
    ).past_key_values
    cache = reserved_cache(cache, g, config.max_new_tokens)  # [B, ...] -> [N, ...], + room to decode
    ids = input_ids.repeat_interleave(g, 0)  # [N, L], grows by one column per step (min-length, penalties)
    mask = attention_mask.repeat_interleave(g, 0) if padded else None  # [N, L], grows with ids
    positions = enc.position_ids[:, :, -1:].repeat_interleave(g, 1)  # [3, N, 1] of the last prompt token
    processors = thinker._get_logits_processor(
        config, input_ids_seq_length=ids.shape[1], device=ids.device, model_kwargs={}
    )
    end_ids = torch.tensor(
        config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id],
        device=ids.device,
    )
    embed = thinker.get_input_embeddings()
    token = ids[:, -1:]  # [N, 1]: the prompt's last token runs first, against the prompt[:-1] cache
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for _ in range(config.max_new_tokens):
        hidden = lm(
            inputs_embeds=embed(token),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state[:, -1]  # [N, H]
        scores = thinker.lm_head(hidden).float()  # [N, V]
        for processor in processors:  # the list's own __call__ inspects signatures every step
            scores = processor(ids, scores)
        token = sample_categorical(scores) if config.do_sample else scores.argmax(-1, keepdim=True)
        token = token.masked_fill(finished[:, None], config.pad_token_id)
        ids = torch.cat([ids, token], dim=1)
        finished |= torch.isin(token[:, 0], end_ids)
        if finished.all():
            break
        positions = positions + 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return ids[:, input_ids.shape[1] :]
