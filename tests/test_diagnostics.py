"""Diagnostics recorded by fit, from the step the optimizer took: checked against hand computations."""

import json

import numpy as np
import pytest

from minae import Adam, Autoencoder, fit
from minae.diagnostics import epoch_diagnostics
from minae.train import train_step


def test_diagnostics_are_the_last_steps_gradients_and_update(rng):
    x = rng.uniform(size=(64, 30)).astype(np.float64)
    model, opt = Autoencoder(30, [12, 4, 12], seed=1, dtype="float64"), Adam(0.01)
    train_step(model, opt, x[:32])
    before = model.flat_params.copy()
    weights_before = [w.copy() for w in model.params[0::2]]
    train_step(model, opt, x[32:])
    d = epoch_diagnostics(model, before, x)
    for k, (w0, w1, dw) in enumerate(zip(weights_before, model.params[0::2], model.grads[0::2])):
        assert d["grad_norm"][k] == pytest.approx(np.linalg.norm(dw), rel=1e-12)
        assert d["update_ratio"][k] == pytest.approx(np.linalg.norm(w1 - w0) / np.linalg.norm(w0), rel=1e-12)
    h = x
    for k, dense in enumerate(model.dense[:-1]):   # each hidden layer's ReLU output, by hand
        h = np.maximum(h @ dense.W + dense.b, 0)
        assert d["dead_fraction"][k] == pytest.approx(np.mean(h.max(axis=0) <= 0))
    assert d["output_spread"] == pytest.approx(model.predict(x).std(axis=0).mean(), rel=1e-12)


def test_fit_records_one_entry_per_epoch_and_the_numbers_do_not_change_training(rng):
    x, xv = rng.uniform(size=(200, 30)).astype(np.float32), rng.uniform(size=(50, 30)).astype(np.float32)
    watched, plain = Autoencoder(30, [12, 4, 12], seed=2), Autoencoder(30, [12, 4, 12], seed=2)
    h = fit(watched, x, xv, epochs=3, batch_size=64, progress=False)
    h_plain = fit(plain, x, xv, epochs=3, batch_size=64, progress=False, diagnostics=False)
    assert len(h.diagnostics) == 3 and h_plain.diagnostics == []
    assert h.val_bce == h_plain.val_bce and all(a.tobytes() == b.tobytes()
                                                for a, b in zip(watched.params, plain.params))
    d = h.diagnostics[-1]
    assert len(d["grad_norm"]) == len(d["update_ratio"]) == 4 and len(d["dead_fraction"]) == 3
    json.dumps(h.as_dict())   # plain numbers, ready for results.json


def test_a_collapsing_run_shows_dead_units_and_big_updates(rng):
    x = rng.uniform(size=(512, 30)).astype(np.float32)
    h = fit(Autoencoder(30, [16, 8, 16], seed=0), x, x[:128], epochs=4, optimizer=Adam(0.5), progress=False)
    healthy = fit(Autoencoder(30, [16, 8, 16], seed=0), x, x[:128], epochs=4, optimizer=Adam(0.001),
                  progress=False)
    assert h.diagnostics[-1]["update_ratio"][0] > 10 * healthy.diagnostics[-1]["update_ratio"][0]
    assert max(h.diagnostics[-1]["dead_fraction"]) > 0.5 > max(healthy.diagnostics[-1]["dead_fraction"])


def test_a_stack_records_each_models_own_diagnostics(backend, rng):
    """On CuPy: the stack's parameter-major buffers and device-held learning rates."""
    from minae.sweep import fit_stacked

    x, xv = rng.uniform(size=(96, 30)), rng.uniform(size=(40, 30))
    models = [Autoencoder(30, [12, 4, 12], seed=s, dtype="float64", backend=backend) for s in (1, 2)]
    histories = fit_stacked(models, [Adam(0.01), Adam(0.001)], backend.asarray(x), backend.asarray(xv),
                            epochs=2, batch_size=32, seeds=[5, 6])
    for seed, lr, seed_shuffle, h in zip((1, 2), (0.01, 0.001), (5, 6), histories):
        alone = fit(Autoencoder(30, [12, 4, 12], seed=seed, dtype="float64"), x, xv, epochs=2, batch_size=32,
                    seed=seed_shuffle, optimizer=Adam(lr), progress=False)
        for d_stack, d_alone in zip(h.diagnostics, alone.diagnostics):
            for name in ("grad_norm", "update_ratio", "dead_fraction"):
                np.testing.assert_allclose(d_stack[name], d_alone[name], rtol=1e-9)
            assert d_stack["output_spread"] == pytest.approx(d_alone["output_spread"], rel=1e-9)
