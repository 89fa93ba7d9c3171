"""Ranking the grid's runs and writing ranking.csv, ranking.md and REPORT.md.

What it teaches: a loss means little without a yardstick. Beside every
ranking stands the validation BCE of the trivial predictor that outputs the
training set's mean image for every input; a run near it learned nothing
beyond the average picture (what a collapsed learning rate of 0.1 does).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from minae._io import atomic_write_text, timestamp
from minae.data.loading import SAMPLE
from minae.grid.outputs import GRID_FILE, RESULTS_FILE
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


def hidden_text(record):
    return ",".join(map(str, record["hidden"]))


def config_label(hidden, lr):
    """A configuration's name in every table, note and figure: "32,16,32 lr=0.01"."""
    return f"{hidden} lr={lr:g}"


def collapsed(records):
    """The runs among ``records`` whose output is (nearly) one constant image."""
    return [r for r in records if r.get("output_spread") is not None and r["output_spread"] < CONSTANT_SPREAD]


def configurations(records):
    """{(dataset, hidden text, lr): [its repeats' records]} in the records' order."""
    groups = {}
    for r in records:
        groups.setdefault((r["dataset"], hidden_text(r), r["lr"]), []).append(r)
    return groups


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def interval(values, level=0.95):
    """(mean, std, low, high) of the mean of ``values`` over seeds.

    The interval is Student's t: mean +- t(level, n-1) * std / sqrt(n), with
    the sample std (n-1 in the denominator). One value gives no std and no
    interval (None).
    """
    n = len(values)
    if n == 0:
        return None, None, None, None
    mean = float(np.mean(values))
    if n < 2:
        return mean, None, None, None
    from scipy import stats  # needed only for repeats: the "stats" extra

    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def indistinguishable(a, b, alpha=0.05):
    """Whether Welch's two-sided t-test cannot tell the means of a and b apart at ``alpha``."""
    if len(a) < 2 or len(b) < 2:
        return False
    from scipy import stats

    if np.std(a) == 0 and np.std(b) == 0:   # the test is undefined; equal constants are tied
        return float(np.mean(a)) == float(np.mean(b))
    return bool(stats.ttest_ind(a, b, equal_var=False).pvalue >= alpha)


TIE_TEST = ("Welch's two-sample t-test (two-sided, unequal variances) on the validation BCE of the "
            "seeds, p >= 0.05, without correction for multiple comparisons")


def _verdict(repeats, baseline):
    ok = [r for r in repeats if r["status"] == "ok"]
    failed = [r for r in repeats if r["status"] == "failed"]
    notes = []
    if failed:   # a task that failed for good on a cluster; the next grid tries it again
        notes.append(f"failed in {len(failed)} of {len(repeats)} seeds: {failed[0].get('error')}"
                     if len(repeats) > 1 else f"failed: {failed[0].get('error')}")
    diverged = sorted({r["diverged_epoch"] for r in repeats if r["status"] == "diverged"})
    if diverged and not ok and not failed:
        return f"diverged at epoch {', '.join(map(str, diverged))}"
    if diverged:
        notes.append(f"diverged in {sum(r['status'] == 'diverged' for r in repeats)} of {len(repeats)} "
                     f"seeds (epoch {', '.join(map(str, diverged))})")
    if not ok:
        return "; ".join(notes)
    flat = collapsed(ok)
    if flat:
        dead = _mean(r.get("dead_fraction") for r in flat)
        dead_text = "" if dead is None else f", {dead:.0%} of first-layer units dead"
        spread = _mean(r["output_spread"] for r in flat)
        which = "" if len(flat) == len(repeats) == 1 else f" in {len(flat)} of {len(repeats)} seeds"
        notes.append(f"collapsed to a constant output{which} (spread {spread:.4f}{dead_text})")
    elif baseline is not None and _mean(r["val_bce"] for r in ok) > COLLAPSE_RATIO * baseline:
        notes.append("no better than the mean image")
    return "; ".join(notes)


