"""The sampler seam: who draws the G completions of a rollout, chosen once at set-up.

A ``Sampler`` owns everything its way of sampling needs: the weights it samples from (``sync``: our
decoder reads the policy itself, vLLM gets a copy pushed in place), the memory it holds between
rollouts (``release``), and its shutdown (``close``). The trainer calls the same four methods
whatever the sampler is, so no stage branches on ``rollout.engine``.

- ``DecoderSampler``: our shared-prefix decode loop on the policy (towers and prefill once per prompt);
- ``VllmRollouts``: a colocated vLLM engine (``vllm_sampler.VllmSampler``), one request per prompt, n = G.

A third (SGLang, say) is one class with these methods and one line where the engine is set up
(docs/architecture.md).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch
from torch import nn
from transformers import GenerationConfig

from .decode import Completions, sample_completions
from .families import Family
from .mm import PromptBatch
from .vllm_sampler import VllmSampler
from .wrappers import thinker_of


class Sampler(Protocol):
    """How a rollout's completions are drawn (shapes: B prompts, G per prompt, N = B·G, T tokens)."""

    def sample(
        self, model: nn.Module, prompts: PromptBatch, group_size: int, config: GenerationConfig, shared: bool
    ) -> Completions:
        """G completions per prompt from ``model``'s current weights (as of the last ``sync``)."""

    def generate(
        self, model: nn.Module, prompts: PromptBatch, n: int, config: GenerationConfig
    ) -> torch.Tensor:
        """[B·n, T] completion ids with ``config`` (evaluation's decoding)."""

    def sync(self, model: nn.Module, version: Any = None) -> float | None:
        """Make the next samples come from ``model``'s weights: seconds taken, or None when the sampler
        reads the model itself (nothing to copy). Under ZeRO-3 call it where the weights are gathered."""

    def release(self) -> None:
        """Free what the sampler holds between rollouts (vLLM's GPU memory in sleep mode)."""

    def close(self) -> None:
        """Shut the sampler down."""


class DecoderSampler:
    """Our own decode loop on the policy: the prompt's towers and prefill once, G completions from it."""

    def __init__(self, family: Family) -> None:
        self.family = family

    def sample(
        self, model: nn.Module, prompts: PromptBatch, group_size: int, config: GenerationConfig, shared: bool
    ) -> Completions:
        return sample_completions(self.family, thinker_of(model), prompts, group_size, config, shared)

    def generate(
        self, model: nn.Module, prompts: PromptBatch, n: int, config: GenerationConfig
    ) -> torch.Tensor:
        thinker = thinker_of(model)
        if n != 1:
            config = copy.deepcopy(config)
            config.num_return_sequences = n
        self.family.forget_positions(thinker)
        out = thinker.generate(**prompts.model_kwargs(), generation_config=config)
        return out[:, prompts.input_ids.shape[1] :]

    def sync(self, model: nn.Module, version: Any = None) -> float | None:
        return None  # it samples from the policy itself

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class VllmRollouts:
    """A colocated vLLM engine: weights pushed in place before each rollout, one request per prompt."""

    def __init__(self, vllm: VllmSampler, pad_id: int) -> None:
        self.vllm = vllm
        self.pad_id = pad_id

    def sample(
        self, model: nn.Module, prompts: PromptBatch, group_size: int, config: GenerationConfig, shared: bool
    ) -> Completions:
        return self.vllm.sample(prompts, group_size, config, self.pad_id)  # vLLM shares the prefix itself

    def generate(
        self, model: nn.Module, prompts: PromptBatch, n: int, config: GenerationConfig
    ) -> torch.Tensor:
        return self.vllm.sample(prompts, n, config, self.pad_id).ids

    def sync(self, model: nn.Module, version: Any = None) -> float | None:
        return self.vllm.push(thinker_of(model), version)

    def release(self) -> None:
        self.vllm.sleep()

    def close(self) -> None:
        self.vllm.close()
