# %% [markdown]
# # 11. Watching gradients: see a collapse as it happens
#
# Tutorial 9 showed *why* learning rate 0.1 kills the encoder. Here we watch
# it happen with the numbers `fit` records in `history.diagnostics`
# (minae/diagnostics.py), all taken from the step the optimizer actually
# took:
#
# - **grad_norm**: the size of each layer's gradient ||dW||;
# - **update_ratio**: ||W_after - W_before|| / ||W_before||, how much one step
#   changes the weights; around 1e-3 is healthy, 1e-1 is a step of a tenth
#   of the weights, 1 a step as large as the weights themselves;
# - **dead_fraction**: per ReLU layer, the share of units that are not
#   positive for any image of a validation batch of 256. Such a unit passes
#   no gradient back from those images; a first-layer unit that is dead for
#   every *training* image gets a gradient of exactly 0, and then only the
#   momentum left in Adam still moves its weights;
# - **output_spread**: how much the reconstructions differ across images (0
#   when the model outputs one constant image).
#
# `fit` measures them once an epoch. But tutorial 9 found the first layer
# dead within a few steps of epoch 1, so one number per epoch would only show
# the aftermath. So epoch 1 is run here step by step, measuring the same
# numbers after every step (`epoch_diagnostics` measures "the step just
# taken", whichever it is); then `fit` carries on with the same model and
# optimizer. At lr 0.1 we watch seeds 1 and 2 (tutorial 9 found that most
# seeds collapse at lr 0.1; the last check below shows these two do); at lr
# 0.001, seed 1.

# %%
import numpy as np
from _tutorial import FAST, expect, save

from minae import Adam, Autoencoder, fit
from minae.data import load_sample
from minae.diagnostics import DIAG_ROWS, epoch_diagnostics
from minae.live import LiveView
from minae.train import train_step

data = load_sample("mnist", limit_train=2000 if FAST else 5000, limit_val=500)
epochs = 4 if FAST else 10
rows = data.x_val[:DIAG_ROWS]                # the validation rows fit's diagnostics use
RUNS = ((0.001, 1), (0.1, 1), (0.1, 2))     # (learning rate, seed)
B1, B2 = 0.9, 0.99                           # the write-up's Adam, as in tutorial 9
per_step, per_epoch = {}, {}
for lr, seed in RUNS:
    model, optimizer = Autoencoder(784, [128, 64, 32, 64, 128], seed=seed), Adam(lr, B1, B2)
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    per_step[lr, seed] = []
    for start in range(0, len(order), 256):                  # epoch 1, one step at a time
        before = model.flat_params.copy()
        train_step(model, optimizer, data.x_train[order[start:start + 256]])
        per_step[lr, seed].append(epoch_diagnostics(model, before, rows))
    # The live view redraws curves, reconstructions, filters and dead units each epoch:
    # in place in Jupyter, in a window on a desktop, and (headless) nowhere, said once.
    history = fit(model, data.x_train, data.x_val, epochs=epochs - 1, optimizer=optimizer, seed=seed,
                  progress=False, callbacks=[LiveView(data.x_val)])
    per_epoch[lr, seed] = history.diagnostics
    print(f"\nlr={lr}, seed {seed}: |dW1|, update ratio of W1, dead units in ReLU 1, output spread")
    for step, d in enumerate(per_step[lr, seed], start=1):
        print(f"  epoch 1 step {step:2d}  {d['grad_norm'][0]:.1e}  {d['update_ratio'][0]:.1e}  "
              f"{d['dead_fraction'][0]:4.0%}  {d['output_spread']:.3f}")
    for epoch, d in enumerate(per_epoch[lr, seed], start=2):
        print(f"  end of epoch {epoch:2d}  {d['grad_norm'][0]:.1e}  {d['update_ratio'][0]:.1e}  "
              f"{d['dead_fraction'][0]:4.0%}  {d['output_spread']:.3f}")

# %% [markdown]
# ## What the numbers say
#
# - The first step at lr 0.1 changes W1 by more than its own size: Adam
#   moves every weight with ink under it by up to lr (tutorial 7), a hundred
#   times what lr 0.001 does.
# - The next step's gradient is over a thousand times larger: the units the
#   first step pushed *up* by about lr x ink now feed large activations
#   forward. Within a few steps nearly every first-layer unit is dead.
# - From then on the first layer's gradient is exactly 0, yet the update
#   ratio stays above 0 and shrinks step after step by about
#   b1 / sqrt(b2) = 0.9 / 0.995 = 0.905: Adam's step is m / sqrt(v), and
#   with no new gradient m decays by b1 and v by b2 each step. The weights
#   move on momentum alone.
# - Both lr 0.1 runs end with one output image for every input. At lr 0.001
#   some first-layer units die too, gradually, but the output keeps varying.

# %%
def first_step_ratio(steps):
    return steps[0]["update_ratio"][0]


def steps_to_dead(steps, level=0.9):
    """The first step after which over `level` of ReLU 1 is dead, or None."""
    return next((i for i, d in enumerate(steps, start=1) if d["dead_fraction"][0] > level), None)


def gradient_spikes(steps, factor=1000):
    """True when |dW1| within the first 3 steps exceeds `factor` times the first step's."""
    return max(d["grad_norm"][0] for d in steps[:3]) > factor * steps[0]["grad_norm"][0]


