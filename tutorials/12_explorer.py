# %% [markdown]
# # 12. Inside the code space: decode, project, interpolate
#
# An autoencoder squeezes each image through a narrow code layer and builds
# it back. This tutorial opens that code space with three tools, as static
# figures; the explorer (`python -m minae.explore`) does the same
# live, for every model of a grid, while you draw.
#
# - `model.decode(codes)` runs only the layers after the code layer, so any
#   code, not only an image's, can be turned into an image;
# - `minae.projection.Projection` is PCA with both directions: codes
#   down to a 2-D plane, and points of that plane back up to codes;
# - `minae.explore.compute.interpolate` walks the straight line between two
#   images' codes and decodes each step, beside the plain blend of their pixels.

# %%
import numpy as np
from _tutorial import FAST, expect, save

from minae import Adam, Autoencoder, fit
from minae.data import load_sample
from minae.explore.compute import interpolate
from minae.figures import tile
from minae.projection import Projection

data = load_sample("fashion-mnist", limit_train=2000 if FAST else 5000)
model = Autoencoder(784, [128, 64, 32, 64, 128], seed=0)
history = fit(model, data.x_train, data.x_val, epochs=3 if FAST else 15, optimizer=Adam(0.001, 0.9, 0.99),
              progress=False)
print(f"validation BCE {history.val_bce[-1]:.4f}; the code layer is hidden layer {model.code_layer}, "
      f"{model.hidden[model.code_layer - 1]} numbers per image")

# %% [markdown]
# ## decode is the second half of predict
#
# `encode(x, layer=k)` runs the layers up to hidden layer k; `decode(codes,
# layer=k)` runs the rest. Split in two, the same layers do the same
# arithmetic on the same numbers, so the result is bit for bit `predict`'s:

# %%
x = data.x_val
codes = model.encode(x, layer=model.code_layer)          # (N, 32): one code per image
expect(np.array_equal(model.decode(codes), model.predict(x)),
       "decode(encode(x)) is predict(x), bit for bit")
expect(codes.min() >= 0, "every code is the output of a ReLU, so no code of an image has a negative number")

# %% [markdown]
# ## The codes on a plane
#
# 32 numbers per image cannot be drawn; their two directions of largest
# variance can. `Projection` finds them (PCA, with NumPy's SVD) and maps each
# code to a point; `to_code` maps a point back to the code at that place of
# the plane. Down and up again returns the point itself:

# %%
import matplotlib.pyplot as plt

projection = Projection(codes)
points = projection.to_2d(codes)                          # (N, 2)
probe = np.array([[1.0, -2.0], [0.5, 3.0]])
expect(np.allclose(projection.to_2d(projection.to_code(probe)), probe),
       "a point lifted to a code and projected again is the same point")

fig, ax = plt.subplots(figsize=(6.5, 5.5))
for label, name in enumerate(data.classes):
    mine = data.y_val == label
    ax.scatter(points[mine, 0], points[mine, 1], s=5, label=name)
ax.legend(fontsize=7, markerscale=3, loc="best")
ax.set_title("validation codes on their PCA plane", fontsize=9)
save(fig, "12_code_plane")

# %% [markdown]
# Classes gather in regions (trousers in one place, bags in another), with
# space between them. What lies in that space? Lift a grid of points
# spanning the plane to codes, and decode each one:

# %%
lo, hi = points.min(axis=0), points.max(axis=0)
steps = 9
grid = np.array([[gx, gy] for gy in np.linspace(hi[1], lo[1], steps)      # row by row, top down
                 for gx in np.linspace(lo[0], hi[0], steps)])
lifted = projection.to_code(grid).astype(np.float32)      # (81, 32)
decoded = model.decode(lifted)
nearest = np.linalg.norm(grid[:, None] - points[None], axis=2).min(axis=1)   # to the closest image's point
empty = np.mean(nearest > 0.1 * np.linalg.norm(hi - lo))
negative = np.mean((lifted < 0).any(axis=1))
print(f"{empty:.0%} of the grid lies far from every image's point; {negative:.0%} of it lifts to codes "
      "with a negative number")
expect(empty > 0.2, "a good part of the plane is empty: no image's code lands there")
expect(negative > 0.5, "most lifted points are codes no image can have (a negative number), "
                       "and the decoder still turns each into an image")

fig, ax = plt.subplots(figsize=(6, 6))
ax.imshow(tile(decoded, columns=steps), cmap="gray", vmin=0, vmax=1)
ax.set_title("the plane, decoded: each tile is a point of the plot above, lifted to a code", fontsize=9)
ax.set_axis_off()
save(fig, "12_plane_decoded")

# %% [markdown]
# Where the plot is crowded, the tiles look like the garments there; in its
# empty regions they are blurs and mixtures, the decoder's answer to codes
# it never saw. That is the hole in an autoencoder's code space: nothing in
# its training asks the codes to fill the plane, so picking a point and
# decoding it is no way to make a new image (a variational autoencoder adds
# exactly that requirement).

# %% [markdown]
# ## Interpolation: through the codes, or through the pixels
#
# Between a trouser and a sneaker, `interpolate` decodes evenly spaced
# codes on the straight line from one code to the other, and blends the
# pixels for comparison. The blend is a double exposure, one garment fading
# into the other. The decoded path is made of the decoder's own images; where
# the straight line between the two codes crosses the empty space between
# the classes, they blur, as the tiles of the empty regions above did.

# %%
a = data.x_val[np.flatnonzero(data.y_val == 1)[0]]        # a trouser
b = data.x_val[np.flatnonzero(data.y_val == 7)[0]]        # a sneaker
path, blend = interpolate(model, a, b, steps=8)
ends = model.predict(np.stack([a, b]))
expect(np.allclose(path[[0, -1]], ends, atol=1e-6),
       "the decoded path starts and ends at the two reconstructions")
expect(np.array_equal(blend[[0, -1]], np.stack([a, b])), "the blend starts and ends at the two images")

fig, axes = plt.subplots(2, 1, figsize=(8, 2.4))
for ax, row, title in zip(axes, (path, blend), ("decoded path between the codes", "pixels blended")):
    ax.imshow(tile(row, columns=len(row)), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
save(fig, "12_interpolation")

# %% [markdown]
# ## The same, live, for a whole grid
#
#     python scripts/grid.py --quick          # a grid in results-quick/ (under a minute)
#     python -m minae.explore                 # or: minae-explore; it finds results-quick/
#
# The explorer opens in your browser. Draw and every model of the grid
# reconstructs your drawing as you draw, with its BCE; click empty space in a
# model's code plot and see the lifted point decoded; click two images for
# the path between them; look at each unit of each layer; train a model and
# watch its curves. In a notebook, `minae.explore.show("results")` puts the
# same page in the output cell. Every picture there comes from the calls in
# this tutorial.
