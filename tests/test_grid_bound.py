"""Every result bound to what made it: each way a grid result could be silently
wrong or silently missing, tried, and shown to be refused, retrained or said."""

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minae import Autoencoder, evaluate
from minae.data import load
from minae.data.idx import read_idx, write_idx
from minae.data.loading import SAMPLE_ROOT
from minae.errors import CheckpointError, DataError
from minae.grid import GridConfig, run_grid
from minae.grid.cli import main
from minae.grid.config import DataSummary, run_settings
from minae.grid.lock import LOCK_NAME
from minae.grid.reuse import load_checked

from .conftest import ROOT, free_port, results

TINY = ["--datasets", "mnist", "--hidden", "8,4,8", "--lrs", "0.01", "0.001", "--epochs", "2",
        "--limit-train", "300", "--limit-val", "100", "--jobs", "1"]


def sample_copy(tmp_path):
    """A data folder of our own (the bundled MNIST sample), to change files in."""
    shutil.copytree(SAMPLE_ROOT / "mnist", tmp_path / "data" / "mnist")
    return tmp_path / "data"


def grid(tmp_path, *extra, out="out", data=None):
    """Run the tiny grid; returns (exit code, output folder)."""
    data = data or sample_copy(tmp_path)
    out = tmp_path / out
    return main([*TINY, "--data-dir", str(data), "--out", str(out), "--quiet", *extra]), out


# --- the data a run trains on is the data the grid read ------------------------------

def _replace_a_training_image(folder):
    path = folder / "mnist" / "train-images-idx3-ubyte.gz"
    write_idx(path, 255 - read_idx(path))   # every image, so every subset of them changes
    return path


def test_data_replaced_while_workers_run_is_refused_naming_the_file(tmp_path):
    data = sample_copy(tmp_path)
    config = GridConfig(datasets=("mnist",), hidden=((8, 4, 8),), lrs=(0.01, 0.001), epochs=2,
                        limit_train=300, limit_val=100, data_dir=str(data), out=str(tmp_path / "out"), jobs=2,
                        plots=False, quiet=True)
    read = {"mnist": load("mnist", str(data), limit_train=300, limit_val=100)}   # what the grid read...
    changed = _replace_a_training_image(data)                                    # ...before the swap
    with pytest.raises(DataError, match=f"{changed} changed while the grid ran"):
        run_grid(config, read, log=lambda msg: None)
    assert not list((tmp_path / "out" / "runs").rglob("*.json"))   # nothing trained on it was recorded
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_run_grid_names_a_dataset_it_was_not_given_or_not_given_as_one(tmp_path):
    config = GridConfig(datasets=("mnist",), hidden=((8,),), lrs=(0.01,), epochs=1, out=str(tmp_path / "out"),
                        plots=False, quiet=True)
    with pytest.raises(ValueError, match="datasets holds no mnist: give run_grid a Dataset for each"):
        run_grid(config, {}, log=lambda msg: None)   # was KeyError: 'mnist'
    with pytest.raises(TypeError, match=r"datasets\['mnist'\] must be a minae.data.Dataset .*got str"):
        run_grid(config, {"mnist": "not a dataset"}, log=lambda msg: None)   # was an AttributeError
    assert not (tmp_path / "out" / "runs").exists()


def test_a_dask_task_checks_the_arrays_it_received():
    from minae.grid import cluster

    ds = load("mnist", str(SAMPLE_ROOT), limit_train=200, limit_val=50)
    summary = DataSummary.of(ds)
    settings = run_settings(GridConfig(epochs=1), summary, (8, 4, 8), 0.01, "numpy")
    tampered = dataclasses.replace(ds, x_train=ds.x_train.copy())
    tampered.x_train[0, 300] = 0.5   # not a pixel the files hold
    with pytest.raises(DataError, match="changed while the grid ran"):
        cluster._task(settings, tampered, summary, "single")
    record, weights = cluster._task(settings, ds, summary, "single")
    assert record["status"] == "ok" and record["data_sha256"] == ds.digest