def one_output_image(epochs):
    """True when the run ends with output spread under 0.01: one image for every input."""
    return epochs[-1]["output_spread"] < 0.01


def per_step_decay(epochs, steps_per_epoch):
    """How much each step's update ratio shrank, per step, from the end of epoch 2 to that of epoch 3."""
    return (epochs[1]["update_ratio"][0] / epochs[0]["update_ratio"][0]) ** (1 / steps_per_epoch)


def dies_gradually(steps, epochs):
    """True when ReLU 1 starts with no dead unit, ends with some, and never more than half."""
    dead = [d["dead_fraction"][0] for d in steps + epochs]
    return dead[0] == 0 and 0 < dead[-1] and max(dead) < 0.5


def moves_without_gradient(epochs):
    """True when |dW1| is exactly 0 at the end of every epoch after the first, while in the three
    epochs after the first W1 still moves, by less each epoch."""
    ratios = [d["update_ratio"][0] for d in epochs[:3]]
    return all(d["grad_norm"][0] == 0 for d in epochs) and all(r > 0 for r in ratios) \
        and all(b < a for a, b in zip(ratios, ratios[1:]))


healthy, hot = (0.001, 1), [(0.1, 1), (0.1, 2)]
for run in hot:
    print(f"lr 0.1, seed {run[1]}: first update ratio {first_step_ratio(per_step[run]):.2f} "
          f"(lr 0.001: {first_step_ratio(per_step[healthy]):.3f}); ReLU 1 over 90% dead after step "
          f"{steps_to_dead(per_step[run])}")
expect(all(50 < first_step_ratio(per_step[r]) / first_step_ratio(per_step[healthy]) < 200 for r in hot)
       and all(first_step_ratio(per_step[r]) > 1 for r in hot),
       "the first step at lr 0.1 is about 100 times lr 0.001's, and larger than W1 itself")
expect(all(gradient_spikes(per_step[r]) for r in hot), "at lr 0.1 |dW1| jumps over 1000-fold within 3 steps")
expect(all((steps_to_dead(per_step[r]) or 99) <= 5 for r in hot)
       and steps_to_dead(per_step[healthy], level=0.5) is None,
       "at lr 0.1 over 90% of ReLU 1 is dead within 5 steps; at lr 0.001 under half all through epoch 1")
expect(all(moves_without_gradient(per_epoch[r]) for r in hot),
       "after epoch 1 the first layer's gradient is exactly 0, yet W1 still moves, less each epoch")
decay = [per_step_decay(per_epoch[r], len(per_step[r])) for r in hot]
print(f"update ratio shrinks per step by {', '.join(f'{d:.3f}' for d in decay)}; b1 / sqrt(b2) = "
      f"{B1 / B2 ** 0.5:.3f}")
expect(all(abs(d / (B1 / B2 ** 0.5) - 1) < 0.05 for d in decay),
       "it shrinks by b1 / sqrt(b2) a step (within 5%): momentum decaying, no gradient behind it")
expect(all(one_output_image(per_epoch[r]) for r in hot) and not one_output_image(per_epoch[healthy]),
       "both lr 0.1 runs end with one output image for every input (spread under 0.01); lr 0.001 does not")
print(f"lr 0.001: ReLU 1 dead after step 1 {per_step[healthy][0]['dead_fraction'][0]:.0%}, at the end "
      f"{per_epoch[healthy][-1]['dead_fraction'][0]:.0%}")
expect(dies_gradually(per_step[healthy], per_epoch[healthy]),
       "at lr 0.001 some of ReLU 1 dies too, gradually: none at first, some at the end, never half")

# %%
import matplotlib.pyplot as plt

steps_per_epoch = len(per_step[healthy])
fig, axes = plt.subplots(1, 4, figsize=(15, 3))
for (lr, seed), color in zip(RUNS, ("C2", "C3", "C1")):
    steps = per_step[lr, seed] + per_epoch[lr, seed]
    x = list(range(1, steps_per_epoch + 1)) + [steps_per_epoch * e for e in range(2, epochs + 1)]
    columns = ([d["grad_norm"][0] for d in steps], [d["update_ratio"][0] for d in steps],
               [d["dead_fraction"][0] for d in steps], [d["output_spread"] for d in steps])
    for ax, values in zip(axes, columns):
        ax.plot(x, values, marker="o", ms=3, color=color, label=f"lr {lr}, seed {seed}")
for ax, title in zip(axes, ("|dW1|", "update ratio of W1", "dead units in ReLU 1", "output spread")):
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step (every step of epoch 1, then once an epoch)", fontsize=7)
    ax.axvline(steps_per_epoch, color="0.7", lw=0.8)
    ax.legend(fontsize=7)
axes[0].set_yscale("symlog", linthresh=1e-5)   # a gradient of exactly 0 still shows, at the bottom
axes[0].set_ylim(0, None)
axes[1].set_yscale("log")
save(fig, "11_watching_gradients")

# %% [markdown]
# ## The same, for a whole grid, in TensorBoard
#
#     pip install -e ".[tensorboard]"
#     python scripts/grid.py --quick --tensorboard
#     tensorboard --logdir results/tensorboard
#
# Every run then has these numbers as scalars, its weights and gradients as
# histograms, its reconstructions and filters as images, and the HParams tab
# lays the grid out as a table of settings and final validation BCE.
