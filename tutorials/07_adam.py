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
#   Dividing by the gradient's typical size sqrt(v) gives steps of about lr
#   however small or large the gradients are, once v has averaged enough of
#   them. But v starts at 0: after t steps of a gradient g it is only
#   (1 - b2^t) g², too small for the first few hundred steps when
#   b2 = 0.999, and the steps are too large. After one gradient
#   sqrt(v) = sqrt(1 - b2) |g|, and the step is lr / sqrt(1 - b2): 31.6 lr.
#
# **Adam** is both: momentum's m on top, RMSProp's v below, and the fix for
# that first step. m and v start at 0, so after t steps of a constant
# gradient g, m = (1 - b1^t) g, not g, and v = (1 - b2^t) g². Dividing m by
# (1 - b1**t) and v by (1 - b2**t) corrects that bias exactly; b^t -> 0 as t
# grows and the correction fades. The step is
#
#     lr * m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1**t),  v_hat = v / (1 - b2**t)
#
# and the first one is lr * g / (|g| + eps): lr in every coordinate, as long
# as |g| is much larger than eps.
#
# Keras (what the original experiment ran) folds the bias correction into the
# step size and adds eps to sqrt(v) instead of sqrt(v_hat). That is the
# textbook step with an epsilon of eps / sqrt(1 - b2^t), which shrinks from
# eps / sqrt(1 - b2) = 31.6 eps at t = 1 to eps: different only while t is
# small.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from _tutorial import FAST, expect, save

from minae import SGD, Adam, Autoencoder, fit
from minae.data import load_sample

B1, B2, EPS = 0.9, 0.999, 1e-8


def descend(rule, lr, hessian, start, steps=100):
    """The points visited by one update rule on f(p) = p.H.p / 2 (gradient H p): (steps + 1, 2)."""
    p, m, v = np.array(start, dtype=np.float64), np.zeros(2), np.zeros(2)
    path = [p.copy()]
    for t in range(1, steps + 1):
        g = hessian @ p
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g**2
        if rule == "sgd":
            p = p - lr * g
        elif rule == "momentum":
            p = p - lr * m
        elif rule == "rmsprop":
            p = p - lr * g / (np.sqrt(v) + EPS)
        else:   # adam, with B1**t and B2**t in the bias corrections
            p = p - lr * (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS)
        path.append(p.copy())
    return np.array(path)


def first_step_is(path, lr, times):
    """True when the first step moved every coordinate by `times` * lr (to 1e-6, relative)."""
    return bool(np.allclose(np.abs(path[1] - path[0]) / lr, times, rtol=1e-6, atol=0))


AXIS = np.diag([100.0, 1.0])       # f(a, b) = 50 a² + 0.5 b²: one steep direction, one flat
for rule in ("rmsprop", "adam"):
    step = np.abs(descend(rule, 0.01, AXIS, (1.0, 1.0), steps=1)[1] - (1.0, 1.0)) / 0.01
    print(f"{rule:>8}: first step / lr = {step[0]:.4f} (steep coordinate), {step[1]:.4f} (flat)")
print(f"1 / sqrt(1 - b2) = {1 / math.sqrt(1 - B2):.4f}")
expect(first_step_is(descend("rmsprop", 0.01, AXIS, (1.0, 1.0), steps=1), 0.01, 1 / math.sqrt(1 - B2)),
       "uncorrected RMSProp's first step is lr / sqrt(1 - b2) = 31.6 lr in every coordinate")
expect(first_step_is(descend("adam", 0.01, AXIS, (1.0, 1.0), steps=1), 0.01, 1.0),
       "Adam's bias correction makes it lr")

# %% [markdown]
# ## A race on a bowl, and the same bowl turned
#
# f(a, b) = 50 a² + 0.5 b², started at (1, 1): curvature 100 along a, 1 along
# b. Each rule gets the learning rate, out of 0.3, 0.1, 0.03, 0.019 and 0.01,
# that ends lowest after 100 steps. Then the same bowl and the same start,
# turned by 30 degrees: the same problem in other coordinates. Every number
# printed is f after 100 steps.

# %%
LRS = (0.3, 0.1, 0.03, 0.019, 0.01)
START = np.array([1.0, 1.0])
TURN = np.radians(30)
R = np.array([[np.cos(TURN), -np.sin(TURN)], [np.sin(TURN), np.cos(TURN)]])
TURNED = R @ AXIS @ R.T                                   # the same bowl, turned by 30 degrees


def f_after(path, hessian):
    return float(path[-1] @ hessian @ path[-1] / 2)


