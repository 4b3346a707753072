"""One training process for tests/dist: ``accelerate launch … worker.py RECIPE MODE OUT`` (or plain python).

Trains with ``echoink.rl.trainer.train`` and, before the final export, writes this process's trainable
weights to ``OUT/rank-{r}.safetensors`` so the test can compare processes.

MODE "real": the trainer exactly as ``echoink train`` runs it; each process rolls out its own prompts
with its own RNG stream.

MODE "global": every process rolls out the *whole* global batch (``sampler.next_global_indices()``)
from the same RNG seed (train.seed, step) and keeps its own prompts (``r::world``, as the sampler
shards them). Why: sampled completions depend on the RNG stream and the batch composition, so a
W-process run and a 1-process run with W times the prompts cannot sample the same completions, and
comparing their weights would test luck. With identical experience, what is left to compare is
everything the W processes add: the sharding order, the loss weighting across processes and
mini-batches, DDP's gradient average, clipping and the optimiser, and the metric reduction. Each
process's advantages are computed again from its own rewards as the trainer computes them
(``rollout.advantages_across`` with the rewards gathered), so estimators with batch statistics are
compared too.

RECIPE and OUT may be comma-separated lists: the runs train one after the other in one launch.
"""

from __future__ import annotations

import sys
from pathlib import Path


def global_rollout(cfg, run):
    import torch

    from functools import partial

    from echoink.rl.distributed import gather_rows
    from echoink.rl.experience import concat_groups
    from echoink.rl.rollout import Across, advantages_across, collect_experience

    h, state = run.h, run.state
    indices = state.sampler.next_global_indices()
    torch.manual_seed(cfg.train.seed * 100_003 + state.step)  # the same stream on every process
    h.policy.eval()
    samples = [run.samples[i] for i in indices]
    batch = collect_experience(h.engine, h.policy, h.reference, samples, run.gen_config, cfg)
    h.policy.train()
    rank, world = h.accelerator.process_index, h.accelerator.num_processes
    # Re-batched on every world size (also 1), so padding is the same kind of padding everywhere.
    part = concat_groups([(batch, b) for b in range(rank, len(indices), world)], h.engine.pad_id)
    across = Across(rows=partial(gather_rows, h.accelerator))
    part.advantages, part.zero_std = advantages_across(
        part.rewards, part.group_size, cfg.algo.scale_rewards, across
    )
    return part


def main(recipes: str, mode: str, outs: str) -> None:
    from echoink.rl import trainer

    originals = trainer.setup_run, trainer.export_policy  # each run wraps these, not the last run's wrappers
    for recipe, out in zip(recipes.split(","), outs.split(","), strict=True):
        train_one(recipe, mode, out, *originals)


def train_one(recipe: str, mode: str, out: str, setup, export) -> None:
    import json

    from safetensors.torch import save_file

    from echoink.config import load_config
    from echoink.rl import trainer
    from echoink.rl.checkpoint import trainable_state

    if mode == "global":
        trainer.next_rollout_batch = global_rollout
    runs = []

    def remember_run(*args, **kwargs):
        runs.append(setup(*args, **kwargs))
        return runs[-1]

    def dump_then_export(h, *args) -> None:
        name = f"rank-{h.accelerator.process_index}.safetensors"
        save_file(trainable_state(h.policy), str(Path(out) / name))
        sampler = Path(out) / f"rank-{h.accelerator.process_index}.sampler.json"
        sampler.write_text(
            json.dumps(runs[-1].state.sampler.state_dict())
        )  # where this process is in the order
        export(h, *args)

    trainer.setup_run, trainer.export_policy = remember_run, dump_then_export
    Path(out).mkdir(parents=True, exist_ok=True)
    trainer.train(load_config(recipe, [f"train.output_dir={out}"]))


if __name__ == "__main__":
    main(*sys.argv[1:4])
