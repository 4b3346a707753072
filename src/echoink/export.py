"""``echoink export``: a trained thinker back into its family's full Omni checkpoint.

``final/`` holds only the thinker (what GRPO trains). Loaded with the full model's class (as
EchoInk's eval script loads Qwen2.5-Omni) its thinker-type config.json makes transformers build a
default, 7B-sized talker and vocoder. ``export_omni`` writes a directory that class loads as intended;
the thinker's family (``model.families``) says what the full model holds around it:

* with ``base`` (the original full model directory): the tuned thinker under ``thinker.*`` plus the
  base's speech tensors (the family's ``speech_prefixes``) and its speaker file, so the tuned model
  still speaks;
* without: the family's full config with ``enable_audio_output: false`` (no talker is built), and an
  empty speaker file where the family's full class requires one, so it loads the tuned thinker alone.

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

from .bounded import read_json_object
from .errors import UserError
from .model.families import FAMILIES, Family
from .outdir import check_output_dir

_WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin")


class ExportError(UserError):
    """The inputs cannot make a full model; the message says which and why."""


def _thinker_dir(source: Path) -> tuple[Path, Family]:
    """A run directory's final/, or a model directory itself, and its family; it must hold full
    thinker weights."""
    model = source / "final" if (source / "final" / "config.json").is_file() else source
    if (model / "adapter_config.json").is_file():
        raise ExportError(f"{model} is a LoRA adapter; merge it into its base thinker first")
    model_type = _config(model).get("model_type")
    for name in FAMILIES:
        if FAMILIES.get(name).thinker_type == model_type:
            return model, FAMILIES.get(name)
    thinkers = ", ".join(FAMILIES.get(name).thinker_type for name in FAMILIES)
    raise ExportError(f"{model}: expected a thinker ({thinkers}), got model_type {model_type!r}")


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ExportError(f"{model_dir}: no config.json")
    try:
        return read_json_object(path, "a model config")  # nesting bounded
    except ValueError as err:
        raise ExportError(str(err)) from None


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
    """Write the full model directory of ``source``'s family (a run dir or thinker dir) to ``out``."""
    thinker, family = _thinker_dir(Path(source))
    out = Path(out)
    check_output_dir(out, "--out", "export")
    thinker_cfg = _config(thinker)
    entries = [(f"thinker.{k}", k, f) for k, f in _tensors(thinker)]
    base_cfg = None
    if base is not None:
        base = Path(base)
        base_cfg = _config(base)
        if base_cfg.get("model_type") != family.full_type:
            raise ExportError(
                f"{base}: --base must be a full {family.name} directory (model_type {family.full_type})"
            )
        entries += _speech_entries(thinker, entries, base, family)
    full = family.full_config(thinker_cfg, base_cfg)
    out.mkdir(parents=True, exist_ok=True)
    _copy_side_files(thinker, out)  # the tuned run's tokenizer and processor
    if base is not None:  # the full model's generation config and speakers
        speakers = (family.speaker_file,) if family.speaker_file else ()
        _copy_side_files(base, out, only=("generation_config.json", *speakers))
    (out / "config.json").write_text(json.dumps(full, indent=1))
    if family.speaker_file and not (out / family.speaker_file).exists():
        torch.save({}, out / family.speaker_file)  # no talker, no speakers; the full class still asks
    _write_shards(entries, out, int(max_shard_gb * 2**30))
    return out


def _speech_entries(
    thinker: Path, entries: list[tuple[str, str, Path]], base: Path, family: Family
) -> list[tuple[str, str, Path]]:
    """The base's talker and vocoder tensors, once the tuned thinker is known to fit the base's."""
    base_tensors = list(_tensors(base))
    base_thinker = {
        k.removeprefix("thinker."): _shape(f, k) for k, f in base_tensors if k.startswith("thinker.")
    }
    if base_thinker != {k: _shape(f, k) for _, k, f in entries}:
        raise ExportError(
            f"{thinker}'s tensors are not those of {base}'s thinker: another architecture or size"
        )
    return [(k, k, f) for k, f in base_tensors if k.startswith(family.speech_prefixes)]


def _copy_side_files(model_dir: Path, out: Path, only: tuple[str, ...] | None = None) -> None:
    """Everything but weights and config.json (tokenizer, processor, ...), or just the files ``only`` names."""
    weights = {p for pattern in _WEIGHT_FILES for p in model_dir.glob(pattern)}
    for path in model_dir.iterdir():
        wanted = path.name in only if only is not None else path.name != "config.json"
        if path.is_file() and path not in weights and wanted:
            shutil.copy2(path, out / path.name)
