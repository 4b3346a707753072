"""echoink export: a trained thinker back into a directory Qwen2_5OmniForConditionalGeneration loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniThinkerForConditionalGeneration
from typer.testing import CliRunner

from echoink.cli import app
from echoink.testing.tiny import build_tiny, build_tiny_full

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(base: the tiny full-layout model with a speaker file, as the 7B repo has; tuned: another thinker)."""
    root = tmp_path_factory.mktemp("export")
    base = build_tiny_full(root / "base", seed=0)
    torch.save({"Chelsie": {"cond": torch.ones(4)}}, base / "spk_dict.pt")
    tuned = build_tiny(root / "run" / "final", seed=5)  # a run directory's final/
    return base, tuned.parent


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_export_with_base_keeps_the_tuned_thinker_and_the_base_voice(models, tmp_path):
    base, run = models
    result = CliRunner().invoke(
        app, ["export", str(run), "--out", str(tmp_path / "omni"), "--base", str(base)]
    )
    assert result.exit_code == 0, result.output
    full = Qwen2_5OmniForConditionalGeneration.from_pretrained(tmp_path / "omni")
    original = Qwen2_5OmniForConditionalGeneration.from_pretrained(base)
    tuned = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(run / "final")
    assert full.has_talker and _same(full.thinker, tuned) and not _same(full.thinker, original.thinker)
    assert _same(full.talker, original.talker) and _same(full.token2wav, original.token2wav)
    assert set(full.speaker_map) == {"Chelsie"}


def test_export_without_base_builds_no_talker(models, tmp_path):
    _, run = models
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "text")])
    assert result.exit_code == 0, result.output
    full = Qwen2_5OmniForConditionalGeneration.from_pretrained(tmp_path / "text")
    assert not full.has_talker and not hasattr(full, "talker")  # not a default 7B-sized one
    assert _same(full.thinker, Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(run / "final"))


def test_export_refuses_what_cannot_work(models, tmp_path):
    base, run = models
    other = build_tiny(tmp_path / "wide", seed=0, hidden=96)
    for args, message in [
        ([str(other), "--base", str(base)], "not those of"),  # another size than the base's thinker
        ([str(run), "--base", str(run / "final")], "full Qwen2.5-Omni directory"),
        ([str(base)], "expected a Qwen2.5-Omni thinker"),
    ]:
        result = CliRunner().invoke(app, ["export", *args, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and message in result.output, result.output
