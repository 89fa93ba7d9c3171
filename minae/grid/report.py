"""Ranking the grid's runs and writing ranking.csv, ranking.md and REPORT.md.

What it teaches: a loss means little without a yardstick. Beside every
ranking stands the validation BCE of the trivial predictor that outputs the
training set's mean image for every input; a run near it learned nothing
beyond the average picture (what a collapsed learning rate of 0.1 does).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np

from minae._io import atomic_write_text
from minae.losses import bce_loss

# A run whose validation BCE is above this fraction of the mean-image
# baseline is reported as having learned (almost) nothing beyond it.
COLLAPSE_RATIO = 0.97
# Reconstructions of real images vary by ~0.2-0.3 per pixel across images; a
# spread below this means the model outputs (nearly) one constant image.
CONSTANT_SPREAD = 0.01


def mean_image_bce(x_train, x_val):
    """Validation BCE of always predicting the training set's mean image.

    x_train: (N, D), x_val: (M, D) in [0, 1]. Uses the probability form of
    BCE, whose clipping keeps always-black corner pixels finite. The
    prediction is the same for every image and BCE is linear in the target,
    so the mean over images equals the BCE against the mean validation image:
    one row instead of M (no (M, D) temporaries).
    """
    predicted = x_train.mean(axis=0, dtype=np.float64)[None, :]          # (1, D)
    target = x_val.mean(axis=0, dtype=np.float64)[None, :]               # (1, D)
    return float(bce_loss(predicted, target))


def rank(records):
    """Records of one dataset, best first: ok runs by val BCE, then diverged."""
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["val_bce"])
    bad = [r for r in records if r["status"] != "ok"]
    return ok + bad


def hidden_text(record):
    return ",".join(map(str, record["hidden"]))


def _verdict(record, baseline):
    if record["status"] != "ok":
        return f"diverged at epoch {record['diverged_epoch']}"
    spread = record.get("output_spread")
    if spread is not None and spread < CONSTANT_SPREAD:
        dead = record.get("dead_fraction")
        dead_text = "" if dead is None else f", {dead:.0%} of first-layer units dead"
        return f"collapsed to a constant output (spread {spread:.4f}{dead_text})"
    if baseline is not None and record["val_bce"] > COLLAPSE_RATIO * baseline:
        return "no better than the mean image"
    return ""


def ranking_rows(records, baselines):
    """Flat rows (dicts) for every dataset, in rank order."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        baseline = baselines.get(dataset)
        for i, r in enumerate(rank([r for r in records if r["dataset"] == dataset]), start=1):
            ratio = r["val_bce"] / baseline if r["status"] == "ok" and baseline else None
            rows.append({
                "dataset": dataset, "rank": i, "hidden": hidden_text(r), "lr": r["lr"],
                "status": r["status"], "val_bce": r["val_bce"], "train_bce": r["train_bce"],
                "val_over_mean_image": ratio, "knn_accuracy": r.get("knn_accuracy"),
                "output_spread": r.get("output_spread"), "dead_fraction": r.get("dead_fraction"),
                "seconds": r["seconds"], "epochs_run": len(r["history"]["val_bce"]),
                "note": _verdict(r, baseline), "data_source": r["data_source"],
            })
    return rows


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def ranking_csv(rows):
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["dataset", "rank"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def ranking_markdown(rows, baselines, data):
    """One table per dataset, with the mean-image baseline above it."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        summary = data.get(dataset)
        out.append(f"## {dataset}\n")
        if summary is not None:
            out.append(f"Data: {summary.n_train} train / {summary.n_val} validation images, "
                       f"source `{summary.source}`.\n")
        if dataset in baselines:
            out.append(f"Mean-image baseline (predict the training set's mean image): "
                       f"validation BCE **{baselines[dataset]:.4f}**.\n")
        out.append("| rank | hidden | lr | val BCE | train BCE | val / baseline | k-NN acc. on codes "
                   "| seconds | status | note |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
        for r in (r for r in rows if r["dataset"] == dataset):
            out.append(f"| {r['rank']} | {r['hidden']} | {r['lr']:g} | {_fmt(r['val_bce'], '.4f')} "
                       f"| {_fmt(r['train_bce'], '.4f')} | {_fmt(r['val_over_mean_image'], '.3f')} "
                       f"| {_fmt(r['knn_accuracy'], '.3f')} | {r['seconds']:.1f} | {r['status']} "
                       f"| {r['note']} |")
        out.append("")
    return "\n".join(out)


def write_rankings(out, records, baselines, data):
    """Write ranking.csv and ranking.md; returns the rows."""
    rows = ranking_rows(records, baselines)
    atomic_write_text(Path(out) / "ranking.csv", ranking_csv(rows))
    atomic_write_text(Path(out) / "ranking.md", "# Ranking by validation BCE\n\n"
                      + ranking_markdown(rows, baselines, data))
    return rows


FIGURES = [
    ("ranking.png", "Validation BCE of every run, best first; the dashed line is the mean-image baseline."),
    ("curves.png", "Training (dashed) and validation (solid) BCE per epoch."),
    ("reconstructions_best.png", "Validation images (top) and the best model's reconstructions (bottom)."),
    ("reconstructions_grid.png", "The same validation images reconstructed by every run."),
    ("first_layer_codes.png", "The best model's first encoding layer for a few images, "
                              "reshaped to a rectangle (as in the original notebooks)."),
    ("first_layer_filters.png", "The best model's first-layer weights, one 28x28 filter per unit."),
    ("codes_2d.png", "Bottleneck codes of validation images projected to 2-D (PCA), coloured by "
                     "class; titles give the k-NN accuracy on the codes."),
]


def report_markdown(config, records, rows, baselines, data, figures, command, trained, skipped):
    """REPORT.md: settings, data sources, rankings, figures — readable on its own."""
    lines = ["# minae grid report", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `{command}`.", ""]
    samples = [n for n, d in data.items() if d.source == "bundled-sample"]
    if samples:
        lines += ["> **WARNING: BUNDLED SAMPLE DATA.** " + ", ".join(samples) + " used the small "
                  "bundled sample (a few thousand real images), not the full dataset. These numbers "
                  "are NOT comparable with the original experiment. Install or download the full "
                  "data (see the README's Data section) and rerun with `--require-full`.", ""]
    lines += ["## Settings", "",
              "| setting | value |", "|---|---|",
              f"| hidden layers | {' / '.join(','.join(map(str, h)) for h in config.hidden)} |",
              f"| learning rates | {', '.join(f'{lr:g}' for lr in config.lrs)} |",
              f"| epochs, batch size | {config.epochs}, {config.batch_size} |",
              f"| Adam | form {config.adam_form}, beta1 {config.beta1}, beta2 {config.beta2}, "
              f"eps {config.eps:g} |",
              f"| init | glorot-uniform weights, zero biases; seed {config.seed} |",
              f"| dtype, backend | {config.dtype}, {records[0]['backend'] if records else config.backend} |",
              f"| runs | {len(records)} ({trained} trained now, {skipped} reused from earlier) |", "",
              "## Data", ""]
    for name, d in data.items():
        kind = "verified: the canonical content" if d.canonical \
            else "not the canonical files, checked structurally"
        extra = "".join(f"; {n}" for n in d.notes)
        lines.append(f"- **{name}**: {d.n_train} training / {d.n_val} validation images from "
                     f"`{d.source}` ({d.location}; {kind}{extra}); content digest (SHA-256 of the "
                     f"images and labels used, part of every run's key) `{d.digest}`.")
    lines += ["", "Validation BCE is the exact mean over every pixel of every validation image; "
              "train BCE is the sample-weighted mean of the last epoch's mini-batch losses (as Keras "
              "reports it).", ""]
    lines.append(ranking_markdown(rows, baselines, data).replace("## ", "## Ranking: "))
    for dataset in config.datasets:
        notes = [r for r in rows if r["dataset"] == dataset and r["note"]]
        if notes:
            lines += [f"Notes for {dataset}:", ""]
            lines += [f"- {r['hidden']} at lr {r['lr']:g}: {r['note']}." for r in notes]
            lines.append("")
        figs = figures.get(dataset, [])
        if figs:
            lines += [f"### Figures: {dataset}", ""]
            for name, caption in FIGURES:
                if name in figs:
                    lines += [f"{caption}", "", f"![{dataset} {name}](plots/{dataset}/{name})", ""]
    lines += ["## Files", "",
              "- `results.json`: one record per run (settings, losses, per-epoch history, timings).",
              "- `ranking.csv`, `ranking.md`: the tables above.",
              "- `runs/<dataset>/<key>.npz`: every trained model; `minae.Autoencoder.load(path)` reloads it.",
              ""]
    return "\n".join(lines)
