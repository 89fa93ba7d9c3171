"""The backend switch: names, errors, and a strict Array-API namespace."""

import numpy as np
import pytest

from minae import Autoencoder, BackendError
from minae.backend import Backend, cupy_available, get_namespace, resolve_backend
from minae.optim import Adam


def test_numpy_backend_and_namespace_lookup():
    be = resolve_backend("numpy")
    assert be.name == "numpy" and be.xp is np
    assert get_namespace(np.zeros(2)) is np and get_namespace(1.0) is np
    assert resolve_backend(be) is be


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'gpu'.*'auto', 'numpy', 'cupy'"):
        resolve_backend("gpu")


@pytest.mark.skipif(cupy_available(), reason="a usable GPU is present, so there is no error to see")
def test_cupy_without_a_gpu_is_a_clear_error_with_a_fix():
    with pytest.raises(BackendError, match=r"backend='cupy' cannot run: .*cupy-cuda13x.*backend='numpy'"):
        resolve_backend("cupy")
    with pytest.raises(BackendError):
        Autoencoder(4, [2], backend="cupy")


def test_auto_says_what_it_chose_and_why(caplog):
    with caplog.at_level("INFO", logger="minae"):
        be = resolve_backend("auto")
    assert be.name == ("cupy" if cupy_available() else "numpy")
    assert be.reason.startswith(f"auto -> {be.name}: ")
    assert be.reason in caplog.text


def _strict_backend():
    xps = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
    # A non-default device: mixing with NumPy arrays or converting implicitly raises.
    return Backend("array-api-strict", xps, device=xps.Device("device1"))


def test_training_step_never_leaves_a_strict_array_namespace(rng):
    strict = _strict_backend()
    x = rng.uniform(size=(8, 10))
    ref = Autoencoder(10, [6, 3, 6], seed=2, dtype="float64")
    model = Autoencoder(10, [6, 3, 6], seed=2, dtype="float64", backend=strict)
    x_strict = strict.asarray(x, "float64")
    with pytest.raises(RuntimeError):   # proof that implicit conversion is refused here
        np.asarray(x_strict)
    opt_ref, opt = Adam(0.01), Adam(0.01, form="keras")
    for _ in range(3):
        loss_ref, grads_ref = ref.loss(x)
        loss, grads = model.loss(x_strict)
        opt_ref.step(ref.params, grads_ref)
        opt.step(model.params, grads)
        assert float(loss) == pytest.approx(float(loss_ref), rel=1e-13)
    for p_ref, p in zip(ref.params, model.params):
        assert p.device == strict.device
        np.testing.assert_allclose(strict.to_host(p), p_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(strict.to_host(model.predict(x_strict)), ref.predict(x), rtol=1e-12)
    np.testing.assert_allclose(strict.to_host(model.encode(x_strict, layer=2)), ref.encode(x, layer=2),
                               rtol=1e-12, atol=1e-15)


def test_cupy_arrays_are_recognised_by_their_module(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("cupy")
    ndarray = type("ndarray", (), {"__module__": "cupy._core.core",
                                   "__array_namespace__": lambda self: "not the cupy module"})
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert get_namespace(ndarray()) is fake


def test_a_model_moves_between_backends_and_back_unchanged(rng):
    strict = _strict_backend()
    model = Autoencoder(10, [6, 3, 6], seed=4, dtype="float64")
    before = [p.copy() for p in model.params]
    x = rng.uniform(size=(4, 10))
    expected = model.predict(x)
    model.to(strict)
    assert model.backend is strict and all(p.device == strict.device for p in model.params)
    np.testing.assert_array_equal(strict.to_host(model.predict(strict.asarray(x, "float64"))), expected)
    model.to("numpy")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.params))


def test_cupy_older_than_14_is_refused_with_the_upgrade_command(monkeypatch):
    import sys
    import types

    from minae.backend import _usable_cupy

    old = types.ModuleType("cupy")
    old.__version__ = "13.6.0"
    monkeypatch.setitem(sys.modules, "cupy", old)
    module, why = _usable_cupy()
    assert module is None
    assert "CuPy 13.6.0 is too old: minae needs CuPy 14 or newer" in why
    assert "pip install -U cupy-cuda13x" in why
    with pytest.raises(BackendError, match="too old"):
        resolve_backend("cupy")