def test_the_report_of_a_grid_whose_files_changed_is_refused(tmp_path):
    from minae.grid.outputs import write_outputs
    from minae.grid.schedule import GridResult

    code, out = grid(tmp_path)
    assert code == 0
    summary = DataSummary.of(load("mnist", str(tmp_path / "data"), limit_train=300, limit_val=100))
    _replace_a_training_image(tmp_path / "data")   # after the grid, before its report is drawn again
    config = GridConfig(datasets=("mnist",), hidden=((8, 4, 8),), lrs=(0.01, 0.001), epochs=2,
                        limit_train=300, limit_val=100, data_dir=str(tmp_path / "data"), out=str(out))
    with pytest.raises(DataError, match="changed while the grid ran"):
        write_outputs(config, GridResult(records=results(out), data={"mnist": summary}), log=lambda m: None)


# --- a checkpoint is bound to its record ----------------------------------------------

def _two_runs(tmp_path):
    code, out = grid(tmp_path, "--no-plots")
    assert code == 0
    return out, *sorted(results(out), key=lambda r: r["lr"])


def test_swapped_checkpoints_are_trained_again_with_the_reason(tmp_path, capsys):
    out, a, b = _two_runs(tmp_path)
    ca, cb = out / a["checkpoint"], out / b["checkpoint"]
    ca_bytes = ca.read_bytes()
    ca.write_bytes(cb.read_bytes())
    cb.write_bytes(ca_bytes)
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    said = capsys.readouterr().out
    assert f"holds run '{b['key']}', not {a['key']}" in said
    assert f"holds run '{a['key']}', not {b['key']}" in said
    assert "0 finished earlier and reused, 2 to train" in said
    ds = load("mnist", str(tmp_path / "data"), limit_train=300, limit_val=100)
    for r in results(out):   # every number now belongs to its own file
        model = Autoencoder.load(out / r["checkpoint"])
        assert evaluate(model, ds.x_val) == pytest.approx(r["val_bce"], rel=1e-6)


@pytest.mark.parametrize("edit, reason", [
    (lambda r, out: {**r, "val_bce": 0.2623, "history": {**r["history"],
                                                        "val_bce": [*r["history"]["val_bce"][:-1], 0.2623]}},
     "evaluates to validation BCE .* but its record says 0.2623"),
    (lambda r, out: {**r, "checkpoint": "../elsewhere/runs/mnist/" + Path(r["checkpoint"]).name},
     "names the checkpoint '../elsewhere/.*', not its own runs/mnist/"),
])
def test_an_edited_record_is_trained_again_with_the_reason(tmp_path, capsys, edit, reason):
    out, a, _ = _two_runs(tmp_path)
    shutil.copytree(out, tmp_path / "elsewhere")
    path = out / "runs" / "mnist" / f"{a['key']}.json"
    path.write_text(json.dumps(edit(a, out)))
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    said = capsys.readouterr().out
    assert re_search(f"{a['key']}.json: its checkpoint cannot be trusted .*{reason}", said)
    assert "1 finished earlier and reused, 1 to train" in said


@pytest.mark.parametrize("edit, reason", [
    (lambda r: {**r, "status": "diverged"},
     "its status is 'diverged' at epoch None, but its history of 2 epochs does not end in a loss"),
    (lambda r: {**r, "diverged_epoch": 1}, "its status is 'ok', but it diverged"),
    (lambda r: {**r, "train_bce": 0.01}, "its train_bce 0.01 is not its last epoch's"),
], ids=["said-diverged", "said-both", "train-bce"])
def test_a_record_that_contradicts_its_own_history_is_trained_again(tmp_path, capsys, edit, reason):
    # The ranking shows a diverged run last and prints train BCE: neither is re-evaluated,
    # so each must at least agree with the run's own history.
    out, a, _ = _two_runs(tmp_path)
    path = out / "runs" / "mnist" / f"{a['key']}.json"
    path.write_text(json.dumps(edit(a)))
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    said = capsys.readouterr().out
    assert f"{a['key']}.json: {reason}" in said and "1 finished earlier and reused, 1 to train" in said
    again = next(r for r in results(out) if r["key"] == a["key"])   # retrained: the same bits as before
    assert [again[k] for k in ("status", "diverged_epoch", "train_bce", "val_bce")] == \
        [a[k] for k in ("status", "diverged_epoch", "train_bce", "val_bce")]


