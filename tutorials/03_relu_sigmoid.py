# %% [markdown]
# # 3. ReLU and sigmoid: local derivatives, the kink, saturation, stability
#
# **ReLU** y = max(x, 0) has derivative 1 for x > 0 and 0 for x < 0. At x = 0
# it has a kink: no derivative at all. Frameworks, minae included, use 0
# there. Its backward pass is "let the upstream gradient through where the
# input was positive".
#
# **Sigmoid** s = 1 / (1 + exp(-x)) has derivative s * (1 - s), which reuses
# the output. It is at most 1/4 (at x = 0) and vanishes as |x| grows: a
# saturated sigmoid passes almost no gradient back.

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from _tutorial import expect, save

from minae import ReLU, Sigmoid, sigmoid
from minae.gradcheck import away_from_kink, check_layer

rng = np.random.default_rng(0)
x = away_from_kink(rng.standard_normal((4, 6)))   # keep clear of the kink at 0 (see tutorial 6)
for layer in (ReLU(), Sigmoid()):
    err = check_layer(layer, x, rng=rng)["x"]
    print(f"{type(layer).__name__}: relative error of dx {err:.1e}")
    expect(err < 1e-7, f"{type(layer).__name__}.backward matches finite differences (< 1e-7)")

# %%
grid = np.linspace(-8, 8, 401)
relu, sig = ReLU(), Sigmoid()
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(grid, relu.forward(grid[None])[0], label="ReLU")
axes[0].plot(grid, relu.backward(np.ones((1, grid.size)))[0], "--", label="its derivative")
axes[1].plot(grid, sig.forward(grid[None])[0], label="sigmoid")
axes[1].plot(grid, sig.backward(np.ones((1, grid.size)))[0], "--", label="its derivative s(1-s)")
for ax in axes:
    ax.legend()
    ax.grid(alpha=0.3)
save(fig, "03_relu_sigmoid")
slope = sig.backward(np.ones((1, grid.size)))[0]
expect(abs(slope.max() - 0.25) < 1e-6, "the sigmoid's slope peaks at 1/4, at x = 0")
expect(slope[0] < 5e-4 and slope[-1] < 5e-4,
       "at |x| = 8 the sigmoid passes back less than 1/2000 of the gradient")

# %% [markdown]
# ## Why the sigmoid must be computed stably
#
# The textbook formula 1 / (1 + exp(-x)) computes exp(-x), and for negative x
# that is a large number: in float32, whose largest value is about 3.4e38,
# exp(-x) overflows to infinity (with a warning) once -x > ln(3.4e38) = 88.7,
# that is for x < -88.7. (For large positive x, exp(-x) only underflows to
# 0, and 1 / (1 + 0) = 1 is right.) Before that point the naive formula is
# as accurate as any: at x = -20 both forms give about 2.06e-9. Past it, the
# result 1 / inf = 0 loses a value float32 can still hold: sigmoid(-100) =
# 3.7e-44 lies below float32's smallest normal number (1.2e-38), where it is
# stored with fewer digits (a *subnormal*), but it is not 0. minae writes the
# same function as exp(min(x, 0)) / (1 + exp(-|x|)), where exp only ever sees
# numbers <= 0, so nothing overflows.

# %%
def naive_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def overflows(fn, z):
    """True when fn at the float32 number z makes NumPy warn of an overflow."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(np.array([z], dtype=np.float32))
    return any("overflow" in str(w.message) for w in caught)


def keeps_tiny_values(fn, z=-100.0):
    """True when fn(z) in float32 is the float32 nearest to the true sigmoid(z), not 0."""
    with np.errstate(over="ignore"):              # overflowing is what `overflows` reports
        value = fn(np.array([z], dtype=np.float32))[0]
    true = np.exp(z) / (1 + np.exp(z))            # in float64, where exp(-100) is an ordinary number
    return value > 0 and value == np.float32(true)


limit = float(np.log(np.finfo(np.float32).max))     # ln of the largest float32
print(f"float32's exp overflows above {limit:.4f}, so the naive sigmoid overflows for x < -{limit:.1f}")
for z in (-20.0, -(limit - 0.01), -(limit + 0.01), -100.0, 1000.0):
    with np.errstate(over="ignore"):
        naive = naive_sigmoid(np.array([z], dtype=np.float32))[0]
    print(f"x = {z:9.3f}: naive {naive:.7e}{' (overflow)' if overflows(naive_sigmoid, z) else '':11}  "
          f"minae {sigmoid(np.array([z], dtype=np.float32))[0]:.7e}")
expect(overflows(naive_sigmoid, -(limit + 0.01)) and not overflows(naive_sigmoid, -(limit - 0.01))
       and not overflows(naive_sigmoid, 1000.0),
       f"the naive formula overflows exactly for x < -{limit:.1f} (not for large positive x)")
expect(not any(overflows(sigmoid, z) for z in (-1000.0, -100.0, 1000.0)), "minae's sigmoid never overflows")
expect(keeps_tiny_values(sigmoid) and not keeps_tiny_values(naive_sigmoid),
       "at x = -100 the naive formula returns 0; minae returns the float32 nearest to sigmoid(-100)")
