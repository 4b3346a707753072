#!/usr/bin/env bash
# The GPU check, for the lent machine (one H100/H200, Python 3.12, torch 2.11.0+cu130, transformers 5.17,
# accelerate 1.15, peft; no network; 10 minutes a command, 15 in all). Carry the tree and the wheels
# bench/gpu_wheels.sh gathered (wheels-gpu/, under 60 MiB together); they go in --no-deps into a
# folder on PYTHONPATH, over the machine's own python and torch. Each stage (bench/gpu_check.py) runs in
# its own process under its own timeout and writes one JSON row to $OUT (ok / oom / error / skipped,
# with the message), so one failure never hides the next. Stage limits add up to 12 minutes.
#   bench/gpu_check.sh            # on the GPU: the 7B-size stages; rows in $OUT (default runs/gpu_check)
#   bench/gpu_check.sh --plan     # the same code at tiny size on this CPU (tests/test_bench_scripts.py)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu_check}
WHEELS=${WHEELS:-wheels-gpu}
size=7b
if [ "${1:-}" = "--plan" ]; then size=tiny; fi
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $size = 7b ] && ls "$WHEELS"/*.whl > /dev/null 2>&1; then
  if ! $PY -m pip install -q --no-deps --no-index --target "$work/site" "$WHEELS"/*.whl > "$OUT/wheels.log" 2>&1; then
    echo '{"stage": "wheels", "status": "error", "message": "pip install --no-deps failed; see wheels.log"}' | tee "$OUT/wheels.json"
  fi
fi
export PYTHONPATH="$work/site:$PWD/src:$PWD/bench:$PWD/tests" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# stage NAME SECONDS: its row, or one saying how it ended when the process could not write one.
stage() {
  local name=$1 limit=$2
  rm -f "$OUT/$name.json"
  timeout -k 10 "$limit" "$PY" bench/gpu_check.py "$name" --size $size --out "$OUT/$name.json" \
    --work "$work/$name" > "$OUT/$name.log" 2>&1
  local rc=$?
  if [ ! -s "$OUT/$name.json" ]; then
    local why="exited $rc: $(tail -n 1 "$OUT/$name.log" | tr -d '"\\' | cut -c1-240)"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timed out after ${limit} s"
    echo "{\"stage\": \"$name\", \"size\": \"$size\", \"status\": \"error\", \"message\": \"$why; see $name.log\"}" > "$OUT/$name.json"
  fi
  cat "$OUT/$name.json"
}
stage env 60
stage grpo_shared 150
stage grpo_repeat 150
stage lora 120
stage zero3 "$([ $size = tiny ] && echo 480 || echo 150)"  # a CPU compiles DeepSpeed's shm op once (minutes)
stage vllm 90
