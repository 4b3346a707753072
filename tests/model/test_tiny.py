"""The tiny Omni builder: deterministic, loadable offline by plain transformers with identical logits."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from echoink.model import Engine
from echoink.testing.tiny import build_tiny, make_tiny


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def test_build_is_deterministic_per_seed(tmp_path: Path, tiny_model_dir: Path):
    again = build_tiny(tmp_path / "again", seed=0)
    other = build_tiny(tmp_path / "other", seed=1)
    assert (again / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    a, b, c = _weights(tiny_model_dir), _weights(again), _weights(other)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_directory_has_the_real_layout(tiny_model_dir: Path):
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    proc = json.loads((tiny_model_dir / "processor_config.json").read_text())
    assert cfg["architectures"] == ["Qwen2_5OmniThinkerForConditionalGeneration"]
    assert proc["processor_class"] == "Qwen2_5OmniProcessor"
    assert proc["feature_extractor"]["feature_size"] == 128
    assert proc["image_processor"]["patch_size"] == 14 and proc["image_processor"]["merge_size"] == 2
    text = cfg["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    assert cfg["vision_start_token_id"] is not None


def test_extra_corpus_shapes_the_tokenizer():
    plain = make_tiny(extra_corpus=())[1].tokenizer
    extra = make_tiny(extra_corpus=["xylophonequartz " * 20])[1].tokenizer
    word = "xylophonequartz"
    assert len(extra.tokenize(word)) < len(plain.tokenize(word))
    for name in ("image_token", "audio_token", "video_token", "vision_bos_token", "audio_eos_token"):
        token = getattr(extra, name)
        assert extra.tokenize(token) == [token], "special tokens must not be byte-split"


_RELOAD = """
import pickle, sys, torch
from transformers import AutoProcessor, Qwen2_5OmniThinkerForConditionalGeneration
from echoink.model import Engine
proc = AutoProcessor.from_pretrained(sys.argv[1])
model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
msgs = pickle.loads(open(sys.argv[3], "rb").read())
with torch.no_grad():
    torch.save(model(**Engine(proc, "qwen2.5-omni").encode([msgs]).model_kwargs()).logits, sys.argv[2])
"""


def test_offline_reload_gives_identical_logits(tmp_path: Path, tiny_model_dir: Path, make_messages):
    model, processor = make_tiny(seed=0)
    with torch.no_grad():
        expected = model(**Engine(processor, "qwen2.5-omni").encode([make_messages()]).model_kwargs()).logits
    out = tmp_path / "logits.pt"
    (tmp_path / "msgs.pkl").write_bytes(pickle.dumps(make_messages()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    subprocess.run(
        [sys.executable, "-c", _RELOAD, str(tiny_model_dir), str(out), str(tmp_path / "msgs.pkl")],
        env=env,
        check=True,
        capture_output=True,
    )
    assert torch.equal(torch.load(out), expected)


def test_cli_builds_a_loadable_model(tmp_path: Path):
    from typer.testing import CliRunner

    from echoink.cli import app

    out = tmp_path / "cli_tiny"
    result = CliRunner().invoke(app, ["model", "tiny", "--out", str(out), "--hidden", "32", "--layers", "1"])
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["text_config"]["hidden_size"] == 32 and cfg["text_config"]["num_hidden_layers"] == 1


def test_rope_theta_reaches_the_saved_config(tmp_path: Path):
    """The demo's small rotary base must survive save/load, or the model cannot read image columns."""
    from echoink.model.loading import thinker_config

    path = build_tiny(tmp_path / "theta10", seed=0, rope_theta=10.0)
    assert thinker_config(path)[1].text_config.rope_parameters["rope_theta"] == 10.0


def test_audio_conv_gain_redraws_only_the_audio_convolutions():
    """gain 0 leaves the model as it was (the image demo's); gain 1 redraws the audio tower's convolutions at
    std 1/sqrt(fan_in) and nothing else, and a tone then moves the tower's output tokens far more."""
    base = make_tiny(hidden=64, seed=0)[0].state_dict()
    same = make_tiny(hidden=64, seed=0, audio_conv_gain=0.0)[0].state_dict()
    assert all(torch.equal(base[k], same[k]) for k in base)
    model = make_tiny(hidden=64, seed=0, audio_conv_gain=1.0)[0]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, base[k])}
    assert changed == {k for k in base if "audio_tower.conv" in k and k.endswith("weight")}
    for name, conv in model.named_modules():
        if name.endswith("audio_tower.conv1"):
            assert abs(conv.weight.std().item() * conv.weight[0].numel() ** 0.5 - 1.0) < 0.05


def test_qwen3_is_served_with_interleaved_mrope_even_when_its_config_omits_it(tiny_qwen3_dir: Path):
    """transformers interleaves Qwen3-Omni's M-RoPE whatever the config says; vLLM only with
    ``mrope_interleaved`` (without it image tokens moved 5e-3..4e-2 nats): the serving wrapper adds it."""
    from echoink.model.families import FAMILIES

    config = json.loads((tiny_qwen3_dir / "config.json").read_text())
    config["text_config"]["rope_parameters"].pop("mrope_interleaved")
    served = FAMILIES.get("qwen3-omni").serving_config(config)["thinker_config"]["text_config"][
        "rope_parameters"
    ]
    assert served["mrope_interleaved"] is True and served["interleaved"] is True
