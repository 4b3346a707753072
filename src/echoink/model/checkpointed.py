"""The prefix-shared log-prob pass under activation checkpointing.

transformers' checkpointed decoder layers drop the KV cache in training (``past_key_values=None``),
so the usual prefix pass cannot run with gradient checkpointing on; falling back to "towers" sharing
would run every prompt G times with grad. Instead:

1. the prompt runs once, with grad, *without* layer checkpointing: its activations are B·L tokens,
   1/G of what the naive path keeps, and its KV cache is kept (still attached to the prompt's graph);
2. the completions run in micro-batches of ``completions_per_pass`` rows, each one checkpointed as a
   whole (``torch.utils.checkpoint``, non-reentrant): inside, a fresh cache is built from the prompt's
   keys/values for the chunk's rows, so the backward replay never updates a cache twice; between
   forward and backward a chunk keeps only its inputs and its [rows, T] log-probs;
3. backward replays one chunk at a time (peak memory: one chunk's activations, whatever G is); the
   gradients of all chunks meet at the prompt's keys/values and flow once into the prompt and towers.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens, T completion tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.cache_utils import DynamicCache

from .families import Family, PrefixEncoding
from .logprobs import token_logprobs


def is_checkpointing(thinker: nn.Module) -> bool:
    """True when the thinker's language-model layers recompute activations in this (training) pass."""
    return thinker.training and any(getattr(m, "gradient_checkpointing", False) for m in thinker.modules())


@contextmanager
def layers_not_checkpointed(module: nn.Module) -> Iterator[None]:
    """Turn transformers' per-layer checkpointing off inside the block (we checkpoint whole chunks)."""
    layers = [m for m in module.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for m in layers:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in layers:
            m.gradient_checkpointing = True


def _chunk_logprobs(lm, thinker, temperature, rows_prompt, mask, start, first_hidden, ids, *kv):
    """[rows, T] log-probs of one chunk of completions against the prompt's cache (recomputed in backward)."""
    cache = DynamicCache()
    for i in range(0, len(kv), 2):  # keys, values of layer i // 2, for this chunk's rows
        cache.update(kv[i][rows_prompt], kv[i + 1][rows_prompt], i // 2)
    hidden = first_hidden
    if ids.shape[1] > 1:
        inputs = ids[:, :-1]  # token t predicts token t+1
        full_mask = torch.cat([mask, torch.ones_like(inputs, dtype=mask.dtype)], dim=1)
        pos = (
            (start[:, None] + torch.arange(inputs.shape[1], device=ids.device)).unsqueeze(0).expand(3, -1, -1)
        )
        with layers_not_checkpointed(lm):  # also during the backward replay, which runs outside our caller
            out = lm(
                inputs_embeds=thinker.get_input_embeddings()(inputs),
                attention_mask=full_mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
            )
        hidden = torch.cat([first_hidden, out.last_hidden_state], dim=1)  # [rows, T, H]
    return token_logprobs(thinker.lm_head(hidden), ids, temperature)


def logprobs_prefix_checkpointed(
    family: Family,
    thinker: nn.Module,
    enc: PrefixEncoding,
    completion_ids: torch.Tensor,
    group_size: int,
    temperature: float,
    completions_per_pass: int,
) -> torch.Tensor:
    """[N, T] log-probs, equal to the plain prefix pass, with activation memory bounded per chunk."""
    lm = family.language_model(thinker)
    with layers_not_checkpointed(lm):
        out = lm(
            inputs_embeds=enc.embeds,
            attention_mask=enc.attention_mask,
            position_ids=enc.position_ids,
            use_cache=True,
            **enc.prompt_kwargs,
        )
        kv = [
            t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)
        ]  # [B, h, L, d] each
        n = completion_ids.shape[0]
        step = completions_per_pass or n
        prompt_of = torch.arange(n, device=completion_ids.device) // group_size  # [N] prompt of each row
        start = enc.next_position[prompt_of]  # [N]
        first = out.last_hidden_state[:, -1:]  # [B, 1, H]
        parts = []
        for lo in range(0, n, step):
            rows = prompt_of[lo : lo + step]
            parts.append(
                checkpoint(
                    _chunk_logprobs,
                    lm,
                    thinker,
                    temperature,
                    rows,
                    enc.attention_mask[rows],
                    start[lo : lo + step],
                    first[rows],
                    completion_ids[lo : lo + step],
                    *kv,
                    use_reentrant=False,
                )  # fmt: skip
            )
    return torch.cat(parts)
