# %% [markdown]
# # 4. Binary cross-entropy: from logits, and why its gradient is so simple
#
# An autoencoder for images in [0, 1] outputs one probability per pixel,
# p = sigmoid(z), and is scored against the input x itself with
#
#     BCE = -mean( x log p + (1 - x) log(1 - p) )
#
# averaged over all N * D pixels of the batch. Differentiate one term with
# respect to p and then through the sigmoid (dp/dz = p(1 - p)):
#
#     dBCE/dp = (p - x) / (p (1 - p)) / (N D)
#     dBCE/dz = dBCE/dp * p (1 - p) = (p - x) / (N D)
#
# The p(1 - p) cancels. This is why minae fuses the sigmoid into the loss:
# the gradient that enters the network is just "prediction minus target".

# %%
import warnings

import numpy as np
from _tutorial import expect

from minae import bce, bce_with_logits, sigmoid
from minae.gradcheck import assert_close, numerical_gradient
from minae.losses import PROB_EPS

rng = np.random.default_rng(0)
z = 2 * rng.standard_normal((3, 5))     # logits: N = 3 images of D = 5 pixels
x = rng.uniform(size=(3, 5))            # targets in [0, 1]
loss, dz = bce_with_logits(z, x)
print(f"BCE = {float(loss):.6f}")
expect(np.allclose(dz, (sigmoid(z) - x) / 15), "the fused gradient is (sigmoid(z) - x) / (N*D)")
err = assert_close(dz, numerical_gradient(lambda: bce_with_logits(z, x, check=False)[0], z))
expect(err < 1e-7, f"and it matches finite differences (relative error {err:.1e} < 1e-7)")

# The probability form, chained through the sigmoid by hand, gives the same:
p = sigmoid(z)
_, dp = bce(p, x)
expect(np.allclose(dp * p * (1 - p), dz), "dBCE/dp * p(1-p) equals the fused gradient: p(1-p) cancels")

# %% [markdown]
# ## Computing BCE from logits
#
# With p = sigmoid(z) = 1 / (1 + exp(-z)):
#
#     log p     = -log(1 + exp(-z))
#     log(1-p)  = log(exp(-z) / (1 + exp(-z))) = -z - log(1 + exp(-z))
#
# so one pixel's loss, -(x log p + (1-x) log(1-p)), is
#
#     x log(1 + exp(-z)) + (1 - x) (z + log(1 + exp(-z)))  =  z - z x + log(1 + exp(-z))
#
# Fine for z >= 0 (exp(-z) <= 1), but not for z < 0, and the first thing to
# go is not overflow. For z = -20 and x = 0 the loss is log(1 + exp(-20)) =
# 2.06e-9, but the formula gets there as z + log(1 + exp(-z)) = -20 +
# 20.000000002: two large numbers that cancel. In float32, which keeps about
# 7 digits, log(1 + exp(20)) rounds to 20.0 and the result is 0.0, all of it
# lost. (exp(-z) itself overflows only later, for z < -88.7, as tutorial 3
# showed.) Instead, pull exp(-z) out of the log: log(1 + exp(-z)) =
# -z + log(1 + exp(z)), and the loss becomes -z x + log(1 + exp(z)), with
# nothing left to cancel. Both cases in one line, using max(z, 0) (z, or 0)
# and exp(-|z|) (exp(-z), or exp(z)):
#
#     per-pixel loss = max(z, 0) - z x + log(1 + exp(-|z|))
#
# It never takes log(0) and exp never sees a positive number.
#
# All-zero logits mean p = 1/2 everywhere, so the loss is log 2 whatever x is.

# %%
def direct_form(z, x):
    return z - z * x + np.log1p(np.exp(-z))                      # z - zx + log(1 + e^-z)


def abs_form(z, x):
    return np.maximum(z, 0) - z * x + np.log1p(np.exp(-np.abs(z)))


def float32_relative_error(form, z, x):
    """|form(z, x) computed in float32 - the exact loss| / the exact loss (from float64)."""
    value = float(form(np.float32(z), np.float32(x)))
    exact = float(abs_form(np.float64(z), np.float64(x)))
    return abs(value - exact) / exact


zz, xx = np.array([[-3.0, 0.5, 4.0]]), np.array([[0.2, 0.9, 0.0]])
expect(np.allclose(direct_form(zz, xx), abs_form(zz, xx)),
       "the |z| form equals z - zx + log(1 + exp(-z)) where nothing cancels or overflows")
