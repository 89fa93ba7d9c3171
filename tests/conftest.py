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

