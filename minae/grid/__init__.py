"""The grid experiment: every (dataset, hidden layers, learning rate) trained,
saved as soon as it ends, resumable, ranked, reported.

Read in this order:
    config    the settings, each run's identity (key, seed), the checks
    probe     what a trained model learned beyond its loss (k-NN, spread, dead units)
    runs      one run: train, save, and whether a saved one can be reused
    lock      one grid per output folder
    schedule  which runs are missing; training them serially, in workers or as stacks
    cluster   every run a task on a Dask cluster (--scheduler)
    report    rankings against the mean-image baseline, REPORT.md
    plots     the figures
    cli       the flags of scripts/grid.py
"""

from minae.grid.config import ENGINES, ORIGINAL_DATASETS, ORIGINAL_HIDDEN, ORIGINAL_LRS, GridConfig
from minae.grid.probe import code_probe, knn_accuracy
from minae.grid.schedule import GridResult, run_grid, write_outputs

__all__ = ["ENGINES", "ORIGINAL_DATASETS", "ORIGINAL_HIDDEN", "ORIGINAL_LRS", "GridConfig", "GridResult",
           "code_probe", "knn_accuracy", "run_grid", "write_outputs"]
