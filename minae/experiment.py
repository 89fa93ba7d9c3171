"""The grid experiment: every (dataset, hidden layers, learning rate) trained,
saved as soon as it ends, resumable, optionally in parallel worker processes.

What it teaches: an experiment you can trust is one whose every result is
tied to the exact settings that produced it. Each run is identified by a key
hashed from its full settings (model, optimizer, data and its source); a
finished run is written atomically to ``runs/<dataset>/<key>.json`` with its
checkpoint beside it, so rerunning the same command skips it, and a killed
grid loses only the runs that were in flight.

Every run's seed derives from (seed, dataset, hidden, lr), and every NumPy run
uses one BLAS thread, so ``--jobs 1`` and ``--jobs 2`` give bitwise-identical
results: parallelism comes from processes, one per core, which is also faster
than multi-threaded BLAS for matrices this small.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import queue
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minae import __version__
from minae._io import atomic_write_text
from minae.backend import resolve_backend
from minae.data import load
from minae.data.registry import get_info
from minae.errors import CheckpointError, WorkerError
from minae.lock import grid_lock
from minae.model import Autoencoder, positive_int
from minae.optim import FORMS, Adam, check_lr
from minae.train import fit, train_step

ORIGINAL_HIDDEN = ((32, 16, 32), (64, 32, 16, 32, 64), (128, 64, 32, 64, 128))
ORIGINAL_LRS = (0.1, 0.01, 0.001)
ORIGINAL_DATASETS = ("mnist", "fashion-mnist")
ENGINES = ("single", "stacked", "fused")
KNN_K = 5
KNN_TRAIN, KNN_VAL = 5000, 2000   # rows used for the k-NN probe of the codes


@dataclass(frozen=True)
class GridConfig:
    """Everything that decides the grid's results, plus how to run it."""

    datasets: tuple = ORIGINAL_DATASETS
    hidden: tuple = ORIGINAL_HIDDEN
    lrs: tuple = ORIGINAL_LRS
    epochs: int = 100
    batch_size: int = 256
    beta1: float = 0.9
    beta2: float = 0.99          # as the write-up states; --keras uses 0.999
    eps: float = 1e-7            # Keras' default
    adam_form: str = "keras"
    seed: int = 0
    dtype: str = "float32"
    backend: str = "numpy"
    data_dir: str | None = None
    require_full: bool = False
    limit_train: int | None = None
    limit_val: int | None = None
    val_fraction: float | None = None
    out: str = "results"
    jobs: int = 1
    fresh: bool = False
    plots: bool = True
    quiet: bool = False
    # How runs are trained; every engine runs the layers of minae.layers:
    # "single" = each run alone with fit (the default); "stacked" = every
    # learning rate of an architecture in one stack (minae.sweep); "fused" =
    # fit with the loss and Adam as CUDA kernels (minae.kernels; CuPy only).
    engine: str = "single"

    def validate(self):
        """Raise ValueError for any bad setting, before anything is trained."""
        if not self.datasets:
            raise ValueError("give at least one dataset")
        for name in self.datasets:
            get_info(name)
        if not self.hidden:
            raise ValueError("give at least one hidden-layer spec")
        for spec in self.hidden:
            if not spec:
                raise ValueError("a hidden-layer spec is empty; write e.g. 128,64,32,64,128")
            for h in spec:
                positive_int(h, "hidden layer width")
        if not self.lrs:
            raise ValueError("give at least one learning rate")
        for lr in self.lrs:
            check_lr(lr)
        Adam(self.lrs[0], self.beta1, self.beta2, self.eps, self.adam_form)   # checks betas, eps
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed!r}")
        positive_int(self.epochs, "epochs")
        positive_int(self.batch_size, "batch size")
        positive_int(self.jobs, "jobs")
        for name in ("limit_train", "limit_val"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name.replace("_", " "))
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose one of {ENGINES}")
        if self.adam_form not in FORMS:
            raise ValueError(f"unknown Adam form {self.adam_form!r}; choose one of {FORMS}")
        for spec in self.hidden:
            check_memory(spec, self.batch_size, self.dtype)


