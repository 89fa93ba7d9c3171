"""Live training: ``fit`` in a background thread, each epoch an event for the page.

What it teaches: a training loop can report as it goes without knowing who
listens. ``fit`` calls ``on_epoch_end(epoch, history, model)`` on every
callback after each epoch; this one turns the epoch into an event (the
losses, minae.diagnostics' numbers, reconstructions of fixed images) that
the server streams to the page, and raises StopTraining when the page's
stop button asked for it. The model trains as the grid trains its runs:
Adam with the grid's settings, batches of the grid's size.
"""

from __future__ import annotations

import threading

import numpy as np

from minae._io import json_number
from minae.backend import one_blas_thread
from minae.explore.compute import data_url
from minae.figures import N_SHOW, tile
from minae.grid.config import GridConfig
from minae.model import Autoencoder
from minae.optim import Adam
from minae.train import StopTraining, fit

VAL_ROWS = 1000    # validation images each epoch is measured on


class LiveTraining:
    """One model trained on ``images`` (results.Images); start() runs it in a thread.

    events: what happened so far, in order: {"type": "epoch", ...} once per
    epoch, then one {"type": "done", "reason": ...}.
    """

    def __init__(self, images, hidden, lr, epochs):
        grid = GridConfig()
        self.dataset, self.hidden, self.lr, self.epochs = images.name, list(hidden), lr, epochs
        self.model = Autoencoder(images.x_train.shape[1], hidden, seed=grid.seed)
        self.optimizer = Adam(lr, grid.beta1, grid.beta2, grid.eps, grid.adam_form)
        self.batch_size = grid.batch_size
        self.x_train, self.x_val = images.x_train, images.x_val[:VAL_ROWS]
        self.x_shown = images.x_val[:N_SHOW]
        self.events = []
        self.changed = threading.Condition()
        self.stop_asked = threading.Event()
        self.thread = threading.Thread(target=self._run, name="minae-explore-training", daemon=True)

    @property
    def running(self):
        return self.thread.is_alive()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        """Ask training to end after the epoch in progress."""
        self.stop_asked.set()

    def _run(self):
        try:
            # One BLAS thread, as the grid trains each run: matrices this small train
            # faster so, and the other cores stay free to answer the page. A run that
            # diverges is reported as such; NumPy's overflow warnings would be noise.
            with one_blas_thread(), np.errstate(over="ignore", invalid="ignore"):
                history = fit(self.model, self.x_train, self.x_val, epochs=self.epochs,
                              batch_size=self.batch_size, optimizer=self.optimizer, progress=False,
                              callbacks=[self])
            reason = ("diverged" if history.diverged else
                      "stopped" if len(history.val_bce) < self.epochs else "finished")
        except Exception as exc:   # the page must hear of it; the server goes on
            reason = f"failed: {type(exc).__name__}: {exc}"
        self._add({"type": "done", "reason": reason})

    def on_epoch_end(self, epoch, history, model):
        shown = model.backend.to_host(model.predict(model.backend.asarray(self.x_shown, model.dtype)))
        diagnostics = history.diagnostics[-1]
        self._add({"type": "epoch", "epoch": epoch, "epochs": self.epochs,
                   "train_bce": json_number(history.train_bce[-1]),
                   "val_bce": json_number(history.val_bce[-1]),
                   "diagnostics": diagnostics,
                   "images": data_url(tile(np.concatenate([self.x_shown, shown]), columns=N_SHOW))})
        if self.stop_asked.is_set():
            raise StopTraining

    def _add(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def events_after(self, n, timeout):
        """The events after the first n, waiting up to ``timeout`` seconds for one."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.events) > n, timeout)
            return self.events[n:]
