"""The grid's figures: what each one names, shows and marks."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from minae.grid import plots
from minae.grid.plots import rectangle
from minae.grid.report import ranking_rows
from minae.projection import Projection


def test_codes_are_reshaped_to_the_squarest_rectangle():
    assert [rectangle(n) for n in (128, 64, 32, 16, 7)] == [(8, 16), (8, 8), (4, 8), (4, 4), (1, 7)]


def test_pca_keeps_the_two_directions_of_largest_variance(rng):
    codes = rng.standard_normal((500, 3)) * [10.0, 0.1, 3.0]
    xy = Projection(codes).to_2d(codes)
    assert xy.shape == (500, 2)
    np.testing.assert_allclose(np.sort(xy.var(0))[::-1], [100, 9], rtol=0.15)
    flat = rng.standard_normal((20, 1))
    assert Projection(flat).to_2d(flat).shape == (20, 2)   # a 1-D code still plots


@pytest.fixture
def drawn(monkeypatch):
    """{file name: Figure} of every figure saved while the test runs."""
    seen = {}
    original = plots.save

    def spy(fig, path, title, dataset=None):
        seen[Path(path).name] = fig
        return original(fig, path, title, dataset)

    monkeypatch.setattr(plots, "save", spy)
    return seen


def _record(hidden, lr, val, spread=0.2, status="ok", epochs=1):
    return {"dataset": "d", "hidden": hidden, "lr": lr, "status": status, "val_bce": val,
            "train_bce": val, "diverged_epoch": None if status == "ok" else 2, "seconds": 1.0,
            "history": {"train_bce": [val] * epochs, "val_bce": [val] * epochs}, "knn_accuracy": 0.5,
            "output_spread": spread, "dead_fraction": 0.0, "data_source": "x", "key": f"{hidden}{lr}"}


def _drawn_again(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def test_the_ranking_is_zoomed_to_the_data_with_the_baseline_and_collapsed_runs_marked(tmp_path, drawn):
    records = [_record([8], 0.01, 0.273), _record([16], 0.01, 0.281), _record([8], 0.001, 0.297),
               _record([16], 0.1, 0.3101, spread=0.0001), _record([8], 0.1, None, status="diverged")]
    rows = ranking_rows(records, {"d": 0.31})
    plots.plot_ranking(rows, 0.31, tmp_path / "ranking.png", "d", collapsed_labels={"16 lr=0.1"})
    fig = _drawn_again(drawn["ranking.png"])
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert 0.25 < low < 0.273 and 0.31 < high < 0.33   # the data and the baseline fill the axis
    assert [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [0.31]
    points = {line.get_marker(): (line.get_xdata()[0], line.get_ydata()[0], line.get_color())
              for line in ax.get_lines() if len(line.get_xdata()) == 1 and line.get_marker() == "X"}
    assert points == {"X": (0.3101, 3, "C3")}          # the collapsed one: a red cross, 4th from the top
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.2730", "0.2810", "0.2970", "0.3101 collapsed", "diverged"]
    legend, box = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y0 >= box.y1 - 1                     # above the axes, over no point
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "mean-image baseline 0.3100"


def test_curves_at_100_epochs_keep_their_line_styles_visible(tmp_path, drawn):
    records = [_record([8], lr, val, epochs=100) for lr, val in ((0.01, 0.2), (0.1, 0.26))]
    records[1]["output_spread"] = 0.0001
    for r, scale in zip(records, (1.0, 1.3)):
        r["history"]["val_bce"] = list(scale * (0.2 + 0.5 / np.arange(1, 101)))
        r["history"]["train_bce"] = list(scale * (0.18 + 0.5 / np.arange(1, 101)))
    plots.plot_curves(records, tmp_path / "curves.png", "d")
    ax = drawn["curves.png"].axes[0]
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 100]
    assert len(curves) == 4 and {line.get_linestyle() for line in curves} == {"-", "--"}
    assert all(line.get_markevery() == [99] for line in curves)   # one marker, at the end
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["lr=0.01", "lr=0.1 collapsed", "validation", "train"]
    assert ax.get_ylim()[1] == pytest.approx(1.05 * 1.3 * (0.2 + 0.5 / 2))   # epoch 2 sets it, not 1


def test_every_figure_names_its_dataset_and_model_and_fashion_codes_name_their_classes(tmp_path, drawn):
    from minae import Autoencoder, fit
    from minae.data import load_sample

    ds = load_sample("fashion-mnist", limit_train=300, limit_val=100)
    records = []
    for hidden, val, spread in (([8, 4, 8], 0.30, 0.2), ([16, 8, 16], 0.49, 0.0001)):
        model = Autoencoder(784, hidden)
        history = fit(model, ds.x_train, ds.x_val, epochs=1, progress=False)
        key = ",".join(map(str, hidden))
        model.save(tmp_path / "runs" / f"{key}.npz")
        records.append({**_record(hidden, 0.01, val, spread), "dataset": "fashion-mnist", "key": key,
                        "history": history.as_dict(), "checkpoint": f"runs/{key}.npz"})
    figures = plots.plot_dataset(tmp_path, "fashion-mnist", records, ds, baseline=0.49)
    names = [name for name, _ in figures]
    assert set(names) == set(drawn) and len(drawn) == 7 and all(caption for _, caption in figures)
    for name, fig in drawn.items():
        assert fig._suptitle.get_text().startswith("fashion-mnist - "), name
    for name in ("reconstructions_best.png", "first_layer_codes.png", "first_layer_filters.png"):
        assert "best run, 8,4,8 lr=0.01" in drawn[name]._suptitle.get_text(), name
    rows = [t.get_text() for t in drawn["reconstructions_grid.png"].axes[0].get_yticklabels()]
    assert rows == ["original", "8,4,8 lr=0.01", "16,8,16 lr=0.01 (collapsed)"]
    panels = [ax.get_title() for ax in drawn["codes_2d.png"].axes[:2]]
    assert panels[0].startswith("8,4,8 lr=0.01") and panels[1].startswith("16,8,16 lr=0.01 (collapsed)")
    assert "dead" in drawn["first_layer_filters.png"].axes[0].get_xlabel()   # the caption under the filters
    bar_labels = [t.get_text() for t in drawn["codes_2d.png"].axes[-1].get_yticklabels()]
    assert "Ankle boot" in bar_labels and "T-shirt/top" in bar_labels
    ranking = drawn["ranking.png"].axes[0]
    assert [line.get_marker() for line in ranking.get_lines() if len(line.get_xdata()) == 1][:2] == ["o", "X"]


def test_model_figures_drawn_alone_name_the_model_by_its_layers(tmp_path, drawn):
    from minae import Autoencoder

    x = np.random.default_rng(0).uniform(size=(8, 784)).astype(np.float32)
    plots.plot_reconstructions(Autoencoder(784, [8, 4, 8]), x, tmp_path / "r.png")
    assert drawn["r.png"]._suptitle.get_text() == "8,4,8: validation images and their reconstructions"
