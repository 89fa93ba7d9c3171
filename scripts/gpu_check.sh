#!/usr/bin/env bash
# One prepared GPU check, sized for one 10-minute device call with room for a rerun:
#   1. the GPU tests (CuPy cases, fused-kernel parity)    ~1 min
#   2. scripts/bench.py --backend cupy                    ~3 min
#   3. the original grid (18 runs) at --epochs 20, timed  ~1-3 min (scale x5 for 100 epochs)
#
#   bash scripts/gpu_check.sh [DATA_DIR]
#
# DATA_DIR (optional) holds mnist/ and fashion-mnist/ IDX folders (gpu-carry/data
# after scripts/gpu_prepare.sh); without it the bundled sample is used. Logs and
# the key results go to the top of ${OUT:-bench-results}/ (the device tool returns
# at most 8 files). Exits non-zero if CuPy or the GPU is unusable, if a GPU test
# skips for want of a GPU, or if any stage fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data=()
[ $# -ge 1 ] && data=(--data-dir "$1")

# The pure-Python wheels scripts/gpu_prepare.sh fetched, only for what is missing there.
missing=()
python3 -c "import tqdm" 2>/dev/null || missing+=(tqdm)
python3 -c "import threadpoolctl" 2>/dev/null || missing+=(threadpoolctl)
python3 -c "import pytest" 2>/dev/null || missing+=(pytest iniconfig pluggy packaging pygments)
if [ ${#missing[@]} -gt 0 ]; then
    python3 -m pip install -q --no-index --no-deps --find-links gpu-carry/wheels --target /tmp/minae-site \
        "${missing[@]}" || { echo "gpu_check: could not install ${missing[*]} from gpu-carry/wheels" >&2; exit 1; }
    export PYTHONPATH="$PYTHONPATH:/tmp/minae-site"
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if ! python3 -c "from minae.backend import resolve_backend; print(resolve_backend('cupy').reason)"; then
    echo "gpu_check: CuPy or the GPU is unusable (see above); nothing was checked" >&2
    exit 1
fi

echo "== 1. GPU tests"
python3 -m pytest -q -rs -p no:cacheprovider tests/test_kernels.py tests/test_sweep.py tests/test_model.py \
    tests/test_backend.py tests/test_train.py tests/test_one_math.py 2>&1 | tee "$out/tests.log"
tests_rc=${PIPESTATUS[0]}
if grep -q "CuPy with a usable CUDA GPU is not available" "$out/tests.log"; then
    echo "gpu_check: GPU tests skipped on a machine that should have a GPU: a failure here" >&2
    tests_rc=1
fi

echo "== 2. GPU benchmark"
python3 scripts/bench.py --backend cupy --reps 3 --grid-epochs 5 "${data[@]}" \
    --out "$out/bench-cupy.json" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}

echo "== 3. the original grid on the GPU (18 runs x 20 epochs), stacked engine, timed"
start=$(date +%s.%N)
python3 scripts/grid.py --backend cupy --engine stacked --epochs 20 --no-plots --quiet --fresh \
    --out /tmp/minae-grid-gpu "${data[@]}" 2>&1 | tee "$out/grid.log"
grid_rc=${PIPESTATUS[0]}
python3 -c "import time, sys; print(f'grid wall time {time.time() - float(sys.argv[1]):.1f} s (20 epochs)')" \
    "$start" | tee -a "$out/grid.log"
for f in results.json ranking.md REPORT.md; do
    cp /tmp/minae-grid-gpu/$f "$out/" 2>/dev/null || echo "gpu_check: the grid wrote no $f" >&2
done

echo "== exit codes: tests $tests_rc, bench $bench_rc, grid $grid_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$grid_rc" -eq 0 ]
