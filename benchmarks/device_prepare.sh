#!/usr/bin/env bash
# Gathers, on this machine, what benchmarks/device_check.sh needs on a lent GPU machine, which
# reaches no network and receives only the repository: a copy of the ground-truth files
# (../shared/benchmarks does not travel) and wheels of the packages its image lacks (deap).
# Everything goes to .device/, which git ignores; pass it to the device tool as carry [".device"].
#
#     bash benchmarks/device_prepare.sh            # here, once
#     (device tool) run: bash benchmarks/device_check.sh   carry: [".device"]   timeout_s: 590
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device && mkdir -p .device/whl
cp -r "${SYNTH_SHARED:-../shared}/benchmarks" .device/benchmarks
# The device image has torch, timm, sympy, numpy, scipy, networkx, pyyaml, rich, scikit-learn,
# scikit-image and pillow (/work/.library/device/KINDS.md); deap is the one it lacks.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .device/whl "deap==1.4.3"
du -sh .device
