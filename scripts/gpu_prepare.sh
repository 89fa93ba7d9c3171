#!/usr/bin/env bash
# Prepare what a GPU check needs on a lent machine that has CuPy, PyTorch and
# Python 3.12 but no internet: the few pure-Python wheels minae's tests need,
# and the real data. Writes gpu-carry/ (git-ignored, about 35 MB), which the
# device tool carries along:  bash scripts/gpu_check.sh gpu-carry/data
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu-carry
rm -rf "$out" && mkdir -p "$out/wheels" "$out/data"
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$out/wheels" tqdm threadpoolctl pytest iniconfig pluggy packaging pygments
[ -d ../shared/data/mnist ] && cp -r ../shared/data/mnist "$out/data/mnist"
[ -d /usr/share/datasets/fashion-mnist ] && cp -r /usr/share/datasets/fashion-mnist "$out/data/fashion-mnist"
du -sh "$out"
