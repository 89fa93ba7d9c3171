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
# The textbook formula 1 / (1 + exp(-x)) computes exp(1000) for x = -1000:
# that overflows to infinity (with a warning), and the result 1/inf = 0 only
# happens to be right. In float32 the overflow starts at |x| > 88. minae
# writes the same function as exp(min(x, 0)) / (1 + exp(-|x|)), where exp only
# ever sees numbers <= 0.

# %%
z = np.array([-1000.0, -100.0, -20.0, 0.0, 20.0, 1000.0], dtype=np.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    naive = 1 / (1 + np.exp(-z))
print("naive :", naive, "warnings:", [str(w.message) for w in caught])
with warnings.catch_warnings(record=True) as caught_minae:
    warnings.simplefilter("always")
    stable = sigmoid(z)
print("minae :", stable, "warnings:", len(caught_minae))
expect(len(caught) > 0, "the naive formula overflows (NumPy warns)")
expect(len(caught_minae) == 0 and np.all(np.isfinite(stable)), "minae's sigmoid stays finite and silent")
expect(stable[2] > 0 and abs(stable[2] / np.exp(-20.0) - 1) < 1e-6,
       "sigmoid(-20) keeps its full relative precision (about 2.06e-9, not 0)")
