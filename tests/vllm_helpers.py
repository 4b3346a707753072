"""Shared by the vLLM tests: tiny chat messages with media, an engine on vLLM, and the log-prob comparison."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from echoink.model import Engine, load_policy
from echoink.model.loading import load_processor
from echoink.testing.tiny import build_tiny

G = 4
TOL = 1e-4


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def user(*blocks) -> list[dict]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "Which one makes the tone?"}]}]


def image(w: int, h: int, colour=(200, 30, 30)) -> dict:
    return {"type": "image", "image": Image.new("RGB", (w, h), colour)}


def audio(seconds: float, freq: float = 440.0) -> dict:
    return {"type": "audio", "audio": tone(seconds, freq)}


def video(frames: int, width: int, sound: bool = True) -> dict:
    pixels = np.full((frames, 56, width, 3), 128, np.uint8)
    for t in range(frames):
        pixels[t, 8:-8, 8:-8, t % 3] = 220
    return {
        "type": "video",
        "video": pixels,
        "fps": 2.0,
        "soundtrack": tone(frames / 2, 500) if sound else None,
    }


def vllm_engine(tmp_path_factory, family: str):
    """(model dir, fp32 policy, engine on vLLM started with the policy's weights); the engine closed after."""
    path = build_tiny(tmp_path_factory.mktemp(f"vllm_{family}"), head_dim=32, family=family)
    model = load_policy(str(path), "cpu", dtype="float32", gradient_checkpointing=False, lora_rank=0).eval()
    engine = Engine.for_model(model, load_processor(path))
    engine.use_vllm(str(path), "float32", initial=model)
    yield path, model, engine
    engine.close()


def sampling(engine: Engine, model, tokens: int = 12, **kw):
    return engine.generation_config(engine.vocab_size(model), max_new_tokens=tokens, do_sample=True, **kw)


def max_diff(engine: Engine, model, messages: list, tokens: int = 12) -> tuple[float, float, object]:
    """(max |vLLM - ours| over completion tokens, the same on first tokens, the completions)."""
    prompts = engine.encode(messages)
    torch.manual_seed(0)
    done = engine.sample(model, prompts, G, sampling(engine, model, tokens))
    with torch.no_grad():
        ours = engine.logprobs(model, prompts, done.ids, G)
    diff = (ours - done.logprobs).abs() * done.mask
    return float(diff.max()), float(diff[:, 0].max()), done
