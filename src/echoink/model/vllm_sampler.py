"""Rollouts on vLLM (``rollout.engine: vllm``): a colocated, in-process engine that samples, the trainer scores.

One ``VllmSampler`` per training process (TRL's colocate pattern): the same process holds the policy
and a vLLM engine serving the same thinker. Before each rollout the policy's weights are pushed into
vLLM in place (``push``: LoRA merged, names in the checkpoint's layout, caches reset); each prompt is
one request with ``n = G`` and its media as ``multi_modal_data``, so vLLM encodes the prompt and its
media once and the G completions share its cached prefix. vLLM's sampled ids fill the same
``Completions`` the hf decode loop fills, plus vLLM's own log-probs of them (the mismatch metrics and
truncated importance sampling compare them with the trainer's).

Why in process and not a server: the weights go over as tensors (no copy through a file or a socket)
and every training process keeps its own engine, so DDP and ZeRO-3 launches need no extra machines.

What vLLM needs (the versions it was found with: docs/scaling.md and docs/architecture.md):
- the full Omni layout: top-level ``qwen2_5_omni`` / ``qwen3_omni_moe`` config holding ``thinker_config``,
  weights named ``thinker.*`` in the checkpoint's layout (transformers' in-memory names differ: they are
  reverted with ``revert_weight_conversion``, which also splits Qwen3's fused experts back into one
  tensor per expert). A thinker-only directory gets a wrapper (``serving_dir``): that config and links
  to the tokenizer/processor files, written once per engine. The engine starts on dummy weights and
  ``push`` loads the real ones before anything is sampled, so no weight file is read or written.
- text attention heads of at least 32 (CPU attention kernels); ``echoink model tiny --head-dim 32``.
- caches reset after each weight update, or a repeated image or clip reuses stale encoder outputs.

Log-probs: vLLM reports the raw model's (before temperature, suppression, top-k/top-p) at temperature
1, which is what the trainer scores; at another temperature its processed ones (after temperature,
and also after the suppression of placeholder tokens and top-k/top-p, which the trainer does not
apply): the mismatch metrics then include that difference.

Shapes: B prompts, G completions per prompt, N = B·G, T completion tokens.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig

from ..errors import UserError
from .decode import Completions, completion_mask_from, end_ids
from .families import Family
from .mm import PromptBatch

log = logging.getLogger(__name__)

CPU_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache on a CPU (its default, 4, is more than tests need)
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # binding threads to cores fights the trainer's own threads
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # engine core in this process: weights pushed as tensors
}
"""Environment vLLM reads at import; set (where the user has not) before it is first imported."""

CPU_MOE_PUSH = (
    "vLLM's CPU build (vllm-cpu 0.32) cannot update a mixture-of-experts model's weights in place: after "
    "reload_weights its fused experts stay in the checkpoint layout instead of its prepacked one (measured: "
    "Qwen3-Omni log-probs 2.5e-2 off, 1e-6 with the same weights loaded at start). Use rollout.engine=hf for "
    "Qwen3-Omni on a CPU, or vLLM's CUDA build"
)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class VllmSettings:
    """How the engine is sized (``rollout.vllm_*``); defaults suit a CPU and a tiny model."""

    gpu_memory_utilization: float = 0.3
    tensor_parallel_size: int = 1
    max_model_len: int = 0  # 0: the model's own
    sleep: bool = False  # GPU: free the engine's memory between rollouts
    seed: int = 0


def vllm_available() -> bool:
    """Whether vLLM can be imported here (its CPU or CUDA build)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def serving_dir(
    model_dir: str | Path, family: Family, out_dir: str | Path, weights: dict[str, torch.Tensor] | None = None
) -> Path:
    """The directory vLLM loads: ``model_dir`` itself when it has the full Omni layout (and no
    ``weights`` are given), else a wrapper in ``out_dir``: the family's full config around the thinker's,
    links to every non-weight file, and ``weights`` (checkpoint names) as one safetensors file if given."""
    from safetensors.torch import save_file

    src = Path(model_dir)
    config = json.loads((src / "config.json").read_text())
    if "thinker_config" in config and weights is None:
        return src
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json" and not f.name.endswith(_WEIGHT_SUFFIXES) and "index.json" not in f.name:
            (out / f.name).symlink_to(f.resolve())
    full = config if "thinker_config" in config else family.serving_config(config)
    (out / "config.json").write_text(json.dumps(full, indent=1))
    if weights is not None:
        save_file(
            {f"thinker.{k}": v.contiguous() for k, v in weights.items()}, str(out / "model.safetensors")
        )
    return out


def merged_weights(thinker: nn.Module) -> dict[str, torch.Tensor]:
    """The thinker's weights with every active LoRA adapter folded in, in the checkpoint's names.

    Out of place (``base + ΔW``, nothing merged into the policy and back, which would round the base).
    """
    from transformers.core_model_loading import revert_weight_conversion

    state: dict[str, torch.Tensor] = {}
    for name, value in thinker.state_dict().items():
        if ".lora_" not in name:
            state[name.replace(".base_layer.", ".")] = value.detach()
    for name, module in thinker.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            weight = module.base_layer.weight.detach()
            if not getattr(module, "disable_adapters", False) and not getattr(module, "merged", False):
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
            state[f"{name}.weight"] = weight
    return revert_weight_conversion(thinker, state)


