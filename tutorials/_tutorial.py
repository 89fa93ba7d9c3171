"""Small helpers shared by the tutorials: expectations, figures, a fast mode.

MINAE_TUTORIAL_FAST=1 shrinks data and epochs (the test suite sets it);
MINAE_TUTORIAL_FIGURES chooses where figures go (default tutorials/figures/).
Without a screen matplotlib draws off-screen by itself; in Jupyter figures
also show inline.
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


def save(fig, name):
    """Write a figure as PNG and say where it went."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / f"{name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    print(f"  figure: {path}")
    return path
