"""IDX reading and writing, and every way a file can be broken."""

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import minae
from minae.data import idx
from minae.data.idx import IDX_TYPES, idx_bytes, parse_idx, read_bytes, read_idx, write_idx
from minae.errors import DataError


@pytest.mark.parametrize("dtype", sorted({np.dtype(v).newbyteorder("=").str for v in IDX_TYPES.values()}))
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip_every_type(tmp_path, dtype, suffix, rng):
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", a)
    b = read_idx(path)
    assert b.dtype == a.dtype.newbyteorder("=") and np.array_equal(a, b)


def test_mnist_magic_numbers():
    assert int.from_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8))[:4], "big") == 2051
    assert int.from_bytes(idx_bytes(np.zeros(2, np.uint8))[:4], "big") == 2049


def test_same_array_gives_same_bytes(tmp_path):
    a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    assert write_idx(tmp_path / "a.gz", a).read_bytes() == write_idx(tmp_path / "b.gz", a).read_bytes()


def test_truncated_gzip(tmp_path):
    good = write_idx(tmp_path / "x.gz", np.arange(5000, dtype=np.int32)).read_bytes()
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.gz is a damaged or truncated gzip file.*replace it with"):
        read_idx(tmp_path / "cut.gz")


def test_not_gzip_but_named_gz(tmp_path):
    (tmp_path / "fake.gz").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match=r"fake\.gz is named \.gz but is not a gzip file"):
        read_idx(tmp_path / "fake.gz")


def test_wrong_magic_number(tmp_path):
    (tmp_path / "html.gz").write_bytes(gzip.compress(b"<html>404 not found</html>"))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "html.gz")


def test_unknown_type_byte():
    with pytest.raises(DataError, match="unknown IDX type byte 0x07"):
        parse_idx(bytes([0, 0, 7, 1, 0, 0, 0, 1, 5]))


@pytest.mark.parametrize("extra", [-1, 1], ids=["payload-short", "payload-long"])
def test_header_size_disagrees_with_payload(extra):
    data = idx_bytes(np.zeros((2, 3), np.uint8))
    data = data[:-1] if extra < 0 else data + b"\0"
    with pytest.raises(DataError, match=r"header says shape \(2, 3\)"):
        parse_idx(data, "x")


def test_header_cut_short():
    with pytest.raises(DataError, match="ends inside its header"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0]))


