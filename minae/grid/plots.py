"""Figures of a grid: rankings, learning curves, reconstructions, codes, filters.

Uses matplotlib's object API (``Figure``), not pyplot, so it needs no display
and touches no global state; each figure is written atomically as a PNG.
Every title names the dataset (when one is given) and the model a figure
shows, so a figure keeps its meaning when it travels on its own. Images,
filters and loss curves are drawn by minae.figures, as in the live view and
TensorBoard.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from minae import figures
from minae._io import atomic_write_bytes
from minae.diagnostics import DIAG_ROWS
from minae.grid.report import collapsed, config_label, configurations, hidden_text, ranking_rows
from minae.model import Autoencoder
from minae.projection import Projection


def save(fig, path, title, dataset=None):
    """Write ``fig`` as a PNG at ``path``, titled "<dataset> - <title>"; returns its file name."""
    fig.suptitle(" - ".join(t for t in (dataset, title) if t), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path).name


def _label(model, label):
    """A model figure's name for its model: the label given, else its hidden layers."""
    return label or figures.model_name(model)


TITLE_INCHES = 0.4   # the band above a picture that holds its title


def image_axes(image, pixels_per_inch=32):
    """A figure sized to ``image`` (rows, cols[, 3]) and one axes filling it but
    for a band at the top for the title: no blank space opens around the picture."""
    height = image.shape[0] / pixels_per_inch
    fig = Figure(figsize=(image.shape[1] / pixels_per_inch, height + TITLE_INCHES))
    return fig, fig.add_axes((0, 0, 1, height / (height + TITLE_INCHES)))


def rectangle(n):
    """(rows, cols) with rows * cols == n and rows as close to sqrt(n) as possible."""
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    return rows, n // rows


def plot_ranking(rows, baseline, path, dataset=None, collapsed_labels=()):
    """One point per configuration (ranking_rows), best at the top: the mean
    validation BCE over its seeds, with the 95% confidence interval of the mean.

    The axis spans the data and the mean-image baseline, not 0: bars from 0
    would make 0.273 and 0.297 look alike. collapsed_labels: config_label()s
    of configurations that collapsed to a constant output, drawn as red
    crosses (a collapsed run sits at the baseline, however good a bar looks).
    Configurations with no value (every seed diverged or failed) say so in
    the value column on the right.
    """
    fig = Figure(figsize=(7, 0.32 * len(rows) + 1.6))
    ax = fig.subplots()
    labels = [config_label(r["hidden"], r["lr"]) for r in rows]
    ys = np.arange(len(rows))
    scored = [i for i, r in enumerate(rows) if r["val_bce_mean"] is not None]
    for i in scored:
        r, bad = rows[i], labels[i] in collapsed_labels
        err = None if r["ci95_low"] is None else [[r["val_bce_mean"] - r["ci95_low"]],
                                                  [r["ci95_high"] - r["val_bce_mean"]]]
        ax.errorbar(r["val_bce_mean"], i, xerr=err, capsize=3, ms=8 if bad else 6,
                    fmt="X" if bad else "o", color="C3" if bad else "C0")
    for i, r in enumerate(rows):   # the values as a column right of the axes, clear of every point
        text = (f"{r['val_bce_mean']:.4f}" + (" collapsed" if labels[i] in collapsed_labels else "")
                if r["val_bce_mean"] is not None else r["status"])
        ax.annotate(text, (1.02, i), xycoords=("axes fraction", "data"), va="center", fontsize=8,
                    color="C3" if labels[i] in collapsed_labels else "k" if i in scored else "0.4")
    n_seeds = max(r["n_seeds"] for r in rows)
    seeds = f" ({n_seeds} seeds)" if n_seeds > 1 else ""
    ax.set_yticks(ys, [label + seeds for label in labels], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)   # rank 1 at the top
    ax.grid(axis="x", color="0.9")
    values = [v for i in scored for v in (rows[i]["val_bce_mean"], rows[i]["ci95_low"], rows[i]["ci95_high"])
              if v is not None] + ([baseline] if baseline is not None else [])
    if values:
        low, high = min(values), max(values)
        pad = 0.06 * (high - low) or 0.01 * high or 0.01
        ax.set_xlim(low - pad, high + pad)
    mean = "mean validation BCE" + (", 95% CI" if seeds else "")
    handles = [ax.plot([], [], "o", color="C0", label=mean)[0]]
    if any(label in collapsed_labels for label in labels):
        handles.append(ax.plot([], [], "X", color="C3", ms=8, label="collapsed: one constant output")[0])
    if baseline is not None:
        handles.append(ax.axvline(baseline, ls="--", color="k", lw=1,
                                  label=f"mean-image baseline {baseline:.4f}"))
    # Above the axes, never over a point.
    ax.legend(handles=handles, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles),
              frameon=False, handletextpad=0.3, columnspacing=1.2)
    ax.set_xlabel("validation BCE (lower is better; the axis does not start at 0)")
    return save(fig, path, "ranking by validation BCE", dataset)


