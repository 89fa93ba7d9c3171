"""The grid experiment: every (dataset, hidden layers, learning rate) trained,
saved as soon as it ends, resumable, ranked, reported.

Read in this order:
    config            the settings, each run's identity (key, seed), the checks
    probe             what a trained model's codes know (k-NN)
    runs              one run: check its data, train it, its record, save both
    reuse             whether a saved run is that run's and can be reused
    lock              one grid per output folder
    schedule          run_grid: which runs are missing, training them, the report
    pool              runs in worker processes (--jobs)
    cluster           every run a task on a Dask cluster (--scheduler)
    outputs           results.json, the report, and which report a grid replaces
    report            rankings against the mean-image baseline, REPORT.md
    plots             the figures
    tensorboard_runs  the runs' TensorBoard logs, named by their settings
    cli               the flags of scripts/grid.py
"""

from minae.grid.config import ENGINES, ORIGINAL_DATASETS, ORIGINAL_HIDDEN, ORIGINAL_LRS, GridConfig
from minae.grid.outputs import write_outputs
from minae.grid.probe import code_probe, knn_accuracy
from minae.grid.schedule import GridResult, run_grid

__all__ = ["ENGINES", "ORIGINAL_DATASETS", "ORIGINAL_HIDDEN", "ORIGINAL_LRS", "GridConfig", "GridResult",
           "code_probe", "knn_accuracy", "run_grid", "write_outputs"]
