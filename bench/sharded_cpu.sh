#!/usr/bin/env bash
# Sharded training without a GPU: the tiny recipe (configs/tiny_cpu.yaml) on 2 CPU processes under
# DeepSpeed ZeRO-3 (accelerate + DeepSpeed's CPU accelerator + gloo), the engine the paper's 8-GPU
# launch uses (configs/accelerate/deepspeed_zero3.yaml), through the same trainer code.
#
#   bench/sharded_cpu.sh OUT_DIR [--set k=v ...] [any other `echoink train` flag: --resume,
#                        --allow-config-change, --force, --debug ...]
#
# Prepares the recipe's benchmark (runs/bench) and tiny model (runs/tiny-model) first when they are
# missing and not overridden with --set data.train_path=... / model.path=.... The last line printed is
# JSON: engine, processes, steps, seconds, run_dir (and final_dir once final/ is written).
set -euo pipefail
if [ $# -lt 1 ] || [[ $1 == -* ]]; then
  echo "usage: bench/sharded_cpu.sh OUT_DIR [--set k=v ...] [echoink train flags]" >&2
  exit 2
fi
out=$1
shift
extra=()
own_data=0 own_model=0
while [ $# -gt 0 ]; do
  case $1 in
    --set)
      [ $# -ge 2 ] || { echo "bench/sharded_cpu.sh: --set needs k=v" >&2; exit 2; }
      case $2 in data.train_path=*) own_data=1 ;; model.path=*) own_model=1 ;; esac
      extra+=(--set "$2"); shift 2 ;;
    *) extra+=("$1"); shift ;;  # every other `echoink train` flag as given: train itself names a wrong one
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"  # the recipe's paths and the DeepSpeed config path are relative to the repository
py=${PYTHON:-$root/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DS_ACCELERATOR=cpu PYTHONPATH=$root/src${PYTHONPATH:+:$PYTHONPATH}
if [ $own_data = 0 ] && [ ! -f runs/bench/train.json ]; then
  "$py" -m echoink data synth --out runs/bench --seed 0 --train 2000 --val 200 --test 1000 --difficulty easy
fi
if [ $own_model = 0 ] && [ ! -f runs/tiny-model/config.json ]; then
  "$py" -m echoink model tiny --out runs/tiny-model
fi
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$(date +%s.%N)
"$py" -m accelerate.commands.launch --config_file configs/accelerate/deepspeed_zero3_cpu.yaml \
  --main_process_port "$port" -m echoink train configs/tiny_cpu.yaml \
  --set "train.output_dir=$out" "${extra[@]}"
"$py" - "$out" "$start" <<'PY'
import json, sys, time
from pathlib import Path

out, start = Path(sys.argv[1]), float(sys.argv[2])
launch = json.loads((out / "launch.json").read_text())
rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
report = {**launch, "steps": rows[-1]["step"] if rows else 0, "seconds": round(time.time() - start, 1),
          "run_dir": str(out)}
if (out / "final" / "config.json").exists():
    report["final_dir"] = str(out / "final")
print(json.dumps(report))
PY
