"""Training and evaluation loops: shuffled mini-batches, Adam, a history.

What it teaches: an epoch is one pass over a fresh shuffle of the training
set in mini-batches; each mini-batch is forward, loss, backward, update:

    loss, grads = model.loss(xb)
    optimizer.step(model.params, grads)

``train_step`` is exactly that, run fast: the layers write into a Workspace
allocated once, and the optimizer updates the model's flat buffers (every
parameter in one array) instead of one array per W and b. Same code, same
numbers, bit for bit; edit a layer and ``fit`` changes with it.

The same loop trains a stack of K models (``Autoencoder.stack``) as one: each
batch is then K batches, one per model from its own shuffle, (K, N, D), and
every number below is K numbers (minae.sweep builds the stack).

Two numbers are recorded per epoch, as Keras does:
    train_bce  the sample-weighted mean of the mini-batch losses seen during
               the epoch (the weights change while it is measured)
    val_bce    ``evaluate`` on the validation set after the epoch: the exact
               mean BCE over every pixel of every validation image.
Losses are summed on the device and read once per epoch, because reading a
GPU number forces the CPU to wait for the GPU.

Callbacks (the live view, TensorBoard, a progress display, a stop button)
are objects with ``on_epoch_end(epoch, history, model)`` and, if they need
it, ``close(history, model)``; ``history`` is what ``fit`` returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from minae._progress import progress_bar
from minae.backend import get_namespace, is_cupy
from minae.checks import positive_int
from minae.checks import seed as check_seed
from minae.diagnostics import DIAG_ROWS, epoch_diagnostics
from minae.losses import bce_with_logits, bce_with_logits_loss
from minae.optim import Adam


class StopTraining(Exception):
    """Raise from a callback's ``on_epoch_end`` to end training after that epoch
    (a stop button, early stopping); ``fit`` returns the history so far."""


@dataclass
class History:
    """Per-epoch record of a training run (lists have one entry per epoch)."""

    train_bce: list = field(default_factory=list)
    val_bce: list = field(default_factory=list)
    epoch_seconds: list = field(default_factory=list)
    diverged_epoch: int | None = None   # 1-based epoch whose loss became NaN/inf
    diagnostics: list = field(default_factory=list)   # per epoch, see minae.diagnostics

    @property
    def diverged(self):
        return self.diverged_epoch is not None

    def as_dict(self):
        return {"train_bce": self.train_bce, "val_bce": self.val_bce,
                "epoch_seconds": self.epoch_seconds, "diverged_epoch": self.diverged_epoch,
                "diagnostics": self.diagnostics}


def _on_backend(model, x, name, check=True):
    """Place a dataset on the model's device once, in its dtype; check it once.
    Any array-like (a list of rows, another library's array) is accepted."""
    # CuPy 14's arrays answer no __array_namespace__: asked by module (backend.is_cupy).
    if not (isinstance(x, np.ndarray) or is_cupy(x) or hasattr(x, "__array_namespace__")):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of shape (N, {model.input_dim}) with numbers in "
                             f"[0, 1], got {type(x).__name__} ({exc})") from None
    if isinstance(x, np.ndarray) and model.backend.name != "numpy":
        x = model.backend.asarray(x)
    if x.dtype != model.backend.dtype(model.dtype):
        xp = get_namespace(x)
        x = xp.astype(x, model.backend.dtype(model.dtype))
    if check:
        model.check_input(x, name)
    return x


def _per_row(total, n, model):
    """A device sum over n rows, read once (a sync on a GPU) and divided by n: a
    float, or for a stack a host array of K values (divided in their dtype)."""
    if model.stack_size is None:
        return float(total) / n
    return model.backend.to_host(total) / n


