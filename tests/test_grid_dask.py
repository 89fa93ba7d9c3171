"""The grid on real Dask clusters: a LocalCluster, and a scheduler with two
workers started here as processes on 127.0.0.1 (and stopped by the tests)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from minae.data.loading import SAMPLE_ROOT
from minae.grid import cluster
from minae.grid.cli import main

from .conftest import free_port

distributed = pytest.importorskip("distributed", reason="Dask's distributed scheduler is not installed "
                                                         "(pip install 'minae[distributed]')")

SMALL = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "8,4,8", "16,8,16",
         "--lrs", "0.01", "0.1", "--epochs", "2", "--limit-train", "600", "--limit-val", "200",
         "--no-plots", "--quiet"]
# Six runs of about a second each: long enough to lose a worker mid-grid.
LONGER = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "64,32,64", "--epochs", "30",
          "--lrs", "0.01", "0.02", "0.03", "0.04", "0.05", "0.06", "--limit-train", "3000",
          "--limit-val", "200", "--no-plots", "--quiet"]


def histories(out):
    return {r["key"]: (r["status"], r["history"]) for r in json.loads((out / "results.json").read_text())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("dask") / "jobs1"
    assert main([*SMALL, "--out", str(out), "--jobs", "1"]) == 0
    return histories(out)


@pytest.fixture
def dask_cluster():
    """A `dask scheduler` and two `dask worker` processes; yields (address, client)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], **quiet)]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
              "--dashboard-address", ":0"]
    procs += [subprocess.Popen(worker, **quiet) for _ in range(2)]
    client = distributed.Client(address, timeout="30s")
    try:
        client.wait_for_workers(2, timeout=60)
        yield address, client
    finally:
        client.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_a_local_cluster_gives_the_bits_of_jobs_1(reference, tmp_path):
    out = tmp_path / "local"
    environ = dict(os.environ)
    assert main([*SMALL, "--out", str(out), "--scheduler", "local", "--jobs", "2"]) == 0
    assert histories(out) == reference
    assert dict(os.environ) == environ   # Dask's OPENBLAS_NUM_THREADS=1 and co. do not leak out


def test_a_scheduler_with_two_workers_gives_the_bits_of_jobs_1(reference, dask_cluster, tmp_path):
    address, _ = dask_cluster
    out = tmp_path / "remote"
    assert main([*SMALL, "--out", str(out), "--scheduler", address]) == 0
    assert histories(out) == reference


def _grid_past_its_first_run(out, address, *extra):
    """The LONGER grid on ``address``, in a process of its own, once its first run is saved."""
    grid = subprocess.Popen([sys.executable, "-m", "minae.grid", *LONGER, "--out", str(out),
                             "--scheduler", address, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / "runs" / "mnist").glob("*.json")):
        assert time.monotonic() < deadline and grid.poll() is None, "the grid never finished a run"
        time.sleep(0.02)
    return grid


@pytest.mark.parametrize("lost", ["one", "every"])
def test_losing_workers_mid_grid_loses_no_run(dask_cluster, tmp_path, lost):
    # Losing every worker loses the scattered data they held: Dask cancels the tasks that
    # needed it ("already forgotten"), which the grid recorded as failed; now it sends it again.
    address, client = dask_cluster
    out = tmp_path / "lost"
    grid = _grid_past_its_first_run(out, address)
    workers = list(client.run(os.getpid).values())
    for victim in workers[:1] if lost == "one" else workers:   # dies mid-task; its nanny starts a new one
        os.kill(victim, signal.SIGKILL)
    _, stderr = grid.communicate(timeout=300)
    assert grid.returncode == 0, stderr
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)


def test_with_no_worker_left_to_take_the_data_the_runs_fail_naming_why(dask_cluster, tmp_path):
    address, client = dask_cluster
    out = tmp_path / "none-left"
    grid = _grid_past_its_first_run(out, address, "--scheduler-timeout", "3")
    nannies = list(client.run(os.getppid).values())
    for pid in [*nannies, *client.run(os.getpid).values()]:   # nothing starts them again
        os.kill(pid, signal.SIGKILL)
    _, stderr = grid.communicate(timeout=120)
    assert grid.returncode == 1, stderr
    failed = [r for r in json.loads((out / "results.json").read_text()) if r["status"] == "failed"]
    assert failed and all("no worker took it again within --scheduler-timeout 3 s" in r["error"]
                          for r in failed)


