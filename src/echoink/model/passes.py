"""Per-token log-probabilities of G completions per prompt, sharing what the G completions share.

Three ways to score the same completions (``sharing``), equal up to float rounding:

- ``"prefix"`` (default): audio and vision towers run once per prompt, the prompt itself runs once
  (with grad) into a KV cache, the cache is expanded to the G completions, and only completion
  tokens run G times. For long audio the prompt is most of the LLM's tokens, so this is the big win.
- ``"towers"``: towers once per prompt, then the whole prompt+completion sequence G times.
- ``"repeat"``: what EchoInk/TRL/verl do: every prompt, media included, repeated G times through the
  full model. Kept for equivalence tests and benchmarks.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens (left padded), T completion
tokens (right padded), H hidden, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from .checkpointed import is_checkpointing, logprobs_prefix_checkpointed
from .families import Family, PrefixEncoding
from .logprobs import token_logprobs
from .mm import PromptBatch

SHARING_MODES = ("prefix", "towers", "repeat")


def text_positions(start: torch.Tensor, length: int) -> torch.Tensor:
    """[3, N, length] positions of plain text tokens starting at ``start`` [N]."""
    pos = start[:, None] + torch.arange(length, device=start.device)  # [N, length]
    return pos.unsqueeze(0).expand(3, -1, -1)


class Scores:
    """Collects the router logits of every language-model call of a pass (MoE families only)."""

    def __init__(self, want_router_logits: bool) -> None:
        self.want = want_router_logits
        self.router_logits: list[torch.Tensor] = []

    def kwargs(self) -> dict:
        return {"output_router_logits": True} if self.want else {}

    def keep(self, out) -> None:
        if self.want and getattr(out, "router_logits", None) is not None:
            self.router_logits.extend(out.router_logits)


def logprobs_prefix(
    family: Family, thinker, enc: PrefixEncoding, completion_ids, group_size, temperature, scores: Scores
) -> torch.Tensor:
    lm = family.language_model(thinker)
    out = lm(
        inputs_embeds=enc.embeds,
        attention_mask=enc.attention_mask,
        position_ids=enc.position_ids,
        use_cache=True,
        **enc.prompt_kwargs,
        **scores.kwargs(),
    )
    scores.keep(out)
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
            **scores.kwargs(),
        )
        scores.keep(out2)
        hidden = torch.cat([first_hidden, out2.last_hidden_state], dim=1)  # [N, T, H]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def logprobs_towers(
    family: Family, thinker, enc: PrefixEncoding, completion_ids, group_size, temperature, scores: Scores
) -> torch.Tensor:
    g = group_size
    n, t = completion_ids.shape
    length = enc.embeds.shape[1]
    embeds = torch.cat(
        [enc.embeds.repeat_interleave(g, 0), thinker.get_input_embeddings()(completion_ids)], dim=1
    )
    start = enc.next_position.repeat_interleave(g, 0)
    positions = torch.cat([enc.position_ids.repeat_interleave(g, 1), text_positions(start, t)], dim=2)
    mask = torch.cat([enc.attention_mask.repeat_interleave(g, 0), torch.ones_like(completion_ids)], dim=1)
    extra = _repeat_prompt_kwargs(enc, g, t)
    out = family.language_model(thinker)(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, **extra, **scores.kwargs()
    )
    scores.keep(out)
    hidden = out.last_hidden_state[:, length - 1 : length + t - 1]  # [N, T, H]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def _repeat_prompt_kwargs(enc: PrefixEncoding, g: int, t: int) -> dict:
    """Prompt-only arguments for G copies of prompt+completion: per-token masks repeated and widened
    by the T completion positions (False there), per-feature lists repeated per copy."""
    out = {}
    for key, value in enc.prompt_kwargs.items():
        if isinstance(value, torch.Tensor) and value.shape == enc.attention_mask.shape:  # [B, L] mask
            wide = torch.cat([value, value.new_zeros(value.shape[0], t)], dim=1)
            out[key] = wide.repeat_interleave(g, 0)
        else:  # deepstack: [features of all B prompts, H] per layer, in prompt order
            out[key] = [_repeat_by_prompt(v, enc.prompt_kwargs, g) for v in value]
    return out


def _repeat_by_prompt(features: torch.Tensor, kwargs: dict, g: int) -> torch.Tensor:
    counts = kwargs["visual_pos_masks"].sum(1).tolist()  # [B] visual tokens per prompt
    return torch.cat([c for c in torch.split(features, counts) for _ in range(g)])


def logprobs_repeat(
    family: Family, thinker, prompts: PromptBatch, completion_ids, group_size, temperature, scores: Scores
) -> torch.Tensor:
    t = completion_ids.shape[1]
    length = prompts.input_ids.shape[1]
    rep = prompts.repeat(group_size)
    ids = torch.cat([rep.input_ids, completion_ids], dim=1)
    mask = torch.cat([rep.attention_mask, torch.ones_like(completion_ids)], dim=1)
    family.forget_positions(thinker)  # positions are recomputed from input_ids, never reused from generation
    out = thinker.model(input_ids=ids, attention_mask=mask, **rep.mm.model_kwargs(), **scores.kwargs())
    scores.keep(out)
    hidden = out.last_hidden_state[:, length - 1 : length + t - 1]
    return token_logprobs(thinker.lm_head(hidden), completion_ids, temperature)


def completion_logprobs(
    family: Family,
    thinker: nn.Module,
    prompts: PromptBatch,
    completion_ids: torch.Tensor,
    group_size: int,
    temperature: float = 1.0,
    sharing: str = "prefix",
    scores: Scores | None = None,
    completions_per_pass: int = 0,
    every_tower: bool = False,
) -> torch.Tensor:
    """[N, T] log π(completion token | prompt, earlier tokens) for G completions per prompt.

    completion_ids: [N, T] with rows b·G .. b·G+G-1 belonging to prompt b. Padding after a
    completion's end gets a value too; mask it. With gradient checkpointing on (a training pass),
    "prefix" runs ``checkpointed.logprobs_prefix_checkpointed`` in chunks of ``completions_per_pass``
    rows (0: all rows in one chunk).
    """
    if sharing not in SHARING_MODES:
        raise ValueError(f"sharing must be one of {SHARING_MODES}, got {sharing!r}")
    scores = scores or Scores(False)
    if sharing == "repeat":  # the thinker's own forward: only the towers its batch needs (no every_tower)
        return logprobs_repeat(family, thinker, prompts, completion_ids, group_size, temperature, scores)
    enc = family.prefix(thinker, prompts, every_tower)
    if sharing == "prefix" and is_checkpointing(thinker):  # the cache must survive checkpointed layers
        if scores.want:
            raise NotImplementedError(
                "the MoE load-balancing loss is not computed under gradient checkpointing"
            )
        chunk = completions_per_pass
        return logprobs_prefix_checkpointed(
            family, thinker, enc, completion_ids, group_size, temperature, chunk
        )
    run = logprobs_towers if sharing == "towers" else logprobs_prefix
    return run(family, thinker, enc, completion_ids, group_size, temperature, scores)
