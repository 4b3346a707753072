"""A split that mixes what a real dataset mixes, on 2 CPU processes: image+audio, audio-only, frames-only
video and video+soundtrack rows, ordered so that the two processes hold different data types at every
step (``media_helpers.kinds_apart``). Under ZeRO-3 each module's weights are all-gathered as a
collective when it is called, so a process whose batch skipped a tower waited on another's gather
(gloo: "collective mismatch", SIGABRT; NCCL: a hang). Every log-prob pass now calls every tower
(``Family.prefix(every_tower=True)``) and completion widths are agreed across processes.

The ZeRO-3 and DDP runs of the split are conftest.mixed_runs; test_sharded.py checks that they end
on the same weights and that kill -9 + ``--resume`` continues them exactly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dist.launch import DDP, SCRIPT, SEED, STEPS, _env, _errors, _train, mixed_sets
from echoink.runlog import read_jsonl

pytest.importorskip("deepspeed", reason="the sharded engine needs DeepSpeed (make test installs it)")


@pytest.fixture(scope="module")
def mixed(mixed_runs):
    return mixed_runs


def test_the_processes_hold_different_data_types_at_every_step(mixed):
    """The premise: each step, process 0 and process 1 roll out rows of different data types."""
    root, _, _, _, kinds = mixed
    order = np.random.default_rng([SEED, 0]).permutation(len(kinds))
    per_step = [(kinds[order[2 * k]], kinds[order[2 * k + 1]]) for k in range(STEPS)]
    assert all(a != b for a, b in per_step)
    assert {k for pair in per_step for k in pair} == {"image_audio", "audio", "video", "video_audio"}
    logged = {(r["step"], r["process"]): r["id"] for r in read_jsonl(root / "zero3" / "rollouts.jsonl")}
    assert {kinds[int(logged[(k + 1, 0)])] for k in range(STEPS)} != {"image_audio"}


@pytest.mark.parametrize("launch", ["ddp", "zero3"])
def test_a_nan_wav_under_skip_stands_in_on_two_processes_and_is_named(
    mixed, tiny_model_dir, tmp_path, launch
):
    """WAVs of NaN samples pass the header-only load check and fail when decoded: at steps 1 and 2 one
    process's whole step (one prompt) stands in while the other trains on; both finish."""
    import json
    import shutil

    _, split, _, _, kinds = mixed
    data = tmp_path / "data"
    shutil.copytree(split.parent, data)
    rows = json.loads((data / "train.json").read_text())
    bad = [
        i for i, k in enumerate(kinds) if k == "audio"
    ]  # drawn by process 1 at step 1, process 0 at step 2
    for i in bad:
        sf.write(
            data / rows[i]["path"]["audio"], np.full(8000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT"
        )
    sets = mixed_sets(tiny_model_dir, data / "train.json", "data.on_error=skip", "train.max_steps=2")
    out = tmp_path / launch
    if launch == "zero3":
        done = subprocess.run(
            ["bash", str(SCRIPT), str(out), *sets], env=_env(), capture_output=True, text=True
        )
    else:
        done = _train(DDP, out, sets)
    assert done.returncode == 0, _errors(done.stderr)
    named = [i for i in bad if f"row {rows[i]['problem_id']} failed at run time" in done.stderr]
    assert len(named) == 2 and all(Path(rows[i]["path"]["audio"]).name in done.stderr for i in named)
    assert "every prompt of this step failed to decode on this process" in done.stderr
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert (out / "final" / "model.safetensors").exists()


def test_repeat_sharing_under_zero3_on_a_mixed_split_is_refused_in_one_line(mixed, tmp_path):
    """The anchors' repeat passes use the thinker's own forward, which calls only the towers a batch
    needs: under ZeRO-3 on a split of several data types that is refused before anything loads."""
    _, _, sets, _, _ = mixed
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "repeat"), *sets, "--set", "rollout.sharing=repeat"],
        env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "error: rollout.sharing: repeat under ZeRO-3 on 2 processes needs one data type" in done.stderr
