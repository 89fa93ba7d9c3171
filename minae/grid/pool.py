"""The grid's runs in worker processes on this machine (``--jobs N``).

Every NumPy run uses one BLAS thread, so ``--jobs 1`` and ``--jobs 2`` give
bitwise-identical results: parallelism comes from processes, one per core,
which is also faster than multi-threaded BLAS for matrices this small.

Each worker reads the data files itself (sending a dataset to every worker
would cost as much) and checks that what it read is what the grid read: the
digest of its arrays must be the grid's, or its runs are refused with the
name of the file that changed (minae.grid.runs.check_data).

Workers never outlive the grid and never speak for it: they ignore Ctrl-C
and SIGHUP (the grid stops them and says so once), a SIGTERM, SIGHUP or Ctrl-C of the grid
terminates the runs in flight (finished runs are kept), and a worker whose
grid process died exits within a second.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from minae._progress import without_process_lock
from minae.backend import one_blas_thread
from minae.data import load
from minae.data.registry import SIDE
from minae.errors import WorkerError
from minae.grid.config import settings_key
from minae.grid.runs import check_data, train_run

_WORKER = {}


def _worker_init(data, events, grid_pid):
    """Each worker: one BLAS thread, deaf to Ctrl-C, a one-dataset cache, an event
    queue, and a watch on the grid process. data: {name: (load kwargs, DataSummary)}."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the grid handles Ctrl-C and stops us
    if hasattr(signal, "SIGHUP"):                  # ... and a closed terminal
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    without_process_lock()                         # the grid may stop us mid-run
    threading.Thread(target=_exit_when_orphaned, args=(grid_pid,), daemon=True).start()
    one_blas_thread()                              # for the worker's whole life
    _WORKER.update(data=data, events=events, cache={})


def _exit_when_orphaned(grid_pid, every=0.5):
    """End this worker once the grid process is gone (killed with SIGKILL, it
    could not tell us): the system then makes another process our parent. The
    grid's pid comes from the grid itself, in case it died before we started."""
    while os.getppid() == grid_pid:
        time.sleep(every)
    os._exit(1)


def _worker_data(name):
    cache = _WORKER["cache"]
    if name not in cache:
        cache.clear()   # hold one dataset at a time to bound memory
        kwargs, summary = _WORKER["data"][name]
        ds = load(name, **kwargs)
        check_data(ds, summary)   # what this worker read is what the grid read
        cache[name] = ds
    return cache[name]


def _worker_run(settings, out_dir, engine, tensorboard):
    events = _WORKER["events"]
    key = settings_key(settings)
    events.put(("start", key))

    def progress(epoch, train_bce, val_bce):
        events.put(("epoch", key, epoch, train_bce, val_bce))

    return train_run(settings, _worker_data(settings["dataset"]), out_dir, progress, engine, tensorboard)


def run_in_workers(todo, data, out, jobs, engine, tensorboard, finished, bars):
    """Train ``todo`` in ``jobs`` worker processes, longest runs first.

    data:     {dataset: (load kwargs, DataSummary)}, how each worker reads the data
    finished: called with each record, in this process, as its run ends
    bars:     an object with start(settings), epoch(key, epoch, train, val) and
              close(key), drawing the per-run progress bars
    """
    ctx = multiprocessing.get_context("spawn")   # CUDA and threads do not survive fork
    events = ctx.Queue()
    by_key = {settings_key(s): s for s in todo}
    stop = threading.Event()

    def pump():   # draw the per-run bars from the workers' events
        while not stop.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event[0] == "start":
                bars.start(by_key[event[1]])
            else:
                bars.epoch(*event[1:])

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                               initargs=(data, events, os.getpid()))
    try:
        # Longest runs first: the last runs to finish are then short ones, so the
        # workers finish close together instead of one idling while the other
        # trains a wide model alone.
        pending = {pool.submit(_worker_run, s, str(out), engine, tensorboard)
                   for s in sorted(todo, key=run_cost, reverse=True)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record = future.result()
                bars.close(record["key"])
                finished(record)
    except BaseException as exc:
        if not isinstance(exc, BrokenProcessPool):
            # Stop the runs in flight instead of waiting minutes for them (before
            # shutdown, which forgets the processes).
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(exc, BrokenProcessPool):
            raise WorkerError(
                "a worker process died: it was killed, ran out of memory (each of the "
                f"{jobs} workers holds its own copy of the data), or could not start (Python "
                "cannot re-import a grid started from stdin; use a .py file with an "
                "if __name__ == '__main__': guard). Finished runs are saved in "
                f"{out}; run again with fewer jobs (--jobs 1) to train only what is missing") from exc
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stop.set()
        pump_thread.join(timeout=2)
        events.close()
        events.join_thread()


def run_cost(settings):
    """Relative training cost of a run: multiply-adds per epoch (images x weights)."""
    sizes = [SIDE * SIDE, *settings["hidden"], SIDE * SIDE]   # every dataset here is SIDE x SIDE
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return settings["n_train"] * weights * settings["epochs"]
