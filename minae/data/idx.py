"""Reading and writing IDX files, the format MNIST-style datasets ship in.

An IDX file is: 2 zero bytes, a type byte, a dimension count; one 4-byte
big-endian size per dimension; then the values in row-major order, multi-byte
types big-endian. MNIST images are magic 2051 (uint8, 3 dims), labels 2049
(uint8, 1 dim). Files are usually gzip-compressed (.gz).

The reader trusts no size it has not checked. It reads the header first,
computes the payload size from it (Python integers, so a product of huge
dimensions cannot overflow), refuses a size above ``MAX_BYTES`` before
allocating anything, then decompresses exactly that many bytes and one more
to prove nothing follows. So a small gzip file that inflates to gigabytes
costs at most the size its header claims. A truncated gzip stream, a non-gzip
file named .gz, an unknown type byte, a payload shorter or longer than the
header says, or a disk error each raise an error naming the file and what to
do.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from minae._io import atomic_write_bytes, naming_path
from minae.errors import DataError

# IDX type byte -> big-endian NumPy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}

# The most payload one file may claim. The largest file minae knows (MNIST's training
# images) holds 47 MB; a header claiming more than this is refused before allocating.
MAX_BYTES = 1 << 30

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20   # decompress in 1 MiB steps, so no step holds a second copy of the payload
# A named folder is never refilled by a download, so the fix is a good copy, wherever it comes from.
_FIX = "replace it with a good copy (python -m minae.data download fetches verified files into the cache)"
# What zlib and gzip raise for a damaged stream (gzip.BadGzipFile is an OSError: keep it first).
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


@contextlib.contextmanager
def _opened(path):
    """The file's content as a stream, gunzipped if its name ends in .gz; errors name the file."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            if path.suffix != ".gz":
                yield raw
                return
            start = raw.read(4)
            if start[:2] != _GZIP_MAGIC:
                raise DataError(f"{path} is named .gz but is not a gzip file (it starts with {start!r}); "
                                + _FIX)
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
    except _GZIP_ERRORS as exc:
        raise DataError(f"{path} is a damaged or truncated gzip file ({exc}); {_FIX}") from exc
    except OSError as exc:
        raise naming_path(exc, f"cannot read {path}", "check that the file exists and is readable, "
                          "or replace it with a good copy") from exc


def _read_into(stream, view):
    """Fill ``view`` from ``stream`` in chunks; returns how many bytes arrived."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:filled + _CHUNK])
        if not got:
            break
        filled += got
    return filled


def _parse(stream, name) -> np.ndarray:
    """Read one IDX file from ``stream``: header, checked size, payload, nothing after."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{name} is not an IDX file: its magic number {magic.hex() or 'is missing'} "
                        "does not start with two zero bytes; " + _FIX)
    type_code, ndim = magic[2], magic[3]
    if type_code not in IDX_TYPES:
        raise DataError(f"{name}: unknown IDX type byte 0x{type_code:02x} "
                        f"(known: {', '.join(f'0x{k:02x}' for k in IDX_TYPES)}); {_FIX}")
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{name}: the file ends inside its header ({4 + len(dims)} of {4 + 4 * ndim} "
                        f"bytes); {_FIX}")
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = math.prod(shape) * dtype.itemsize   # Python integers: exact, never wraps around
    if expected > MAX_BYTES:
        raise DataError(f"{name}: the header claims shape {shape}, {expected:,} bytes of data, more than "
                        f"the {MAX_BYTES:,} bytes minae reads from one file; the header is damaged or this "
                        f"is not a dataset file; {_FIX}")
    payload = np.empty(expected, np.uint8)   # untouched pages cost no memory until filled
    got = _read_into(stream, memoryview(payload))
    if got < expected:
        raise DataError(f"{name}: the header says shape {shape} ({expected} bytes of data) but the "
                        f"file holds {got} bytes after the header; {_FIX}")
    if stream.read(1):
        raise DataError(f"{name}: the header says shape {shape} ({expected} bytes of data) but the "
                        f"file holds more after the header; {_FIX}")
    # copy=False: uint8 needs no byte swap, so the array stays the buffer just read.
    return payload.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (.gz or raw) into a NumPy array, checking its structure.

    A damaged gzip stream shows up while reading (a CRC or length check at its
    end, which reading the one byte after the payload reaches), so it is
    reported the same way wherever it happens.
    """
    with _opened(path) as stream:
        return _parse(stream, str(path))


def read_bytes(path) -> bytes:
    """The file's content, gunzipped if its name ends in .gz; at most MAX_BYTES of it."""
    with _opened(path) as stream:
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise DataError(f"{path} holds more than {MAX_BYTES:,} bytes (uncompressed); it is not a "
                        f"dataset file minae reads; {_FIX}")
    return data


def parse_idx(data: bytes, name="IDX data") -> np.ndarray:
    """Parse IDX bytes already in memory into an array in native byte order."""
    return _parse(io.BytesIO(data), name)


def idx_header(dtype, shape) -> bytes:
    """The IDX header of an array of this dtype and shape (the bytes before its values)."""
    code = _CODES.get(np.dtype(dtype).newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {dtype}; use one of "
                         f"{sorted(str(np.dtype(v)) for v in IDX_TYPES.values())}")
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def idx_bytes(array) -> bytes:
    """Serialise an array as IDX bytes (header + big-endian payload)."""
    array = np.asarray(array)
    header = idx_header(array.dtype, array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[header[2]]).tobytes()


def write_idx(path, array) -> Path:
    """Write an array as IDX, gzip-compressed if the name ends in .gz. Atomic.

    gzip's timestamp is fixed at 0 so that the same array gives the same bytes.
    """
    path = Path(path)
    data = idx_bytes(array)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    atomic_write_bytes(path, data)
    return path
