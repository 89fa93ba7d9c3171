#!/usr/bin/env bash
# One prepared GPU check, sized for one 8-minute device call (the tool allows 10;
# the rest is margin for its start and copying):
#   1. the GPU tests (CuPy cases, fused-kernel parity)
#   2. scripts/bench.py --backend cupy
#   3. the original grid (18 runs) at --epochs 20, timed (scale x5 for 100 epochs)
# Each stage runs under its own timeout (LIMITS below), so one hang costs only
# its own stage: the later stages still run and every log still reaches $OUT.
#
#   bash scripts/gpu_check.sh [DATA_DIR]     the check, on the GPU machine
#   bash scripts/gpu_check.sh --preflight    no GPU needed: install the carried wheels,
#                                            import minae, collect the GPU tests, stop
#
# DATA_DIR (optional) holds mnist/ and fashion-mnist/ IDX folders (gpu-carry/data
# after scripts/gpu_prepare.sh); without it the bundled sample is used.
# Environment:
#   OUT                      where logs and results go (default bench-results/). The device
#                            tool returns at most 8 files; the check writes at most 7, at the
#                            top of OUT: check.log tests.log bench.log grid.log bench-cupy.json
#                            results.json REPORT.md
#   GPU_CARRY                the folder gpu_prepare.sh wrote (default gpu-carry); the wheels
#                            in its wheels/ are installed first
#   GPU_CHECK_STAGE_TIMEOUT  seconds: replaces every stage's limit (tests use a tiny one)
#   GPU_CHECK_CPU_DRY_RUN    "yes" runs the stages on NumPy without the CuPy gate, to test
#                            this script on a machine with no GPU; refused where a GPU is seen
# Exits non-zero if minae cannot be imported, if CuPy or the GPU is unusable, if a GPU
# test skips for want of a GPU, or if any stage fails or times out.
set -uo pipefail
cd "$(dirname "$0")/.."

# The test files stage 1 runs. This is their one list: --preflight collects
# exactly these (tests/test_gpu_check.py runs it in a venv like the device's).
GPU_TESTS=(tests/test_kernels.py tests/test_sweep.py tests/test_model.py tests/test_backend.py
           tests/test_train.py tests/test_diagnostics.py)

# Seconds each step may take: preflight and gate twice each (wheels, imports;
# nvidia-smi, CuPy), then the three stages. The worst case sums to 480 s, one
# 8-minute call. Expected: tests ~1 min, bench ~2 min, grid ~1-2 min.
declare -A LIMITS=([preflight]=20 [gate]=30 [tests]=80 [bench]=180 [grid]=120)

preflight_only=no
if [ "${1:-}" = --preflight ]; then
    preflight_only=yes
    shift
fi
data=()
[ $# -ge 1 ] && data=(--data-dir "$1")

out="${OUT:-bench-results}"
mkdir -p "$out"
summary="$out/check.log"
: >"$summary"
work=$(mktemp -d "${TMPDIR:-/tmp}/minae-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$summary"; }
fail() { echo "gpu_check: $*" | tee -a "$summary" >&2; exit 1; }

if [ -n "${GPU_CHECK_STAGE_TIMEOUT:-}" ]; then
    [[ $GPU_CHECK_STAGE_TIMEOUT =~ ^[0-9]+$ && $GPU_CHECK_STAGE_TIMEOUT -gt 0 ]] \
        || fail "GPU_CHECK_STAGE_TIMEOUT must be whole seconds > 0, got '$GPU_CHECK_STAGE_TIMEOUT'"
    for step in "${!LIMITS[@]}"; do LIMITS[$step]=$GPU_CHECK_STAGE_TIMEOUT; done
fi

backend=cupy
case "${GPU_CHECK_CPU_DRY_RUN:-}" in
    "") ;;
    yes)
        # Never on the device: the stages would then check NumPy and call it a GPU check.
        if [ -e /dev/nvidiactl ] || { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }
        then
            fail "GPU_CHECK_CPU_DRY_RUN=yes is refused on a machine with a GPU; unset it to check the GPU"
        fi
        backend=numpy
        say "gpu_check: CPU DRY RUN (GPU_CHECK_CPU_DRY_RUN=yes): the stages run on NumPy; no GPU is checked"
        ;;
    *) fail "GPU_CHECK_CPU_DRY_RUN must be unset, or yes for a dry run on a machine with no GPU" ;;
esac

