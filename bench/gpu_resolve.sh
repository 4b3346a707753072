#!/usr/bin/env bash
# Does the GPU install (make setup-gpu) resolve? pip's resolver on requirements-gpu.txt with
# constraints-gpu.txt, metadata only (--dry-run --report: nothing is installed; wheels are not
# downloaded where the index gives their metadata, sdists such as DeepSpeed's are built for theirs).
# Needs only the package registry. Exits non-zero when it does not resolve; prints one JSON line:
#   {"torch": ..., "vllm": ..., "transformers": ..., "deepspeed": ..., "python": ..., ...}
#   bench/gpu_resolve.sh                  # with python3 (its version is the one resolved for)
#   PYTHON=python3.12 bench/gpu_resolve.sh
# The machine's own pip configuration (extra indexes, find-links, global constraints) is left out
# (PIP_CONFIG_FILE=/dev/null, PIP_FIND_LINKS unset), so the answer is the registry's alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
report=$(mktemp -d)/report.json
trap 'rm -rf "$(dirname "$report")"' EXIT
if ! env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null "$PY" -m pip install \
    --disable-pip-version-check --dry-run --ignore-installed --quiet --report "$report" \
    -c constraints-gpu.txt -r requirements-gpu.txt >&2; then
  echo '{"resolved": false}'
  exit 1
fi
"$PY" - "$report" <<'PYEOF'
import json
import sys

report = json.load(open(sys.argv[1]))
got = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in report["install"]}
cuda = got.get("nvidia-cuda-runtime") or got.get("nvidia-cuda-runtime-cu12")
row = {k: got.get(k) for k in ("torch", "vllm", "transformers", "deepspeed", "torchvision", "accelerate", "peft")}
row |= {"python": report["environment"]["python_version"], "cuda_runtime": cuda, "packages": len(got)}
print(json.dumps({"resolved": True, **row}))
PYEOF
