"""TensorBoard logs of fit and of the grid, read back with TensorBoard's own EventAccumulator."""

import json

import numpy as np
import pytest

from minae import Autoencoder, fit
from minae.data.loading import SAMPLE_ROOT
from minae.diagnostics import DIAG_ROWS
from minae.grid.cli import main
from minae.grid.tensorboard_runs import run_name

pytest.importorskip("tensorboardX",
                    reason="tensorboardX is not installed (pip install 'minae[tensorboard]')")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard is not installed (pip install 'minae[tensorboard]')")

SMALL = ["--datasets", "mnist", "--data-dir", str(SAMPLE_ROOT), "--hidden", "8,4,8", "16,8,16",
         "--lrs", "0.01", "0.1", "--epochs", "3", "--limit-train", "600", "--limit-val", "200",
         "--no-plots", "--quiet", "--tensorboard"]


def read(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.HISTOGRAMS: 0,
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def hparams(acc):
    """The run's settings as its HParams session-start summary holds them."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value for k, v in start.hparams.items()}


def test_grid_runs_are_named_by_their_settings():
    settings = {"dataset": "mnist", "hidden": [128, 64, 32, 64, 128], "lr": 0.001}
    assert run_name(settings) == "mnist/128-64-32-64-128_lr0.001_s0"
    assert run_name({**settings, "repeat": 2, "lr": 1}) == "mnist/128-64-32-64-128_lr1.0_s2"
    assert run_name({**settings, "lr": 0.1000001}) != run_name({**settings, "lr": 0.1})   # never rounded


@pytest.mark.parametrize("engine, per_epoch", [("single", True), ("stacked", False)])
def test_every_run_has_its_scalars_images_histograms_and_hparams(engine, per_epoch, tmp_path):
    out = tmp_path / engine
    assert main([*SMALL, "--out", str(out), "--engine", engine, "--jobs", "1"]) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 4
    names = {f"mnist/{h}_lr{lr}_s0" for h in ("8-4-8", "16-8-16") for lr in ("0.01", "0.1")}
    assert {f"mnist/{p.name}" for p in (out / "tensorboard" / "mnist").iterdir()} == names
    for r in records:
        acc = read(out / "tensorboard" / run_name(r))
        tags = acc.Tags()
        val = [e.value for e in acc.Scalars("BCE/validation")]
        np.testing.assert_allclose(val, r["history"]["val_bce"], rtol=1e-6)   # float32 in the event file
        assert [e.step for e in acc.Scalars("BCE/validation")] == [1, 2, 3]
        grads = {t for t in tags["scalars"] if t.startswith("grad_norm/layer_")}
        assert grads == {f"grad_norm/layer_{k}" for k in range(1, 5)}
        np.testing.assert_allclose([e.value for e in acc.Scalars("grad_norm/layer_1")],
                                   [d["grad_norm"][0] for d in r["history"]["diagnostics"]], rtol=1e-6)
        assert {"reconstructions", "first_layer_filters"} <= set(tags["images"])
        assert "weights/layer_1" in tags["histograms"]
        assert ("gradients/layer_1" in tags["histograms"]) == per_epoch   # a stack logs after the fact
        assert {"_hparams_/experiment", "_hparams_/session_start_info",
                "_hparams_/session_end_info"} <= set(acc.PluginTagToContent("hparams"))
        assert hparams(acc) == {"dataset": "mnist", "hidden": ",".join(map(str, r["hidden"])),
                                "lr": pytest.approx(r["lr"]), "seed": r["seed"], "repeat": 0,
                                "key": r["key"]}   # the key, to find the run's record
        assert acc.Scalars("hparam/final_val_bce")[-1].value == pytest.approx(r["val_bce"], rel=1e-6)


def test_the_callback_takes_validation_rows_from_the_device(cupy_like, tmp_path):
    from minae.tensorboard import TensorBoard

    x = np.random.default_rng(4).uniform(size=(300, 784)).astype(np.float32)
    board = TensorBoard(tmp_path, x_val=cupy_like(x), images_every=1)   # np.asarray refuses it
    np.testing.assert_array_equal(board.x_val, x[:DIAG_ROWS])
    fit(Autoencoder(784, [16, 8, 16]), x, x[:20], epochs=1, progress=False, callbacks=[board])
    images = read(tmp_path).Images("first_layer_filters")
    assert len(images) == 1 and images[0].width == 8 * 30 and images[0].height == 2 * 30   # 16 filters
