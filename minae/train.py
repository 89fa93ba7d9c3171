"""Training and evaluation loops: shuffled mini-batches, Adam, a history.

What it teaches: an epoch is one pass over a fresh shuffle of the training
set in mini-batches; each mini-batch is forward, loss, backward, update:

    loss, grads = model.loss(xb)
    optimizer.step(model.params, grads)

``train_step`` is exactly that, run fast: the layers write into a Workspace
allocated once, and the optimizer updates the model's flat buffers (every
parameter in one array) instead of one array per W and b. Same code, same
numbers, bit for bit; edit a layer and ``fit`` changes with it.

Two numbers are recorded per epoch, as Keras does:
    train_bce  the sample-weighted mean of the mini-batch losses seen during
               the epoch (the weights change while it is measured)
    val_bce    ``evaluate`` on the validation set after the epoch: the exact
               mean BCE over every pixel of every validation image.
Losses are summed on the device and read once per epoch, because reading a
GPU number forces the CPU to wait for the GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from minae._progress import progress_bar
from minae.backend import get_namespace
from minae.checks import positive_int
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
    """Place a dataset on the model's device once; check it once."""
    if isinstance(x, np.ndarray) and model.backend.name != "numpy":
        x = model.backend.asarray(x)
    if x.dtype != model.backend.dtype(model.dtype):
        xp = get_namespace(x)
        x = xp.astype(x, model.backend.dtype(model.dtype))
    if check:
        model.check_input(x, name)
    return x


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
    if model.stack_size is not None:
        return model.backend.to_host(total) / n
    return float(total) / n   # float() reads the device: one sync per evaluation


def train_step(model, optimizer, xb, work=None, bce=bce_with_logits):
    """One mini-batch: forward, BCE, backward, update. xb: (N, D) -> loss (0-d array).

    With a Workspace the layers write into its buffers; the optimizer steps the
    model's flat buffers, so Adam is a handful of whole-model operations. No
    device sync: the loss stays on the device. bce: the loss function.
    """
    loss, _ = model.loss(xb, check=False, work=work, bce=bce)
    optimizer.step([model.flat_params], [model.flat_grads])
    return loss


def fit(model, x_train, x_val=None, *, epochs=100, batch_size=256, optimizer=None, seed=0,
        progress=None, desc="train", on_epoch_end=None, eval_batch_size=1024, check_data=True,
        step=train_step, diagnostics=True, callbacks=(), live=False):
    """Train ``model`` on x_train (N, D) and return a History.

    optimizer:    any object with ``step(params, grads)``; default Adam().
    seed:         seeds the per-epoch shuffles (numpy Generator on the host).
    progress:     True/False, or None = a tqdm bar only on a terminal.
    on_epoch_end: called as on_epoch_end(epoch, history) after each epoch.
    callbacks:    objects with on_epoch_end(epoch, history, model), called
                  after each epoch (e.g. minae.tensorboard.TensorBoard), and
                  close(history, model) once at the end if they have it;
                  on_epoch_end may raise StopTraining to end training there.
    diagnostics:  record minae.diagnostics' per-layer numbers each epoch in
                  history.diagnostics (on by default).
    live:         show minae.live.LiveView's figure each epoch (Jupyter, a
                  window, or, headless, nothing but one note).
    step:         the training step, step(model, optimizer, xb, work) -> loss;
                  ``train_step`` unless an engine fuses it (minae.kernels).
    check_data:   False skips the one-time checks of the data (finite, in
                  [0, 1]) for callers that already made them, e.g. benchmarks.
    A loss that becomes NaN or infinite stops training: history.diverged_epoch
    says when, and the model keeps the weights it had then.
    """
    if model.stack_size is not None:
        raise ValueError("fit trains one model; train a stack with minae.sweep.fit_stacked")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    x_train = _on_backend(model, x_train, "x_train", check_data)
    if x_val is not None:
        x_val = _on_backend(model, x_val, "x_val", check_data)
    optimizer = Adam() if optimizer is None else optimizer
    if live:
        from minae.live import LiveView

        shown = x_val if x_val is not None else x_train
        callbacks = [*callbacks, LiveView(model.backend.to_host(shown[:8]))]
    xp = get_namespace(x_train)
    n = x_train.shape[0]
    rng = np.random.default_rng(seed)
    work = model.workspace(batch_size)
    history = History()
    bar = progress_bar(range(1, epochs + 1), desc=desc, unit="epoch", show=progress)
    try:
        for epoch in bar:
            start_time = time.perf_counter()
            order = model.backend.asarray(rng.permutation(n))   # a new shuffle every epoch
            total = 0.0
            slices = batch_slices(n, batch_size)
            for start, stop in slices:
                # A fresh array, not out=: NumPy's take buffers its out= (to check the
                # indices first), which made it three times slower.
                xb = xp.take(x_train, order[start:stop], axis=0)   # (N_b, D), the shuffled rows
                if diagnostics and stop == slices[-1][1]:
                    before = model.flat_params.copy()   # to measure the epoch's last update
                loss = step(model, optimizer, xb, work)
                total = total + loss * (stop - start)
            train_bce = float(total) / n   # the one read of the device per epoch
            val_bce = evaluate(model, x_val, batch_size=eval_batch_size, check=False) \
                if x_val is not None else math.nan
            model.backend.synchronize()
            history.epoch_seconds.append(time.perf_counter() - start_time)
            history.train_bce.append(train_bce)
            history.val_bce.append(val_bce)
            if diagnostics:   # after the timing: what the numbers cost is not the model's
                rows = x_val[:DIAG_ROWS] if x_val is not None else xb
                history.diagnostics.append(epoch_diagnostics(model, before, rows))
            bar.set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)
            try:
                for callback in callbacks:
                    callback.on_epoch_end(epoch, history, model)
            except StopTraining:
                break
            if not math.isfinite(train_bce) or (x_val is not None and not math.isfinite(val_bce)):
                history.diverged_epoch = epoch
                break
    finally:   # an interrupted fit closes its bar and its callbacks too
        bar.close()
        for callback in callbacks:
            if hasattr(callback, "close"):
                callback.close(history, model)
    return history
