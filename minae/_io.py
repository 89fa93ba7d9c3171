"""Atomic file writes, and JSON files read with suspicion.

Writes: a reader sees the old file or the new one, never half.

The bytes go to a temporary file in the destination's folder, which is then
renamed over the destination (``os.replace`` is atomic on one filesystem).
If anything fails, the temporary file is removed and the old file stays.

An error from the disk (a full disk, a read-only folder) is re-raised as the
same kind of OSError, errno kept, with a message that names the destination
and says what to do: ``[Errno 28] No space left on device`` alone does not say
which of a grid's many files could not be written.

Reads (``read_json``): a grid's folder holds JSON files anyone could have
replaced (records, the lock, grid.json), so one is refused before it is read
if it is not a regular file or is larger than any minae writes, and every way
of not being JSON (bad bytes, bad syntax, nesting deeper than Python's parser
goes) is one ValueError saying why.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path

# What to do about the disk errors people meet, by errno; others get the generic advice.
_ADVICE = {
    errno.ENOSPC: "free some space on that disk, or write somewhere else",
    errno.EDQUOT: "free some space within your disk quota, or write somewhere else",
    errno.EACCES: "make the folder writable for you, or write somewhere else",
    errno.EPERM: "make the folder writable for you, or write somewhere else",
    errno.EROFS: "that filesystem is read-only: write somewhere else",
}


# errnos that mean the local disk refused a write, not that a network or a server failed
WRITE_ERRNOS = frozenset(_ADVICE)


def naming_path(exc: OSError, what: str, advice: str | None = None) -> OSError:
    """The same kind of OSError as ``exc`` (errno kept) saying ``what`` failed, why, and what to do
    (``advice``, or the usual fix for a write that failed with that errno).

    ``OSError(errno, text)`` builds the matching subclass (PermissionError for
    EACCES, ...), so callers that catch a specific kind still do.
    """
    reason = exc.strerror or str(exc)
    advice = advice or _ADVICE.get(exc.errno, "check the path and try again")
    if exc.errno is None:
        return OSError(f"{what}: {reason}; {advice}")
    return OSError(exc.errno, f"{what}: {reason}; {advice}")


# The largest JSON file minae reads: a run's record grows by about 0.6 KB per epoch, so
# this is some 100,000 epochs, and results.json of hundreds of such runs.
MAX_JSON_BYTES = 64 << 20


def read_json(path, max_bytes=MAX_JSON_BYTES):
    """The JSON value in ``path``. Raises OSError if the file cannot be read, and
    ValueError, saying why (not naming the file: callers do), if it is not a regular
    file, is larger than ``max_bytes`` (checked before reading), or is not JSON.
    """
    # O_NONBLOCK: a FIFO under a JSON name must not hang the reader (it is refused below).
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ValueError("it is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > max_bytes:
            raise ValueError(f"it holds {info.st_size:,} bytes, more than the {max_bytes:,} of any JSON file "
                             "minae writes")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"it holds more than the {max_bytes:,} bytes of any JSON file minae writes")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("its JSON nests deeper than Python's parser goes") from None
    except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"it is not valid JSON ({exc})") from None


def writable_dir(directory):
    """Create ``directory`` if needed and prove a file can be written there (else OSError naming it)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise naming_path(exc, f"cannot write files in {directory}") from exc
    return directory


def _read_umask():
    mask = os.umask(0)   # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file for writing that becomes ``path`` on success.

    Any OSError on the way (creating, writing, syncing, renaming) leaves the
    old ``path`` as it was, removes the temporary file, and is raised again
    naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; use the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        kept = " (the old file is unchanged)" if os.path.isfile(path) else ""
        raise naming_path(exc, f"cannot write {path}{kept}") from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes):
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path, text: str):
    return atomic_write_bytes(path, text.encode("utf-8"))


def timestamp():
    """Now, as every file minae writes states it: 2026-11-29T21:40:05+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def json_number(value):
    """A float for JSON, which has no NaN or infinity: those become None (null)."""
    value = float(value)
    return value if math.isfinite(value) else None
