"""The autoencoder: Dense + ReLU layers down to a code and back, sigmoid out.

What it teaches: a whole network's backward pass is its layers' backward
passes run in reverse order, each handing dL/d(input) to the layer before.

For hidden sizes [H1, ..., Hk] the model is

    x (N, D) -> Dense(D, H1) -> ReLU -> ... -> Dense(H_{k-1}, Hk) -> ReLU
             -> Dense(Hk, D) -> logits z (N, D) -> sigmoid -> reconstruction

Training fuses the final sigmoid into the loss (``bce_with_logits``), so the
output layer's upstream gradient is simply (sigmoid(z) - x) / (N * D).

Where the numbers live: all parameters of a model sit back to back in one flat
buffer, ``flat_params``, and all gradients in ``flat_grads``; each layer's W,
b, dW and db are views into them. The layers neither know nor care, but the
optimizer can then update the whole model in a handful of operations
(``optimizer.step([model.flat_params], [model.flat_grads])``, what ``fit``
does), each over one long array instead of one per layer.

A *stack* of K models of one architecture (``Autoencoder.stack(models)``) is
the same class with a leading axis K on every parameter: W (K, D_in, D_out),
flat buffers (K * P,), each parameter's K copies side by side. The same
layers train it, because they work on the last two axes; that is how a
learning-rate sweep trains as one (minae.sweep).

Public contract (other code in minae relies on it):
    model.params            live parameter arrays [W1, b1, W2, b2, ...]
    loss, grads = model.loss(x)   forward, BCE, backward; grads match params
    model.predict(x)        reconstructions in [0, 1]
    model.encode(x, layer=k)  activations after hidden layer k (k=1 first)
    model.decode(codes)     the layers after the code layer: codes -> reconstructions
    model.save(path) / Autoencoder.load(path)

Longer than the other teaching modules (about 400 lines) because three
things here are one design: the network, the flat buffers its layers' arrays
are views into, and the Workspace whose buffers those layers write into.
Checkpoint files are minae.checkpoint's.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from minae import checkpoint
from minae.backend import DTYPES, get_namespace, is_cupy, resolve_backend
from minae.checks import physical_memory, positive_int
from minae.checks import seed as check_seed
from minae.layers import Dense, ReLU, init_weights, sigmoid
from minae.losses import bce_with_logits, check_unit_interval


def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return name


class Autoencoder:
    """A fully connected autoencoder with ReLU hidden layers and a sigmoid output.

    input_dim: D, features per example (784 for MNIST).
    hidden:    widths [H1, ..., Hk] of the hidden layers, e.g. [128, 64, 32, 64, 128].
    seed:      seeds the host RNG that draws every initial weight.
    dtype:     "float32" (default, as Keras) or "float64" (for gradient checks).
    backend:   "numpy", "cupy", "auto", or a minae.backend.Backend.
    init:      weight initialiser name (default "glorot_uniform", as Keras).
    """

    def __init__(self, input_dim, hidden, *, seed=0, dtype="float32", backend="numpy",
                 init="glorot_uniform"):
        input_dim = positive_int(input_dim, "input_dim")
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden must be a list of layer widths, got {hidden!r}")
        hidden = [positive_int(h, f"hidden layer width {i + 1}") for i, h in enumerate(hidden)]
        if not hidden:
            raise ValueError("hidden must name at least one hidden layer, e.g. [32, 16, 32]")
        seed = check_seed(seed, "seed")
        rng = np.random.default_rng(seed)
        sizes = [input_dim, *hidden, input_dim]
        # The weights are drawn in float64, then copied into the model's buffers: said
        # before NumPy's "Unable to allocate" names a shape instead of the argument.
        need = 8 * sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
        have = physical_memory()
        if have is not None and need > have:
            raise ValueError(f"input_dim {input_dim} and hidden {hidden} make a model of "
                             f"{need / 2**30:,.0f} GiB of weights (drawn in float64), more than this "
                             f"machine's {have / 2**30:,.0f} GiB; choose narrower layers")
        # Drawn on the host, layer by layer from one generator, so that a CPU run
        # and a GPU run start from the very same weights.
        weights = [init_weights(init, rng, d_in, d_out) for d_in, d_out in zip(sizes[:-1], sizes[1:])]
        biases = [np.zeros(d_out) for d_out in sizes[1:]]   # zeros, as Keras
        self._build(input_dim, hidden, _dtype_name(dtype), resolve_backend(backend), weights, biases,
                    seed=seed, init=init)

    def _build(self, input_dim, hidden, dtype, backend, weights, biases, *, seed, init, stack_size=None):
        """Set every attribute of a model (or of a stack of K, with weights (K, D_in, D_out)):
        the one place they are set, for new, stacked and loaded models alike."""
        self.input_dim, self.hidden, self.dtype, self.backend = input_dim, list(hidden), dtype, backend
        self.seed, self.init, self.stack_size = seed, init, stack_size
        sizes = [input_dim, *self.hidden, input_dim]
        # Layers without arrays of their own: _flatten gives them views into the flat buffers.
        self.dense = [Dense(d_in, d_out, init=None) for d_in, d_out in zip(sizes[:-1], sizes[1:])]
        self.relus = [ReLU() for _ in self.hidden]
        self.extra = None   # what save(extra=...) stored, once loaded
        self._flatten(weights, biases)
        return self

    @classmethod
    def stack(cls, models):
        """K models of one architecture as one stacked model (copies of their weights).

        Every parameter gains a leading axis K; ``forward``, ``loss`` and an
        optimizer then treat all K at once. ``unstack_into`` copies them back.
        """
        models = list(models)
        if not models:
            raise ValueError("stack needs at least one model")
        first = models[0]
        for m in models:
            if m.stack_size is not None:
                raise ValueError("stack single models, not stacks")
            if (m.input_dim, m.hidden, m.dtype, m.backend.name) != (first.input_dim, first.hidden,
                                                                     first.dtype, first.backend.name):
                raise ValueError("stacked models must share input_dim, hidden, dtype and backend")
        xp, layers = first.backend.xp, range(len(first.dense))
        return cls.__new__(cls)._build(
            first.input_dim, first.hidden, first.dtype, first.backend,
            [xp.stack([m.dense[i].W for m in models]) for i in layers],
            [xp.stack([m.dense[i].b for m in models]) for i in layers],
            seed=None, init=first.init, stack_size=len(models))

    def unstack_into(self, k, model):
        """Copy model k of this stack into ``model`` (same architecture), in place."""
        for dst, src in zip(model.params, self.params, strict=True):
            dst[...] = src[k]

    def _flatten(self, weights, biases):
        """Put the given W and b arrays into one flat buffer (and dW, db into another);
        every layer then holds views into them.

        One model: [W1, b1, W2, ...] back to back, (P,). A stack of K models:
        the same blocks, each holding all K models' copies, (K * P,): block
        W1 is then one contiguous (K, D_in, D_out) array, what a batched
        matmul reads and writes without copying (on a GPU, CuPy would copy a
        strided one first). ``model_index`` says which model each element is.
        """
        be = self.backend
        lead = () if self.stack_size is None else (self.stack_size,)
        shapes = [tuple(a.shape[len(lead):]) for pair in zip(weights, biases) for a in pair]
        sizes = [math.prod(lead + shape) for shape in shapes]   # elements of each block
        self.flat_params = be.zeros((sum(sizes),), self.dtype)   # (P,) or (K * P,)
        self.flat_grads = be.zeros((sum(sizes),), self.dtype)
        self._layout = (lead, shapes, sizes)
        params, grads = self.views(self.flat_params), self.views(self.flat_grads)
        if not all(_is_view_of(v, self.flat_params) for v in params):
            # A library whose reshape copied here would train copies the optimizer never sees.
            raise RuntimeError(f"{be.name}'s reshape copied a slice of the flat parameter buffer "
                               "instead of viewing it; minae cannot train on this array library")
        for i, layer in enumerate(self.dense):
            params[2 * i][...] = _on(be, weights[i], self.dtype)
            params[2 * i + 1][...] = _on(be, biases[i], self.dtype)
            layer.W, layer.b = params[2 * i], params[2 * i + 1]
            layer.dW, layer.db = grads[2 * i], grads[2 * i + 1]
            layer.x = None
        self.model_index = None   # each block of a stack holds its K models' copies in turn
        if lead:
            index = [np.repeat(np.arange(lead[0]), size // lead[0]) for size in sizes]
            self.model_index = be.asarray(np.concatenate(index))

    def views(self, flat):
        """[W1, b1, W2, b2, ...] as views into ``flat``, any array laid out like
        ``flat_params`` (the gradients, an optimizer's moments, a difference)."""
        lead, shapes, sizes = self._layout
        out, start = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(get_namespace(flat).reshape(flat[start:start + size], lead + shape))
            start += size
        return out

    def model_flat(self, flat, k):
        """Model k's own (P,) buffer, laid out as one model's ``flat_params``, copied out
        of ``flat``, a stack's (K * P,) array (its parameters, gradients or moments)."""
        xp = get_namespace(flat)
        return xp.concat([xp.reshape(v[k], (-1,)) for v in self.views(flat)])

    def __repr__(self):
        stacked = "" if self.stack_size is None else f", stack_size={self.stack_size}"
        return (f"Autoencoder(input_dim={self.input_dim}, hidden={self.hidden}, "
                f"dtype={self.dtype!r}, backend={self.backend.name!r}{stacked}) "
                f"with {self.n_params:,} parameters")

    @property
    def n_params(self):
        """Parameters of one model (every W and b): P (a stack's flat buffer holds K * P)."""
        lead, _, sizes = self._layout
        return sum(sizes) // (lead[0] if lead else 1)

    def summary(self):
        """A table of the layers, their shapes and parameter counts, as a string."""
        lines = [f"{'layer':<18}{'W':>12}{'b':>9}{'params':>10}"]
        sizes = [self.input_dim, *self.hidden, self.input_dim]
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            act = "sigmoid" if i == len(sizes) - 1 else "ReLU"
            role = " (code)" if i == self.code_layer else ""
            lines.append(f"{f'Dense {i} + {act}':<18}{f'({d_in}, {d_out})':>12}{f'({d_out},)':>9}"
                         f"{d_in * d_out + d_out:>10,}{role}")
        lines.append(f"{'total':<39}{self.n_params:>10,}")
        return "\n".join(lines)

    # -- parameters ---------------------------------------------------------
    @property
    def params(self):
        """[W1, b1, W2, b2, ...]: live views into ``flat_params``, updated in place by optimizers."""
        return [p for layer in self.dense for p in (layer.W, layer.b)]

    @property
    def grads(self):
        """[dW1, db1, ...]: views into ``flat_grads``, matching ``params``; the next
        backward pass overwrites them (copy one to keep it)."""
        return [g for layer in self.dense for g in (layer.dW, layer.db)]

    @property
    def code_layer(self):
        """k of the narrowest hidden layer (the bottleneck), counted from 1."""
        return self.hidden.index(min(self.hidden)) + 1

    # -- checks ---------------------------------------------------------------
    def check_shape(self, x, name="x"):
        """Raise ValueError unless x is (N, D) with N >= 1 (or (K, N, D) for a stack)."""
        ndims = (2,) if self.stack_size is None else (2, 3)
        if not hasattr(x, "shape"):   # a list says nothing of its shape: say what it is
            raise ValueError(f"{name} must be an array of shape (N, {self.input_dim}), got a "
                             f"{type(x).__name__}; make it one with numpy.asarray(x, dtype=numpy.float32)")
        shape = tuple(x.shape)
        if getattr(x, "ndim", None) not in ndims or x.shape[-1] != self.input_dim \
                or (len(shape) == 3 and shape[0] != self.stack_size):
            want = f"(N, {self.input_dim})" + ("" if self.stack_size is None
                                                 else f" or ({self.stack_size}, N, {self.input_dim})")
            raise ValueError(f"{name} must have shape {want}, got {shape}; flatten images to rows first")
        if shape[-2] == 0:
            raise ValueError(f"{name} has no rows (shape {shape}); give at least one example")

    def check_input(self, x, name="x"):
        """Raise ValueError unless x has the right shape (``check_shape``) and is finite, in [0, 1]."""
        self.check_shape(x, name)
        check_unit_interval(x, name)

    def workspace(self, batch_size):
        """Buffers for training steps of up to ``batch_size`` rows (see Workspace)."""
        return Workspace(self, batch_size)

    # -- forward and backward ----------------------------------------------
    def forward(self, x, work=None):
        """x: (..., N, D) -> logits z: (..., N, D). Every layer keeps what backward needs.

        work: an optional Workspace; the layers then write into its buffers.
        """
        rows = None if work is None else work.rows(x.shape[-2])
        h = x
        for i, (dense, relu) in enumerate(zip(self.dense, self.relus)):
            a = None if rows is None else rows.act[i]
            h = relu.forward(dense.forward(h, out=a), out=a)   # (..., N, H_i); ReLU in place
        return self.dense[-1].forward(h, out=None if rows is None else rows.act[-1])

    def backward(self, dz, work=None):
        """dz: (..., N, D), the loss's gradient w.r.t. the logits; fills ``grads``.

        The first layer computes no dL/dx: training never needs the gradient
        of the data.
        """
        rows = None if work is None else work.rows(dz.shape[-2])
        dh = dz
        for i in range(len(self.dense) - 1, -1, -1):
            buf = None if rows is None or i == 0 else rows.dh[i - 1]
            dh = self.dense[i].backward(dh, out=buf, need_dx=i > 0)
            if i > 0:   # through the ReLU that hidden layer i's output went through
                # In place into buf, which the model owns (never the caller's dz).
                dh = self.relus[i - 1].backward(dh, out=buf)

    def loss(self, x, *, check=True, work=None, bce=bce_with_logits):
        """Forward, BCE against x itself, backward.

        x: (N, D) in [0, 1] ((K, N, D) or (N, D) for a stack). Returns (loss,
        grads): loss a 0-d array ((K,) for a stack; ``float`` reads it, and on
        a GPU that synchronises), grads matching ``params``.
        ``check=False`` skips the input checks (the trainer checks once per set);
        ``work`` is an optional Workspace (``fit`` passes one); ``bce`` the
        loss function (minae.kernels passes its fused copy).
        """
        if check:
            self.check_input(x)
        z = self.forward(x, work)
        bce_work = None if work is None else work.rows(z.shape[-2]).bce
        loss, dz = bce(z, x, check=False, work=bce_work)
        self.backward(dz, work)
        return loss, self.grads

    def predict(self, x):
        """x: (..., N, D) -> reconstructions (..., N, D) in [0, 1]."""
        self.check_shape(x)
        return sigmoid(self.forward(x))

    def encode(self, x, layer=1):
        """x: (..., N, D) -> (..., N, H_layer), activations after hidden layer ``layer``."""
        layer = self._check_layer(layer)
        self.check_shape(x)
        h = x
        for dense, relu in zip(self.dense[:layer], self.relus[:layer]):
            h = relu.forward(dense.forward(h))
        return h

    def decode(self, codes, layer=None):
        """The layers after hidden layer ``layer`` (default: the code layer):
        codes (..., N, H_layer) -> reconstructions (..., N, D) in [0, 1].

        ``decode(encode(x, layer=k), layer=k)`` is ``predict(x)``, bit for bit:
        the same layers run on the same numbers, only split in two.
        """
        layer = self.code_layer if layer is None else self._check_layer(layer)
        width = self.hidden[layer - 1]
        shape = tuple(getattr(codes, "shape", ()))
        if getattr(codes, "ndim", None) not in ((2,) if self.stack_size is None else (2, 3)) \
                or shape[-1] != width or shape[-2] == 0:
            raise ValueError(f"codes for layer {layer} must have shape (N, {width}) with N >= 1, got {shape}")
        h = codes
        for dense, relu in zip(self.dense[layer:-1], self.relus[layer:]):
            h = relu.forward(dense.forward(h))
        return sigmoid(self.dense[-1].forward(h))

    def _check_layer(self, layer):
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) \
                or not 1 <= layer <= len(self.hidden):
            raise ValueError(f"layer must be an integer from 1 to {len(self.hidden)} "
                             f"(the hidden layers), got {layer!r}")
        return int(layer)

    # -- devices and files ----------------------------------------------------
    def to(self, backend):
        """Move every parameter to another backend; returns self."""
        new = resolve_backend(backend)
        weights = [new.asarray(self.backend.to_host(layer.W)) for layer in self.dense]
        biases = [new.asarray(self.backend.to_host(layer.b)) for layer in self.dense]
        self.backend = new
        self._flatten(weights, biases)
        return self

    def save(self, path, extra=None):
        """Write weights (.npz) with JSON metadata; atomic (never half-written).

        extra: optional JSON-serialisable dict stored beside the metadata.
        """
        return checkpoint.save(self, path, extra)

    @classmethod
    def load(cls, path, backend="numpy", finite=True):
        """Rebuild a model saved with ``save`` onto ``backend``. The file is checked
        first (minae.checkpoint); finite=False also loads NaN or infinite weights."""
        meta, weights, biases = checkpoint.read(path, finite=finite)
        model = cls.__new__(cls)._build(meta["input_dim"], meta["hidden"], meta["dtype"],
                                        resolve_backend(backend), weights, biases, seed=meta["seed"],
                                        init=meta["init"])
        model.extra = meta.get("extra")
        return model


