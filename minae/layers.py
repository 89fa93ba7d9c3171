"""Layers with a hand-written forward and backward pass: Dense, ReLU, Sigmoid.

What it teaches: backpropagation is the chain rule applied one layer at a
time. Each ``forward`` keeps only what its ``backward`` needs; each
``backward(dout)`` receives dL/d(output) and returns dL/d(input), storing the
parameter gradients beside the parameters under the same names (W -> dW).

Dimension letters used in every docstring of minae:
    N  batch size (rows of a mini-batch)
    D  input features (784 for a flattened 28x28 image)
    H  width of a hidden layer; D_in / D_out for a generic layer
    Z  width of the code (the narrowest hidden layer)
    K  models in a stack (a learning-rate sweep trained together)

Every formula works on the last two axes (``a.mT`` transposes just those,
sums run over axis -2), so the same code trains one model, x: (N, D),
or a stack of K models at once, x: (K, N, D) with W: (K, D_in, D_out). These
are the very functions ``fit``, the grid and the stacked sweep run: edit one
and every path changes.

Gradients are *assigned*, not accumulated: every parameter is used exactly
once per forward pass (no weight sharing), so there is nothing to sum and no
"zero_grad" to forget. They are written into ``dW``/``db`` in place, because a
model keeps all its gradients in one flat buffer (see minae.model).

``out=`` arguments are optional buffers to write a result into; a training
loop passes them so that nothing is allocated per batch. The result is the
same either way.
"""

from __future__ import annotations

import math

import numpy as np

from minae.backend import get_namespace, resolve_backend

# ---------------------------------------------------------------------------
# Weight initialisers. Each draws a host (NumPy, float64) array of shape
# (fan_in, fan_out) from a numpy Generator; the layer then moves it.
# ---------------------------------------------------------------------------

def _truncated_normal(rng, std, shape):
    """Normal(0, std) redrawn beyond 2 std, as Keras' truncated_normal."""
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


# Keras scales the truncated normal's std by this factor so that the
# *truncated* distribution has the intended variance.
_TRUNC_STD_CORRECTION = 0.87962566103423978


def glorot_uniform(rng, fan_in, fan_out):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)): Keras' default."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def glorot_normal(rng, fan_in, fan_out):
    """Truncated normal with variance 2 / (fan_in + fan_out), as Keras."""
    std = math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD_CORRECTION
    return _truncated_normal(rng, std, (fan_in, fan_out))


