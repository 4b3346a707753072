"""The runs several multi-process tests compare against, trained once per session.

The split mixes what a real dataset mixes: image+audio, audio-only, frames-only video and
video+soundtrack rows, ordered so that the two processes hold different data types at every step
(``media_helpers.kinds_apart``): the hardest case for ZeRO-3, whose weights are all-gathered as a
collective whenever a module is called (test_mixed.py says what that used to break).
"""

from __future__ import annotations

import pytest

from dist.launch import DDP, SEED, STEPS, _errors, _sharded, _train, mixed_sets
from media_helpers import kinds_apart, write_mixed_split


@pytest.fixture(scope="session")
def mixed_runs(tiny_model_dir, tmp_path_factory):
    """(root, split, sets, ZeRO-3 report, kinds): the mixed split, one uninterrupted ZeRO-3 run of it
    (``bench/sharded_cpu.sh``, root/zero3) and one 2-process DDP run (root/ddp)."""
    pytest.importorskip("deepspeed", reason="the sharded engine needs DeepSpeed (make test installs it)")
    root = tmp_path_factory.mktemp("mixed")
    kinds = kinds_apart(SEED, STEPS)
    split = write_mixed_split(root / "data", kinds)
    sets = mixed_sets(tiny_model_dir, split)
    report = _sharded(root / "zero3", sets)
    done = _train(DDP, root / "ddp", sets)
    assert done.returncode == 0, _errors(done.stderr)
    return root, split, sets, report, kinds
