# %% [markdown]
# # 11. Watching gradients: see a collapse as it happens
#
# Tutorial 9 showed *that* learning rate 0.1 kills the encoder. Here we watch
# it happen, epoch by epoch, with the numbers `fit` records in
# `history.diagnostics` (minae/diagnostics.py), all taken from the step the
# optimizer actually took:
#
# - **grad_norm**: the size of each layer's gradient ||dW||;
# - **update_ratio**: ||W_after - W_before|| / ||W_before||, how much one step
#   changes the weights; around 1e-3 is healthy, 1e-1 means every step is as
#   large as the weights themselves;
# - **dead_fraction**: per ReLU layer, the share of units never positive on a
#   validation batch (they pass no gradient back, so they cannot recover);
# - **output_spread**: how much the reconstructions differ across images (0
#   when the model outputs one constant image).

# %%
from _tutorial import FAST, expect, save

from minae import Adam, Autoencoder, fit
from minae.data import load_sample

data = load_sample("mnist", limit_train=2000 if FAST else 5000, limit_val=500)
epochs = 4 if FAST else 10
runs = {}
for lr in (0.001, 0.1):
    model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
    # live=True redraws curves, reconstructions, filters and dead units each epoch:
    # in place in Jupyter, in a window on a desktop, and (headless) nowhere, said once.
    runs[lr] = fit(model, data.x_train, data.x_val, epochs=epochs, optimizer=Adam(lr, 0.9, 0.99),
                   progress=False, live=True)
    print(f"\nlr={lr}: epoch, val BCE, |dW1|, update ratio of W1, dead units in ReLU 1, output spread")
    for epoch, (val, d) in enumerate(zip(runs[lr].val_bce, runs[lr].diagnostics), start=1):
        print(f"  {epoch:2d}  {val:.4f}  {d['grad_norm'][0]:.2e}  {d['update_ratio'][0]:.1e}  "
              f"{d['dead_fraction'][0]:4.0%}  {d['output_spread']:.3f}")

# %% [markdown]
# ## What the numbers say
#
# At lr 0.1 the first epoch's steps are larger relative to the weights, and
# by the end of that epoch almost every first-layer unit is dead, and stays
# dead: nothing in the table ever revives it. What follows depends on the
# few survivors. With none (the short run), the first layer's gradient is
# exactly 0, Adam's momentum alone still moves the weights for a while, and
# the output is one constant image. With one or two (the longer run), the
# model limps on through them, its outputs varying only a little from image
# to image. At lr 0.001 about a third of the units rest, the rest learn.

# %%
healthy, hot = runs[0.001].diagnostics, runs[0.1].diagnostics
expect(hot[0]["update_ratio"][0] > healthy[0]["update_ratio"][0],
       "at lr 0.1 the first epoch ends with larger steps, relative to the weights")
expect(min(d["dead_fraction"][0] for d in hot) > 0.9 > 0.5 > healthy[-1]["dead_fraction"][0],
       "at lr 0.1 over 90% of the first layer is dead from the first epoch on; at lr 0.001 under half")
expect(hot[-1]["output_spread"] < healthy[-1]["output_spread"],
       "the lr 0.1 model's outputs vary less across images: it drifts towards one constant image")

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for lr, history in runs.items():
    e = range(1, len(history.diagnostics) + 1)
    axes[0].plot(e, [d["update_ratio"][0] for d in history.diagnostics], marker="o", label=f"lr={lr}")
    axes[1].plot(e, [d["dead_fraction"][0] for d in history.diagnostics], marker="o", label=f"lr={lr}")
    axes[2].plot(e, [d["output_spread"] for d in history.diagnostics], marker="o", label=f"lr={lr}")
for ax, title in zip(axes, ("update ratio of W1", "dead units in ReLU 1", "output spread")):
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
axes[0].set_yscale("log")
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
