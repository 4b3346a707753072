"""echoink export: a trained thinker back into the directory its family's full class loads (Qwen2.5-Omni's
Qwen2_5OmniForConditionalGeneration, Qwen3-Omni's Qwen3OmniMoeForConditionalGeneration), round-tripped
through transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen3OmniMoeConfig,
    Qwen3OmniMoeForConditionalGeneration,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)
from typer.testing import CliRunner

from echoink.cli import app
from echoink.testing.tiny import build_tiny, build_tiny_full, make_tiny

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CLASSES = {  # family: (full class, thinker class, speech modules)
    "qwen2.5-omni": (
        Qwen2_5OmniForConditionalGeneration, Qwen2_5OmniThinkerForConditionalGeneration, ("talker", "token2wav")
    ),
    "qwen3-omni": (
        Qwen3OmniMoeForConditionalGeneration, Qwen3OmniMoeThinkerForConditionalGeneration, ("talker", "code2wav")
    ),
}  # fmt: skip


def build_tiny_qwen3_full(out: Path, seed: int = 0) -> Path:
    """A tiny Qwen3-Omni laid out like its release: thinker (``make_tiny``'s) + MoE talker + code2wav."""
    thinker, processor = make_tiny(seed=seed, family="qwen3-omni")
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    small |= dict(num_key_value_heads=2)
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 2, 2], "mrope_interleaved": True}
    text = dict(vocab_size=4300, moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=2)
    text |= dict(num_experts_per_tok=1, rope_parameters=rope, **small)  # codec ids reach 4205
    talker = dict(thinker_hidden_size=thinker.config.text_config.hidden_size, accept_hidden_layer=1)
    talker |= dict(num_code_groups=4, spatial_merge_size=2, text_config=text)
    talker["code_predictor_config"] = dict(vocab_size=64, num_code_groups=4, head_dim=16, **small)
    code2wav = dict(codebook_size=64, num_quantizers=4, decoder_dim=32, upsample_rates=(2, 2, 2, 2), **small)
    cfg = Qwen3OmniMoeConfig(
        thinker_config=thinker.config.to_dict(), talker_config=talker, code2wav_config=code2wav
    )
    torch.manual_seed(seed + 1)
    full = Qwen3OmniMoeForConditionalGeneration(cfg)
    with torch.no_grad():  # transformers 5.23 leaves the talker's fused experts as torch.empty: NaN at times
        for name, param in full.talker.named_parameters():
            if ".experts." in name:
                param.normal_(0.0, 0.02)
    full.thinker.load_state_dict(thinker.state_dict())
    full.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=list(CLASSES))
def models(request, tmp_path_factory) -> tuple[str, Path, Path]:
    """(family, base: a tiny full-layout model, with a speaker file where the family has one, as the
    released repos have; tuned: a run directory whose final/ holds another thinker of the family)."""
    family, root = request.param, tmp_path_factory.mktemp("export")
    if family == "qwen2.5-omni":
        base = build_tiny_full(root / "base", seed=0)
        torch.save({"Chelsie": {"cond": torch.ones(4)}}, base / "spk_dict.pt")
    else:
        base = build_tiny_qwen3_full(root / "base", seed=0)
    tuned = build_tiny(root / "run" / "final", seed=5, family=family)  # a run directory's final/
    return family, base, tuned.parent


def _differing(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """The names whose tensors differ between two modules (or that only one has)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sorted(sa.keys() ^ sb.keys()) + [k for k in sa.keys() & sb.keys() if not torch.equal(sa[k], sb[k])]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return not _differing(a, b)


def test_export_with_base_keeps_the_tuned_thinker_and_the_base_voice(models, tmp_path):
    family, base, run = models
    full_class, thinker_class, speech = CLASSES[family]
    result = CliRunner().invoke(
        app, ["export", str(run), "--out", str(tmp_path / "omni"), "--base", str(base)]
    )
    assert result.exit_code == 0, result.output
    full = full_class.from_pretrained(tmp_path / "omni")
    original = full_class.from_pretrained(base)
    tuned = thinker_class.from_pretrained(run / "final")
    assert full.has_talker and _same(full.thinker, tuned) and not _same(full.thinker, original.thinker)
    for module in speech:
        assert not _differing(getattr(full, module), getattr(original, module)), module
    if family == "qwen2.5-omni":
        assert set(full.speaker_map) == {"Chelsie"}


def test_export_without_base_builds_no_talker(models, tmp_path):
    family, _, run = models
    full_class, thinker_class, _ = CLASSES[family]
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "text")])
    assert result.exit_code == 0, result.output
    full = full_class.from_pretrained(tmp_path / "text")
    assert not full.has_talker and not hasattr(full, "talker")  # not a default 7B-sized one
    assert _same(full.thinker, thinker_class.from_pretrained(run / "final"))


def test_export_refuses_what_cannot_work(models, tmp_path):
    family, base, run = models
    other = build_tiny(tmp_path / "wide", seed=0, hidden=96, family=family)
    for args, message in [
        ([str(other), "--base", str(base)], "not those of"),  # another size than the base's thinker
        ([str(run), "--base", str(run / "final")], f"must be a full {family} directory"),
        ([str(base)], "expected a thinker"),
    ]:
        result = CliRunner().invoke(app, ["export", *args, "--out", str(tmp_path / "x")])
        assert result.exit_code == 2 and message in result.output, result.output
