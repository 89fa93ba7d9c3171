"""Shared fixtures and helpers: the backends every parametrised test runs on, the
data the tests need, and what grid tests read back. Test modules import helpers
from here (``from .conftest import ...``), never from each other."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from minae.backend import cupy_available, resolve_backend
from minae.data.idx import write_idx
from minae.data.registry import FILENAMES

ROOT = Path(__file__).resolve().parents[1]
# The complete MNIST, where a developer's checkout has it beside it, and the full
# Fashion-MNIST of Debian's dataset-fashion-mnist: the real-data tests skip without them.
FULL_MNIST = ROOT.parent / "shared" / "data" / "mnist"
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_mnist = pytest.mark.skipif(not FULL_MNIST.is_dir(), reason="the complete MNIST is not on this machine")
needs_fashion = pytest.mark.skipif(not SYSTEM_FASHION.is_dir(), reason="full Fashion-MNIST not installed "
                                   "(apt-get install dataset-fashion-mnist)")

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


# --- data ------------------------------------------------------------------------------

def make_files(folder, n_train=30, n_test=12, seed=0, labels_train=None):
    """Write four small synthetic MNIST-style IDX files into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / FILENAMES["train_images"], rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / FILENAMES["train_labels"],
              rng.integers(0, 10, n_train, dtype=np.uint8) if labels_train is None else labels_train)
    write_idx(folder / FILENAMES["test_images"], rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / FILENAMES["test_labels"], rng.integers(0, 10, n_test, dtype=np.uint8))
    return folder


# --- grids and processes -----------------------------------------------------------------

def results(out):
    """A finished grid's records (its results.json)."""
    return json.loads((Path(out) / "results.json").read_text())


def worker_pids(parent):
    """Pids of the spawned pool workers among ``parent``'s children (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
