"""Small helpers shared by the tutorials: expectations, figures, a fast mode.

A claim that is more than a direct comparison is judged by a small function
defined beside it, which takes what it judges (numbers, arrays, a layer, a
function) as arguments; tests/test_tutorials_claims.py calls those functions
with what a wrong claim or a broken piece of minae would give, to show that
the check can fail.

MINAE_TUTORIAL_FAST=1 shrinks data, epochs and seeds (the default test run
sets it); a plain ``python tutorials/NN_name.py`` is the full run, and
``python -m pytest -m slow tests/test_tutorials.py`` runs them all in full.
MINAE_TUTORIAL_FIGURES chooses where figures go (default tutorials/figures/).
Without a screen matplotlib draws off-screen by itself; with one, figures
open in windows; in Jupyter they show inline.
"""

import os
from pathlib import Path

FAST = os.environ.get("MINAE_TUTORIAL_FAST") == "1"
FIGURES = Path(os.environ.get("MINAE_TUTORIAL_FIGURES", Path(__file__).resolve().parent / "figures"))


def expect(condition, claim):
    """Print a claim the reader should see hold; stop loudly if it does not."""
    print(("  ok   " if condition else "  FAIL ") + claim)
    if not condition:
        raise AssertionError(f"expectation failed: {claim}")


def _on_a_screen():
    """True when matplotlib draws in windows (not off-screen, not inline in Jupyter)."""
    import matplotlib

    try:
        from matplotlib.backends import BackendFilter, backend_registry

        windowed = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:   # matplotlib < 3.9
        windowed = matplotlib.rcsetup.interactive_bk
    return matplotlib.get_backend().lower() in {b.lower() for b in windowed}


def save(fig, name):
    """Write a figure as PNG, say where it went, and show it when there is a screen."""
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    print(f"  figure: {path}")
    if _on_a_screen():
        plt.show()   # a window; the tutorial goes on when it is closed
    return path


def show_png(path):
    """Display a PNG written by minae.grid.plots inline when running in Jupyter."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(filename=str(path)))
