"""Binary cross-entropy, in the stable logits form and the probability form.

What it teaches: with targets x in [0, 1] and predictions p = sigmoid(z),

    BCE = -mean( x * log(p) + (1 - x) * log(1 - p) )

where the mean runs over every pixel of every image, i.e. over N * D numbers
(Keras' ``binary_crossentropy`` averages pixels, then the batch: the same).

Training uses the *logits* form: substituting p = sigmoid(z) and simplifying,

    x*log(p) + (1-x)*log(1-p) = -( max(z, 0) - z*x + log(1 + exp(-|z|)) )

which never takes the log of 0 and never overflows (exp only sees -|z|). This
is what Keras computed in the original experiment (a sigmoid output layer with
``binary_crossentropy`` hands the logits to ``sigmoid_cross_entropy_with_logits``).
Its gradient is remarkably simple, because the sigmoid's derivative cancels
the log's:

    dBCE/dz = (sigmoid(z) - x) / (N * D)

The probability form takes p directly and must clip it to [eps, 1 - eps]
before the logs; it is here for teaching and for checking the fused form.

Both forms accept a stack of K models' outputs, (K, N, D): the mean then runs
over each model's own N * D numbers and the loss is (K,).
"""

from __future__ import annotations

from minae.backend import get_namespace
from minae.layers import exp_neg_abs, sigmoid

# Keras' backend epsilon, used to clip probabilities away from 0 and 1.
PROB_EPS = 1e-7


def check_finite(a, name):
    """Raise ValueError if any element of ``a`` is NaN or infinite."""
    xp = get_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise ValueError(f"{name} contains NaN or infinite values; clean or drop those rows first")


def check_unit_interval(a, name):
    """Raise ValueError unless every element of ``a`` is finite and in [0, 1]."""
    xp = get_namespace(a)
    check_finite(a, name)
    lo, hi = float(xp.min(a)), float(xp.max(a))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1] for binary cross-entropy, but spans "
                         f"[{lo:g}, {hi:g}]; scale pixels with x / 255 first")


def _check_pair(pred, x, pred_name, pred_check):
    # One (N, D) set of targets may serve a stack's (K, N, D) predictions: it broadcasts.
    if pred.shape != x.shape and not (x.ndim == 2 and tuple(pred.shape[-2:]) == tuple(x.shape)):
        raise ValueError(f"{pred_name} has shape {tuple(pred.shape)} but the targets have "
                         f"shape {tuple(x.shape)}; they must match")
    pred_check(pred, pred_name)
    check_unit_interval(x, "targets")


def bce_with_logits_terms(z, x, *, e=None, out=None):
    """Per-pixel BCE from logits, max(z, 0) - z*x + log(1 + exp(-|z|)); same shape as z.

    e: exp(-|z|) if the caller has it already.
    """
    xp = get_namespace(z)
    e = exp_neg_abs(z) if e is None else e
    terms = xp.maximum(z, 0.0, out=out)
    terms -= z * x
    terms += xp.log1p(e)
    return terms


def bce_with_logits_loss(z, x, *, check=True):
    """Mean BCE from logits. z: (..., N, D) logits, x: (..., N, D) targets -> (...) array."""
    if check:
        _check_pair(z, x, "logits", check_finite)
    return get_namespace(z).mean(bce_with_logits_terms(z, x), axis=(-2, -1))


def bce_with_logits(z, x, *, check=True, work=None):
    """Mean BCE from logits and its gradient.

    z: (..., N, D) logits, x: (..., N, D) or (N, D) targets in [0, 1]
    returns loss: (...) array (0-d for one model),
            dz: (..., N, D) = (sigmoid(z) - x) / (N * D)
    work: optional pair of buffers shaped like z, so a training loop allocates
          nothing; dz is written into the second.
    """
    if check:
        _check_pair(z, x, "logits", check_finite)
    xp = get_namespace(z)
    e_buf, dz_buf = (None, None) if work is None else work
    e = exp_neg_abs(z, out=e_buf)           # one exp, shared by the loss and the sigmoid
    terms = bce_with_logits_terms(z, x, e=e, out=dz_buf)
    loss = xp.mean(terms, axis=(-2, -1))
    # The sigmoid's derivative cancels the log's: dL/dz = (sigmoid(z) - x) / count.
    dz = xp.subtract(sigmoid(z, e=e, out=dz_buf), x, out=dz_buf)
    dz /= z.shape[-2] * z.shape[-1]
    return loss, dz


def bce_loss(p, x, *, eps=PROB_EPS, check=True):
    """Mean BCE from probabilities p: (..., N, D), clipped to [eps, 1 - eps]."""
    if check:
        _check_pair(p, x, "probabilities", check_unit_interval)
    xp = get_namespace(p)
    pc = xp.clip(p, eps, 1.0 - eps)
    return -xp.mean(x * xp.log(pc) + (1.0 - x) * xp.log(1.0 - pc), axis=(-2, -1))


def bce(p, x, *, eps=PROB_EPS, check=True):
    """Mean BCE from probabilities and its gradient.

    p: (..., N, D) in [0, 1], x: (..., N, D) targets in [0, 1]
    returns loss: (...) array, dp: (..., N, D) = (p - x) / (p * (1 - p)) / (N * D)
    Where p was clipped the loss does not depend on p, so dp is 0 there.
    """
    loss = bce_loss(p, x, eps=eps, check=check)
    xp = get_namespace(p)
    count = p.shape[-2] * p.shape[-1]
    inside = (p > eps) & (p < 1.0 - eps)
    pc = xp.clip(p, eps, 1.0 - eps)
    dp = xp.where(inside, (pc - x) / (pc * (1.0 - pc)) / count, 0.0)
    return loss, dp
