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
                layer's filters with dead units marked (minae.figures draws
                both), every ``images_every`` epochs and at the end
    hparams     at the end: the run's settings -> its final validation BCE, so
                TensorBoard's HParams tab lays out many runs as one table

The grid (``scripts/grid.py --tensorboard``) names and fills one such run per
grid run: minae.grid.tensorboard_runs.
"""

from __future__ import annotations

import math

from minae import figures


def open_writer(logdir):
    """A tensorboardX SummaryWriter for ``logdir``, or an ImportError saying what to install."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ImportError("TensorBoard logs are written with tensorboardX, which is not installed: "
                          "pip install 'minae[tensorboard]'") from exc
    return SummaryWriter(logdir=str(logdir))


class TensorBoard:
    """A fit callback writing the run's event files into ``logdir``.

    x_val:        (N, D) validation rows, NumPy or on the model's device, for
                  the images; the rows they use (figures.picture_rows) are
                  copied to the host once.
    hparams:      {name: str | float | int}, the run's settings for the HParams
                  tab; its "lr", if any, is also logged as a scalar.
    images_every: epochs between image summaries (and always at the end).
    """

    def __init__(self, logdir, x_val=None, hparams=None, images_every=5):
        self.writer = open_writer(logdir)
        self.x_val = figures.picture_rows(x_val)
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
            write_images(w, model, self.x_val, epoch)

    def close(self, history, model):
        """Images at the last epoch, the hparams summary, and the files flushed."""
        last = len(history.val_bce)
        if last and last % self.images_every:
            write_images(self.writer, model, self.x_val, last)
        if self.hparams:
            write_hparams(self.writer, self.hparams, history.val_bce[-1] if history.val_bce else math.nan)
        self.writer.close()


def write_images(writer, model, x_val, step):
    """Reconstructions of x_val's first N_SHOW rows (originals above, decoded below)
    and the first layer's filters, dead units marked; x_val: figures.picture_rows' rows or None."""
    host = model.backend.to_host
    dead = None
    if x_val is not None:
        shown = x_val[:figures.N_SHOW]
        recon = host(model.predict(model.backend.asarray(shown, model.dtype)))
        writer.add_image("reconstructions", figures.strip(shown, recon), step, dataformats="HW")
        dead = figures.dead_units(model, x_val)
    writer.add_image("first_layer_filters", figures.filters_image(host(model.params[0]), dead), step,
                     dataformats="HWC")


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
