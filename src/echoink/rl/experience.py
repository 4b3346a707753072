"""One step's experience: prompts -> G sampled completions each -> rewards -> advantages -> reference log-probs.

``Experience`` is the one type between rollout, rewards, the loss and the logs. Everything model-specific
(the processor, towers, positions, the shared-prefix decode and log-prob passes) is the engine's
(``echoink.model.Engine``); this module only orders the calls and does the maths.

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens, K rewards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..data import Sample, sample_messages
from ..data.media import MediaError
from ..data.messages import decodable_messages
from ..model import Engine, PromptBatch
from ..scoring.rewards import score
from . import algos, grounding


@dataclass
class Experience:
    """One rollout batch: prompts, completions, rewards and everything the loss needs."""

    prompts: PromptBatch  # B prompts with their media
    completion_ids: torch.Tensor  # [N, T], pad after the end token
    completion_mask: torch.Tensor  # [N, T], 1 on real tokens incl. the end token
    truncated: torch.Tensor  # [N] bool: no end token within max_new_tokens
    group_size: int  # G
    samples: list[Sample] = field(default_factory=list)  # B
    texts: list[str] = field(default_factory=list)  # N decoded completions
    reward_matrix: torch.Tensor | None = None  # [N, K], NaN where a reward does not apply
    reward_names: list[str] = field(default_factory=list)
    rewards: torch.Tensor | None = None  # [N] weighted sum
    zero_std: torch.Tensor | None = None  # [B] groups whose G rewards are all equal
    advantages: torch.Tensor | None = None  # [N]
    old_logprobs: torch.Tensor | None = None  # [N, T] when μ > 1
    ref_logprobs: torch.Tensor | None = None  # [N, T] when β > 0
    timings: dict[str, float] = field(default_factory=dict)

    PER_COMPLETION = (
        "completion_ids",
        "completion_mask",
        "truncated",
        "reward_matrix",
        "rewards",
        "advantages",
        "old_logprobs",
        "ref_logprobs",
    )

    @property
    def num_prompts(self) -> int:
        return self.prompts.num_prompts

    def prompt_slice(self, start: int, stop: int) -> Experience:
        """The experience of prompts [start, stop) and their G completions each (a mini-batch)."""
        g = self.group_size
        rows = slice(start * g, stop * g)
        per_completion = {
            n: None if getattr(self, n) is None else getattr(self, n)[rows] for n in self.PER_COMPLETION
        }
        return replace(
            self,
            prompts=self.prompts.slice(start, stop),
            samples=self.samples[start:stop],
            texts=self.texts[rows],
            zero_std=None if self.zero_std is None else self.zero_std[start:stop],
            **per_completion,
        )


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


def encode_samples(
    engine: Engine, samples: Sequence[Sample], data_cfg, device, ablate: str = "none"
) -> PromptBatch:
    """Decode media, render the chat prompts and run the processor once for the batch, on ``device``."""
    d = data_cfg
    messages = sample_messages(samples, d.template, d.max_audio_seconds, d.max_pixels, ablate, d.video())
    return engine.encode(messages).to(device)


def collect_experience(
    engine: Engine,
    policy: nn.Module,
    ref: nn.Module | None,
    samples: Sequence[Sample],
    gen_config,
    cfg,
) -> Experience:
    """Roll out, score and prepare one batch. ``cfg`` is the run's Config (data, rollout, algo)."""
    g = cfg.rollout.num_generations
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    device = next(policy.parameters()).device
    d = cfg.data
    samples, messages = (
        decodable_messages(  # a file broken since loading: skipped or an error, by data.on_error
            samples, d.template, d.max_audio_seconds, d.max_pixels, d.on_error, video=d.video()
        )
    )
    if not samples:
        raise MediaError("every prompt of this step failed to decode (see the warnings above)")
    prompts = engine.encode(messages).to(device)
    done = engine.sample(policy, prompts, g, gen_config, shared=cfg.rollout.sharing != "repeat")
    timings["time/rollout"] = time.perf_counter() - t0
    cf, cf_metrics = grounding.ground(engine, policy, samples, gen_config, cfg, device)  # None unless asked

    t0 = time.perf_counter()
    texts = engine.decode(done.ids)
    fields = reward_fields(samples, g) | (cf.reward_fields(texts, g) if cf else {})
    matrix, total, names = score(texts, fields, cfg.algo.rewards)
    advantages, zero_std = algos.group_advantages(total, g, scale=cfg.algo.scale_rewards)
    if cf is not None:  # counterfactual filtering; metrics ride with the timings (averaged, not maxed)
        advantages, more = grounding.weigh_advantages(advantages, cf, samples, g, cfg.algo)
        timings |= cf_metrics | more
    timings["time/rewards"] = time.perf_counter() - t0

    exp = Experience(
        prompts, done.ids, done.mask, done.truncated, g, list(samples), texts, matrix, names, total, zero_std,
        advantages=advantages.to(device), timings=timings,
    )  # fmt: skip
    t0 = time.perf_counter()
    with torch.no_grad():
        if cfg.algo.beta > 0:
            with reference_mode(policy, ref) as reference:
                exp.ref_logprobs = _score(engine, reference, exp, cfg)
        if cfg.algo.num_iterations > 1:
            exp.old_logprobs = _score(engine, policy, exp, cfg)
    timings["time/reference"] = time.perf_counter() - t0
    return exp


def _score(engine: Engine, model: nn.Module, exp: Experience, cfg) -> torch.Tensor:
    return engine.logprobs(
        model, exp.prompts, exp.completion_ids, exp.group_size, cfg.rollout.temperature, cfg.rollout.sharing
    )
