"""A grid you can trust: each way it could give silently wrong results or leave
processes behind, tried, and shown to be refused, retrained or cleaned up."""

import dataclasses
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minae import Autoencoder, CheckpointError, evaluate, fit
from minae.data import loading, registry
from minae.data.idx import parse_idx, read_bytes, write_idx
from minae.data.loading import SAMPLE_ROOT, load
from minae.data.registry import FILENAMES
from minae.errors import DataError, DownloadError
from minae.grid.cli import main
from minae.grid.lock import LOCK_NAME

from .conftest import ROOT, SYSTEM_FASHION, make_files, needs_fashion, results, worker_pids

ONE = ["--datasets", "mnist", "--hidden", "8,4,8", "--lrs", "0.01", "--epochs", "1",
       "--limit-train", "300", "--limit-val", "100", "--no-plots", "--quiet", "--jobs", "1"]
# Six runs of about a second each: long enough to catch the grid mid-way.
MANY = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "64,32,64", "--epochs", "30",
        "--lrs", "0.01", "0.02", "0.03", "0.04", "0.05", "0.06", "--limit-train", "3000",
        "--limit-val", "200", "--no-plots", "--quiet"]
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="needs Linux /proc to find workers")


def copy_sample(tmp_path):
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(SAMPLE_ROOT / "mnist", folder)
    return folder


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}


# --- identity: one dataset's files are refused under another's name -----------

@pytest.mark.parametrize("role", list(FILENAMES))
def test_a_file_that_is_another_datasets_is_refused(role, tmp_path, monkeypatch):
    folder = make_files(tmp_path / "mnist", n_train=20, n_test=8, seed=5)
    digest = hashlib.sha256(read_bytes(folder / FILENAMES[role])).hexdigest()
    fashion = registry.DATASETS["fashion-mnist"]   # pretend this file is Fashion-MNIST's
    files = {**fashion.files, role: dataclasses.replace(fashion.files[role], payload_sha256=digest)}
    monkeypatch.setitem(registry.DATASETS, "fashion-mnist", dataclasses.replace(fashion, files=files))
    text = loading.ROLE_TEXT[role]
    expected = f"{FILENAMES[role]} holds the fashion-mnist {text}, not mnist's {text}"
    with pytest.raises(DataError, match=expected):
        load("mnist", tmp_path, allow_download=False)


def test_a_file_in_another_roles_place_is_refused(tmp_path, monkeypatch):
    folder = make_files(tmp_path / "mnist", n_train=20, n_test=8, seed=5)
    digest = hashlib.sha256(read_bytes(folder / FILENAMES["train_images"])).hexdigest()
    mnist = registry.DATASETS["mnist"]   # the training file is really MNIST's test images
    test_images = dataclasses.replace(mnist.files["test_images"], payload_sha256=digest)
    files = {**mnist.files, "test_images": test_images}
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(mnist, files=files))
    with pytest.raises(DataError, match="holds the mnist test images, not mnist's training images"):
        load("mnist", tmp_path, allow_download=False)


@needs_fashion
def test_real_fashion_training_images_under_the_mnist_name_are_refused(tmp_path):
    folder = copy_sample(tmp_path)
    shutil.copy(SYSTEM_FASHION / FILENAMES["train_images"], folder / FILENAMES["train_images"])
    with pytest.raises(DataError, match="holds the fashion-mnist training images, not mnist's"):
        load("mnist", folder.parent, allow_download=False)


@needs_fashion
def test_recompressed_canonical_files_count_as_verified():
    ds = load("fashion-mnist", SYSTEM_FASHION, allow_download=False, limit_train=10, limit_val=10)
    assert ds.canonical and "verified: the canonical content" in ds.describe()


# --- run identity covers the data's content -------------------------------------

def test_changed_data_under_the_same_out_retrains_and_says_why(tmp_path, capsys):
    folder, out = copy_sample(tmp_path), tmp_path / "out"
    args = [*ONE, "--data-dir", str(folder.parent), "--out", str(out)]
    assert main(args) == 0
    first = results(out)[0]
    assert first["data_sha256"] and first["data_sha256"] in (out / "REPORT.md").read_text()
    path = folder / FILENAMES["train_images"]
    images = parse_idx(read_bytes(path)).copy()
    images[:, 0, 0] ^= 1    # one corner pixel of every image (the run uses a subset), nothing else
    write_idx(path, images)
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "the data differ from those 1 finished run(s)" in capsys.readouterr().out
    again = results(out)[0]
    assert again["data_sha256"] != first["data_sha256"] and again["key"] != first["key"]


