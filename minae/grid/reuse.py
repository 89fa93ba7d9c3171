"""Reusing a finished run: only when its files are shown to be that run's.

A grid run again in the same folder trains only what is missing. A saved run
counts as finished only if its record parses with the right types and its
checkpoint is bound to it (``load_checked``): the record names its own
checkpoint, runs/<dataset>/<key>.npz; the checkpoint holds the record's key
and data digest and finite weights; and, evaluated again on the validation
set, it gives the recorded validation BCE. Anything else (a copied or swapped
file, an edited record, NaN weights, a damaged file) is trained again, with
one line saying which file and why. Re-evaluating costs one validation pass
per reused run, a small part of an epoch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from minae import checkpoint
from minae._io import read_json
from minae.backend import one_blas_thread
from minae.data.registry import DATASETS
from minae.errors import CheckpointError
from minae.grid.config import settings_key
from minae.grid.runs import run_paths
from minae.model import Autoencoder
from minae.train import evaluate

# A reused checkpoint, evaluated again, must give its recorded validation BCE to
# this relative tolerance. On the machine and backend that trained it the two
# agree bit for bit; another BLAS or a GPU's exp and reductions move the float32
# sum by ~1e-7..1e-6. Any other model, even a neighbouring seed, differs by far more.
VAL_BCE_RTOL = 1e-5


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
    epochs, diverged_at = len(history["val_bce"]), record.get("diverged_epoch")
    if status == "ok":
        if diverged_at is not None or None in history["train_bce"] + history["val_bce"]:
            return "its status is 'ok', but it diverged (its history has a loss that is not finite)"
        for name in curves:
            if not _number(record.get(name)):
                return f"its {name} is {record.get(name)!r}, not a number"
            if record[name] != history[name][-1]:   # both are the last epoch's, written at once
                return f"its {name} {record[name]!r} is not its last epoch's {history[name][-1]!r}"
        if epochs != settings["epochs"]:
            return f"its history covers {epochs} of {settings['epochs']} epochs"
    elif not (isinstance(diverged_at, int) and 1 <= diverged_at == epochs == len(history["train_bce"])
              <= settings["epochs"] and None in (history["train_bce"][-1], history["val_bce"][-1])):
        # fit stops a run at the epoch whose loss is not finite: the history ends there, at a None
        return (f"its status is 'diverged' at epoch {diverged_at!r}, but its history of {epochs} epochs "
                "does not end in a loss that is not finite")
    if not _number(record.get("seconds")):
        return f"its seconds is {record.get('seconds')!r}, not a number"
    for name in ("knn_accuracy", "output_spread", "dead_fraction"):
        if not (record.get(name) is None or _number(record.get(name))):
            return f"its {name} is {record.get(name)!r}, not a number"
    return None


def load_checked(out_dir, record, x_val=None):
    """The trained model of a finished run, once its checkpoint is shown to be that run's.

    Checks, in order: the record names its own checkpoint (runs/<dataset>/<key>.npz);
    its metadata, read first, holds the record's key and data digest, and the
    record's layers and dtype (and its data's input width); the file loads
    (minae.checkpoint's checks; finite weights unless the run diverged); and, given x_val
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
    # What the file claims to be is checked before a weight is read: a few MB of
    # deflated zeros that claim a model of a million units cost gigabytes to read.
    meta = checkpoint.read_metadata(path)
    stored = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    if stored.get("key") != key:
        raise CheckpointError(f"{path} holds run {stored.get('key')!r}, not {key} (a checkpoint copied "
                              "or swapped from another run)")
    stored_digest = (stored.get("settings") or {}).get("data_sha256")
    if stored_digest != record.get("data_sha256"):
        raise CheckpointError(f"{path} was trained on data with digest {str(stored_digest)[:12]}, but its "
                              f"record says {str(record.get('data_sha256'))[:12]}")
    if meta["hidden"] != list(record.get("hidden", ())):
        raise CheckpointError(f"{path} has hidden layers {meta['hidden']}, not the record's "
                              f"{record.get('hidden')}")
    if meta["dtype"] != record.get("dtype"):
        raise CheckpointError(f"{path} holds {meta['dtype']} weights, not the record's {record.get('dtype')}")
    if x_val is not None and meta["input_dim"] != x_val.shape[-1]:
        raise CheckpointError(f"{path} is a model of {meta['input_dim']} inputs, but its data have "
                              f"{x_val.shape[-1]} per image")
    model = Autoencoder.load(path, finite=record.get("status") != "diverged")
    if x_val is not None and record.get("status") == "ok":
        with one_blas_thread():
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
        record = read_json(path)
    except (OSError, ValueError) as exc:
        log(f"note: {path} cannot be read ({exc}); training that run again")
        return None
    if not isinstance(record, dict) or {k: record.get(k) for k in settings} != settings:
        log(f"note: {path} does not hold the record of these settings; training that run again")
        return None
    problem = record_problem(record, settings)
    if problem is None:
        try:
            load_checked(out_dir, record, None if ds is None else ds.x_val)
        except (CheckpointError, OSError) as exc:
            problem = f"its checkpoint cannot be trusted ({exc})"
    if problem is not None:
        log(f"note: {path}: {problem}; training that run again")
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
            record = read_json(path)
            settings = {k: record.get(k) for k in names}
            if record.get("repeat"):   # as run_settings: only repeats after the first carry it
                settings["repeat"] = record["repeat"]
            settings = wanted.get(without_digest(settings))
        except (OSError, ValueError, AttributeError):   # not a record: not the grid's to judge
            continue
        if settings is not None and record.get("data_sha256") != settings["data_sha256"]:
            changed.setdefault(settings["dataset"], (record.get("data_sha256"), settings["data_sha256"], []))
            changed[settings["dataset"]][2].append(path.name)
    return [f"{name}: the data differ from those {len(runs)} finished run(s) in {out_dir} were trained on "
            f"(content digest {(old or 'not recorded')[:12]} then, {new[:12]} now); training them again"
            for name, (old, new, runs) in changed.items()]
