"""Downloading dataset files: every mirror in turn, verified, written atomically.

A file is streamed into a temporary file beside its destination while its
SHA-256 and MD5 are computed; only when both match the pinned values is it
renamed into place (``os.replace`` is atomic), so an interrupted or corrupted
download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from minae._io import atomic_open
from minae._progress import progress_bar
from minae.data.registry import ROLES, get_info
from minae.errors import DataError, DownloadError

CHUNK = 1 << 16


def file_digests(path):
    """(sha256, md5) hex digests of a file's bytes."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def is_verified(path, info):
    """True when the file at ``path`` has exactly the pinned checksums."""
    path = Path(path)
    return path.is_file() and file_digests(path) == (info.sha256, info.md5)


def ensure_writable(directory):
    """Create ``directory`` if needed and prove a file can be written there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise DataError(f"cannot write to the data cache {directory} ({exc.strerror or exc}); set "
                        "XDG_CACHE_HOME to a writable folder, or point MINAE_DATA / --data-dir at a "
                        "folder that already holds the files") from exc
    return directory


def fetch(url, dest, info, *, timeout=30.0, progress=None):
    """Download ``url`` to ``dest`` if its checksums match ``info``; else raise.

    Raises OSError-family errors for network trouble and DataError for a
    checksum mismatch; the partial file is always removed.
    """
    dest = Path(dest)
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with atomic_open(dest) as out, urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=dest.name,
                          show=bool(progress)) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                sha.update(block)
                md5.update(block)
                bar.update(len(block))
        # Raising here, inside atomic_open, discards the temporary file.
        if (sha.hexdigest(), md5.hexdigest()) != (info.sha256, info.md5):
            raise DataError(f"{url}: checksum mismatch (got sha256 {sha.hexdigest()[:16]}..., "
                            f"expected {info.sha256[:16]}...); the file was not kept")
    return dest


NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, socket.timeout, TimeoutError,
                  ConnectionError, OSError)


def download(name, directory, *, mirrors=None, timeout=30.0, progress=None):
    """Make ``directory`` hold the four verified files of dataset ``name``.

    Files already present with the right checksums are kept; the others are
    fetched from each mirror in turn. Returns the directory. Raises
    DownloadError listing every URL tried and why it failed.
    """
    info = get_info(name)
    mirrors = info.mirrors if mirrors is None else tuple(mirrors)
    directory = ensure_writable(directory)
    for role in ROLES:
        file = info.files[role]
        dest = directory / file.filename
        if is_verified(dest, file):
            continue
        dest.unlink(missing_ok=True)   # a damaged copy must not survive
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + file.filename
            try:
                fetch(url, dest, file, timeout=timeout, progress=progress)
                break
            except DataError as exc:
                failures.append(f"{url}: {exc}")
            except NETWORK_ERRORS as exc:
                reason = getattr(exc, "reason", None) or exc
                failures.append(f"{url}: {type(exc).__name__}: {reason}")
        else:
            raise DownloadError(
                f"could not download {file.filename} of {name}; tried:\n  " + "\n  ".join(failures)
                + f"\nTo work offline, put the four IDX files of {name} in a folder and pass it "
                "with --data-dir (or set MINAE_DATA), or copy them into " + str(directory))
    return directory
