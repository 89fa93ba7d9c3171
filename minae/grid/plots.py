"""Figures of a grid: rankings, learning curves, reconstructions, codes, filters.

Uses matplotlib's object API (``Figure``), not pyplot, so it needs no display
and touches no global state; each figure is written atomically as a PNG.
Every figure's title names its dataset when one is given, so a figure keeps
its meaning when it travels on its own.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from minae._io import atomic_write_bytes
from minae.grid.report import configurations, hidden_text, ranking_rows
from minae.model import Autoencoder

N_SHOW = 8   # validation images shown in reconstruction figures


def save(fig, path, title=None, dataset=None):
    """Write ``fig`` as a PNG at ``path``; the title says which dataset it shows."""
    if title or dataset:
        fig.suptitle(" - ".join(t for t in (dataset, title) if t), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path).name


def _image(ax, pixels, title=None):
    side = int(math.isqrt(pixels.size))
    ax.imshow(pixels.reshape(side, side), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def rectangle(n):
    """(rows, cols) with rows * cols == n and rows as close to sqrt(n) as possible."""
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    return rows, n // rows


def pca_2d(codes):
    """(N, Z) -> (N, 2): projection on the two leading principal components."""
    centred = codes - codes.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:2].T
    return np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))   # a 1-D code gets a zero y


def plot_ranking(rows, baseline, path, dataset=None):
    """One bar per configuration (ranking_rows): the mean validation BCE over its
    seeds, with the 95% confidence interval of the mean as an error bar."""
    fig = Figure(figsize=(7, 0.4 * len(rows) + 1.2))
    ax = fig.subplots()
    vals = [r["val_bce_mean"] or 0.0 for r in rows]
    errors = np.array([[0.0, 0.0] if r["ci95_low"] is None
                       else [r["val_bce_mean"] - r["ci95_low"], r["ci95_high"] - r["val_bce_mean"]]
                       for r in rows]).T
    colours = ["C0" if r["status"] == "ok" else "C1" if r["val_bce_mean"] is not None else "C3" for r in rows]
    ax.barh(range(len(rows)), vals, xerr=errors if errors.any() else None, capsize=3, color=colours)
    for i, r in enumerate(rows):
        text = r["status"] if r["val_bce_mean"] is None else f"{r['val_bce_mean']:.4f}"
        ax.text(max(vals[i], r["ci95_high"] or 0.0), i, " " + text, va="center", fontsize=8)
    seeds = "" if max(r["n_seeds"] for r in rows) < 2 else f" ({max(r['n_seeds'] for r in rows)} seeds)"
    ax.set_yticks(range(len(rows)), [f"{r['hidden']} lr={r['lr']:g}{seeds}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    if baseline is not None:
        ax.axvline(baseline, ls="--", color="k", lw=1, label=f"mean image {baseline:.4f}")
        # Beside the axes, never over a bar.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlim(0, 1.2 * max([*vals, baseline or 0.0]) or 1.0)   # room for the value labels
    ax.set_xlabel("validation BCE, mean over seeds with 95% CI (lower is better)" if seeds
                  else "validation BCE (lower is better)")
    return save(fig, path, "ranking by validation BCE", dataset)


def curve_top(histories):
    """Upper y-limit for learning curves: the highest loss after the first epoch.

    The first epoch's loss is often far above the rest (the model starts from
    random weights); letting it set the range would flatten every curve that
    matters. With one epoch only, that epoch sets it.
    """
    later = [v for h in histories for k in ("train_bce", "val_bce") for v in h[k][1:] if v is not None]
    first = [v for h in histories for k in ("train_bce", "val_bce") for v in h[k][:1] if v is not None]
    values = later or first
    return max(values) if values else None


def _curve(histories, name):
    """(epochs, mean, low, high) of one loss curve over seeds; NaN where none ran."""
    length = max(len(h[name]) for h in histories)
    table = np.full((len(histories), length), np.nan)
    for i, h in enumerate(histories):
        table[i, :len(h[name])] = [np.nan if v is None else v for v in h[name]]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an epoch no seed finished is NaN, as meant
        return (np.arange(1, length + 1), np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0))


def plot_curves(records, path, dataset=None):
    """Per architecture, each learning rate's mean curve over its seeds, with
    the band from the lowest to the highest seed."""
    archs = list(dict.fromkeys(hidden_text(r) for r in records))
    fig = Figure(figsize=(4.5 * len(archs), 3.5))
    axes = np.atleast_1d(fig.subplots(1, len(archs), sharey=True))
    banded = False
    for ax, arch in zip(axes, archs):
        lrs = list(dict.fromkeys(r["lr"] for r in records if hidden_text(r) == arch))
        for i, lr in enumerate(lrs):
            histories = [r["history"] for r in records if hidden_text(r) == arch and r["lr"] == lr]
            seeds = f" ({len(histories)} seeds)" if len(histories) > 1 else ""
            for name, style, marker in (("val_bce", "-", "o"), ("train_bce", "--", ".")):
                epochs, mean, low, high = _curve(histories, name)
                # Markers, so that a run of one epoch (or a diverged one) is still a visible point.
                ax.plot(epochs, mean, color=f"C{i}", ls=style, marker=marker, ms=3,
                        label=f"lr={lr:g}{seeds}" if name == "val_bce" else None)
                if len(histories) > 1 and name == "val_bce":
                    ax.fill_between(epochs, low, high, color=f"C{i}", alpha=0.2, lw=0)
                    banded = True
        ax.set_title(arch, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    top = curve_top([r["history"] for r in records])
    if top is not None:
        bottom = min(v for r in records for k in ("train_bce", "val_bce") for v in r["history"][k]
                     if v is not None)
        axes[0].set_ylim(0.97 * bottom, 1.05 * top)
    axes[0].set_ylabel("BCE (solid: validation, dashed: train)")
    band = "; band: lowest to highest seed" if banded else ""
    return save(fig, path, f"learning curves (y-range from epoch 2 on; epoch 1 may lie above{band})", dataset)


def plot_reconstructions(model, x, path, dataset=None):
    """x: (n, D) images in a row, their reconstructions by ``model`` below."""
    recon = model.predict(x)
    fig = Figure(figsize=(1.1 * len(x), 2.4))
    axes = fig.subplots(2, len(x))
    for j in range(len(x)):
        _image(axes[0, j], x[j], "original" if j == 0 else None)
        _image(axes[1, j], recon[j], "decoded" if j == 0 else None)
    return save(fig, path, "original vs decoded", dataset)


def plot_reconstruction_grid(models, x, path, dataset=None):
    """x: (n, D) images in the top row; below, one row per (name, model) in ``models``."""
    fig = Figure(figsize=(1.0 * len(x) + 1.6, 1.0 * (len(models) + 1)))
    axes = fig.subplots(len(models) + 1, len(x), squeeze=False)
    rows = [("original", x)] + [(name, m.predict(x)) for name, m in models]
    for i, (name, images) in enumerate(rows):
        for j in range(len(x)):
            _image(axes[i, j], images[j])
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    return save(fig, path, "decoded by every run", dataset)


def plot_first_layer_codes(model, x, path, dataset=None):
    """x: (n, D) images, and under each its first encoding layer's (H1,) outputs
    reshaped to the squarest rectangle (as the original notebooks showed them)."""
    codes = model.encode(x, layer=1)
    rows, cols = rectangle(codes.shape[1])
    fig = Figure(figsize=(1.2 * len(x), 2.6))
    axes = fig.subplots(2, len(x))
    for j in range(len(x)):
        _image(axes[0, j], x[j])
        axes[1, j].imshow(codes[j].reshape(rows, cols), cmap="viridis")
        axes[1, j].set_xticks([])
        axes[1, j].set_yticks([])
    axes[1, 0].set_title(f"layer 1: {codes.shape[1]} units as {rows}x{cols}", fontsize=7, loc="left")
    return save(fig, path, "codes of the first encoding layer", dataset)


def plot_filters(model, path, limit=64, dataset=None):
    """The first ``limit`` columns of W1 (D, H1), each a 28x28 filter, red + and blue -."""
    W = model.backend.to_host(model.params[0])        # (D, H1)
    n = min(limit, W.shape[1])
    rows, cols = rectangle(n) if rectangle(n)[0] > 1 else (int(math.ceil(n / 8)), 8)
    fig = Figure(figsize=(cols * 0.8, rows * 0.8))
    axes = np.atleast_2d(fig.subplots(rows, cols))
    side = int(math.isqrt(W.shape[0]))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < n:
            w = W[:, k]
            lim = np.abs(w).max() or 1.0
            ax.imshow(w.reshape(side, side), cmap="RdBu_r", vmin=-lim, vmax=lim)
    return save(fig, path, f"first-layer weights ({n} of {W.shape[1]} units; red +, blue -)", dataset)


def plot_codes_2d(models, x, y, path, classes=None, dataset=None):
    """Bottleneck codes of x projected to 2-D (PCA), coloured by class y;
    classes: the class names (e.g. Fashion-MNIST's), else the label numbers."""
    cols = min(3, len(models))
    rows = int(math.ceil(len(models) / cols))
    fig = Figure(figsize=(3.6 * cols, 3.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, model, acc) in zip(axes, models):
        xy = pca_2d(model.encode(x, layer=model.code_layer).astype(np.float64))
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


def plot_dataset(out, dataset, records, ds, baseline, n_points=2000):
    """Every figure for one dataset under out/plots/<dataset>/; returns their names.

    With several seeds per configuration, the model figures show each
    configuration's first seed that did not diverge.
    """
    folder = Path(out) / "plots" / dataset
    rows = ranking_rows(records, {dataset: baseline})
    x_show = ds.x_val[:N_SHOW]
    names = [plot_ranking(rows, baseline, folder / "ranking.png", dataset),
             plot_curves(records, folder / "curves.png", dataset)]
    groups = configurations(records)
    shown = []   # (label, record) per configuration in rank order, its first ok seed
    for row in rows:
        ok = [r for r in groups[(dataset, row["hidden"], row["lr"])] if r["status"] == "ok"]
        if ok:
            shown.append((f"{row['hidden']} lr={row['lr']:g}", ok[0], row["knn_accuracy"]))
    if not shown:
        return names
    models = {r["key"]: Autoencoder.load(Path(out) / r["checkpoint"]) for _, r, _ in shown}
    best = models[shown[0][1]["key"]]
    names += [plot_reconstructions(best, x_show, folder / "reconstructions_best.png", dataset),
              plot_reconstruction_grid([(name, models[r["key"]]) for name, r, _ in shown], x_show,
                                       folder / "reconstructions_grid.png", dataset),
              plot_first_layer_codes(best, ds.x_val[:6], folder / "first_layer_codes.png", dataset),
              plot_filters(best, folder / "first_layer_filters.png", dataset=dataset)]
    pick = np.random.default_rng(0).choice(len(ds.x_val), size=min(n_points, len(ds.x_val)), replace=False)
    names.append(plot_codes_2d([(name, models[r["key"]], acc) for name, r, acc in shown],
                               ds.x_val[pick], ds.y_val[pick], folder / "codes_2d.png",
                               classes=ds.classes, dataset=dataset))
    return names
