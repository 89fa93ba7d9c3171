"""Shared fixtures: the backends every parametrised test runs on."""

import numpy as np
import pytest

from minae.backend import cupy_available, resolve_backend

_CUPY_SKIP = pytest.mark.skipif(not cupy_available(),
                                reason="CuPy with a usable CUDA GPU is not available here")

# Every backend-parametrised test runs on NumPy and, where a GPU is usable, CuPy.
BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("cupy", id="cupy", marks=_CUPY_SKIP)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return resolve_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)



class CupyLike:
    """A device array as minae.backend.to_host sees CuPy's (its module is "cupy"):
    ``.get()`` copies it to the host and ``np.asarray`` refuses it, as CuPy does."""

    def __init__(self, host):
        self.host = np.asarray(host)
        self.shape, self.dtype = self.host.shape, self.host.dtype

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()`")

    def __len__(self):
        return len(self.host)

    def __getitem__(self, index):
        return CupyLike(self.host[index])

    def get(self):
        return self.host.copy()


CupyLike.__module__ = "cupy"


@pytest.fixture
def cupy_like():
    """Wraps a NumPy array as a CuPy-like device array (CupyLike)."""
    return CupyLike
