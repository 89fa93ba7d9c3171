"""The exceptions minae raises, so callers can catch minae's own errors.

Every error about a bad value is also a ``ValueError`` (and every error about
an unusable GPU a ``RuntimeError``), so code that already catches the standard
exceptions keeps working.
"""

import signal


class MinaeError(Exception):
    """Base class of every error minae raises on purpose."""


class BackendError(MinaeError, RuntimeError):
    """The requested array backend cannot run here (e.g. CuPy without a GPU)."""


class CheckpointError(MinaeError, ValueError):
    """A file is not a minae checkpoint, or is damaged."""


class DataError(MinaeError, ValueError):
    """A dataset file is missing, corrupt or inconsistent."""


class DownloadError(MinaeError, RuntimeError):
    """Every mirror of a dataset failed to deliver a verified file."""


class WorkerError(MinaeError, RuntimeError):
    """A grid worker process died (killed, out of memory, or could not start)."""


class GridBusyError(MinaeError, RuntimeError):
    """Another grid is running in the same output folder."""


# The signals that end the grid like Ctrl-C: SIGTERM, and SIGHUP (its terminal
# closed; Windows has none).
STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Terminated(KeyboardInterrupt):
    """The grid received SIGTERM, or SIGHUP (its terminal closed); handled like
    Ctrl-C (finished runs are kept). ``signum`` is the signal's number."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__(signum)
        self.signum = int(signum)


class SchedulerError(MinaeError, RuntimeError):
    """The Dask scheduler cannot be used: not installed, or not reachable."""