def ranking_rows(records, baselines):
    """Flat rows (dicts), one per configuration (its seeds pooled), per dataset in rank order.

    Ranked by the mean validation BCE over the seeds that did not diverge;
    configurations whose every seed diverged come last.
    """
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        baseline = baselines.get(dataset)
        groups = {k: v for k, v in configurations(records).items() if k[0] == dataset}
        vals = {k: [r["val_bce"] for r in v if r["status"] == "ok"] for k, v in groups.items()}
        order = sorted(groups, key=lambda k: (not vals[k], _mean(vals[k]) or 0.0))
        for i, key in enumerate(order, start=1):
            repeats, ok = groups[key], [r for r in groups[key] if r["status"] == "ok"]
            mean, std, low, high = interval(vals[key])
            tied = [config_label(h, lr) for (d, h, lr) in order if (d, h, lr) != key
                    and indistinguishable(vals[key], vals[(d, h, lr)])]
            statuses = {r["status"] for r in repeats}
            status = statuses.pop() if len(statuses) == 1 else "mixed"
            rows.append({
                "dataset": dataset, "rank": i, "hidden": key[1], "lr": key[2], "status": status,
                "n_seeds": len(repeats), "val_bce_mean": mean, "val_bce_std": std,
                "ci95_low": low, "ci95_high": high, "tied_with": "; ".join(tied),
                "train_bce_mean": _mean(r["train_bce"] for r in ok),
                "val_over_mean_image": mean / baseline if mean is not None and baseline else None,
                "knn_accuracy": _mean(r.get("knn_accuracy") for r in ok),
                "output_spread": _mean(r.get("output_spread") for r in ok),
                "dead_fraction": _mean(r.get("dead_fraction") for r in ok),
                "seconds": _mean(r["seconds"] for r in repeats),
                "epochs_run": max(len(r["history"]["val_bce"]) for r in repeats),
                "note": _verdict(repeats, baseline), "data_source": repeats[0]["data_source"],
            })
    return rows


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def cell(value):
    """Text safe in a Markdown table cell or list item: line breaks become spaces,
    pipes are escaped and ``<`` cannot open an HTML tag, so an error message
    cannot end its row, break its table, or vanish."""
    return " ".join(str(value).split()).replace("|", "\\|").replace("<", "&lt;")


