"""Stacked learning-rate sweeps: the same numbers as separate fit() runs."""

import math

import numpy as np
import pytest

from minae import SGD, Adam, Autoencoder, fit
from minae.sweep import fit_stacked


def _group(backend="numpy", dtype="float64", lrs=(0.05, 0.01, 0.001), form="keras"):
    models = [Autoencoder(30, [12, 4, 12], seed=10 + k, dtype=dtype, backend=backend)
              for k in range(len(lrs))]
    return models, [Adam(lr, 0.9, 0.99, 1e-7, form) for lr in lrs]


@pytest.mark.parametrize("form", ["keras", "textbook"])
def test_stacked_training_equals_separate_runs(form, backend, rng):
    """On CuPy this is the GPU parity test of the stacked sweep (float64)."""
    x, xv = rng.uniform(size=(70, 30)), rng.uniform(size=(25, 30))
    seeds = [3, 4, 5]
    stacked, opts = _group(backend.name, form=form)
    histories = fit_stacked(stacked, opts, backend.asarray(x), backend.asarray(xv), epochs=3, batch_size=16,
                            seeds=seeds)
    separate, sep_opts = _group("numpy", form=form)
    for model, opt, seed, hist in zip(separate, sep_opts, seeds, histories):
        ref = fit(model, x, xv, epochs=3, batch_size=16, optimizer=opt, seed=seed, progress=False)
        np.testing.assert_allclose(hist.train_bce, ref.train_bce, rtol=1e-12)
        np.testing.assert_allclose(hist.val_bce, ref.val_bce, rtol=1e-12)
    for a, b in zip(separate, stacked):
        for p, q in zip(a.params, b.params):
            np.testing.assert_allclose(backend.to_host(q), p, rtol=1e-10, atol=1e-13)
    for ref_opt, opt in zip(sep_opts, opts):   # each optimizer leaves with its own moments
        assert opt.t == ref_opt.t
        for a, b in zip(ref_opt.m + ref_opt.v, opt.m + opt.v):
            np.testing.assert_allclose(backend.to_host(b), a, rtol=1e-9, atol=1e-15)


def test_float32_stacked_training_tracks_separate_runs(rng):
    x = rng.uniform(size=(64, 30)).astype(np.float32)
    stacked, opts = _group(dtype="float32")
    fit_stacked(stacked, opts, x, epochs=2, batch_size=16, seeds=[1, 2, 3])
    separate, sep_opts = _group(dtype="float32")
    for model, opt, seed, other in zip(separate, sep_opts, [1, 2, 3], stacked):
        fit(model, x, epochs=2, batch_size=16, optimizer=opt, seed=seed, progress=False)
        for p, q in zip(model.params, other.params):
            assert q.dtype == np.float32
            np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-6)


def test_a_diverging_member_is_recorded_and_the_others_go_on(rng):
    x, xv = rng.uniform(size=(64, 30)).astype(np.float32), rng.uniform(size=(16, 30)).astype(np.float32)
    models, opts = _group(dtype="float32", lrs=(1e30, 0.01))
    with np.errstate(over="ignore", invalid="ignore"):
        hist = fit_stacked(models, opts, x, xv, epochs=3, batch_size=16)
    assert hist[0].diverged_epoch == 1 and len(hist[0].val_bce) == 1
    assert hist[1].diverged_epoch is None and len(hist[1].val_bce) == 3
    assert all(math.isfinite(v) for v in hist[1].val_bce)


def test_stacking_refuses_mismatched_groups():
    a, b = Autoencoder(30, [12, 4, 12]), Autoencoder(30, [12, 5, 12])
    with pytest.raises(ValueError, match="share input_dim, hidden"):
        fit_stacked([a, b], [Adam(), Adam()], np.zeros((4, 30)))
    with pytest.raises(ValueError, match="learning rate only"):
        fit_stacked([a, Autoencoder(30, [12, 4, 12])], [Adam(beta2=0.99), Adam()], np.zeros((4, 30)))
    with pytest.raises(TypeError, match="Adam only"):
        fit_stacked([a], [SGD()], np.zeros((4, 30)))
    used = Adam()
    used.t = 3
    with pytest.raises(ValueError, match="not taken a step yet"):
        fit_stacked([a], [used], np.zeros((4, 30)))


def test_stacked_training_takes_one_models_data_shape(rng):
    models, opts = _group()
    with pytest.raises(ValueError, match=r"x_train must have shape \(N, 30\), got \(3, 8, 30\)"):
        fit_stacked(models, opts, rng.uniform(size=(3, 8, 30)), epochs=1)
