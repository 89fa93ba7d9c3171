"""Resolving, checking and preparing datasets; the real files where present."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from minae.data import loading
from minae.data.idx import write_idx
from minae.data.loading import SampleDataWarning, load, where
from minae.data.registry import FILENAMES
from minae.errors import DataError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No data anywhere: empty cache, no MINAE_DATA, no system copies, no network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", ())
    return dict(allow_download=False)


def make_files(folder, n_train=30, n_test=12, seed=0, labels_train=None):
    """Write four small synthetic MNIST-style IDX files into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / FILENAMES["train_images"], rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(folder / FILENAMES["train_labels"],
              rng.integers(0, 10, n_train, dtype=np.uint8) if labels_train is None else labels_train)
    write_idx(folder / FILENAMES["test_images"], rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / FILENAMES["test_labels"], rng.integers(0, 10, n_test, dtype=np.uint8))
    return folder


def test_flattened_scaled_float32_with_labels(tmp_path, nowhere):
    ds = load("mnist", make_files(tmp_path / "d"), **nowhere)
    assert ds.x_train.shape == (30, 784) and ds.x_val.shape == (12, 784)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    assert ds.y_train.shape == (30,) and ds.source == "data-dir" and not ds.canonical
    assert "official test split" in ds.split and "not the canonical mnist content" in ds.describe()


def test_name_subfolder_is_preferred_and_uncompressed_files_work(tmp_path, nowhere):
    make_files(tmp_path / "root", seed=1)
    sub = make_files(tmp_path / "root" / "mnist", n_train=7, seed=2)
    for path in sub.iterdir():   # the same files, gunzipped, without the .gz suffix
        path.with_suffix("").write_bytes(__import__("gzip").decompress(path.read_bytes()))
        path.unlink()
    assert len(load("mnist", tmp_path / "root", **nowhere).x_train) == 7


def test_minae_data_env_comes_after_data_dir(tmp_path, nowhere, monkeypatch):
    monkeypatch.setenv("MINAE_DATA", str(make_files(tmp_path / "env", n_train=9)))
    assert load("mnist", **nowhere).source == "MINAE_DATA"
    assert load("mnist", make_files(tmp_path / "dir", n_train=8), **nowhere).source == "data-dir"


def test_cache_then_system(tmp_path, nowhere, monkeypatch):
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", (tmp_path / "sys",))
    make_files(tmp_path / "sys" / "mnist", n_train=5)
    assert load("mnist", **nowhere).source == "system"
    make_files(tmp_path / "cache" / "minae" / "mnist", n_train=6)
    ds = load("mnist", **nowhere)
    assert ds.source == "cache" and len(ds.x_train) == 6
    assert "cache" in where("mnist")


def test_images_and_labels_of_different_counts(tmp_path, nowhere):
    folder = make_files(tmp_path / "d", n_train=10, labels_train=np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="holds 10 images but .* holds 9 labels"):
        load("mnist", folder, **nowhere)


def test_labels_out_of_range(tmp_path, nowhere):
    folder = make_files(tmp_path / "d", n_train=3, labels_train=np.array([1, 2, 12], np.uint8))
    with pytest.raises(DataError, match="label 12 is out of range"):
        load("mnist", folder, **nowhere)


def test_a_broken_user_file_is_an_error_not_skipped(tmp_path, nowhere):
    folder = make_files(tmp_path / "d")
    (folder / FILENAMES["test_images"]).write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a gzip file"):
        load("mnist", folder, **nowhere)
    assert (folder / FILENAMES["test_images"]).exists()   # the user's file is left alone


def test_a_broken_cache_file_is_deleted_and_never_poisons_later_runs(tmp_path, nowhere):
    cached = make_files(tmp_path / "cache" / "minae" / "mnist")
    (cached / FILENAMES["train_images"]).write_bytes(b"\x1f\x8b broken")
    with pytest.warns(UserWarning, match="deleted a broken cached copy"):
        with pytest.warns(SampleDataWarning):
            ds = load("mnist", **nowhere)
    assert ds.source == "bundled-sample"
    assert not (cached / FILENAMES["train_images"]).exists()


def test_unknown_dataset_lists_the_known_ones(nowhere):
    with pytest.raises(ValueError, match="'cifar10'; known datasets: mnist, fashion-mnist, kmnist"):
        load("cifar10", **nowhere)


def test_no_data_anywhere_falls_back_loudly_to_the_bundled_sample(nowhere):
    with pytest.warns(SampleDataWarning, match="BUNDLED SAMPLE"):
        ds = load("mnist", **nowhere)
    assert ds.source == "bundled-sample" and ds.x_train.shape == (5000, 784) and len(ds.x_val) == 1000
    assert "BUNDLED SAMPLE" in ds.describe()
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_require_full_turns_the_fallback_into_an_error(nowhere):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"fallback is switched off .*require-full"):
            load("fashion-mnist", require_full=True, **nowhere)


