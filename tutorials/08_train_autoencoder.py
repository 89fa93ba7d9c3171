# %% [markdown]
# # 8. Training an autoencoder on real images
#
# Everything so far, put together: real MNIST digits (the bundled sample,
# 5,000 training and 1,000 validation images), flattened to 784 pixels in
# [0, 1]; the original experiment's deepest model, 784 -> 128 -> 64 -> 32 ->
# 64 -> 128 -> 784; Adam at lr 0.001; batches of 256.
#
# What to look at: the loss curves and the floor under them, the
# reconstructions, what training changed in the first layer's weights, and
# what the first encoding layer outputs.
#
# ## The training loop, by hand
#
# An epoch is a fresh shuffle of the training set cut into batches of 256;
# each batch is forward, loss, backward (`model.loss`) and one Adam step.
# That is all of training:

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _tutorial import FAST, FIGURES, expect, save, show_png

from minae import Adam, Autoencoder, bce_with_logits, fit
from minae.data import load_sample
from minae.grid import plots
from minae.grid.report import mean_image_bce

data = load_sample("mnist")
print(data.describe())
x = data.x_train

start = time.perf_counter()
by_hand, opt = Autoencoder(784, [128, 64, 32, 64, 128], seed=0), Adam(0.001)
rng = np.random.default_rng(0)
for _ in range(2):                                        # two epochs
    order = rng.permutation(len(x))                       # a new shuffle every epoch
    for i in range(0, len(x), 256):
        loss, grads = by_hand.loss(x[order[i:i + 256]])   # forward, BCE, backward
        opt.step(by_hand.params, grads)                   # Adam, one parameter array at a time
hand_seconds = time.perf_counter() - start

# %% [markdown]
# `fit` runs the very same code: the same shuffles (from `seed`), the same
# `Dense`, `ReLU` and loss, the same `Adam`. It only runs it faster: the
# layers write into buffers allocated once instead of new arrays every batch,
# the first layer skips the gradient of the data, and Adam steps the model's
# one flat parameter buffer instead of twelve arrays (a W and a b per layer). The weights come out
# identical, bit for bit:

# %%
start = time.perf_counter()
same = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
fit(same, x, epochs=2, batch_size=256, optimizer=Adam(0.001), seed=0, progress=False)
fit_seconds = time.perf_counter() - start
print(f"two epochs by hand {hand_seconds:.2f} s, with fit {fit_seconds:.2f} s")


def bit_for_bit(params, other):
    """True when two lists of parameter arrays are as long and equal element for element, bit for bit."""
    return len(params) == len(other) and all(np.array_equal(a, b) for a, b in zip(params, other))


expect(bit_for_bit(by_hand.params, same.params),
       "fit and the hand-written loop give bit-for-bit the same weights")

# %% [markdown]
# ## How low can BCE go? Not to 0
#
# MNIST pixels are not just 0 or 1: the edges of strokes are grey. For a
# target x strictly between 0 and 1, x log p + (1 - x) log(1 - p) is largest
# at p = x (its derivative in z is (p - x), tutorial 4), so even a perfect
# reconstruction, p = x for every pixel, pays the targets' own entropy:
#
#     BCE >= H(x) = -mean( x log x + (1 - x) log(1 - x) )      (0 log 0 = 0)
#
# That floor is what a loss curve approaches, not 0.

