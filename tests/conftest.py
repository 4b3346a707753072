"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_helpers import make_row, write_image, write_split, write_tone


@pytest.fixture
def good_split(tmp_path: Path) -> Path:
    rows = []
    for i in range(4):
        write_image(tmp_path / f"images/sample_{i}.png")
        write_tone(tmp_path / f"audios/sample_{i}.wav", freq=300 + 100 * i)
        rows.append(make_row(i, answer="ABC"[i % 3]))
    return write_split(tmp_path, rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default tiny Qwen2.5-Omni thinker + tokenizer + processor, built once per test session (read-only)."""
    from echoink.testing.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default tiny Qwen3-Omni (MoE) thinker + tokenizer + processor, built once per test session (read-only)."""
    from echoink.testing.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny_qwen3"), seed=0, family="qwen3-omni")


@pytest.fixture(params=["qwen2.5-omni", "qwen3-omni"])
def family_model_dir(request, tiny_model_dir: Path, tiny_qwen3_dir: Path) -> Path:
    """Each family's session tiny model directory, in turn."""
    return tiny_model_dir if request.param == "qwen2.5-omni" else tiny_qwen3_dir
