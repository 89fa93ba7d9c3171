"""The fused CuPy kernels against the reference path (GPU only; skips elsewhere)."""

import numpy as np
import pytest

from minae import Adam, Autoencoder, fit
from minae.backend import cupy_available, resolve_backend
from minae.train import make_fast_step

pytestmark = pytest.mark.skipif(not cupy_available(),
                                reason="CuPy with a usable CUDA GPU is not available here")


@pytest.mark.parametrize("form", ["keras", "textbook"])
def test_fused_step_matches_the_reference_in_float64(form, rng):
    gpu = resolve_backend("cupy")
    x = rng.uniform(size=(70, 50))
    ref = Autoencoder(50, [20, 6, 20], seed=4, dtype="float64")
    dev = Autoencoder(50, [20, 6, 20], seed=4, dtype="float64", backend=gpu)
    opt_ref, opt_dev = Adam(0.01, form=form), Adam(0.01, form=form)
    step = make_fast_step(dev, opt_dev, 32)
    assert type(step).__name__ == "CupyFastStep"
    for start in (0, 32, 64):   # includes a short batch
        loss_ref, grads = ref.loss(x[start:start + 32])
        opt_ref.step(ref.params, grads)
        loss_dev = step.step(gpu.asarray(x[start:start + 32]))
        assert float(loss_dev) == pytest.approx(float(loss_ref), rel=1e-12)
    for a, b in zip(ref.params, dev.params):
        np.testing.assert_allclose(gpu.to_host(b), a, rtol=1e-10, atol=1e-13)


def test_fused_kernels_keep_nan_so_divergence_is_seen(rng):
    gpu = resolve_backend("cupy")
    model = Autoencoder(50, [8], backend=gpu)
    x = rng.uniform(size=(64, 50)).astype(np.float32)
    model.params[0][...] = float("nan")
    hist = fit(model, gpu.asarray(x), epochs=2, batch_size=32, fast=True, progress=False)
    assert hist.diverged_epoch == 1


def test_gpu_fit_matches_cpu_fit_in_float64(rng):
    gpu = resolve_backend("cupy")
    x, xv = rng.uniform(size=(100, 50)), rng.uniform(size=(30, 50))
    cpu_model = Autoencoder(50, [20, 6, 20], seed=1, dtype="float64")
    gpu_model = Autoencoder(50, [20, 6, 20], seed=1, dtype="float64", backend=gpu)
    h_cpu = fit(cpu_model, x, xv, epochs=3, batch_size=32, seed=2, progress=False)
    h_gpu = fit(gpu_model, x, xv, epochs=3, batch_size=32, seed=2, progress=False, fast=True)
    np.testing.assert_allclose(h_gpu.val_bce, h_cpu.val_bce, rtol=1e-10)
