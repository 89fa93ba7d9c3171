"""TensorBoard logs of the grid, read back with TensorBoard's own EventAccumulator."""

import json

import numpy as np
import pytest

from minae.data.loading import SAMPLE_ROOT
from minae.grid.cli import main

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


@pytest.mark.parametrize("engine, per_epoch", [("single", True), ("stacked", False)])
def test_every_run_has_its_scalars_images_histograms_and_hparams(engine, per_epoch, tmp_path):
    out = tmp_path / engine
    assert main([*SMALL, "--out", str(out), "--engine", engine, "--jobs", "1"]) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 4
    for r in records:
        acc = read(out / "tensorboard" / "mnist" / r["key"])
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
        hparams = acc.PluginTagToContent("hparams")   # the experiment, session start and end summaries
        assert {"_hparams_/experiment", "_hparams_/session_start_info",
                "_hparams_/session_end_info"} <= set(hparams)
        assert acc.Scalars("hparam/final_val_bce")[-1].value == pytest.approx(r["val_bce"], rel=1e-6)
