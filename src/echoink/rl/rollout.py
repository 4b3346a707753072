"""One step's rollout, in the order it runs: encode -> sample (and the counterfactual sample) ->
rewards -> advantages -> reference (and old) log-probs, into one ``Experience``.

Everything model-specific (the processor, towers, positions, the shared-prefix decode and log-prob
passes) is the engine's (``echoink.model.Engine``); the rewards are ``echoink.scoring``'s; the maths is
``algos`` and ``grounding``. This module only orders the calls.

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens, K rewards, M
counterfactual answers per prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data import Sample
from ..data.media import Geometry
from ..data.messages import PromptSpec
from ..model import Engine, PromptBatch
from ..model.loading import reference_mode
from ..runlog import timed
from ..scoring.rewards import parse_answer, reward_fields, score
from . import algos, credit, credit_pass, grounding
from .experience import Experience

log = logging.getLogger(__name__)


def _own_width(width: int) -> int:
    return width


def _own_rows(values: torch.Tensor) -> tuple[torch.Tensor, int]:
    return values, 0


@dataclass(frozen=True)
class Across:
    """What one process's rollout agrees with the others (the defaults: a process alone).

    ``width(T)``: the completion width every process pads to (the largest: ``distributed.largest``), so
    all make the same calls in the reference and old log-prob passes. ``rows(x)``: every process's
    ``x`` [n] concatenated in rank order [W·n] and where this process's rows start
    (``distributed.gather_rows``), so estimators that need batch statistics see the global batch."""

    width: Callable[[int], int] = _own_width
    rows: Callable[[torch.Tensor], tuple[torch.Tensor, int]] = _own_rows


ALONE = Across()


def advantages_across(
    rewards: torch.Tensor, g: int, scale: str, across: Across = ALONE
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages [N], zero_std [B]) of this process's N rewards, computed over every process's rewards
    and sliced back, as TRL does: "batch" divides by the std of the global batch, exactly what one
    process with all the prompts computes (each process's own std differs from it)."""
    everyone, start = across.rows(rewards)
    adv, zero_std = algos.group_advantages(everyone, g, scale=scale)
    n = rewards.numel()
    return adv[start : start + n], zero_std[start // g : (start + n) // g]


def prompt_spec(data_cfg, geometry: Geometry) -> PromptSpec:
    """A run's ``data`` section and the engine's geometry as the one spec prompts are built by."""
    d = data_cfg
    return PromptSpec(d.template, d.max_audio_seconds, d.max_pixels, geometry, d.video(), d.on_error)


def encode_samples(
    engine: Engine, samples: Sequence[Sample], spec: PromptSpec, device, ablate: str = "none"
) -> PromptBatch:
    """Decode media, render the chat prompts and run the processor once for the batch, on ``device``."""
    return engine.encode(spec.messages(samples, ablate)).to(device)


def collect_experience(
    engine: Engine,
    policy: nn.Module,
    ref: nn.Module | None,
    samples: Sequence[Sample],
    gen_config,
    cfg,
    across: Across = ALONE,
) -> Experience:
    """Roll out, score and prepare one batch. ``cfg`` is the run's Config (data, rollout, algo);
    ``across``: what this process agrees with the others (widths, the rewards advantages see)."""
    g, spec = cfg.rollout.num_generations, prompt_spec(cfg.data, engine.geometry)
    timings: dict[str, float] = {}
    device = next(policy.parameters()).device
    with timed(timings, "time/rollout"):
        # a file broken since loading: a stand-in or an error (data.on_error)
        messages, failed = spec.messages_or_stand_ins(samples)
        if all(failed):
            log.warning(
                "every prompt of this step failed to decode on this process: its update has no weight from them"
            )
        prompts = engine.encode(messages).to(device)
        done = engine.sample(policy, prompts, g, gen_config, shared=cfg.rollout.sharing != "repeat")
    cf = None
    if grounding.wanted(cfg.algo):
        with timed(timings, "time/counterfactual"):
            cf = counterfactual_pass(engine, policy, samples, gen_config, cfg, device, failed, spec)
    mc = None
    if credit.wanted(cfg.algo):  # per-completion modality credit: two no-grad log-prob passes, no sampling
        with timed(timings, "time/credit"):
            mc = credit_pass.modality_credit(
                engine, policy, samples, prompts, done.ids, done.mask, cfg, failed
            )
    with timed(timings, "time/rewards"):
        texts = engine.decode(done.ids)
        fields = reward_fields(samples, g) | (cf.reward_fields(texts, g) if cf else {})
        fields |= mc.reward_fields() if mc else {}
        matrix, total, names = score(texts, fields, cfg.algo.rewards)
        advantages, zero_std = advantages_across(total, g, cfg.algo.scale_rewards, across)
        advantages, stats = _weigh_advantages(advantages, cf, mc, samples, g, cfg.algo)
    mask, advantages, zero_std = _drop_stand_ins(failed, g, done.mask, advantages, zero_std)
    exp = Experience(
        prompts, done.ids, mask, done.truncated, g, list(samples), texts, matrix, names, total, zero_std,
        advantages=advantages.to(device), timings=timings, stats=stats, rollout_logprobs=done.logprobs,
    )  # fmt: skip
    exp = exp.padded_to(across.width(exp.completion_ids.shape[1]), engine.pad_id)
    with timed(timings, "time/reference"):
        _reference_passes(engine, policy, ref, exp, cfg)
    return exp


def _weigh_advantages(advantages, cf, mc, samples, g: int, algo) -> tuple[torch.Tensor, dict[str, float]]:
    """The advantages [N] weighted by the counterfactual filter and the modality credit, when asked for."""
    stats: dict[str, float] = {}
    if cf is not None:  # counterfactual filtering
        advantages, stats = grounding.weigh_advantages(advantages, cf, samples, g, algo)
    if mc is not None:
        advantages = credit.weigh_advantages(
            advantages, mc.values, g, algo.credit_weighting, algo.credit_strength
        )
        stats |= mc.stats
    return advantages, stats


def _drop_stand_ins(failed, g: int, mask, advantages, zero_std):
    """Stand-ins for failed media: no tokens in the loss or the lengths, no advantage, no signal."""
    if not any(failed):
        return mask, advantages, zero_std
    stand_in = torch.tensor(failed).repeat_interleave(g)  # [N]
    mask = mask.masked_fill(stand_in[:, None].to(mask.device), 0)
    advantages = advantages.masked_fill(stand_in.to(advantages.device), 0.0)
    return mask, advantages, zero_std | torch.tensor(failed, device=zero_std.device)


def _reference_passes(engine: Engine, policy: nn.Module, ref: nn.Module | None, exp: Experience, cfg) -> None:
    """The reference log-probs (β > 0) and the old policy's (μ > 1) of ``exp``'s completions, in place."""
    with torch.no_grad():
        if cfg.algo.beta > 0:
            with reference_mode(policy, ref) as reference:
                exp.ref_logprobs = _logprobs(engine, reference, exp, cfg)
        if cfg.algo.num_iterations > 1:
            exp.old_logprobs = _logprobs(engine, policy, exp, cfg)


def counterfactual_pass(
    engine: Engine,
    policy: nn.Module,
    samples: Sequence[Sample],
    gen_config,
    cfg,
    device,
    failed: Sequence[bool] = (),
    spec: PromptSpec | None = None,
) -> grounding.Counterfactual:
    """M answers per prompt from ``policy`` with ``cfg.algo.counterfactual_ablate`` removed: one encode of
    the applicable prompts (not those whose media ``failed``), one shared-prefix sample (towers +
    prefill once per prompt). ``spec``: the rollout's prompt spec (built from ``cfg.data`` if None)."""
    removed, m = cfg.algo.counterfactual_ablate, cfg.algo.counterfactual_samples
    failed = list(failed) or [False] * len(samples)
    todo = [i for i, s in enumerate(samples) if not failed[i] and grounding.needs_removed(s, removed)]
    answers: list[list[str | None] | None] = [None] * len(samples)
    if todo:
        spec = spec or prompt_spec(cfg.data, engine.geometry)
        prompts = encode_samples(engine, [samples[i] for i in todo], spec, device, ablate=removed)
        done = engine.sample(policy, prompts, m, gen_config, shared=cfg.rollout.sharing != "repeat")
        parsed = [parse_answer(t) for t in engine.decode(done.ids)]  # [len(todo)·M]
        for k, i in enumerate(todo):
            answers[i] = parsed[k * m : (k + 1) * m]
    return grounding.Counterfactual(answers)


def _logprobs(engine: Engine, model: nn.Module, exp: Experience, cfg) -> torch.Tensor:
    return engine.logprobs(
        model, exp.prompts, exp.completion_ids, exp.group_size, cfg.rollout.temperature, cfg.rollout.sharing
    )
