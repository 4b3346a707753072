"""Which prompts each step trains on: seeded epoch shuffles, sharded across processes, resumable.

Every process draws the same global order (seeded by ``seed`` and the epoch) and takes every
``world``-th prompt of each global batch, so the union over processes of step k's prompts is the
same as a one-process run with ``world`` times the batch. Each prompt's G completions stay on the
process that owns the prompt, so group statistics (mean/std of the G rewards) are exact without
communication.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


class PromptSampler:
    def __init__(self, num_items: int, per_process: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if num_items < per_process * world:
            raise UserError(
                f"train.prompts_per_step: the dataset has {num_items} prompts, fewer than one global "
                f"batch ({per_process} prompts x {world} processes)"
            )
        self.num_items, self.per_process, self.seed = num_items, per_process, seed
        self.rank, self.world = rank, world
        self.epoch, self.cursor = 0, 0
        self._order = self._shuffle(0)

    def _shuffle(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def next_global_indices(self) -> list[int]:
        """All processes' prompt indices for the next step, in global order; advances the position.

        Incomplete global batches roll into a new epoch. Process ``r`` owns entries ``r::world``.
        """
        global_batch = self.per_process * self.world
        if self.cursor + global_batch > self.num_items:
            self.epoch, self.cursor = self.epoch + 1, 0
            self._order = self._shuffle(self.epoch)
        chunk = self._order[self.cursor : self.cursor + global_batch]
        self.cursor += global_batch
        return [int(i) for i in chunk]

    def next_indices(self) -> list[int]:
        """This process's prompt indices for the next step (its share of ``next_global_indices``)."""
        return self.next_global_indices()[self.rank :: self.world]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._shuffle(self.epoch)
