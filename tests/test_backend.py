"""The backend switch: names, errors, and a strict Array-API namespace."""

import numpy as np
import pytest

from minae import Autoencoder, BackendError
from minae.backend import ARRAY_FUNCTIONS, Backend, cupy_available, get_namespace, resolve_backend
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


def _fake_cupy(version="14.2.0", lacks=()):
    """A module that looks like CuPy to minae.backend, with only what the test needs."""
    import types

    fake = types.ModuleType("cupy")
    fake.__version__ = version
    for name in ARRAY_FUNCTIONS:
        if name not in lacks:
            setattr(fake, name, getattr(np, name, None) or (lambda *a, **k: None))
    fake.ndarray = type("ndarray", (), {} if "ndarray.mT" in lacks else {"mT": property(lambda self: self)})
    return fake


@pytest.mark.parametrize("lacks", [("log1p",), ("ndarray.mT",), ("concat", "take")])
def test_a_cupy_without_a_function_minae_calls_is_refused_with_the_upgrade_command(monkeypatch, lacks):
    import sys

    from minae.backend import _usable_cupy

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy("14.0.0", lacks))
    module, why = _usable_cupy()
    assert module is None
    assert f"CuPy 14.0.0 lacks {', '.join(lacks)}, which minae calls" in why
    assert "pip install -U cupy-cuda13x" in why


def test_array_functions_lists_every_function_minae_calls_on_an_array_module():
    import pathlib
    import re

    import minae

    called = set()
    for path in pathlib.Path(minae.__file__).parent.rglob("*.py"):
        text = path.read_text()
        called |= set(re.findall(r"\bxp\.([a-z_0-9]+)\(", text))
        called |= set(re.findall(r"get_namespace\([^)]*\)\.([a-z_0-9]+)\(", text))
    # isdtype: only WithOut calls it, on strict namespaces; shares_memory: asked for with hasattr.
    assert called - {"isdtype", "shares_memory"} <= set(ARRAY_FUNCTIONS), \
        f"add to ARRAY_FUNCTIONS: {sorted(called - {'isdtype', 'shares_memory'} - set(ARRAY_FUNCTIONS))}"


def test_a_cupy_backend_on_a_device_allocates_there_without_a_device_argument(monkeypatch):
    import contextlib
    import types

    current = []

    @contextlib.contextmanager
    def device(index):
        current.append(index)
        yield
        current.pop()

    def refuses_device(name):
        def make(*args, device=None, **kwargs):   # CuPy's allocators take no device=
            assert device is None, f"cupy.{name} was passed device="
            return ("on", current[-1] if current else None, getattr(np, name)(*args, **kwargs))
        return make

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(Device=device), float32=np.float32,
                                 float64=np.float64, **{n: refuses_device(n) for n in ("zeros", "empty",
                                                                                      "asarray")})
    be = Backend("cupy", fake, device=1)
    assert be.zeros((2,), "float32")[:2] == ("on", 1)
    assert be.empty((2,), "float64")[:2] == ("on", 1)
    assert be.asarray(np.ones(3), "float32")[:2] == ("on", 1)
    assert Backend("cupy", fake).zeros((2,), "float32")[:2] == ("on", None)


def test_to_host_asks_cupy_arrays_with_get_never_numpy_asarray():
    from minae.backend import to_host

    class FakeCupyArray:
        __module__ = "cupy._core.core"

        def __array__(self, *args, **kwargs):   # as CuPy: no silent device-to-host copy
            raise TypeError("Implicit conversion to a NumPy array is not allowed")

        def get(self):
            return np.arange(3.0)

    np.testing.assert_array_equal(to_host(FakeCupyArray()), [0.0, 1.0, 2.0])
    assert to_host([[1, 2]]).shape == (1, 2)
    a = np.ones(2)
    assert to_host(a) is a
