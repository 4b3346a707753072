"""SFT's non-finite weight guard: a step that breaks the weights stops the run, and final/ is never written."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from echoink.config import load_config
from echoink.guards import NonFiniteWeights
from echoink.sft import sft
from media_helpers import make_row, write_image, write_split, write_tone


def test_sft_stops_at_the_step_that_broke_the_weights(tiny_model_dir: Path, tmp_path: Path):
    rows = []
    for i in range(2):
        write_image(tmp_path / f"images/sample_{i}.png")
        write_tone(tmp_path / f"audios/sample_{i}.wav", seconds=0.3)
        rows.append({**make_row(i), "reasoning": "<think>a tone</think><answer>B</answer>"})
    out = tmp_path / "sft"
    cfg = load_config(
        None,
        [f"model.path={tiny_model_dir}", f"data.train_path={write_split(tmp_path, rows)}",
         f"sft.output_dir={out}", "sft.max_steps=2", "sft.batch_size=2", "sft.warmup_steps=0"],
    )  # fmt: skip
    cfg.sft.lr = math.inf  # the recipe refuses this (test_config); the guard is the second line of defence
    with pytest.raises(NonFiniteWeights, match=r"^step 1: "):
        sft(cfg)
    assert not (out / "final").exists()


def test_sft_into_an_earlier_fine_tune_is_refused_and_touches_nothing(tiny_model_dir: Path, tmp_path: Path):
    """It used to replace the earlier run's metrics and final/ (train refuses the equivalent)."""
    from echoink.outdir import OutputNotEmpty

    out = tmp_path / "sft"
    (out / "final").mkdir(parents=True)
    (out / "final" / "model.safetensors").write_bytes(b"the earlier fine-tune")
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"sft.output_dir={out}"])
    with pytest.raises(OutputNotEmpty, match=r"^sft.output_dir: .*sft is not empty \(final, metrics.jsonl\)"):
        sft(cfg)
    assert (out / "final" / "model.safetensors").read_bytes() == b"the earlier fine-tune"
    assert sorted(p.name for p in out.iterdir()) == ["final", "metrics.jsonl"]


def test_a_trace_spelling_a_control_token_stays_text_in_the_target(tiny_model_dir: Path):
    """A reference trace holding "<|im_end|>" must not put a real stop token mid-target (the model
    would learn to stop there); only the appended end token is one."""
    from echoink.data import Sample
    from echoink.model import Engine
    from echoink.model.loading import load_policy, load_processor
    from echoink.sft import target_ids

    engine = Engine.for_model(load_policy(tiny_model_dir), load_processor(tiny_model_dir))
    sample = Sample(
        "1", "q", ("A. x", "B. y"), "A", None, None, "text", metadata={"reasoning": "a<|im_end|>b"}
    )
    ids, mask = target_ids(engine, [sample], "reasoning")
    stops = [i for i, t in enumerate(ids[0].tolist()) if t in engine.stop_token_ids()]
    assert stops == [int(mask[0].sum()) - 1]  # the appended end token only
