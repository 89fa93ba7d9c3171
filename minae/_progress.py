"""Progress bars: one place that decides how minae's tqdm bars look and when they show."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, total=None, desc=None, unit="it", show=True, leave=False, **kwargs):
    """A tqdm bar that resizes with the terminal; ``show`` None = only on a terminal."""
    if show is None:   # auto: only when a person is watching
        show = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=not show,
                dynamic_ncols=True, **kwargs)
