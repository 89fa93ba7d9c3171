"""Benchmark minae against PyTorch eager and the matmul bound.

    python scripts/bench.py                      # CPU: per-epoch times, grid wall time, memory
    python scripts/bench.py --backend cupy       # GPU: the same against PyTorch CUDA
    bash scripts/gpu_check.sh                    # GPU tests, this benchmark, the full grid on a GPU

Prints a table and writes bench-results/bench-<backend>.json. The logic lives
in minae.tools.bench.
"""

import argparse
import os
import platform
import sys
import time

from threadpoolctl import threadpool_info, threadpool_limits

from minae.backend import resolve_backend
from minae.data import load
from minae.grid import ORIGINAL_HIDDEN
from minae.tools import bench


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--require-full", action="store_true", help="fail instead of timing the bundled sample")
    p.add_argument("--limit-train", type=int, help="time on a subset (default: the whole training split)")
    p.add_argument("--threads", type=int, nargs="+", help="BLAS/torch threads per process "
                   "(default: 1 and the number of cores)")
    p.add_argument("--reps", type=int, default=5, help="timed epochs per contender (median reported)")
    p.add_argument("--grid-epochs", type=int, default=10, help="epochs per run in the grid timing")
    p.add_argument("--no-epochs", action="store_true", help="skip the per-epoch timings")
    p.add_argument("--no-grid", action="store_true")
    p.add_argument("--dask", action="store_true",
                   help="also time the grid with --scheduler local (needs minae[distributed])")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--out", default=None, help="JSON output (default bench-results/bench-<backend>.json)")
    args = p.parse_args()

    backend = resolve_backend(args.backend)
    cores = os.cpu_count() or 1
    ds = load(args.dataset, args.data_dir, limit_train=args.limit_train, require_full=args.require_full)
    machine = {"platform": platform.platform(), "python": sys.version.split()[0], "cores": cores,
               "cpu": platform.processor(), "blas": [
                   {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                   for i in threadpool_info()],
               "backend": backend.reason or backend.name,
               "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    torch, torch_skipped = bench.pytorch(args.backend)
    if torch is not None:
        machine["torch"] = torch.__version__
        if args.backend == "cupy":
            machine["gpu"] = torch.cuda.get_device_name(0)
    else:
        machine["torch_skipped"] = torch_skipped
    print(f"# minae benchmark, {time.strftime('%Y-%m-%d %H:%M')}; {ds.describe()}")
    print(f"# machine: {machine}")
    if torch_skipped:
        print(f"# {torch_skipped}")
    payload = {"machine": machine, "dataset": ds.describe(), "n_train": len(ds.x_train),
               "n_val": len(ds.x_val), "per_epoch": [], "grid": None, "memory": None}
    out = args.out or f"bench-results/bench-{args.backend}.json"
    # Written after every section, so a run stopped part way (gpu_check.sh's
    # stage timeout) still leaves what it measured.
    bench.write_json(out, payload)
    threads = args.threads or ([1] if args.backend == "cupy" else sorted({1, cores}))
    print(f"\n## seconds per epoch (median of {args.reps}, interleaved; "
          "one epoch = train + validation pass)")
    for t in [] if args.no_epochs else threads:
        with threadpool_limits(t):
            payload["per_epoch"] += bench.per_epoch(ds.x_train, ds.x_val, ORIGINAL_HIDDEN, args.backend,
                                                    t, args.reps)
        bench.write_json(out, payload)
    if not args.no_grid:
        print("\n## the nine-model grid of one dataset")
        jobs = 1 if args.backend == "cupy" else cores
        engines = ("single", "fused", "stacked") if args.backend == "cupy" else ("single", "stacked")
        payload["grid"] = bench.grid_wall(ds, args.grid_epochs, jobs, args.backend, engines=engines,
                                          dask=args.dask)
        bench.write_json(out, payload)
    if not args.no_memory and args.backend == "numpy":
        print("\n## memory")
        payload["memory"] = bench.memory_of_grid(args.data_dir, args.dataset, 1, cores)
        bench.write_json(out, payload)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
