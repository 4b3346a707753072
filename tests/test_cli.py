import subprocess
import sys

from echoink import __version__


def test_version():
    out = subprocess.run(
        [sys.executable, "-m", "echoink", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"echoink {__version__}"
