"""Training a learning-rate sweep together: K models of one architecture as one stack.

What it teaches: batching is not only over examples. K models with the same
layer sizes can keep their weights as (K, D_in, D_out) arrays; every layer is
then one batched matmul for all K models, and every elementwise step one
operation over a (K, N, H) array:

    h = x @ W + b            x: (K, N, D_in), W: (K, D_in, D_out), b: (K, 1, D_out)
    dW = x^T @ dout          x^T: (K, D_in, N) -- swap the last two axes
    db = dout.sum(axis=1)    summed over each model's batch
    dx = dout @ W^T

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

from minae.backend import get_namespace
from minae.layers import sigmoid
from minae.losses import bce_with_logits_terms
from minae.optim import Adam
from minae.train import History, _on_backend, batch_slices


def _check_group(models, optimizers):
    first = models[0]
    for m in models[1:]:
        if (m.input_dim, m.hidden, m.dtype, m.backend.name) != (first.input_dim, first.hidden, first.dtype,
                                                                 first.backend.name):
            raise ValueError("stacked models must share input_dim, hidden, dtype and backend")
    for opt in optimizers:
        if type(opt) is not Adam:
            raise TypeError(f"stacked training implements Adam only, got {type(opt).__name__}")
        if (opt.beta1, opt.beta2, opt.eps, opt.form) != (optimizers[0].beta1, optimizers[0].beta2,
                                                         optimizers[0].eps, optimizers[0].form):
            raise ValueError("stacked models may differ in learning rate only, not in beta1, beta2, "
                             "eps or Adam form")
    if len(models) != len(optimizers):
        raise ValueError(f"{len(models)} models but {len(optimizers)} optimizers")
    if any(opt.t for opt in optimizers):
        raise ValueError("stacked training starts Adam from scratch: pass optimizers that have not "
                         "taken a step yet")


class Stack:
    """The parameters of K same-shaped models, stacked along a new first axis."""

    def __init__(self, models):
        self.models = models
        self.xp = models[0].backend.xp
        xp = self.xp
        self.W = [xp.stack([m.dense[i].W for m in models]) for i in range(len(models[0].dense))]
        self.b = [xp.stack([m.dense[i].b for m in models])[:, None, :] for i in range(len(models[0].dense))]

    def params(self):
        return [p for pair in zip(self.W, self.b) for p in pair]

    def forward(self, x):
        """x: (N, D) shared, or (K, N, D) per model -> (activations per layer, logits (K, N, D))."""
        xp, acts, h = self.xp, [], x
        for W, b in zip(self.W[:-1], self.b[:-1]):
            h = xp.maximum(xp.matmul(h, W) + b, 0.0)   # (K, N, H_i)
            acts.append(h)
        return acts, xp.matmul(h, self.W[-1]) + self.b[-1]

    @staticmethod
    def unstack(arrays, k):
        """Model k's slices of stacked [W1, b1, ...]-shaped arrays, as copies."""
        return [a[k].copy() if j % 2 == 0 else a[k, 0].copy() for j, a in enumerate(arrays)]

    def write_back(self, k):
        """Copy model k's weights out of the stack into its Autoencoder."""
        mine = self.unstack(self.params(), k)
        for i, layer in enumerate(self.models[k].dense):
            layer.W, layer.b = mine[2 * i], mine[2 * i + 1]


def _per_model_bce(z, x):
    """Mean BCE per model from logits z: (K, N, D) -> (K,) and dz (K, N, D)."""
    loss = get_namespace(z).mean(bce_with_logits_terms(z, x), axis=(1, 2))
    dz = (sigmoid(z) - x) / (z.shape[1] * z.shape[2])
    return loss, dz


