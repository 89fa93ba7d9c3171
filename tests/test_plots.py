"""Helpers behind the figures (the figures themselves are checked by test_grid)."""

import numpy as np

from minae.grid.plots import pca_2d, rectangle


def test_codes_are_reshaped_to_the_squarest_rectangle():
    assert [rectangle(n) for n in (128, 64, 32, 16, 7)] == [(8, 16), (8, 8), (4, 8), (4, 4), (1, 7)]


def test_pca_keeps_the_two_directions_of_largest_variance(rng):
    codes = rng.standard_normal((500, 3)) * [10.0, 0.1, 3.0]
    xy = pca_2d(codes)
    assert xy.shape == (500, 2)
    np.testing.assert_allclose(np.sort(xy.var(0))[::-1], [100, 9], rtol=0.15)
    assert pca_2d(rng.standard_normal((20, 1))).shape == (20, 2)   # a 1-D code still plots


def test_curves_ignore_the_first_epochs_spike_unless_it_is_all_there_is():
    from minae.grid.plots import curve_top

    assert curve_top([{"train_bce": [5.0, 0.3, 0.2], "val_bce": [4.0, 0.25, None]}]) == 0.3
    assert curve_top([{"train_bce": [0.7], "val_bce": [0.6]}]) == 0.7      # one epoch: it sets the range
    assert curve_top([{"train_bce": [None], "val_bce": [None]}]) is None     # diverged at once


def test_every_figure_names_its_dataset_and_fashion_codes_name_their_classes(tmp_path, monkeypatch):
    from pathlib import Path

    from minae import Autoencoder, fit
    from minae.data import load_sample
    from minae.grid import plots

    seen = {}
    original = plots.save

    def spy(fig, path, title=None, dataset=None):
        seen[Path(path).name] = fig
        return original(fig, path, title, dataset)

    monkeypatch.setattr(plots, "save", spy)
    ds = load_sample("fashion-mnist", limit_train=300, limit_val=100)
    model = Autoencoder(784, [8, 4, 8])
    history = fit(model, ds.x_train, ds.x_val, epochs=1, progress=False)
    model.save(tmp_path / "runs" / "k.npz")
    record = {"key": "k", "dataset": "fashion-mnist", "data_source": "bundled-sample", "seconds": 1.0,
              "hidden": [8, 4, 8], "lr": 0.01, "status": "ok", "val_bce": history.val_bce[-1],
              "train_bce": history.train_bce[-1], "history": history.as_dict(), "checkpoint": "runs/k.npz",
              "knn_accuracy": 0.5}
    names = plots.plot_dataset(tmp_path, "fashion-mnist", [record], ds, baseline=0.49)
    assert set(names) == set(seen) and len(seen) == 7
    for name, fig in seen.items():
        assert fig._suptitle.get_text().startswith("fashion-mnist - "), name
    curves = seen["curves.png"].axes[0].get_lines()
    assert all(line.get_marker() not in (None, "None", "") for line in curves)   # one epoch is a visible dot
    bar_labels = [t.get_text() for t in seen["codes_2d.png"].axes[-1].get_yticklabels()]
    assert "Ankle boot" in bar_labels and "T-shirt/top" in bar_labels
    ax = seen["ranking.png"].axes[0]
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1   # beside the bars