def run_memory_bytes(hidden, batch_size, dtype="float32", input_dim=784):
    """About how many bytes one run's model needs: parameters, gradients, Adam's
    two moments and two scratch arrays (6 copies), plus one batch's activations."""
    sizes = [input_dim, *hidden, input_dim]
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    width = 8 if dtype == "float64" else 4
    return width * (6 * params + 4 * batch_size * sum(sizes))


def check_memory(hidden, batch_size, dtype="float32"):
    """Refuse a model that cannot fit in this machine's memory, before allocating it."""
    need = run_memory_bytes(hidden, batch_size, dtype)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # not on Linux: no estimate to compare with
        return
    if need > have:
        raise ValueError(f"--hidden {','.join(map(str, hidden))} needs about {need / 2**30:,.0f} GiB per run "
                         f"(parameters, gradients, Adam's moments, one batch) but this machine has "
                         f"{have / 2**30:,.0f} GiB; choose narrower layers")


def parse_hidden(text):
    """'128,64,32' -> (128, 64, 32), with a clear error for anything else."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"cannot read hidden-layer spec {text!r}: write widths separated by commas, "
                         "e.g. 128,64,32,64,128") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"hidden-layer spec {text!r} has a width below 1")
    return sizes


def run_seed(seed, dataset, hidden, lr):
    """A seed for one run, derived from the grid seed and the run's identity."""
    text = f"{seed}|{dataset}|{','.join(map(str, hidden))}|{lr!r}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass(frozen=True)
class DataSummary:
    """What a run needs to know about its data (the arrays travel separately)."""

    name: str
    source: str
    location: str
    n_train: int
    n_val: int
    canonical: bool
    notes: tuple = ()
    digest: str = ""

    @classmethod
    def of(cls, ds):
        return cls(ds.name, ds.source, ds.location, len(ds.x_train), len(ds.x_val), ds.canonical,
                   tuple(ds.notes), ds.digest)


def run_settings(config, data, hidden, lr, backend):
    """The full settings of one run; their hash is the run's key.

    backend: the resolved backend name ("numpy" or "cupy", never "auto").
    """
    return {
        "dataset": data.name, "hidden": list(hidden), "lr": lr, "epochs": config.epochs,
        "batch_size": config.batch_size, "beta1": config.beta1, "beta2": config.beta2,
        "eps": config.eps, "adam_form": config.adam_form, "grid_seed": config.seed,
        "seed": run_seed(config.seed, data.name, hidden, lr), "dtype": config.dtype,
        "backend": backend, "n_train": data.n_train, "n_val": data.n_val,
        "data_source": data.source, "data_sha256": data.digest,
        "limit_train": config.limit_train, "limit_val": config.limit_val,
        "val_fraction": config.val_fraction,
    }


def settings_key(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

def knn_accuracy(train_codes, train_labels, val_codes, val_labels, k=KNN_K, chunk=500):
    """Accuracy of a k-nearest-neighbour vote (Euclidean) on the codes.

    train_codes: (N_train, Z), val_codes: (N_val, Z); labels are small ints.
    Ties in the vote go to the smaller label.
    """
    n_classes = int(max(train_labels.max(), val_labels.max())) + 1
    sq_train = (train_codes**2).sum(1)                                       # (N_train,)
    correct = 0
    for start in range(0, len(val_codes), chunk):   # chunks bound the distance matrix's memory
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2; |a|^2 is the same for every b, so drop it.
        d = sq_train[None, :] - 2.0 * val_codes[start:start + chunk] @ train_codes.T
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]                   # (chunk, k)
        votes = train_labels[nearest]
        counts = (votes[:, :, None] == np.arange(n_classes)).sum(1)         # (chunk, classes)
        correct += int(np.sum(counts.argmax(1) == val_labels[start:start + chunk]))
    return correct / len(val_codes)


def _probe_rows(n, limit, seed):
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n, limit), replace=False))


