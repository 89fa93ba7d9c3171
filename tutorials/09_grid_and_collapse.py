# %% [markdown]
# # 9. The grid, and why learning rate 0.1 collapses
#
# The original experiment trained three depths at learning rates 0.1, 0.01
# and 0.001 and ranked them by validation BCE. Learning rate 0.1 produced
# models that output the same blurry "average digit" for every input. Here is
# the mechanism, measured on one step; a prediction it makes; and an
# intervention that should prevent the collapse if the mechanism is right,
# tried on several seeds.
#
# ## The mechanism, in one step
#
# Adam's first step moves a weight by lr * |g| / (|g| + eps) (tutorial 7;
# in the Keras form minae runs, eps / sqrt(1 - b2) = 1e-6 takes eps's
# place): not at all where the gradient is exactly 0, up to lr elsewhere.
# For the first layer, dW = x^T @ delta (tutorial 2): a pixel with no ink
# anywhere in the batch has x = 0 in every row, so its weights do not move.
#
# The weights that do move, move by a good fraction of lr, and the inputs
# are pixels, never negative. A unit's pre-activation on image n changes by
#
#     dz_n = sum_i x_ni dW_i + db
#
# If the unit's weights under the ink all moved the same way, that sum is up
# to lr * ink_n in size, where ink_n = sum_i x_ni is about 100 for a digit:
# a shift of several units at lr 0.1, while Glorot-uniform weights (at most
# sqrt(6 / (784 + 128)) = 0.081) give pre-activations of a few tenths. And a
# shift the same way for *every* image, because every x_ni >= 0. A unit
# pushed down is negative for every image: dead. A dead ReLU passes no
# gradient back, so no gradient pushes it up again (tutorial 11 watches what
# still moves it).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
from _tutorial import FAST, expect, save

from minae import Adam, Autoencoder, fit
from minae.data import load_sample
from minae.diagnostics import DIAG_ROWS
from minae.grid.probe import code_probe
from minae.grid.report import mean_image_bce
from minae.train import train_step

data = load_sample("mnist")
baseline = mean_image_bce(data.x_train, data.x_val)
HIDDEN = [128, 64, 32, 64, 128]
BETAS = (0.9, 0.99)   # the write-up's Adam; batches of 256 as in the grid

def one_step(model, optimizer, xb):
    """One training step on the batch xb; returns the gradient of W1 it used, the change of W1,
    and the first layer's pre-activations on xb before the step and their change, (N, 128) each."""
    w0, b0 = model.params[0].copy(), model.params[1].copy()
    _, grads = model.loss(xb)
    g1 = grads[0].copy()
    train_step(model, optimizer, xb)
    dw, db = model.params[0] - w0, model.params[1] - b0
    return g1, dw, xb @ w0 + b0, xb @ dw + db


def one_way(dw, x):
    """Per unit: |ink-weighted sum of its weight changes| / ink-weighted sum of their sizes,
    1 when all its weights under the ink moved the same way, near 0 when they cancel."""
    ink_per_pixel = x.mean(axis=0)                                   # (784,)
    return np.abs(ink_per_pixel @ dw) / (ink_per_pixel @ np.abs(dw))


def dead_on(z):
    """How many units are not positive for any row of the pre-activations z: (N, H)."""
    return int(np.sum(z.max(axis=0) <= 0))


xb = data.x_train[:256]                                   # one batch
adam = Adam(0.1, *BETAS)
g1, dw, z0, dz = one_step(Autoencoder(784, HIDDEN, seed=0), adam, xb)
ink = xb.sum(axis=1)                                      # (256,) the ink of each image
print(f"W1 entries that did not move: {np.mean(dw == 0):.0%}; pixels with no ink in this batch: "
      f"{np.mean(xb.max(axis=0) == 0):.0%}")
print(f"mean |change| of a moved weight {np.abs(dw[dw != 0]).mean():.3f} (lr 0.1; Glorot's largest "
      f"weight {math.sqrt(6 / (784 + 128)):.3f})")
print(f"median |gradient| of a moved weight {np.median(np.abs(g1[dw != 0])):.1e}, against Adam's "
      f"eps / sqrt(1 - b2) = {adam.eps / math.sqrt(1 - adam.beta2):.0e}: so most move by a fraction of lr")
