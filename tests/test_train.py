"""fit and evaluate: exact set-level BCE, histories, divergence, determinism."""

import math

import numpy as np
import pytest

from minae import Autoencoder, evaluate, fit
from minae.losses import bce_with_logits_loss
from minae.optim import Adam


def _data(rng, n=70, d=12):
    return rng.uniform(size=(n, d)).astype(np.float32)


def test_evaluate_weights_the_short_last_batch_exactly(rng):
    model = Autoencoder(12, [5], dtype="float64")
    x = rng.uniform(size=(70, 12))
    whole = float(bce_with_logits_loss(model.forward(x), x))
    assert evaluate(model, x, batch_size=32) == pytest.approx(whole, rel=1e-14)   # 32 + 32 + 6
    naive = np.mean([float(bce_with_logits_loss(model.forward(x[i:i + 32]), x[i:i + 32]))
                     for i in range(0, 70, 32)])
    assert abs(naive - whole) > 1e-6   # the unweighted mean of batch means would be wrong


def test_fit_records_history_and_learns(rng):
    x, xv = _data(rng), _data(rng, 30)
    model = Autoencoder(12, [8, 4, 8], seed=1)
    before = evaluate(model, xv)
    hist = fit(model, x, xv, epochs=30, batch_size=16, optimizer=Adam(0.01), progress=False)
    assert len(hist.train_bce) == len(hist.val_bce) == len(hist.epoch_seconds) == 30
    assert not hist.diverged
    assert hist.val_bce[-1] == pytest.approx(evaluate(model, xv), rel=1e-6)
    assert hist.val_bce[-1] < before and hist.train_bce[-1] < hist.train_bce[0]


def test_train_bce_is_the_sample_weighted_mean_of_batch_losses(rng):
    """Replay fit's first epoch by hand with the same shuffle and optimizer."""
    x = _data(rng, 37)
    model, replay = Autoencoder(12, [6], seed=3), Autoencoder(12, [6], seed=3)
    hist = fit(model, x, epochs=1, batch_size=10, seed=9, progress=False)
    order = np.random.default_rng(9).permutation(37)
    opt, total = Adam(), 0.0
    for start in range(0, 37, 10):
        xb = x[order[start:start + 10]]
        loss, grads = replay.loss(xb)
        opt.step(replay.params, grads)
        total += float(loss) * len(xb)
    assert hist.train_bce[0] == pytest.approx(total / 37, rel=1e-6)
    for a, b in zip(model.params, replay.params):
        assert a.tobytes() == b.tobytes()


def test_fit_is_bitwise_reproducible_with_the_same_seed(rng):
    x = _data(rng)
    runs = []
    for _ in range(2):
        model = Autoencoder(12, [6, 3, 6], seed=4)
        fit(model, x, epochs=3, batch_size=16, seed=5, progress=False)
        runs.append(b"".join(p.tobytes() for p in model.params))
    assert runs[0] == runs[1]


def test_divergence_stops_training_and_says_when(rng):
    x = _data(rng)
    model = Autoencoder(12, [6], seed=0)
    calls = []

    class Exploding(Adam):
        def step(self, params, grads):
            super().step(params, grads)
            if self.t == 6:   # poison the weights during epoch 2 (5 batches per epoch)
                params[0][...] = np.nan

    class Epochs:
        def on_epoch_end(self, epoch, history, model):
            calls.append(epoch)

    hist = fit(model, x, x, epochs=10, batch_size=16, optimizer=Exploding(0.01), progress=False,
               callbacks=[Epochs()])
    assert hist.diverged_epoch == 2 and calls == [1, 2]
    assert math.isfinite(hist.train_bce[0]) and not math.isfinite(hist.train_bce[1])


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs"), ({"batch_size": 2.5}, "batch_size"),
                                           ({"seed": 1.5}, "seed must be a non-negative integer, got 1.5"),
                                           ({"seed": -1}, "seed must be a non-negative integer")])
def test_bad_fit_settings_are_rejected(kwargs, match, rng):
    with pytest.raises(ValueError, match=match):
        fit(Autoencoder(12, [3]), _data(rng), progress=False, **kwargs)


def test_fit_checks_the_data_once_up_front(rng):
    x = _data(rng)
    x[3, 2] = 2.0
    with pytest.raises(ValueError, match=r"x_train must lie in \[0, 1\]"):
        fit(Autoencoder(12, [3]), x, progress=False)
    with pytest.raises(ValueError, match=r"x_val must have shape \(N, 12\)"):
        fit(Autoencoder(12, [3]), _data(rng), np.zeros((3, 5)), progress=False)


def test_a_callback_stops_training_after_its_epoch_and_is_closed():
    from minae import StopTraining

    class StopAtTwo:
        closed = None

        def on_epoch_end(self, epoch, history, model):
            if epoch == 2:
                raise StopTraining

        def close(self, history, model):
            self.closed = len(history.val_bce)

    x = np.random.default_rng(0).random((64, 12)).astype(np.float32)
    stopper = StopAtTwo()
    history = fit(Autoencoder(12, [4]), x, x[:16], epochs=10, batch_size=16, progress=False,
                  callbacks=[stopper])
    assert len(history.val_bce) == 2 and stopper.closed == 2 and not history.diverged