# --- a reused run must be whole ---------------------------------------------------

def test_a_truncated_checkpoint_or_a_bad_record_is_retrained_with_one_message(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*ONE, "--data-dir", str(SAMPLE_ROOT), "--lrs", "0.01", "0.001", "--out", str(out)]
    assert main(args) == 0
    a, b = sorted(results(out), key=lambda r: r["lr"])
    checkpoint = out / a["checkpoint"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])      # as a full disk or a bad copy leaves it
    record_path = out / "runs" / "mnist" / f"{b['key']}.json"
    record_path.write_text(json.dumps({**b, "val_bce": "0.2x"}))
    capsys.readouterr()
    assert main([x for x in args if x != "--quiet"]) == 0
    said = capsys.readouterr().out
    cut = out / a["checkpoint"]
    assert f"{a['key']}.json: its checkpoint cannot be trusted ({cut} is not a minae" in said
    assert f"{b['key']}.json: its val_bce is '0.2x', not a number" in said
    assert "2 finished" not in said and "Traceback" not in said
    for r in results(out):
        assert isinstance(r["val_bce"], float) and Autoencoder.load(out / r["checkpoint"]).hidden == [8, 4, 8]


# --- workers never outlive the grid ------------------------------------------------

def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start_grid(out, *extra, preexec_fn=None):
    cmd = [sys.executable, str(ROOT / "scripts" / "grid.py"), *MANY, "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)


def _wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


@needs_proc
def test_after_kill_9_of_the_grid_no_worker_lives_15_seconds_later(tmp_path):
    proc = _start_grid(tmp_path / "out", "--jobs", "2")
    _wait_for(lambda: len(worker_pids(proc.pid)) == 2)
    workers = worker_pids(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _alive(w)], "workers outlived the grid"


@needs_proc
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"])
def test_sigterm_or_sighup_ends_the_grid_with_128_plus_n_and_keeps_finished_runs(tmp_path, signum, code):
    out = tmp_path / "out"
    proc = _start_grid(out, "--jobs", "2")
    _wait_for(lambda: list((out / "runs" / "mnist").glob("*.json")))
    workers = worker_pids(proc.pid)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "terminated: finished runs are saved" in stderr and "Traceback" not in stderr
    assert "leaked semaphore" not in stderr
    kept = mtimes(out)
    assert 1 <= len(kept) < 6
    assert not [w for w in workers if _alive(w)]
    assert not (out / LOCK_NAME).exists()
    assert main([*MANY, "--out", str(out), "--jobs", "1"]) == 0
    assert len(results(out)) == 6 and {k: v for k, v in mtimes(out).items() if k in kept} == kept


@needs_proc
def test_a_grid_started_under_nohup_ignores_sighup(tmp_path):
    out = tmp_path / "out"
    proc = _start_grid(out, "--jobs", "2", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    _wait_for(lambda: list((out / "runs" / "mnist").glob("*.json")))
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert len(results(out)) == 6


# --- one grid per --out ----------------------------------------------------------------

def test_a_second_grid_on_the_same_out_refuses_while_the_first_finishes(tmp_path, capsys):
    out = tmp_path / "out"
    first = _start_grid(out, "--jobs", "1")
    _wait_for(lambda: (out / LOCK_NAME).exists())
    assert main([*MANY, "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"is in use by grid process {first.pid} on " in err and LOCK_NAME in err
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert len(results(out)) == 6 and all(r["status"] == "ok" for r in results(out))
    assert not (out / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    import socket
    (out / LOCK_NAME).write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": "x"}))
    assert main([a for a in ONE if a != "--quiet"] + ["--data-dir", str(SAMPLE_ROOT), "--out", str(out)]) == 0
    assert f"taking over the lock of grid process {gone.pid}, which no longer runs" in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("pid", [0, -1, "1", 2**80], ids=["zero", "minus-one", "string", "huge"])
def test_a_lock_whose_pid_is_no_process_is_taken_over(tmp_path, capsys, pid):
    # os.kill(0 or -1, 0) succeeds (it signals a group, or every process): such a lock
    # looked held for ever.
    import socket
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "x"}))
    assert main([a for a in ONE if a != "--quiet"] + ["--data-dir", str(SAMPLE_ROOT), "--out", str(out)]) == 0
    assert f"taking over the lock of grid process {pid}" in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists()


def test_a_lock_that_is_a_folder_or_cannot_be_read_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    import os

    from minae.grid import lock

    out = tmp_path / "out"
    (out / LOCK_NAME).mkdir(parents=True)
    old = time.time() - 60   # past the grace a lock just created gets
    os.utime(out / LOCK_NAME, (old, old))
    args = ONE + ["--data-dir", str(SAMPLE_ROOT), "--out", str(out)]
    assert main(args) == 2
    assert f"error: {out / LOCK_NAME} is a folder, not a lock file; delete it" in capsys.readouterr().err
    (out / LOCK_NAME).rmdir()
    (out / LOCK_NAME).write_text("{}")
    os.utime(out / LOCK_NAME, (old, old))

    def denied(path, max_bytes=None):   # as a lock another user made with umask 077 reads (root reads all)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lock, "read_json", denied)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"is locked by {out / LOCK_NAME}, which cannot be read (Permission denied): another user's" in err
    assert (out / LOCK_NAME).exists() and not (out / "runs").exists()


# --- extreme values are one-line errors ---------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--hidden", "100000000"], "--hidden 100000000 needs about"),
    (["--seed", "-5"], "--seed must be a non-negative integer, got -5"),
])
def test_extreme_flags_are_one_line_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*ONE, "--data-dir", str(SAMPLE_ROOT), "--out", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_duplicate_learning_rates_and_layers_train_once_with_a_note(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*ONE, "--data-dir", str(SAMPLE_ROOT), "--out", str(out),
                 "--lrs", "0.01", "0.01", "--hidden", "8,4,8", "8,4,8"]) == 0
    err = capsys.readouterr().err
    assert "--lrs names 0.01 more than once" in err and "--hidden names 8,4,8 more than once" in err
    assert len(results(out)) == 1


