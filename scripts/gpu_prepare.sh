#!/usr/bin/env bash
# Prepare what a GPU check needs on a lent machine that has CuPy, PyTorch and
# Python 3.12 but no internet: the few pure-Python wheels minae's tests need,
# and the real data. Writes gpu-carry/ (git-ignored, about 35 MB), which the
# device tool carries along:  bash scripts/gpu_check.sh gpu-carry/data
set -euo pipefail
cd "$(dirname "$0")/.."
mnist=${MNIST_DIR:-../shared/data/mnist}
fashion=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
for dir in "$mnist" "$fashion"; do
    if [ ! -d "$dir" ]; then
        echo "gpu_prepare: no data folder at $dir; set MNIST_DIR / FASHION_DIR, or for Fashion-MNIST" \
             "run apt-get install dataset-fashion-mnist" >&2
        exit 1
    fi
done
out=gpu-carry
rm -rf "$out" && mkdir -p "$out/wheels" "$out/data"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$out/wheels" tqdm threadpoolctl pytest iniconfig pluggy packaging pygments
cp -r "$mnist" "$out/data/mnist"
cp -r "$fashion" "$out/data/fashion-mnist"
du -sh "$out"
