"""Pictures of images and weights as plain arrays: tiles of images, first-layer filters.

What it teaches: a flattened 28x28 image is a row of 784 numbers, and so is
each column of the first layer's W (D, H1): the pattern of pixels that drives
one hidden unit. Both become pictures by reshaping them to 28x28. Every
figure in minae (the grid's plots, the live view, TensorBoard images, the
explorer) draws them with the functions here, which return NumPy arrays and
need no plotting library.
"""

from __future__ import annotations

import numpy as np


def tile(images, side=28, columns=8):
    """(n, side*side) values -> one (rows*side, columns*side) image, row-major."""
    n = len(images)
    rows = -(-n // columns)
    out = np.zeros((rows * side, columns * side), dtype=np.float32)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        out[r * side:(r + 1) * side, c * side:(c + 1) * side] = np.asarray(image).reshape(side, side)
    return out


def filters_image(W, limit=64):
    """First-layer weights W: (D, H1) -> up to ``limit`` filters, each scaled to [0, 1]."""
    W = np.asarray(W, dtype=np.float64)[:, :limit].T                  # (units, D)
    lim = np.abs(W).max(axis=1, keepdims=True)
    return tile(0.5 + 0.5 * W / np.where(lim > 0, lim, 1.0))
