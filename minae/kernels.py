"""Fused CUDA kernels: the loss and Adam each in one GPU launch (CuPy only).

What it teaches: on a GPU every array operation is a kernel launch that reads
and writes its operands in slow global memory. ``losses.bce_with_logits`` is
about fourteen such passes over (N, D) and ``Adam.update`` twelve (Keras
form) or fourteen (textbook) over every parameter; each kernel below does the same
arithmetic in one pass, reading each input once and writing each output once.

These are the one place where minae's math is written a second time, and
only as an option: ``fit(..., step=kernels.train_step, optimizer=kernels.FusedAdam(...))``
or ``scripts/grid.py --engine fused``. Everything else, the layers included,
runs the Python code of layers.py, losses.py and optim.py on the GPU too.

Parity, and why: every kernel performs the Python code's operations in the
same order, each rounded once: +, -, * and / are written as CUDA's
round-to-nearest intrinsics (``__fadd_rn``, ``__dmul_rn``, ...), which the
compiler never fuses into a multiply-add that rounds once where NumPy and
CuPy round twice. Everything else is compiled exactly as CuPy compiles its
own elementwise kernels (no options of ours; CuPy adds ``-ftz=true`` to every
kernel, its own and these, so float32 denormals flush to zero on both sides;
division and square roots are IEEE). So Adam gives the same bits as
``Adam.update`` run on CuPy, and the loss the same bits as
``bce_with_logits`` on CuPy, whose exp and log1p are these same CUDA
functions compiled the same way. Against NumPy on a CPU, CUDA's exp and log1p
differ by 1-2 ulp (and float32 keeps denormals there), so results agree to
about 1e-12 relative in float64, not bit for bit. The tests check both
(tests/test_kernels.py) and compile every kernel with NVRTC even where there
is no GPU.

The CUDA sources are plain strings (``cuda_source``), so they can be compiled
without CuPy or a device; CuPy is imported only when a kernel runs.
"""

from __future__ import annotations

import math

import numpy as np

from minae import train
from minae.backend import DTYPES
from minae.losses import _check_pair, check_finite
from minae.optim import Adam

KERNELS = ("minae_bce_logits", "minae_adam_keras", "minae_adam_textbook")
COMPILE_OPTIONS = ()   # CuPy's own: see "Parity" above
THREADS = 256

# One element per thread in a grid-stride loop; T is float or double.
_SOURCE = r"""
#define LOOP(n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                     i += (long long)blockDim.x * gridDim.x)

// losses.bce_with_logits: term = max(z,0) - z*x + log1p(e), dz = (sigmoid(z) - x) / count,
// with e = exp(-|z|) shared, and sigmoid(z) = max(e, z >= 0) / (1 + e). NaN stays NaN.
extern "C" __global__ void minae_bce_logits(const T* z, const T* x, T* term, T* dz,
                                            const T count, const long long n) {
    LOOP(n) {
        const T zi = z[i], xi = x[i];
        const T e = EXP(-FABS(zi));
        const T relu = (zi > (T)0 || zi != zi) ? zi : (T)0;
        term[i] = ADD(SUB(relu, MUL(zi, xi)), LOG1P(e));
        const T s = DIV((zi >= (T)0) ? (T)1 : e, ADD((T)1, e));
        dz[i] = DIV(SUB(s, xi), count);
    }
}

// optim.Adam.update, form "keras".
extern "C" __global__ void minae_adam_keras(T* p, const T* g, T* m, T* v, const T lr_t,
                                            const T one_minus_b1, const T one_minus_b2,
                                            const T eps, const long long n) {
    LOOP(n) {
        const T gi = g[i];
        const T mi = ADD(m[i], MUL(SUB(gi, m[i]), one_minus_b1));
        const T vi = ADD(v[i], MUL(SUB(MUL(gi, gi), v[i]), one_minus_b2));
        m[i] = mi;
        v[i] = vi;
        p[i] = SUB(p[i], DIV(MUL(mi, lr_t), ADD(SQRT(vi), eps)));
    }
}

// optim.Adam.update, form "textbook"; c1 = 1 - b1**t, c2 = 1 - b2**t.
extern "C" __global__ void minae_adam_textbook(T* p, const T* g, T* m, T* v, const T lr,
                                               const T b1, const T b2, const T one_minus_b1,
                                               const T one_minus_b2, const T c1, const T c2,
                                               const T eps, const long long n) {
    LOOP(n) {
        const T gi = g[i];
        const T mi = ADD(MUL(m[i], b1), MUL(gi, one_minus_b1));
        const T vi = ADD(MUL(v[i], b2), MUL(MUL(gi, gi), one_minus_b2));
        m[i] = mi;
        v[i] = vi;
        p[i] = SUB(p[i], DIV(MUL(DIV(mi, c1), lr), ADD(SQRT(DIV(vi, c2)), eps)));
    }
}
"""

