"""The array backend: NumPy on the CPU, CuPy on a GPU, chosen in one place.

What it teaches: the same layer code runs on a CPU or a GPU because NumPy and
CuPy (and any Array-API namespace) share one interface. Library code never
reads a global flag; it asks the arrays it was given which module they belong
to (``get_namespace``), exactly as CuPy's own guide recommends with
``cupy.get_array_module``. The user picks the device once, by name, when a
model is made: ``Autoencoder(..., backend="cupy")``.

CuPy is imported only when asked for, so minae installs and runs without it.
Parameters are always drawn on the host with ``numpy.random.default_rng`` and
then moved (``Backend.asarray``), so a CPU run and a GPU run start from the
very same weights.

The layers, the loss and the optimizers call functions with NumPy's ``out=``
argument, so a training loop can hand them preallocated buffers (None means
"allocate"). NumPy and CuPy have it; a strict Array-API namespace does not, so
``get_namespace`` wraps such a namespace in ``WithOut``, which adds it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from minae.errors import BackendError

log = logging.getLogger("minae")

BACKENDS = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")

CUPY_MIN_MAJOR = 14   # the first CuPy with the Array-API functions minae calls (xp.astype)
# Every function minae calls on an array module (tests/test_backend.py checks the
# list against the source), and the array attributes it uses. A CuPy that lacks
# one is refused when the backend is chosen, not mid-epoch with an AttributeError.
ARRAY_FUNCTIONS = (
    "abs", "all", "asarray", "astype", "clip", "concat", "divide", "empty", "empty_like", "exp",
    "greater_equal", "isfinite", "log", "log1p", "matmul", "max", "maximum", "mean", "min", "multiply",
    "negative", "reshape", "sqrt", "stack", "std", "subtract", "sum", "take", "where", "zeros", "zeros_like",
)
ARRAY_ATTRIBUTES = ("mT",)   # ndarray.mT: the last two axes transposed (layers' backward)
CUPY_INSTALL_HINT = (
    "install the CuPy wheel that matches your CUDA toolkit, e.g. "
    "`pip install cupy-cuda13x` for CUDA 13 or `pip install cupy-cuda12x` for "
    "CUDA 12 (`nvidia-smi` shows the CUDA version), or use backend='numpy'"
)


@dataclass(frozen=True)
class Backend:
    """An array module plus the device arrays are placed on.

    name:   "numpy", "cupy", or a label for another Array-API namespace
            (the tests use array-api-strict on a non-default device).
    xp:     the array module.
    device: passed to ``xp.asarray(..., device=...)``; None = the default.
    reason: why this backend was chosen (filled in by ``backend="auto"``).
    """

    name: str
    xp: Any
    device: Any = None
    reason: str = ""

    def dtype(self, name: str):
        """The backend's dtype object for "float32" or "float64"."""
        if name not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
        return getattr(self.xp, name)

    def asarray(self, a, dtype: str | None = None):
        """Copy a host (NumPy) array onto this backend's device."""
        kwargs = {} if dtype is None else {"dtype": self.dtype(dtype)}
        with self._device() as where:
            return self.xp.asarray(a, **kwargs, **where)

    def zeros(self, shape, dtype: str):
        """A new array of zeros on this backend's device."""
        with self._device() as where:
            return self.xp.zeros(shape, dtype=self.dtype(dtype), **where)

    def empty(self, shape, dtype: str):
        """A new uninitialised array on this backend's device."""
        with self._device() as where:
            return self.xp.empty(shape, dtype=self.dtype(dtype), **where)

    @contextlib.contextmanager
    def _device(self):
        """Where new arrays go: CuPy takes no ``device=`` argument (it allocates on the
        current device, set with ``cupy.cuda.Device``); Array-API namespaces do."""
        if self.device is None:
            yield {}
        elif self.name == "cupy":
            with self.xp.cuda.Device(self.device):
                yield {}
        else:
            yield {"device": self.device}

    def to_host(self, a) -> np.ndarray:
        """Copy an array back to a NumPy array (on a GPU this synchronises)."""
        return to_host(a)

    def synchronize(self) -> None:
        """Wait for queued GPU work (a no-op on the CPU); needed for timing."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


class WithOut:
    """An Array-API namespace whose functions also take NumPy's ``out=``.

    ``f(..., out=buf)`` computes ``f(...)`` and writes it into ``buf``, cast to
    buf's dtype as NumPy does; boolean arrays mixed with floats are cast first
    (NumPy and CuPy promote them; a strict namespace refuses). Only the tests'
    strict namespace needs this: speed is not the point here, the same code is.
    """

    def __init__(self, xp):
        self.xp = xp

    def __getattr__(self, name):
        f = getattr(self.xp, name)
        if not callable(f):
            return f

        def call(*args, out=None, **kwargs):
            floats = [a for a in args if hasattr(a, "dtype") and self.xp.isdtype(a.dtype, "real floating")]
            if floats:
                args = [self.xp.astype(a, floats[0].dtype) if hasattr(a, "dtype") and a.dtype == self.xp.bool
                        else a for a in args]
            result = f(*args, **kwargs)
            if out is None:
                return result
            out[...] = self.xp.astype(result, out.dtype)
            return out

        return call


def is_cupy(a):
    """Whether ``a`` is a CuPy array, asked by module (CuPy need not be importable to ask)."""
    return type(a).__module__.partition(".")[0] == "cupy"


def to_host(a) -> np.ndarray:
    """Any array (NumPy, CuPy, another Array-API library) or nested list as a
    NumPy array. CuPy refuses ``np.asarray`` (a silent device-to-host copy), so
    it is asked with ``.get()``; on a GPU this synchronises."""
    if isinstance(a, np.ndarray):
        return a
    if is_cupy(a):
        return a.get()
    namespace = getattr(a, "__array_namespace__", None)
    if namespace is not None and not isinstance(a, np.generic):
        # A generic Array-API namespace: move to its default (CPU) device first.
        return np.asarray(a.to_device(namespace().__array_namespace_info__().default_device()))
    return np.asarray(a)


def get_namespace(*arrays):
    """The array module the given arrays belong to (NumPy if none say).

    NumPy 2, CuPy and Array-API libraries all answer ``__array_namespace__``;
    NumPy arrays are matched first because that is the common case. Any other
    namespace comes wrapped in ``WithOut``.
    """
    for a in arrays:
        if isinstance(a, np.ndarray):
            return np
        if is_cupy(a):
            # Asked by module, not __array_namespace__: older CuPy releases
            # answered that with a separate cupy.array_api namespace.
            import cupy

            return cupy
        namespace = getattr(a, "__array_namespace__", None)
        if namespace is not None:
            return WithOut(namespace())
    return np


def _usable_cupy():
    """Return (cupy module or None, a sentence saying why)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc})"
    upgrade = "`pip install -U cupy-cuda13x`, or cupy-cuda12x for CUDA 12"
    if int(cupy.__version__.split(".")[0]) < CUPY_MIN_MAJOR:
        return None, (f"CuPy {cupy.__version__} is too old: minae needs CuPy {CUPY_MIN_MAJOR} or newer "
                      f"({upgrade})")
    ndarray = getattr(cupy, "ndarray", None)
    missing = [name for name in ARRAY_FUNCTIONS if not hasattr(cupy, name)]
    missing += [f"ndarray.{name}" for name in ARRAY_ATTRIBUTES if not hasattr(ndarray, name)]
    if missing:
        return None, (f"CuPy {cupy.__version__} lacks {', '.join(missing)}, which minae calls: upgrade it "
                      f"({upgrade})")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return None, "CuPy is installed but sees no CUDA device"
        # Launch one tiny kernel: this is where a driver/toolkit mismatch shows.
        float(cupy.arange(3, dtype=cupy.float32).sum())
        props = cupy.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except Exception as exc:  # CuPy raises several CUDA error types here
        return None, f"CuPy {cupy.__version__} is installed but cannot use a CUDA device ({exc})"
    return cupy, f"CuPy {cupy.__version__} on {gpu}"


