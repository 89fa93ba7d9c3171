"""Update rules: plain SGD and Adam, in the textbook form and in Keras' form.

What it teaches: every optimizer here has one interface,

    optimizer.step(params, grads)

which updates each parameter array *in place* (so layers keep their arrays)
from the gradient at the same position in ``grads``. Any list of arrays will
do: a student's [W1, b1, ...], or the single flat buffer that holds a whole
model's parameters (what ``fit`` passes), which turns every line below into one
whole-model operation. This is the one Adam in minae; every path runs it.

Adam keeps two running moments per parameter, m (mean of g) and v (mean of
g**2), which start at zero and are therefore biased towards zero early on;
dividing by (1 - beta**t) removes that bias. There are two ways to write the
step, and they differ only in where epsilon enters:

    textbook (Kingma & Ba 2015, PyTorch):
        m_hat = m / (1 - beta1**t);  v_hat = v / (1 - beta2**t)
        p -= lr * m_hat / (sqrt(v_hat) + eps)

    keras (Keras / TensorFlow, what the original experiment ran):
        lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
        p -= lr_t * m / (sqrt(v) + eps)

Multiplying out, the Keras step equals the textbook step with an epsilon of
eps / sqrt(1 - beta2**t), which shrinks from 31.6 eps at t = 1 (beta2 =
0.999) to eps: the two agree once t is large, and differ most in the first
steps when v is tiny. minae's default is the Keras form with
Keras' defaults (beta2 0.999, eps 1e-7), because reproducing the original
experiment is the point; ``form="textbook"`` gives the other.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minae.backend import asarray_like, get_namespace
from minae.checks import finite_real

FORMS = ("keras", "textbook")


def check_lr(lr):
    """A learning rate: a finite number > 0, or a sequence of them (one per stacked model)."""
    if isinstance(lr, (list, tuple, np.ndarray)):
        if len(lr) == 0:
            raise ValueError("a list of learning rates (one per stacked model) must not be empty")
        return tuple(check_lr(v) for v in np.asarray(lr, dtype=object).ravel())
    if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
    return float(lr)


def per_model(value, p, models=None):
    """A step size for parameter array p: a Python float as it is; K values (one
    per stacked model, a float64 array on p's device) as an array of p's dtype:

        models None:  (K, 1, ...), broadcast over p's leading axis K
        models given: for a stack's flat buffer (K * P,), which model each element
                      belongs to (``Autoencoder.model_index``); each element gets
                      its own model's value.
    """
    if isinstance(value, float):
        return value
    xp = get_namespace(p)
    value = xp.astype(value, p.dtype)   # rounded once, from float64, as a Python float would be
    if models is None:
        return xp.reshape(value, (-1,) + (1,) * (p.ndim - 1))
    return xp.take(value, models, axis=0)


class _Rates:
    """The learning rate(s) an optimizer holds: a float, or K of them kept on the
    parameters' device once (no upload per step; on a GPU an upload waits for it)."""

    def __init__(self, lr, models):
        self.lr = check_lr(lr)
        self.models = models
        self._device = None

    def on(self, p):
        """The learning rate for arrays like p: a float, or K float64 values on p's device."""
        if isinstance(self.lr, float):
            return self.lr
        if self._device is None:
            self._device = asarray_like(np.asarray(self.lr), p, dtype=get_namespace(p).float64)
        return self._device


class _LearningRate:
    """``lr`` of an optimizer: read and set like a plain attribute, kept in _Rates."""

    @property
    def lr(self):
        return self._rates.lr

    @lr.setter
    def lr(self, value):
        self._rates = _Rates(value, self._rates.models)   # a new rate is uploaded once, again


class SGD(_LearningRate):
    """p -= lr * g: the update every other rule refines.

    lr: a number > 0, or one per stacked model (see ``per_model``; models: a
    stack's ``model_index`` when stepping its flat buffer).
    """

    def __init__(self, lr=0.01, *, models=None):
        self._rates = _Rates(lr, models)

    def step(self, params, grads):
        for p, g in zip(params, grads, strict=True):
            p -= per_model(self._rates.on(p), p, self._rates.models) * g


class Adam(_LearningRate):
    """Adam with bias-corrected moments; see the module docstring for forms.

    lr: step size (> 0), or one per stacked model (see ``per_model``); beta1,
    beta2: moment decay rates in [0, 1); eps: > 0, added to the root of the
    second moment; form: "keras" (default) or "textbook"; models: a stack's
    ``model_index`` when its flat buffer is stepped with one lr per model.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, form="keras", *, models=None):
        self._rates = _Rates(lr, models)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if isinstance(beta, bool) or not (isinstance(beta, numbers.Real) and 0.0 <= beta < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        eps = finite_real(eps, "eps")
        if eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if form not in FORMS:
            raise ValueError(f"unknown Adam form {form!r}; choose one of {FORMS}")
        self.beta1, self.beta2, self.eps, self.form = float(beta1), float(beta2), eps, form
        self.t = 0          # steps taken so far
        self.m = None       # first moments, one array per parameter
        self.v = None       # second moments
        self._scratch = None
        self._bound = None  # the parameter arrays m and v belong to (set by the first step)

    def step(self, params, grads):
        """Update every p in ``params`` in place from the g in ``grads``."""
        if self.m is None:
            # zeros_like keeps each parameter's shape, dtype and device.
            self.m = [get_namespace(p).zeros_like(p) for p in params]
            self.v = [get_namespace(p).zeros_like(p) for p in params]
        if self._bound is None:
            self._bound = list(params)   # the arrays these moments belong to, from now on
        if len(params) != len(self._bound) or any(p is not q for p, q in zip(params, self._bound)) \
                or any(p.shape != m.shape for p, m in zip(params, self.m)):
            # Moments of other arrays, even of a model of the same shape, would silently
            # steer this one with another model's gradient history.
            raise ValueError("this Adam holds moments for other arrays than the ones it was given: it "
                             "belongs to another model, or was stepped on model.params and now on "
                             "[model.flat_params] (what fit passes). Make a new optimizer for each model "
                             "and each way of stepping it")
        if self._scratch is None or len(self._scratch) != len(params):
            self._scratch = [(get_namespace(p).empty_like(p), get_namespace(p).empty_like(p))
                             for p in params]
        self.t += 1                              # t counts from 1 in the bias correction
        for p, g, m, v, scratch in zip(params, grads, self.m, self.v, self._scratch, strict=True):
            self.update(p, g, m, v, scratch)

    def update(self, p, g, m, v, scratch):
        """One parameter array's update at step ``self.t``, all in place.

        scratch: two arrays shaped like p for intermediate results.
        """
        xp = get_namespace(p)
        tmp, tmp2 = scratch
        b1, b2, t = self.beta1, self.beta2, self.t
        lr = self._rates.on(p)
        if self.form == "keras":
            # In float64, then rounded once to p's dtype, as a Python float would be.
            lr_t = per_model(lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t), p, self._rates.models)
            # m += (1 - b1) * (g - m)      (Keras/TF's form of m = b1*m + (1-b1)*g)
            xp.subtract(g, m, out=tmp)
            tmp *= 1.0 - b1
            m += tmp
            # v += (1 - b2) * (g*g - v)
            xp.multiply(g, g, out=tmp)
            tmp -= v
            tmp *= 1.0 - b2
            v += tmp
            # p -= lr_t * m / (sqrt(v) + eps)
            xp.multiply(m, lr_t, out=tmp)
            xp.sqrt(v, out=tmp2)
        else:
            # m = b1 * m + (1 - b1) * g
            m *= b1
            xp.multiply(g, 1.0 - b1, out=tmp)
            m += tmp
            # v = b2 * v + (1 - b2) * g*g
            v *= b2
            xp.multiply(g, g, out=tmp)
            tmp *= 1.0 - b2
            v += tmp
            # p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1**t),  v_hat = v / (1 - b2**t)
            xp.divide(m, 1.0 - b1**t, out=tmp)
            tmp *= per_model(lr, p, self._rates.models)
            xp.divide(v, 1.0 - b2**t, out=tmp2)
            xp.sqrt(tmp2, out=tmp2)
        tmp2 += self.eps
        tmp /= tmp2
        p -= tmp