def batch_slices(n, batch_size):
    """(start, stop) of consecutive batches over n rows; the last may be short."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def evaluate(model, x, *, batch_size=1024, check=True):
    """Exact mean BCE of the model's reconstructions of x: (N, D) -> float
    (for a stack of K models, a NumPy array of K floats).

    Batches only bound memory: each batch's mean is weighted by its row
    count, so the result equals the BCE over the whole set at once.
    """
    if check:
        x = _on_backend(model, x, "x")
    n = x.shape[0]
    total = 0.0
    for start, stop in batch_slices(n, positive_int(batch_size, "batch_size")):
        xb = x[start:stop]
        total = total + bce_with_logits_loss(model.forward(xb), xb, check=False) * (stop - start)
    return _per_row(total, n, model)


def train_step(model, optimizer, xb, work=None, bce=bce_with_logits):
    """One mini-batch: forward, BCE, backward, update. xb: (N, D) -> loss (0-d array;
    for a stack xb: (K, N, D) -> (K,)).

    With a Workspace the layers write into its buffers; the optimizer steps the
    model's flat buffers, so Adam is a handful of whole-model operations. No
    device sync: the loss stays on the device. bce: the loss function.
    """
    loss, _ = model.loss(xb, check=False, work=work, bce=bce)
    optimizer.step([model.flat_params], [model.flat_grads])
    return loss


def _check_callables(optimizer, callbacks, step):
    """TypeError naming the argument that cannot do its job (else an AttributeError
    from deep inside the loop, after the first epoch's work)."""
    steps = callable(getattr(optimizer, "step", None)) and not isinstance(optimizer, type)
    if optimizer is not None and not steps:
        raise TypeError(f"optimizer must be an optimizer object with a step(params, grads) method, such as "
                        f"Adam() or SGD(0.01), got {optimizer!r}")
    for callback in callbacks:
        if not callable(getattr(callback, "on_epoch_end", None)):
            raise TypeError(f"each callback must have an on_epoch_end(epoch, history, model) method; "
                            f"{callback!r} has none")
    if not callable(step):
        raise TypeError(f"step must be a function step(model, optimizer, xb, work) -> loss, got {step!r}")


def fit(model, x_train, x_val=None, *, epochs=100, batch_size=256, optimizer=None, seed=0,
        progress=None, callbacks=(), diagnostics=True, step=train_step, check_data=True):
    """Train ``model`` on x_train (N, D) and return a History.

    optimizer:    any object with ``step(params, grads)``; default Adam().
    seed:         seeds the per-epoch shuffles (numpy Generator on the host).
    progress:     True/False, or None = a tqdm bar only on a terminal.
    callbacks:    objects (or None) with on_epoch_end(epoch, history, model), called
                  after each epoch (e.g. minae.live.LiveView,
                  minae.tensorboard.TensorBoard), and close(history, model)
                  once at the end if they have it; on_epoch_end may raise
                  StopTraining to end training there.
    diagnostics:  record minae.diagnostics' per-layer numbers each epoch in
                  history.diagnostics (on by default).
    step:         the training step, step(model, optimizer, xb, work) -> loss;
                  ``train_step`` unless an engine fuses it (minae.kernels).
    check_data:   False skips the one-time checks of the data (finite, in
                  [0, 1]) for callers that already made them, e.g. benchmarks.
    A loss that becomes NaN or infinite stops training: history.diverged_epoch
    says when, and the model keeps the weights it had then.

    A stack of K models trains as one (minae.sweep.fit_stacked is the usual
    way in): seed is then K seeds, one shuffle per model; the optimizer may
    hold one learning rate per model; it returns K Histories; and a model
    that diverges is recorded and keeps its weights of that epoch while the
    others go on.
    """
    k = model.stack_size
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if k is not None and not hasattr(seed, "__len__"):
        raise ValueError(f"a stack of {k} models needs {k} shuffle seeds (a list, one per model), "
                         f"got {seed!r}")
    seeds = [check_seed(seed, "seed")] if k is None else [check_seed(s, "seed") for s in seed]
    if k is not None and len(seeds) != k:
        raise ValueError(f"a stack of {k} models needs {k} shuffle seeds, got {len(seeds)}")
    callbacks = () if callbacks is None else tuple(callbacks)
    _check_callables(optimizer, callbacks, step)
    # Checked as one model's data, (N, D): every model of a stack sees the same rows.
    x_train = _on_backend(model, x_train, "x_train", check_data)
    if x_train.ndim != 2:
        raise ValueError(f"x_train must have shape (N, {model.input_dim}), got {tuple(x_train.shape)}")
    if x_val is not None:
        x_val = _on_backend(model, x_val, "x_val", check_data)
    optimizer = Adam() if optimizer is None else optimizer
    be, xp = model.backend, model.backend.xp
    n, d = x_train.shape
    rngs = [np.random.default_rng(s) for s in seeds]
    work = model.workspace(min(batch_size, n))   # no batch is larger than the data
    histories = [History() for _ in seeds]
    frozen = {}   # stack members that diverged: {member: its weights then}
    bar = progress_bar(range(1, epochs + 1), desc="train", unit="epoch", show=progress)
    result = histories[0] if k is None else histories
    try:
        for epoch in bar:
            start_time = time.perf_counter()
            order = be.asarray(np.stack([rng.permutation(n) for rng in rngs]))   # a new shuffle each epoch
            total = 0.0
            slices = batch_slices(n, batch_size)
            for start, stop in slices:
                # A fresh array, not out=: NumPy's take buffers its out= (to check the
                # indices first), which made it three times slower.
                if k is None:
                    xb = xp.take(x_train, order[0, start:stop], axis=0)   # (N_b, D), the shuffled rows
                else:   # each model its own rows: (K, N_b, D)
                    idx = xp.reshape(order[:, start:stop], (-1,))
                    xb = xp.reshape(xp.take(x_train, idx, axis=0), (k, stop - start, d))
                if diagnostics and stop == n:
                    before = model.flat_params.copy()   # to measure the epoch's last update
                total = total + step(model, optimizer, xb, work) * (stop - start)
            train = _per_row(total, n, model)   # the one read of the device per epoch
            val = evaluate(model, x_val, check=False) if x_val is not None else [math.nan] * len(seeds)
            be.synchronize()
            seconds = time.perf_counter() - start_time
            # After the timing: what the numbers cost is not the model's.
            diags = epoch_diagnostics(model, before, x_val[:DIAG_ROWS] if x_val is not None else xb) \
                if diagnostics else None
            if k is None:   # one model: one of each, as a stack of one would have
                train, val, diags = [train], [val] if x_val is not None else val, [diags]
            for m, history in enumerate(histories):
                if history.diverged:
                    continue
                history.train_bce.append(float(train[m]))
                history.val_bce.append(float(val[m]))
                history.epoch_seconds.append(seconds)
                if diagnostics:
                    history.diagnostics.append(diags[m])
                if not math.isfinite(history.train_bce[-1]) or (x_val is not None
                                                                 and not math.isfinite(history.val_bce[-1])):
                    history.diverged_epoch = epoch
                    if k is not None:
                        frozen[m] = [p[m].copy() for p in model.params]
            if k is None:
                bar.set_postfix(train=f"{train[0]:.4f}", val=f"{val[0]:.4f}")
            stop = False
            for callback in callbacks:   # every callback sees the epoch, even after one asked to stop
                try:
                    callback.on_epoch_end(epoch, result, model)
                except StopTraining:
                    stop = True
            if stop:
                break
            if all(h.diverged for h in histories):
                break
    finally:   # an interrupted fit closes its bar and its callbacks too
        bar.close()
        for m, weights in frozen.items():   # a diverged member keeps its weights of that epoch
            for p, w in zip(model.params, weights):
                p[m] = w
        for callback in callbacks:
            if hasattr(callback, "close"):
                callback.close(result, model)
    return result