def code_probe(model, ds, seed=0):
    """Evidence about what a trained model learned, on subsets of the data.

    knn_accuracy:  k-NN accuracy of the class from the bottleneck codes
    output_spread: mean over pixels of the std of the reconstructions across
                   images (about 0 when the model outputs one constant image)
    dead_fraction: fraction of first-layer ReLU units never active on them
    """
    tr = _probe_rows(len(ds.x_train), KNN_TRAIN, seed)
    va = _probe_rows(len(ds.x_val), KNN_VAL, seed + 1)
    be, layer = model.backend, model.code_layer
    x_tr, x_va = be.asarray(ds.x_train[tr]), be.asarray(ds.x_val[va])
    codes_tr = be.to_host(model.encode(x_tr, layer=layer)).astype(np.float64)
    codes_va = be.to_host(model.encode(x_va, layer=layer)).astype(np.float64)
    first = be.to_host(model.encode(x_va, layer=1))
    return {
        "knn_accuracy": knn_accuracy(codes_tr, ds.y_train[tr], codes_va, ds.y_val[va]),
        "output_spread": float(be.to_host(model.predict(x_va)).std(axis=0).mean()),
        "dead_fraction": float(np.mean(first.max(axis=0) <= 0)),
    }


def _new_model(settings, ds, optimizer_class=Adam):
    model = Autoencoder(ds.x_train.shape[1], settings["hidden"], seed=settings["seed"],
                        dtype=settings["dtype"], backend=settings["backend"])
    optimizer = optimizer_class(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"],
                                settings["adam_form"])
    return model, optimizer


def train_run(settings, ds, out_dir, progress=None, engine="single"):
    """Train one configuration on ``ds``; write its checkpoint and record.

    progress: None or a callable(epoch, train_bce, val_bce) for live display.
    engine:   "single" or "fused" (see GridConfig).
    Returns the record (a JSON-ready dict).
    """
    if engine == "fused":
        from minae import kernels

        model, optimizer = _new_model(settings, ds, kernels.FusedAdam)
        step = kernels.train_step
    else:
        model, optimizer = _new_model(settings, ds)
        step = train_step
    start = time.perf_counter()

    def on_epoch_end(epoch, history):
        if progress is not None:
            progress(epoch, history.train_bce[-1], history.val_bce[-1])

    # When a run diverges, fit detects and records it; NumPy's overflow warnings
    # would only be noise on the console.
    with np.errstate(over="ignore", invalid="ignore"):
        history = fit(model, ds.x_train, ds.x_val, epochs=settings["epochs"],
                      batch_size=settings["batch_size"], optimizer=optimizer, seed=settings["seed"],
                      progress=False, on_epoch_end=on_epoch_end, step=step)
    return finish_run(settings, model, history, time.perf_counter() - start, ds, out_dir, engine)


def train_group(group, ds, out_dir, progress=None):
    """Train runs that differ only in learning rate (and seed) as one stack.

    progress: None or a callable(key, epoch, train_bce, val_bce).
    Returns their records; each run's seconds are the whole group's.
    """
    from minae.sweep import fit_stacked

    models, optimizers = zip(*(_new_model(s, ds) for s in group))
    keys = [settings_key(s) for s in group]
    start = time.perf_counter()

    def on_epoch_end(k, epoch, history):
        if progress is not None:
            progress(keys[k], epoch, history.train_bce[-1], history.val_bce[-1])

    with np.errstate(over="ignore", invalid="ignore"):
        histories = fit_stacked(list(models), list(optimizers), ds.x_train, ds.x_val,
                                epochs=group[0]["epochs"], batch_size=group[0]["batch_size"],
                                seeds=[s["seed"] for s in group], on_epoch_end=on_epoch_end)
    seconds = time.perf_counter() - start
    return [finish_run(s, m, h, seconds, ds, out_dir, "stacked")
            for s, m, h in zip(group, models, histories)]


