#!/usr/bin/env bash
# The GPU figures of the throughput work, in one command on a lent CUDA machine (prepare with
# benchmarks/device_prepare.sh): the CUDA tests, eval_speed on the GPU, and a cold and a warm
# `synth evolve --bench vit-bench-101 --device cuda`, each step timed and limited so that one slow
# step leaves the others their time. Output goes to $OUT/device_check.log (and stdout).
#
# DEVICE, BENCH and EVOLVE_ARGS override the defaults, so the plumbing can be tried on a CPU first:
#     DEVICE=cpu BENCH=vit-digits EVOLVE_ARGS="--iterations 5" OUT=/tmp/dc bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-check}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:-vit-bench-101}
EVOLVE_ARGS=${EVOLVE_ARGS:-}
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
if ! python3 -c "import deap" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SYNTH_DATA="${SYNTH_DATA:-$PWD/.device/benchmarks}" SYNTH_CACHE="${SYNTH_CACHE:-/tmp/synth-cache}"
RUNS=$(mktemp -d)

step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, then print its wall time
    local name=$1 limit=$2 start
    shift 2
    echo "=== $name (limit ${limit}s)"
    start=$(date +%s.%N)
    timeout "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())"
step tests 90 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_bench_build.py -k "cuda"
step eval_speed 60 python3 benchmarks/eval_speed.py --device "$DEVICE" --batch 128 --archs 8
step "evolve, cold" 240 python3 -m synth evolve --bench "$BENCH" --device "$DEVICE" --out "$RUNS/cold" $EVOLVE_ARGS
step "evolve, warm" 150 python3 -m synth evolve --bench "$BENCH" --device "$DEVICE" --out "$RUNS/warm" $EVOLVE_ARGS
for run in cold warm; do
    [ -f "$RUNS/$run/run.json" ] && python3 - "$RUNS/$run/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[1], "device", r["device"], "formula", r["formula"], "search JCM", round(r["fitness"], 3),
      "timing", r.get("timing"))
PY
done