def test_val_fraction_and_limits_are_seeded_and_disjoint(tmp_path, nowhere):
    folder = make_files(tmp_path / "d", n_train=100)
    a = load("mnist", folder, val_fraction=0.2, seed=3, **nowhere)
    b = load("mnist", folder, val_fraction=0.2, seed=3, **nowhere)
    c = load("mnist", folder, val_fraction=0.2, seed=4, **nowhere)
    assert a.x_train.shape == (80, 784) and a.x_val.shape == (20, 784)
    assert np.array_equal(a.x_val, b.x_val) and not np.array_equal(a.x_val, c.x_val)
    rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in rows for r in a.x_val)
    small = load("mnist", folder, limit_train=10, limit_val=4, seed=3, **nowhere)
    assert small.x_train.shape == (10, 784) and small.x_val.shape == (4, 784)
    assert any("seeded subsets" in n for n in small.notes)


@pytest.mark.parametrize("kwargs, match", [({"val_fraction": 1.0}, "val_fraction"),
                                           ({"limit_train": 0}, "limit_train"),
                                           ({"limit_val": 2.5}, "limit_val")])
def test_bad_split_settings(kwargs, match, nowhere):
    with pytest.raises(ValueError, match=match):
        load("mnist", **kwargs, **nowhere)


# -- the real files ------------------------------------------------------------

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"real MNIST not found at {SHARED_MNIST}")
needs_fashion = pytest.mark.skipif(not SYSTEM_FASHION.is_dir(),
                                   reason="full Fashion-MNIST not installed "
                                          "(apt-get install dataset-fashion-mnist)")


@needs_mnist
def test_real_mnist_loads_whole_with_known_statistics(nowhere):
    ds = load("mnist", SHARED_MNIST, **nowhere)
    assert ds.x_train.shape == (60_000, 784) and ds.x_val.shape == (10_000, 784)
    # The official training and test sets' class counts, as published with MNIST.
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.y_val).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(ds.x_train.mean() - 0.1307) < 0.0001 and abs(ds.x_train.std() - 0.3081) < 0.0001
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


@needs_mnist
def test_mnist_files_are_refused_under_another_name(nowhere):
    with pytest.raises(DataError, match="holds the mnist test images, not fashion-mnist's"):
        load("fashion-mnist", SHARED_MNIST, **nowhere)


@needs_fashion
def test_full_fashion_mnist_loads_from_the_system_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    ds = load("fashion-mnist", allow_download=False)
    assert ds.source == "system" and ds.x_train.shape == (60_000, 784) and ds.x_val.shape == (10_000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_val).tolist() == [1000] * 10
    assert abs(ds.x_train.mean() - 0.2860) < 0.001 and abs(ds.x_train.std() - 0.3530) < 0.001


@pytest.mark.parametrize("name, source", [("mnist", SHARED_MNIST), ("fashion-mnist", SYSTEM_FASHION)])
def test_the_bundled_sample_is_rebuilt_byte_for_byte_from_the_real_files(name, source, tmp_path):
    import runpy

    if not source.is_dir():
        pytest.skip(f"the real {name} files are not at {source}")
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "build_sample.py"))
    script["build"](name, source, 5000, 1000, 2024, out_root=tmp_path)
    shipped = loading.SAMPLE_ROOT / name
    for filename in FILENAMES.values():
        assert (tmp_path / name / filename).read_bytes() == (shipped / filename).read_bytes(), filename


def test_the_data_command_says_where_each_dataset_comes_from(capsys):
    from minae.data.__main__ import main as data_main

    assert data_main(["where", "mnist", "fashion-mnist"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["mnist", "fashion-mnist"]
    assert data_main(["where", "cifar10"]) == 2
    assert "unknown dataset 'cifar10'" in capsys.readouterr().err


def test_a_data_dir_that_does_not_exist_is_an_error_not_a_silent_fallback(tmp_path, nowhere, monkeypatch):
    with pytest.raises(DataError, match=r"--data-dir \(data_dir\) points to .*typo, which is not a folder"):
        load("mnist", tmp_path / "typo", **nowhere)
    monkeypatch.setenv("MINAE_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="MINAE_DATA points to"):
        load("mnist", **nowhere)


def test_the_cache_only_counts_files_in_the_dataset_folder(tmp_path, nowhere):
    make_files(tmp_path / "cache" / "minae")   # loose files straight in the cache folder
    with pytest.warns(SampleDataWarning):
        assert load("mnist", **nowhere).source == "bundled-sample"
