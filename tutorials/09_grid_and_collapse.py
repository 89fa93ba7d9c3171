# %% [markdown]
# # 9. The grid, and why learning rate 0.1 collapses
#
# The original experiment trained three depths at learning rates 0.1, 0.01
# and 0.001 and ranked them by validation BCE. Learning rate 0.1 produced
# models that output the same blurry "average digit" for every input. Here is
# the evidence for *why*, not just the claim.
#
# Adam's first step moves every weight by about lr, whatever its gradient
# (tutorial 7). Glorot-uniform weights of the first layer are at most
# sqrt(6 / (784 + 128)) = 0.081 in size. A step of 0.1 on every weight is
# larger than the weights themselves: after a few such steps many first-layer
# units have a negative pre-activation for *every* image. A ReLU that is never
# positive passes no gradient back, so it can never recover: it is dead. With
# the encoder dead, the decoder can only learn its biases, and the best
# constant output is the mean image.

# %%
import numpy as np
from _tutorial import expect

from minae import Adam, Autoencoder, fit
from minae.data import load_sample
from minae.grid.probe import code_probe, dead_fraction
from minae.grid.report import mean_image_bce
from minae.train import train_step

data = load_sample("mnist")
epochs = 10   # ten epochs show the collapse and a healthy model apart (3 s here)
baseline = mean_image_bce(data.x_train, data.x_val)
limit = np.sqrt(6 / (784 + 128))
print(f"first-layer weights start within +-{limit:.3f}; mean-image baseline BCE {baseline:.4f}")


results = {}
for lr in (0.1, 0.001):
    model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
    opt = Adam(lr, 0.9, 0.99)   # the write-up's Adam, batches of 256 as in the grid
    w0 = model.params[0].copy()
    dead_after = []
    for step in range(10):   # watch the first ten steps closely: fit's own step, one at a time
        train_step(model, opt, data.x_train[step * 256:(step + 1) * 256])
        dead_after.append(dead_fraction(model, data.x_val))
    first_move = np.abs(model.params[0] - w0).mean()
    history = fit(model, data.x_train, data.x_val, epochs=epochs, optimizer=opt, progress=False)
    probe = code_probe(model, data)
    results[lr] = probe | {"dead_after_steps": dead_after, "move": first_move, "val": history.val_bce[-1]}
    print(f"\nlr={lr}: mean |change| of a first-layer weight after 10 steps {first_move:.4f}")
    print("  dead first-layer units after each of the first 10 steps: "
          + " ".join(f"{d:.0%}" for d in dead_after))
    print(f"  after {epochs} more epochs: validation BCE {history.val_bce[-1]:.4f}, "
          f"{probe['dead_fraction']:.0%} of first-layer units dead, output spread across images "
          f"{probe['output_spread']:.4f}, k-NN accuracy on codes {probe['knn_accuracy']:.2f}")

# %%
hi, lo = results[0.1], results[0.001]
expect(hi["move"] > limit, "at lr 0.1 ten steps move first-layer weights by more than their initial range")
expect(hi["dead_fraction"] > 0.9, "at lr 0.1 (nearly) every first-layer ReLU is dead")
expect(hi["output_spread"] < 0.01, "at lr 0.1 the output is (nearly) the same image for every input")
expect(abs(hi["val"] - baseline) < 0.01 * baseline, "so its validation BCE is the mean-image baseline's")
expect(hi["knn_accuracy"] < 0.2, "and its codes say nothing about the class (k-NN near chance, 0.1)")
expect(lo["dead_fraction"] < 0.5 and lo["output_spread"] > 0.05,
       "at lr 0.001 most units live and the output varies with the input")

model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
fit(model, data.x_train, data.x_val, epochs=epochs, optimizer=Adam(0.1, 0.9, 0.99), progress=False)
constant = model.predict(data.x_val[:100]).mean(axis=0)
mean_image = data.x_train.mean(axis=0)
gap = np.abs(constant - mean_image).mean()                             # per pixel, on average
digit_gap = np.abs(data.x_val[:100] - mean_image).mean()              # a real digit's distance
print(f"\nthe collapsed output differs from the mean training image by {gap:.3f} per pixel "
      f"(largest pixel {np.abs(constant - mean_image).max():.3f}); a real digit by {digit_gap:.3f}")
expect(gap < digit_gap / 5, "the collapsed model outputs (close to) the mean training image: "
       "over five times closer to it than a real digit is")

# %% [markdown]
# ## Running the real grid
#
#     python scripts/grid.py --quick      # every configuration, 10 epochs, under a minute
#     python scripts/grid.py              # the original: 100 epochs on MNIST and Fashion-MNIST
#
# Its REPORT.md flags collapsed runs ("collapsed to a constant output") with
# the same evidence: the output spread and the fraction of dead units.