# %%
def entropy(x):
    """The mean over pixels of -(x log x + (1 - x) log(1 - x)): the BCE of predicting p = x."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(x > 0, x * np.log(x), 0.0) - np.where(x < 1, (1 - x) * np.log(1 - x), 0.0)
    return float(h.mean())


print(f"{np.mean((x > 0) & (x < 1)):.1%} of the training pixels are grey, strictly between 0 and 1")
print(f"BCE floor: training set {entropy(data.x_train):.4f}, validation set {entropy(data.x_val):.4f}")

# %% [markdown]
# ## The classic sanity check: overfit one small batch
#
# Before a long run, train on a single batch of 16 images only. A model this
# size can memorise them, so the loss must fall close to those 16 images'
# floor; if it does not, something in the loop (a gradient, a sign, the
# optimizer) is broken, and no amount of data will help. A student expecting
# the loss to reach 0 would think something is broken when it is not.

# %%
tiny = x[:16]
small, opt = Autoencoder(784, [128, 64, 32, 64, 128], seed=1), Adam(0.003)
start_loss = float(small.loss(tiny)[0])
for _ in range(150):
    loss, grads = small.loss(tiny)
    opt.step(small.params, grads)
floor = entropy(tiny)
print(f"one batch of 16: BCE {start_loss:.4f} at the start, {float(loss):.4f} after 150 steps on it alone; "
      f"its floor {floor:.4f}")


def closes_the_gap(loss, floor, start, fraction=0.05):
    """True when loss is at or above the floor and less than `fraction` of the way from it to start."""
    return floor <= loss < floor + fraction * (start - floor)


expect(closes_the_gap(float(loss), floor, start_loss),
       "the model memorises the batch: its loss ends within 5% of the gap above the floor, not at 0")

# %% [markdown]
# ## Training for real

# %%
model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
w0 = model.params[0].copy()                               # the first layer's weights before training
epochs = 10 if FAST else 20
history = fit(model, data.x_train, data.x_val, epochs=epochs, batch_size=256, optimizer=Adam(0.001),
              progress=None)
for epoch, (tr, va) in enumerate(zip(history.train_bce, history.val_bce), start=1):
    print(f"epoch {epoch:2d}: train BCE {tr:.4f}  validation BCE {va:.4f}")

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(range(1, epochs + 1), history.train_bce, marker="o", label="training (mean over the epoch)")
ax.plot(range(1, epochs + 1), history.val_bce, marker="o", label="validation (after the epoch)")
ax.axhline(entropy(data.x_val), color="0.5", ls="--", label="validation floor (targets' entropy)")
ax.set_xlabel("epoch")
ax.set_ylabel("BCE")
ax.set_ylim(0, None)
ax.legend(fontsize=8)
save(fig, "08_curves")

# %% [markdown]
# ## The baseline: the best constant output is the mean image
#
# A model that outputs one image p for every input, whatever it is, has the
# gradient (p - x_n) / (N D) at each image's logits; summed over the batch
# that is (p - mean_n x_n) / D, which is 0 only at p = the mean image. So the
# best constant output is the mean training image, and its BCE is the
# baseline every model must beat. (Tutorial 9 meets a model that fell back to
# exactly that.)

# %%
def gradient_of_a_constant(p, x):
    """(D,) dBCE/dz summed over the images when the model outputs the image p for every x: (N, D)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)   # never-inked pixels: logit of 0
    z = np.broadcast_to(np.log(p) - np.log1p(-p), x.shape)            # logits whose sigmoid is p
    return bce_with_logits(z, x.astype(np.float64))[1].sum(axis=0)


def is_stationary(p, x):
    """True when no pixel of the constant output p would move: the summed gradient is < 1e-9."""
    return float(np.max(np.abs(gradient_of_a_constant(p, x)))) < 1e-9


mean_image = data.x_train.mean(axis=0, dtype=np.float64)
for name, p in (("the mean image", mean_image), ("the mean image + 0.01", mean_image + 0.01)):
    largest = np.max(np.abs(gradient_of_a_constant(p, x)))
    print(f"constant output {name}: largest summed gradient {largest:.1e}")
expect(is_stationary(mean_image, x) and not is_stationary(mean_image + 0.01, x),
       "the gradient of a constant output vanishes at the mean image, and only there")
baseline = mean_image_bce(data.x_train, data.x_val)
print(f"the mean-image baseline scores {baseline:.4f} on validation; the floor is {entropy(data.x_val):.4f}; "
      f"the model {history.val_bce[-1]:.4f}")


def falls(curve):
    """True when the last value of a loss curve is below its first."""
    return curve[-1] < curve[0]


def beats_baseline(loss, baseline, floor):
    """True when loss is under 0.9 times the baseline and above the floor."""
    return floor < loss < 0.9 * baseline


expect(falls(history.val_bce), "validation BCE falls during training")
expect(beats_baseline(history.val_bce[-1], baseline, entropy(data.x_val)),
       "the model beats the mean-image baseline by more than 10%, and stays above the floor")

