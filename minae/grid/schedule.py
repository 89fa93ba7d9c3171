"""Running the grid: which runs are missing, training them, and the report.

``run_grid`` is the one way in, for the command line and for Python alike. It
checks the settings, proves ``--out`` writable and holds its lock
(minae.grid.lock) for the whole of it; reads and verifies the data once;
reuses every finished run it can trust (minae.grid.reuse); trains the rest in
this process, in worker processes (minae.grid.pool), as stacks (minae.sweep)
or on a Dask cluster (minae.grid.cluster); writes results.json after every
run; and ends with the rankings, figures and REPORT.md (minae.grid.outputs),
drawn from the same verified data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minae._io import naming_path, writable_dir
from minae._progress import progress_bar
from minae.backend import one_blas_thread, resolve_backend
from minae.data import load
from minae.grid.config import DataSummary, run_settings, settings_key
from minae.grid.lock import grid_lock
from minae.grid.outputs import load_kwargs, replaces, write_outputs, write_results
from minae.grid.reuse import changed_data, load_checked, load_finished
from minae.grid.runs import train_group, train_run
from minae.grid.tensorboard_runs import log_to_tensorboard, tensorboard_dir


@dataclass
class GridResult:
    records: list = field(default_factory=list)   # every run of the grid, finished
    trained: int = 0                               # how many were trained this time
    skipped: int = 0                               # how many were already finished
    data: dict = field(default_factory=dict)       # dataset name -> DataSummary


def run_grid(config, datasets=None, log=print, report=True, command="python scripts/grid.py"):
    """Train every missing run of ``config``, then (``report``) rank and report them.

    datasets: optional {name: Dataset} already loaded (else loaded here).
    log:      where one-line messages go (the script passes tqdm.write).
    command:  how the grid was started, for REPORT.md.
    Returns a GridResult.
    """
    config.validate()
    out = check_out_dir(config.out)
    if config.tensorboard:
        check_out_dir(out / "tensorboard")   # before any training: logs must not fail at the end
    with grid_lock(out, log):
        sweep_stale(out)
        # Our own dict: worker processes read their own copies, and the grid then
        # lets go of its datasets (to bound peak memory) without touching the caller's.
        loaded = prepare_data(config) if datasets is None else given_data(config, datasets)
        replaces(out, config, log)   # said once the data are known to load
        result = _train(config, out, loaded, log)
        if report:   # from the same data; what was let go is read again and verified
            write_outputs(config, result, loaded or None, command, log)
    return result


def check_out_dir(out):
    """Create --out and prove it is writable (else an OSError naming it, errno kept)."""
    try:
        return writable_dir(out)
    except OSError as exc:
        raise naming_path(exc.__cause__ or exc, f"cannot write results to {out}",
                          "choose another folder with --out") from exc


def sweep_stale(out):
    """Delete temporary files a killed grid left behind.

    A grid killed while writing leaves a ``.<name>.<random>.tmp`` file (never
    the real name, so nothing trusts it). Called while holding the folder's
    lock, so no other grid can be writing them.
    """
    for stale in [*out.glob(".*.tmp"), *out.glob("runs/*/.*.tmp"), *out.glob("plots/*/.*.tmp")]:
        stale.unlink(missing_ok=True)


def given_data(config, datasets):
    """The caller's datasets, one minae.data.Dataset for each of config.datasets, in a dict of
    our own (the grid lets go of its datasets; the caller's stay)."""
    from minae.data import Dataset

    missing = [name for name in config.datasets if name not in datasets]
    if missing:
        raise ValueError(f"datasets holds no {', '.join(missing)}: give run_grid a Dataset for each of "
                         "config.datasets (minae.data.load), or datasets=None to load them")
    for name in config.datasets:
        if not isinstance(datasets[name], Dataset):
            raise TypeError(f"datasets[{name!r}] must be a minae.data.Dataset (from minae.data.load), got "
                            f"{type(datasets[name]).__name__}")
    return {name: datasets[name] for name in config.datasets}


def prepare_data(config):
    """Load every dataset once (failing early); {name: Dataset}."""
    return {name: load(name, config.data_dir, progress=not config.quiet, **load_kwargs(config))
            for name in config.datasets}


def _train(config, out, datasets, log):
    backend = resolve_backend(config.backend)
    if config.backend == "auto":
        log(f"backend: {backend.reason}")
    if config.engine == "fused" and backend.name != "cupy":
        raise ValueError("--engine fused runs CUDA kernels: use it with --backend cupy (or auto on a "
                         "machine with a GPU)")
    result = GridResult(data={n: DataSummary.of(ds) for n, ds in datasets.items()})
    for name in datasets:
        log("data: " + datasets[name].describe())
    todo, reused = [], []
    for name in config.datasets:
        for hidden in config.hidden:
            for lr in config.lrs:
                for repeat in range(config.seeds):
                    settings = run_settings(config, result.data[name], hidden, lr, backend.name, repeat)
                    done = None if config.fresh else load_finished(out, settings, datasets[name], log)
                    if done is None:
                        todo.append(settings)
                    else:
                        reused.append((settings, done))
    result.records = [record for _, record in reused]
    result.skipped = len(reused)
    if todo and not config.fresh:
        for sentence in changed_data(out, todo):
            log(sentence)
    jobs = min(config.jobs, max(1, len(todo)))
    where = (f"on the Dask scheduler {config.scheduler}" if config.scheduler else
             "as stacks" if config.engine == "stacked" else
             f"in {jobs} worker processes" if jobs > 1 and backend.name == "numpy" else "in this process")
    total = len(todo) + len(reused)
    log(f"grid: {total} run{'s' if total != 1 else ''} in {out}: {len(reused)} finished earlier and reused, "
        f"{len(todo)} to train {where}")
    if config.tensorboard and reused:
        _log_reused(out, reused, datasets, log)
    done_log = _DoneLog(result, len(todo), log)
    overall = progress_bar(total=len(todo), desc="grid", unit="run", show=not config.quiet, leave=True)
    bars = _Bars(config)

    def finished(record):
        done_log(record)
        overall.update(1)
        write_results(out, result.records)

    try:
        if config.scheduler is not None:
            from minae.grid.cluster import run_on_dask

            run_on_dask(todo, datasets, config, out, finished, log)
        elif config.engine == "stacked":
            if jobs > 1:
                log("engine stacked: the learning rates of each architecture train together in this "
                    "process (BLAS uses every core); --jobs is not used")
            _run_stacked(todo, datasets, out, bars, finished, config)
        elif jobs == 1 or backend.name != "numpy":
            _run_serial(todo, datasets, out, bars, finished, config)
        else:
            from minae.grid.pool import run_in_workers

            data = {n: (dict(load_kwargs(config), data_dir=s.location, allow_download=False), s)
                    for n, s in result.data.items()}
            datasets.clear()   # the workers read their own copies; ours would only add to peak memory
            run_in_workers(todo, data, out, jobs, config.engine, config.tensorboard, finished, bars)
    finally:
        overall.close()
        bars.close_all()
        result.records.sort(key=lambda r: grid_position(config, r))
        write_results(out, result.records)
    return result


def grid_position(config, record):
    """Sort key putting records in the grid's order: dataset, hidden, lr, repeat."""
    return (config.datasets.index(record["dataset"]), config.hidden.index(tuple(record["hidden"])),
            config.lrs.index(record["lr"]), record.get("repeat", 0))


def describe(settings):
    """'mnist 32,16,32 lr=0.01' (with ' seed #2' for a repeat): a run in one line."""
    repeat = f" seed #{settings['repeat'] + 1}" if settings.get("repeat") else ""
    return f"{settings['dataset']} {','.join(map(str, settings['hidden']))} lr={settings['lr']:g}{repeat}"


class _DoneLog:
    """Records each finished run in the result and says it in one line, with [k/n]."""

    def __init__(self, result, total, log):
        self.result, self.total, self.log = result, total, log

    def __call__(self, record):
        self.result.records.append(record)
        self.result.trained += 1
        if record["status"] == "failed":
            what = f"FAILED: {record.get('error')}"
        elif record["status"] == "diverged":
            what = f"diverged at epoch {record['diverged_epoch']}"
        else:
            what = f"val BCE {record['val_bce']:.4f}"
        seconds = record["seconds"] or 0.0
        self.log(f"[{self.result.trained}/{self.total}] {describe(record)}: {what} ({seconds:.1f} s)")


class _Bars:
    """The per-run progress bars (none when quiet)."""

    def __init__(self, config):
        self.config, self.bars = config, {}

    def start(self, settings):
        self.bars[settings_key(settings)] = progress_bar(total=settings["epochs"], desc=describe(settings),
                                                         unit="epoch", show=not self.config.quiet)

    def epoch(self, key, epoch, train_bce, val_bce):
        if key in self.bars:
            self.bars[key].update(1)
            self.bars[key].set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")

    def close(self, key):
        bar = self.bars.pop(key, None)
        if bar is not None:
            bar.close()

    def close_all(self):
        for key in list(self.bars):
            self.close(key)


def _run_serial(todo, datasets, out, bars, finished, config):
    for settings in todo:
        bars.start(settings)
        key = settings_key(settings)
        with one_blas_thread(settings["backend"]):
            record = train_run(settings, datasets[settings["dataset"]], out,
                               lambda *losses, key=key: bars.epoch(key, *losses), config.engine,
                               config.tensorboard, config.live)
        bars.close(key)
        finished(record)


def _run_stacked(todo, datasets, out, bars, finished, config):
    groups = {}
    for settings in todo:   # the runs of one (dataset, architecture) differ only in lr and seed
        groups.setdefault((settings["dataset"], tuple(settings["hidden"])), []).append(settings)
    for (name, _), group in groups.items():
        for settings in group:
            bars.start(settings)
        # One process trains the whole stack, so BLAS may use every core here.
        records, models = train_group(group, datasets[name], out, bars.epoch)
        for record in records:
            bars.close(record["key"])
            finished(record)
        if config.tensorboard:   # from the records, now saved: a failing log loses no run
            for settings, record, model in zip(group, records, models):
                log_to_tensorboard(out, settings, record, model, datasets[name])


def _log_reused(out, reused, datasets, log):
    """TensorBoard logs of reused runs that have none, written from their records."""
    missing = [(s, r) for s, r in reused if not tensorboard_dir(out, s).is_dir()]
    for settings, record in missing:
        model = load_checked(out, record)
        log_to_tensorboard(out, settings, record, model, datasets[settings["dataset"]])
    if missing:
        log(f"tensorboard: wrote the logs of {len(missing)} reused runs from their records (their "
            "per-epoch scalars; weight histograms and images only of the final model: per-epoch ones "
            "exist only for runs trained with --tensorboard)")