def fit_stacked(models, optimizers, x_train, x_val=None, *, epochs=100, batch_size=256, seeds=None,
                on_epoch_end=None, eval_batch_size=1024):
    """Train K models together; the same numbers as ``fit`` on each separately.

    models, optimizers: K Autoencoders (same architecture) and K Adams that
    differ only in lr. seeds: K shuffle seeds (default 0 for all).
    on_epoch_end(k, epoch, history) is called for every model after each epoch.
    Returns K Histories; a diverging model is recorded and frozen in its
    Autoencoder at that epoch while the others go on.
    """
    _check_group(models, optimizers)
    K = len(models)
    seeds = [0] * K if seeds is None else list(seeds)
    first = models[0]
    be, xp = first.backend, first.backend.xp
    x_train = _on_backend(first, x_train, "x_train")
    x_val = _on_backend(first, x_val, "x_val") if x_val is not None else None
    stack = Stack(models)
    params = stack.params()
    m = [xp.zeros_like(p) for p in params]
    v = [xp.zeros_like(p) for p in params]
    dtype = be.dtype(first.dtype)
    opt0 = optimizers[0]
    b1, b2, eps = opt0.beta1, opt0.beta2, opt0.eps
    lrs = np.array([opt.lr for opt in optimizers])
    n = x_train.shape[0]
    rngs = [np.random.default_rng(s) for s in seeds]
    histories = [History() for _ in range(K)]
    active = [True] * K
    t = 0
    for epoch in range(1, epochs + 1):
        start_time = time.perf_counter()
        # One shuffle per model, exactly as fit draws it: (K, N) row indices.
        order = be.asarray(np.stack([rng.permutation(n) for rng in rngs]))
        total = xp.zeros(K, dtype=dtype)
        for start, stop in batch_slices(n, batch_size):
            idx = xp.reshape(order[:, start:stop], (-1,))
            xb = xp.reshape(xp.take(x_train, idx, axis=0), (K, stop - start, -1))   # (K, N_b, D)
            acts, z = stack.forward(xb)
            loss, g = _per_model_bce(z, xb)
            grads = [None] * len(params)
            inputs = [xb, *acts]
            for i in range(len(stack.W) - 1, -1, -1):
                grads[2 * i] = xp.matmul(xp.swapaxes(inputs[i], -1, -2), g)
                grads[2 * i + 1] = xp.sum(g, axis=1, keepdims=True)   # over each model's batch
                if i > 0:
                    g = xp.matmul(g, xp.swapaxes(stack.W[i], -1, -2)) * xp.astype(inputs[i] > 0, dtype)
            t += 1
            _adam_stacked(params, grads, m, v, t, lrs, b1, b2, eps, opt0.form, be, first.dtype)
            total = total + loss * (stop - start)
        train = be.to_host(total) / n                                 # one read per epoch
        val = _evaluate_stacked(stack, x_val, eval_batch_size, be) if x_val is not None else [math.nan] * K
        be.synchronize()
        seconds = time.perf_counter() - start_time
        for k in range(K):
            if not active[k]:
                continue
            h = histories[k]
            h.train_bce.append(float(train[k]))
            h.val_bce.append(float(val[k]))
            h.epoch_seconds.append(seconds)
            if on_epoch_end is not None:
                on_epoch_end(k, epoch, h)
            if not math.isfinite(h.train_bce[-1]) or (x_val is not None and not math.isfinite(h.val_bce[-1])):
                h.diverged_epoch = epoch
                active[k] = False
                stack.write_back(k)
        if not any(active):
            break
    for k in range(K):
        if active[k]:
            stack.write_back(k)
        # Hand each optimizer its own moments, so training can go on with fit().
        optimizers[k].t, optimizers[k].m, optimizers[k].v = t, Stack.unstack(m, k), Stack.unstack(v, k)
    return histories


def _adam_stacked(params, grads, m, v, t, lrs, b1, b2, eps, form, be, dtype):
    """optim.Adam.step for K models at once; lr differs per model (axis 0)."""
    xp = be.xp
    K = len(lrs)
    if form == "keras":
        lr_t = lrs * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    else:
        lr_t = lrs
    # A Python scalar enters a NumPy op in the array's dtype; round each model's step size the same way.
    lr_t = be.asarray(lr_t, dtype)
    for p, g, mi, vi in zip(params, grads, m, v):
        shape = (K,) + (1,) * (p.ndim - 1)
        step = xp.reshape(lr_t, shape)
        if form == "keras":
            mi += (1.0 - b1) * (g - mi)
            vi += (1.0 - b2) * (g * g - vi)
            p -= step * mi / (xp.sqrt(vi) + eps)
        else:
            mi *= b1
            mi += (1.0 - b1) * g
            vi *= b2
            vi += (1.0 - b2) * (g * g)
            p -= step * (mi / (1.0 - b1**t)) / (xp.sqrt(vi / (1.0 - b2**t)) + eps)


def _evaluate_stacked(stack, x, batch_size, be):
    """Exact mean BCE over x for each of the K models -> host array (K,)."""
    n = x.shape[0]
    total = 0.0
    for start, stop in batch_slices(n, batch_size):
        xb = x[start:stop]
        _, z = stack.forward(xb)
        loss, _ = _per_model_bce(z, xb)
        total = total + loss * (stop - start)
    return be.to_host(total) / n
