# %% [markdown]
# # 1. The chain rule by hand
#
# Every gradient minae computes is the chain rule applied over and over. Here
# it is on a graph small enough to do on paper:
#
#     q = a * b          (a product)
#     r = q + c          (a sum)
#     f = r ** 2         (a square)
#
# Going *forward* we compute q, r, f. Going *backward* we ask how f changes
# when each input changes, starting from df/df = 1 and multiplying local
# derivatives along the way:
#
#     df/dr = 2r
#     df/dq = df/dr * dr/dq = 2r * 1
#     df/dc = df/dr * dr/dc = 2r * 1
#     df/da = df/dq * dq/da = 2r * b
#     df/db = df/dq * dq/db = 2r * a
#
# Each node only needs its *local* derivative and the gradient arriving from
# above ("upstream"). That is all a layer's `backward` ever does.

# %%
import numpy as np
from _tutorial import expect

from minae.gradcheck import numerical_gradient, rel_error

a, b, c = 3.0, -2.0, 5.0

# forward
q = a * b
r = q + c
f = r**2
print(f"forward: q = {q}, r = {r}, f = {f}")

# backward, one local derivative at a time
df_dr = 2 * r
df_dq = df_dr * 1.0
df_dc = df_dr * 1.0
df_da = df_dq * b
df_db = df_dq * a
print(f"backward: df/da = {df_da}, df/db = {df_db}, df/dc = {df_dc}")

# %% [markdown]
# ## Checking with a numerical derivative
#
# The centered difference (f(x + h) - f(x - h)) / 2h approximates a
# derivative with an error that shrinks like h². `minae.gradcheck` does this
# for every entry of an array; here the "array" holds a, b and c.

# %%
inputs = np.array([a, b, c])


def f_of_inputs():
    a, b, c = inputs
    return (a * b + c) ** 2


numeric = numerical_gradient(f_of_inputs, inputs)
analytic = np.array([df_da, df_db, df_dc])
print("numerical:", numeric)
print("by hand:  ", analytic)
err = rel_error(analytic, numeric)
print(f"relative error: {err:.2e}")
expect(err < 1e-9, "the hand-derived gradient matches the numerical one (relative error < 1e-9)")

# %% [markdown]
# ## The same idea with a sigmoid in the chain
#
# Add one more node, s = sigmoid(f / 10), whose local derivative is
# s * (1 - s). The gradient flowing back to a is now
# ds/da = s(1 - s) * (1/10) * df/da: one more factor, nothing more.

# %%
from minae import sigmoid

s = sigmoid(np.array(f / 10))
ds_da = s * (1 - s) * (1 / 10) * df_da
numeric_s = numerical_gradient(lambda: sigmoid(np.array(f_of_inputs() / 10)), inputs)[0]
print(f"ds/da by hand {float(ds_da):.10f}, numerically {numeric_s:.10f}")
expect(rel_error(ds_da, numeric_s) < 1e-8,
       "one more link in the chain is one more factor (relative error < 1e-8)")
