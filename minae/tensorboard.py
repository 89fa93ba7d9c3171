"""TensorBoard logs: watch training in the tool people already use.

    pip install -e ".[tensorboard]"
    tensorboard --logdir results/tensorboard

``TensorBoard(logdir)`` is a ``fit`` callback (``callbacks=[...]``) that
writes standard event files with tensorboardX's SummaryWriter, each epoch:

    scalars     BCE/train and BCE/validation (the numbers fit records), lr,
                and from minae.diagnostics per layer: grad_norm/layer_k,
                update_ratio/layer_k, dead_fraction/relu_k, output_spread
    histograms  weights/layer_k and gradients/layer_k (of the epoch's last step)
    images      reconstructions of fixed validation images and the first
                layer's filters, every ``images_every`` epochs and at the end
    hparams     at the end: the run's settings -> its final validation BCE, so
                TensorBoard's HParams tab lays out a whole grid as a table

``scripts/grid.py --tensorboard`` gives every run one, under
``<out>/tensorboard/<dataset>/<run key>/``.
"""

from __future__ import annotations

import math

import numpy as np

from minae.figures import filters_image, tile


def _writer(logdir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ImportError("TensorBoard logs are written with tensorboardX, which is not installed: "
                          "pip install 'minae[tensorboard]'") from exc
    return SummaryWriter(logdir=str(logdir))


class TensorBoard:
    """A fit callback writing the run's event files into ``logdir``.

    x_show:       (n, D) validation images whose reconstructions are shown.
    hparams:      {name: str | float | int}, the run's settings for the HParams tab.
    images_every: epochs between image summaries (and always at the end).
    """

    def __init__(self, logdir, x_show=None, hparams=None, images_every=5):
        self.writer = _writer(logdir)
        self.x_show = None if x_show is None else np.asarray(x_show)[:16]
        self.hparams = dict(hparams or {})
        self.images_every = images_every

    def on_epoch_end(self, epoch, history, model):
        w = self.writer
        epoch_scalars(w, epoch, history.train_bce[-1], history.val_bce[-1],
                      history.diagnostics[-1] if history.diagnostics else None, self.hparams.get("lr"))
        host = model.backend.to_host
        for k, layer in enumerate(model.dense, start=1):
            w.add_histogram(f"weights/layer_{k}", host(layer.W), epoch)
            w.add_histogram(f"gradients/layer_{k}", host(layer.dW), epoch)
        if epoch % self.images_every == 0:
            write_images(w, model, self.x_show, epoch)

    def close(self, history, model):
        """Images at the last epoch, the hparams summary, and the files flushed."""
        last = len(history.val_bce)
        if last and last % self.images_every:
            write_images(self.writer, model, self.x_show, last)
        if self.hparams:
            write_hparams(self.writer, self.hparams, history.val_bce[-1] if history.val_bce else math.nan)
        self.writer.close()


def write_images(writer, model, x_show, step):
    """Reconstructions of x_show (top: originals, bottom: decoded) and the first layer's filters."""
    host = model.backend.to_host
    if x_show is not None:
        recon = host(model.predict(model.backend.asarray(x_show, model.dtype)))
        both = np.concatenate([tile(x_show, columns=len(x_show)), tile(recon, columns=len(recon))])
        writer.add_image("reconstructions", both, step, dataformats="HW")
    writer.add_image("first_layer_filters", filters_image(host(model.params[0])), step, dataformats="HW")


def _scalar(writer, tag, value, step):
    if value is not None:   # diagnostics hold None where a value was not finite
        writer.add_scalar(tag, value, step)


def epoch_scalars(writer, epoch, train_bce, val_bce, diagnostics=None, lr=None):
    """One epoch's scalars: the two losses, the learning rate, minae.diagnostics' numbers."""
    _scalar(writer, "BCE/train", train_bce, epoch)
    _scalar(writer, "BCE/validation", val_bce, epoch)
    _scalar(writer, "lr", lr, epoch)
    if diagnostics:
        for k, (g, u) in enumerate(zip(diagnostics["grad_norm"], diagnostics["update_ratio"]), start=1):
            _scalar(writer, f"grad_norm/layer_{k}", g, epoch)
            _scalar(writer, f"update_ratio/layer_{k}", u, epoch)
        for k, dead in enumerate(diagnostics["dead_fraction"], start=1):
            _scalar(writer, f"dead_fraction/relu_{k}", dead, epoch)
        _scalar(writer, "output_spread", diagnostics["output_spread"], epoch)


def write_hparams(writer, hparams, val_bce):
    """The HParams plugin's three summaries in this run's own event file, and its metric."""
    from tensorboardX.summary import hparams as hparams_summaries

    metric = {"hparam/final_val_bce": val_bce if math.isfinite(val_bce) else float("nan")}
    for summary in hparams_summaries(hparams, metric):
        writer.file_writer.add_summary(summary)
    writer.add_scalar("hparam/final_val_bce", metric["hparam/final_val_bce"])


def log_record(logdir, record, model, x_show=None):
    """Event files for a run trained elsewhere (a stack, a Dask worker), written
    from its record: the same per-epoch scalars, and images, histograms and
    hparams of the final model."""
    writer = _writer(logdir)
    history = record["history"]
    diagnostics = history.get("diagnostics") or [None] * len(history["val_bce"])
    for epoch, (tr, va, d) in enumerate(zip(history["train_bce"], history["val_bce"], diagnostics), start=1):
        epoch_scalars(writer, epoch, tr, va, d, record["lr"])
    last = len(history["val_bce"])
    host = model.backend.to_host
    for k, layer in enumerate(model.dense, start=1):
        writer.add_histogram(f"weights/layer_{k}", host(layer.W), last)
    write_images(writer, model, None if x_show is None else np.asarray(x_show)[:16], last)
    final = record["val_bce"] if record["val_bce"] is not None else math.nan
    write_hparams(writer, hparams_of(record), final)
    writer.close()


def hparams_of(settings):
    """The settings TensorBoard's HParams tab compares, as plain values."""
    return {"dataset": settings["dataset"], "hidden": ",".join(map(str, settings["hidden"])),
            "lr": float(settings["lr"]), "seed": int(settings["seed"]),
            "repeat": int(settings.get("repeat", 0))}