print(f"how one-way each unit's change under the ink is: median {np.median(one_way(dw, xb)):.2f}")
print(f"mean ink of an image {ink.mean():.1f}; lr x ink = {0.1 * ink.mean():.1f}; mean |pre-activation "
      f"change| {np.abs(dz).mean():.2f}, against a mean |pre-activation| of {np.abs(z0).mean():.2f} before")
print(f"units negative for every image of the batch: {dead_on(z0)} before the step, "
      f"{dead_on(z0 + dz)} of 128 after it")


def moves_exactly_where_the_gradient_is_nonzero(dw, g):
    return bool(np.array_equal(dw != 0, g != 0))


def shifts_far(z0, dz, ink, lr):
    """True when pre-activations move by over 10 times their size, yet at most lr x (ink + 1)."""
    return 10 * np.abs(z0).mean() < np.abs(dz).mean() <= lr * (ink.mean() + 1)


expect(moves_exactly_where_the_gradient_is_nonzero(dw, g1),
       "a weight moves exactly where its gradient is nonzero: not where the batch has no ink")
expect(np.median(one_way(dw, xb)) > 0.8, "for most units the weights under the ink moved one way")
expect(shifts_far(z0, dz, ink, 0.1),
       "so pre-activations shift by over 10 times their size, but no more than lr x (ink + 1)")
expect(dead_on(z0 + dz) >= 128 // 4,
       "one step leaves at least a quarter of the first layer negative on every image")

# %% [markdown]
# ## A prediction, and an intervention that tests it
#
# If the shift lr x ink is what kills the first layer, then dividing the
# first layer's step by the ink (lr 0.1 / 100, about 0.001, for W1 and b1
# only; lr 0.1 everywhere else) should keep it alive. Below, each setting is
# trained on the same seeds, and measured with the numbers of the grid's
# report: the fraction of dead units in each ReLU layer, first after every
# step of epoch 1 and then at the end; the spread of the outputs across
# images; and the k-NN accuracy of the bottleneck codes.
#
# One Adam per layer, each stepping that layer's W and b (views into the
# flat buffer that `fit` hands the optimizer), gives each layer its own
# learning rate with minae's own pieces. With one lr for every layer it is
# plain Adam, bit for bit:

# %%
class PerLayerAdam:
    """Adam with a learning rate for each Dense layer: one minae Adam per layer, stepping its W and b."""

    def __init__(self, model, lrs):
        self.model, self.adams = model, [Adam(lr, *BETAS) for lr in lrs]

    def step(self, params, grads):
        # fit passes the model's flat buffers; each layer's W, b, dW and db are views into them
        assert params[0] is self.model.flat_params and grads[0] is self.model.flat_grads
        for i, adam in enumerate(self.adams):
            adam.step(self.model.params[2 * i:2 * i + 2], self.model.grads[2 * i:2 * i + 2])


def same_weights(a, b):
    """True when two models' parameters are as many and equal, bit for bit."""
    return len(a.params) == len(b.params) and all(np.array_equal(p, q) for p, q in zip(a.params, b.params))


plain, per_layer = Autoencoder(784, HIDDEN, seed=0), Autoencoder(784, HIDDEN, seed=0)
plain_adam, per_layer_adam = Adam(0.1, *BETAS), PerLayerAdam(per_layer, [0.1] * 6)
for i in range(3):
    train_step(plain, plain_adam, data.x_train[i * 256:(i + 1) * 256])
    train_step(per_layer, per_layer_adam, data.x_train[i * 256:(i + 1) * 256])
expect(same_weights(plain, per_layer), "six Adams at one lr are one Adam: same weights after three steps")


# %%
def input_sums(model, x):
    """The mean over the rows of x of the sum of each Dense layer's inputs: the ink, for layer 1."""
    sums, h = [], x
    for dense, relu in zip(model.dense, model.relus):
        sums.append(float(h.sum(axis=1).mean()))
        h = relu.forward(dense.forward(h))
    return sums + [float(h.sum(axis=1).mean())]


SETTINGS = {
    "lr 0.001": lambda sums: [0.001] * 6,
    "lr 0.1": lambda sums: [0.1] * 6,
    "lr 0.1, first layer / ink": lambda sums: [0.1 / sums[0]] + [0.1] * 5,
    "lr 0.1, each layer / its inputs": lambda sums: [0.1 / s for s in sums],
}
seeds = range(3) if FAST else range(6)
epochs = 3 if FAST else 10
rows = data.x_val[:DIAG_ROWS]                             # the rows fit's diagnostics count dead units on
steps_per_epoch = math.ceil(len(data.x_train) / 256)