def table_row(cells):
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def ranking_csv(rows):
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["dataset", "rank"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def dataset_ranking(dataset, rows, baselines, data):
    """Markdown lines of one dataset's ranking: its data, the mean-image baseline,
    the table, and what its number of seeds allows one to conclude."""
    out = []
    summary = data.get(dataset)
    if summary is not None:
        out.append(f"Data: {summary.n_train} train / {summary.n_val} validation images, "
                   f"source `{summary.source}`.\n")
    if dataset in baselines:
        out.append(f"Mean-image baseline (predict the training set's mean image): "
                   f"validation BCE **{baselines[dataset]:.4f}**.\n")
    ours = [r for r in rows if r["dataset"] == dataset]
    out.append("| rank | hidden | lr | seeds | val BCE (mean) | std | 95% CI of the mean | tied with "
               "| train BCE | val / baseline | k-NN acc. on codes | seconds per run | status | note |")
    out.append("|---:|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|---|")
    for r in ours:
        ci = "" if r["ci95_low"] is None else f"{r['ci95_low']:.4f} .. {r['ci95_high']:.4f}"
        out.append(table_row([r["rank"], r["hidden"], f"{r['lr']:g}", r["n_seeds"],
                              _fmt(r["val_bce_mean"], ".4f"), _fmt(r["val_bce_std"], ".4f"), ci,
                              r["tied_with"], _fmt(r["train_bce_mean"], ".4f"),
                              _fmt(r["val_over_mean_image"], ".3f"), _fmt(r["knn_accuracy"], ".3f"),
                              _fmt(r["seconds"], ".1f"), r["status"], r["note"]]))
    out.append("")
    if max(r["n_seeds"] for r in ours) < 2:
        out.append("One seed per configuration gives no interval and no test: rerun with "
                   "`--seeds 3` (or more) to see which differences are real.\n")
    else:
        out.append("Mean and std over the seeds that did not diverge; the interval is Student's t "
                   f"(n - 1 degrees of freedom). *Tied with*: {TIE_TEST}.\n")
    return out


def _datasets(rows, first=()):
    """The datasets that have rows: those in ``first`` in its order, then the rest."""
    present = {r["dataset"] for r in rows}
    return [d for d in dict.fromkeys([*first, *(r["dataset"] for r in rows)]) if d in present]


def ranking_markdown(rows, baselines, data):
    """ranking.md: one table per dataset, with the mean-image baseline above it."""
    out = ["# Ranking by validation BCE", ""]
    for dataset in _datasets(rows):
        out += [f"## {dataset}", "", *dataset_ranking(dataset, rows, baselines, data)]
    return "\n".join(out)


def write_rankings(out, records, baselines, data):
    """Write ranking.csv and ranking.md; returns the rows."""
    rows = ranking_rows(records, baselines)
    atomic_write_text(Path(out) / "ranking.csv", ranking_csv(rows))
    atomic_write_text(Path(out) / "ranking.md", ranking_markdown(rows, baselines, data))
    return rows


def report_markdown(config, records, rows, baselines, data, figures, command, trained, skipped):
    """REPORT.md: settings, data sources, then per dataset its ranking, notes and
    figures together under its own heading; readable on its own.

    figures: {dataset: [(file name, caption)]} as minae.grid.plots.plot_dataset returns them.
    """
    lines = ["# minae grid report", "",
             f"Written {timestamp()} by `{command}`.", ""]
    samples = [n for n, d in data.items() if d.source == SAMPLE]
    if samples:
        lines += ["> **WARNING: BUNDLED SAMPLE DATA.** " + ", ".join(samples) + " used the small "
                  "bundled sample (a few thousand real images), not the full dataset. These numbers "
                  "are NOT comparable with the original experiment. Install or download the full "
                  "data (see the README's Data section) and rerun with `--require-full`.", ""]
    lines += ["## Settings", "",
              "| setting | value |", "|---|---|",
              table_row(["hidden layers", " / ".join(",".join(map(str, h)) for h in config.hidden)]),
              table_row(["learning rates", ", ".join(f"{lr:g}" for lr in config.lrs)]),
              table_row(["epochs, batch size", f"{config.epochs}, {config.batch_size}"]),
              table_row(["Adam", f"form {config.adam_form}, beta1 {config.beta1}, beta2 {config.beta2}, "
                                 f"eps {config.eps:g}"]),
              table_row(["init", f"glorot-uniform weights, zero biases; seed {config.seed}"]),
              table_row(["dtype, backend", f"{config.dtype}, "
                                           f"{records[0]['backend'] if records else config.backend}"]),
              table_row(["runs", f"{len(records)} ({trained} trained now, {skipped} reused from earlier)"]),
              "", "## Data", ""]
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
    for dataset in _datasets(rows, config.datasets):
        lines += [f"## {dataset}", "", "### Ranking", "", *dataset_ranking(dataset, rows, baselines, data)]
        notes = [r for r in rows if r["dataset"] == dataset and r["note"]]
        if notes:
            lines += ["### Notes", ""]
            lines += [f"- {config_label(r['hidden'], r['lr'])}: {cell(r['note'])}." for r in notes]
            lines.append("")
        if figures.get(dataset):
            lines += ["### Figures", ""]
            for name, caption in figures[dataset]:
                lines += [caption, "", f"![{dataset} {name}](plots/{dataset}/{name})", ""]
    lines += ["## Files", "",
              f"- `{RESULTS_FILE}`: one record per run (settings, losses, per-epoch history, timings).",
              "- `ranking.csv`, `ranking.md`: the tables above.",
              "- `runs/<dataset>/<key>.npz`: every trained model; `minae.Autoencoder.load(path)` reloads it.",
              f"- `{GRID_FILE}`: the settings of the grid this report is of.",
              ""]
    return "\n".join(lines)
