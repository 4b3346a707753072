"""Fixtures for the evaluation tests: a small split with ``needs`` metadata, and a scripted generator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from media_helpers import make_row, write_image, write_split, write_tone

NEEDS = ("audio", "image", "both", "audio")
ANSWERS = "ABCA"


@pytest.fixture
def eval_split(tmp_path: Path) -> Path:
    """Four items (answers A B C A, needs audio/image/both/audio), 1 s tones and 56x56 images."""
    rows = []
    for i, (answer, needs) in enumerate(zip(ANSWERS, NEEDS, strict=True)):
        write_image(tmp_path / f"images/sample_{i}.png", color=(40 * i, 200 - 30 * i, 90))
        write_tone(tmp_path / f"audios/sample_{i}.wav", freq=300 + 100 * i)
        rows.append({**make_row(i, answer=answer), "needs": needs, "reasoning": "<think>x</think>" * (i + 1)})
    return write_split(tmp_path, rows, "test.json")


class ScriptedModel(torch.nn.Module):
    """Stands in for the thinker: completions come from ``script`` (question number -> texts, cycled
    over the K samples; default "<answer>Z</answer>"), and ``calls`` records every PromptBatch received."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls: list = []
        self.script: dict[int, list[str]] = {}


@pytest.fixture
def scripted(monkeypatch, tiny_model_dir: Path) -> ScriptedModel:
    """Replace model loading and generation in echoink.eval.evaluate by a ScriptedModel (real processor)."""
    from transformers import AutoProcessor

    from echoink.eval import evaluate as ev
    from echoink.model import Engine

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = ScriptedModel()

    def fake_generate(engine, m, inputs, num_return_sequences=1, max_new_tokens=8, **_):
        m.calls.append(inputs)
        tok = engine.tokenizer
        rows = []
        for prompt in tok.batch_decode(inputs.input_ids):
            number = int(re.search(r"the sound (\d+)\?", prompt).group(1))
            texts = m.script.get(number, ["<answer>Z</answer>"])
            for j in range(num_return_sequences):
                ids = tok(texts[j % len(texts)], add_special_tokens=False)["input_ids"][:max_new_tokens]
                if len(ids) < max_new_tokens:
                    ids.append(tok.convert_tokens_to_ids("<|im_end|>"))
                rows.append(ids)
        width = max(map(len, rows))
        return torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])

    monkeypatch.setattr(Engine, "generate", fake_generate)
    scripted_engine = Engine(processor, "qwen2.5-omni")
    monkeypatch.setattr(
        ev, "load_model", lambda model_dir, device=None, engine="hf": (model, scripted_engine)
    )
    return model
