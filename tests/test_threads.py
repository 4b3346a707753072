"""The CLI makes idle OpenMP workers sleep (OMP_WAIT_POLICY=PASSIVE) before torch starts its pool."""

from __future__ import annotations

import os
import subprocess
import sys


def test_cli_sets_a_passive_wait_policy_before_torch_loads():
    code = (
        "import sys, os\n"
        "from echoink.cli import app\n"
        "assert 'torch' not in sys.modules, 'the CLI must not import torch before its callback'\n"
        "try:\n    app(['--version'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "app(['model', 'tiny', '--help'], standalone_mode=False)\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # a user's own choice wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE"
