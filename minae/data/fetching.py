"""Downloading dataset files: every mirror in turn, verified, written atomically.

The download itself is pooch's (``pooch.retrieve``), the library made for
fetching data files with pinned hashes: it streams a file into a temporary
file beside its destination, checks its SHA-256, and only then moves it into
place, so an interrupted or corrupted download never leaves a file that a
later run would trust. minae adds what pooch leaves to its caller: trying
each mirror in turn, a timeout, torchvision's MD5 as a second check, and an
error that lists every URL tried and says how to work offline.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
from pathlib import Path

from minae import checks
from minae._io import WRITE_ERRNOS, naming_path, writable_dir
from minae.data.registry import ROLES, get_info
from minae.errors import DataError, DownloadError

CHUNK = 1 << 16


def _pooch():
    """pooch, imported where a download starts: reading files needs no downloader
    (a machine with the data but without pooch, e.g. a GPU box offline, runs all else)."""
    try:
        import pooch
    except ImportError as exc:
        raise DownloadError("downloading a dataset needs pooch, which is not installed here: "
                            "pip install pooch (a normal `pip install minae` includes it), or put the "
                            "four IDX files in a folder and pass it with --data-dir") from exc
    pooch.get_logger().setLevel(logging.WARNING)   # it logs every download at INFO; minae shows a bar
    return pooch


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
    try:
        return writable_dir(directory)
    except OSError as exc:
        disk = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc   # the disk's own words
        raise DataError(f"cannot write to the data cache {directory} ({disk.strerror or disk}); set "
                        "XDG_CACHE_HOME to a writable folder, or point MINAE_DATA / --data-dir at a "
                        "folder that already holds the files") from exc


def fetch(url, dest, info, *, timeout=30.0, progress=None):
    """Download ``url`` to ``dest`` if its checksums match ``info``; else raise.

    Raises OSError-family errors for network trouble (requests' errors are
    OSErrors) and DataError for a checksum mismatch; nothing is kept then.
    """
    dest = Path(dest)
    pooch = _pooch()
    downloader = pooch.HTTPDownloader(progressbar=bool(progress), timeout=timeout)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{info.sha256}", fname=dest.name, path=dest.parent,
                       downloader=downloader, progressbar=bool(progress))
    except OSError:   # requests' errors, a bad URL's included (also ValueErrors): the caller reports them
        raise
    except ValueError as exc:   # pooch's hash mismatch; it has removed the download
        raise DataError(f"checksum mismatch ({exc}); the file was not kept") from None
    if file_digests(dest)[1] != info.md5:
        dest.unlink(missing_ok=True)
        raise DataError("checksum mismatch (MD5 differs from torchvision's); the file was not kept")
    return dest


# requests' errors (which pooch raises) and the standard library's are all OSErrors.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


def download(name, directory, *, mirrors=None, timeout=30.0, progress=None):
    """Make ``directory`` hold the four verified files of dataset ``name``.

    Files already present with the right checksums are kept; the others are
    fetched from each mirror in turn. Returns the directory. Raises
    DownloadError listing every URL tried and why it failed.
    """
    info = get_info(name)
    if not checks.finite_real(timeout, "timeout") > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
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
                if getattr(exc, "errno", None) in WRITE_ERRNOS:   # the disk, not the mirror: stop here
                    raise naming_path(exc, f"cannot write {dest}") from exc
                reason = getattr(exc, "reason", None) or exc
                failures.append(f"{url}: {type(exc).__name__}: {reason}")
        else:
            raise DownloadError(
                f"could not download {file.filename} of {name}; tried:\n  " + "\n  ".join(failures)
                + f"\nTo work offline, put the four IDX files of {name} in a folder and pass it "
                "with --data-dir (or set MINAE_DATA), or copy them into " + str(directory))
    return directory