def _curve(histories, name):
    """The mean of one loss curve over seeds, and its lowest and highest seed; NaN where none ran."""
    length = max(len(h[name]) for h in histories)
    table = np.full((len(histories), length), np.nan)
    for i, h in enumerate(histories):
        table[i, :len(h[name])] = [np.nan if v is None else v for v in h[name]]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an epoch no seed finished is NaN, as meant
        return np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def plot_curves(records, path, dataset=None):
    """Per architecture, each learning rate's mean curve over its seeds, with
    the band from the lowest to the highest seed; collapsed ones say so."""
    archs = list(dict.fromkeys(hidden_text(r) for r in records))
    fig = Figure(figsize=(4.5 * len(archs), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(archs), sharey=True))
    banded, curves = False, []
    for ax, arch in zip(axes, archs):
        for i, lr in enumerate(dict.fromkeys(r["lr"] for r in records if hidden_text(r) == arch)):
            runs = [r for r in records if hidden_text(r) == arch and r["lr"] == lr]
            histories = [r["history"] for r in runs]
            seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
            (train, _, _), (val, low, high) = _curve(histories, "train_bce"), _curve(histories, "val_bce")
            flat = " collapsed" if collapsed(runs) else ""
            figures.draw_losses(ax, train, val, f"C{i}", f"lr={lr:g}{seeds}{flat}")
            if len(runs) > 1:
                ax.fill_between(np.arange(1, len(val) + 1), low, high, color=f"C{i}", alpha=0.2, lw=0)
                banded = True
            curves += [c for h in histories for c in (h["train_bce"], h["val_bce"])]
        ax.set_title(arch, fontsize=9)
        ax.set_xlabel("epoch")
        figures.draw_loss_legend(ax)
    figures.set_loss_range(axes[0], curves)   # shared by every panel
    axes[0].set_ylabel("BCE")
    band = "; band: lowest to highest seed" if banded else ""
    return save(fig, path, f"learning curves (y-range from epoch 2 on; epoch 1 may lie above{band})", dataset)


def plot_reconstructions(model, x, path, dataset=None, label=None):
    """x: (n, D) images in a row, their reconstructions by ``model`` below.
    label: the model's name in the title (default: its hidden layers)."""
    rows = [x, model.backend.to_host(model.predict(x))]
    fig, ax = image_axes(figures.strip(*rows))
    figures.draw_strip(ax, rows, ["original", "decoded"])
    return save(fig, path, f"{_label(model, label)}: validation images and their reconstructions", dataset)


def plot_reconstruction_grid(models, x, path, dataset=None):
    """x: (n, D) images in the top row; below, one row per (name, model) in ``models``."""
    rows = [x] + [m.backend.to_host(m.predict(x)) for _, m in models]
    fig, ax = image_axes(figures.strip(*rows))
    figures.draw_strip(ax, rows, ["original"] + [name for name, _ in models])
    return save(fig, path, "validation images decoded by every configuration, best first", dataset)