def train(seed, setting):
    """Train one model; returns its dead fractions per ReLU layer after each step of epoch 1, its
    numbers after the last epoch (k-NN on the codes, spread, dead fraction of every ReLU layer,
    val BCE), and the model."""
    model = Autoencoder(784, HIDDEN, seed=seed)
    optimizer = PerLayerAdam(model, SETTINGS[setting](input_sums(model, data.x_train[:256])))
    per_step = []

    def watched_step(model, optimizer, xb, work):         # fit's own step, then a look at the units
        loss = train_step(model, optimizer, xb, work)
        if len(per_step) < steps_per_epoch:
            model.forward(rows)
            per_step.append([float(np.mean(relu.out.max(axis=0) <= 0)) for relu in model.relus])
        return loss

    history = fit(model, data.x_train, data.x_val, epochs=epochs, optimizer=optimizer, seed=seed,
                  progress=False, step=watched_step)
    last = history.diagnostics[-1]   # fit's own numbers after the last epoch (minae.diagnostics)
    end = {"knn_accuracy": code_probe(model, data), "output_spread": last["output_spread"],
           "dead": last["dead_fraction"], "val": history.val_bce[-1]}
    return np.array(per_step), end, model


def collapsed(end):
    """One output image for every input: the spread of the outputs across images below 0.01."""
    return end["output_spread"] < 0.01


