"""Datasets: IDX files, verified downloads, offline sources, a bundled sample.

    from minae.data import load
    ds = load("fashion-mnist")            # ds.x_train: (60000, 784) float32 in [0, 1]
    print(ds.describe())                  # says which source was used

Command line: ``python -m minae.data where`` and
``python -m minae.data download mnist fashion-mnist``.
"""

from minae.data.fetching import download
from minae.data.idx import read_idx, write_idx
from minae.data.loading import Dataset, SampleDataWarning, cache_root, load, load_sample, where
from minae.data.registry import DATASETS, get_info

__all__ = ["DATASETS", "Dataset", "SampleDataWarning", "cache_root", "download", "get_info", "load",
           "load_sample", "read_idx", "where", "write_idx"]