def _is_view_of(view, flat):
    """Whether ``view`` shares ``flat``'s memory. CuPy's shares_memory sorts address
    arrays on the device and synchronises, so its pointers are compared instead."""
    if is_cupy(view):
        return flat.data.ptr <= view.data.ptr < flat.data.ptr + flat.nbytes
    xp = get_namespace(flat)
    return not hasattr(xp, "shares_memory") or xp.shares_memory(view, flat)


def _on(backend, a, dtype):
    """``a`` (a host array, or already the backend's) as the backend's array of ``dtype``."""
    return backend.asarray(a, dtype) if isinstance(a, np.ndarray) else a


class Workspace:
    """Preallocated buffers for training steps on up to ``batch_size`` rows.

    act[i]: (..., N, width of layer i's output) -- each Dense writes here and
            its ReLU overwrites it in place; the last holds the logits.
    dh[i]:  (..., N, H_i) -- gradient w.r.t. hidden layer i's output.
    bce:    two (..., N, D) scratch arrays for the loss and its gradient.
    ``rows(n)`` gives views of the first n rows (a short last batch).
    """

    def __init__(self, model, batch_size):
        lead = () if model.stack_size is None else (model.stack_size,)
        widths = [*model.hidden, model.input_dim]

        def buffer(width):
            return model.backend.empty(lead + (batch_size, width), model.dtype)

        self.batch_size = batch_size
        self.act = [buffer(w) for w in widths]
        self.dh = [buffer(h) for h in model.hidden]
        self.bce = (buffer(model.input_dim), buffer(model.input_dim))
        self._rows = {}

    def rows(self, n):
        if n > self.batch_size:
            raise ValueError(f"a batch of {n} rows is larger than the {self.batch_size} this "
                             "workspace was made for")
        if n not in self._rows:
            def cut(b):
                return b[..., :n, :]
            self._rows[n] = _Rows([cut(b) for b in self.act], [cut(b) for b in self.dh],
                                  tuple(cut(b) for b in self.bce))
        return self._rows[n]


@dataclass(frozen=True)
class _Rows:
    act: list
    dh: list
    bce: tuple
