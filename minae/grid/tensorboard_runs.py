"""The grid's TensorBoard logs: one TensorBoard run per grid run, named by its settings.

    <out>/tensorboard/mnist/128-64-32-64-128_lr0.001_s0

TensorBoard lists runs by folder, so the folder says what the run trained:
dataset, hidden layers, learning rate and s, the repeat of ``--seeds`` (0 for
the first). The run's key, the hash that names its record
``runs/<dataset>/<key>.json``, is kept beside the settings in the HParams
table (``key``).

A run trained by ``fit`` is logged as it trains (``tensorboard_callback``); a
run trained where no callback could write (a stack, a Dask worker) is logged
afterwards from its record and final model (``log_record``): the same
per-epoch scalars, and the final model's images, weight histograms and
hparams.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from minae.figures import picture_rows
from minae.grid.config import settings_key
from minae.tensorboard import TensorBoard, epoch_scalars, open_writer, write_hparams, write_images


def run_name(settings):
    """'mnist/128-64-32-64-128_lr0.001_s0' for a run's settings (or record).

    The learning rate is written as Python writes the float, so two different
    rates never share a name (0.1 and 0.1000001 would, at 6 digits).
    """
    hidden = "-".join(map(str, settings["hidden"]))
    return f"{settings['dataset']}/{hidden}_lr{float(settings['lr'])!r}_s{settings.get('repeat', 0)}"


def tensorboard_dir(out_dir, settings):
    """<out>/tensorboard/<run_name>: where one grid run's event files go."""
    return Path(out_dir) / "tensorboard" / run_name(settings)


def fresh_dir(path):
    """``path``, emptied: a retrained run's old event files would show twice."""
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def hparams_of(settings, key):
    """The settings TensorBoard's HParams tab compares, as plain values, and the run's key."""
    return {"dataset": settings["dataset"], "hidden": ",".join(map(str, settings["hidden"])),
            "lr": float(settings["lr"]), "seed": int(settings["seed"]),
            "repeat": int(settings.get("repeat", 0)), "key": key}


def tensorboard_callback(out_dir, settings, ds):
    """A fit callback logging the run with these settings, trained on ``ds``, into a fresh folder."""
    return TensorBoard(fresh_dir(tensorboard_dir(out_dir, settings)), x_val=ds.x_val,
                       hparams=hparams_of(settings, settings_key(settings)))


def log_record(logdir, record, model, x_val=None):
    """Event files for a run trained elsewhere, written from its record and final
    model: per-epoch scalars, then the final model's histograms, images and hparams.

    x_val: (N, D) validation rows for the images, as TensorBoard takes them.
    """
    writer = open_writer(logdir)
    history = record["history"]
    diagnostics = history.get("diagnostics") or [None] * len(history["val_bce"])
    for epoch, (tr, va, d) in enumerate(zip(history["train_bce"], history["val_bce"], diagnostics), start=1):
        epoch_scalars(writer, epoch, tr, va, d, record["lr"])
    last = len(history["val_bce"])
    host = model.backend.to_host
    for k, layer in enumerate(model.dense, start=1):
        writer.add_histogram(f"weights/layer_{k}", host(layer.W), last)
    write_images(writer, model, picture_rows(x_val), last)
    final = record["val_bce"] if record["val_bce"] is not None else math.nan
    write_hparams(writer, hparams_of(record, record["key"]), final)
    writer.close()


def log_to_tensorboard(out_dir, settings, record, model, ds):
    """Log a run trained where no callback could write (a stack, a Dask worker) into a fresh folder."""
    log_record(fresh_dir(tensorboard_dir(out_dir, settings)), record, model, ds.x_val)
