"""One step's experience: prompts -> G sampled completions each -> rewards -> advantages -> reference log-probs.

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens, K rewards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import Sample, build_messages, load_media
from . import algos
from .rewards import score
from .rollout import Experience, sample_completions
from .scoring import attach_owners, completion_logprobs, thinker_of


@dataclass
class PromptInputs:
    input_ids: torch.Tensor  # [B, L] left padded
    attention_mask: torch.Tensor  # [B, L]
    mm: dict[str, torch.Tensor]  # processor outputs + per-item owners (see scoring.attach_owners)


def prompt_inputs(
    processor,
    samples: Sequence[Sample],
    template: str,
    max_audio_seconds: float | None,
    max_pixels: int | None,
    ablate: str = "none",
) -> PromptInputs:
    """Decode media, render the chat prompts and run the real processor once for the batch."""
    from ..model.inputs import encode_prompts  # the model layer owns the processor call

    messages = []
    for sample in samples:
        audio, image = load_media(sample, max_audio_seconds, max_pixels, ablate=ablate)
        messages.append(build_messages(sample, template, audio=audio, image=image))
    enc = encode_prompts(processor, messages)
    return PromptInputs(enc.input_ids, enc.attention_mask, dict(enc.mm_inputs))


@dataclass
class RolloutBatch:
    experience: Experience
    samples: list[Sample]  # B
    texts: list[str]  # N decoded completions
    reward_matrix: torch.Tensor  # [N, K], NaN where a reward does not apply
    reward_names: list[str]
    rewards: torch.Tensor  # [N] weighted sum
    zero_std: torch.Tensor  # [B] groups whose G rewards are all equal
    timings: dict[str, float] = field(default_factory=dict)


def register_rewards(weights: dict[str, float]) -> None:
    """Check every reward name; ``"package.module:function"`` names import and register a user's reward."""
    import importlib

    from .rewards import REWARDS

    for name in weights:
        if name in REWARDS:
            continue
        if ":" in name:
            module, _, attr = name.partition(":")
            REWARDS.register(name)(getattr(importlib.import_module(module), attr))
        else:
            REWARDS.get(name)  # raises with the list of valid names


def reward_fields(samples: Sequence[Sample], group_size: int) -> dict[str, list]:
    """Per-completion row fields for the reward functions: ``solution`` plus metadata shared by all rows."""
    fields: dict[str, list] = {"solution": [s.solution for s in samples for _ in range(group_size)]}
    common = set.intersection(*(set(s.metadata) for s in samples)) if samples else set()
    for key in sorted(common - {"solution"}):
        fields[key] = [s.metadata[key] for s in samples for _ in range(group_size)]
    return fields


@contextlib.contextmanager
def reference_mode(policy: nn.Module, ref: nn.Module | None):
    """Yield the module that gives reference log-probs: the frozen copy, or the LoRA policy with adapters off."""
    if ref is not None:
        yield ref
        return
    from ..model.loading import adapters_disabled

    with adapters_disabled(policy) as base:
        yield base


def collect_experience(
    policy: nn.Module,
    ref: nn.Module | None,
    processor,
    samples: Sequence[Sample],
    gen_config,
    cfg,
) -> RolloutBatch:
    """Roll out, score and prepare one batch. ``cfg`` is the run's Config (data, rollout, algo)."""
    g = cfg.rollout.num_generations
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    batch = prompt_inputs(
        processor, samples, cfg.data.template, cfg.data.max_audio_seconds, cfg.data.max_pixels
    )
    device = next(thinker_of(policy).parameters()).device
    mm = {
        k: v.to(device)
        for k, v in attach_owners(batch.mm, batch.input_ids, thinker_of(policy).config).items()
    }
    input_ids, attention_mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    shared = cfg.rollout.sharing != "repeat"
    ids, cmask, truncated = sample_completions(
        policy, input_ids, attention_mask, mm, g, gen_config, shared=shared
    )
    timings["time/rollout"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    texts = processor.batch_decode(ids, skip_special_tokens=True)
    matrix, total, names = score(texts, reward_fields(samples, g), cfg.algo.rewards)
    advantages, zero_std = algos.group_advantages(total, g, scale=cfg.algo.scale_rewards)
    timings["time/rewards"] = time.perf_counter() - t0

    exp = Experience(
        input_ids, attention_mask, mm, ids, cmask, truncated, g, advantages=advantages.to(device)
    )
    t0 = time.perf_counter()
    with torch.no_grad():
        if cfg.algo.beta > 0:
            with reference_mode(policy, ref) as reference:
                exp.ref_logprobs = _score(reference, exp, cfg.rollout.temperature, cfg.rollout.sharing)
        if cfg.algo.num_iterations > 1:
            exp.old_logprobs = _score(policy, exp, cfg.rollout.temperature, cfg.rollout.sharing)
    timings["time/reference"] = time.perf_counter() - t0
    return RolloutBatch(exp, list(samples), texts, matrix, names, total, zero_std, timings)


def _score(model: nn.Module, exp: Experience, temperature: float, sharing: str) -> torch.Tensor:
    return completion_logprobs(
        model,
        exp.input_ids,
        exp.attention_mask,
        exp.mm,
        exp.completion_ids,
        exp.group_size,
        temperature,
        sharing,
    )