class VllmSampler:
    """A vLLM engine serving ``model_dir``'s thinker, fed the policy's weights by ``push``."""

    def __init__(
        self,
        model_dir: str | Path,
        family: Family,
        processor: Any,
        dtype: str,
        settings: VllmSettings = VllmSettings(),
        initial: nn.Module | None = None,
    ) -> None:
        """``initial``: a thinker whose weights the engine starts with (written once into the wrapper and
        loaded as a checkpoint: what ``echoink eval`` does, needing no push); else dummy weights until
        the first :meth:`push`."""
        for key, value in CPU_ENV.items():
            os.environ.setdefault(key, value)
        from vllm import LLM

        self.family = family
        self.processor = processor  # ours: the video geometry vLLM's copy must be told
        self.settings = settings
        self._wrapper = Path(tempfile.mkdtemp(prefix="echoink-vllm-"))
        weakref.finalize(self, shutil.rmtree, self._wrapper, True)
        weights = None if initial is None else merged_weights(initial)
        path = serving_dir(model_dir, family, self._wrapper / "model", weights)
        from .vllm_positions import architecture_overrides

        kwargs: dict[str, Any] = {}
        overrides = architecture_overrides(family.serving_architecture)
        if overrides:
            kwargs["hf_overrides"] = overrides
        if settings.max_model_len:
            kwargs["max_model_len"] = settings.max_model_len
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            # Every training process runs its own engine inside the launcher's process group (TRL's
            # colocate mode): vLLM splits that world into tensor-parallel groups of the size asked.
            kwargs["distributed_executor_backend"] = "external_launcher"
        if torch.cuda.is_available():
            kwargs |= {"gpu_memory_utilization": settings.gpu_memory_utilization}
            kwargs |= {"enable_sleep_mode": settings.sleep}
        # Under a launcher (WORLD_SIZE > 1) the groups are the launch's even if accelerate has not
        # formed them yet: closing must never tear them down.
        launched = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
        self._owns_process_group = not torch.distributed.is_initialized() and not launched
        t0 = time.perf_counter()
        self.llm = LLM(
            model=str(path),
            load_format="dummy" if initial is None else "auto",  # dummy: the real weights come with a push
            dtype=dtype,
            tensor_parallel_size=settings.tensor_parallel_size,
            seed=settings.seed,
            enforce_eager=not torch.cuda.is_available(),
            enable_prefix_caching=True,
            limit_mm_per_prompt={"image": 4, "audio": 4, "video": 2},
            logprobs_mode="raw_logprobs",
            **kwargs,
        )
        self.start_seconds = time.perf_counter() - t0
        self.pushed_version: Any = None if initial is None else "initial"  # None: dummy weights
        self.asleep = False
        log.info("vLLM engine for %s started in %.1f s", model_dir, self.start_seconds)

    def close(self) -> None:
        """Shut the engine down and drop vLLM's process groups, so that another engine (another family's)
        can start in this process. Inside a launcher's process group (DDP, ZeRO-3) the engine is only
        dropped: the groups belong to the launch, and the process ends with the run."""
        import gc

        if self._owns_process_group:
            from vllm.distributed import parallel_state

            core = getattr(self.llm.llm_engine, "engine_core", None)
            if core is not None:
                core.shutdown()
            del self.llm
            parallel_state.cleanup_dist_env_and_memory()
        else:
            del self.llm
        gc.collect()

    # --- weights -------------------------------------------------------------------------------------
    def push(self, thinker: nn.Module, version: Any = None) -> float:
        """Load ``thinker``'s current weights (LoRA merged) into vLLM and reset its caches; seconds taken.

        Skipped when ``version`` is not None and equals the last pushed one (validation right after a
        rollout at the same weights). Under ZeRO-3 call it where the weights are gathered.
        """
        if version is not None and version == self.pushed_version:
            return 0.0
        if self.family.is_moe and not torch.cuda.is_available():
            raise UserError(CPU_MOE_PUSH)
        t0 = time.perf_counter()
        self.wake()
        weights = [("thinker." + k, v) for k, v in merged_weights(thinker).items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.reset_caches()
        self.pushed_version = version if version is not None else object()
        return time.perf_counter() - t0

    def reset_caches(self) -> None:
        """Forget cached prefixes and media encodings (they belong to the old weights)."""
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()
        engine = getattr(self.llm, "llm_engine", None)
        if engine is not None and hasattr(engine, "reset_encoder_cache"):
            engine.reset_encoder_cache()

    def sleep(self) -> None:
        """GPU (``rollout.vllm_sleep``): free the engine's memory for the training passes."""
        if self.settings.sleep and torch.cuda.is_available() and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    # --- sampling ------------------------------------------------------------------------------------
    def sample(
        self, prompts: PromptBatch, group_size: int, config: GenerationConfig, pad_id: int
    ) -> Completions:
        """G completions per prompt, one request each (``n = G``); ``Completions.logprobs`` are vLLM's."""
        if prompts.sources is None:
            raise ValueError("the vLLM engine needs prompts from Engine.encode (their text and media)")
        self.wake()
        requests = [self._request(text, media) for text, media in prompts.sources]
        params = self._sampling_params(config, group_size, len(requests))
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        # Every batch (a list comparison, nothing next to the generation): a later batch can bring a
        # modality the first did not, laid out by another path of vLLM's processor.
        check_prompt_ids(prompts, [o.prompt_token_ids for o in outputs])
        seqs = [c for o in outputs for c in o.outputs]  # [N], prompt-major
        width = max(len(c.token_ids) for c in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        logp = torch.zeros(len(seqs), width, dtype=torch.float32)
        for n, c in enumerate(seqs):
            ids[n, : len(c.token_ids)] = torch.tensor(c.token_ids, dtype=torch.long)
            logp[n, : len(c.token_ids)] = torch.tensor(
                [step[tok].logprob for step, tok in zip(c.logprobs, c.token_ids, strict=True)]
            )
        mask, truncated = completion_mask_from(ids, end_ids(config))
        ids = ids.masked_fill(mask == 0, pad_id)
        device = prompts.device
        return Completions(ids.to(device), mask.to(device), truncated.to(device), (logp * mask).to(device))

    def _request(self, text: str, media: Any) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if media.images:
            data["image"] = list(media.images)
        if media.audios:
            data["audio"] = [(a, 16_000) for a in media.audios]
        request: dict[str, Any] = {"prompt": text, "multi_modal_data": data}
        if media.videos:
            data["video"] = [
                (v, _video_metadata(v, fps)) for v, fps in zip(media.videos, media.fps, strict=True)
            ]
            sound = media.video_sound
            if any(sound) and not all(sound):  # vLLM takes one use_audio_in_video per request
                raise UserError("vLLM cannot serve one prompt whose videos are partly with sound")
            request["mm_processor_kwargs"] = self.family.serving_video_kwargs(
                self.processor, media.fps[0], media.audio_video if any(sound) else None
            )
        return request

    def _sampling_params(self, config: GenerationConfig, n: int, prompts: int) -> list:
        """One SamplingParams per prompt: the generation config's settings, randomness from torch's
        generator (a resumed run draws the same), placeholder and unused ids disallowed as ``suppress_tokens``."""
        from vllm import SamplingParams

        greedy = not config.do_sample
        allowed = sorted(set(range(self._vocab)) - set(config.suppress_tokens or []))
        # A seed per request on a GPU. On the CPU build a seeded request whose prefill is split over
        # steps crashes ("CPU Generator does not use offset"), and in process vLLM draws from torch's
        # own generator anyway: unseeded requests follow torch's seed, which checkpoints restore.
        seeds = (
            torch.randint(0, 2**31 - 1, (prompts,)).tolist()
            if torch.cuda.is_available()
            else [None] * prompts
        )
        return [
            SamplingParams(
                n=n,
                max_tokens=config.max_new_tokens,
                min_tokens=int(config.min_new_tokens or 0),
                temperature=0.0 if greedy else float(_or(config.temperature, 1.0)),
                top_p=1.0 if greedy else float(_or(config.top_p, 1.0)),
                top_k=0 if greedy else int(config.top_k or 0),
                stop_token_ids=end_ids(config),
                allowed_token_ids=allowed,
                logprobs=0,
                seed=seed,
            )
            for seed in seeds
        ]

    @property
    def _vocab(self) -> int:
        return len(self.llm.get_tokenizer())


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _video_metadata(frames: Any, fps: float) -> dict[str, Any]:
    """The frames as sampled: vLLM takes them as given (no resampling)."""
    count = len(frames)
    return {
        "fps": fps,
        "total_num_frames": count,
        "frames_indices": list(range(count)),
        "duration": count / fps,
    }


def check_prompt_ids(prompts: PromptBatch, served: list[list[int]]) -> None:
    """Raise when vLLM's prompt token ids differ from ours (a different template, processor or media
    geometry would give the G completions another prompt than the one the trainer scores)."""
    for b, ids in enumerate(served):
        ours = prompts.input_ids[b][prompts.attention_mask[b].bool()].tolist()
        if list(ids) != ours:
            at = next(
                (i for i, (x, y) in enumerate(zip(ids, ours, strict=False)) if x != y),
                min(len(ids), len(ours)),
            )
            raise ValueError(
                f"vLLM's prompt {b} differs from the trainer's: {len(ids)} vs {len(ours)} tokens, first "
                f"difference at token {at} (vLLM {list(ids)[at : at + 5]}, ours {ours[at : at + 5]}); "
                "the processor settings of the two engines disagree"
            )
