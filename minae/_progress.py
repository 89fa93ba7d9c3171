"""Progress bars: one place that decides how minae's tqdm bars look and when they show."""

from __future__ import annotations

import sys
import threading

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, total=None, desc=None, unit="it", show=True, leave=False, **kwargs):
    """A tqdm bar that resizes with the terminal; ``show`` None = only on a terminal."""
    if show is None:   # auto: only when a person is watching
        show = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=not show,
                dynamic_ncols=True, **kwargs)


def without_process_lock():
    """In a worker process that draws no bars and may be stopped from outside: give
    tqdm a thread lock. Its default is a multiprocessing lock, a named semaphore a
    stopped process cannot unlink ("resource_tracker: ... leaked semaphore objects")."""
    tqdm.set_lock(threading.RLock())
