"""The live view: in Jupyter (a real kernel, run by nbclient) it draws; headless it says so once."""

import warnings

import numpy as np
import pytest

from minae import Autoencoder, fit, live
from minae.diagnostics import DIAG_ROWS

CELL = """
import numpy as np
from minae import Autoencoder, fit
from minae.live import LiveView
x = np.random.default_rng(0).uniform(size=(300, 784)).astype(np.float32)
history = fit(Autoencoder(784, [16, 8, 16]), x, x[:64], epochs=3, callbacks=[LiveView(x[:64])],
              progress=False)
print("epochs", len(history.val_bce))
"""


def test_in_a_jupyter_kernel_the_figure_updates_in_place():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed: no kernel to run the notebook")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    images = [o for o in outputs
              if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 1, outputs          # one display, updated in place each epoch
    assert images[0]["data"]["image/png"]     # the last epoch's figure
    assert any("epochs 3" in o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def test_headless_it_says_so_once_and_training_goes_on(monkeypatch):
    monkeypatch.setattr(live, "where", lambda: None)
    monkeypatch.setattr(live, "_SAID", [])
    x = np.random.default_rng(1).uniform(size=(100, 30)).astype(np.float32)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = fit(Autoencoder(30, [8]), x, x[:20], epochs=2, callbacks=[live.LiveView(x[:20])],
                    progress=False)
        fit(Autoencoder(30, [8]), x, x[:20], epochs=2, callbacks=[live.LiveView(x[:20])], progress=False)
    notes = [w for w in said if "live view shows nothing" in str(w.message)]
    assert len(notes) == 1 and len(first.val_bce) == 2


def test_the_figure_has_its_four_panels_and_names_its_model():
    from matplotlib.figure import Figure

    x = np.random.default_rng(2).uniform(size=(100, 784)).astype(np.float32)
    model = Autoencoder(784, [16, 8, 16])
    history = fit(model, x, x[:20], epochs=2, progress=False)
    fig = live.draw(Figure(), history, model, x[:20])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["learning curves", "reconstructions of validation images", "first-layer filters",
                      "dead units per ReLU layer"]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["original", "decoded"]
    assert "16 units" in fig.axes[2].get_xlabel() and "dead" in fig.axes[2].get_xlabel()
    assert fig._suptitle.get_text().startswith("autoencoder 16,8,16, epoch 2: validation BCE ")


def test_it_takes_validation_rows_from_the_device(cupy_like, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setattr(live, "where", lambda: "window")
    x = np.random.default_rng(3).uniform(size=(300, 784)).astype(np.float32)
    view = live.LiveView(cupy_like(x))   # np.asarray refuses it, as it refuses CuPy arrays
    assert type(view.x_val) is np.ndarray
    np.testing.assert_array_equal(view.x_val, x[:DIAG_ROWS])
    model = Autoencoder(784, [16, 8, 16])
    history = fit(model, x, x[:20], epochs=1, progress=False)
    live.draw(Figure(), history, model, view.x_val)


def test_the_grid_shows_its_runs_one_at_a_time(tmp_path, monkeypatch, capsys):
    from minae.data.loading import SAMPLE_ROOT
    from minae.grid.cli import main

    shown = []
    monkeypatch.setattr(live, "where", lambda: "window")
    monkeypatch.setattr(live.LiveView, "on_epoch_end",
                        lambda self, epoch, history, model: shown.append(epoch))
    args = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "8,4,8", "--lrs", "0.01",
            "--epochs", "2", "--limit-train", "300", "--limit-val", "100", "--no-plots", "--quiet", "--live"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0 and shown == [1, 2]   # --jobs defaults to 1
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "b"), "--jobs", "2"])
    assert "--live shows the run in progress, one at a time" in capsys.readouterr().err
