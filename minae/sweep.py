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

so a stack (``Autoencoder.stack``) trains with the same ``fit`` and
``train_step`` as one model, and one Adam whose learning rate is a list, one
per model.

Each model keeps its own seed (initial weights and shuffles) and its own
learning rate, so the numbers are those of K separate ``fit`` runs (the tests
check it to 1e-12 in float64). On a GPU this replaces K small kernel launches
by one; on a CPU, BLAS runs the K products one after another anyway, so
there it does not pay (scripts/bench.py measures both).
"""

from __future__ import annotations

from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import fit


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
                callbacks=()):
    """Train K models together; the same numbers as ``fit`` on each separately.

    models, optimizers: K Autoencoders (same architecture) and K Adams that
    differ only in lr. x_train: (N, D), x_val: (M, D), shared by all K.
    seeds: K shuffle seeds (default 0 for all).
    callbacks: as for ``fit``; each is called with the K Histories and the stack.
    Returns K Histories; a diverging model is recorded and frozen in its
    Autoencoder at that epoch while the others go on.
    """
    _check_group(models, optimizers)
    K = len(models)
    seeds = [0] * K if seeds is None else list(seeds)
    if len(seeds) != K:
        raise ValueError(f"{K} models but {len(seeds)} shuffle seeds; give one per model")
    stack = Autoencoder.stack(models)                     # raises unless one architecture
    opt0 = optimizers[0]
    adam = Adam([opt.lr for opt in optimizers], opt0.beta1, opt0.beta2, opt0.eps, opt0.form,
                models=stack.model_index)   # model k's elements step with lr k
    histories = fit(stack, x_train, x_val, epochs=epochs, batch_size=batch_size, optimizer=adam, seed=seeds,
                    progress=False, callbacks=callbacks)
    for k in range(K):
        stack.unstack_into(k, models[k])
        # Hand each optimizer its own moments, so training can go on with fit().
        optimizers[k].t = adam.t
        optimizers[k].m = [stack.model_flat(m, k) for m in adam.m]
        optimizers[k].v = [stack.model_flat(v, k) for v in adam.v]
    return histories
