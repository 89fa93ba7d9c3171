"""Atomic file writes: a reader sees the old file or the new one, never half.

The bytes go to a temporary file in the destination's folder, which is then
renamed over the destination (``os.replace`` is atomic on one filesystem).
If anything fails, the temporary file is removed and the old file stays.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def writable_dir(directory):
    """Create ``directory`` if needed and prove a file can be written there (else OSError)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass
    return directory


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file for writing that becomes ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; use the usual permissions
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes):
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path, text: str):
    return atomic_write_bytes(path, text.encode("utf-8"))
