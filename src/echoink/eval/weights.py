"""A fingerprint of the weights an evaluation ran: the SHA-256 of every weight file's content.

An eval folder records it (``eval_config.json``, ``summary.json``) so that predictions are never
resumed, or reported, for weights they were not made by: ``train --resume`` rewrites ``run/final`` in
place, under the same path. Sizes and modification times are not enough (a copy that keeps the
times, a file rewritten within one clock tick), so every byte is read. Measured on this 2-core CPU
machine under load, a 1 GiB file from the page cache: 0.82-1.24 s (0.8-1.2 GiB/s), so 14-21 s for the
16.6 GiB of Qwen2.5-Omni-7B's thinker in bf16 (2.5 s per GiB when the file is read for the first
time), against the minutes to hours of an evaluation; ``eval --suite`` computes it once. Rewriting
the same bytes is not a change: a resumed run whose updates were all zero keeps its fingerprint.

A LoRA adapter directory's fingerprint covers its base model's weights too (the adapter alone would
not notice a different base).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..filehash import sha256_file
from ..model.loading import adapter_base_path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_files(model_dir: str | Path) -> list[Path]:
    """The weight files of a model directory (top level only, sorted by name)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def weights_fingerprint(model_dir: str | Path) -> str | None:
    """SHA-256 over (role, name, content SHA-256) of the model's weight files, and of its base model's
    for a LoRA adapter; None when the directory holds no weight file (nothing to bind to)."""
    folders = [("model", Path(model_dir))]
    base = adapter_base_path(model_dir) if Path(model_dir).is_dir() else None
    if base is not None:
        folders.append(("base", base))
    digest, found = hashlib.sha256(), False
    for role, folder in folders:
        for path in weight_files(folder):
            digest.update(f"{role}/{path.name}={sha256_file(path)}\n".encode())
            found = True
    return digest.hexdigest() if found else None


def short(fingerprint: str | None) -> str:
    """The first 12 hex digits, or "none recorded"."""
    return fingerprint[:12] if fingerprint else "none recorded"
