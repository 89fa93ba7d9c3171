"""Running the grid: which runs are missing, training them, and the report.

``run_grid`` is the one way in, for the command line and for Python alike. It
checks the settings, proves ``--out`` writable and holds its lock
(minae.grid.lock) for the whole of it; reads and verifies the data once;
reuses every finished run it can trust (minae.grid.runs); trains the rest in
this process, in worker processes (minae.grid.pool), as stacks (minae.sweep)
or on a Dask cluster (minae.grid.cluster); writes results.json after every
run; and ends with the rankings, figures and REPORT.md (minae.grid.report,
minae.grid.plots), drawn from the same verified data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits

from minae._io import atomic_write_text, naming_path, writable_dir
from minae._progress import progress_bar
from minae.backend import resolve_backend
from minae.data import load
from minae.grid.config import DataSummary, run_settings, settings_key
from minae.grid.lock import grid_lock
from minae.grid.runs import changed_data, load_checked, load_finished, train_group, train_run
from minae.grid.tensorboard_runs import log_to_tensorboard, tensorboard_dir

# The settings a report depends on: a grid that differs in one of them, written
# into a folder that holds another grid's report, says what it replaces.
REPORT_SETTINGS = ("datasets", "hidden", "lrs", "epochs", "batch_size", "beta1", "beta2", "eps",
                   "adam_form", "seed", "seeds", "dtype", "backend", "data_dir", "limit_train", "limit_val",
                   "val_fraction")
GRID_FILE = "grid.json"   # in --out: the settings of the grid whose report is there


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
        replaces(out, config, log)
        # Our own dict: worker processes read their own copies, and the grid then
        # lets go of its datasets (to bound peak memory) without touching the caller's.
        loaded = prepare_data(config) if datasets is None else dict(datasets)
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


def _report_settings(config):
    return {name: list(v) if isinstance(v, tuple) else v for name, v in
            ((n, getattr(config, n)) for n in REPORT_SETTINGS)}


def replaces(out, config, log):
    """Say so when ``out`` holds the report of a grid with other settings: this grid
    replaces that report (its runs stay in out/runs, reused when asked for again)."""
    try:
        before = json.loads((out / GRID_FILE).read_text())
    except (OSError, ValueError):
        return
    now = json.loads(json.dumps(_report_settings(config)))   # as JSON would give it back
    changed = [f"{k} {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k]]
    if changed and isinstance(before, dict):
        log(f"note: {out} holds the report of a grid with other settings ({'; '.join(changed)}); this "
            f"grid replaces its REPORT.md, ranking and results.json. The runs of both stay in {out}/runs "
            "and are reused when asked for again; give another --out to keep both reports")


def _load_kwargs(config):
    return dict(val_fraction=config.val_fraction, limit_train=config.limit_train,
                limit_val=config.limit_val, seed=config.seed, require_full=config.require_full)


def reload(config, summary):
    """The dataset of ``summary`` read again from the very files the grid used, with the
    same subsets, and proved to be the same content (else a DataError naming them)."""
    from minae.grid.runs import check_data

    ds = load(summary.name, **_load_kwargs(config), data_dir=summary.location, allow_download=False)
    check_data(ds, summary)
    return ds


def prepare_data(config):
    """Load every dataset once (failing early); {name: Dataset}."""
    return {name: load(name, config.data_dir, progress=not config.quiet, **_load_kwargs(config))
            for name in config.datasets}


def write_results(out, records):
    """results.json: every finished record of this grid, written atomically."""
    atomic_write_text(Path(out) / "results.json", json.dumps(records, indent=1))


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
    log(f"grid: {len(todo) + len(reused)} runs in {out}: {len(reused)} finished earlier and reused, "
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

            data = {n: (dict(_load_kwargs(config), data_dir=s.location, allow_download=False), s)
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


def _one_blas_thread(settings):
    """One BLAS thread, as in the workers, so --jobs 1 and --jobs N agree bit for bit."""
    return threadpool_limits(1 if settings["backend"] == "numpy" else None)


def _run_serial(todo, datasets, out, bars, finished, config):
    for settings in todo:
        bars.start(settings)
        key = settings_key(settings)
        with _one_blas_thread(settings):
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


def write_outputs(config, result, datasets=None, command="python scripts/grid.py", log=print):
    """Baselines, ranking.csv/.md, figures and REPORT.md for a finished grid.

    datasets: {name: Dataset} if at hand; otherwise each is read again from the
    files the grid used, one at a time (to keep memory low), and must be the
    same content as the grid trained on.
    """
    from minae.grid import report

    if config.plots:
        from minae.grid import plots  # matplotlib is only needed for the figures

    out = Path(config.out)
    baselines, figures = {}, {}
    for name, summary in result.data.items():
        ds = datasets[name] if datasets else reload(config, summary)
        baselines[name] = report.mean_image_bce(ds.x_train, ds.x_val)
        records = [r for r in result.records if r["dataset"] == name]
        if config.plots and records:
            figures[name] = plots.plot_dataset(out, name, records, ds, baselines[name])
        del ds
    rows = report.write_rankings(out, result.records, baselines, result.data)
    text = report.report_markdown(config, result.records, rows, baselines, result.data, figures,
                                  command, result.trained, result.skipped)
    atomic_write_text(out / "REPORT.md", text)
    atomic_write_text(out / GRID_FILE, json.dumps(_report_settings(config), indent=1))
    log(f"wrote {out / 'REPORT.md'}, ranking.md, ranking.csv, results.json"
        + (f" and plots in {out / 'plots'}" if figures else ""))
    return rows

