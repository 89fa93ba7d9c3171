"""Reading and writing IDX files, the format MNIST-style datasets ship in.

An IDX file is: 2 zero bytes, a type byte, a dimension count; one 4-byte
big-endian size per dimension; then the values in row-major order, multi-byte
types big-endian. MNIST images are magic 2051 (uint8, 3 dims), labels 2049
(uint8, 1 dim). Files are usually gzip-compressed (.gz).

The reader trusts nothing: a truncated gzip stream, a non-gzip file named
.gz, an unknown type byte or a payload whose size disagrees with the header
each raise DataError naming the file and what to do.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from minae._io import atomic_write_bytes
from minae.errors import DataError

# IDX type byte -> big-endian NumPy dtype
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_FIX = "delete it and load again (minae fetches a fresh copy), or replace it with a good copy"


def read_bytes(path) -> bytes:
    """The file's content, gunzipped if its name ends in .gz."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    if raw[:2] != _GZIP_MAGIC:
        raise DataError(f"{path} is named .gz but is not a gzip file (it starts with {raw[:4]!r}); {_FIX}")
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is a damaged or truncated gzip file ({exc}); {_FIX}") from exc


def parse_idx(data: bytes, name="IDX data") -> np.ndarray:
    """Parse IDX bytes into an array in native byte order."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name} is not an IDX file: its magic number {data[:4].hex() or 'is missing'} "
                        "does not start with two zero bytes; " + _FIX)
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        raise DataError(f"{name}: unknown IDX type byte 0x{type_code:02x} "
                        f"(known: {', '.join(f'0x{k:02x}' for k in IDX_TYPES)}); {_FIX}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: the file ends inside its header ({len(data)} bytes); {_FIX}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{name}: the header says shape {shape} ({expected} bytes of data) but the "
                        f"file holds {len(data) - header} bytes after the header; {_FIX}")
    # copy=False: uint8 needs no byte swap, so the array can stay a view of ``data``.
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="), copy=False)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (.gz or raw) into a NumPy array, checking its structure."""
    return parse_idx(read_bytes(path), str(path))


def idx_bytes(array) -> bytes:
    """Serialise an array as IDX bytes (header + big-endian payload)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of "
                         f"{sorted(str(np.dtype(v)) for v in IDX_TYPES.values())}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


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
