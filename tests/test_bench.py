"""The benchmark's machinery (not its timings: those belong in scripts/bench.py's output)."""

import dataclasses
import sys
import types

import numpy as np
import pytest

from minae.grid import GridConfig
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
    if bench.pytorch("numpy")[0] is not None:
        runs.append(bench.torch_epoch((8, 4, 8), x, x[:50]))
    assert all(run() > 0 for run in runs)


def test_peak_memory_sums_a_process_tree():
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(0.5)'])"
    mib, seconds, rc = bench.peak_memory([sys.executable, "-c", code], interval=0.02)
    assert rc == 0 and seconds > 0.4 and mib > 5   # two Python interpreters at least


# Settings no default of GridConfig has, so a contender that restates the
# grid's values as literals instead of reading them would show here.
OTHER_GRID = dict(lrs=(0.02, 0.003), beta1=0.8, beta2=0.95, eps=1e-5, adam_form="textbook")


def _other_grid_config(monkeypatch):
    monkeypatch.setattr(bench, "GridConfig", lambda: dataclasses.replace(GridConfig(), **OTHER_GRID))


def test_minae_contenders_step_the_adam_the_grid_runs(monkeypatch, rng):
    _other_grid_config(monkeypatch)
    made = []

    class RecordingAdam(bench.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(bench, "Adam", RecordingAdam)
    x = rng.uniform(size=(64, 12)).astype(np.float32)
    bench.minae_epoch((6, 3, 6), x, x[:16], "numpy")()
    bench.minae_epoch((6, 3, 6), x, x[:16], "numpy", step="plain")()
    settings = [(o.lr, o.beta1, o.beta2, o.eps, o.form) for o in made]
    assert settings == [(0.003, 0.8, 0.95, 1e-5, "textbook")] * 2


def test_pytorch_steps_the_grids_betas_and_eps(monkeypatch, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    _other_grid_config(monkeypatch)
    made = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            made.append(kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    x = rng.uniform(size=(64, 12)).astype(np.float32)
    bench.torch_epoch((6, 3, 6), x, x[:16])()
    assert made == [dict(lr=0.003, betas=(0.8, 0.95), eps=1e-5)]


def _fake_torch(cuda):
    cuda_module = types.SimpleNamespace(is_available=lambda: cuda)
    return types.SimpleNamespace(__version__="9.9+fake", cuda=cuda_module)


def test_the_pytorch_cuda_comparison_is_skipped_with_a_reason_without_cuda(monkeypatch):
    fake = _fake_torch(cuda=False)
    monkeypatch.setitem(sys.modules, "torch", fake)
    torch, why = bench.pytorch("cupy")
    assert torch is None and "9.9+fake" in why and "torch.cuda.is_available() is False" in why
    assert bench.pytorch("numpy") == (fake, None)          # the CPU comparison needs no CUDA


def test_pytorch_is_compared_on_cuda_where_it_has_cuda(monkeypatch):
    fake = _fake_torch(cuda=True)
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert bench.pytorch("cupy") == (fake, None) and bench.torch_device("cupy") == "cuda"


def test_without_pytorch_the_comparison_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)         # import torch then raises ImportError
    for backend in ("numpy", "cupy"):
        torch, why = bench.pytorch(backend)
        assert torch is None and "not installed" in why
