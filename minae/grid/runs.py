"""One run of the grid: check its data, train it, describe it in a record, save both.

Where a run lives (``run_paths``), relative to the grid's folder:

    runs/<dataset>/<key>.npz    its checkpoint, written first
    runs/<dataset>/<key>.json   its record, written last: its presence means
                                the run is complete (both writes are atomic)

What binds a result to what made it:

- its data: ``data_sha256`` in its settings is the digest of the arrays the
  grid read; where a run trains on arrays of its own (a worker process, a Dask
  task) their digest is computed there and must match (``check_data``): a run
  on other data is refused, never recorded;
- its checkpoint: it stores the run's settings and key, so that a saved run
  can be shown to be the record's before it is reused (minae.grid.reuse).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minae import __version__
from minae._io import atomic_write_text, json_number, timestamp
from minae.data.loading import content_digest
from minae.errors import DataError
from minae.grid.config import settings_key
from minae.grid.probe import code_probe
from minae.grid.tensorboard_runs import tensorboard_callback
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import fit, train_step

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

    return {
        **settings, "repeat": settings.get("repeat", 0), "key": key, "status": status,
        "diverged_epoch": None if history is None else history.diverged_epoch,
        "train_bce": history.train_bce[-1] if ok else None,
        "val_bce": history.val_bce[-1] if ok else None,
        "history": {"train_bce": [json_number(v) for v in history.train_bce] if history else [],
                    "val_bce": [json_number(v) for v in history.val_bce] if history else [],
                    "diagnostics": history.diagnostics if history else []},
        "seconds": seconds, "epoch_seconds": history.epoch_seconds if history else [], "engine": engine,
        "knn_accuracy": knn_accuracy if ok else None,
        "dead_fraction": last.get("dead_fraction", [None])[0], "output_spread": last.get("output_spread"),
        "checkpoint": None if status == "failed" else run_paths(settings["dataset"], key).checkpoint,
        "error": error, "minae_version": __version__, "finished_at": timestamp(),
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