best_lr, final, paths = {}, {}, {}
for rule in ("sgd", "momentum", "adam"):
    ends = {lr: f_after(descend(rule, lr, AXIS, START), AXIS) for lr in LRS}
    best_lr[rule] = min((f, lr) for lr, f in ends.items() if np.isfinite(f))[1]
    for bowl, hessian, start in (("axis-aligned", AXIS, START), ("turned", TURNED, R @ START)):
        paths[rule, bowl] = descend(rule, best_lr[rule], hessian, start)
        final[rule, bowl] = f_after(paths[rule, bowl], hessian)
    print(f"{rule:>8} at lr {best_lr[rule]:<5}: axis-aligned {final[rule, 'axis-aligned']:.2e}, "
          f"turned {final[rule, 'turned']:.2e}")
sgd_blowup = f_after(descend("sgd", 0.03, AXIS, START), AXIS)
print(f"     sgd at lr 0.03  : {sgd_blowup:.1e} (it diverges: the steep direction needs lr < 2/100)")

fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
grid = np.linspace(-1.5, 1.5, 201)
a, b = np.meshgrid(grid, grid)
for ax, (bowl, hessian) in zip(axes, (("axis-aligned", AXIS), ("turned", TURNED))):
    f = (hessian[0, 0] * a**2 + 2 * hessian[0, 1] * a * b + hessian[1, 1] * b**2) / 2
    ax.contour(a, b, f, levels=np.geomspace(1e-2, 100, 12), colors="0.8", linewidths=0.7)
    for rule, style in (("sgd", "o-"), ("momentum", "s-"), ("adam", "^-")):
        path = paths[rule, bowl]
        ax.plot(path[:, 0], path[:, 1], style, ms=2.5, lw=0.8,
                label=f"{rule} lr {best_lr[rule]}: f {final[rule, bowl]:.1e}")
    ax.set_title(f"{bowl} bowl, 100 steps", fontsize=10)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower left")
save(fig, "07_bowl_trajectories")

# %% [markdown]
# What each number says:
#
# - **SGD** must keep lr below 2 / 100 = 0.02, or the steep direction
#   overshoots further every step (lr 0.03 diverges); at lr 0.019 each step
#   multiplies a by (1 - 100 lr) and b by (1 - lr), so after 100 steps
#   f = 50 a0² (1 - 100 lr)^200 + 0.5 b0² (1 - lr)^200: exactly what it
#   printed. The flat direction is still crawling.
# - **Momentum** (lr 0.1 is stable for it, because it averages the steep
#   direction's alternating gradients away) lets the flat direction build up
#   speed and ends far lower.
# - Both are **rotation-equivariant**: their updates are linear in the
#   gradient, so turning the bowl turns their paths and changes no f.
# - **Adam** divides each *coordinate* by its own sqrt(v). On the
#   axis-aligned bowl the coordinates are the bowl's own directions, the best
#   case for that: it beats SGD. Turn the bowl and each coordinate mixes
#   steep and flat, and Adam's result changes, for the worse. Momentum beats
#   it on both: on a bowl, Adam is not "the best of both". What Adam buys is
#   below, on the autoencoder.

# %%
def sgd_prediction(lr, start=START):
    """f after 100 SGD steps on the axis-aligned bowl: each coordinate shrinks by (1 - lr * curvature)."""
    return 50 * start[0] ** 2 * (1 - 100 * lr) ** 200 + 0.5 * start[1] ** 2 * (1 - lr) ** 200


def same_when_turned(rule, final):
    """True when turning the bowl changes the rule's f after 100 steps by less than 1e-9 relative."""
    return abs(final[rule, "turned"] / final[rule, "axis-aligned"] - 1) < 1e-9


def as_predicted(measured, predicted):
    """True when measured equals predicted to 1e-9, relative."""
    return abs(measured / predicted - 1) < 1e-9


def ends_above(f_end, f_start):
    """True when a run ended above where it started, or diverged (f not finite)."""
    return not np.isfinite(f_end) or f_end > f_start


def beats(final, winner, loser, bowls=("axis-aligned", "turned"), factor=1):
    """True when `winner` ends over `factor` times lower than `loser` on each of `bowls`."""
    return all(final[winner, b] < final[loser, b] / factor for b in bowls)


def worse_when_turned(rule, final, factor=2):
    """True when turning the bowl makes the rule's f after 100 steps over `factor` times larger."""
    return final[rule, "turned"] > factor * final[rule, "axis-aligned"]


print(f"SGD's f predicted from (1 - lr * curvature)^200: {sgd_prediction(best_lr['sgd']):.6e}, "
      f"measured {final['sgd', 'axis-aligned']:.6e}")
expect(as_predicted(final["sgd", "axis-aligned"], sgd_prediction(best_lr["sgd"])),
       "SGD's f is exactly the flat direction's slow shrinking, (1 - lr)^200")
