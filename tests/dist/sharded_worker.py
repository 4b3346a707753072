"""One DeepSpeed ZeRO-3 process for tests/dist/test_sharded.py:
``accelerate launch --config_file configs/accelerate/deepspeed_zero3_cpu.yaml sharded_worker.py RECIPE MODE OUT``.

MODE "gathers": one rollout as the trainer does it (weights gathered once, hooks off) and one with
DeepSpeed's per-layer gathering, from the same seed; writes OUT/gathers-rank{r}.json with the
all-gather calls each made (counted by wrapping the all-gather methods of DeepSpeed's communication
backend, through which every ZeRO-3 parameter gather goes) and the completions each sampled.

MODE "nan": trains with the second pass's loss made NaN on every process; the run must skip that
update (DeepSpeed would otherwise step NaN gradients into the weights) and finish.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

GATHERS = ("all_gather_into_tensor", "all_gather", "all_gather_base", "all_gather_coalesced")


@contextlib.contextmanager
def counted_gathers(counts: dict[str, int]):
    from deepspeed.comm import comm

    backend = comm.cdb  # DeepSpeed's TorchBackend: bound methods, so wrap them on the instance
    real = {name: getattr(backend, name) for name in GATHERS if hasattr(backend, name)}

    def counting(name, fn):
        def call(*args, **kwargs):
            counts[name] = counts.get(name, 0) + 1
            return fn(*args, **kwargs)

        return call

    for name, fn in real.items():
        setattr(backend, name, counting(name, fn))
    try:
        yield
    finally:
        for name in real:
            delattr(backend, name)  # the class's methods again


def gathers(recipe: str, out: Path) -> None:
    import torch

    from echoink.config import load_config
    from echoink.rl import sharding, trainer

    cfg = load_config(recipe, [f"train.output_dir={out}"])
    run = trainer.setup_run(cfg, resume=False)
    report = {}
    for mode in ("once", "per_layer"):
        counts: dict[str, int] = {}
        torch.manual_seed(11)
        run.state.sampler.load_state_dict({"epoch": 0, "cursor": 0})
        context = contextlib.nullcontext() if mode == "once" else _per_layer(sharding)
        with context, counted_gathers(counts):
            batch = trainer._roll_out(cfg, run)
        report[mode] = {
            "gathers": sum(counts.values()),
            "by_op": counts,
            "decode_steps": int(batch.completion_mask.sum(1).max()),  # forwards of the decode loop
            "texts": batch.texts,
        }
    report["parameters"] = sum(1 for _ in run.h.policy.parameters())
    rank = run.h.accelerator.process_index
    (out / f"gathers-rank{rank}.json").write_text(json.dumps(report))


@contextlib.contextmanager
def _per_layer(sharding):
    """The rollout without the gather-once block: DeepSpeed's hooks gather each layer per forward."""
    real = sharding.full_weights
    sharding.full_weights = lambda accelerator, engine: contextlib.nullcontext()
    try:
        yield
    finally:
        sharding.full_weights = real


def nan_second_pass(recipe: str, out: Path) -> None:
    from echoink.config import load_config
    from echoink.rl import optimise, trainer

    real, calls = optimise._mini_batch_loss, {"n": 0}

    def patched(cfg, scorer, exp, start, stop, mask):
        loss, m, logp, rows = real(cfg, scorer, exp, start, stop, mask)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 2 else loss), m, logp, rows

    optimise._mini_batch_loss = patched
    trainer.train(load_config(recipe, [f"train.output_dir={out}"]))


if __name__ == "__main__":
    recipe, mode, out = sys.argv[1:4]
    Path(out).mkdir(parents=True, exist_ok=True)
    {"gathers": gathers, "nan": nan_second_pass}[mode](recipe, Path(out))
