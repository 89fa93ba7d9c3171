"""scripts/grid.py end to end on the bundled MNIST sample, with tiny settings.

The sample ships with minae, so these tests run on a fresh clone with no data
anywhere else.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minae import Autoencoder
from minae.backend import cupy_available
from minae.data.loading import SAMPLE_ROOT
from minae.grid.cli import main
from minae.grid.config import run_seed

from .conftest import ROOT, results, worker_pids

TINY = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "8,4,8", "16,8,16",
        "--lrs", "0.01", "0.1", "--epochs", "2", "--limit-train", "600", "--limit-val", "200", "--quiet"]
FIGURES = {"ranking.png", "curves.png", "reconstructions_best.png", "reconstructions_grid.png",
           "first_layer_codes.png", "first_layer_filters.png", "codes_2d.png"}
RECORD_FIELDS = {"dataset", "hidden", "lr", "epochs", "batch_size", "beta1", "beta2", "eps", "seed",
                 "backend", "n_train", "n_val", "data_source", "status", "train_bce", "val_bce",
                 "history", "seconds", "epoch_seconds", "checkpoint", "knn_accuracy"}


def outcome(out):
    """What a run computed (not when or how fast), keyed by run key."""
    return {r["key"]: (r["status"], r["val_bce"], r["train_bce"], r["history"], r["knn_accuracy"],
                       b"".join(p.tobytes() for p in Autoencoder.load(out / r["checkpoint"]).params))
            for r in results(out)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "out"
    assert main([*TINY, "--out", str(out), "--jobs", "1"]) == 0
    return out


def test_every_output_file_is_written(finished):
    records = results(finished)
    assert len(records) == 4
    for r in records:
        assert RECORD_FIELDS <= set(r), RECORD_FIELDS - set(r)
        assert r["status"] == "ok" and r["data_source"] == "data-dir" and r["n_train"] == 600
        assert len(r["history"]["val_bce"]) == len(r["epoch_seconds"]) == 2
        assert r["val_bce"] == r["history"]["val_bce"][-1]
        assert (finished / r["checkpoint"]).is_file()
        assert Autoencoder.load(finished / r["checkpoint"]).hidden == r["hidden"]
        assert r["seed"] == run_seed(0, "mnist", tuple(r["hidden"]), r["lr"])
    assert {p.name for p in (finished / "plots" / "mnist").iterdir()} == FIGURES
    report = (finished / "REPORT.md").read_text()
    assert "data-dir" in report and "Mean-image baseline" in report and "plots/mnist/codes_2d.png" in report
    assert "Mean-image baseline" in (finished / "ranking.md").read_text()


def test_ranking_follows_the_recorded_losses(finished):
    rows = list(csv.DictReader((finished / "ranking.csv").open()))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    vals = [float(r["val_bce_mean"]) for r in rows]   # one seed: the mean is the run's value
    assert vals == sorted(vals)
    recorded = sorted(r["val_bce"] for r in results(finished))
    np.testing.assert_allclose(vals, recorded, rtol=1e-12)


def test_second_run_trains_nothing(finished, capsys):
    before = {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*.json")}
    args = [a for a in TINY if a != "--quiet"]
    assert main([*args, "--out", str(finished), "--jobs", "1", "--no-plots"]) == 0
    assert "4 finished earlier and reused, 0 to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (finished / "runs").rglob("*.json")} == before


def test_changed_settings_are_not_mistaken_for_finished_runs(finished, tmp_path):
    out = tmp_path / "o"
    main([*TINY, "--out", str(out), "--jobs", "1", "--no-plots", "--lrs", "0.01"])
    main([*TINY, "--out", str(out), "--jobs", "1", "--no-plots", "--lrs", "0.01", "--beta2", "0.999"])
    keys = {r["key"] for r in results(out)}
    assert len(list((out / "runs" / "mnist").glob("*.json"))) == 4 and len(keys) == 2


def test_jobs_1_and_jobs_2_give_bitwise_identical_results(finished, tmp_path):
    out2 = tmp_path / "jobs2"
    assert main([*TINY, "--out", str(out2), "--jobs", "2", "--no-plots"]) == 0
    assert outcome(out2) == outcome(finished)


def test_every_engine_gives_the_same_results(finished, tmp_path):
    single = tmp_path / "single"
    assert main([*TINY, "--out", str(single), "--jobs", "1", "--no-plots", "--engine", "single"]) == 0
    assert outcome(single) == outcome(finished)
    if not cupy_available():   # the fused engine runs CUDA kernels; without CuPy, a one-line error
        assert main([*TINY, "--out", str(tmp_path / "fused"), "--no-plots", "--engine", "fused"]) == 2
    stacked = tmp_path / "stacked"
    assert main([*TINY, "--out", str(stacked), "--no-plots", "--engine", "stacked"]) == 0
    by_key = {r["key"]: r for r in results(finished)}
    for r in results(stacked):
        assert r["engine"] == "stacked"
        np.testing.assert_allclose(r["history"]["val_bce"], by_key[r["key"]]["history"]["val_bce"], rtol=1e-4)


def test_a_killed_grid_resumes_to_the_uninterrupted_results(finished, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "scripts" / "grid.py"), *TINY, "--out", str(out), "--jobs", "1",
           "--no-plots"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list((out / "runs" / "mnist").glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, f"the grid stopped before its first run: {proc.stderr.read().decode()}"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = len(list((out / "runs" / "mnist").glob("*.json")))
    assert 1 <= finished_before < 4, "the kill must land mid-grid for this test to mean anything"
    (out / ".results.json.abc123.tmp").write_text("[{half-written")   # as a kill mid-write leaves
    assert main([*TINY, "--out", str(out), "--jobs", "1", "--no-plots"]) == 0
    assert outcome(out) == outcome(finished)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_a_killed_worker_stops_the_grid_with_a_clear_error_and_keeps_finished_runs(tmp_path):
    out = tmp_path / "worker-killed"
    many = ["--lrs", "0.01", "0.02", "0.03", "0.04", "0.05", "0.06", "--epochs", "8"]
    cmd = [sys.executable, str(ROOT / "scripts" / "grid.py"), *TINY, *many, "--out", str(out),
           "--jobs", "2", "--no-plots"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((out / "runs" / "mnist").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = worker_pids(proc.pid)
    assert workers, "the grid must still be running when a worker is killed"
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    kept = {p: p.stat().st_mtime_ns for p in (out / "runs" / "mnist").glob("*.json")}
    assert proc.returncode == 2, stderr
    assert "a worker process died" in stderr and "run again with fewer jobs (--jobs 1)" in stderr
    assert "Traceback" not in stderr
    assert 1 <= len(kept) < 12
    assert main([*TINY, *many, "--out", str(out), "--jobs", "1", "--no-plots"]) == 0
    assert len(results(out)) == 12
    assert {p: p.stat().st_mtime_ns for p in kept} == kept     # reused, not retrained


def test_a_diverging_configuration_is_recorded_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "div"
    assert main([*TINY, "--out", str(out), "--hidden", "8,4,8", "--lrs", "1e30", "0.01", "--jobs", "1"]) == 0
    by_lr = {r["lr"]: r for r in results(out)}
    assert by_lr[1e30]["status"] == "diverged" and by_lr[1e30]["diverged_epoch"] == 1
    assert by_lr[1e30]["val_bce"] is None and by_lr[0.01]["status"] == "ok"
    rows = list(csv.DictReader((out / "ranking.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "diverged"]
    assert "diverged at epoch 1" in (out / "REPORT.md").read_text()


@pytest.mark.parametrize("flags, message", [
    (["--hidden", "128,x,32"], "cannot read hidden-layer spec '128,x,32'"),
    (["--hidden", "128,0"], "width below 1"),
    (["--lrs", "0"], "must be a finite number > 0"),
    (["--lrs", "-0.1"], "must be a finite number > 0"),
    (["--lrs", "-inf"], "learning rate must be a finite number > 0, got -inf"),   # not taken for a flag
    (["--lrs", "0.1", "-1e-3"], "got -0.001"),
    (["--eps", "-1e-7"], "eps must be a finite number > 0, got -1e-07"),
    (["--datasets", "cifar10"], "unknown dataset 'cifar10'"),
    (["--backend", "tpu"], "invalid choice: 'tpu'"),
    (["--epochs", "0"], "must be a positive integer"),
    (["--beta2", "1.0"], "beta2 must be in [0, 1)"),
    (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
    (["--limit-train", "0"], "must be a positive integer"),
    (["--seeds", "100000000"], "this grid would be 400,000,000 runs (1 x 2 x 2 x 100000000"),
])
def test_bad_flags_fail_before_any_training(flags, message, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--out", str(out), *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_folder_named_like_a_negative_number_stays_as_written():
    from minae.grid.cli import _negative_numbers_as_values, build_parser

    argv = ["--out", "-1", "--epochs", "-5", "--lrs", "0.1", "-inf", "--beta1=-0.5"]
    assert _negative_numbers_as_values(build_parser(), argv) == [
        "--out", "-1", "--epochs", " -5", "--lrs", "0.1", " -inf", "--beta1=-0.5"]


def test_an_unwritable_out_fails_at_start(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([*TINY, "--out", str(blocker / "out")]) == 2
    assert "cannot write results to" in capsys.readouterr().err


def test_keras_and_quick_presets_yield_to_explicit_flags():
    from minae.grid.cli import build_parser, config_from_args, usable_cores

    def cfg(*argv):
        return config_from_args(build_parser().parse_args(list(argv)))

    assert (cfg().beta2, cfg().epochs, cfg().hidden) == (0.99, 100, ((32, 16, 32), (64, 32, 16, 32, 64),
                                                                      (128, 64, 32, 64, 128)))
    assert (cfg("--keras").beta2, cfg("--keras").eps, cfg("--keras").adam_form) == (0.999, 1e-7, "keras")
    assert cfg("--keras", "--beta2", "0.95").beta2 == 0.95
    assert (cfg("--quick").epochs, cfg("--quick").limit_train) == (10, 5000)
    assert cfg("--quick", "--epochs", "4").epochs == 4
    assert cfg("--backend", "numpy").jobs == usable_cores() >= 1


def test_the_script_runs_as_a_program(tmp_path):
    out = tmp_path / "script"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "grid.py"), *TINY, "--hidden", "8,4,8",
                           "--lrs", "0.01", "--out", str(out), "--no-plots"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(results(out)) == 1


def test_the_log_says_how_many_runs_and_counts_them(tmp_path, capsys):
    out = tmp_path / "log"
    assert main([a for a in TINY if a != "--quiet"] + ["--out", str(out), "--jobs", "1", "--no-plots"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"grid: 4 runs in {out}: 0 finished earlier and reused, 4 to train in this process" in lines
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == ["[1/4", "[2/4", "[3/4", "[4/4"]


def test_a_warning_is_one_line_of_its_own_text(tmp_path, capsys, monkeypatch):
    import warnings

    from minae.grid import cli
    from minae.grid.schedule import GridResult

    def warn_and_finish(config, log, command):
        warnings.warn("the full mnist was not found; using the bundled sample", UserWarning, stacklevel=2)
        return GridResult()

    monkeypatch.setattr(cli, "run_grid", warn_and_finish)
    assert main([*TINY, "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == "UserWarning: the full mnist was not found; using the bundled sample\n"


def test_python_m_minae_grid_names_itself():
    done = subprocess.run([sys.executable, "-m", "minae.grid", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m minae.grid")


def test_a_learning_rate_is_one_number_however_it_is_written():
    from minae.grid import GridConfig
    from minae.grid.config import DataSummary, run_settings, settings_key

    data = DataSummary("mnist", "data-dir", "x", 10, 5, True, digest="d")
    runs = set()
    for lr in (1, 1.0, np.float64(1.0), np.float32(1.0)):
        config = GridConfig(lrs=(lr,))
        settings = run_settings(config, data, (8, 4, 8), config.lrs[0], "numpy")
        runs.add((settings_key(settings), settings["seed"], type(settings["lr"])))
    assert len(runs) == 1 and runs.pop()[2] is float


def test_widths_separated_by_spaces_are_noted_as_separate_architectures():
    from minae.grid.cli import build_parser, config_from_args

    notes = []
    config = config_from_args(build_parser().parse_args(["--hidden", "128", "64"]), notes)
    assert config.hidden == ((128,), (64,))
    assert notes == ["note: --hidden 128 64 names 2 architectures of one hidden layer each; the widths of "
                     "one architecture are separated by commas (128,64)"]
    notes.clear()
    config_from_args(build_parser().parse_args(["--hidden", "128,64", "32"]), notes)
    assert notes == []
