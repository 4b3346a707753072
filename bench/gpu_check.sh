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
PYTHONPATH=src:bench:tests $PY bench/gpu_check.py "$@"
# The vLLM leg (issue 27): a carried vLLM CUDA wheel (wheels/vllm-*.whl) goes in without its
# dependencies, as the CPU build does here (its pins would replace torch and transformers); then
# rollout tokens/s of our decode loop and of vLLM on the same prompts (bench/vllm_rollout.py). Skipped,
# saying so, when vLLM is not importable. Never run on a GPU yet.
if [ "${1:-}" = "--size" ] && [ "${2:-}" = "tiny" ]; then
  echo '{"vllm_leg": "skipped at --size tiny (tests run bench/vllm_rollout.py on its own)"}'
  exit 0
fi
if ls wheels/vllm-*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps wheels/vllm-*.whl || true
fi
if $PY -c "import vllm" > /dev/null 2>&1; then
  device=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  PYTHONPATH=src:bench:tests $PY bench/vllm_rollout.py --device "$device" --hidden 1024 --layers 8 \
    --prompts 8 --group-size 16 --new-tokens 256
else
  echo '{"vllm_leg": "skipped: vllm is not importable"}'
fi
