"""The prepared GPU check runs end to end on a CPU at tiny size and prints its JSON (the 7B size needs a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_at_tiny_size_on_cpu():
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = [str(ROOT / "bench" / "gpu_check.sh"), "--size", "tiny", "--group-size", "2", "--new-tokens", "4"]
    out = subprocess.run(
        cmd + ["--repeats", "1"], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["mode"] for r in rows] == ["shared", "repeat"]
    for r in rows:
        assert r["completion_tokens"] == 2 * 4 and r["step_s"] > 0 and r["peak_memory_gib"] > 0