def finish_run(settings, model, history, seconds, ds, out_dir, engine):
    """Save a trained run's checkpoint, probe it, and write its record last."""
    key = settings_key(settings)
    run_dir = Path(out_dir) / "runs" / settings["dataset"]
    diverged = history.diverged
    checkpoint = run_dir / f"{key}.npz"
    model.save(checkpoint, extra={"settings": settings, "key": key})

    def finite(v):
        return v if math.isfinite(v) else None

    record = {
        **settings, "key": key, "status": "diverged" if diverged else "ok",
        "diverged_epoch": history.diverged_epoch,
        "train_bce": None if diverged else history.train_bce[-1],
        "val_bce": None if diverged else history.val_bce[-1],
        "history": {"train_bce": [finite(v) for v in history.train_bce],
                    "val_bce": [finite(v) for v in history.val_bce]},
        "seconds": seconds, "epoch_seconds": history.epoch_seconds, "engine": engine,
        **(dict.fromkeys(("knn_accuracy", "output_spread", "dead_fraction")) if diverged
           else code_probe(model, ds, settings["seed"])),
        "checkpoint": str(checkpoint.relative_to(out_dir)),
        "minae_version": __version__, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    # The record is written last and atomically: its presence means the run is complete.
    atomic_write_text(run_dir / f"{key}.json", json.dumps(record, indent=1))
    return record


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def record_problem(record, settings):
    """Why a saved run record cannot be reused as it is, or None if it can."""
    status = record.get("status")
    if status not in ("ok", "diverged"):
        return f"its status is {status!r}"
    history = record.get("history")
    curves = ("train_bce", "val_bce")
    if not isinstance(history, dict) or not all(isinstance(history.get(k), list) for k in curves):
        return "it has no per-epoch history"
    if not all(v is None or _number(v) for k in ("train_bce", "val_bce") for v in history[k]):
        return "its history holds something other than numbers"
    if status == "ok":
        for name in ("train_bce", "val_bce"):
            if not _number(record.get(name)):
                return f"its {name} is {record.get(name)!r}, not a number"
        if len(history["val_bce"]) != settings["epochs"]:
            return f"its history covers {len(history['val_bce'])} of {settings['epochs']} epochs"
    if not _number(record.get("seconds")):
        return f"its seconds is {record.get('seconds')!r}, not a number"
    for name in ("knn_accuracy", "output_spread", "dead_fraction"):
        if not (record.get(name) is None or _number(record.get(name))):
            return f"its {name} is {record.get(name)!r}, not a number"
    if not isinstance(record.get("checkpoint"), str):
        return "it names no checkpoint"
    return None


def load_finished(out_dir, settings, log=print):
    """The saved record for these exact settings, or None (never a partial one).

    A record that exists but cannot be trusted (unreadable, wrong types, a
    checkpoint that does not load) is reported through ``log`` and its run is
    trained again.
    """
    path = Path(out_dir) / "runs" / settings["dataset"] / f"{settings_key(settings)}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log(f"{path} cannot be read ({exc}); training that run again")
        return None
    if not isinstance(record, dict) or {k: record.get(k) for k in settings} != settings:
        log(f"{path} does not hold the record of these settings; training that run again")
        return None
    problem = record_problem(record, settings)
    if problem is None:
        try:
            model = Autoencoder.load(Path(out_dir) / record["checkpoint"])
            if model.hidden != settings["hidden"]:
                problem = f"its checkpoint has hidden layers {model.hidden}, not {settings['hidden']}"
        except (CheckpointError, OSError) as exc:
            problem = f"its checkpoint does not load ({exc})"
    if problem is not None:
        log(f"{path}: {problem}; training that run again")
        return None
    return record


def changed_data(out_dir, todo):
    """Sentences naming each dataset whose content differs from the data that runs
    already finished in ``out_dir`` (same settings otherwise) were trained on."""
    def without_digest(settings):
        return settings_key({k: v for k, v in settings.items() if k != "data_sha256"})

    wanted = {without_digest(s): s for s in todo}
    changed = {}
    for path in Path(out_dir).glob("runs/*/*.json"):
        try:
            record = json.loads(path.read_text())
            settings = wanted.get(without_digest({k: record.get(k) for k in todo[0]}))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, IndexError):
            continue
        if settings is not None and record.get("data_sha256") != settings["data_sha256"]:
            changed.setdefault(settings["dataset"], (record.get("data_sha256"), settings["data_sha256"], []))
            changed[settings["dataset"]][2].append(path.name)
    return [f"{name}: the data differ from those {len(runs)} finished run(s) in {out_dir} were trained on "
            f"(content digest {(old or 'not recorded')[:12]} then, {new[:12]} now); training them again"
            for name, (old, new, runs) in changed.items()]


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


