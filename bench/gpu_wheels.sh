#!/usr/bin/env bash
# The wheels the lent GPU machine lacks, into DIR (needs the package registry; run here, not there).
# That machine: Python 3.12, torch 2.11.0+cu130, transformers 5.17, accelerate 1.15, peft, no network,
# at most 64 MiB carried with the tree. echoink needs transformers 5.23 (5.17 fails its model tests,
# docs/scaling.md), PyAV, soundfile, soxr, typer and DeepSpeed (an sdist elsewhere: built into a wheel
# here, no ops compiled) with what those require beyond a torch install. vLLM never fits (228-321 MiB).
# bench/gpu_check.sh installs them --no-deps into a folder on PYTHONPATH, over the machine's own torch.
#   bench/gpu_wheels.sh wheels-gpu      # then: the tree + wheels-gpu, one JSON line with the sizes
# Exits non-zero when a download fails or the tree plus the wheels reach 60 MiB.
set -euo pipefail
DIR=${1:?usage: bench/gpu_wheels.sh DIR}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p "$DIR"
WHEELS=(
  transformers==5.23.0 huggingface-hub==2.4.0 tokenizers==0.23.3 safetensors==0.8.0 regex==2026.12.2
  av==18.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0
  typer==0.29.2 shellingham==1.5.4 annotated-doc==0.0.7
  hjson==3.1.0 ninja==1.13.2 py-cpuinfo==9.0.0 msgpack==1.2.4 einops==0.8.2
)  # the versions of .venv (make setup), for CPython 3.12 on x86-64 Linux. typer's rich (+ pygments,
#   markdown-it-py, mdurl: 1.7 MiB) stays out: typer imports it only when it is installed, and nothing
#   echoink runs needs it (python -X importtime: neither `import echoink.cli` nor a train error loads it).
PIP=(env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null "$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$DIR" "${WHEELS[@]}"
if ! ls "$DIR"/deepspeed-0.19.8-*.whl > /dev/null 2>&1; then
  "${PIP[@]}" download -q --no-deps --no-binary=:all: -d "$DIR/.sdist" deepspeed==0.19.8
  # Its setup.py imports torch when it can (to compile ops, none here: DS_BUILD_OPS=0): a pure wheel.
  DS_BUILD_OPS=0 "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$DIR" "$DIR"/.sdist/deepspeed-0.19.8.tar.gz
  rm -rf "$DIR/.sdist"
fi
wheels=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
"$PY" -c "import json, sys; w, t = int(sys.argv[1]), int(sys.argv[2]); M = 2**20
print(json.dumps({'wheels': int(sys.argv[3]), 'wheels_MiB': round(w / M, 1), 'tree_MiB': round(t / M, 1), 'total_MiB': round((w + t) / M, 1)}))
sys.exit(0 if w + t < 60 * M else 1)" "$wheels" "$tree" "$(ls "$DIR"/*.whl | wc -l)"
