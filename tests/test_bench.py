"""The benchmark's machinery (not its timings: those belong in scripts/bench.py's output)."""

import sys

import numpy as np

from minae.tools import bench


def test_interleave_runs_contenders_in_turn_after_warmup():
    calls = []
    contenders = {name: (lambda name=name: calls.append(name) or 1.0) for name in "abc"}
    times = bench.interleave(contenders, reps=2, warmup=1)
    assert calls == list("abc") * 3 and times == {n: [1.0, 1.0] for n in "abc"}


def test_every_contender_runs_one_epoch(rng):
    x = rng.uniform(size=(300, 20)).astype(np.float32)
    runs = [bench.minae_epoch((8, 4, 8), x, x[:50], "numpy"),
            bench.minae_epoch((8, 4, 8), x, x[:50], "numpy", step="plain"),
            bench.matmul_epoch((8, 4, 8), 300, 20, "numpy")]
    if bench._torch() is not None:
        runs.append(bench.torch_epoch((8, 4, 8), x, x[:50]))
    assert all(run() > 0 for run in runs)


def test_peak_memory_sums_a_process_tree():
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(0.5)'])"
    mib, seconds, rc = bench.peak_memory([sys.executable, "-c", code], interval=0.02)
    assert rc == 0 and seconds > 0.4 and mib > 5   # two Python interpreters at least
