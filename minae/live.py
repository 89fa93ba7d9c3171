"""A live view of training: one figure, redrawn every epoch.

    fit(model, x, x_val, live=True)          # or callbacks=[LiveView(x_val[:8])]
    python scripts/grid.py --live --jobs 1   # the grid's run in progress

Four panels: the learning curves, reconstructions of fixed validation images,
the first layer's filters, and the fraction of dead units per ReLU layer
(from minae.diagnostics). Where it appears:

- in Jupyter, in place in the cell's output (a display with an id, updated
  each epoch; front ends and nbclient alike keep the latest picture);
- in a script with a display, a matplotlib window;
- headless (no display, a non-interactive backend), nowhere: it says so once
  and training goes on.
"""

from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np
from matplotlib.figure import Figure

from minae.figures import filters_image, tile

NON_INTERACTIVE = ("agg", "pdf", "ps", "svg", "cairo", "template", "pgf")
_SAID = []


def where():
    """"jupyter", "window", or None (headless)."""
    try:
        from IPython import get_ipython
    except ImportError:
        shell = None
    else:
        shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":   # a Jupyter kernel
        return "jupyter"
    import matplotlib

    backend = matplotlib.get_backend().lower()
    no_display = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                           or os.environ.get("WAYLAND_DISPLAY"))
    if no_display or backend in NON_INTERACTIVE or "inline" in backend:
        return None
    return "window"


def draw(fig, history, model, x_show):
    """Fill ``fig`` with the four panels for the model as it is now."""
    fig.clear()
    axes = fig.subplots(2, 2)
    epochs = range(1, len(history.train_bce) + 1)
    ax = axes[0, 0]
    ax.plot(epochs, history.train_bce, "--", marker=".", label="train")
    ax.plot(epochs, history.val_bce, marker="o", ms=3, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE")
    ax.set_title("learning curves", fontsize=9)
    ax.legend(fontsize=8)
    host = model.backend.to_host
    ax = axes[0, 1]
    if x_show is not None:
        recon = host(model.predict(model.backend.asarray(x_show, model.dtype)))
        ax.imshow(np.concatenate([tile(x_show, columns=len(x_show)), tile(recon, columns=len(recon))]),
                  cmap="gray", vmin=0, vmax=1)
    ax.set_title("originals (top) and reconstructions", fontsize=9)
    ax.set_axis_off()
    ax = axes[1, 0]
    ax.imshow(filters_image(host(model.params[0])), cmap="RdBu_r", vmin=0, vmax=1)
    ax.set_title("first-layer filters (red +, blue -)", fontsize=9)
    ax.set_axis_off()
    ax = axes[1, 1]
    dead = history.diagnostics[-1]["dead_fraction"] if history.diagnostics else []
    ax.bar([f"relu {k}" for k in range(1, len(dead) + 1)], [d or 0.0 for d in dead])
    ax.set_ylim(0, 1)
    ax.set_title("dead units per ReLU layer", fontsize=9)
    fig.suptitle(f"epoch {len(history.train_bce)}: validation BCE {history.val_bce[-1]:.4f}", fontsize=10)
    return fig


class LiveView:
    """A fit callback that shows ``draw``'s figure every ``every`` epochs.

    x_show: (n, D) validation images to reconstruct (the first 8 are shown).
    """

    def __init__(self, x_show=None, every=1):
        self.x_show = None if x_show is None else np.asarray(x_show)[:8]
        self.every = every
        self.mode = where()
        self.handle = None   # Jupyter: the display to update
        self.figure = None   # a window: the pyplot figure
        if self.mode is None and not _SAID:
            _SAID.append(True)
            warnings.warn("minae: no display here (headless, or a non-interactive matplotlib backend), so "
                          "the live view shows nothing; training goes on. Use Jupyter, a desktop session, or "
                          "TensorBoard (minae.tensorboard) to watch.", stacklevel=2)

    def on_epoch_end(self, epoch, history, model):
        if self.mode is None or epoch % self.every:
            return
        if self.mode == "jupyter":
            from IPython.display import Image, display

            fig = draw(Figure(figsize=(9, 6)), history, model, self.x_show)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
            image = Image(data=buf.getvalue(), format="png")
            if self.handle is None:
                self.handle = display(image, display_id=True)
            else:
                self.handle.update(image)
        else:
            import matplotlib.pyplot as plt

            if self.figure is None:
                self.figure = plt.figure(figsize=(9, 6))
            draw(self.figure, history, model, self.x_show)
            plt.pause(0.001)   # lets the window redraw without blocking training
