"""Resolving, checking and preparing datasets; the real files where present."""

import gzip
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from minae.data import loading
from minae.data.idx import read_idx, write_idx
from minae.data.loading import SampleDataWarning, load, where
from minae.data.registry import FILENAMES
from minae.errors import DataError

from .conftest import FULL_MNIST, SYSTEM_FASHION, make_files, needs_fashion, needs_mnist


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No data anywhere: empty cache, no MINAE_DATA, no system copies, no network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", ())
    return dict(allow_download=False)


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


def test_a_val_fraction_that_leaves_nothing_to_train_on_says_so(tmp_path, nowhere):
    folder = make_files(tmp_path / "d", n_train=100)
    with pytest.raises(ValueError, match=r"val_fraction \(--val-fraction\) 0.999 of 100 training images "
                                         "leaves none to train on; choose a smaller fraction"):
        load("mnist", folder, val_fraction=0.999, **nowhere)   # 99.9 rounds to all 100
    assert len(load("mnist", folder, val_fraction=0.99, **nowhere).x_train) == 1


@pytest.mark.parametrize("kwargs, match", [({"val_fraction": 1.0}, "val_fraction"),
                                           ({"limit_train": 0}, "limit_train"),
                                           ({"limit_val": 2.5}, "limit_val")])
def test_bad_split_settings(kwargs, match, nowhere):
    with pytest.raises(ValueError, match=match):
        load("mnist", **kwargs, **nowhere)


# -- the real files ------------------------------------------------------------



@needs_mnist
def test_real_mnist_loads_whole_with_known_statistics(nowhere):
    ds = load("mnist", FULL_MNIST, **nowhere)
    assert ds.x_train.shape == (60_000, 784) and ds.x_val.shape == (10_000, 784)
    # The official training and test sets' class counts, as published with MNIST.
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.y_val).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(ds.x_train.mean() - 0.1307) < 0.0001 and abs(ds.x_train.std() - 0.3081) < 0.0001
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


@needs_mnist
def test_mnist_files_are_refused_under_another_name(nowhere):
    with pytest.raises(DataError, match="holds the mnist test images, not fashion-mnist's"):
        load("fashion-mnist", FULL_MNIST, **nowhere)


@needs_fashion
def test_full_fashion_mnist_loads_from_the_system_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    ds = load("fashion-mnist", allow_download=False)
    assert ds.source == "system" and ds.x_train.shape == (60_000, 784) and ds.x_val.shape == (10_000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_val).tolist() == [1000] * 10
    assert abs(ds.x_train.mean() - 0.2860) < 0.001 and abs(ds.x_train.std() - 0.3530) < 0.001


@pytest.mark.parametrize("name, source", [("mnist", FULL_MNIST), ("fashion-mnist", SYSTEM_FASHION)])
def test_the_bundled_sample_is_rebuilt_byte_for_byte_from_the_real_files(name, source, tmp_path):
    import runpy

    if not source.is_dir():
        pytest.skip(f"the real {name} files are not on this machine")
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


# -- a named folder is the only place looked in --------------------------------------

