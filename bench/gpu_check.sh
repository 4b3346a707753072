#!/usr/bin/env bash
# The GPU check (issue 16, item 7): well under 10 minutes on one GPU, no network.
# The lent GPU machine has torch 2.11 and transformers 5.17; wheels carried in wheels/ (if present)
# are installed first, without the network, so the project's own pins apply there.
#   bench/gpu_check.sh            # 7B-size thinker, bf16, LoRA, G = 16, 256 tokens forced
#   bench/gpu_check.sh --size tiny  # the same code on a CPU, seconds
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -d wheels ] && ls wheels/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --find-links wheels transformers accelerate peft soundfile soxr av || true
fi
PYTHONPATH=src:bench:tests exec $PY bench/gpu_check.py "$@"
