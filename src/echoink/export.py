"""``echoink export``: a trained thinker back into a full Qwen2.5-Omni checkpoint.

``final/`` holds only the thinker (what GRPO trains). Loaded with ``Qwen2_5OmniForConditionalGeneration``
(as EchoInk's eval script does) its thinker-type config.json makes transformers build a default,
7B-sized talker and token2wav. ``export_omni`` writes a directory that class loads as intended:

* with ``base`` (the original full model directory): the tuned thinker under ``thinker.*`` plus the
  base's ``talker.*`` and ``token2wav.*`` tensors and speaker file, so the tuned model still speaks;
* without: a full-type config with ``enable_audio_output: false`` (no talker is built) and an empty
  speaker file, so the full class loads the tuned thinker alone.

Tensors are copied file to file in their stored dtype, one shard at a time; no model is built.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import UserError
from .outdir import check_output_dir

SPEAKERS = "spk_dict.pt"  # Qwen2_5OmniForConditionalGeneration.from_pretrained requires it
_WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin")
_SPEECH = ("talker.", "token2wav.")


class ExportError(UserError):
    """The inputs cannot make a full model; the message says which and why."""


def _thinker_dir(source: Path) -> Path:
    """A run directory's final/, or a model directory itself; it must hold full thinker weights."""
    model = source / "final" if (source / "final" / "config.json").is_file() else source
    if (model / "adapter_config.json").is_file():
        raise ExportError(f"{model} is a LoRA adapter; merge it into its base thinker first")
    cfg = _config(model)
    if cfg.get("model_type") != "qwen2_5_omni_thinker":
        raise ExportError(
            f"{model}: expected a Qwen2.5-Omni thinker, got model_type {cfg.get('model_type')!r}"
        )
    return model


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ExportError(f"{model_dir}: no config.json")
    return json.loads(path.read_text())


def _tensors(model_dir: Path) -> Iterator[tuple[str, Path]]:
    """(tensor name, its safetensors file) for every tensor of a model directory."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no safetensors weights")
    for file in files:
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                yield key, file


_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _shape(file: Path, name: str) -> list[int]:
    with safe_open(str(file), "pt") as f:
        return list(f.get_slice(name).get_shape())


def _nbytes(file: Path, name: str) -> int:
    with safe_open(str(file), "pt") as f:
        view = f.get_slice(name)
        return _BYTES.get(view.get_dtype(), 4) * int(torch.Size(view.get_shape()).numel())


def _write_shards(entries: list[tuple[str, str, Path]], out: Path, max_bytes: int) -> None:
    """entries (new name, stored name, file) -> model-XXXXX-of-YYYYY.safetensors + index, ~max_bytes each."""
    shards: list[list[tuple[str, str, Path]]] = [[]]
    size = 0
    for entry in entries:
        nbytes = _nbytes(entry[2], entry[1])
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for new, old, file in shard:
            with safe_open(str(file), "pt") as f:
                tensors[new] = f.get_tensor(old)
        save_file(tensors, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def export_omni(
    source: str | Path, out: str | Path, base: str | Path | None = None, max_shard_gb: float = 4.0
) -> Path:
    """Write a ``Qwen2_5OmniForConditionalGeneration`` directory from ``source`` (run dir or thinker dir)."""
    thinker = _thinker_dir(Path(source))
    out = Path(out)
    check_output_dir(out, "--out", "export")
    thinker_cfg = _config(thinker)
    entries = [(f"thinker.{k}", k, f) for k, f in _tensors(thinker)]
    if base is None:
        from transformers import Qwen2_5OmniConfig

        full = Qwen2_5OmniConfig(thinker_config=thinker_cfg, enable_audio_output=False).to_dict()
    else:
        base = Path(base)
        full = _config(base)
        if full.get("model_type") != "qwen2_5_omni":
            raise ExportError(
                f"{base}: --base must be a full Qwen2.5-Omni directory (model_type qwen2_5_omni)"
            )
        base_tensors = list(_tensors(base))
        base_thinker = {
            k.removeprefix("thinker."): _shape(f, k) for k, f in base_tensors if k.startswith("thinker.")
        }
        if base_thinker != {k: _shape(f, k) for _, k, f in entries}:
            raise ExportError(
                f"{thinker}'s tensors are not those of {base}'s thinker: another architecture or size"
            )
        entries += [(k, k, f) for k, f in base_tensors if k.startswith(_SPEECH)]
        full["thinker_config"] = {**full["thinker_config"], **thinker_cfg}
    full["architectures"] = ["Qwen2_5OmniForConditionalGeneration"]
    out.mkdir(parents=True, exist_ok=True)
    _copy_side_files(thinker, out)  # the tuned run's tokenizer and processor
    if base is not None:  # the full model's generation config and speakers
        _copy_side_files(base, out, only=("generation_config.json", SPEAKERS))
    (out / "config.json").write_text(json.dumps(full, indent=1))
    if not (out / SPEAKERS).exists():
        torch.save({}, out / SPEAKERS)  # no talker, no speakers; the full class still asks for the file
    _write_shards(entries, out, int(max_shard_gb * 2**30))
    return out


def _copy_side_files(model_dir: Path, out: Path, only: tuple[str, ...] | None = None) -> None:
    """Everything but weights and config.json (tokenizer, processor, ...), or just the files ``only`` names."""
    weights = {p for pattern in _WEIGHT_FILES for p in model_dir.glob(pattern)}
    for path in model_dir.iterdir():
        wanted = path.name in only if only is not None else path.name != "config.json"
        if path.is_file() and path not in weights and wanted:
            shutil.copy2(path, out / path.name)
