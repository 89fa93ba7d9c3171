"""One run of the grid: train it, save it, and decide whether a saved one can be reused.

A finished run is written atomically to ``runs/<dataset>/<key>.json`` with
its checkpoint beside it (checkpoint first, record last, so a record's
presence means the run is complete). A record is reused only if it parses
with the right types and its checkpoint loads.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from minae import __version__
from minae._io import atomic_write_text
from minae.errors import CheckpointError
from minae.grid.config import settings_key
from minae.grid.probe import code_probe
from minae.grid.tensorboard_runs import log_to_tensorboard, tensorboard_callback
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import fit, train_step


def _new_model(settings, ds, optimizer_class=Adam):
    model = Autoencoder(ds.x_train.shape[1], settings["hidden"], seed=settings["seed"],
                        dtype=settings["dtype"], backend=settings["backend"])
    optimizer = optimizer_class(settings["lr"], settings["beta1"], settings["beta2"], settings["eps"],
                                settings["adam_form"])
    return model, optimizer


def train_run(settings, ds, out_dir, progress=None, engine="single", tensorboard=False, live=False):
    """Train one configuration on ``ds``; write its checkpoint and record.

    progress:    None or a callable(epoch, train_bce, val_bce) for live display.
    engine:      "single" or "fused" (see GridConfig).
    tensorboard: also write TensorBoard logs while it trains (minae.grid.tensorboard_runs).
    live:        show it in progress (minae.live).
    Returns the record (a JSON-ready dict).
    """
    callbacks = []
    if live:
        from minae.live import LiveView

        callbacks.append(LiveView(ds.x_val[:8]))
    if tensorboard:
        callbacks.append(tensorboard_callback(out_dir, settings, ds))
    model, record = train_and_describe(settings, ds, progress, engine, callbacks)
    return save_run(out_dir, settings, record, model)


def train_and_describe(settings, ds, progress=None, engine="single", callbacks=()):
    """Train one configuration; returns (model, record) and writes nothing (but
    what ``callbacks`` write), so a cluster worker can send both back to the grid
    that saves them."""
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
                      progress=False, on_epoch_end=on_epoch_end, step=step, callbacks=callbacks)
    return model, describe_run(settings, model, history, time.perf_counter() - start, ds, engine)


def train_group(group, ds, out_dir, progress=None, tensorboard=False):
    """Train runs that differ only in learning rate (and seed) as one stack.

    progress:    None or a callable(key, epoch, train_bce, val_bce).
    tensorboard: write each run's TensorBoard logs from its record afterwards.
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
    records = [save_run(out_dir, s, describe_run(s, m, h, seconds, ds, "stacked"), m)
               for s, m, h in zip(group, models, histories)]
    if tensorboard:
        for s, m, r in zip(group, models, records):
            log_to_tensorboard(out_dir, s, r, m, ds)
    return records


def describe_run(settings, model, history, seconds, ds, engine):
    """The record of a trained run: settings, losses, history, timings, the probe."""
    key = settings_key(settings)
    diverged = history.diverged

    def finite(v):
        return v if math.isfinite(v) else None

    return {
        **settings, "repeat": settings.get("repeat", 0), "key": key,
        "status": "diverged" if diverged else "ok",
        "diverged_epoch": history.diverged_epoch,
        "train_bce": None if diverged else history.train_bce[-1],
        "val_bce": None if diverged else history.val_bce[-1],
        "history": {"train_bce": [finite(v) for v in history.train_bce],
                    "val_bce": [finite(v) for v in history.val_bce],
                    "diagnostics": history.diagnostics},   # per epoch, minae.diagnostics
        "seconds": seconds, "epoch_seconds": history.epoch_seconds, "engine": engine,
        **(dict.fromkeys(("knn_accuracy", "output_spread", "dead_fraction")) if diverged
           else code_probe(model, ds, settings["seed"])),
        "checkpoint": f"runs/{settings['dataset']}/{key}.npz",
        "minae_version": __version__, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_run(out_dir, settings, record, model):
    """Write a run's checkpoint, then its record (atomically, last: its presence
    means the run is complete). Returns the record."""
    model.save(Path(out_dir) / record["checkpoint"], extra={"settings": settings, "key": record["key"]})
    atomic_write_text(Path(out_dir) / "runs" / record["dataset"] / f"{record['key']}.json",
                      json.dumps(record, indent=1))
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
