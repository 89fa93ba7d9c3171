# %% [markdown]
# # 7. Adam step by step, and plain SGD beside it
#
# Where Adam comes from, in three steps:
#
# - **SGD**: p -= lr * g. One learning rate for every parameter, and a step
#   that scales with the gradient: tiny gradients crawl, noisy ones zig-zag.
# - **Momentum**: m = b1 m + (1 - b1) g; p -= lr * m. Averaging the gradients
#   cancels the zig-zag and keeps the steady direction.
# - **RMSProp**: v = b2 v + (1 - b2) g²; p -= lr * g / (sqrt(v) + eps).
#   Dividing by the gradient's typical size gives every parameter a step of
#   about lr, however small or large its gradients are.
#
# **Adam** is both: momentum's m on top, RMSProp's v below. Measured on the
# ill-conditioned bowl f(a, b) = 50 a² + 0.5 b² (one steep direction, one
# flat), starting at (1, 1), 100 steps each, below.
#
# Adam keeps, per parameter, a running mean of the gradient (m) and of its
# square (v):
#
#     m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g²
#
# Both start at 0, so early on they are too small: after t steps of a
# constant gradient g, m = (1 - b1^t) g, not g. Dividing by (1 - b1**t) (and v
# by (1 - b2**t)) corrects that bias exactly; b1**t -> 0 as t grows, and the
# correction fades. The step is lr * m_hat / (sqrt(v_hat) + eps): the sign
# and a *normalised* size of the gradient, about lr per step whatever the
# gradient's scale.
#
# Keras (what the original experiment ran) folds the bias correction into the
# step size and adds eps to sqrt(v) instead of sqrt(v_hat). That is the
# textbook step with an epsilon of eps / sqrt(1 - b2^t): different only while
# t is small.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from _tutorial import FAST, expect, save

from minae import SGD, Adam, Autoencoder, fit
from minae.data import load_sample


def bowl(point):
    """f = 50 a^2 + 0.5 b^2 and its gradient."""
    a, b = point
    return 50 * a**2 + 0.5 * b**2, np.array([100 * a, b])


def descend(rule, lr, steps=100):
    point, m, v = np.array([1.0, 1.0]), np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        _, grad = bowl(point)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        if rule == "sgd":
            point = point - lr * grad
        elif rule == "momentum":
            point = point - lr * m
        elif rule == "rmsprop":
            point = point - lr * grad / (np.sqrt(v) + 1e-8)
        else:   # adam, with b1**t and b2**t in the bias corrections
            point = point - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return bowl(point)[0]


# Each rule at the largest of a few learning rates that does not blow up on the steep direction.
final = {}
for rule in ("sgd", "momentum", "rmsprop", "adam"):
    finite = [f for f in (descend(rule, lr) for lr in (0.019, 0.01, 0.1, 0.05)) if np.isfinite(f) and f < 1e3]
    final[rule] = min(finite)
print("f after 100 steps (best stable lr):", ", ".join(f"{k} {v:.1e}" for k, v in final.items()))
expect(final["adam"] < final["sgd"] and final["rmsprop"] < final["sgd"],
       "normalising by sqrt(v) beats plain SGD on a bowl with one steep and one flat direction")

lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
g = 0.5
m, v = (1 - b1) * g, (1 - b2) * g**2
m_hat, v_hat = m / (1 - b1), v / (1 - b2)
by_hand = 1.0 - lr * m_hat / (math.sqrt(v_hat) + eps)
print(f"step 1 by hand: m={m}, v={v:.6f}, m_hat={m_hat}, v_hat={v_hat}, new p = {by_hand:.10f}")
p = np.array([1.0])
Adam(lr, b1, b2, eps, form="textbook").step([p], [np.array([g])])
expect(abs(p[0] - by_hand) < 1e-15, "minae's textbook Adam takes exactly the hand-computed first step")
expect(abs((1.0 - p[0]) - lr) < 1e-6, "the first Adam step has size lr, whatever the gradient's scale")

# %%
p_keras, p_text = np.array([1.0]), np.array([1.0])
keras, text = Adam(lr, b1, b2, 1e-3), Adam(lr, b1, b2, 1e-3, form="textbook")
tiny = np.array([1e-4])   # a gradient comparable to eps shows the difference
keras.step([p_keras], [tiny])
text.step([p_text], [tiny])
print(f"with a tiny gradient, first step: keras {1 - p_keras[0]:.3e}, textbook {1 - p_text[0]:.3e}")
expect(1 - p_keras[0] < 1 - p_text[0], "Keras' eps weighs more early on (eps / sqrt(1 - b2^t) is larger)")

# %% [markdown]
# ## Adam and SGD on the same autoencoder
#
# Same initial weights, same shuffles, 784 -> 32 -> 16 -> 32 -> 784 on real
# MNIST digits (the bundled sample). SGD's step is lr * g, and the gradients
# of a mean over 200,000 pixels are tiny, so SGD crawls; Adam normalises them.

# %%
data = load_sample("mnist", limit_train=1000 if FAST else 5000, limit_val=500)
epochs = 3 if FAST else 10
histories = {}
for name, opt in [("Adam lr=0.001", Adam(0.001)), ("SGD lr=0.1", SGD(0.1)), ("SGD lr=1.0", SGD(1.0))]:
    model = Autoencoder(784, [32, 16, 32], seed=0)
    histories[name] = fit(model, data.x_train, data.x_val, epochs=epochs, optimizer=opt, progress=False)
    print(f"{name:>14}: validation BCE per epoch", [round(v, 4) for v in histories[name].val_bce])
fig, ax = plt.subplots(figsize=(5, 3))
for name, h in histories.items():
    ax.plot(range(1, epochs + 1), h.val_bce, marker="o", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("validation BCE")
ax.legend()
save(fig, "07_adam_vs_sgd")
expect(histories["Adam lr=0.001"].val_bce[-1] < min(histories["SGD lr=0.1"].val_bce[-1],
                                                     histories["SGD lr=1.0"].val_bce[-1]),
       "Adam ends lower than SGD at either learning rate")