# Per type: the math functions, and + - * / as intrinsics that round once each and are never fused.
_MATH = {"float": {"T": "float", "EXP": "expf", "LOG1P": "log1pf", "FABS": "fabsf", "SQRT": "sqrtf",
                   "ADD": "__fadd_rn", "SUB": "__fsub_rn", "MUL": "__fmul_rn", "DIV": "__fdiv_rn"},
         "double": {"T": "double", "EXP": "exp", "LOG1P": "log1p", "FABS": "fabs", "SQRT": "sqrt",
                    "ADD": "__dadd_rn", "SUB": "__dsub_rn", "MUL": "__dmul_rn", "DIV": "__ddiv_rn"}}


def cuda_source(ctype):
    """The complete CUDA C source of every kernel for ``ctype`` "float" or "double"."""
    if ctype not in _MATH:
        raise ValueError(f"ctype must be 'float' or 'double', got {ctype!r}")
    defines = "".join(f"#define {k} {v}\n" for k, v in _MATH[ctype].items())
    return defines + _SOURCE


_compiled = {}


def _kernel(name, dtype):
    import cupy

    ctype = {"float32": "float", "float64": "double"}[np.dtype(dtype).name]
    key = (name, ctype)
    if key not in _compiled:
        _compiled[key] = cupy.RawKernel(cuda_source(ctype), name, options=COMPILE_OPTIONS)
    return _compiled[key]


def _launch(name, arrays, scalars, n):
    """Run kernel ``name`` over n elements of C-contiguous CuPy ``arrays``.

    The kernel reads raw memory as one type T: an array of another dtype or
    with fewer than n elements would be read as the wrong bytes, so both are
    refused here (the kernel cannot check).
    """
    dtype = arrays[0].dtype
    if np.dtype(dtype).name not in DTYPES:
        raise TypeError(f"{name} runs on arrays of {' or '.join(DTYPES)}, got {dtype}")
    for k, a in enumerate(arrays):
        if a.dtype != dtype:
            raise TypeError(f"{name}: argument {k} is {a.dtype} but argument 0 is {dtype}; "
                            "the kernel reads every array as one type")
        if a.size < n:
            raise ValueError(f"{name}: argument {k} has {a.size} elements, fewer than the {n} it reads")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} needs C-contiguous arrays (argument {k} is not)")
    T = dtype.type
    blocks = max(1, min(-(-n // THREADS), 65535))
    _kernel(name, arrays[0].dtype)((blocks,), (THREADS,),
                                   (*arrays, *(T(s) for s in scalars), np.int64(n)))


def bce_with_logits(z, x, *, check=True, work=None):
    """losses.bce_with_logits as one kernel: (loss, dz) for z, x: (N, D) CuPy arrays
    of the same shape, C-contiguous (one model; a stack takes the Python loss)."""
    import cupy

    if z.shape != x.shape:   # always: the kernel would read past the end of x
        raise ValueError(f"the fused loss needs logits and targets of one shape, got {z.shape} and {x.shape}")
    if check:
        _check_pair(z, x, "logits", check_finite)
    term, dz = (cupy.empty_like(z), cupy.empty_like(z)) if work is None else work
    _launch("minae_bce_logits", [z, x, term, dz], [z.shape[-2] * z.shape[-1]], z.size)
    return cupy.mean(term, axis=(-2, -1)), dz


class FusedAdam(Adam):
    """optim.Adam whose update runs as one kernel per parameter array (one
    for a model's flat buffer). A list of learning rates (a stack) falls back
    to Adam.update, which broadcasts them."""

    def update(self, p, g, m, v, scratch):
        if not isinstance(self.lr, float):
            return super().update(p, g, m, v, scratch)
        b1, b2, t = self.beta1, self.beta2, self.t
        if self.form == "keras":
            lr_t = self.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
            _launch("minae_adam_keras", [p, g, m, v], [lr_t, 1.0 - b1, 1.0 - b2, self.eps], p.size)
        else:
            _launch("minae_adam_textbook", [p, g, m, v],
                    [self.lr, b1, b2, 1.0 - b1, 1.0 - b2, 1.0 - b1**t, 1.0 - b2**t, self.eps], p.size)


def train_step(model, optimizer, xb, work=None):
    """train.train_step with the fused loss (the layers run their own code);
    the optimizer should be a FusedAdam."""
    return train.train_step(model, optimizer, xb, work, bce=bce_with_logits)
