"""Policy / reference loading: full-Omni and thinker-only dirs, freezing, LoRA, adapter-disabled reference, saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from peft import PeftModel
from transformers import Qwen2_5OmniThinkerForConditionalGeneration

from echoink.config import ModelConfig
from echoink.model import Engine
from echoink.model.loading import (
    adapters_disabled,
    load_policy,
    load_processor,
    load_reference,
    tower_modules,
)
from echoink.model.saving import save_model
from echoink.testing.tiny import build_tiny_full


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch.model_kwargs()).logits


@pytest.fixture(scope="module")
def batch(tiny, make_messages):
    return Engine(tiny[1], "qwen2.5-omni").encode(
        [make_messages(1.0, (56, 56)), make_messages(2.0, (84, 56))]
    )


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("flag", ["audio_tower", "vision_tower", "llm"])
def test_freeze_flags_freeze_exactly_the_named_part(tiny_model_dir: Path, flag: str):
    policy = load_policy(tiny_model_dir, **{f"freeze_{flag}": True})
    assert policy.training
    parts = tower_modules(policy)
    for name, modules in parts.items():
        grads = {p.requires_grad for m in modules for p in m.parameters()}
        assert grads == ({False} if name == flag else {True}), name
    # Everything is in exactly one part.
    covered = sum(p.numel() for ms in parts.values() for m in ms for p in m.parameters())
    assert covered == sum(p.numel() for p in policy.parameters())


def test_default_policy_trains_everything_and_matches_plain_transformers(tiny_model_dir: Path, tiny, batch):
    policy = load_policy(ModelConfig(path=str(tiny_model_dir)))
    assert all(p.requires_grad for p in policy.parameters())
    torch.testing.assert_close(_logits(policy, batch), _logits(tiny[0], batch), rtol=0, atol=0)


def test_lora_wraps_llm_only_and_only_adapters_train(tiny_model_dir: Path):
    policy = load_policy(tiny_model_dir, lora_rank=4, lora_alpha=8)
    assert isinstance(policy, PeftModel)
    trainable = _trainable(policy)
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".language_model.layers." in n for n in trainable), "towers share module names but stay out"
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert wrapped == set(ModelConfig().lora_target_modules)


def test_reference_by_disabled_adapter_equals_base_logits(tiny_model_dir: Path, tiny, batch):
    policy = load_policy(tiny_model_dir, lora_rank=4)
    for name, p in policy.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter change the output
            torch.nn.init.normal_(p, std=0.5)
    base = _logits(tiny[0], batch)
    assert (_logits(policy, batch) - base).abs().max() > 1e-3
    with adapters_disabled(policy) as ref:
        torch.testing.assert_close(_logits(ref, batch), base, rtol=0, atol=1e-6)
    assert (_logits(policy, batch) - base).abs().max() > 1e-3, "adapters come back after the block"


def test_adapters_disabled_refuses_a_full_weight_policy(tiny):
    with pytest.raises(ValueError, match="LoRA"), adapters_disabled(tiny[0]):
        pass


def test_reference_is_frozen_base(tiny_model_dir: Path, tiny, batch):
    ref = load_reference(tiny_model_dir, lora_rank=4)
    assert not ref.training and not _trainable(ref)
    assert isinstance(ref, Qwen2_5OmniThinkerForConditionalGeneration)
    torch.testing.assert_close(_logits(ref, batch), _logits(tiny[0], batch), rtol=0, atol=0)


def test_gradient_checkpointing_keeps_gradients(tiny_model_dir: Path, batch):
    policy = load_policy(tiny_model_dir, gradient_checkpointing=True, lora_rank=4)
    assert policy.get_base_model().is_activation_checkpointing
    policy(**batch.model_kwargs()).logits.float().pow(2).mean().backward()
    grads = [p.grad for n, p in policy.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None for g in grads)


def test_dtype_option(tiny_model_dir: Path):
    policy = load_policy(tiny_model_dir, dtype="bfloat16")
    assert {p.dtype for p in policy.parameters()} == {torch.bfloat16}


class _ReadLog:
    """Wraps safetensors.safe_open as transformers uses it and records every tensor actually read."""

    def __init__(self, real) -> None:
        self.real, self.keys = real, []

    def __call__(self, *args, **kwargs):
        log = self

        class Slice:
            def __init__(self, inner, key):
                self.inner, self.key = inner, key

            def __getitem__(self, index):
                log.keys.append(self.key)
                return self.inner[index]

            def __getattr__(self, name):
                return getattr(self.inner, name)

        class File:
            def __init__(self, inner):
                self.inner = inner

            def __enter__(self):
                self.inner.__enter__()
                return self

            def __exit__(self, *exc):
                return self.inner.__exit__(*exc)

            def get_slice(self, key):
                return Slice(self.inner.get_slice(key), key)

            def get_tensor(self, key):
                log.keys.append(key)
                return self.inner.get_tensor(key)

            def __getattr__(self, name):
                return getattr(self.inner, name)

        return File(self.real(*args, **kwargs))


def test_thinker_from_full_omni_checkpoint_reads_only_thinker_tensors(tmp_path, monkeypatch, tiny, batch):
    full = build_tiny_full(tmp_path / "omni", seed=0)
    index = json.loads((full / "model.safetensors.index.json").read_text())["weight_map"]
    prefixes = {k.split(".")[0] for k in index}
    assert prefixes == {"thinker", "talker", "token2wav"} and len(set(index.values())) > 1
    reads = _ReadLog(transformers.modeling_utils.safe_open)
    monkeypatch.setattr(transformers.modeling_utils, "safe_open", reads)
    policy = load_policy(full)
    assert reads.keys and all(k.startswith("thinker.") for k in reads.keys)
    assert len(reads.keys) == sum(k.startswith("thinker.") for k in index)
    assert isinstance(policy, Qwen2_5OmniThinkerForConditionalGeneration)
    assert not any(n.startswith(("talker", "token2wav")) for n, _ in policy.named_modules())
    assert sum(p.numel() for p in policy.parameters()) == sum(p.numel() for p in tiny[0].parameters())
    torch.testing.assert_close(_logits(policy, batch), _logits(tiny[0], batch), rtol=0, atol=0)
    assert type(load_processor(full)).__name__ == "Qwen2_5OmniProcessor"


def test_saved_full_thinker_reloads_everywhere(tmp_path, tiny_model_dir: Path, batch):
    policy = load_policy(tiny_model_dir)
    with torch.no_grad():
        policy.lm_head.weight.add_(0.01)
    out = save_model(policy, load_processor(tiny_model_dir), tmp_path / "final")
    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
    torch.testing.assert_close(_logits(plain, batch), _logits(policy, batch), rtol=0, atol=0)
    torch.testing.assert_close(_logits(load_policy(out), batch), _logits(policy, batch), rtol=0, atol=0)
    assert (out / "processor_config.json").exists() and (out / "tokenizer.json").exists()


def test_saved_adapter_reloads_with_loader_and_plain_transformers(tmp_path, tiny_model_dir: Path, batch):
    policy = load_policy(tiny_model_dir, lora_rank=4)
    for name, p in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    expected = _logits(policy, batch)
    out = save_model(policy, load_processor(tiny_model_dir), tmp_path / "adapter")
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    again = load_policy(out)
    assert isinstance(again, PeftModel) and all("lora_" in n for n in _trainable(again))
    torch.testing.assert_close(_logits(again, batch), expected, rtol=0, atol=1e-6)
    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out)
    torch.testing.assert_close(_logits(plain, batch), expected, rtol=0, atol=1e-6)
    ref = load_reference(out)  # the starting policy: base + this adapter, merged and frozen
    torch.testing.assert_close(_logits(ref, batch), expected, rtol=0, atol=2e-4)  # merging rounds
    assert not torch.allclose(_logits(ref, batch), _logits(load_reference(tiny_model_dir), batch), atol=1e-3)
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training


def test_missing_path_is_an_honest_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="echoink model tiny"):
        load_policy(tmp_path / "nope")


def test_qwen3_full_layout_loads_the_thinker_only(tmp_path, qwen3_tiny):
    """A Qwen3-Omni repository layout (thinker + talker + code2wav tensors, the full model's config):
    the loader picks the family from model_type and builds the thinker with exactly its weights."""
    from safetensors.torch import save_file
    from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeThinkerForConditionalGeneration

    thinker, processor = qwen3_tiny
    Qwen3OmniMoeConfig(thinker_config=thinker.config.to_dict()).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    tensors = {f"thinker.{k}": v.contiguous() for k, v in thinker.state_dict().items()}
    tensors |= {
        "talker.model.norm.weight": torch.ones(4),
        "code2wav.pre_transformer.norm.weight": torch.ones(4),
    }
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    policy = load_policy(tmp_path)
    assert isinstance(policy, Qwen3OmniMoeThinkerForConditionalGeneration)
    assert not any(n.startswith(("talker", "code2wav")) for n, _ in policy.named_modules())
    want = thinker.state_dict()
    assert policy.state_dict().keys() == want.keys()
    assert all(torch.equal(v, want[k]) for k, v in policy.state_dict().items())
