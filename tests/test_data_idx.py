"""IDX reading and writing, and every way a file can be broken."""

import gzip

import numpy as np
import pytest

from minae.data.idx import IDX_TYPES, idx_bytes, parse_idx, read_idx, write_idx
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
    with pytest.raises(DataError, match=r"cut\.gz is a damaged or truncated gzip file.*delete it"):
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