# The wheels gpu_prepare.sh fetched: only what the check imports that the
# device lacks, so nothing here shadows the device's own packages (PYTHONPATH
# comes before site-packages).
carry="${GPU_CARRY:-gpu-carry}"
wheels=("$carry"/wheels/*.whl)
if [ -e "${wheels[0]}" ]; then
    PIP_ROOT_USER_ACTION=ignore timeout -k 5 "${LIMITS[preflight]}" python3 -m pip install -q --no-index \
        --no-deps --no-compile --no-cache-dir --target "$work/site" "${wheels[@]}" 2>&1 | tee -a "$summary" \
        || fail "could not install the wheels in $carry/wheels (see above)"
    export PYTHONPATH="$PYTHONPATH:$work/site"
    say "gpu_check: installed ${#wheels[@]} carried wheel(s): $(cd "$carry/wheels" && echo *.whl)"
else
    say "gpu_check: no wheels in $carry/wheels (bash scripts/gpu_prepare.sh writes them)"
fi

# Every module the stages import, before any device time goes on them.
modules="minae minae.data minae.grid minae.kernels minae.tools.bench"
timeout -k 5 "${LIMITS[preflight]}" python3 -c "import ${modules// /, }" 2>&1 | tee -a "$summary" \
    || fail "minae cannot be imported with this machine's packages (see above); nothing was checked." \
            "Did gpu_prepare.sh run, and does the call carry $carry?"
say "gpu_check: imported $modules"

if [ "$preflight_only" = yes ]; then
    say "gpu_check: collecting ${GPU_TESTS[*]}"
    timeout -k 5 "${LIMITS[preflight]}" python3 -m pytest --collect-only -q -p no:cacheprovider \
        "${GPU_TESTS[@]}" 2>&1 | tee -a "$summary"
    exit "${PIPESTATUS[0]}"
fi

if [ "$backend" = cupy ]; then
    timeout -k 5 "${LIMITS[gate]}" nvidia-smi --query-gpu=name,driver_version,memory.total \
        --format=csv,noheader 2>&1 | tee -a "$summary"
    timeout -k 5 "${LIMITS[gate]}" python3 -c \
        "from minae.backend import resolve_backend; print(resolve_backend('cupy').reason)" 2>&1 \
        | tee -a "$summary" || fail "CuPy or the GPU is unusable (see above); nothing was checked"
fi

declare -A rc
# stage NAME LOG COMMAND...: COMMAND under the stage's timeout, its output shown and kept in $out/LOG.
stage() {
    local name=$1 log=$2
    shift 2
    say "== $name (at most ${LIMITS[$name]} s)"
    timeout -k 10 "${LIMITS[$name]}" "$@" 2>&1 | tee "$out/$log"
    rc[$name]=${PIPESTATUS[0]}
    # timeout exits 124 when its TERM ended the command, 137 when it had to KILL.
    if [ "${rc[$name]}" -eq 124 ] || [ "${rc[$name]}" -eq 137 ]; then
        echo | tee -a "$out/$log"   # the stopped command's last line may lack its newline
        echo "gpu_check: stage $name TIMED OUT after ${LIMITS[$name]} s" | tee -a "$out/$log" "$summary" >&2
    fi
}

stage tests tests.log python3 -m pytest -q -rs -p no:cacheprovider "${GPU_TESTS[@]}"
# conftest's reason for a CuPy case it skips: on the GPU machine, a failure.
if [ "$backend" = cupy ] && grep -q "CuPy with a usable CUDA GPU is not available" "$out/tests.log"; then
    say "gpu_check: GPU tests skipped on a machine that should have a GPU: a failure here"
    [ "${rc[tests]}" -eq 0 ] && rc[tests]=1
fi

stage bench bench.log python3 scripts/bench.py --backend "$backend" --reps 3 --grid-epochs 5 "${data[@]}" \
    --out "$work/bench-$backend.json"
# bench.py rewrites its JSON after each section: a stage stopped part way leaves what it measured.
cp "$work/bench-$backend.json" "$out/" 2>/dev/null || say "gpu_check: the benchmark wrote no JSON"

start=$SECONDS
stage grid grid.log python3 scripts/grid.py --backend "$backend" --engine stacked --epochs 20 --no-plots \
    --quiet --fresh --out "$work/grid" "${data[@]}"
if [ "${rc[grid]}" -eq 0 ]; then
    say "grid wall time $((SECONDS - start)) s (18 runs x 20 epochs, stacked engine, $backend)"
fi
# results.json holds every finished run, so a grid stopped part way still reports them.
for f in results.json REPORT.md; do
    cp "$work/grid/$f" "$out/" 2>/dev/null || say "gpu_check: the grid wrote no $f"
done

say "== exit codes: tests ${rc[tests]}, bench ${rc[bench]}, grid ${rc[grid]} (124 or 137: timed out)"
[ "$backend" = numpy ] && say "gpu_check: CPU DRY RUN: no GPU was checked"
[ "${rc[tests]}" -eq 0 ] && [ "${rc[bench]}" -eq 0 ] && [ "${rc[grid]}" -eq 0 ]