expect(ends_above(sgd_blowup, f_after(np.array([START]), AXIS)),
       "SGD at lr 0.03 > 2/100 ends above where it started")
expect(beats(final, "momentum", "sgd", factor=10),
       "momentum ends over 10 times lower than SGD on both bowls")
expect(same_when_turned("sgd", final) and same_when_turned("momentum", final),
       "turning the bowl changes nothing for SGD and momentum")
expect(beats(final, "adam", "sgd", bowls=("axis-aligned",)),
       "on the axis-aligned bowl Adam beats SGD")
expect(not same_when_turned("adam", final) and worse_when_turned("adam", final),
       "turning it changes Adam's result, over 2 times worse: per-coordinate scaling is best on aligned axes")
expect(beats(final, "momentum", "adam"),
       "on these bowls momentum beats Adam")

# %% [markdown]
# ## Adam's first step, by hand and by minae

# %%
lr, g = 0.1, 0.5
m, v = (1 - B1) * g, (1 - B2) * g**2
m_hat, v_hat = m / (1 - B1), v / (1 - B2)
by_hand = 1.0 - lr * m_hat / (math.sqrt(v_hat) + EPS)
print(f"step 1 by hand: m={m}, v={v:.6f}, m_hat={m_hat}, v_hat={v_hat}, new p = {by_hand:.10f}")
p = np.array([1.0])
Adam(lr, B1, B2, EPS, form="textbook").step([p], [np.array([g])])


def same_step(new_p, by_hand):
    """True when the parameter after the step is the hand-computed one to 1e-15."""
    return abs(new_p - by_hand) < 1e-15


expect(same_step(p[0], by_hand), "minae's textbook Adam takes exactly the hand-computed first step")

# %% [markdown]
# "About lr whatever the gradient's scale" holds while |g| is much larger than
# eps: the first step is exactly lr * |g| / (|g| + eps), so a gradient the
# size of eps gets half a step and a smaller one almost none.


# %%
def first_adam_step(g, form="textbook", eps=EPS):
    """The size of minae's first Adam step (lr 0.1) from a gradient g."""
    p = np.array([1.0])
    Adam(0.1, B1, B2, eps, form=form).step([p], [np.array([g])])
    return 1.0 - p[0]


def first_step_is_lr_times(steps, gradients, factor):
    """True when each first step equals 0.1 * factor(g) for its g (to 1e-9, relative)."""
    return all(abs(s / (0.1 * factor(g)) - 1) < 1e-9 for s, g in zip(steps, gradients))


gradients = (1e2, 1.0, 1e-4, 1e-6, 1e-8, 1e-10)
steps = [first_adam_step(g) for g in gradients]
for g, s in zip(gradients, steps):
    print(f"g = {g:.0e}: first step {s:.6f} = {s / 0.1:.4f} lr")
expect(first_step_is_lr_times(steps, gradients, lambda g: g / (g + EPS)),
       "the first step is lr * |g| / (|g| + eps) for every gradient")


def lr_only_where_g_is_large(steps, gradients):
    """True when each first step is lr 0.1 within 1% where g >= 100 eps, and not every step is."""
    return all(abs(s / 0.1 - 1) < 0.01 for s, g in zip(steps, gradients) if g >= 100 * EPS) \
        and not all(abs(s / 0.1 - 1) < 0.01 for s in steps)


expect(lr_only_where_g_is_large(steps, gradients), "it is lr (within 1%) only where |g| >= 100 eps")

# %% [markdown]
# And the Keras form, whose first step has eps / sqrt(1 - b2) in place of
# eps (Keras' default eps is 1e-7; here 1e-3 and a gradient of 1e-4, so the
# difference shows):

# %%
tiny, big_eps = 1e-4, 1e-3
keras, text = first_adam_step(tiny, "keras", big_eps), first_adam_step(tiny, "textbook", big_eps)
print(f"gradient {tiny:.0e}, eps {big_eps:.0e}: first step keras {keras:.3e}, textbook {text:.3e}")
expect(first_step_is_lr_times([keras], [tiny], lambda g: g / (g + big_eps / math.sqrt(1 - B2)))
       and first_step_is_lr_times([text], [tiny], lambda g: g / (g + big_eps)),
       "Keras' first step has epsilon eps / sqrt(1 - b2) = 31.6 eps, the textbook's eps")

# %% [markdown]
# ## Adam and SGD on the same autoencoder
#
# Same initial weights, same shuffles, 784 -> 32 -> 16 -> 32 -> 784 on real
# MNIST digits (the bundled sample). How large are the gradients SGD would
# step with? The loss is a mean over N * D numbers, so dz = (p - x) / (N D);
# but dW = x^T @ dz sums over the N rows of the batch, which cancels the
# 1/N. What remains is the 1/D = 1/784 of the mean over pixels: dW does not
# shrink with the batch, it is small because an image has 784 pixels.