def test_unsupported_dtype_on_write(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store dtype"):
        write_idx(tmp_path / "x", np.zeros(2, np.complex64))


# -- sizes are checked before anything is allocated ---------------------------------

def gzip_of(path, head, zeros, chunk=1 << 20):
    """Write a gzip file holding ``head`` then ``zeros`` zero bytes, in time proportional to
    its compressed size: after a full flush deflate keeps no history, so every further
    1 MiB of zeros compresses to the same block, which is simply repeated."""
    assert zeros % chunk == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)   # raw deflate; the gzip header and trailer are ours
    body = [c.compress(head), c.flush(zlib.Z_FULL_FLUSH)]
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    crc, zero_chunk = zlib.crc32(head), bytes(chunk)
    for _ in range(zeros // chunk):
        crc = zlib.crc32(zero_chunk, crc)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        f.write(b"".join(body))
        for _ in range(zeros // chunk):
            f.write(block)
        f.write(c.flush())
        f.write(struct.pack("<II", crc, (len(head) + zeros) & 0xFFFFFFFF))
    return path


def header(code, *shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


# Run in a fresh process so that its peak memory is this one read's. The address space is
# capped 1 GiB above what the imports took, so a reader that inflates everything fails
# fast with MemoryError instead of taking gigabytes from the machine.
PEAK_CHILD = """
import json, resource, sys
from minae.data.idx import read_idx
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_idx(sys.argv[1])
    error = None
except BaseException as exc:
    error = f"{type(exc).__name__}: {exc}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": (after - before) / 1024, "error": error}))
"""

GiB = 1 << 30


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures memory through Linux's /proc")
@pytest.mark.parametrize("head, match", [
    (header(0x08, 10, 28, 28), r"header says shape \(10, 28, 28\) .* holds more after the header"),
    (header(0x08, 60000, 28, 28), r"header says shape \(60000, 28, 28\) .* holds more after the header"),
    (header(0x08, 2 * GiB), r"claims shape \(2147483648,\), 2,147,483,648 bytes"),
], ids=["small-header-then-2GiB", "mnist-header-then-2GiB", "header-claims-2GiB"])
def test_a_2mb_gzip_that_inflates_to_2gib_stays_under_200mb(tmp_path, head, match):
    bomb = gzip_of(tmp_path / "bomb-idx3-ubyte.gz", head, 2 * GiB)
    assert bomb.stat().st_size < 3_000_000
    env = dict(os.environ, PYTHONPATH=str(Path(minae.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(bomb)], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    result = json.loads(done.stdout)
    print(bomb.stat().st_size, "bytes of gzip:", result)
    assert result["error"] is not None and result["error"].startswith("DataError: "), result
    assert str(bomb) in result["error"] and re.search(match, result["error"]), result
    assert result["peak_mb"] < 200, result


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(65536, 65536, 65536, 65536), (2**32 - 1,) * 255, (2**31,)],
                         ids=["65536^4", "255-huge-dims", "2GiB"])
def test_a_header_whose_size_is_absurd_names_the_file(tmp_path, shape, suffix):
    data = header(0x0D, *shape)   # no payload: 65536^4 wraps to 0 in int64, which "matched" it
    path = tmp_path / f"huge-idx{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: the header claims shape .* replace it"):
        read_idx(path)


def test_an_empty_dimension_is_an_empty_array_not_an_error(tmp_path):
    assert read_idx(write_idx(tmp_path / "e.gz", np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


@pytest.mark.parametrize("damage", ["crc", "length", "garbage-member", "cut-in-header", "cut-in-payload"])
def test_every_damaged_gzip_names_the_file(tmp_path, damage):
    good = bytearray(write_idx(tmp_path / "good.gz", np.arange(3000, dtype=np.int32)).read_bytes())
    if damage == "crc":
        good[-8] ^= 0xFF
    elif damage == "length":
        good[-1] ^= 0xFF
    elif damage == "garbage-member":
        good += b"\x1f\x8b\x08junk"
    else:
        good = good[:12] if damage == "cut-in-header" else good[: len(good) - 40]
    path = tmp_path / f"bad-{damage}.gz"
    path.write_bytes(bytes(good))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} is a damaged or truncated gzip file"):
        read_idx(path)


@pytest.mark.parametrize("extra", [-1, 1], ids=["payload-short", "payload-long"])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_a_file_whose_payload_disagrees_with_its_header_names_the_file(tmp_path, extra, suffix):
    data = idx_bytes(np.zeros((2, 3), np.uint8))
    data = data[:-1] if extra < 0 else data + b"\0"
    path = tmp_path / f"x{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: the header says shape \(2, 3\)"):
        read_idx(path)


@pytest.mark.parametrize("content", [b"", b"\0", b"\0\0\x08"], ids=["empty", "1-byte", "3-bytes"])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_a_file_too_short_to_be_idx_names_the_file(tmp_path, content, suffix):
    path = tmp_path / f"short{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} is not an IDX file"):
        read_idx(path)


def test_a_folder_or_a_missing_file_is_an_oserror_naming_it(tmp_path):
    for path, kind in [(tmp_path, IsADirectoryError), (tmp_path / "absent.gz", FileNotFoundError)]:
        with pytest.raises(kind, match=rf"cannot read {re.escape(str(path))}: .*; check"):
            read_idx(path)


def test_read_bytes_refuses_more_than_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "MAX_BYTES", 100)
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(bytes(101)))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} holds more than 100 bytes"):
        read_bytes(path)
    path.write_bytes(gzip.compress(bytes(100)))
    assert read_bytes(path) == bytes(100)
