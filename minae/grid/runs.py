"""One run of the grid: train it, describe it in a record, save both, and decide
whether a saved one can be reused.

Where a run lives (``run_paths``), relative to the grid's folder:

    runs/<dataset>/<key>.npz    its checkpoint, written first
    runs/<dataset>/<key>.json   its record, written last: its presence means
                                the run is complete (both writes are atomic)

What binds a result to what made it:

- its data: ``data_sha256`` in its settings is the digest of the arrays the
  grid read; where a run trains on arrays of its own (a worker process, a Dask
  task) their digest is computed there and must match (``check_data``): a run
  on other data is refused, never recorded;
- its checkpoint: it stores the run's settings and key; a saved run is
  reused only if the record names its own checkpoint, the checkpoint holds
  the record's key and data digest and finite weights, and it evaluates on
  the validation set to the recorded validation BCE (``load_checked``).
  Anything else is trained again, with one line saying why.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from minae import __version__
from minae._io import atomic_write_text
from minae.data.loading import content_digest
from minae.data.registry import DATASETS
from minae.errors import CheckpointError, DataError
from minae.grid.config import settings_key
from minae.grid.probe import code_probe
from minae.grid.tensorboard_runs import tensorboard_callback
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import evaluate, fit, train_step

# A reused checkpoint, evaluated again, must give its recorded validation BCE to
# this relative tolerance. On the machine and backend that trained it the two
# agree bit for bit; another BLAS or a GPU's exp and reductions move the float32
# sum by ~1e-7..1e-6. Any other model, even a neighbouring seed, differs by far more.
VAL_BCE_RTOL = 1e-5


# ---------------------------------------------------------------------------
# Records and paths
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPaths:
    record: str       # runs/<dataset>/<key>.json, relative to the grid's folder
    checkpoint: str   # runs/<dataset>/<key>.npz


def run_paths(dataset, key):
    return RunPaths(f"runs/{dataset}/{key}.json", f"runs/{dataset}/{key}.npz")


def make_record(settings, status, engine, history=None, seconds=None, knn_accuracy=None, error=None):
    """A run's record, the one place one is built. Its keys:

    every key of ``settings`` (minae.grid.config.run_settings), then
    repeat          which repeat of --seeds (0 for the first)
    key             the hash of the settings: the record's and checkpoint's name
    status          "ok", "diverged" (its loss became NaN or infinite), or
                    "failed" (its task failed; never reused, retried next time)
    diverged_epoch  the epoch it diverged at, or None
    train_bce, val_bce   the last epoch's losses (None unless ok)
    history         {"train_bce": [...], "val_bce": [...], "diagnostics": [...]},
                    one entry per epoch (minae.diagnostics; None for non-finite)
    seconds, epoch_seconds   wall time of the run, and of each epoch
    engine          how it was trained ("single", "stacked", "fused")
    knn_accuracy    k-NN accuracy of the class from the codes (minae.grid.probe)
    dead_fraction   first-layer units dead after the last epoch (diagnostics)
    output_spread   spread of the reconstructions after the last epoch (diagnostics)
    checkpoint      runs/<dataset>/<key>.npz (None for a failed run)
    error           why a failed run failed (None otherwise)
    minae_version, finished_at
    """
    key = settings_key(settings)
    ok = status == "ok"
    last = history.diagnostics[-1] if ok and history.diagnostics else {}

    def finite(values):   # JSON has no NaN
        return [v if math.isfinite(v) else None for v in values]

    return {
        **settings, "repeat": settings.get("repeat", 0), "key": key, "status": status,
        "diverged_epoch": None if history is None else history.diverged_epoch,
        "train_bce": history.train_bce[-1] if ok else None,
        "val_bce": history.val_bce[-1] if ok else None,
        "history": {"train_bce": finite(history.train_bce) if history else [],
                    "val_bce": finite(history.val_bce) if history else [],
                    "diagnostics": history.diagnostics if history else []},
        "seconds": seconds, "epoch_seconds": history.epoch_seconds if history else [], "engine": engine,
        "knn_accuracy": knn_accuracy if ok else None,
        "dead_fraction": last.get("dead_fraction", [None])[0], "output_spread": last.get("output_spread"),
        "checkpoint": None if status == "failed" else run_paths(settings["dataset"], key).checkpoint,
        "error": error, "minae_version": __version__, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def describe_run(settings, model, history, seconds, ds, engine):
    """The record of a trained run (``make_record``), with its k-NN probe."""
    status = "diverged" if history.diverged else "ok"
    knn = code_probe(model, ds, settings["seed"]) if status == "ok" else None
    return make_record(settings, status, engine, history, seconds, knn)


def save_run(out_dir, settings, record, model):
    """Write a run's checkpoint (holding its settings and key), then its record
    (atomically, last: its presence means the run is complete). Returns the record."""
    paths = run_paths(record["dataset"], record["key"])
    model.save(Path(out_dir) / paths.checkpoint, extra={"settings": settings, "key": record["key"]})
    atomic_write_text(Path(out_dir) / paths.record, json.dumps(record, indent=1))
    return record


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def arrays_digest(ds):
    """content_digest of the very arrays of ``ds``, pixels turned back into the
    bytes they were read as (x * 255 is exact for x = byte / 255): the digest a
    run checks where it trains, whatever carried the arrays there."""
    def as_bytes(x):
        side = math.isqrt(x.shape[1])
        with np.errstate(invalid="ignore"):   # NaN (never in real data) gives some byte: a mismatch
            return np.rint(x * 255).astype(np.uint8).reshape(len(x), side, side)

    return content_digest(as_bytes(ds.x_train), ds.y_train, as_bytes(ds.x_val), ds.y_val)


def check_data(ds, summary, digest=None):
    """Refuse to train on data whose digest is not the one the grid read: ``digest``
    (computed here, where the run trains), else ds.digest (computed when this
    process read the files). summary: the grid's DataSummary of that dataset.
    The error names the files whose content changed since the grid read them."""
    digest = ds.digest if digest is None else digest
    if digest == summary.digest:
        return
    read = dict(summary.files)
    changed = [path for path, sha in ds.files if read.get(path) not in (None, sha)]
    what = ", ".join(changed) if changed else f"the {summary.name} files in {summary.location}"
    raise DataError(f"{what} changed while the grid ran: runs would train on other data than the grid "
                    f"read (content digest {digest[:12]} here, {summary.digest[:12]} when the grid started). "
                    "Put the original files back, or start the grid again to train on the new ones")


class _Progress:
    """A fit callback passing each epoch's losses to ``report``: (epoch, train, val)
    for one model, (member, epoch, train, val) for each member of a stack."""

    def __init__(self, report):
        self.report = report

    def on_epoch_end(self, epoch, history, model):
        if isinstance(history, list):
            for k, h in enumerate(history):
                if len(h.val_bce) == epoch:   # still training
                    self.report(k, epoch, h.train_bce[-1], h.val_bce[-1])
        else:
            self.report(epoch, history.train_bce[-1], history.val_bce[-1])


def _new_model(settings, ds, optimizer_class=Adam):
    model = Autoencoder(ds.x_train.shape[1], settings["hidden"], seed=settings["seed"],
                        dtype=settings["dtype"], backend=settings["backend"])
    optimizer = optimizer_class(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"],
                                settings["adam_form"])
    return model, optimizer


def train_run(settings, ds, out_dir, progress=None, engine="single", tensorboard=False, live=False):
    """Train one configuration on ``ds``, write its checkpoint and record.

    progress:    None or a callable(epoch, train_bce, val_bce) for live display.
    engine:      "single" or "fused" (see GridConfig).
    tensorboard: also write TensorBoard logs while it trains (minae.grid.tensorboard_runs).
    live:        show it in progress (minae.live).
    Returns the record (a JSON-ready dict).
    """
    callbacks = []
    if live:
        from minae.live import LiveView

        callbacks.append(LiveView(ds.x_val))
    if tensorboard:
        callbacks.append(tensorboard_callback(out_dir, settings, ds))
    model, record = train_and_describe(settings, ds, progress, engine, callbacks)
    return save_run(out_dir, settings, record, model)


def train_and_describe(settings, ds, progress=None, engine="single", callbacks=()):
    """Train one configuration; returns (model, record) and writes nothing (but
    what ``callbacks`` write), so a cluster worker can send both back to the grid
    that saves them. The caller has checked the data (``check_data``)."""
    if engine == "fused":
        from minae import kernels

        model, optimizer = _new_model(settings, ds, kernels.FusedAdam)
        step = kernels.train_step
    else:
        model, optimizer = _new_model(settings, ds)
        step = train_step
    callbacks = [*callbacks, _Progress(progress)] if progress is not None else list(callbacks)
    start = time.perf_counter()
    # When a run diverges, fit detects and records it; NumPy's overflow warnings
    # would only be noise on the console.
    with np.errstate(over="ignore", invalid="ignore"):
        history = fit(model, ds.x_train, ds.x_val, epochs=settings["epochs"],
                      batch_size=settings["batch_size"], optimizer=optimizer, seed=settings["seed"],
                      progress=False, step=step, callbacks=callbacks)
    return model, describe_run(settings, model, history, time.perf_counter() - start, ds, engine)


def train_group(group, ds, out_dir, progress=None):
    """Train runs that differ only in learning rate (and seed) as one stack, and save each.

    progress: None or a callable(key, epoch, train_bce, val_bce).
    Returns (records, models); each run's seconds are the whole group's.
    """
    from minae.sweep import fit_stacked

    models, optimizers = zip(*(_new_model(s, ds) for s in group))
    keys = [settings_key(s) for s in group]
    callbacks = [] if progress is None else [_Progress(lambda k, *losses: progress(keys[k], *losses))]
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        histories = fit_stacked(list(models), list(optimizers), ds.x_train, ds.x_val,
                                epochs=group[0]["epochs"], batch_size=group[0]["batch_size"],
                                seeds=[s["seed"] for s in group], callbacks=callbacks)
    seconds = time.perf_counter() - start
    records = [save_run(out_dir, s, describe_run(s, m, h, seconds, ds, "stacked"), m)
               for s, m, h in zip(group, models, histories)]
    return records, models


# ---------------------------------------------------------------------------
# Reuse
# ---------------------------------------------------------------------------

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
    if not all(v is None or _number(v) for k in curves for v in history[k]):
        return "its history holds something other than numbers"
    if status == "ok":
        for name in curves:
            if not _number(record.get(name)):
                return f"its {name} is {record.get(name)!r}, not a number"
        if len(history["val_bce"]) != settings["epochs"]:
            return f"its history covers {len(history['val_bce'])} of {settings['epochs']} epochs"
    if not _number(record.get("seconds")):
        return f"its seconds is {record.get('seconds')!r}, not a number"
    for name in ("knn_accuracy", "output_spread", "dead_fraction"):
        if not (record.get(name) is None or _number(record.get(name))):
            return f"its {name} is {record.get(name)!r}, not a number"
    return None


def load_checked(out_dir, record, x_val=None):
    """The trained model of a finished run, once its checkpoint is shown to be that run's.

    Checks, in order: the record names its own checkpoint (runs/<dataset>/<key>.npz);
    the file loads (minae.checkpoint's checks; finite weights unless the run
    diverged); it stores the record's key and data digest; and, given x_val
    (the run's validation rows) for a run that finished ok, it evaluates to the
    record's val_bce within VAL_BCE_RTOL (one BLAS thread, as the grid trains).
    Raises CheckpointError naming the file and the first check that failed.
    """
    key, dataset = record.get("key"), record.get("dataset")
    # A key is 16 hex digits and a dataset one minae knows: no path can hide in either.
    if not (isinstance(key, str) and re.fullmatch("[0-9a-f]{16}", key) and dataset in DATASETS):
        raise CheckpointError(f"the record names no run of this grid (key {key!r}, dataset {dataset!r})")
    own = run_paths(dataset, key).checkpoint
    if record.get("checkpoint") is None:
        error = f": {record['error']}" if record.get("error") else ""
        raise CheckpointError(f"run {key} has no checkpoint (its status is {record.get('status')!r}{error})")
    if record.get("checkpoint") != own:
        raise CheckpointError(f"the record of run {key} names the checkpoint {record.get('checkpoint')!r}, "
                              f"not its own {own}")
    path = Path(out_dir) / own
    model = Autoencoder.load(path, finite=record.get("status") != "diverged")
    stored = model.extra if isinstance(model.extra, dict) else {}
    if stored.get("key") != key:
        raise CheckpointError(f"{path} holds run {stored.get('key')!r}, not {key} (a checkpoint copied "
                              "or swapped from another run)")
    stored_digest = (stored.get("settings") or {}).get("data_sha256")
    if stored_digest != record.get("data_sha256"):
        raise CheckpointError(f"{path} was trained on data with digest {str(stored_digest)[:12]}, but its "
                              f"record says {str(record.get('data_sha256'))[:12]}")
    if model.hidden != list(record.get("hidden", ())):
        raise CheckpointError(f"{path} has hidden layers {model.hidden}, not the record's "
                              f"{record.get('hidden')}")
    if x_val is not None and record.get("status") == "ok":
        with threadpool_limits(1):
            measured = evaluate(model, x_val)
        recorded = record.get("val_bce")
        if not (_number(recorded) and math.isclose(measured, recorded, rel_tol=VAL_BCE_RTOL)):
            raise CheckpointError(f"{path} evaluates to validation BCE {measured:.6g}, but its record says "
                                  f"{recorded!r}: the weights or the record were changed")
    return model


def load_finished(out_dir, settings, ds=None, log=print):
    """The saved record for these exact settings, or None (never a partial one).

    A record that exists but cannot be trusted (unreadable, wrong types, a
    checkpoint that is not its own, changed weights; see ``load_checked``, which
    re-evaluates it on ds.x_val when ds is given) is reported through ``log``
    and its run is trained again.
    """
    path = Path(out_dir) / run_paths(settings["dataset"], settings_key(settings)).record
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
            load_checked(out_dir, record, None if ds is None else ds.x_val)
        except (CheckpointError, OSError) as exc:
            problem = f"its checkpoint cannot be trusted ({exc})"
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
    names = {k for s in todo for k in s} - {"repeat"}
    changed = {}
    for path in Path(out_dir).glob("runs/*/*.json"):
        try:
            record = json.loads(path.read_text())
            settings = {k: record.get(k) for k in names}
            if record.get("repeat"):   # as run_settings: only repeats after the first carry it
                settings["repeat"] = record["repeat"]
            settings = wanted.get(without_digest(settings))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            continue
        if settings is not None and record.get("data_sha256") != settings["data_sha256"]:
            changed.setdefault(settings["dataset"], (record.get("data_sha256"), settings["data_sha256"], []))
            changed[settings["dataset"]][2].append(path.name)
    return [f"{name}: the data differ from those {len(runs)} finished run(s) in {out_dir} were trained on "
            f"(content digest {(old or 'not recorded')[:12]} then, {new[:12]} now); training them again"
            for name, (old, new, runs) in changed.items()]
