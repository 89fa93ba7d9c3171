"""Running the grid: which runs are missing, and training them in this process,
in worker processes, or as stacks; then the report.

Every NumPy run uses one BLAS thread, so ``--jobs 1`` and ``--jobs 2`` give
bitwise-identical results: parallelism comes from processes, one per core,
which is also faster than multi-threaded BLAS for matrices this small.
Workers never outlive the grid: a SIGTERM or Ctrl-C terminates the runs in
flight (finished runs are kept), and a worker whose grid process died exits
within a second. One grid per ``--out`` (minae.grid.lock).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from minae._io import atomic_write_text, writable_dir
from minae._progress import progress_bar
from minae.backend import resolve_backend
from minae.data import load
from minae.errors import WorkerError
from minae.grid.config import DataSummary, run_settings, settings_key
from minae.grid.lock import grid_lock
from minae.grid.runs import changed_data, load_finished, train_group, train_run

# ---------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------

_WORKER = {}


def _worker_init(load_kwargs, events, grid_pid):
    """Each worker: one BLAS thread, a one-dataset cache, an event queue, and a
    watch on the grid process."""
    from threadpoolctl import threadpool_limits

    threading.Thread(target=_exit_when_orphaned, args=(grid_pid,), daemon=True).start()
    threadpool_limits(1)
    _WORKER.update(load_kwargs=load_kwargs, events=events, cache={})


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
        kwargs = dict(_WORKER["load_kwargs"][name])
        cache[name] = load(name, **kwargs)
    return cache[name]


def _worker_run(settings, out_dir, engine, tensorboard):
    events = _WORKER["events"]
    key = settings_key(settings)
    events.put(("start", key, os.getpid()))

    def progress(epoch, train_bce, val_bce):
        events.put(("epoch", key, epoch, train_bce, val_bce))

    return train_run(settings, _worker_data(settings["dataset"]), out_dir, progress, engine, tensorboard)


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------

@dataclass
class GridResult:
    records: list = field(default_factory=list)   # every run of the grid, finished
    trained: int = 0                               # how many were trained this time
    skipped: int = 0                               # how many were already finished
    data: dict = field(default_factory=dict)       # dataset name -> DataSummary


def check_out_dir(out):
    """Create --out and prove it is writable."""
    try:
        return writable_dir(out)
    except OSError as exc:
        raise OSError(f"cannot write results to {out} ({exc.strerror or exc}); choose another "
                      "folder with --out") from exc


def sweep_stale(out):
    """Delete temporary files a killed grid left behind.

    A grid killed while writing leaves a ``.<name>.<random>.tmp`` file (never
    the real name, so nothing trusts it). Called while holding the folder's
    lock, so no other grid can be writing them.
    """
    for stale in [*out.glob(".*.tmp"), *out.glob("runs/*/.*.tmp"), *out.glob("plots/*/.*.tmp")]:
        stale.unlink(missing_ok=True)


def _load_kwargs(config):
    return dict(val_fraction=config.val_fraction, limit_train=config.limit_train,
                limit_val=config.limit_val, seed=config.seed, require_full=config.require_full)


def reload_kwargs(config, summary):
    """load() arguments that read the very files the grid used, with the same subsets."""
    return dict(_load_kwargs(config), data_dir=summary.location, allow_download=False)


def prepare_data(config):
    """Load every dataset once (failing early); {name: Dataset}."""
    loaded = {}
    for name in config.datasets:
        loaded[name] = load(name, config.data_dir, progress=not config.quiet, **_load_kwargs(config))
    return loaded


def write_results(out, records):
    """results.json: every finished record of this grid, written atomically."""
    atomic_write_text(Path(out) / "results.json", json.dumps(records, indent=1))


def run_grid(config, datasets=None, log=print):
    """Train every missing run of ``config``; returns a GridResult.

    datasets: optional {name: Dataset} already loaded (else loaded here).
    log:      where one-line messages go (the script passes tqdm.write).
    """
    config.validate()
    out = check_out_dir(config.out)
    with grid_lock(out, log):
        sweep_stale(out)
        return _run_grid(config, out, datasets, log)


def _run_grid(config, out, datasets, log):
    backend = resolve_backend(config.backend)
    if config.backend == "auto":
        log(f"backend: {backend.reason}")
    if config.engine == "fused" and backend.name != "cupy":
        raise ValueError("--engine fused runs CUDA kernels: use it with --backend cupy (or auto on a "
                         "machine with a GPU)")
    datasets = prepare_data(config) if datasets is None else datasets
    result = GridResult(data={n: DataSummary.of(ds) for n, ds in datasets.items()})
    for name in datasets:
        log("data: " + datasets[name].describe())
    todo = []
    for name in config.datasets:
        for hidden in config.hidden:
            for lr in config.lrs:
                for repeat in range(config.seeds):
                    settings = run_settings(config, result.data[name], hidden, lr, backend.name, repeat)
                    done = None if config.fresh else load_finished(out, settings, log)
                    if done is None:
                        todo.append(settings)
                    else:
                        result.records.append(done)
    result.skipped = len(result.records)
    if todo and not config.fresh:
        for sentence in changed_data(out, todo):
            log(sentence)
    if result.skipped:
        log(f"resuming: {result.skipped} finished runs reused, {len(todo)} to train")
    jobs = min(config.jobs, max(1, len(todo)))
    overall = progress_bar(total=len(todo), desc="grid", unit="run", show=not config.quiet, leave=True)
    try:
        if config.scheduler is not None:
            from minae.grid.cluster import run_on_dask

            def finished(record):
                _finished(record, result, overall, log)
                write_results(out, result.records)

            run_on_dask(todo, datasets, config, out, finished, log, order=lambda s: -run_cost(s))
        elif config.engine == "stacked":
            if jobs > 1:
                log("engine stacked: the learning rates of each architecture train together in this "
                    "process (BLAS uses every core); --jobs is not used")
            _run_stacked(todo, datasets, out, overall, result, log, config)
        elif jobs == 1 or backend.name != "numpy":
            _run_serial(todo, datasets, out, overall, result, log, config)
        else:
            # The workers load their own copies; drop ours to bound peak memory.
            datasets = None
            _run_parallel(todo, config, out, jobs, overall, result, log)
    finally:
        overall.close()
        result.records.sort(key=lambda r: grid_position(config, r))
        write_results(out, result.records)
    return result


def run_cost(settings):
    """Relative training cost of a run: multiply-adds per epoch (images x weights)."""
    sizes = [784, *settings["hidden"], 784]   # every dataset here is 28x28; only the order matters
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return settings["n_train"] * weights * settings["epochs"]


def grid_position(config, record):
    """Sort key putting records in the grid's order: dataset, hidden, lr, repeat."""
    return (config.datasets.index(record["dataset"]), config.hidden.index(tuple(record["hidden"])),
            config.lrs.index(record["lr"]), record.get("repeat", 0))


