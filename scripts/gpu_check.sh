#!/usr/bin/env bash
# One prepared GPU check: the GPU tests, then the GPU benchmark.
#
#   bash scripts/gpu_check.sh [DATA_DIR]
#
# DATA_DIR (optional) holds mnist/ and fashion-mnist/ IDX folders; without it
# the benchmark falls back to the bundled sample. Output goes to stdout and to
# ${OUT:-bench-results}/. Run scripts/gpu_prepare.sh first (on a machine with
# the package registries) and carry gpu-carry/ along.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
data=()
[ $# -ge 1 ] && data=(--data-dir "$1")

# Install the pure-Python wheels scripts/gpu_prepare.sh fetched, for whatever is missing.
for mod in tqdm threadpoolctl pytest; do
    python -c "import $mod" 2>/dev/null || python -m pip install -q --no-index --no-deps \
        --find-links gpu-carry/wheels tqdm threadpoolctl pytest iniconfig pluggy packaging pygments
done

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import cupy, sys; print('cupy', cupy.__version__, 'python', sys.version.split()[0])"

echo "== GPU tests"
python -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_fast.py tests/test_sweep.py \
    tests/test_model.py tests/test_backend.py tests/test_train.py 2>&1 | tail -n 25
tests_rc=${PIPESTATUS[0]}

echo "== GPU benchmark"
python scripts/bench.py --backend cupy --reps 3 --grid-epochs 5 "${data[@]}" \
    --out "$out/bench-cupy.json" 2>&1 | tail -n 40

echo "== full original grid on the GPU (18 runs x 100 epochs), stacked engine"
start=$(date +%s.%N)
python scripts/grid.py --backend cupy --engine stacked --no-plots --quiet --fresh --out "$out/grid-gpu" \
    "${data[@]}" && python -c "import time,sys; print(f'full grid wall time {time.time()-float(sys.argv[1]):.1f} s')" "$start"
exit "$tests_rc"
