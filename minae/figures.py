"""Pictures of images, weights and losses: each drawn here once, for every figure in minae.

What it teaches: a flattened 28x28 image is a row of 784 numbers, and so is
each column of the first layer's W (D, H1): the pattern of pixels that drives
one hidden unit. Both become pictures by reshaping them to 28x28. A dead
unit (minae.diagnostics.dead_units: not positive on the rows looked at) gets
no gradient from them, so its filter keeps much of what it held when it
died, often the noise it was initialised with. The filter pictures mark such
units, so that noise is not mistaken for a learned feature.

The grid's figures (minae.grid.plots), the live view (minae.live) and the
TensorBoard images (minae.tensorboard) all draw with these functions. The
first ones return NumPy arrays (TensorBoard needs nothing else); the
``draw_*`` ones draw those arrays, or loss curves, on a matplotlib Axes they
are given, with the same styles everywhere.
"""

from __future__ import annotations

import math

import numpy as np

from minae import diagnostics
from minae.backend import to_host
from minae.diagnostics import DIAG_ROWS

N_SHOW = 8          # validation images in a reconstruction strip
MAX_FILTERS = 128   # first-layer filters drawn at most (a wider layer shows its first ones)
GAP = 2             # pixels between tiles: room for the frame that marks a dead unit


