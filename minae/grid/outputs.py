"""What a grid leaves in its folder (--out), besides its runs: results.json after
every run, and at the end the rankings, figures, REPORT.md and grid.json.

A report is drawn from the data the runs trained on: the grid's own arrays,
or the files read again and shown to hold the same content (``reload``).
``grid.json`` keeps the settings of the grid whose report is there, so that a
grid with other settings says which report it replaces (``replaces``).
"""

from __future__ import annotations

import json
from pathlib import Path

from minae._io import atomic_write_text, read_json
from minae.data import load
from minae.grid.runs import check_data


def load_kwargs(config):
    """The arguments of ``minae.data.load`` that decide which images a grid uses."""
    return dict(val_fraction=config.val_fraction, limit_train=config.limit_train,
                limit_val=config.limit_val, seed=config.seed, require_full=config.require_full)


# The settings a report depends on: a grid that differs in one of them, written
# into a folder that holds another grid's report, says what it replaces.
REPORT_SETTINGS = ("datasets", "hidden", "lrs", "epochs", "batch_size", "beta1", "beta2", "eps",
                   "adam_form", "seed", "seeds", "dtype", "backend", "data_dir", "limit_train", "limit_val",
                   "val_fraction")
RESULTS_FILE = "results.json"   # in --out: every finished record of the grid
GRID_FILE = "grid.json"         # in --out: the settings of the grid whose report is there


def _report_settings(config):
    return {name: list(v) if isinstance(v, tuple) else v for name, v in
            ((n, getattr(config, n)) for n in REPORT_SETTINGS)}


def replaces(out, config, log):
    """Say so when ``out`` holds the report of a grid with other settings: this grid
    replaces that report (its runs stay in out/runs, reused when asked for again)."""
    try:
        before = read_json(out / GRID_FILE)
    except FileNotFoundError:   # no grid has reported here yet
        return
    except (OSError, ValueError) as exc:
        before = exc
    if not isinstance(before, dict):   # damaged: the report there is of settings nobody knows
        why = before if isinstance(before, Exception) else "it holds no settings"
        if (out / "REPORT.md").exists():
            log(f"note: {out / GRID_FILE} cannot be read ({why}); this grid's REPORT.md, ranking and "
                f"results.json will take the place of those in {out}")
        return
    now = json.loads(json.dumps(_report_settings(config)))   # as JSON would give it back
    changed = [f"{k.replace('_', '-')} {_shown(before.get(k))} -> {_shown(now[k])}"
               for k in now if before.get(k) != now[k]]
    if changed:
        log(f"note: {out} holds the report of a grid with other settings ({'; '.join(changed)}); this "
            f"grid's REPORT.md, ranking and results.json will take its place. The runs of both stay in "
            f"{out}/runs and are reused when asked for again; give another --out to keep both reports")


def _shown(value):
    """A setting as a person writes it: 0.01, 32,16,32, none."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return " ".join(_shown(v) if not isinstance(v, list) else ",".join(map(str, v)) for v in value)
    return str(value)


def reload(config, summary):
    """The dataset of ``summary`` read again from the very files the grid used, with the
    same subsets, and proved to be the same content (else a DataError naming them)."""
    ds = load(summary.name, **load_kwargs(config), data_dir=summary.location, allow_download=False)
    check_data(ds, summary)
    return ds


def write_results(out, records):
    """results.json: every finished record of this grid, written atomically."""
    atomic_write_text(Path(out) / RESULTS_FILE, json.dumps(records, indent=1))


def write_outputs(config, result, datasets=None, command="python scripts/grid.py", log=print):
    """Baselines, ranking.csv/.md, figures and REPORT.md for a finished grid.

    datasets: {name: Dataset} if at hand; otherwise each is read again from the
    files the grid used, one at a time (to keep memory low), and must be the
    same content as the grid trained on.
    """
    from minae.grid import report

    if config.plots:
        from minae.grid import plots  # matplotlib is only needed for the figures

    out = Path(config.out)
    baselines, figures = {}, {}
    for name, summary in result.data.items():
        ds = datasets[name] if datasets else reload(config, summary)
        baselines[name] = report.mean_image_bce(ds.x_train, ds.x_val)
        records = [r for r in result.records if r["dataset"] == name]
        if config.plots and records:
            figures[name] = plots.plot_dataset(out, name, records, ds, baselines[name])
        del ds
    rows = report.write_rankings(out, result.records, baselines, result.data)
    text = report.report_markdown(config, result.records, rows, baselines, result.data, figures,
                                  command, result.trained, result.skipped)
    atomic_write_text(out / "REPORT.md", text)
    atomic_write_text(out / GRID_FILE, json.dumps(_report_settings(config), indent=1))
    log(f"wrote {out / 'REPORT.md'}, ranking.md, ranking.csv, {RESULTS_FILE}"
        + (f" and plots in {out / 'plots'}" if figures else ""))
    return rows