runs = {(setting, seed): train(seed, setting) for setting in SETTINGS for seed in seeds}
for setting in SETTINGS:
    print(f"\n{setting}:")
    for seed in seeds:
        per_step, end, _ = runs[setting, seed]
        print(f"  seed {seed}: ReLU 1 dead after steps 1-5 of epoch 1 "
              + " ".join(f"{d:.0%}" for d in per_step[:5, 0])
              + f", after epoch 1 {per_step[-1, 0]:.0%} (ReLU 2 {per_step[-1, 1]:.0%}); "
              + f"after {epochs} epochs: dead per layer {' '.join(f'{d:.0%}' for d in end['dead'])}, "
              + f"spread {end['output_spread']:.3f}, k-NN {end['knn_accuracy']:.2f}, val BCE {end['val']:.4f}"
              + ("  COLLAPSED" if collapsed(end) else ""))
    print(f"  collapsed: seeds {[s for s in seeds if collapsed(runs[setting, s][1])]} of {list(seeds)}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for offset, setting, color in zip((-0.15, -0.05, 0.05, 0.15), SETTINGS, ("C2", "C3", "C1", "C0")):
    mean_steps = np.mean([runs[setting, s][0] for s in seeds], axis=0)      # (steps, layers)
    axes[0].plot(range(1, steps_per_epoch + 1), mean_steps[:, 0], color=color, marker="o", ms=3,
                 label=f"{setting}: ReLU 1")
    axes[0].plot(range(1, steps_per_epoch + 1), mean_steps[:, 1], color=color, ls="--", label="ReLU 2")
    axes[1].plot(np.array(seeds) + offset, [runs[setting, s][1]["output_spread"] for s in seeds], "o",
                 color=color, label=setting)
axes[0].set(xlabel="step of epoch 1", ylabel="dead units (mean over seeds)")
axes[1].set(xlabel="seed", ylabel=f"output spread after {epochs} epochs", xticks=list(seeds))
axes[1].axhline(0.01, color="0.5", lw=0.8, ls=":")
for ax in axes:
    ax.legend(fontsize=7)
save(fig, "09_collapse_and_intervention")

# %% [markdown]
# ## What the numbers say
#
# At lr 0.1 the first layer is almost entirely dead within a few steps, on
# every seed, and most seeds end with one output image for every input. The
# seeds where a few units survive limp on: their outputs vary a little, and
# their codes say little about the digit.
#
# Dividing the first layer's step by the ink keeps the first layer alive,
# as predicted, but the model is no better off: now the *second* ReLU layer
# dies, and the seeds collapse or limp on as before. Of course: its inputs
# are the first layer's ReLU outputs, also never negative, summing to a few
# tens, so a step of lr 0.1 on its weights shifts its pre-activations by
# several units. The mechanism is not about pixels; it holds for every layer
# whose inputs are >= 0, which in this model is every layer. Dividing each
# layer's step by the sum of its own inputs (measured on one batch at the
# start) prevents the collapse on every seed, and over these epochs even
# ends lower than lr 0.001.

# %%
def layer_dies(results, layer):
    """True when ReLU layer `layer` (0: the first) is over 90% dead at the end of epoch 1 in every run."""
    return all(per_step[-1, layer] > 0.9 for per_step, _ in results)


def layer_lives(results, layer):
    """True when ReLU layer `layer` is under 20% dead at the end of epoch 1 in every run."""
    return all(per_step[-1, layer] < 0.2 for per_step, _ in results)


def none_collapse(results):
    """True when no run collapsed and every run's codes know the digit (k-NN over 0.5; chance 0.1)."""
    return all(not collapsed(end) and end["knn_accuracy"] > 0.5 for _, end in results)


def most_collapse(results):
    """True when more than half of the runs collapsed, and no run's codes know the digit (k-NN under 0.5)."""
    return sum(collapsed(end) for _, end in results) > len(results) / 2 \
        and all(end["knn_accuracy"] < 0.5 for _, end in results)


def results(setting):
    return [runs[setting, seed][:2] for seed in seeds]


expect(layer_dies(results("lr 0.1"), 0),
       "at lr 0.1 over 90% of the first layer is dead by the end of epoch 1, on every seed")
expect(most_collapse(results("lr 0.1")),
       "at lr 0.1 most seeds collapse to one output image, and on none do the codes know the digit")
first_slowed = results("lr 0.1, first layer / ink")
expect(layer_lives(first_slowed, 0) and layer_dies(first_slowed, 1)
       and all(end["knn_accuracy"] < 0.5 for _, end in first_slowed),
       "with the first layer's step divided by the ink it stays alive (under 20% dead), the second "
       "layer dies instead (over 90%), and the codes still do not know the digit, on every seed")
each_slowed = results("lr 0.1, each layer / its inputs")
expect(none_collapse(each_slowed) and layer_lives(each_slowed, 0),
       "with each layer's step divided by its inputs' sum no seed collapses, the codes know the digit, "
       "and the first layer lives")
expect(none_collapse(results("lr 0.001")), "at lr 0.001 no seed collapses either")


def ends_lower(results, others):
    """True when each run of `results` ends with a lower validation BCE than the same seed's of `others`."""
    return len(results) == len(others) > 0 and all(
        end["val"] < other["val"] for (_, end), (_, other) in zip(results, others))


expect(ends_lower(each_slowed, results("lr 0.001")),
       "and each layer at its own step ends lower than lr 0.001, on every seed")

# %% [markdown]
# ## A collapsed model outputs the mean image
#
# With the encoder dead, the code is the same for every image, so the output
# is one constant image, and the best constant is the mean training image
# (tutorial 8 derived it from p - x). A collapsed model has found it:

# %%
collapsed_seed = next(s for s in seeds if collapsed(runs["lr 0.1", s][1]))
collapsed_model = runs["lr 0.1", collapsed_seed][2]
constant = collapsed_model.predict(data.x_val[:100]).mean(axis=0)
mean_image = data.x_train.mean(axis=0)
gap = np.abs(constant - mean_image).mean()                             # per pixel, on average
digit_gap = np.abs(data.x_val[:100] - mean_image).mean()              # a real digit's distance
print(f"seed {collapsed_seed} at lr 0.1: validation BCE {runs['lr 0.1', collapsed_seed][1]['val']:.4f}, "
      f"the mean-image baseline {baseline:.4f}")
print(f"its output differs from the mean training image by {gap:.3f} per pixel "
      f"(largest pixel {np.abs(constant - mean_image).max():.3f}); a real digit by {digit_gap:.3f}")


def scores_the_baseline(loss, baseline):
    """True when loss is within 1% of the mean-image baseline."""
    return abs(loss - baseline) < 0.01 * baseline


def much_closer(gap, digit_gap, factor=5):
    """True when the output's distance to the mean image is under 1/factor of a real digit's."""
    return gap < digit_gap / factor


expect(scores_the_baseline(runs["lr 0.1", collapsed_seed][1]["val"], baseline),
       "its validation BCE is the mean-image baseline's (within 1%)")
expect(much_closer(gap, digit_gap),
       "it outputs (close to) the mean training image: over five times closer to it than a real digit is")

# %% [markdown]
# ## Running the real grid
#
#     python scripts/grid.py --quick      # every configuration, 10 epochs, under a minute
#     python scripts/grid.py              # the original: 100 epochs on MNIST and Fashion-MNIST
#
# Its REPORT.md flags collapsed runs ("collapsed to a constant output") with
# the same evidence: the output spread and the fraction of dead units.
