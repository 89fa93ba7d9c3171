#!/usr/bin/env bash
# Prepare, here, what scripts/gpu_check.sh needs on the lent GPU machine, which
# has Python 3.12, CuPy, PyTorch and no internet: the wheels of what the check
# imports that the machine lacks, and the real data. Writes gpu-carry/ (git-
# ignored, about 30 MB), which the device call carries along:
#
#   bash scripts/gpu_prepare.sh                 wheels and data
#   bash scripts/gpu_prepare.sh --wheels-only   wheels only (tests/test_gpu_check.py)
#   then, on the device:  bash scripts/gpu_check.sh gpu-carry/data
#
# Environment: GPU_CARRY (the folder to write, default gpu-carry), PYTHON_VERSION
# (the wheels' Python, default 3.12: the device's), MNIST_DIR, FASHION_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the check imports that the device lacks. The device has numpy, scipy,
# matplotlib, tqdm, threadpoolctl, pytest, torch, cupy-cuda13x and tensorboard
# (the device README's KINDS.md); the three stages import minae, its test files
# and their conftest, scripts/bench.py and scripts/grid.py, which need only those
# and, in tests/test_backend.py, array-api-strict (pure Python; numpy is its only
# need): without it the array API namespace tests skip.
# Not carried, on purpose: pooch (imported only where a download starts; the
# device has no internet), dask/distributed (only with --scheduler), tensorboardX
# (only with --tensorboard). The check must run without them, and
# tests/test_gpu_check.py proves that it does.
WHEELS=(array-api-strict)

wheels_only=no
[ "${1:-}" = --wheels-only ] && wheels_only=yes
out=${GPU_CARRY:-gpu-carry}
python_version=${PYTHON_VERSION:-3.12}
# By default, where minae's own download puts MNIST (its cache) and where Debian's
# dataset-fashion-mnist puts Fashion-MNIST; name other folders with these two.
mnist=${MNIST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/minae/mnist}
fashion=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
if [ "$wheels_only" = no ]; then
    for dir in "$mnist" "$fashion"; do
        if [ ! -d "$dir" ]; then
            echo "gpu_prepare: no data folder at $dir; set MNIST_DIR / FASHION_DIR, or for Fashion-MNIST" \
                 "run apt-get install dataset-fashion-mnist" >&2
            exit 1
        fi
    done
fi

rm -rf "$out" && mkdir -p "$out/wheels"
# Binary wheels only, for CPython on x86-64 Linux (the device), so nothing builds there.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$out/wheels" "${WHEELS[@]}"
ls "$out/wheels"

if [ "$wheels_only" = no ]; then
    mkdir -p "$out/data"
    cp -r "$mnist" "$out/data/mnist"
    cp -r "$fashion" "$out/data/fashion-mnist"
    # The check names this folder, so minae will not fall back to the sample or a
    # download there: prove here that it holds both complete datasets.
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import sys
from minae.data import load
for name in ('mnist', 'fashion-mnist'):
    print(load(name, sys.argv[1], require_full=True, allow_download=False).describe())
" "$out/data"
fi
du -sh "$out"
