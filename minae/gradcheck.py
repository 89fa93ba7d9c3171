"""Numerical gradient checking: how to know a hand-written backward is right.

What it teaches: the centered difference

    df/dx_i  ~=  (f(x + h e_i) - f(x - h e_i)) / (2h)

has error O(h**2), so in float64 with h = 1e-5 a correct analytic gradient
agrees to a relative error around 1e-8..1e-10, while a real bug shows 1e-3 or
worse. A bound of 1e-6 separates the two. (In float32 the rounding error of
f alone is ~1e-7 / 1e-5 = 1e-2: never check gradients in float32.)

For a layer y = f(x) we check a vector-Jacobian product: with a *random*
upstream gradient dout, the scalar L = sum(f(x) * dout) has dL/dx equal to
what ``backward(dout)`` must return. A random dout (not all ones) catches a
backward that ignores or transposes the upstream values.

Everything here works on NumPy float64 arrays and perturbs them in place.
"""

from __future__ import annotations

import numpy as np


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def rel_error(a, b, floor=1e-8):
    """max over elements of |a - b| / max(|a| + |b|, floor).

    The floor keeps elements where both gradients are ~0 from dividing 0 by 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def numerical_gradient(f, x, h=1e-5):
    """Centered-difference gradient of the scalar f() w.r.t. the array x.

    f takes no arguments and reads x, which is perturbed in place and restored.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        f_plus = float(f())
        x[i] = old - h
        f_minus = float(f())
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_vjp(f, x, dout, h=1e-5):
    """Numerical dL/dx for L = sum(f() * dout), f an array-valued function of x."""
    return numerical_gradient(lambda: np.sum(f() * dout), x, h)


def assert_close(analytic, numeric, name="gradient", tol=1e-6):
    """Raise GradcheckError naming the worst element unless rel_error < tol.

    Returns the relative error, so callers can report it.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise GradcheckError(f"{name}: analytic shape {analytic.shape} != numerical {numeric.shape}")
    err = rel_error(analytic, numeric)
    if not err < tol:
        per_elem = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-8)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(per_elem)), per_elem.shape))
        raise GradcheckError(f"{name}: relative error {err:.3e} >= {tol:g}; worst element "
                             f"{worst}: analytic {analytic[worst]:.10g}, numerical {numeric[worst]:.10g}")
    return err


def away_from_kink(a, margin=0.1):
    """A copy of a with every entry within ``margin`` of 0 pushed out by ``margin``.

    ReLU has no derivative at 0: a finite difference that straddles the kink
    measures a slope of 1/2 where backward says 0 or 1, a false alarm.
    """
    a = np.array(a, dtype=np.float64)
    near = np.abs(a) < margin
    a[near] += np.where(a[near] >= 0, margin, -margin)
    return a


def check_layer(layer, x, *, rng=None, h=1e-5, tol=1e-6):
    """Check a layer's backward against finite differences.

    layer: has forward(x), backward(dout) and optionally W/dW, b/db.
    x:     float64 NumPy input; keep ReLU inputs away from 0 (the kink).
    Returns {"x": err, "W": err, "b": err} (only the names the layer has).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    dout = rng.standard_normal(layer.forward(x).shape)   # random upstream gradient
    layer.forward(x)
    dx = layer.backward(dout)
    analytic = {"x": dx}
    for name in ("W", "b"):
        if hasattr(layer, name):
            analytic[name] = getattr(layer, "d" + name).copy()
    errors = {}
    for name, grad in analytic.items():
        target = x if name == "x" else getattr(layer, name)
        numeric = numerical_vjp(lambda: layer.forward(x), target, dout, h)
        errors[name] = assert_close(grad, numeric, f"{type(layer).__name__} d{name}", tol)
    return errors


def check_model(model, x, *, h=1e-5, tol=1e-6):
    """Check every parameter gradient of ``model.loss(x)``; model in float64.

    Returns a list of relative errors, one per entry of ``model.params``.
    """
    _, grads = model.loss(x)
    grads = [g.copy() for g in grads]
    errors = []
    for i, (p, g) in enumerate(zip(model.params, grads)):
        numeric = numerical_gradient(lambda: model.loss(x, check=False)[0], p, h)
        kind = "W" if i % 2 == 0 else "b"
        errors.append(assert_close(g, numeric, f"d{kind}{i // 2 + 1}", tol))
    return errors