def tile(images, side=28, columns=8, gap=0, fill=0.0):
    """(n, side*side[, C]) values -> one image of ``columns`` tiles per row, row-major,
    with ``gap`` pixels of ``fill`` between tiles: (rows*(side+gap)-gap, columns*(side+gap)-gap[, C])."""
    images = np.asarray(images, dtype=np.float32)
    n, channels, step = len(images), images.shape[2:], side + gap
    rows = -(-n // columns)
    out = np.full((rows * step - gap, columns * step - gap, *channels), fill, dtype=np.float32)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        out[r * step:r * step + side, c * step:c * step + side] = image.reshape(side, side, *channels)
    return out


def strip(*rows):
    """Rows of images, one row per (n, D) array, white between them: strip(x,
    model.predict(x)) puts images above their reconstructions. Values in [0, 1]."""
    side = math.isqrt(rows[0].shape[1])
    return tile(np.concatenate(rows), side, columns=len(rows[0]), gap=GAP, fill=1.0)


def model_name(model):
    """How a figure names a model it knows nothing else about: its hidden layers, "32,16,32"."""
    return ",".join(map(str, model.hidden))


def picture_rows(x_val):
    """The validation rows (N, D) a picture of a model uses, copied to the host
    (NumPy; ``to_host``, since CuPy refuses np.asarray): the first DIAG_ROWS,
    the rows minae.diagnostics counts dead units on. Of those, the first N_SHOW
    are reconstructed and all decide which units are dead. None stays None."""
    return None if x_val is None else to_host(x_val[:DIAG_ROWS])


def dead_units(model, x, layer=1):
    """(H_layer,) bool on the host: the units of hidden layer ``layer`` whose ReLU
    is not positive for any row of x: (N, D), a host array
    (minae.diagnostics.dead_units says what that means for training)."""
    model.forward(model.backend.asarray(x, model.dtype))   # each ReLU keeps its (N, H) output
    return model.backend.to_host(diagnostics.dead_units(model)[layer - 1])


def filters_image(W, dead=None):
    """First-layer weights W: (D, H1) -> an RGB image (rows, cols, 3) in [0, 1]
    of up to MAX_FILTERS filters, 8 or 16 to a row.

    Red is positive, blue negative, white zero, each filter on its own scale:
    its 99th percentile of |weight| and above is full colour (a few extreme
    pixels would otherwise leave the rest pale). dead: (H1,) bool
    (``dead_units``); a dead unit's filter is drawn in pale grey (lighter +,
    darker -) inside a black frame.
    """
    W = np.asarray(W, dtype=np.float64)[:, :MAX_FILTERS].T             # (units, D)
    lim = np.quantile(np.abs(W), 0.99, axis=1, keepdims=True)
    v = np.clip(W / np.where(lim > 0, lim, 1.0), -1, 1)                # each filter in [-1, 1]
    colour = np.stack([1 - np.clip(-v, 0, 1), 1 - np.abs(v), 1 - np.clip(v, 0, 1)], axis=-1)
    dead = np.zeros(len(v), bool) if dead is None else np.asarray(dead, bool)[:len(v)]
    colour[dead] = (0.75 + 0.2 * v[dead])[..., None]   # pale grey: the noise recedes behind the frame
    side, columns = math.isqrt(W.shape[1]), 8 if len(v) <= 64 else 16
    # One pixel of margin all round, so the frames of the outer tiles show too.
    image = np.pad(tile(colour, side, columns, gap=GAP, fill=1.0), ((1, 1), (1, 1), (0, 0)),
                   constant_values=1.0)
    step = side + GAP
    for k in np.flatnonzero(dead):
        r, c = divmod(k, columns)
        top, left = r * step, c * step          # the frame's corner: one pixel outside the tile
        image[top:top + side + 2, [left, left + side + 1]] = 0.0
        image[[top, top + side + 1], left:left + side + 2] = 0.0
    return image


def _bare(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_strip(ax, rows, labels):
    """Rows of images on ``ax`` (``strip``), each labelled on its left: labels[i] names rows[i]."""
    side = math.isqrt(rows[0].shape[1])
    ax.imshow(strip(*rows), cmap="gray", vmin=0, vmax=1)
    _bare(ax)
    ax.set_yticks([i * (side + GAP) + side / 2 for i in range(len(rows))], labels, fontsize=8)
    ax.tick_params(length=0)


def draw_filters(ax, W, dead=None):
    """``filters_image`` on ``ax``, with a caption below saying what the colours and frames mean."""
    ax.imshow(filters_image(W, dead), interpolation="nearest")
    _bare(ax)
    units = W.shape[1]
    shown = "" if units <= MAX_FILTERS else f"the first {MAX_FILTERS} of "
    caption = f"{shown}{units} units: red +, blue -"
    if dead is not None:
        n_dead = int(np.sum(dead))
        caption += ("; none dead" if not n_dead else
                    f"; {n_dead} dead\n(grey, framed: never positive, so their gradient is zero)")
    ax.set_xlabel(caption, fontsize=8)


def _finite(curves):
    return [[v for v in c if v is not None and math.isfinite(v)] for c in curves]


def curve_top(curves):
    """Upper y-limit for loss curves (each a list of one value per epoch, None
    or NaN where there is none): the highest loss after the first epoch.

    The first epoch's loss is often far above the rest (the model starts from
    random weights); letting it set the range would flatten every curve that
    matters. With one epoch only, that epoch sets it.
    """
    later = [v for c in _finite(c[1:] for c in curves) for v in c]
    values = later or [v for c in _finite(c[:1] for c in curves) for v in c]
    return max(values) if values else None


def draw_losses(ax, train, val, color=None, label=None):
    """One run's (or one mean's) BCE per epoch: validation solid, train dashed.

    train, val: one value per epoch (None or NaN where there is none). No
    marker on every epoch (at 100 epochs they would hide the line styles),
    only on each curve's last point, so a one-epoch run, or where a diverged
    run stopped, is still visible. Returns the validation line.
    """
    lines = []
    for values, style, marker in ((val, "-", "o"), (train, "--", "s")):
        y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(y))
        lines += ax.plot(np.arange(1, len(y) + 1), y, ls=style, color=color, ms=4, marker=marker,
                         markevery=[int(finite[-1])] if finite.size else [],
                         label=label if style == "-" else None)
        color = lines[0].get_color()   # train in the colour validation got
    return lines[0]


def draw_loss_legend(ax, **legend):
    """The legend of ``draw_losses`` curves: their labels, and what solid and dashed mean."""
    ax.plot([], [], "k-", label="validation")
    ax.plot([], [], "k--", label="train")
    ax.legend(fontsize=8, **legend)


def set_loss_range(ax, curves):
    """Loss axis for ``draw_losses`` curves: log scale with plain decimals, from
    the lowest loss up to ``curve_top``'s (so epoch 1 may lie above)."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    top = curve_top(curves)
    ax.set_yscale("log")
    if top is not None:
        ax.set_ylim(0.97 * min(v for c in _finite(curves) for v in c), 1.05 * top)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(NullFormatter())
