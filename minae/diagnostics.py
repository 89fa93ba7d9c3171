"""Watching gradients: what each layer's gradients, updates and units did.

What it teaches: a loss curve tells you *that* training goes wrong, not
*where*. A few numbers per layer, once an epoch, tell where:

    grad_norm      ||dW|| of the step the optimizer just took: gradients that
                   vanish (1e-8) or explode show here first
    update_ratio   ||W_after - W_before|| / ||W_before|| for that step: around
                   1e-3 is healthy (CS231n's rule of thumb); 1e-1 is a step of
                   a tenth of the weights, 1 one as large (lr 0.1, tutorial 11)
    dead_fraction  per ReLU layer, the fraction of units that are not positive
                   for any image of a validation batch: they pass no gradient
                   back and their own gradients are zero: only Adam's momentum
                   still moves their weights, and a unit of a later layer can
                   come back when the layers before it change
    output_spread  mean over pixels of the std of the reconstructions across
                   that batch: about 0 when the model outputs one constant image

They come from the step the optimizer actually took (its gradients in
``model.flat_grads``, its update) and one forward pass over a validation
batch: no second backward pass. ``fit`` records them in
``History.diagnostics``, one dict per epoch.
"""

from __future__ import annotations

import numpy as np

from minae._io import json_number
from minae.backend import get_namespace
from minae.layers import sigmoid

DIAG_ROWS = 256   # rows of the validation batch the unit statistics are measured on (a batch)


def dead_units(model):
    """Per ReLU layer, (..., H) bool: the units that were not positive for any row
    of the batch of the model's latest forward pass (a stack: per model).

    What "dead" means, here for every user of it: on those rows such a unit
    passes no gradient back and its own weights get none, so only Adam's
    momentum still moves them for a while. It may still fire on rows not
    looked at, and a unit of a later layer can come back when the layers
    before it change."""
    xp = get_namespace(model.relus[0].out)
    return [xp.max(relu.out, axis=-2) <= 0 for relu in model.relus]


def epoch_diagnostics(model, before, x_rows):
    """The numbers above for ``model`` after its latest optimizer step.

    before: a copy of ``model.flat_params`` taken just before that step, (P,)
            or (K * P,) for a stack of K models.
    x_rows: (N, D) rows for the unit statistics: validation rows (``fit`` passes
            the first DIAG_ROWS), or without them the last training batch,
            (K, N, D) for a stack.
    Returns {"grad_norm": [per Dense layer], "update_ratio": [per Dense layer],
    "dead_fraction": [per ReLU layer], "output_spread": float}; NaN becomes
    None. For a stack, a list of K such dicts, one per model.
    """
    xp = get_namespace(before)
    k = model.stack_size

    def norm(a):   # over each model's own numbers: every axis but a stack's first
        axes = tuple(range(a.ndim))[0 if k is None else 1:]
        return xp.sqrt(xp.sum(a * a, axis=axes))

    grads = model.grads[0::2]                                   # dW1, dW2, ...: (..., D_in, D_out)
    updates = model.views(model.flat_params - before)[0::2]     # what the step changed in each W
    olds = model.views(before)[0::2]                            # each W before the step
    z = model.forward(x_rows)                                   # (..., N, D); each ReLU keeps (..., N, H)
    columns = {
        "grad_norm": [norm(g) for g in grads],
        "update_ratio": [norm(u) / norm(w) for u, w in zip(updates, olds)],
        "dead_fraction": [xp.mean(xp.astype(dead, z.dtype), axis=-1) for dead in dead_units(model)],
        "output_spread": xp.mean(xp.std(sigmoid(z), axis=-2), axis=-1),
    }
    host = {name: np.asarray(model.backend.to_host(xp.stack(v) if isinstance(v, list) else v), np.float64)
            for name, v in columns.items()}                     # four reads of the device an epoch
    if k is None:
        return {name: [json_number(x) for x in v] if v.ndim else json_number(v) for name, v in host.items()}
    return [{name: [json_number(x) for x in v[:, m]] if v.ndim > 1 else json_number(v[m])
             for name, v in host.items()} for m in range(k)]