def cupy_available() -> bool:
    """True when CuPy is installed and a CUDA device runs a kernel."""
    return _usable_cupy()[0] is not None


def resolve_backend(backend: str | Backend = "numpy") -> Backend:
    """Turn "numpy", "cupy" or "auto" (or a ready Backend) into a Backend.

    "auto" takes CuPy when a CUDA device is usable and NumPy otherwise, and
    logs which it took and why. "cupy" where CuPy cannot run raises
    BackendError saying how to fix it.
    """
    if isinstance(backend, Backend):
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if backend == "numpy":
        return Backend("numpy", np, reason="asked for numpy")
    cupy, why = _usable_cupy()
    if backend == "cupy":
        if cupy is None:
            raise BackendError(f"backend='cupy' cannot run: {why}. To fix: {CUPY_INSTALL_HINT}.")
        return Backend("cupy", cupy, reason=why)
    if cupy is None:
        chosen = Backend("numpy", np, reason=f"auto -> numpy: {why}")
    else:
        chosen = Backend("cupy", cupy, reason=f"auto -> cupy: {why}")
    log.info("minae backend %s", chosen.reason)
    return chosen


def asarray_like(a, like, dtype=None):
    """Copy host array ``a`` to ``like``'s namespace and device, with ``like``'s dtype
    (or ``dtype``)."""
    xp = get_namespace(like)
    dtype = like.dtype if dtype is None else dtype
    if xp is np:
        return np.asarray(a, dtype=dtype)
    if is_cupy(like):
        with like.device:   # CuPy's asarray takes no device=; it allocates on the current device
            return xp.asarray(a, dtype=dtype)
    return xp.asarray(a, dtype=dtype, device=like.device)


def one_blas_thread(backend_name="numpy"):
    """NumPy's BLAS limited to one thread (nothing changes on CuPy), as a context
    or, called alone, for the rest of the process. Every grid run trains so, in
    this process, a worker or a Dask task alike: the bits do not depend on where
    it ran, and for matrices this small one process per core beats BLAS threads
    (docs/performance.md)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1 if backend_name == "numpy" else None)