print(f"z = -20, x = 0 in float32: direct form {float(direct_form(np.float32(-20), np.float32(0)))}, "
      f"|z| form {float(abs_form(np.float32(-20), np.float32(0))):.6e}")
expect(float32_relative_error(direct_form, -20.0, 0.0) == 1.0
       and float32_relative_error(abs_form, -20.0, 0.0) < 1e-6,
       "at z = -20 the direct form cancels to 0.0 (all of the loss lost); the |z| form keeps it")
with np.errstate(over="ignore"):
    expect(not np.isfinite(direct_form(np.float32(-100), np.float32(0)))
           and np.isfinite(abs_form(np.float32(-100), np.float32(0))),
           "past z = -88.7 the direct form's exp(-z) overflows too; the |z| form never does")

loss0, _ = bce_with_logits(np.zeros((2, 4)), rng.uniform(size=(2, 4)))
print(f"all-zero logits: BCE = {float(loss0):.12f}, ln 2 = {np.log(2):.12f}")
expect(abs(float(loss0) - np.log(2)) < 1e-15, "all-zero logits give exactly ln 2")

# %% [markdown]
# ## What goes wrong with naive logs
#
# Two confident, wrong predictions in float32: z = -40 for a white pixel
# (x = 1) and z = +40 for a black one (x = 0). The first survives: sigmoid(-40)
# is about 4e-18, a perfectly good float32, and its log is -40. The second
# does not: sigmoid(40) = 1 / (1 + 4e-18) rounds to exactly 1, so 1 - p is 0
# and log(1 - p) is -inf. The probability form clips p to [1e-7, 1 - 1e-7] to
# survive, which caps the loss and zeroes the gradient exactly where the
# model is most wrong. The logits form gets both right.

# %%
z_bad = np.array([[-40.0, 40.0]], dtype=np.float32)
x_bad = np.array([[1.0, 0.0]], dtype=np.float32)
with warnings.catch_warnings(record=True):
    warnings.simplefilter("always")
    p_bad = 1 / (1 + np.exp(-z_bad))
    per_pixel = -(x_bad * np.log(p_bad) + (1 - x_bad) * np.log(1 - p_bad))
    naive = np.mean(per_pixel)
expect(np.isfinite(per_pixel[0, 0]) and np.isinf(per_pixel[0, 1]),
       "the white pixel at z = -40 is finite; the black pixel at z = +40 gives the infinity")
clipped, dp_clipped = bce(p_bad, x_bad)
exact, dz_exact = bce_with_logits(z_bad, x_bad)
print(f"naive logs: {naive}, clipped probabilities: {float(clipped):.3f}, from logits: {float(exact):.3f}")
expect(not np.isfinite(naive), "naive logs give an infinite loss")
expect(abs(float(exact) - 40.0) < 1e-4, "the logits form gives the true loss, 40 per pixel")

# %% [markdown]
# What does the clip cap the loss at? p is clipped to [1e-7, 1 - 1e-7], but
# in float32 1 - 1e-7 rounds to 0.99999988 = 1 - 1.19e-7, so the two pixels
# are capped differently: the white one at -ln(1e-7) = 16.12, the black one
# at -ln(1.19e-7) = 15.94. The caps below are computed from the clip bounds
# as float32 stores them, and the loss is their mean.

# %%
def capped_at(loss, caps, tol=1e-3):
    """True when a mean loss equals the mean of the per-pixel caps (within tol)."""
    return abs(float(loss) - float(np.mean(caps))) < tol


low, high = np.float32(PROB_EPS), np.float32(1 - PROB_EPS)              # the clip bounds in float32
caps = [-np.log(np.float64(low)), -np.log(1 - np.float64(high))]        # white pixel, black pixel
print(f"clip bounds in float32: {low:.8g} and {high:.8g} = 1 - {1 - np.float64(high):.3g}; "
      f"caps {caps[0]:.3f} (white pixel) and {caps[1]:.3f} (black pixel), mean {np.mean(caps):.3f}")
expect(capped_at(clipped, caps), f"clipping caps this loss at {np.mean(caps):.3f}, far below the true 40")
expect(np.all(dp_clipped == 0) and np.all(np.abs(dz_exact) > 0.49),
       "clipping kills the gradient; the logits form still pushes with (p - x)/(N*D) = -/+ 1/2")
