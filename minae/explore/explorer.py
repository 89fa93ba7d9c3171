"""The explorer's state and its answers: every question the page can ask, in Python.

What it teaches: the page never computes; it asks. Each method here is one
question (what does every model make of this drawing? where do these images
land in a model's code space? what image does this point decode to?),
answered with minae.explore.compute and returned as JSON-ready values, with
pictures as PNG data URLs. The server (minae.explore.server) checks each
request's values and calls these methods; they check what only they can
know: that a dataset, a model, an image index exists.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from minae.diagnostics import DIAG_ROWS
from minae.errors import CheckpointError
from minae.explore import compute
from minae.explore.results import load_images, load_model, read_records
from minae.explore.training import LiveTraining
from minae.figures import tile
from minae.grid.config import ORIGINAL_HIDDEN, ORIGINAL_LRS
from minae.grid.plots import CODE_POINTS
from minae.grid.report import hidden_text
from minae.projection import Projection

N_CODES = CODE_POINTS   # validation images in a code-space plot, as in the grid's figure
PATH_STEPS = 8      # images on an interpolation path
LIVE_DEFAULTS = {"hidden": list(ORIGINAL_HIDDEN[0]), "lr": ORIGINAL_LRS[1], "epochs": 5}


class Unknown(LookupError):
    """The request names something the explorer does not have (answered 404)."""


class Busy(RuntimeError):
    """A training is already running (answered 409): one at a time."""


@dataclass
class Run:
    """One record of the grid and its model, or why the model was refused."""

    record: dict
    model: object = None
    problem: str | None = None
    space: tuple | None = None   # (Projection, points (N_CODES, 2)), computed when first asked

    def describe(self):
        r = self.record
        return {"id": r["key"], "hidden": r["hidden"], "lr": r["lr"], "repeat": r.get("repeat", 0),
                "status": r.get("status"), "val_bce": r.get("val_bce"), "problem": self.problem,
                "label": f"{hidden_text(r)} lr {r['lr']:g}",
                "code_layer": None if self.model is None else self.model.code_layer}


class Explorer:
    """A grid's results loaded for exploring: its models by id, its images by dataset."""

    def __init__(self, results_dir, data_dir=None):
        self.results_dir = results_dir
        records = read_records(results_dir)
        if not records:
            raise ValueError(f"{results_dir}/results.json holds no runs yet; let the grid finish a run first")
        self.runs, self.images = {}, {}
        for record in records:
            name = record["dataset"]
            if name not in self.images:
                self.images[name] = load_images(name, record, data_dir)
        for record in records:
            run = Run(record)
            images = self.images[record["dataset"]]
            try:   # re-evaluated on the grid's own validation images, when those are at hand
                run.model = load_model(results_dir, record, images.x_val if images.note is None else None)
            except CheckpointError as exc:
                run.problem = str(exc)
            self.runs[record["key"]] = run
        # NumPy releases the GIL, and a model's layers keep each forward pass's
        # arrays for backward: one request at a time computes with the grid's models.
        self.lock = threading.Lock()
        self.training = None

    # -- looking things up ------------------------------------------------------
    def dataset(self, name):
        if name not in self.images:
            raise Unknown(f"unknown dataset {name!r}; this grid has {', '.join(map(repr, self.images))}")
        return self.images[name]

    def run(self, model_id):
        """The Run of a model the page may compute with."""
        if model_id not in self.runs:
            raise Unknown(f"unknown model {model_id!r}; GET /api/state lists the models")
        run = self.runs[model_id]
        if run.model is None:
            raise Unknown(f"model {model_id!r} was refused: {run.problem}")
        return run

    def image(self, name, index):
        images = self.dataset(name)
        if not 0 <= index < len(images.x_val):
            raise Unknown(f"no validation image {index} in {name}: there are {len(images.x_val)}")
        return images.x_val[index]

    # -- the questions ------------------------------------------------------------
    def state(self):
        """Everything the page needs to lay itself out."""
        datasets = []
        for name, images in self.images.items():
            runs = [run for run in self.runs.values() if run.record["dataset"] == name]
            datasets.append({
                "name": name, "classes": list(images.classes), "n_val": len(images.x_val),
                "note": images.note, "models": [run.describe() for run in runs],
                "hidden": _unique(run.record["hidden"] for run in runs),
                "lrs": sorted(_unique(run.record["lr"] for run in runs), reverse=True)})
        training = self.training
        return {"results": str(self.results_dir), "datasets": datasets,
                "training": {"defaults": LIVE_DEFAULTS, "running": bool(training and training.running)}}

    def reconstruct(self, name, x):
        """x: (1, D) -> every model of ``name``: its reconstruction and its BCE on x."""
        self.dataset(name)
        start = time.perf_counter()
        answers = []
        with self.lock:
            for model_id, run in self.runs.items():
                if run.record["dataset"] == name and run.model is not None:
                    recon, bce = compute.reconstruct(run.model, x)
                    answers.append({"id": model_id, "image": compute.data_url(recon), "bce": bce})
        return {"models": answers, "server_ms": 1000 * (time.perf_counter() - start)}

    def example(self, name, label):
        """A random validation image of ``name`` (of class ``label`` unless None)."""
        images = self.dataset(name)
        rng = np.random.default_rng()   # a fresh pick each time the page asks
        choices = np.flatnonzero(images.y_val == label) if label is not None else np.arange(len(images.y_val))
        if len(choices) == 0:
            raise Unknown(f"{name} has no validation image of class {label}")
        index = int(rng.choice(choices))
        return {"index": index, "label": int(images.y_val[index]), "pixels": images.x_val[index].tolist()}

    def _space(self, run):
        if run.space is None:
            codes = compute.codes(run.model, self.images[run.record["dataset"]].x_val[:N_CODES])
            projection = Projection(codes)
            run.space = projection, projection.to_2d(codes)
        return run.space

    def code_space(self, model_id):
        """Where the first N_CODES validation images land on the PCA plane of their codes."""
        run = self.run(model_id)
        with self.lock:
            _, points = self._space(run)
        labels = self.images[run.record["dataset"]].y_val[:len(points)]
        return {"points": np.round(points, 4).tolist(), "labels": labels.tolist(),
                "code_width": run.model.hidden[run.model.code_layer - 1]}

    def point(self, model_id, index):
        """A validation image and its reconstruction by this model."""
        run = self.run(model_id)
        x = self.image(run.record["dataset"], index)
        with self.lock:
            recon, bce = compute.reconstruct(run.model, x[None])
        return {"index": index, "label": int(self.images[run.record["dataset"]].y_val[index]),
                "image": compute.data_url(x), "reconstruction": compute.data_url(recon), "bce": bce}

    def lift(self, model_id, point):
        """A point of the code plot (2,) -> the code it lifts to, decoded."""
        run = self.run(model_id)
        with self.lock:
            projection, _ = self._space(run)
            code = projection.to_code(np.asarray([point]))
            image = compute.decode(run.model, code)[0]
        return {"point": list(point), "image": compute.data_url(image),
                "negative": int(np.sum(code < 0)), "code_width": code.shape[1]}

    def interpolate(self, model_id, a, b):
        """Validation images a and b: the decoded path between their codes and the pixel blend."""
        run = self.run(model_id)
        name = run.record["dataset"]
        with self.lock:
            path, blend = compute.interpolate(run.model, self.image(name, a), self.image(name, b), PATH_STEPS)
        return {"path": compute.data_url(tile(path, columns=PATH_STEPS)),
                "blend": compute.data_url(tile(blend, columns=PATH_STEPS)), "steps": PATH_STEPS}

    def units(self, model_id, x):
        """x: (1, D) -> the first layer's filters, and each hidden layer's activations
        for x with its dead units (on the first DIAG_ROWS validation images)."""
        run = self.run(model_id)
        x_rows = self.images[run.record["dataset"]].x_val[:DIAG_ROWS]
        with self.lock:
            layers = compute.units(run.model, x, x_rows)
            picture = compute.filters(run.model, x_rows)
        return {"filters": compute.data_url(picture), "dead_rows": len(x_rows),
                "layers": [{"activations": np.round(layer["activations"], 5).tolist(),
                            "dead": layer["dead"].tolist()} for layer in layers]}

    # -- live training --------------------------------------------------------------
    def train(self, name, hidden, lr, epochs):
        """Start a LiveTraining on ``name``'s images, unless one is running."""
        images = self.dataset(name)
        with self.lock:   # two clicks at once start one training
            if self.training is not None and self.training.running:
                raise Busy("a training is already running: stop it first (one at a time)")
            self.training = LiveTraining(images, hidden, lr, epochs).start()
        return {"started": True, "dataset": name, "hidden": list(hidden), "lr": lr, "epochs": epochs}

    def stop(self):
        if self.training is None or not self.training.running:
            return {"stopping": False}
        self.training.stop()
        return {"stopping": True}


def _unique(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen
