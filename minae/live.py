"""A live view of training: one figure, redrawn every epoch.

    fit(model, x, x_val, callbacks=[LiveView(x_val)])
    python scripts/grid.py --live --jobs 1   # the grid's run in progress

Four panels: the learning curves, reconstructions of fixed validation images,
the first layer's filters (dead units marked), and the fraction of dead units
per ReLU layer (from minae.diagnostics), each drawn by minae.figures as the
grid's figures are. Where it appears:

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

from matplotlib.figure import Figure

from minae import figures

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


def draw(fig, history, model, x_val):
    """Fill ``fig`` with the four panels for the model as it is now.

    x_val: figures.picture_rows' host rows, or None: the first N_SHOW are
    reconstructed, and a first-layer unit not positive for any row is marked dead.
    """
    fig.clear()
    fig.set_layout_engine("constrained")   # no panel's labels over another's title
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    figures.draw_losses(ax, history.train_bce, history.val_bce)
    figures.set_loss_range(ax, [history.train_bce, history.val_bce])
    figures.draw_loss_legend(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE")
    ax.set_title("learning curves", fontsize=9)
    host = model.backend.to_host
    ax = axes[0, 1]
    if x_val is not None:
        shown = x_val[:figures.N_SHOW]
        figures.draw_strip(ax, [shown, host(model.predict(model.backend.asarray(shown, model.dtype)))],
                           ["original", "decoded"])
    else:
        ax.set_axis_off()
    ax.set_title("reconstructions of validation images", fontsize=9)
    ax = axes[1, 0]
    dead = None if x_val is None else figures.dead_units(model, x_val)
    figures.draw_filters(ax, host(model.params[0]), dead)
    ax.set_title("first-layer filters", fontsize=9)
    ax = axes[1, 1]
    dead_fractions = history.diagnostics[-1]["dead_fraction"] if history.diagnostics else []
    ax.bar([f"relu {k}" for k in range(1, len(dead_fractions) + 1)], [d or 0.0 for d in dead_fractions])
    ax.set_ylim(0, 1)
    ax.set_title("dead units per ReLU layer", fontsize=9)
    fig.suptitle(f"autoencoder {figures.model_name(model)}, epoch {len(history.train_bce)}: "
                 f"validation BCE {history.val_bce[-1]:.4f}", fontsize=10)
    return fig


class LiveView:
    """A fit callback that shows ``draw``'s figure after every epoch.

    x_val: (N, D) validation rows, NumPy or on the model's device; the rows
           the pictures use (figures.picture_rows) are copied to the host once.
    """

    def __init__(self, x_val=None):
        self.x_val = figures.picture_rows(x_val)
        self.mode = where()
        self.handle = None   # Jupyter: the display to update
        self.figure = None   # a window: the pyplot figure
        if self.mode is None and not _SAID:
            _SAID.append(True)
            warnings.warn("minae: no display here (headless, or a non-interactive matplotlib backend), so "
                          "the live view shows nothing; training goes on. Use Jupyter, a desktop session, or "
                          "TensorBoard (minae.tensorboard) to watch.", stacklevel=2)

    def on_epoch_end(self, epoch, history, model):
        if self.mode is None:
            return
        if self.mode == "jupyter":
            from IPython.display import Image, display

            fig = draw(Figure(figsize=(9, 6)), history, model, self.x_val)
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
            draw(self.figure, history, model, self.x_val)
            plt.pause(0.001)   # lets the window redraw without blocking training
