# %% [markdown]
# # 6. Gradient checking done right
#
# A numerical gradient is only useful if it can tell a correct backward pass
# from a broken one. Four things decide that:
#
# 1. **Centered differences.** (f(x+h) - f(x-h)) / 2h has error O(h²); the
#    one-sided (f(x+h) - f(x)) / h only O(h).
# 2. **Relative error** |a - n| / max(|a| + |n|, floor): scale-free, with a
#    small floor so that two zeros do not divide 0 by 0.
# 3. **float64.** Rounding error of f is about eps * |f| / h. With h = 1e-5 that
#    is ~1e-11 in float64 but ~1e-2 in float32: correct code "fails".
# 4. **Stay off kinks.** ReLU has no derivative at 0; a difference straddling
#    it measures a slope of 1/2.

# %%
import numpy as np
from _tutorial import expect

from minae import Autoencoder, Dense, ReLU
from minae.gradcheck import (
    GradcheckError,
    away_from_kink,
    check_layer,
    check_model,
    numerical_gradient,
    rel_error,
)

rng = np.random.default_rng(0)

# 1. centered vs one-sided differences on f(x) = sin(x) at x = 1
for h in (1e-2, 1e-4, 1e-6):
    centered = (np.sin(1 + h) - np.sin(1 - h)) / (2 * h)
    one_sided = (np.sin(1 + h) - np.sin(1)) / h
    print(f"h={h:.0e}: centered error {abs(centered - np.cos(1)):.1e}, "
          f"one-sided error {abs(one_sided - np.cos(1)):.1e}")
h = 1e-4
expect(abs((np.sin(1 + h) - np.sin(1 - h)) / (2 * h) - np.cos(1))
       < abs((np.sin(1 + h) - np.sin(1)) / h - np.cos(1)) / 100,
       "at h = 1e-4 the centered difference is over 100x more accurate")

# %% [markdown]
# ## A whole autoencoder in float64: correct code lands between 1e-10 and 1e-6
#
# Why such a spread? Each numerical derivative carries the rounding noise of
# f, about 1e-16 * |f| / h: a few times 1e-12 here. Divided by the size of
# the gradient it becomes the relative error, and the check reports its worst
# element: a gradient element of 1e-2 shows 1e-10, but a first-layer weight
# whose gradient is only about 2e-6 shows about 1e-6. A real bug shows 1e-2
# to 1 (below), so the bound 1e-6 still separates them.

# %%
model = Autoencoder(10, [6, 3, 6], seed=0, dtype="float64")
x_check = rng.uniform(size=(4, 10))
errors = check_model(model, x_check)
print("relative error per parameter:", ", ".join(f"{e:.1e}" for e in errors))
_, grads = model.loss(x_check)
dW1 = grads[0].copy()
numeric = numerical_gradient(lambda: model.loss(x_check, check=False)[0], model.params[0])
per_element = np.abs(dW1 - numeric) / np.maximum(np.abs(dW1) + np.abs(numeric), 1e-8)
i = np.unravel_index(np.argmax(per_element), dW1.shape)
print(f"dW1's worst element: gradient {dW1[i]:.2e}, numerical noise {abs(dW1[i] - numeric[i]):.1e}, "
      f"relative error {per_element[i]:.1e}")
expect(abs(dW1[i]) < 1e-4 and abs(dW1[i] - numeric[i]) < 1e-10,
       "the largest relative error is a tiny gradient carrying ordinary rounding noise")
expect(max(errors) < 1e-6, "every parameter of the float64 model passes (max relative error < 1e-6)")

# %% [markdown]
# ## The same correct code in float32 "fails"

# %%
layer32 = Dense(6, 4, rng=np.random.default_rng(1), dtype="float32")
x32 = rng.standard_normal((5, 6)).astype(np.float32)
try:
    check_layer(layer32, x32, rng=rng)
    float32_failed = False
except GradcheckError as err:
    float32_failed = True
    print("float32:", err)
expect(float32_failed, "in float32 a correct Dense layer fails the 1e-6 check: rounding, not a bug")

# %% [markdown]
# ## The kink: the same correct ReLU fails when an input sits at 0

# %%
x_kink = away_from_kink(rng.standard_normal((3, 4)))
x_kink[0, 0] = 0.0   # exactly on the kink
try:
    check_layer(ReLU(), x_kink, rng=rng)
    kink_failed = False
except GradcheckError as err:
    kink_failed = True
    print("at the kink:", err)
expect(kink_failed, "an input exactly at 0 makes a correct ReLU look wrong")
expect(check_layer(ReLU(), away_from_kink(x_kink), rng=rng)["x"] < 1e-8, "moved off the kink it passes")

# %% [markdown]
# ## A real bug is caught: a ReLU that forgets its mask


# %%
class ReLUWithoutMask(ReLU):
    def backward(self, dout):
        return dout   # should be dout * mask


try:
    check_layer(ReLUWithoutMask(), away_from_kink(rng.standard_normal((3, 4))), rng=rng)
    caught = False
except GradcheckError as err:
    caught = True
    print("broken backward:", err)
expect(caught, "the missing mask is caught, with the worst element named")
print(f"for scale: rel_error(1, 1.001) = {rel_error(1.0, 1.001):.1e}; real bugs are this large or larger")