def test_a_checkpoint_of_another_input_width_is_trained_again_not_a_stop(tmp_path, capsys):
    out, a, _ = _two_runs(tmp_path)
    extra = Autoencoder.load(out / a["checkpoint"]).extra
    Autoencoder(783, [8, 4, 8], seed=1).save(out / a["checkpoint"], extra=extra)   # its key, another model
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    assert "is a model of 783 inputs, but its data have 784 per image" in capsys.readouterr().out
    assert Autoencoder.load(out / a["checkpoint"]).input_dim == 784


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize("plots", [[], ["--no-plots"]])
def test_a_checkpoint_with_nan_weights_is_trained_again(tmp_path, capsys, plots):
    out, a, _ = _two_runs(tmp_path)
    model = Autoencoder.load(out / a["checkpoint"])
    extra = model.extra
    model.params[0][0, 0] = np.nan
    model.save(out / a["checkpoint"], extra=extra)
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), *plots]) == 0
    captured = capsys.readouterr()
    assert "W1 holds NaN or infinite weights" in captured.out and "SVD" not in captured.err
    assert np.isfinite(Autoencoder.load(out / a["checkpoint"]).params[0]).all()


def test_a_checkpoint_claiming_two_million_units_is_trained_again_and_the_lock_released(tmp_path, capsys):
    out, a, _ = _two_runs(tmp_path)
    path = out / a["checkpoint"]
    with np.load(path) as f:
        stored = {k: f[k] for k in f.files}
    meta = json.loads(str(stored["minae_meta"]))
    stored["minae_meta"] = np.array(json.dumps({**meta, "hidden": [2_000_000]}))
    np.savez(path, **stored)
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    assert "W1 has shape (784, 8) but the metadata implies (784, 2000000)" in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists()
    assert load_checked(out, next(r for r in results(out) if r["key"] == a["key"])).hidden == [8, 4, 8]


def test_json_in_out_that_cannot_be_read_is_retrained_or_noted_not_a_traceback(tmp_path, capsys):
    out, a, _ = _two_runs(tmp_path)
    deep = "[" * 100_000 + "]" * 100_000   # json.loads raises RecursionError on it
    (out / "runs" / "mnist" / f"{a['key']}.json").write_text(deep)
    (out / "runs" / "mnist" / "stray.json").write_text(deep)   # read when a run is to be trained
    (out / "grid.json").write_text("[1, 2]")
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots"]) == 0
    said = capsys.readouterr().out
    assert f"{a['key']}.json cannot be read (its JSON nests deeper than Python's parser goes)" in said
    assert f"{out / 'grid.json'} cannot be read (it holds no settings); this grid's REPORT.md" in said
    assert "1 finished earlier and reused, 1 to train" in said
    assert {r["key"] for r in results(out)} >= {a["key"]}


