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
"""

from __future__ import annotations

from minae.backend import get_namespace
from minae.layers import sigmoid

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
    if pred.shape != x.shape:
        raise ValueError(f"{pred_name} has shape {tuple(pred.shape)} but the targets have "
                         f"shape {tuple(x.shape)}; they must match")
    pred_check(pred, pred_name)
    check_unit_interval(x, "targets")


def bce_with_logits_terms(z, x):
    """Per-pixel BCE from logits, max(z, 0) - z*x + log(1 + exp(-|z|)); same shape as z."""
    xp = get_namespace(z)
    return xp.maximum(z, 0.0) - z * x + xp.log1p(xp.exp(-xp.abs(z)))


def bce_with_logits_loss(z, x, *, check=True):
    """Mean BCE from logits. z: (N, D) logits, x: (N, D) targets -> 0-d array."""
    if check:
        _check_pair(z, x, "logits", check_finite)
    return get_namespace(z).mean(bce_with_logits_terms(z, x))


def bce_with_logits(z, x, *, check=True):
    """Mean BCE from logits and its gradient.

    z: (N, D) logits, x: (N, D) targets in [0, 1]
    returns loss: 0-d array, dz: (N, D) = (sigmoid(z) - x) / (N * D)
    """
    loss = bce_with_logits_loss(z, x, check=check)
    count = z.shape[0] * z.shape[1]
    dz = (sigmoid(z) - x) / count
    return loss, dz


def bce_loss(p, x, *, eps=PROB_EPS, check=True):
    """Mean BCE from probabilities p: (N, D), clipped to [eps, 1 - eps]."""
    if check:
        _check_pair(p, x, "probabilities", check_unit_interval)
    xp = get_namespace(p)
    pc = xp.clip(p, eps, 1.0 - eps)
    return -xp.mean(x * xp.log(pc) + (1.0 - x) * xp.log(1.0 - pc))


def bce(p, x, *, eps=PROB_EPS, check=True):
    """Mean BCE from probabilities and its gradient.

    p: (N, D) in [0, 1], x: (N, D) targets in [0, 1]
    returns loss: 0-d array, dp: (N, D) = (p - x) / (p * (1 - p)) / (N * D)
    Where p was clipped the loss does not depend on p, so dp is 0 there.
    """
    loss = bce_loss(p, x, eps=eps, check=check)
    xp = get_namespace(p)
    count = p.shape[0] * p.shape[1]
    inside = (p > eps) & (p < 1.0 - eps)
    pc = xp.clip(p, eps, 1.0 - eps)
    dp = xp.where(inside, (pc - x) / (pc * (1.0 - pc)) / count, 0.0)
    return loss, dp