def plot_first_layer_codes(model, x, path, dataset=None, label=None):
    """x: (n, D) images, and under each its first encoding layer's (H1,) outputs
    reshaped to the squarest rectangle (as the original notebooks showed them).
    label: the model's name in the title (default: its hidden layers)."""
    codes = model.backend.to_host(model.encode(x, layer=1))
    rows, cols = rectangle(codes.shape[1])
    fig = Figure(figsize=(1.2 * len(x), 1.2 * (1 + rows / cols) + 0.4))
    axes = fig.subplots(2, len(x), height_ratios=(1, rows / cols),
                        gridspec_kw={"top": 0.95, "bottom": 0.02, "left": 0.02, "right": 0.98})
    for j in range(len(x)):
        axes[0, j].imshow(x[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(codes[j].reshape(rows, cols), cmap="viridis")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_title(f"layer 1: {codes.shape[1]} units as {rows}x{cols}", fontsize=7, loc="left")
    return save(fig, path, f"{_label(model, label)}: codes of the first encoding layer", dataset)


def plot_filters(model, path, dataset=None, label=None, x=None):
    """The first layer's filters: W1 (D, H1), one 28x28 tile per unit, red + and blue -.
    x: (N, D) validation rows; units not positive for any of them are marked dead.
    label: the model's name in the title (default: its hidden layers)."""
    W = model.backend.to_host(model.params[0])        # (D, H1)
    dead = None if x is None else figures.dead_units(model, x)
    fig, ax = image_axes(figures.filters_image(W), pixels_per_inch=48)
    figures.draw_filters(ax, W, dead)
    return save(fig, path, f"{_label(model, label)}: first-layer filters", dataset)


def plot_codes_2d(models, x, y, path, classes=None, dataset=None):
    """Bottleneck codes of x projected to 2-D (PCA), coloured by class y;
    models: (name, model, k-NN accuracy or None); classes: the class names
    (e.g. Fashion-MNIST's), else the label numbers."""
    cols = min(3, len(models))
    rows = int(math.ceil(len(models) / cols))
    fig = Figure(figsize=(3.6 * cols, 3.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, model, acc) in zip(axes, models):
        codes = model.backend.to_host(model.encode(x, layer=model.code_layer))
        xy = Projection(codes).to_2d(codes)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        acc_text = "" if acc is None else f"\nk-NN acc {acc:.3f}"
        ax.set_title(f"{name}{acc_text}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(models):]:
        ax.set_axis_off()
    bar = fig.colorbar(sc, ax=list(axes[:len(models)]), ticks=range(10), shrink=0.6, label="class")
    if classes is not None:
        bar.ax.set_yticklabels(classes, fontsize=7)
    return save(fig, path, "bottleneck codes in 2-D (PCA), coloured by class", dataset)


CODE_POINTS = 2000   # validation images in the code figure


def plot_dataset(out, dataset, records, ds, baseline):
    """Every figure for one dataset under out/plots/<dataset>/.

    Returns [(file name, caption)] in the order a report shows them. With
    several seeds per configuration, the model figures show each
    configuration's first seed that did not diverge.
    """
    folder = Path(out) / "plots" / dataset
    rows = ranking_rows(records, {dataset: baseline})
    groups = configurations(records)
    flat = {config_label(row["hidden"], row["lr"]) for row in rows
            if collapsed(groups[(dataset, row["hidden"], row["lr"])])}
    x_show = ds.x_val[:figures.N_SHOW]
    drawn = [
        (plot_ranking(rows, baseline, folder / "ranking.png", dataset, flat),
         "Validation BCE of every configuration, best first, against the mean-image baseline (dashed); "
         "red crosses mark configurations that collapsed to one constant output."),
        (plot_curves(records, folder / "curves.png", dataset),
         "Validation (solid) and training (dashed) BCE per epoch, one panel per architecture."),
    ]
    shown = []   # (label, record, k-NN accuracy) per configuration in rank order, its first ok seed
    for row in rows:
        ok = [r for r in groups[(dataset, row["hidden"], row["lr"])] if r["status"] == "ok"]
        if ok:
            label = config_label(row["hidden"], row["lr"])
            shown.append((label + (" (collapsed)" if label in flat else ""), ok[0], row["knn_accuracy"]))
    if not shown:
        return drawn
    models = {r["key"]: Autoencoder.load(Path(out) / r["checkpoint"]) for _, r, _ in shown}
    best_label, best_record, _ = shown[0]
    best, best_label = models[best_record["key"]], f"best run, {best_label}"
    pick = np.random.default_rng(0).choice(len(ds.x_val), size=min(CODE_POINTS, len(ds.x_val)), replace=False)
    return drawn + [
        (plot_reconstructions(best, x_show, folder / "reconstructions_best.png", dataset, best_label),
         f"Validation images (top) and their reconstructions by the best run, {shown[0][0]} (bottom)."),
        (plot_reconstruction_grid([(name, models[r["key"]]) for name, r, _ in shown], x_show,
                                  folder / "reconstructions_grid.png", dataset),
         "The same validation images reconstructed by every configuration, best first."),
        (plot_first_layer_codes(best, ds.x_val[:6], folder / "first_layer_codes.png", dataset, best_label),
         f"The best run's ({shown[0][0]}) first encoding layer for a few images, reshaped to a rectangle "
         "(as in the original notebooks)."),
        (plot_filters(best, folder / "first_layer_filters.png", dataset, best_label,
                      figures.picture_rows(ds.x_val)),
         f"The best run's ({shown[0][0]}) first-layer weights, one 28x28 filter per unit; grey framed "
         f"filters belong to dead units (not positive for any of the first {DIAG_ROWS} validation "
         "images, so those images give them no gradient)."),
        (plot_codes_2d([(name, models[r["key"]], acc) for name, r, acc in shown], ds.x_val[pick],
                       ds.y_val[pick], folder / "codes_2d.png", classes=ds.classes, dataset=dataset),
         "Bottleneck codes of validation images projected to 2-D (PCA), coloured by class; titles give "
         "the k-NN accuracy on the codes."),
    ]
