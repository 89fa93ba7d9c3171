"""Update rules: plain SGD and Adam, in the textbook form and in Keras' form.

What it teaches: every optimizer here has one interface,

    optimizer.step(params, grads)

which updates each parameter array *in place* (so layers keep their arrays)
from the gradient at the same position in ``grads``.

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

Multiplying out, the Keras step equals the textbook step with a growing
epsilon eps / sqrt(1 - beta2**t): the two agree once t is large, and differ
most in the first steps when v is tiny. minae's default is the Keras form with
Keras' defaults (beta2 0.999, eps 1e-7), because reproducing the original
experiment is the point; ``form="textbook"`` gives the other.
"""

from __future__ import annotations

import math

from minae.backend import get_namespace

FORMS = ("keras", "textbook")


def check_lr(lr):
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")


class SGD:
    """p -= lr * g: the update every other rule refines."""

    def __init__(self, lr=0.01):
        check_lr(lr)
        self.lr = lr

    def step(self, params, grads):
        for p, g in zip(params, grads, strict=True):
            p -= self.lr * g


class Adam:
    """Adam with bias-corrected moments; see the module docstring for forms.

    lr: step size (> 0); beta1, beta2: moment decay rates in [0, 1);
    eps: > 0, added to the root of the second moment;
    form: "keras" (default) or "textbook".
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, form="keras"):
        check_lr(lr)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if form not in FORMS:
            raise ValueError(f"unknown Adam form {form!r}; choose one of {FORMS}")
        self.lr, self.beta1, self.beta2, self.eps, self.form = lr, beta1, beta2, eps, form
        self.t = 0          # steps taken so far
        self.m = None       # first moments, one array per parameter
        self.v = None       # second moments

    def step(self, params, grads):
        """Update every p in ``params`` in place from the g in ``grads``."""
        if self.m is None:
            # zeros_like keeps each parameter's shape, dtype and device.
            self.m = [get_namespace(p).zeros_like(p) for p in params]
            self.v = [get_namespace(p).zeros_like(p) for p in params]
        if len(params) != len(self.m):
            raise ValueError(f"Adam was set up for {len(self.m)} parameter arrays, "
                             f"got {len(params)}; make a new optimizer per model")
        self.t += 1                              # t counts from 1 in the bias correction
        b1, b2, t = self.beta1, self.beta2, self.t
        xp = get_namespace(*params)
        if self.form == "keras":
            lr_t = self.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
            for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                # Keras/TF write the moment update as m += (1-b)(g-m), same value.
                m += (1.0 - b1) * (g - m)
                v += (1.0 - b2) * (g * g - v)
                p -= lr_t * m / (xp.sqrt(v) + self.eps)
        else:
            for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                m_hat = m / (1.0 - b1**t)
                v_hat = v / (1.0 - b2**t)
                p -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
