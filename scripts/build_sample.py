"""Build the bundled sample in minae/data/sample/ from the real dataset files.

    python scripts/build_sample.py --mnist-dir DIR/mnist \
        --fashion-dir /usr/share/datasets/fashion-mnist

(DIR/mnist: a folder with the four files of the complete MNIST.)

For each dataset it keeps a seeded random 5,000 training and 1,000 test
images (uint8, unchanged) and writes them as IDX .gz files with a fixed gzip
timestamp, so the same inputs always give the same bytes.
"""

import argparse
from pathlib import Path

import numpy as np

from minae.data.idx import write_idx
from minae.data.loading import SAMPLE_ROOT, find_files, read_files
from minae.data.registry import FILENAMES, get_info

LICENSES = """# The bundled sample: licences and attribution

These folders hold small real subsets (5,000 training + 1,000 test images
each, chosen with a fixed seed by `scripts/build_sample.py`) of:

- **MNIST** (`mnist/`), by Yann LeCun, Corinna Cortes and Christopher J.C.
  Burges, licensed under Creative Commons Attribution-Share Alike 3.0
  (CC BY-SA 3.0). The subset is a derivative work under the same licence.
- **Fashion-MNIST** (`fashion-mnist/`), by Han Xiao, Kashif Rasul and Roland
  Vollgraf (Zalando Research), MIT License, Copyright (c) 2017 Zalando SE.

They exist so that minae runs, and its tests pass, with no data anywhere and
no network. Results on them are not comparable with the full datasets, and
minae says so loudly whenever it falls back to them.
"""


def build(name, src, n_train, n_test, seed, out_root=SAMPLE_ROOT):
    paths = find_files(src, name)
    if paths is None:
        raise SystemExit(f"{src} does not hold the four IDX files of {name}")
    arrays = read_files(paths, name)[0]
    rng = np.random.default_rng(seed)
    out = Path(out_root) / name
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        keep = np.sort(rng.choice(len(images), size=n, replace=False))
        write_idx(out / FILENAMES[f"{split}_images"], images[keep])
        write_idx(out / FILENAMES[f"{split}_labels"], labels[keep])
    print(f"{get_info(name).title}: {n_train} train + {n_test} test images -> {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, required=True, help="the complete MNIST's four files")
    parser.add_argument("--fashion-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    build("mnist", args.mnist_dir, args.n_train, args.n_test, args.seed)
    build("fashion-mnist", args.fashion_dir, args.n_train, args.n_test, args.seed)
    (SAMPLE_ROOT / "LICENSES.md").write_text(LICENSES)


if __name__ == "__main__":
    main()