# %%
data = load_sample("mnist", limit_val=500)
probe = Autoencoder(784, [32, 16, 32], seed=0)
size = {}
for n in (64, 256):
    _, grads = probe.loss(data.x_train[:n])
    size[n] = float(np.median(np.abs(grads[0][grads[0] != 0])))
    print(f"batch of {n:3d}: median |dW1| over its nonzero entries {size[n]:.2e}")


def independent_of_batch_size(size_small, size_large):
    """True when two gradient sizes from batches 4x apart differ by less than a factor 2."""
    return 0.5 < size_small / size_large < 2


expect(independent_of_batch_size(size[64], size[256]),
       "dW1's size does not depend on the batch size (the sum over rows cancels 1/N)")


# %% [markdown]
# So SGD's steps, lr x |g|, are tiny unless lr is large: for a step of
# 1e-3 per weight, what Adam takes at lr 0.001, lr would have to be about
# 1e-3 / 1e-5 = 100. Below it is tried at 0.1, 1, 3, 10 and 30. Adam's
# lr 0.001 works without knowing the gradient's size at all. To see that,
# multiply every gradient by 1000 (about what summing the loss over the 784
# pixels instead of averaging would do) or by 1/1000: Adam's run should not
# change while |g| stays far above its eps (Keras' 1e-7), and SGD's should.

# %%
class GradientsTimes:
    """An optimizer that hands `inner` every gradient multiplied by `factor`."""

    def __init__(self, inner, factor):
        self.inner, self.factor = inner, factor

    def step(self, params, grads):
        self.inner.step(params, [g * self.factor for g in grads])


epochs = 3 if FAST else 10
runs = {"Adam lr 0.001": Adam(0.001), "Adam, gradients x 1000": GradientsTimes(Adam(0.001), 1000.0),
        "Adam, gradients / 1000": GradientsTimes(Adam(0.001), 1e-3)}
runs.update({f"SGD lr {lr:g}": SGD(lr) for lr in (0.1, 1.0, 3.0, 10.0, 30.0)})
val = {}
for name, opt in runs.items():
    history = fit(Autoencoder(784, [32, 16, 32], seed=0), data.x_train, data.x_val, epochs=epochs,
                  optimizer=opt, progress=False)
    val[name] = history.val_bce
best_sgd = min((v[-1], name) for name, v in val.items() if name.startswith("SGD") and np.isfinite(v[-1]))[1]
sgd_lr = float(best_sgd.split()[-1])
with np.errstate(all="ignore"):   # it may well diverge; fit stops at a NaN loss and says when
    history = fit(Autoencoder(784, [32, 16, 32], seed=0), data.x_train, data.x_val, epochs=epochs,
                  optimizer=GradientsTimes(SGD(sgd_lr), 1000.0), progress=False)
val[f"{best_sgd}, gradients x 1000"] = history.val_bce
for name, v in val.items():
    print(f"{name:>30}: validation BCE per epoch", [round(b, 4) for b in v])
print(f"the best SGD learning rate of these: {sgd_lr:g}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, v in val.items():
    ax.plot(range(1, len(v) + 1), v, marker="o", label=name)   # a diverged run stops early
ax.set_xlabel("epoch")
ax.set_ylabel("validation BCE")
ax.legend(fontsize=7)
save(fig, "07_adam_vs_sgd")


def within(a, b, fraction):
    """True when a and b differ by less than `fraction` of b."""
    return abs(a - b) < fraction * abs(b)


adam = val["Adam lr 0.001"][-1]
expect(val["SGD lr 0.1"][-1] > 0.98 * np.log(2),
       "SGD at lr 0.1 has barely left ln 2, the loss of predicting 1/2 everywhere")
expect(within(val[best_sgd][-1], adam, 0.1), f"SGD at a tuned lr ({sgd_lr:g}) ends within 10% of Adam")
expect(within(val["Adam, gradients x 1000"][-1], adam, 0.01),
       "gradients 1000 times larger leave Adam's run the same (within 1%)")
expect(not within(val[f"{best_sgd}, gradients x 1000"][-1], val[best_sgd][-1], 0.1),
       "but upset SGD's at the same lr (over 10% away, or diverged): its lr would need retuning")
expect(val["Adam, gradients / 1000"][-1] > 1.05 * adam,
       "gradients 1000 times smaller (~1e-8, below Keras' eps of 1e-7) do slow Adam down: "
       "scale invariance needs |g| >> eps")