def test_fit_and_evaluate_take_array_likes_or_say_what_they_need(rng):
    rows = _data(rng)[:32].tolist()   # a list of rows, as a student might pass
    model = Autoencoder(12, [3], seed=1)
    assert len(fit(model, rows, rows, epochs=1, progress=False).val_bce) == 1
    assert evaluate(model, rows) == pytest.approx(evaluate(model, np.asarray(rows, np.float32)), rel=1e-6)
    with pytest.raises(ValueError, match=r"x_train must be an array of shape \(N, 12\)"):
        fit(model, [[0.5] * 12, [0.5] * 3], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x must be an array of shape \(N, 12\)"):
        evaluate(model, {"not": "rows"})


def test_every_callback_sees_the_epoch_in_which_one_asks_to_stop():
    from minae import StopTraining

    seen = []

    class Stop:
        def on_epoch_end(self, epoch, history, model):
            raise StopTraining

    class Watch:
        def on_epoch_end(self, epoch, history, model):
            seen.append(epoch)

    x = np.random.default_rng(1).random((32, 12)).astype(np.float32)
    history = fit(Autoencoder(12, [4]), x, epochs=5, batch_size=16, progress=False,
                  callbacks=[Stop(), Watch()])
    assert len(history.train_bce) == 1 and seen == [1]


def test_fit_on_every_backend_gives_numpys_numbers_in_float64(backend, rng):
    """On CuPy this is the GPU check of fit itself: device shuffles, the one read of the
    loss per epoch, exact evaluation, the diagnostics' reads of the device."""
    x, xv = rng.uniform(size=(90, 20)), rng.uniform(size=(30, 20))
    ref = Autoencoder(20, [8, 3, 8], seed=4, dtype="float64")
    model = Autoencoder(20, [8, 3, 8], seed=4, dtype="float64", backend=backend)
    h_ref = fit(ref, x, xv, epochs=3, batch_size=32, seed=1, progress=False)
    h = fit(model, backend.asarray(x), backend.asarray(xv), epochs=3, batch_size=32, seed=1, progress=False)
    np.testing.assert_allclose(h.train_bce, h_ref.train_bce, rtol=1e-10)
    np.testing.assert_allclose(h.val_bce, h_ref.val_bce, rtol=1e-10)
    assert evaluate(model, backend.asarray(xv)) == pytest.approx(evaluate(ref, xv), rel=1e-10)
    for d, d_ref in zip(h.diagnostics, h_ref.diagnostics):
        for name in ("grad_norm", "update_ratio"):
            np.testing.assert_allclose(d[name], d_ref[name], rtol=1e-8)
        assert d["dead_fraction"] == d_ref["dead_fraction"]
    for p, q in zip(model.params, ref.params):
        np.testing.assert_allclose(backend.to_host(p), q, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "adam"}, r"optimizer must be an optimizer object with a step\(params, grads\) .* 'adam'"),
    ({"optimizer": Adam}, "optimizer must be an optimizer object"),   # the class, not an Adam
    ({"callbacks": [object()]}, r"each callback must have an on_epoch_end\(epoch, history, model\) method"),
    ({"step": "train_step"}, r"step must be a function step\(model, optimizer, xb, work\)"),
], ids=["optimizer-a-string", "optimizer-a-class", "callback-without-method", "step-a-string"])
def test_what_cannot_do_its_job_is_named_before_training(kwargs, match, rng):
    # Each was an AttributeError or TypeError from inside the epoch loop.
    with pytest.raises(TypeError, match=match):
        fit(Autoencoder(12, [3]), _data(rng), epochs=1, progress=False, **kwargs)
    assert len(fit(Autoencoder(12, [3]), _data(rng), epochs=1, progress=False, callbacks=None).train_bce) == 1


def test_a_stack_given_one_seed_says_it_needs_one_per_model(rng):
    stack = Autoencoder.stack([Autoencoder(12, [3]), Autoencoder(12, [3], seed=1)])
    with pytest.raises(ValueError, match=r"a stack of 2 models needs 2 shuffle seeds \(a list, one per "
                                         r"model\), got 3"):
        fit(stack, _data(rng), seed=3, epochs=1, progress=False)


def test_a_batch_size_larger_than_the_data_allocates_for_the_data_only(rng):
    # The workspace was made for batch_size rows: 10**12 asked for 29 TiB before the first step.
    x = _data(rng, 40)
    small = fit(Autoencoder(12, [3], seed=2), x, x, epochs=2, batch_size=40, progress=False)
    huge = fit(Autoencoder(12, [3], seed=2), x, x, epochs=2, batch_size=10**12, progress=False)
    assert huge.train_bce == small.train_bce and huge.val_bce == small.val_bce


def test_a_cupy_array_is_taken_as_the_devices_never_converted_by_numpy(cupy_like):
    # CuPy 14's arrays answer no __array_namespace__ and refuse np.asarray: once, fit
    # took them for a list of rows and failed on every GPU (found by scripts/gpu_check.sh).
    from minae import train

    x = cupy_like(np.full((3, 4), 0.5, np.float32))
    assert train._on_backend(Autoencoder(4, [2]), x, "x", check=False) is x
