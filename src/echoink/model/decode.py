"""Rollouts: G sampled completions per prompt, with each prompt's towers and prefill run once.

Shared mode: the prompt minus its last token is prefilled once per prompt with the audio/image
features in place; the cache is expanded to G rows with room reserved for the completion
(``kv_cache.reserved_cache``: each step writes one column instead of copying the cache); a short
decode loop continues from there: the language model on one token per step, then transformers' own
logits processors (built by ``generate``'s ``_get_logits_processor`` from the same GenerationConfig:
suppression, min length, temperature, top-k, top-p), then one draw from the resulting distribution
(``sample_categorical``: the distribution ``generate``'s ``torch.multinomial`` draws from, at a
twentieth of its CPU cost; the random stream differs, so sampled tokens are not ``generate``'s).

Why not ``generate`` on the cache: its per-token bookkeeping (the thinker's multimodal
``prepare_inputs_for_generation``, model-kwargs updates, stopping-criteria objects) was ~30% of a
tiny-model step. The loop runs the same maths (greedy output is token-identical to ``generate``'s,
tested for every family). Repeat mode (the anchors' way) calls ``generate`` with every prompt and its
media repeated G times.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens, T completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig

from .families import Family
from .kv_cache import reserved_cache
from .mm import PromptBatch


@dataclass
class Completions:
    """G completions per prompt: rows b·G .. b·G+G-1 belong to prompt b."""

    ids: torch.Tensor  # [N, T], pad id after the end token
    mask: torch.Tensor  # [N, T], 1 on real tokens incl. the end token
    truncated: torch.Tensor  # [N] bool: no end token within max_new_tokens
    logprobs: torch.Tensor | None = None  # [N, T] the sampler's own log-probs (vLLM), 0 after the end


def end_ids(config: GenerationConfig) -> list[int]:
    return config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]


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
    family: Family,
    thinker: nn.Module,
    prompts: PromptBatch,
    group_size: int,
    config: GenerationConfig,
    shared: bool = True,
) -> Completions:
    """Sample G completions per prompt.

    ``config`` comes from the engine's ``generation_config`` (stop ids, pad id, suppressed placeholder
    ids, sampling settings) and must have num_return_sequences 1: groups come from the cache.
    """
    g = group_size
    if shared:
        completion = _decode_shared_prefix(family, thinker, prompts, g, config)
    else:
        rep = prompts.repeat(g)
        family.forget_positions(thinker)
        out = thinker.generate(**rep.model_kwargs(), generation_config=config)
        completion = out[:, prompts.input_ids.shape[1] :]
    cmask, truncated = completion_mask_from(completion, end_ids(config))
    completion = completion.masked_fill(cmask == 0, config.pad_token_id)
    return Completions(completion, cmask, truncated)


def sample_categorical(scores: torch.Tensor) -> torch.Tensor:
    """[N, 1] one draw per row from softmax(scores [N, V]), by inverting the cumulative distribution.

    The same distribution as ``torch.multinomial`` (which ``generate`` uses), ~20x cheaper on a CPU:
    multinomial draws an exponential per vocabulary entry, this one uniform per row. A token whose
    probability is 0 (a -inf score) is never drawn: its cdf step is empty.
    """
    cdf = torch.softmax(scores, dim=-1).cumsum(-1)  # [N, V], non-decreasing
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]  # [N, 1] in [0, total)
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1)  # first cdf > u


def _prefill(family: Family, thinker: nn.Module, prompts: PromptBatch, g: int, reserve: int):
    """(cache of prompt[:-1] expanded to N rows, [3, N, 1] position of the last prompt token, padded?)."""
    enc = family.prefix(thinker, prompts)
    embeds, mask, positions, extra = enc.without_last()
    # Without left padding (prompts of one length; always so at one prompt per GPU, as in the paper)
    # the causal mask alone is right: passing None spares transformers building a mask every step.
    padded = not bool(prompts.attention_mask.all())
    cache = family.language_model(thinker)(
        inputs_embeds=embeds,
        attention_mask=mask if padded else None,
        position_ids=positions,
        use_cache=True,
        **extra,
    ).past_key_values
    cache = reserved_cache(cache, g, reserve)  # [B, ...] -> [N, ...], + room to decode
    return cache, enc.position_ids[:, :, -1:].repeat_interleave(g, 1), padded


def _decode_shared_prefix(family, thinker, prompts: PromptBatch, g: int, config: GenerationConfig):
    """[N, T] completion ids for each prompt, G rows per prompt, from one prefill per prompt."""
    if config.max_new_tokens is None:
        raise ValueError("the generation config must set max_new_tokens")
    input_ids, attention_mask = prompts.input_ids, prompts.attention_mask
    cache, positions, padded = _prefill(family, thinker, prompts, g, config.max_new_tokens)
    lm = family.language_model(thinker)
    ids = input_ids.repeat_interleave(g, 0)  # [N, L], grows by one column per step (min-length, penalties)
    mask = attention_mask.repeat_interleave(g, 0) if padded else None  # [N, L], grows with ids
    processors = thinker._get_logits_processor(
        config, input_ids_seq_length=ids.shape[1], device=ids.device, model_kwargs={}
    )
    stop = torch.tensor(end_ids(config), device=ids.device)
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
        finished |= torch.isin(token[:, 0], stop)
        if finished.all():
            break
        positions = positions + 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return ids[:, input_ids.shape[1] :]