def _claims(path, hidden, extra):
    """Rewrite checkpoint ``path`` so that its metadata and every array header agree on a model
    of ``hidden`` units while each array holds 64 bytes: only the headers claim the size."""
    import io
    import zipfile

    def npy(header_of, data=b""):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header_of)
        return buf.getvalue() + data

    meta = {"format": "minae-autoencoder", "version": 1, "input_dim": 784, "hidden": hidden,
            "dtype": "float32", "seed": 0, "init": "glorot_uniform", "extra": extra}
    text = np.array(json.dumps(meta))
    sizes = [784, *hidden, 784]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("minae_meta.npy", npy(np.lib.format.header_data_from_array_1_0(text), text.tobytes()))
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            for name, shape in ((f"W{i}", (d_in, d_out)), (f"b{i}", (d_out,))):
                z.writestr(f"{name}.npy", npy({"descr": "<f4", "fortran_order": False, "shape": shape},
                                              b"\0" * 64))


def test_a_checkpoint_claiming_another_model_is_refused_before_a_weight_is_read(tmp_path):
    # Metadata and headers that agree on a million units passed every check of the file
    # itself: its arrays were then allocated and read (12 GB for 6 MB of deflated zeros).
    import tracemalloc

    out, a, _ = _two_runs(tmp_path)
    _claims(out / a["checkpoint"], [1_000_000], Autoencoder.load(out / a["checkpoint"]).extra)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"hidden layers \[1000000\], not the record's \[8, 4, 8\]"):
            load_checked(out, a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"


# --- the exit code tells the truth, and errors are one message ---------------------------

def test_the_scheduler_timeout_must_be_finite(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        grid(tmp_path, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "inf")
    assert exc.value.code == 2
    assert "--scheduler-timeout must be a finite number of seconds > 0, got inf" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--out", ""], "--out must name a folder"),
    (["--batch-size", "100000000000"], "--batch-size 100000000000 needs about"),
    (["--scheduler", ""], "--scheduler must be a scheduler's address, such as tcp://host:8786, or 'local'"),
])
def test_flags_that_misled_are_clear_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--data-dir", str(SAMPLE_ROOT), "--out", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("values, message", [
    ({"datasets": "mnist"}, "--datasets: give a list, e.g. ('mnist', 'fashion-mnist'); got 'mnist'"),
    ({"hidden": (8, 4, 8)}, "--hidden: each spec is a list of layer widths, e.g. (32, 16, 32); got 8"),
    ({"lrs": 0.01}, "--lrs: give a list, e.g. (0.1, 0.01); got 0.01"),
    ({"out": None}, "--out must name a folder, got None; the default is results/"),
], ids=["datasets-a-string", "hidden-not-nested", "lrs-a-number", "out-none"])
def test_grid_config_values_of_the_wrong_shape_name_their_flag(values, message):
    # A string of datasets was read as its letters ("unknown dataset 'm'"), out=None made a
    # folder named None, and the others were TypeErrors from inside __post_init__.
    with pytest.raises(ValueError) as err:
        GridConfig(**values).validate()
    assert str(err.value) == message
    assert GridConfig(hidden=[[8, np.int64(4)]], lrs=np.array([0.1])).hidden == ((8, 4),)


def _grid_process(out, *extra):
    """A grid in its own process, runs long enough to be interrupted."""
    args = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "32,16,32", "64,32,16,32,64",
            "--lrs", "0.01", "0.1", "--epochs", "300", "--no-plots", "--out", str(out), *extra]
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "grid.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _started(out, proc, seconds=90):
    deadline = time.monotonic() + seconds
    while not (out / LOCK_NAME).exists() or proc.poll() is not None:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"the grid did not start: {proc.communicate()}")
        time.sleep(0.05)
    time.sleep(4)   # the workers are training now