@pytest.fixture
def everywhere_else(tmp_path, monkeypatch):
    """mnist in the cache, fashion-mnist in a system folder, and a download that must not happen."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    make_files(tmp_path / "cache" / "minae" / "mnist")
    make_files(tmp_path / "sys" / "fashion-mnist")
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", (tmp_path / "sys",))

    def no_download(*args, **kwargs):
        raise AssertionError("a named folder must not lead to a download")

    monkeypatch.setattr(loading, "download", no_download)
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("how", ["data_dir", "MINAE_DATA"])
def test_a_named_folder_without_the_dataset_looks_nowhere_else(everywhere_else, monkeypatch, name, how):
    assert load(name, allow_download=False).source in ("cache", "system")   # found when nothing is named
    if how == "MINAE_DATA":
        monkeypatch.setenv("MINAE_DATA", str(everywhere_else))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as err:
            load(name, everywhere_else if how == "data_dir" else None)
    text = str(err.value)
    assert f"{'--data-dir' if how == 'data_dir' else 'MINAE_DATA'}" in text
    assert f"names {everywhere_else}, which holds no {name} files" in text
    assert all(filename in text for filename in FILENAMES.values())
    assert f"Put {name}'s four files in {everywhere_else / name}/" in text
    assert "not fall back to the bundled sample" in text
    assert where(name, everywhere_else if how == "data_dir" else None) == f"{name}: load() would fail: {text}"


def test_data_dir_wins_over_minae_data(tmp_path, everywhere_else, monkeypatch):
    monkeypatch.setenv("MINAE_DATA", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a folder")
    folder = make_files(tmp_path / "mine", n_train=4)
    ds = load("mnist", folder)
    assert ds.source == "data-dir" and len(ds.x_train) == 4
    assert where("mnist", folder) == (f"mnist: data-dir at {folder} "
                                      "(MINAE_DATA is not consulted when --data-dir is given)")
    monkeypatch.setenv("MINAE_DATA", str(make_files(tmp_path / "env", n_train=6)))
    assert load("mnist").source == "MINAE_DATA"
    assert where("mnist") == f"mnist: MINAE_DATA at {tmp_path / 'env'}"
    with pytest.raises(DataError, match=rf"MINAE_DATA={re.escape(str(tmp_path / 'env'))} is not consulted"):
        load("mnist", everywhere_else)


def test_an_empty_data_dir_is_an_error_not_the_current_folder(tmp_path, nowhere, monkeypatch):
    monkeypatch.chdir(make_files(tmp_path / "cwd"))
    with pytest.raises(DataError, match=r"--data-dir \(data_dir\) is empty"):
        load("mnist", "", **nowhere)
    with pytest.raises(ValueError, match="data_dir must be a folder path"):
        load("mnist", 3, **nowhere)


def test_where_says_a_path_that_is_not_a_folder_would_fail(tmp_path, nowhere):
    assert where("mnist", tmp_path / "typo") == (
        f"mnist: load() would fail: --data-dir (data_dir) points to {tmp_path / 'typo'}, which is not a "
        "folder; fix the path, or leave it out to use the cache, system copies or a download")


# -- what a file in the folder can be ------------------------------------------------

def _folder_in_place(path):
    path.unlink()
    path.mkdir()


def _dangling_link(path):
    path.unlink()
    path.symlink_to(path.parent / "nothing-here")


def _link_loop(path):
    path.unlink()
    path.symlink_to(path)


def _pipe(path):   # reading a pipe would wait forever for a writer
    path.unlink()
    os.mkfifo(path)


def _link_to_a_device(path):   # /dev/zero would never end
    path.unlink()
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("damage, kind", [(_folder_in_place, "a folder"),
                                          (_dangling_link, "a link that leads nowhere"),
                                          (_link_loop, "a link that leads nowhere"),
                                          (_pipe, "a special file"),
                                          (_link_to_a_device, "a special file")],
                         ids=["folder", "dangling-link", "link-loop", "pipe", "link-to-dev-zero"])
def test_an_entry_that_is_not_a_file_is_named_not_called_missing(tmp_path, nowhere, damage, kind):
    folder = make_files(tmp_path / "d")
    damage(folder / FILENAMES["train_labels"])
    with pytest.raises(DataError, match=rf"{re.escape(str(folder / FILENAMES['train_labels']))} is {kind}"):
        load("mnist", folder, **nowhere)


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_split_without_images_is_an_error(tmp_path, nowhere, split):
    folder = make_files(tmp_path / "d")
    write_idx(folder / FILENAMES[f"{split}_images"], np.zeros((0, 28, 28), np.uint8))
    write_idx(folder / FILENAMES[f"{split}_labels"], np.zeros(0, np.uint8))
    with pytest.raises(DataError, match=rf"{FILENAMES[f'{split}_images']} holds no .*images"):
        load("mnist", folder, **nowhere)


def test_the_content_digest_of_a_file_is_that_of_its_uncompressed_bytes(tmp_path):
    folder = make_files(tmp_path / "d")
    for filename in FILENAMES.values():
        path = folder / filename
        want = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
        assert loading.payload_sha256(read_idx(path)) == want


# -- arguments -----------------------------------------------------------------------

def test_numpy_scalars_are_accepted(tmp_path, nowhere):
    folder = make_files(tmp_path / "d", n_train=50)
    plain = load("mnist", folder, val_fraction=0.25, limit_train=10, limit_val=5, seed=7, **nowhere)
    numpy = load("mnist", folder, val_fraction=np.float32(0.25), limit_train=np.int64(10),
                 limit_val=np.uint8(5), seed=np.int32(7), **nowhere)
    assert np.array_equal(plain.x_train, numpy.x_train) and np.array_equal(plain.x_val, numpy.x_val)


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": 1.5}, "seed must be a non-negative integer, got 1.5"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": True}, "seed must be a non-negative integer"),
    ({"val_fraction": "0.2"}, "val_fraction must be a finite number"),
    ({"val_fraction": float("nan")}, "val_fraction must be a finite number"),
    ({"limit_train": True}, "limit_train must be a positive integer"),
    ({"limit_val": np.float64(3)}, "limit_val must be a positive integer"),
], ids=lambda v: str(v))
def test_bad_arguments_name_themselves_before_any_file_is_read(kwargs, match, nowhere):
    with pytest.raises(ValueError, match=match):
        load("mnist", **kwargs, **nowhere)


def test_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    assert loading.cache_root() == tmp_path / "home" / ".cache" / "minae"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert loading.cache_root() == tmp_path / "abs" / "minae"
