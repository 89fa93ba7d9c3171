"""Fused CuPy kernels for the fast step: one GPU launch where NumPy needs several.

What it teaches: on a GPU, each array operation is a kernel launch that reads
and writes all of its operands in slow global memory. Fusing a chain of
elementwise operations into one kernel reads each input once and writes each
output once. The math is exactly the fast (and reference) path's:

    bias + ReLU        a = max(a + b, 0)
    ReLU backward      dh = h > 0 ? dh : 0
    sigmoid/BCE        e = exp(-|z|); s = exp(min(z,0)) / (1 + e)
                       term = max(z,0) - z*x + log1p(e);  dz = (s - x) / count
    Adam (Keras form)  m += (1-b1)(g-m); v += (1-b2)(g*g-v); p -= lr_t*m/(sqrt(v)+eps)

Only the order of rounding can differ from NumPy (the GPU compiler may fuse a
multiply and an add), so the parity tests compare in float64 to 1e-10.
Needs CuPy; importing this module without it raises ImportError.
"""

from __future__ import annotations

import cupy

from minae.fast import FastStep

# Ternaries, not fmax/fmin: those drop NaN, and a NaN must survive for fit to
# notice a diverging run (NumPy's maximum keeps it too).
bias_relu = cupy.ElementwiseKernel(
    "T b", "T a", "T y = a + b; a = (y > (T)0 || y != y) ? y : (T)0", "minae_bias_relu")

relu_backward = cupy.ElementwiseKernel(
    "T h", "T dh", "if (!(h > (T)0)) dh = (T)0", "minae_relu_backward")

bce_logits = cupy.ElementwiseKernel(
    "T z, T x, T count", "T dz, T term",
    """
    T e = exp(-fabs(z));
    T s = exp(z < (T)0 ? z : (T)0) / ((T)1 + e);
    term = (z > (T)0 ? z : (T)0) - z * x + log1p(e);
    dz = (s - x) / count;
    """,
    "minae_bce_logits")

adam_keras = cupy.ElementwiseKernel(
    "T g, T lr_t, T one_minus_b1, T one_minus_b2, T eps", "T p, T m, T v",
    """
    m += one_minus_b1 * (g - m);
    v += one_minus_b2 * (g * g - v);
    p -= lr_t * m / (sqrt(v) + eps);
    """,
    "minae_adam_keras")

adam_textbook = cupy.ElementwiseKernel(
    "T g, T lr, T b1, T b2, T c1, T c2, T eps", "T p, T m, T v",
    """
    m = b1 * m + ((T)1 - b1) * g;
    v = b2 * v + ((T)1 - b2) * (g * g);
    p -= lr * (m / c1) / (sqrt(v / c2) + eps);
    """,
    "minae_adam_textbook")


class CupyFastStep(FastStep):
    """FastStep with its elementwise chains fused into single CuPy kernels."""

    def __init__(self, model, optimizer, batch_size):
        if model.backend.name != "cupy":
            raise ValueError("CupyFastStep needs a model on backend='cupy'")
        super().__init__(model, optimizer, batch_size)

    def _bias_relu(self, a, b):
        bias_relu(b, a)

    def _relu_backward(self, dh, h):
        relu_backward(h, dh)

    def _bce(self, z, x):
        n = z.shape[0]
        dz, term = self.dz[:n], self.t[:n]
        bce_logits(z, x, z.dtype.type(z.shape[0] * z.shape[1]), dz, term)
        return cupy.mean(term), dz

    def _adam(self):
        opt, T = self.opt, self.flat.dtype.type
        opt.t += 1
        b1, b2, t = opt.beta1, opt.beta2, opt.t
        if opt.form == "keras":
            lr_t = opt.lr * (1.0 - b2**t) ** 0.5 / (1.0 - b1**t)
            adam_keras(self.grad, T(lr_t), T(1.0 - b1), T(1.0 - b2), T(opt.eps), self.flat, self.m, self.v)
        else:
            adam_textbook(self.grad, T(opt.lr), T(b1), T(b2), T(1.0 - b1**t), T(1.0 - b2**t), T(opt.eps),
                          self.flat, self.m, self.v)
