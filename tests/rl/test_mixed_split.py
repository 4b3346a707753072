"""One process on a split that mixes image+audio, audio-only, frames-only video and video+soundtrack
rows: GRPO steps whose batches mix them (with validation) and evaluation of the result. A batch that
mixed videos with and without a soundtrack used to stop with "batch them apart"."""

from __future__ import annotations

from echoink.eval.evaluate import evaluate
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from media_helpers import MIXED_KINDS, write_mixed_split
from rl.test_trainer import recipe


def test_grpo_validation_and_eval_on_batches_mixing_every_data_type(tiny_model_dir, tmp_path):
    split = write_mixed_split(tmp_path / "data", [*MIXED_KINDS, *MIXED_KINDS])
    cfg = recipe(tiny_model_dir, split, tmp_path / "run", "train.prompts_per_step=4", "train.max_steps=2",
                 f"data.val_path={split}", "train.eval_every=2", "eval.batch_size=8")  # fmt: skip
    out = train(cfg)
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and rows[-1]["eval/n"] == 8
    evaluate(out / "final", split, tmp_path / "eval", batch_size=8, max_new_tokens=8)
    ids = [r["id"] for r in read_jsonl(tmp_path / "eval" / "predictions.jsonl")]
    assert sorted(ids, key=int) == [str(i) for i in range(8)] and len(ids) == 8
