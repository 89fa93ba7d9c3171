"""Training a learning-rate sweep together: K models of one architecture as one stack.

What it teaches: batching is not only over examples. K models with the same
layer sizes can keep their weights as (K, D_in, D_out) arrays; every layer is
then one batched matmul for all K models, and every elementwise step one
operation over a (K, N, H) array. Nothing here re-derives the math: the
layers already work on the last two axes,

    h = x @ W + b            x: (K, N, D_in), W: (K, D_in, D_out), b: (K, D_out)
    dW = x^T @ dout          x^T: (K, D_in, N) -- only the last two axes swap
    db = dout summed over axis -2, each model's own batch
    dx = dout @ W^T

so a stack (``Autoencoder.stack``) trains with the same ``train_step`` as one
model, and one Adam whose learning rate is a list, one per model.

Each model keeps its own seed (initial weights and shuffles) and its own
learning rate, so the numbers are those of K separate ``fit`` runs (the tests
check it to 1e-12 in float64). On a GPU this replaces K small kernel launches
by one; on a CPU, BLAS runs the K products one after another anyway, so
there it does not pay (scripts/bench.py measures both).
"""

from __future__ import annotations

import math
import time

import numpy as np

from minae.checks import positive_int
from minae.diagnostics import DIAG_ROWS, epoch_diagnostics
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import History, _on_backend, batch_slices, evaluate, train_step


def _check_group(models, optimizers):
    if not models:
        raise ValueError("give at least one model to train")
    if len(models) != len(optimizers):
        raise ValueError(f"{len(models)} models but {len(optimizers)} optimizers")
    first = optimizers[0]
    for opt in optimizers:
        if type(opt) is not Adam:
            raise TypeError(f"stacked training implements Adam only, got {type(opt).__name__}")
        if (opt.beta1, opt.beta2, opt.eps, opt.form) != (first.beta1, first.beta2, first.eps, first.form):
            raise ValueError("stacked models may differ in learning rate only, not in beta1, beta2, "
                             "eps or Adam form")
        if not isinstance(opt.lr, float):
            raise ValueError("give each stacked model's optimizer a single learning rate")
    if any(opt.t for opt in optimizers):
        raise ValueError("stacked training starts Adam from scratch: pass optimizers that have not "
                         "taken a step yet")


def fit_stacked(models, optimizers, x_train, x_val=None, *, epochs=100, batch_size=256, seeds=None,
                on_epoch_end=None, eval_batch_size=1024):
    """Train K models together; the same numbers as ``fit`` on each separately.

    models, optimizers: K Autoencoders (same architecture) and K Adams that
    differ only in lr. x_train: (N, D), x_val: (M, D), shared by all K.
    seeds: K shuffle seeds (default 0 for all).
    on_epoch_end(k, epoch, history) is called for every model after each epoch.
    Returns K Histories; a diverging model is recorded and frozen in its
    Autoencoder at that epoch while the others go on.
    """
    _check_group(models, optimizers)
    K = len(models)
    epochs, batch_size = positive_int(epochs, "epochs"), positive_int(batch_size, "batch_size")
    seeds = [0] * K if seeds is None else list(seeds)
    if len(seeds) != K:
        raise ValueError(f"{K} models but {len(seeds)} shuffle seeds; give one per model")
    stack = Autoencoder.stack(models)                     # raises unless one architecture
    be = stack.backend
    xp = be.xp
    # Checked as one model's data, (N, D): every model of the stack sees the same rows.
    x_train = _on_backend(models[0], x_train, "x_train")
    x_val = _on_backend(models[0], x_val, "x_val") if x_val is not None else None
    opt0 = optimizers[0]
    adam = Adam([opt.lr for opt in optimizers], opt0.beta1, opt0.beta2, opt0.eps, opt0.form,
                models=stack.model_index)   # model k's elements step with lr k
    work = stack.workspace(batch_size)
    n, d = x_train.shape
    rngs = [np.random.default_rng(s) for s in seeds]
    histories = [History() for _ in range(K)]
    active = [True] * K
    for epoch in range(1, epochs + 1):
        start_time = time.perf_counter()
        # One shuffle per model, exactly as fit draws it: (K, N) row indices.
        order = be.asarray(np.stack([rng.permutation(n) for rng in rngs]))
        total = 0.0
        slices = batch_slices(n, batch_size)
        for start, stop in slices:
            idx = xp.reshape(order[:, start:stop], (-1,))
            xb = xp.reshape(xp.take(x_train, idx, axis=0), (K, stop - start, d))   # (K, N_b, D)
            if stop == slices[-1][1]:
                before = stack.flat_params.copy()   # the epoch's last update, for the diagnostics
            total = total + train_step(stack, adam, xb, work) * (stop - start)
        train = be.to_host(total) / n                                 # one read per epoch
        val = evaluate(stack, x_val, batch_size=eval_batch_size, check=False) if x_val is not None \
            else [math.nan] * K
        be.synchronize()
        seconds = time.perf_counter() - start_time
        diagnostics = epoch_diagnostics(stack, before, x_val[:DIAG_ROWS] if x_val is not None else xb[0])
        for k in range(K):
            if not active[k]:
                continue
            h = histories[k]
            h.train_bce.append(float(train[k]))
            h.val_bce.append(float(val[k]))
            h.epoch_seconds.append(seconds)
            h.diagnostics.append(diagnostics[k])
            if on_epoch_end is not None:
                on_epoch_end(k, epoch, h)
            if not math.isfinite(h.train_bce[-1]) or (x_val is not None and not math.isfinite(h.val_bce[-1])):
                h.diverged_epoch = epoch
                active[k] = False
                stack.unstack_into(k, models[k])   # frozen at the epoch it diverged
        if not any(active):
            break
    for k in range(K):
        if active[k]:
            stack.unstack_into(k, models[k])
        # Hand each optimizer its own moments, so training can go on with fit().
        optimizers[k].t = adam.t
        optimizers[k].m = [stack.model_flat(m, k) for m in adam.m]
        optimizers[k].v = [stack.model_flat(v, k) for v in adam.v]
    return histories