# %% [markdown]
# ## What the first layer learned
#
# A column of W1 (784, 128) is a 28x28 pattern: one unit's weight on every
# pixel. Plotted as they are, most of these look like noise, for two
# reasons. A pixel that has no ink in any training image (the corners) gives
# its weights exactly zero gradient, so they keep their random start; and a
# unit that is dead (not positive for any training image) gets no gradient
# either. So look at W1 - W0, what training changed, with never-inked pixels
# grey and dead units marked. A dead unit shows a blue blob: its weights
# fell together wherever digits have ink (on over three quarters of the
# inked pixels, for the median dead unit). A live unit's went down on fewer
# of them: under two thirds, for the median live one.

# %%
def unchanged_where_never_inked(W, W0, x):
    """True when the weights of every pixel that is 0 in all of x are exactly their initial values."""
    never = x.max(axis=0) == 0
    return bool(never.any()) and np.array_equal(W[never], W0[never])


def moved_less(dead_change, live_change, factor=0.5):
    """True when dead units' mean |W - W0| is under `factor` times the live units'."""
    return dead_change < factor * live_change


w1 = model.params[0]
change = w1 - w0                                                # (784, 128)
never = x.max(axis=0) == 0                                     # (784,)
dead = model.encode(x, layer=1).max(axis=0) <= 0               # (128,) never positive on training images
dead_change, live_change = np.abs(change[:, dead]).mean(), np.abs(change[:, ~dead]).mean()
print(f"{never.sum()} of 784 pixels have no ink in any training image; {dead.sum()} of 128 units are dead")
print(f"mean |W - W0|: live units {live_change:.4f}, dead units {dead_change:.4f}; "
      f"the initial weights' mean |W0| {np.abs(w0).mean():.4f}")
expect(unchanged_where_never_inked(w1, w0, x), "the weights of never-inked pixels never changed, bit for bit")
expect(moved_less(dead_change, live_change),
       "dead units' weights moved less than half as much as live units'")
down = (change[~never] < 0).mean(axis=0)             # per unit: share of its inked-pixel weights that fell
print(f"share of a unit's inked-pixel weights that decreased (median): "
      f"dead units {np.median(down[dead]):.0%}, live units {np.median(down[~dead]):.0%}")


def mostly_pushed_down(down_dead, down_live):
    """True when the median dead unit lost weight on over 75% of its inked pixels, a live one on under 65%."""
    return np.median(down_dead) > 0.75 and np.median(down_live) < 0.65


expect(mostly_pushed_down(down[dead], down[~dead]),
       "dead units' weights went down together over the ink (tutorial 9 shows how that kills a unit)")

fig, axes = plt.subplots(8, 8, figsize=(8, 8.6))
for k, ax in enumerate(axes.flat):
    shown = np.ma.masked_where(never, change[:, k]).reshape(28, 28)
    lim = np.abs(change[~never, k]).max() or 1.0
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("0.8")                                        # never-inked pixels in grey
    ax.imshow(shown, cmap=cmap, vmin=-lim, vmax=lim)
    ax.set_xticks([])
    ax.set_yticks([])
    if dead[k]:
        ax.set_title("dead", fontsize=7, color="k")
        for side in ax.spines.values():
            side.set(color="k", linewidth=2)
fig.suptitle("W1 - W0 of the first 64 units: red up, blue down; grey: never inked", fontsize=9)
save(fig, "08_filters")

# %% [markdown]
# ## Reconstructions and codes
#
# `minae.grid.plots` draws these for every model of the grid; here they are
# for the model just trained.

# %%
x_show = data.x_val[:8]
names = [plots.plot_reconstructions(model, x_show, FIGURES / "08_reconstructions.png"),
         plots.plot_first_layer_codes(model, data.x_val[:6], FIGURES / "08_first_layer_codes.png")]
print("figures:", ", ".join(str(FIGURES / n) for n in names))
for name in names:
    show_png(FIGURES / name)   # inline in Jupyter; a script just writes the files

recon = model.predict(x_show)
err_model = np.abs(recon - x_show).mean()
err_mean = np.abs(mean_image - x_show).mean()
print(f"mean absolute pixel error: model {err_model:.3f}, mean image {err_mean:.3f}")
expect(err_model < err_mean, "reconstructions are closer to each digit than the average digit is")
codes = model.encode(data.x_val[:500], layer=1)
print(f"first encoding layer: {codes.shape[1]} units, {np.mean(codes > 0):.0%} of activations positive")
expect(codes.shape == (500, 128) and codes.min() >= 0, "the first encoding layer gives 128 ReLU outputs")
