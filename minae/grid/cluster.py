"""The grid on a Dask cluster: every run a task, every result saved by this process.

What it teaches: to leave one machine, a grid needs a scheduler, and Dask's
distributed scheduler is the one made for Python (``dask scheduler`` on one
machine, ``dask worker ADDRESS`` on each of the others, or a queue of an HPC
system through dask-jobqueue). minae does not grow its own; it hands each run
to Dask as a task and keeps the promises the process pool keeps:

- the grid process (the *driver*) writes every result, atomically, the moment
  its task ends, so workers need no shared filesystem, and Ctrl-C, SIGTERM or
  a killed driver lose only the runs in flight; the same command resumes;
- workers train on the very arrays the driver loaded and verified (scattered
  to them once), never on files of their own;
- each task uses one BLAS thread, so results equal ``--jobs 1`` bit for bit;
- each task checks the digest of the arrays it received against the grid's
  before it trains (minae.grid.runs.check_data);
- a worker lost mid-task: Dask runs the task elsewhere; if every worker
  holding the scattered data died, the data is scattered again (waiting up to
  ``--scheduler-timeout`` for a worker) and its runs submitted again; a task that keeps
  failing is recorded as failed with its error, and the grid goes on (and
  exits with 1, naming the failed runs);
- a scheduler that cannot be reached is an error within ``--scheduler-timeout``;
  one lost mid-grid stops the grid with one message (finished runs are kept);
- Ctrl-C is the grid's alone: the workers of ``--scheduler local`` ignore it,
  and the grid stops them and says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import importlib.util
import logging
import os
import signal
import sys

import numpy as np

from minae._progress import without_process_lock
from minae.backend import one_blas_thread
from minae.errors import STOP_SIGNALS, SchedulerError
from minae.grid.config import DataSummary, settings_key
from minae.grid.pool import run_cost
from minae.grid.runs import arrays_digest, check_data, make_record, save_run, train_and_describe
from minae.grid.tensorboard_runs import log_to_tensorboard
from minae.model import Autoencoder

RETRIES = 2   # a task that raises is run this many more times before it counts as failed


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise SchedulerError("--scheduler runs the grid on Dask's distributed scheduler, which is not "
                             "installed here: pip install 'minae[distributed]'") from exc
    return distributed


def connect(address, jobs, timeout, log=print):
    """(client, cluster): a client of the scheduler at ``address``, or of a new
    LocalCluster of ``jobs`` single-threaded worker processes for "local"."""
    distributed = _distributed()
    if address != "local":
        _first_exchange(address, timeout)
    cluster = client = None
    try:
        if address == "local":
            with _while_processes_start():
                cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster, timeout=f"{timeout}s")
        else:
            client = distributed.Client(address, timeout=f"{timeout}s")
            if not client.scheduler_info().get("workers"):
                try:   # tasks would wait for ever, saying nothing
                    client.wait_for_workers(1, timeout=timeout)
                except (OSError, TimeoutError, asyncio.TimeoutError):
                    raise SchedulerError(f"the Dask scheduler at {address} has no workers (none joined "
                                         f"within {timeout:g} s): start some with `dask worker {address} "
                                         "--nthreads 1`, or use --scheduler local") from None
    except RuntimeError as exc:   # a LocalCluster whose worker processes could not start
        _close(client, cluster)
        if isinstance(exc, SchedulerError):
            raise
        raise SchedulerError(f"could not start a local Dask cluster ({exc}): its worker processes "
                             "re-import the script that started the grid, which needs a .py file with an "
                             "if __name__ == '__main__': guard (not stdin); or use --jobs without "
                             "--scheduler") from exc
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        _close(client, cluster)
        raise _unreachable(address, timeout, exc) from exc
    except BaseException:   # Ctrl-C or SIGTERM while connecting: nothing is left running
        _close(client, cluster)
        raise
    workers = len(client.scheduler_info().get("workers", {}))
    board = "" if importlib.util.find_spec("bokeh") else " (the dashboard needs bokeh: pip install bokeh)"
    log(f"dask: scheduler {client.scheduler.address}, {workers} workers; dashboard {client.dashboard_link}"
        + board)
    return client, cluster


def _first_exchange(address, timeout):
    """Open one connection to the scheduler and take its greeting, within ``timeout``.

    Dask's Client waits for that greeting without a timeout (a port that accepts and
    then says nothing held the grid for ever) and reads another service's answer as a
    message length (an HTTP server's made it try to allocate exabytes); so the first
    exchange is made here, where both are errors that say what to do.
    """
    from distributed.comm import connect as open_comm

    async def exchange():
        comm = await open_comm(address, timeout=timeout)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(exchange(), timeout))
    except ValueError as exc:   # not an address: Dask says why
        raise SchedulerError(f"--scheduler {address!r} is not an address Dask can use ({exc}); write "
                             "tcp://HOST:8786, or 'local'") from None
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        why = str(exc) or "it accepted the connection but sent nothing"
        raise _unreachable(address, timeout, why) from None
    except Exception as exc:   # it answered, but not in Dask's protocol
        raise SchedulerError(f"{address} answered, but not as a Dask scheduler ({type(exc).__name__}: "
                             f"{str(exc)[:100]}); check the port: a scheduler listens on 8786, its dashboard "
                             "on 8787") from None


def _unreachable(address, timeout, why):
    return SchedulerError(f"could not reach the Dask scheduler at {address} within {timeout:g} s ({why}). "
                          "Start one with `dask scheduler` (and workers with `dask worker ADDRESS --nthreads "
                          "1`), check the address and port, or use --scheduler local")


def _close(client, cluster):
    for thing in (client, cluster):
        if thing is not None:
            thing.close()


@contextlib.contextmanager
def _while_processes_start():
    """While a LocalCluster starts its worker processes:

    SIGINT is ignored, and they keep ignoring it (an ignored signal stays ignored
    in a child, and Python then installs no KeyboardInterrupt of its own), so
    Ctrl-C reaches the grid alone, which stops them and says so once. (A Ctrl-C
    in these seconds is lost: a signal ignored cannot be told afterwards. Blocking
    it instead would not keep it: any thread that does not block it, such as
    OpenBLAS's, takes it from the process and drops it, as ignored.)

    SIGTERM and SIGHUP are held back and delivered once the cluster exists: stopped
    half-way through, it was left to Dask's exit handler, which printed its tracebacks.
    """
    held = []
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(held):
            os.kill(os.getpid(), s)


def _task(settings, ds, summary, engine):
    """One run on a worker: check the data it received, train it, send back its
    record and weights."""
    _heap_for_large_arrays()
    without_process_lock()   # a LocalCluster's workers are stopped mid-run by Ctrl-C
    ds, digest = _aligned(ds)
    check_data(ds, summary, digest)   # computed here, on the arrays this run trains on
    # One BLAS thread, as in the process pool: the same bits as --jobs 1.
    with one_blas_thread(settings["backend"]):
        model, record = train_and_describe(settings, ds, engine=engine)
    return record, [model.backend.to_host(p) for p in model.params]


def _aligned(ds):
    """(the dataset with aligned arrays, their digest), made once per worker and kept
    on the scattered object.

    Arrays scattered by Dask arrive at arbitrary byte offsets in its message
    frames (measured: offset 51 mod 64), and NumPy's unaligned loops made an
    epoch 20 times slower.
    """
    cached = getattr(ds, "_minae_aligned", None)
    if cached is None:
        names = ("x_train", "y_train", "x_val", "y_val")
        aligned = dataclasses.replace(ds, **{n: np.require(getattr(ds, n), requirements="CA") for n in names})
        cached = ds._minae_aligned = (aligned, arrays_digest(aligned))
    return cached


_TUNED = []


def _heap_for_large_arrays():
    """Undo, in this worker, a side effect of Dask's nanny on NumPy's speed.

    The nanny sets MALLOC_TRIM_THRESHOLD_=65536 (to give memory back to the
    system), which also freezes glibc's mmap threshold at 128 KiB: every
    batch-sized temporary (800 KB) is then mapped and unmapped afresh, and an
    epoch ran 60% slower (measured). Large allocations go back to the heap.
    """
    if _TUNED or not sys.platform.startswith("linux"):
        return
    _TUNED.append(True)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 64 << 20)    # M_MMAP_THRESHOLD: map only allocations above 64 MiB
    libc.mallopt(-1, 128 << 20)   # M_TRIM_THRESHOLD: keep up to 128 MiB of freed heap


def run_on_dask(todo, datasets, config, out, finished, log=print):
    """Train ``todo`` as tasks on the cluster of ``config.scheduler``, longest first.

    finished(record) is called, in this process, as each run ends (after its
    files are written).
    """
    distributed = _distributed()
    environ = dict(os.environ)   # Dask's nannies set OPENBLAS_NUM_THREADS=1 and more here, for good
    client = cluster = None
    futures = {}
    # Dask logs a lost connection's tracebacks through loggers with levels of their
    # own (distributed.client's is set by its config): while it runs, the grid alone speaks.
    logging.disable(logging.CRITICAL)
    try:
        client, cluster = connect(config.scheduler, config.jobs, config.scheduler_timeout, log)
        names = {s["dataset"] for s in todo}
        # Scattered to every worker once; a worker that joins later fetches from a peer.
        data = {name: client.scatter(datasets[name], broadcast=True, hash=False) for name in names}
        summaries = {name: DataSummary.of(datasets[name]) for name in names}
        lost = {}   # dataset name: why its data could not be sent again

        def submit(settings, attempt=0):
            name = settings["dataset"]
            key = f"minae-run-{settings_key(settings)}" + (f"-again{attempt}" if attempt else "")
            future = client.submit(_task, settings, data[name], summaries[name], config.engine,
                                   key=key, pure=False, retries=RETRIES)
            futures[future] = (settings, data[name], attempt)
            return future

        for settings in sorted(todo, key=run_cost, reverse=True):
            submit(settings)
        pending = distributed.as_completed(list(futures))
        for future in pending:
            settings, sent, attempt = futures.pop(future)
            try:
                record, weights = future.result()
            except Exception as exc:   # the task's error after its retries, KilledWorker, or no scheduler
                if client.status != "running":
                    raise SchedulerError(
                        f"lost the Dask scheduler {config.scheduler} while {len(futures) + 1} runs were "
                        f"unfinished ({type(exc).__name__}). Finished runs are saved in {out}; start the "
                        "scheduler again and run the same command to train only what is missing") from None
                error = " ".join(f"{type(exc).__name__}: {exc}".split())   # one line
                name = settings["dataset"]
                if sent.status != "finished" and attempt < RETRIES and name not in lost:
                    # Every worker holding the scattered data died, and the data with them
                    # (Dask cancels the tasks that needed it): scatter it again, once per loss.
                    if data[name] is sent:
                        log(f"every Dask worker holding the {name} data was lost: sending it again "
                            f"(waiting up to {config.scheduler_timeout:g} s for a worker)")
                        try:
                            data[name] = client.scatter(datasets[name], broadcast=True, hash=False,
                                                        timeout=config.scheduler_timeout)
                        except (OSError, TimeoutError, asyncio.TimeoutError):
                            lost[name] = (f"every Dask worker holding the {name} data was lost, and no "
                                          f"worker took it again within --scheduler-timeout "
                                          f"{config.scheduler_timeout:g} s")
                    if name not in lost:
                        pending.add(submit(settings, attempt + 1))
                        continue
                finished(make_record(settings, "failed", config.engine, error=lost.get(name, error)))
                continue
            model = Autoencoder(datasets[settings["dataset"]].x_train.shape[1], settings["hidden"],
                                seed=settings["seed"], dtype=settings["dtype"])
            for p, w in zip(model.params, weights, strict=True):
                p[...] = w
            record = save_run(out, settings, record, model)
            finished(record)
            if config.tensorboard:   # written here: workers need not share our filesystem
                log_to_tensorboard(out, settings, record, model, datasets[settings["dataset"]])
    finally:
        if futures and client is not None and client.status == "running":
            client.cancel(list(futures), force=True)   # interrupted: the runs in flight are lost
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        os.environ.clear()   # so that nothing this process starts later inherits Dask's settings
        os.environ.update(environ)
        logging.disable(logging.NOTSET)