@pytest.mark.parametrize("how", [["--jobs", "2"], ["--scheduler", "local", "--jobs", "2"]])
def test_ctrl_c_says_one_thing_and_leaves_nothing_behind(tmp_path, how):
    if "--scheduler" in how:
        pytest.importorskip("distributed", reason="Dask's distributed scheduler is not installed")
    out = tmp_path / "out"
    proc = _grid_process(out, *how)
    _started(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130
    assert err.strip().startswith("interrupted: finished runs are saved"), err
    assert "Traceback" not in err and "leaked semaphore" not in err and err.count("\n") <= 2, err


def test_losing_the_dask_scheduler_stops_the_grid_with_one_message(tmp_path):
    pytest.importorskip("distributed", reason="Dask's distributed scheduler is not installed")
    port = free_port()
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                  "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"], **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
                               "--nthreads", "1", "--dashboard-address", ":0"], **quiet)
    out = tmp_path / "out"
    try:
        proc = _grid_process(out, "--scheduler", f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "30",
                             "--epochs", "10")
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/mnist/*.json")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        scheduler.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        for p in (scheduler, worker):
            p.kill()
    assert proc.returncode == 2
    assert err.startswith("error: lost the Dask scheduler") and "Traceback" not in err, err
    assert results(out)   # the runs finished before are kept


# --- TensorBoard logs on a resumed grid, and the stacked engine's --------------------------

def test_tensorboard_on_a_resumed_grid_logs_the_reused_runs(tmp_path, capsys):
    pytest.importorskip("tensorboardX", reason="tensorboardX is not installed")
    code, out = grid(tmp_path, "--no-plots")
    assert code == 0
    capsys.readouterr()
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots",
                 "--tensorboard"]) == 0
    assert "tensorboard: wrote the logs of 2 reused runs from their records" in capsys.readouterr().out
    logs = sorted(p.parent.name for p in (out / "tensorboard" / "mnist").rglob("events.out.tfevents.*"))
    assert logs == ["8-4-8_lr0.001_s0", "8-4-8_lr0.01_s0"]


def test_an_unwritable_tensorboard_folder_stops_the_grid_before_training(tmp_path, capsys):
    pytest.importorskip("tensorboardX", reason="tensorboardX is not installed")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tensorboard").write_text("a file where the logs' folder should be")
    code, _ = grid(tmp_path, "--no-plots", "--tensorboard", "--engine", "stacked")
    assert code == 2
    assert f"cannot write results to {out / 'tensorboard'}" in capsys.readouterr().err
    assert not (out / "runs").exists()


# --- one output folder per purpose -------------------------------------------------------

def test_quick_has_a_folder_of_its_own():
    from minae.grid.cli import build_parser, config_from_args

    def cfg(*argv):
        return config_from_args(build_parser().parse_args(list(argv)))

    assert cfg().out == "results" and cfg("--quick").out == "results-quick"
    assert cfg("--quick", "--out", "x").out == "x"


@pytest.mark.parametrize("quiet", [[], ["--quiet"]], ids=["", "quiet"])   # --quiet keeps the notes
def test_a_grid_with_other_settings_says_which_report_it_replaces(tmp_path, capsys, quiet):
    code, out = grid(tmp_path, "--no-plots")
    assert code == 0
    capsys.readouterr()
    again = [*TINY, "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-plots", "--epochs", "1",
             *quiet]
    assert main(again) == 0
    said = capsys.readouterr().out
    assert f"note: {out} holds the report of a grid with other settings (epochs 2 -> 1)" in said
    assert "grid's REPORT.md, ranking and results.json will take its place" in said
    assert len(list((out / "runs" / "mnist").glob("*.json"))) == 4   # the runs of both are kept
    capsys.readouterr()
    assert main(again) == 0
    assert "other settings" not in capsys.readouterr().out   # the same grid again: nothing replaced


@pytest.mark.parametrize("setting, message", [
    ({"dtype": "float16"}, "dtype must be one of"), ({"backend": "foo"}, "--backend: unknown backend 'foo'"),
    ({"adam_form": "adamw"}, "--adam-form: unknown Adam form 'adamw'"),
    ({"out": " "}, "--out must name a folder"), ({"scheduler_timeout": float("inf")}, "--scheduler-timeout"),
])
def test_every_setting_is_checked_before_anything_is_read(setting, message):
    with pytest.raises(ValueError, match=message):
        GridConfig(**setting).validate()