def test_a_named_data_folder_missing_a_file_names_it(tmp_path, capsys):
    folder = copy_sample(tmp_path)
    (folder / FILENAMES["test_labels"]).unlink()
    assert main([*ONE, "--data-dir", str(folder.parent), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds some of mnist's files but not t10k-labels-idx1-ubyte.gz" in err


def test_a_named_data_folder_without_the_dataset_never_falls_back_to_the_sample(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise DownloadError("offline in this test")

    monkeypatch.setattr(loading, "download", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", ())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="a data folder was named .* not fall back to the bundled sample"):
        load("mnist", tmp_path / "empty")
    monkeypatch.setenv("MINAE_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="MINAE_DATA"):
        load("mnist")


def test_damaged_checkpoints_are_checkpoint_errors(tmp_path):
    model = Autoencoder(10, [4, 2, 4])
    good = model.save(tmp_path / "m.npz")
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cut.npz is not a minae checkpoint"):
        Autoencoder.load(tmp_path / "cut.npz")
    arrays = dict(np.load(good))
    meta = json.loads(str(arrays.pop("minae_meta")))
    del meta["hidden"]
    np.savez(tmp_path / "nokey.npz", minae_meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(CheckpointError, match=r"metadata is wrong \(hidden must be a non-empty list"):
        Autoencoder.load(tmp_path / "nokey.npz")


def test_empty_and_wrongly_shaped_inputs_are_clear_errors():
    model = Autoencoder(784, [8, 4, 8])
    empty = np.zeros((0, 784), np.float32)
    for call in (lambda: model.loss(empty), lambda: evaluate(model, empty),
                 lambda: fit(model, empty, epochs=1, progress=False)):
        with pytest.raises(ValueError, match=r"has no rows \(shape \(0, 784\)\)"):
            call()
    for call in (lambda: model.predict(np.zeros((3, 100))), lambda: model.encode(np.zeros((3, 100)))):
        with pytest.raises(ValueError, match=r"must have shape \(N, 784\), got \(3, 100\)"):
            call()