def _run_bar(settings, config):
    return progress_bar(total=settings["epochs"], desc=_describe(settings), unit="epoch",
                        show=not config.quiet)


def _describe(settings):
    repeat = f" seed #{settings['repeat'] + 1}" if settings.get("repeat") else ""
    return f"{settings['dataset']} {','.join(map(str, settings['hidden']))} lr={settings['lr']:g}{repeat}"


def _finished(record, result, overall, log):
    result.records.append(record)
    result.trained += 1
    overall.update(1)
    if record["status"] == "failed":
        return   # already reported with its error
    val = "diverged" if record["status"] == "diverged" else f"val BCE {record['val_bce']:.4f}"
    log(f"done: {_describe(record)}: {val} ({record['seconds']:.1f} s)")


def _one_blas_thread(settings):
    """One BLAS thread, as in the workers, so --jobs 1 and --jobs N agree bit for bit."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1 if settings["backend"] == "numpy" else None)


def _run_serial(todo, datasets, out, overall, result, log, config):
    for settings in todo:
        bar = _run_bar(settings, config)

        def progress(epoch, train_bce, val_bce, bar=bar):
            bar.update(1)
            bar.set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")

        with _one_blas_thread(settings):
            record = train_run(settings, datasets[settings["dataset"]], out, progress, config.engine,
                               config.tensorboard, config.live)
        bar.close()
        _finished(record, result, overall, log)
        write_results(out, result.records)


def _run_stacked(todo, datasets, out, overall, result, log, config):
    groups = {}
    for settings in todo:   # the runs of one (dataset, architecture) differ only in lr and seed
        groups.setdefault((settings["dataset"], tuple(settings["hidden"])), []).append(settings)
    for (name, _), group in groups.items():
        bars = {settings_key(s): _run_bar(s, config) for s in group}

        def progress(key, epoch, train_bce, val_bce, bars=bars):
            bars[key].update(1)
            bars[key].set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")

        # One process trains the whole stack, so BLAS may use every core here.
        records = train_group(group, datasets[name], out, progress, config.tensorboard)
        for bar in bars.values():
            bar.close()
        for record in records:
            _finished(record, result, overall, log)
        write_results(out, result.records)


def _run_parallel(todo, config, out, jobs, overall, result, log):
    ctx = multiprocessing.get_context("spawn")   # CUDA and threads do not survive fork
    events = ctx.Queue()
    load_kwargs = {n: reload_kwargs(config, d) for n, d in result.data.items()}
    bars = {}
    by_key = {settings_key(s): s for s in todo}
    stop = threading.Event()

    def pump():   # draw the per-model bars from the workers' events
        while not stop.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            key = event[1]
            if event[0] == "start":
                bars[key] = _run_bar(by_key[key], config)
            elif key in bars:
                bars[key].update(1)
                bars[key].set_postfix(train=f"{event[3]:.4f}", val=f"{event[4]:.4f}")

    pump_thread = threading.Thread(target=pump, daemon=True)
    pump_thread.start()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                               initargs=(load_kwargs, events, os.getpid()))
    try:
        # Longest runs first: the last runs to finish are then short ones, so the
        # workers finish close together instead of one idling while the other
        # trains a wide model alone.
        pending = {pool.submit(_worker_run, s, str(out), config.engine, config.tensorboard)
                   for s in sorted(todo, key=run_cost, reverse=True)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record = future.result()
                bar = bars.pop(record["key"], None)
                if bar is not None:
                    bar.close()
                _finished(record, result, overall, log)
                write_results(out, result.records)
    except BaseException as exc:
        if not isinstance(exc, BrokenProcessPool):
            # Ctrl-C reaches the workers too, SIGTERM (or an error here) does not:
            # stop the runs in flight instead of waiting minutes for them. (Before
            # shutdown, which forgets the processes.)
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
        for bar in bars.values():
            bar.close()


def write_outputs(config, result, datasets=None, command="python scripts/grid.py", log=print):
    """Baselines, ranking.csv/.md, figures and REPORT.md for a finished grid.

    datasets: {name: Dataset} if at hand; otherwise each is reloaded from the
    files the grid used, one at a time, to keep memory low.
    """
    from minae.grid import report

    if config.plots:
        from minae.grid import plots  # matplotlib is only needed for the figures

    out = Path(config.out)
    baselines, figures = {}, {}
    for name, summary in result.data.items():
        ds = datasets[name] if datasets else load(name, **reload_kwargs(config, summary))
        baselines[name] = report.mean_image_bce(ds.x_train, ds.x_val)
        records = [r for r in result.records if r["dataset"] == name]
        if config.plots and records:
            figures[name] = plots.plot_dataset(out, name, records, ds, baselines[name])
        del ds
    rows = report.write_rankings(out, result.records, baselines, result.data)
    text = report.report_markdown(config, result.records, rows, baselines, result.data, figures,
                                  command, result.trained, result.skipped)
    atomic_write_text(out / "REPORT.md", text)
    log(f"wrote {out / 'REPORT.md'}, ranking.md, ranking.csv, results.json"
        + (f" and plots in {out / 'plots'}" if figures else ""))
    return rows