def test_a_task_that_keeps_failing_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch, capsys):
    original = cluster._task

    def failing(settings, ds, summary, engine):
        if settings["lr"] == 0.1:
            raise RuntimeError("this run always fails")
        return original(settings, ds, summary, engine)

    monkeypatch.setattr(cluster, "_task", failing)   # the workers below are threads of this process
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as local:
        out = tmp_path / "failing"
        # The grid goes on and reports every run, but its exit code says that runs failed.
        assert main([*SMALL, "--out", str(out), "--scheduler", local.scheduler_address]) == 1
    assert "error: 2 of 4 runs failed (mnist 8,4,8 lr=0.1" in capsys.readouterr().err
    records = json.loads((out / "results.json").read_text())
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 2 and all("RuntimeError: this run always fails" in r["error"] for r in failed)
    assert all(r["status"] == "ok" for r in records if r["lr"] == 0.01)
    assert "failed: RuntimeError" in (out / "ranking.md").read_text()
    assert not [p for p in (out / "runs" / "mnist").glob("*.json")
                if json.loads(p.read_text())["lr"] == 0.1]   # never mistaken for finished


def test_an_unreachable_scheduler_is_a_clear_error_within_the_timeout(tmp_path, capsys):
    start = time.monotonic()
    code = main([*SMALL, "--out", str(tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                 "--scheduler-timeout", "2"])
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:" in err and "dask scheduler" in err
    assert "Traceback" not in err


def test_without_distributed_the_flag_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # as if not installed
    with pytest.raises(SystemExit) as exc:   # refused with the flags, before any data is read
        main([*SMALL, "--out", str(tmp_path / "o"), "--scheduler", "local"])
    assert exc.value.code == 2
    assert "pip install 'minae[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _serve(answer):
    """A TCP server on a free port that accepts and sends ``answer`` (b"": says nothing)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if answer:
                conn.sendall(answer)

    threading.Thread(target=accept, daemon=True).start()
    return server


@pytest.mark.parametrize("answer, message", [
    (b"", "within 2 s (it accepted the connection but sent nothing)"),
    (b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n", "answered, but not as a Dask scheduler"),
], ids=["silent", "http"])
def test_a_port_that_is_no_scheduler_is_a_clear_error_within_the_timeout(tmp_path, capsys, answer, message):
    # Dask's Client waited for ever on the first, and tried to allocate 3 EiB on the second.
    server = _serve(answer)
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    start = time.monotonic()
    try:
        code = main([*SMALL, "--out", str(tmp_path / "o"), "--scheduler", address,
                     "--scheduler-timeout", "2"])
    finally:
        server.close()
    assert code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert message in err and address in err and "Traceback" not in err


def test_an_address_dask_cannot_read_names_the_flag(tmp_path, capsys):
    assert main([*SMALL, "--out", str(tmp_path / "o"), "--scheduler", "http://127.0.0.1:8787"]) == 2
    assert "error: --scheduler 'http://127.0.0.1:8787' is not an address Dask can use (unknown address " \
           "scheme 'http'" in capsys.readouterr().err


def test_a_scheduler_without_workers_says_so_instead_of_waiting(tmp_path, capsys):
    port = free_port()
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                  "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        code = main([*SMALL, "--out", str(tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{port}",
                     "--scheduler-timeout", "20"])
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=20)
    assert code == 2
    err = capsys.readouterr().err
    assert f"the Dask scheduler at tcp://127.0.0.1:{port} has no workers" in err and "dask worker" in err
    assert not (tmp_path / "o" / "runs").exists()


def test_sigterm_while_a_local_cluster_starts_is_delivered_once_it_can_be_closed(monkeypatch):
    # Stopped half-way through LocalCluster(), the cluster was left to Dask's exit
    # handler, which printed tracebacks; now SIGTERM waits for the cluster, then closes it.
    from minae.errors import Terminated

    made = []

    class Starting:
        def __init__(self, **kwargs):
            made.append(self)
            self.closed = False
            os.kill(os.getpid(), signal.SIGTERM)   # arrives while the processes start
            time.sleep(0.2)

        def close(self):
            self.closed = True

    def terminate(signum, frame):
        raise Terminated()

    monkeypatch.setattr(distributed, "LocalCluster", Starting)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with pytest.raises(Terminated):
            cluster.connect("local", 1, 5, log=lambda msg: None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(made) == 1 and made[0].closed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
