"""The autoencoder: Dense + ReLU layers down to a code and back, sigmoid out.

What it teaches: a whole network's backward pass is its layers' backward
passes run in reverse order, each handing dL/d(input) to the layer before.

For hidden sizes [H1, ..., Hk] the model is

    x (N, D) -> Dense(D, H1) -> ReLU -> ... -> Dense(H_{k-1}, Hk) -> ReLU
             -> Dense(Hk, D) -> logits z (N, D) -> sigmoid -> reconstruction

Training fuses the final sigmoid into the loss (``bce_with_logits``), so the
output layer's upstream gradient is simply (sigmoid(z) - x) / (N * D).

Public contract (other code in minae relies on it):
    model.params            live parameter arrays [W1, b1, W2, b2, ...]
    loss, grads = model.loss(x)   forward, BCE, backward; grads match params
    model.predict(x)        reconstructions in [0, 1]
    model.encode(x, layer=k)  activations after hidden layer k (k=1 first)
    model.save(path) / Autoencoder.load(path)
"""

from __future__ import annotations

import json
import numbers
import zipfile
from pathlib import Path

import numpy as np

from minae._io import atomic_open
from minae.backend import resolve_backend
from minae.errors import CheckpointError
from minae.layers import Dense, ReLU, sigmoid
from minae.losses import bce_with_logits, check_unit_interval

CHECKPOINT_FORMAT = "minae-autoencoder"
CHECKPOINT_VERSION = 1


def positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
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
        self.input_dim = positive_int(input_dim, "input_dim")
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden must be a list of layer widths, got {hidden!r}")
        self.hidden = [positive_int(h, f"hidden layer width {i + 1}") for i, h in enumerate(hidden)]
        if not self.hidden:
            raise ValueError("hidden must name at least one hidden layer, e.g. [32, 16, 32]")
        self.dtype = _dtype_name(dtype)
        self.seed = int(seed)
        self.init = init
        self.backend = resolve_backend(backend)
        rng = np.random.default_rng(self.seed)
        sizes = [self.input_dim, *self.hidden, self.input_dim]
        self.dense = [Dense(d_in, d_out, rng=rng, init=init, backend=self.backend, dtype=self.dtype)
                      for d_in, d_out in zip(sizes[:-1], sizes[1:])]
        self.relus = [ReLU() for _ in self.hidden]

    def __repr__(self):
        return (f"Autoencoder(input_dim={self.input_dim}, hidden={self.hidden}, "
                f"dtype={self.dtype!r}, backend={self.backend.name!r})")

    # -- parameters ---------------------------------------------------------
    @property
    def params(self):
        """[W1, b1, W2, b2, ...]: the live arrays, updated in place by optimizers."""
        return [p for layer in self.dense for p in (layer.W, layer.b)]

    @property
    def grads(self):
        """[dW1, db1, ...] from the last backward pass, matching ``params``."""
        return [g for layer in self.dense for g in (layer.dW, layer.db)]

    @property
    def code_layer(self):
        """k of the narrowest hidden layer (the bottleneck), counted from 1."""
        return self.hidden.index(min(self.hidden)) + 1

    # -- checks ---------------------------------------------------------------
    def check_input(self, x, name="x"):
        """Raise ValueError unless x is (N, D) on this backend, finite, in [0, 1]."""
        if getattr(x, "ndim", None) != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"{name} must have shape (N, {self.input_dim}), got "
                             f"{tuple(getattr(x, 'shape', ()))}; flatten images to rows first")
        check_unit_interval(x, name)

    # -- forward and backward ----------------------------------------------
    def forward(self, x):
        """x: (N, D) -> logits z: (N, D). Every layer keeps what backward needs."""
        h = x
        for dense, relu in zip(self.dense, self.relus):
            h = relu.forward(dense.forward(h))   # (N, H_i)
        return self.dense[-1].forward(h)

    def backward(self, dz):
        """dz: (N, D) gradient of the loss w.r.t. the logits; fills ``grads``."""
        dh = self.dense[-1].backward(dz)
        for dense, relu in zip(reversed(self.dense[:-1]), reversed(self.relus)):
            dh = dense.backward(relu.backward(dh))
        return dh

    def loss(self, x, *, check=True):
        """Forward, BCE against x itself, backward.

        x: (N, D) in [0, 1]. Returns (loss, grads): loss a 0-d array (``float``
        reads it; on a GPU that synchronises), grads matching ``params``.
        ``check=False`` skips the input checks (the trainer checks once per set).
        """
        if check:
            self.check_input(x)
        z = self.forward(x)
        loss, dz = bce_with_logits(z, x, check=False)
        self.backward(dz)
        return loss, self.grads

    def predict(self, x):
        """x: (N, D) -> reconstructions (N, D) in [0, 1]."""
        return sigmoid(self.forward(x))

    def encode(self, x, layer=1):
        """x: (N, D) -> (N, H_layer), activations after hidden layer ``layer``."""
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) \
                or not 1 <= layer <= len(self.hidden):
            raise ValueError(f"layer must be an integer from 1 to {len(self.hidden)} "
                             f"(the hidden layers), got {layer!r}")
        h = x
        for dense, relu in zip(self.dense[:layer], self.relus[:layer]):
            h = relu.forward(dense.forward(h))
        return h

    # -- devices and files ----------------------------------------------------
    def to(self, backend):
        """Move every parameter to another backend; returns self."""
        new = resolve_backend(backend)
        for layer in self.dense:
            layer.W = new.asarray(self.backend.to_host(layer.W))
            layer.b = new.asarray(self.backend.to_host(layer.b))
            layer.dW = layer.db = layer.x = None
        self.backend = new
        return self

    def metadata(self):
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "input_dim": self.input_dim, "hidden": self.hidden, "dtype": self.dtype,
                "seed": self.seed, "init": self.init}

    def save(self, path, extra=None):
        """Write weights (.npz) with JSON metadata; atomic (never half-written).

        extra: optional JSON-serialisable dict stored beside the metadata.
        """
        path = Path(path)
        meta = self.metadata()
        if extra is not None:
            meta["extra"] = extra
        arrays = {"minae_meta": np.array(json.dumps(meta))}
        for i, layer in enumerate(self.dense, start=1):
            arrays[f"W{i}"] = self.backend.to_host(layer.W)
            arrays[f"b{i}"] = self.backend.to_host(layer.b)
        with atomic_open(path) as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path, backend="numpy"):
        """Rebuild a model saved with ``save`` onto ``backend``."""
        meta, arrays = _read_checkpoint(path)
        model = cls(meta["input_dim"], meta["hidden"], seed=meta["seed"], dtype=meta["dtype"],
                    backend=backend, init=meta["init"])
        for i, layer in enumerate(model.dense, start=1):
            for name, current in ((f"W{i}", layer.W), (f"b{i}", layer.b)):
                if name not in arrays or arrays[name].shape != tuple(current.shape):
                    raise CheckpointError(f"{path}: array {name} is missing or has the wrong "
                                          f"shape for hidden={meta['hidden']}; the file is damaged")
            layer.W = model.backend.asarray(arrays[f"W{i}"], model.dtype)
            layer.b = model.backend.asarray(arrays[f"b{i}"], model.dtype)
        model.extra = meta.get("extra")
        return model


def _read_checkpoint(path):
    """Return (metadata dict, {name: array}) or raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    not_ours = f"{path} is not a minae checkpoint (an .npz written by Autoencoder.save)"
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{not_ours}: {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):   # a bare .npy array
        raise CheckpointError(f"{not_ours}: it holds a single array")
    try:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{not_ours}: {exc}") from exc
    if "minae_meta" not in arrays:
        raise CheckpointError(f"{path} is not a minae checkpoint: it has no minae_meta entry")
    try:
        meta = json.loads(str(arrays.pop("minae_meta")))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its minae metadata is not valid JSON ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: metadata format is {meta.get('format')!r}, "
                              f"expected {CHECKPOINT_FORMAT!r}")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')!r} is not "
                              f"supported (this minae reads version {CHECKPOINT_VERSION})")
    return meta, arrays
