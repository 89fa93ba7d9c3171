# %% [markdown]
# # 8. Training an autoencoder on real images
#
# Everything so far, put together: real MNIST digits (the bundled sample,
# 5,000 training and 1,000 validation images), flattened to 784 pixels in
# [0, 1]; the original experiment's deepest model, 784 -> 128 -> 64 -> 32 ->
# 64 -> 128 -> 784; Adam at lr 0.001; batches of 256.
#
# What to look at: the loss curves, the reconstructions, what the first
# layer's weights look like, and what the first encoding layer outputs.
#
# ## The training loop, by hand
#
# An epoch is a fresh shuffle of the training set cut into batches of 256;
# each batch is forward, loss, backward (`model.loss`) and one Adam step.
# That is all of training:

# %%
import time

import numpy as np
from _tutorial import FAST, FIGURES, expect, show_png

from minae import Adam, Autoencoder, fit
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
expect(all(np.array_equal(a, b) for a, b in zip(by_hand.params, same.params)),
       "fit and the hand-written loop give bit-for-bit the same weights")

# %% [markdown]
# ## The classic sanity check: overfit one small batch
#
# Before a long run, train on a single batch of 16 images only. A model this
# size can memorise them, so the loss must fall far below where it started;
# if it does not, something in the loop (a gradient, a sign, the optimizer)
# is broken, and no amount of data will help.

# %%
tiny = x[:16]
small, opt = Autoencoder(784, [128, 64, 32, 64, 128], seed=1), Adam(0.003)
start_loss = float(small.loss(tiny)[0])
for _ in range(40 if FAST else 150):
    loss, grads = small.loss(tiny)
    opt.step(small.params, grads)
print(f"one batch of 16: BCE {start_loss:.4f} at the start, {float(loss):.4f} after training on it alone")
expect(float(loss) < 0.6 * start_loss, "the model can memorise one small batch (its loss falls below 60%)")

# %% [markdown]
# ## Training for real

# %%
model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
epochs = 10 if FAST else 20
history = fit(model, data.x_train, data.x_val, epochs=epochs, batch_size=256, optimizer=Adam(0.001),
              progress=None)
for epoch, (tr, va) in enumerate(zip(history.train_bce, history.val_bce), start=1):
    print(f"epoch {epoch:2d}: train BCE {tr:.4f}  validation BCE {va:.4f}")

baseline = mean_image_bce(data.x_train, data.x_val)
print(f"the mean-image baseline scores {baseline:.4f}")
expect(history.val_bce[-1] < history.val_bce[0], "validation BCE falls during training")
expect(history.val_bce[-1] < 0.9 * baseline, "the model beats the mean-image baseline by more than 10%")

# %% [markdown]
# ## The figures the grid draws, for this one model
#
# `minae.grid.plots` draws every figure of the grid report; here they are for the
# model just trained. In the first-layer filters, red pixels push a unit up,
# blue pixels push it down: strokes and blobs where digits have ink.

# %%
x_show = data.x_val[:8]
names = [plots.plot_curves([{"hidden": model.hidden, "lr": 0.001, "history": history.as_dict()}],
                           FIGURES / "08_curves.png"),
         plots.plot_reconstructions(model, x_show, FIGURES / "08_reconstructions.png"),
         plots.plot_filters(model, FIGURES / "08_filters.png"),
         plots.plot_first_layer_codes(model, data.x_val[:6], FIGURES / "08_first_layer_codes.png")]
print("figures:", ", ".join(str(FIGURES / n) for n in names))
for name in names:
    show_png(FIGURES / name)   # inline in Jupyter; a script just writes the files

recon = model.predict(x_show)
mean_image = data.x_train.mean(axis=0)
err_model = np.abs(recon - x_show).mean()
err_mean = np.abs(mean_image - x_show).mean()
print(f"mean absolute pixel error: model {err_model:.3f}, mean image {err_mean:.3f}")
expect(err_model < err_mean, "reconstructions are closer to each digit than the average digit is")
codes = model.encode(data.x_val[:500], layer=1)
print(f"first encoding layer: {codes.shape[1]} units, {np.mean(codes > 0):.0%} of activations positive")
expect(codes.shape == (500, 128) and codes.min() >= 0, "the first encoding layer gives 128 ReLU outputs")
