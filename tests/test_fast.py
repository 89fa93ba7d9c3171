"""The fast step against the reference path: same numbers, bit for bit."""

import numpy as np
import pytest

from minae import SGD, Adam, Autoencoder, fit
from minae.fast import FastStep
from minae.train import use_fast_step


def _pair(seed=1, hidden=(24, 8, 24), dtype="float32", backend="numpy"):
    return (Autoencoder(40, list(hidden), seed=seed, dtype=dtype, backend=backend),
            Autoencoder(40, list(hidden), seed=seed, dtype=dtype, backend=backend))


@pytest.mark.parametrize("form", ["keras", "textbook"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_step_is_bitwise_identical_to_reference(form, dtype, rng):
    x = rng.uniform(size=(70, 40)).astype(dtype)
    ref, fast = _pair(dtype=dtype)
    opt_ref, opt_fast = Adam(0.01, 0.9, 0.99, 1e-7, form), Adam(0.01, 0.9, 0.99, 1e-7, form)
    step = FastStep(fast, opt_fast, 32)
    for start in (0, 32, 64, 0):   # the batch at 64 is short (6 rows)
        xb = x[start:start + 32]
        loss_ref, grads = ref.loss(xb)
        opt_ref.step(ref.params, grads)
        loss_fast = step.step(xb)
        assert loss_fast.tobytes() == loss_ref.tobytes()
        for a, b in zip(ref.params, fast.params):
            assert a.tobytes() == b.tobytes()
        for a, b in zip(ref.grads, fast.grads):
            assert a.tobytes() == b.tobytes()
    assert opt_fast.t == opt_ref.t == 4
    for a, b in zip(opt_ref.m + opt_ref.v, opt_fast.m + opt_fast.v):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_bce_matches_reference_bits_at_extreme_logits(dtype, rng):
    """The sigmoid's shortcut max(exp(-|z|), z >= 0) == exp(min(z, 0)), bit for bit."""
    from minae.losses import bce_with_logits

    tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
    edges = [0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, 0.5, -0.5, 20.0, -20.0, 100.0, -100.0,
             1e30, -1e30, huge, -huge, np.inf, -np.inf, np.nan]
    z = np.concatenate([edges, rng.normal(scale=8.0, size=40 - len(edges))]).astype(dtype)
    z = np.stack([z, -z, rng.permutation(z)])                                  # (3, 40)
    x = rng.uniform(size=z.shape).astype(dtype)
    x[0, :5] = [0.0, 1.0, 0.0, 1.0, 0.5]
    step = FastStep(Autoencoder(40, [8], dtype=dtype), Adam(), 3)
    with np.errstate(over="ignore", invalid="ignore"):
        loss_ref, dz_ref = bce_with_logits(z, x, check=False)
        loss_fast, dz_fast = step._bce(z.copy(), x)
    np.testing.assert_array_equal(dz_fast, dz_ref)                            # NaN where NaN
    finite = np.isfinite(dz_ref)
    assert dz_fast[finite].tobytes() == dz_ref[finite].tobytes()
    assert np.isnan(loss_fast) and np.isnan(loss_ref)                        # z holds a NaN
    # With logits whose loss terms cannot overflow, a finite loss with the same bits.
    z = np.clip(np.nan_to_num(z, nan=0.0), -1e3, 1e3)
    loss_ref, _ = bce_with_logits(z, x, check=False)
    assert np.isfinite(loss_ref) and step._bce(z.copy(), x)[0].tobytes() == loss_ref.tobytes()


def test_fit_fast_and_reference_give_identical_histories_and_weights(rng):
    x, xv = rng.uniform(size=(90, 40)).astype(np.float32), rng.uniform(size=(20, 40)).astype(np.float32)
    ref, fast = _pair(seed=3)
    h_ref = fit(ref, x, xv, epochs=3, batch_size=16, optimizer=Adam(0.01), fast=False, progress=False)
    h_fast = fit(fast, x, xv, epochs=3, batch_size=16, optimizer=Adam(0.01), fast=True, progress=False)
    assert h_ref.train_bce == h_fast.train_bce and h_ref.val_bce == h_fast.val_bce
    for a, b in zip(ref.params, fast.params):
        assert a.tobytes() == b.tobytes()


def test_no_silent_float64_in_a_float32_training_step(rng):
    model = Autoencoder(40, [24, 8, 24], seed=0)
    opt = Adam(0.01)
    step = FastStep(model, opt, 16)
    loss = step.step(rng.uniform(size=(16, 40)).astype(np.float32))
    arrays = {"loss": loss, **{f"param{i}": p for i, p in enumerate(model.params)},
              **{f"grad{i}": g for i, g in enumerate(model.grads)},
              **{f"m{i}": m for i, m in enumerate(opt.m)}, **{f"v{i}": v for i, v in enumerate(opt.v)},
              **{f"act{i}": a for i, a in enumerate(step.act)},
              **{f"dh{i}": a for i, a in enumerate(step.dh)},
              "e": step.e, "t": step.t, "dz": step.dz, "tmp": step.tmp, "tmp2": step.tmp2}
    assert {name: a.dtype for name, a in arrays.items() if a.dtype != np.float32} == {}
    # And the reference path: every array it returns or keeps is float32.
    ref = Autoencoder(40, [24, 8, 24], seed=0)
    loss, grads = ref.loss(rng.uniform(size=(16, 40)).astype(np.float32))
    kept = [layer.x for layer in ref.dense] + [relu.mask for relu in ref.relus]
    assert {a.dtype for a in [loss, *grads, *kept]} == {np.dtype(np.float32)}


def test_the_model_stays_usable_after_the_fast_step(rng, tmp_path):
    model = Autoencoder(40, [24, 8, 24], seed=0)
    FastStep(model, Adam(), 16).step(rng.uniform(size=(16, 40)).astype(np.float32))
    loaded = Autoencoder.load(model.save(tmp_path / "m.npz"))
    x = rng.uniform(size=(5, 40)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_fast_step_refuses_what_it_does_not_implement(rng):
    with pytest.raises(TypeError, match="Adam only"):
        FastStep(Autoencoder(40, [8]), SGD(0.1), 16)
    step = FastStep(Autoencoder(40, [8]), Adam(), 16)
    with pytest.raises(ValueError, match="larger than the 16"):
        step.step(rng.uniform(size=(17, 40)).astype(np.float32))


def test_fit_picks_the_fast_step_only_where_it_is_exact():
    model = Autoencoder(40, [8])

    class MyAdam(Adam):
        pass

    assert use_fast_step(model, Adam())
    assert not use_fast_step(model, SGD())
    assert not use_fast_step(model, MyAdam())   # a subclass may override step()
    assert use_fast_step(model, SGD(), fast=True) is True


def test_fast_step_matches_reference_on_every_backend(backend, rng):
    """On CuPy this is the GPU parity test of the fast step (float64)."""
    x = rng.uniform(size=(32, 40))
    ref = Autoencoder(40, [24, 8, 24], seed=2, dtype="float64")
    other = Autoencoder(40, [24, 8, 24], seed=2, dtype="float64", backend=backend)
    opt_ref, opt = Adam(0.01), Adam(0.01)
    step = FastStep(other, opt, 32)
    for _ in range(3):
        _, grads = ref.loss(x)
        opt_ref.step(ref.params, grads)
        step.step(backend.asarray(x))
    for a, b in zip(ref.params, other.params):
        np.testing.assert_allclose(backend.to_host(b), a, rtol=1e-10, atol=1e-13)
