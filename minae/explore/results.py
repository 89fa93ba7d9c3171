"""A grid's results as the explorer reads them: the records, their models, their images.

What it teaches: a saved result is only as good as the checks made when it is
read back. ``load_model`` is the one door through which a checkpoint enters
the explorer; a model it refuses is shown in the page with the reason, never
used. ``load_images`` finds the very images the grid's runs were validated
on, and says so when it has to show others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minae._io import read_json
from minae.data import SampleDataWarning, load, load_sample
from minae.data.loading import SAMPLE
from minae.errors import CheckpointError, DataError
from minae.grid.cli import QUICK
from minae.grid.outputs import RESULTS_FILE
from minae.grid.reuse import load_checked

TRAIN_ROWS = 5000   # training images kept for live training (the bundled sample has 5,000)


def read_records(results_dir):
    """The run records of <results_dir>/results.json, as written by the grid."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: point the explorer at the --out folder of a grid, "
                                "or make one first: python scripts/grid.py --quick (its results land in "
                                f"{QUICK['out']}/, which the explorer finds by itself)")
    try:
        records = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as JSON ({exc}); run the grid again to rewrite it") from exc
    if not isinstance(records, list):
        raise ValueError(f"{path} does not hold a list of run records; is it a minae grid's results.json?")
    for i, r in enumerate(records):
        if not (isinstance(r, dict) and isinstance(r.get("key"), str) and isinstance(r.get("dataset"), str)
                and isinstance(r.get("hidden"), list) and isinstance(r.get("lr"), (int, float))):
            raise ValueError(f"{path}: run {i} lacks the key, dataset, hidden layers or learning rate "
                             "of a grid record; run the grid again to rewrite it")
    return records


def load_model(results_dir, record, x_val=None):
    """The trained model of one grid record, through the same checks as the grid's
    resume (minae.grid.reuse.load_checked: its own checkpoint, the record's key and
    data digest, finite weights, and, given x_val, the recorded validation BCE),
    or CheckpointError naming the file (as the record names it) and the reason."""
    name = record.get("checkpoint")
    try:
        return load_checked(results_dir, record, x_val)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{name}: no such file") from exc
    except CheckpointError as exc:   # named as the record names it: shorter, and the same on every machine
        path = str(Path(results_dir) / name) if isinstance(name, str) else None
        raise CheckpointError(str(exc).replace(path, name) if path else str(exc)) from exc


@dataclass
class Images:
    """The images of one dataset, for showing and for live training.

    x_val: (N_val, D), y_val: (N_val,) the validation images and labels
    x_train: (<= TRAIN_ROWS, D) training images for live training
    note: why these are not the images the grid validated on, or None
    """

    name: str
    classes: tuple
    x_val: np.ndarray
    y_val: np.ndarray
    x_train: np.ndarray
    note: str | None = None


def load_images(name, record, data_dir=None):
    """The images of dataset ``name`` that ``record``'s run used (same source,
    subsets and seed), or the bundled sample with a note saying why not."""
    kwargs = {"limit_train": record.get("limit_train"), "limit_val": record.get("limit_val"),
              "val_fraction": record.get("val_fraction"), "seed": record.get("grid_seed", 0)}
    note = None
    try:
        if record.get("data_source") == SAMPLE:
            ds = load_sample(name, **kwargs)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SampleDataWarning)   # said in the note below
                ds = load(name, data_dir, allow_download=False, **kwargs)
    except (DataError, ValueError, OSError) as exc:
        ds, note = load_sample(name), f"the grid's data could not be loaded ({exc})"
    if ds.digest != record.get("data_sha256"):
        note = note or ("these are not the images the grid's models were trained and validated on "
                        f"(found: the {ds.source} copy)")
        note += "; showing them anyway" + ("" if data_dir else ": pass --data-dir to name the grid's data")
    return Images(name, ds.classes, ds.x_val, ds.y_val, ds.x_train[:TRAIN_ROWS].copy(), note)