def he_uniform(rng, fan_in, fan_out):
    """U(-l, l) with l = sqrt(6 / fan_in): keeps ReLU activations' scale."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def he_normal(rng, fan_in, fan_out):
    """Truncated normal with variance 2 / fan_in, as Keras."""
    std = math.sqrt(2.0 / fan_in) / _TRUNC_STD_CORRECTION
    return _truncated_normal(rng, std, (fan_in, fan_out))


INITIALISERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
}


def init_weights(init, rng, fan_in, fan_out):
    """Draw a (fan_in, fan_out) float64 host array with the named initialiser."""
    if init not in INITIALISERS:
        raise ValueError(f"unknown initialiser {init!r}; choose one of {sorted(INITIALISERS)}")
    return INITIALISERS[init](rng, fan_in, fan_out)


def _need_forward(layer, cached):
    if cached is None:
        raise RuntimeError(f"{type(layer).__name__}.backward called before forward: "
                           "run forward on a batch first")


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

class Dense:
    """Affine layer y = x @ W + b.

    W: (D_in, D_out), so the forward pass needs no transpose.
    b: (D_out,), zeros at the start (as Keras).
    dW, db: gradients of the same shapes, written by ``backward``.
    A stack of K models adds a leading axis to all four (b: (K, D_out)).
    init=None makes a layer without arrays of its own: a model then gives it
    views into its flat buffers (minae.model).
    """

    def __init__(self, d_in, d_out, *, rng=None, init="glorot_uniform",
                 backend="numpy", dtype="float32"):
        self.x = None
        if init is None:
            self.W = self.b = self.dW = self.db = None
            return
        rng = np.random.default_rng(0) if rng is None else rng
        be = resolve_backend(backend)
        self.W = be.asarray(init_weights(init, rng, d_in, d_out), dtype)  # (D_in, D_out)
        self.b = be.asarray(np.zeros(d_out), dtype)                        # (D_out,)
        self.dW = be.asarray(np.zeros((d_in, d_out)), dtype)
        self.db = be.asarray(np.zeros(d_out), dtype)

    def forward(self, x, out=None):
        """x: (..., N, D_in) -> y: (..., N, D_out). Keeps x for the backward pass."""
        xp = get_namespace(x)
        self.x = x
        y = xp.matmul(x, self.W, out=out)     # x @ W
        y += self.b[..., None, :]             # + b, the same b added to every row
        return y

    def backward(self, dout, out=None, need_dx=True):
        """dout: (..., N, D_out) -> dx: (..., N, D_in); sets dW (..., D_in, D_out), db (..., D_out).

        need_dx=False skips dx (returns None): the first layer's input is the
        data, whose gradient training never uses.
        """
        _need_forward(self, self.x)
        xp = get_namespace(dout)
        xp.matmul(self.x.mT, dout, out=self.dW)        # dW = x^T @ dout
        # b is added to every row of the batch, so its gradient sums over rows.
        xp.sum(dout, axis=-2, out=self.db)             # db = sum over n of dout
        if not need_dx:
            return None
        return xp.matmul(dout, self.W.mT, out=out)     # dx = dout @ W^T


class ReLU:
    """y = max(x, 0); its derivative is 1 where x > 0 and 0 elsewhere.

    At exactly x = 0 the derivative is taken as 0 (the kink), as in every
    framework; gradient checks keep inputs away from it.
    """

    def __init__(self):
        self.out = None

    def forward(self, x, out=None):
        """x: (..., N, H) -> y: (..., N, H). Keeps y: y > 0 exactly where x > 0,
        so y is all backward needs (``out`` may be x itself)."""
        xp = get_namespace(x)
        self.out = xp.maximum(x, 0.0, out=out)
        return self.out

    def backward(self, dout, out=None):
        """dout: (..., N, H) -> dx: (..., N, H), dout passed where x > 0, else 0."""
        _need_forward(self, self.out)
        xp = get_namespace(dout)
        # Multiplying by the mask (not where()) keeps dout's sign on zeros and a
        # NaN as NaN, and is one fast pass.
        return xp.multiply(dout, self.out > 0, out=out)


def exp_neg_abs(z, out=None):
    """exp(-|z|), in (0, 1] for every z: the one exp both the sigmoid and the loss need."""
    xp = get_namespace(z)
    e = xp.abs(z, out=out)
    e = xp.negative(e, out=out)
    return xp.exp(e, out=out)


def sigmoid(z, *, e=None, out=None):
    """1 / (1 + exp(-z)) computed so that no finite z overflows.

    Written as exp(min(z, 0)) / (1 + exp(-|z|)): for z >= 0 that is
    1 / (1 + exp(-z)); for z < 0, multiplying top and bottom by exp(z) gives
    exp(z) / (1 + exp(z)). exp only ever sees numbers <= 0, so it lies in
    (0, 1]: no overflow, and tiny outputs keep their full relative precision.

    One exp serves both: exp(min(z, 0)) is exp(-|z|) where z < 0 and 1 where
    z >= 0, and exp(-|z|) <= 1, so it equals max(exp(-|z|), z >= 0), bit for
    bit (NaN stays NaN). e: exp(-|z|) if the caller has it already (the loss does).
    """
    xp = get_namespace(z)
    e = exp_neg_abs(z) if e is None else e
    s = xp.greater_equal(z, 0.0, out=out)   # 1.0 where z >= 0 (into a float buffer if given)
    s = xp.maximum(e, s, out=out)           # exp(min(z, 0))
    return xp.divide(s, 1.0 + e, out=out)


class Sigmoid:
    """y = sigmoid(x); its derivative y * (1 - y) reuses the output."""

    def __init__(self):
        self.out = None

    def forward(self, x, out=None):
        """x: (..., N, D) -> y: (..., N, D) in [0, 1]. Keeps y."""
        self.out = sigmoid(x, out=out)
        return self.out

    def backward(self, dout, out=None):
        """dout: (..., N, D) -> dx: (..., N, D) = dout * y * (1 - y)."""
        _need_forward(self, self.out)
        xp = get_namespace(dout)
        dx = xp.multiply(dout, self.out, out=out)
        dx *= 1.0 - self.out
        return dx