def _worker_run(settings, out_dir, engine):
    events = _WORKER["events"]
    key = settings_key(settings)
    events.put(("start", key, os.getpid()))

    def progress(epoch, train_bce, val_bce):
        events.put(("epoch", key, epoch, train_bce, val_bce))

    return train_run(settings, _worker_data(settings["dataset"]), out_dir, progress, engine)


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
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OSError(f"cannot write results to {out} ({exc.strerror or exc}); choose another "
                      "folder with --out") from exc
    return out


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
    """Load every dataset once (failing early) and summarise where it came from."""
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
                settings = run_settings(config, result.data[name], hidden, lr, backend.name)
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
    overall = tqdm(total=len(todo), desc="grid", unit="run", disable=config.quiet, dynamic_ncols=True)
    try:
        if config.engine == "stacked":
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
    """Sort key putting records in the grid's order: dataset, hidden, lr."""
    return (config.datasets.index(record["dataset"]), config.hidden.index(tuple(record["hidden"])),
            config.lrs.index(record["lr"]))


def _describe(settings):
    return f"{settings['dataset']} {','.join(map(str, settings['hidden']))} lr={settings['lr']:g}"


def _finished(record, result, overall, log):
    result.records.append(record)
    result.trained += 1
    overall.update(1)
    val = "diverged" if record["status"] == "diverged" else f"val BCE {record['val_bce']:.4f}"
    log(f"done: {_describe(record)}: {val} ({record['seconds']:.1f} s)")


def _one_blas_thread(settings):
    """One BLAS thread, as in the workers, so --jobs 1 and --jobs N agree bit for bit."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1 if settings["backend"] == "numpy" else None)


def _run_serial(todo, datasets, out, overall, result, log, config):
    for settings in todo:
        bar = tqdm(total=settings["epochs"], desc=_describe(settings), unit="epoch", leave=False,
                   disable=config.quiet, dynamic_ncols=True)

        def progress(epoch, train_bce, val_bce, bar=bar):
            bar.update(1)
            bar.set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")

        with _one_blas_thread(settings):
            record = train_run(settings, datasets[settings["dataset"]], out, progress, config.engine)
        bar.close()
        _finished(record, result, overall, log)
        write_results(out, result.records)


def _run_stacked(todo, datasets, out, overall, result, log, config):
    groups = {}
    for settings in todo:   # the runs of one (dataset, architecture) differ only in lr and seed
        groups.setdefault((settings["dataset"], tuple(settings["hidden"])), []).append(settings)
    for (name, _), group in groups.items():
        bars = {settings_key(s): tqdm(total=s["epochs"], desc=_describe(s), unit="epoch", leave=False,
                                      disable=config.quiet, dynamic_ncols=True) for s in group}

        def progress(key, epoch, train_bce, val_bce, bars=bars):
            bars[key].update(1)
            bars[key].set_postfix(train=f"{train_bce:.4f}", val=f"{val_bce:.4f}")

        # One process trains the whole stack, so BLAS may use every core here.
        records = train_group(group, datasets[name], out, progress)
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
    names = {settings_key(s): _describe(s) for s in todo}
    epochs = {settings_key(s): s["epochs"] for s in todo}
    stop = threading.Event()

    def pump():   # draw the per-model bars from the workers' events
        while not stop.is_set():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            key = event[1]
            if event[0] == "start":
                bars[key] = tqdm(total=epochs[key], desc=names[key], unit="epoch", leave=False,
                                 disable=config.quiet, dynamic_ncols=True)
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
        pending = {pool.submit(_worker_run, s, str(out), config.engine)
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
    from minae import report

    if config.plots:
        from minae import plots  # matplotlib is only needed for the figures

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
