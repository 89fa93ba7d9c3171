# %% [markdown]
# # 2. A dense layer: forward, backward, and why db sums over the batch
#
# A dense layer maps a batch x of shape (N, D_in) to y = x @ W + b, with W of
# shape (D_in, D_out) and b of shape (D_out,). Given the upstream gradient
# dout = dL/dy of shape (N, D_out), the chain rule gives
#
#     dW = x.T @ dout      (D_in, N) @ (N, D_out) -> (D_in, D_out), like W
#     db = dout.sum(0)     (D_out,), like b
#     dx = dout @ W.T      (N, D_out) @ (D_out, D_in) -> (N, D_in), like x
#
# Where they come from: write one output element with indices,
#
#     y_nj = sum_i x_ni W_ij + b_j          (n: row of the batch, i: input, j: output)
#
# The loss L depends on W_ij through every y_nj that uses it (every row n, and
# only column j), so by the chain rule
#
#     dL/dW_ij = sum_n dL/dy_nj * dy_nj/dW_ij = sum_n dout_nj x_ni = (x^T dout)_ij
#     dL/db_j  = sum_n dout_nj * 1                                  (db sums over rows)
#     dL/dx_ni = sum_j dout_nj W_ij = (dout W^T)_ni                 (x_ni feeds every y_nj)
#
# Each sum over the index that is not in the result becomes a matrix product.
# A quick way to remember them: every gradient has the shape of what it is
# the gradient of, and there is only one way to multiply the available arrays
# to get that shape.
#
# Why does db *sum* over the batch? b is added to every one of the N rows, so
# a small change in b changes all N outputs; their effects on the loss add up.

# %%
import numpy as np
from _tutorial import expect

from minae import Dense
from minae.gradcheck import check_layer, numerical_vjp, rel_error

rng = np.random.default_rng(0)
layer = Dense(4, 3, rng=rng, dtype="float64")   # float64: gradient checks need it (see tutorial 6)
x = rng.standard_normal((5, 4))                  # N = 5, D_in = 4
y = layer.forward(x)
print("x", x.shape, "-> y", y.shape, "; W", layer.W.shape, "b", layer.b.shape)

dout = rng.standard_normal(y.shape)              # a random upstream gradient
dx = layer.backward(dout)
print("dx", dx.shape, "dW", layer.dW.shape, "db", layer.db.shape)
# The index sums above, spelled out with einsum, give the very same numbers:
expect(np.allclose(layer.dW, np.einsum("nj,ni->ij", dout, x))
       and np.allclose(layer.db, np.einsum("nj->j", dout))
       and np.allclose(dx, np.einsum("nj,ij->ni", dout, layer.W)),
       "dW = sum_n dout_nj x_ni, db = sum_n dout_nj, dx = sum_j dout_nj W_ij")
expect(dx.shape == x.shape and layer.dW.shape == layer.W.shape and layer.db.shape == layer.b.shape,
       "every gradient has the shape of what it is the gradient of")

# %% [markdown]
# ## Checking each gradient numerically
#
# To check a layer whose output is an array, collapse it to a scalar with the
# upstream gradient: L = sum(y * dout). Then dL/dx is exactly what
# `backward(dout)` must return. A *random* dout matters: with all ones, a
# backward that ignored dout would pass.

# %%
numeric_dW = numerical_vjp(lambda: layer.forward(x), layer.W, dout)
print(f"dW relative error: {rel_error(layer.dW, numeric_dW):.2e}")
errors = check_layer(layer, x, rng=rng)
for name, err in errors.items():
    print(f"d{name}: relative error {err:.2e}")
expect(max(errors.values()) < 1e-7, "dx, dW and db all match finite differences (relative error < 1e-7)")

# %% [markdown]
# ## db really is a sum over the batch
#
# Double the batch by stacking x on itself: the gradient of b doubles, the
# gradient of W doubles, and dx simply repeats.

# %%
layer.forward(np.vstack([x, x]))
layer.backward(np.vstack([dout, dout]))
db_double = layer.db.copy()
layer.forward(x)
layer.backward(dout)
print("db for the batch:", layer.db.round(4), "\ndb for the batch twice:", db_double.round(4))
expect(np.allclose(db_double, 2 * layer.db), "stacking the batch twice doubles db")

# %% [markdown]
# ## The code minae runs, and a stack of models
#
# `Dense.backward` in `minae/layers.py` is these three lines, written so that
# they also work when every array has one more axis in front: K models
# trained side by side (minae.sweep's learning-rate sweep does this), with x of
# shape (K, N, D_in) and W of shape (K, D_in, D_out). Only the last two axes
# are transposed (`a.mT`) and db sums over axis -2, the batch, so
# model k's gradients are exactly those of model k alone:
#
#     dW = x.mT @ dout           (K, D_in, N) @ (K, N, D_out) -> (K, D_in, D_out)
#     db = dout.sum(axis=-2)     (K, D_out)
#     dx = dout @ W.mT           (K, N, D_out) @ (K, D_out, D_in) -> (K, N, D_in)
#
# Training also passes `out=` buffers so nothing is allocated per batch; the
# numbers are the same.

# %%
K = 3
stack = Dense(4, 3, dtype="float64")
stack.W, stack.b = rng.standard_normal((K, 4, 3)), rng.standard_normal((K, 3))
stack.dW, stack.db = np.zeros((K, 4, 3)), np.zeros((K, 3))
xs, douts = rng.standard_normal((K, 5, 4)), rng.standard_normal((K, 5, 3))
stack.forward(xs)
stack.backward(douts)
for k in range(K):
    expect(np.allclose(stack.dW[k], xs[k].T @ douts[k]) and np.allclose(stack.db[k], douts[k].sum(0)),
           f"model {k} of the stack gets exactly its own dW and db")
