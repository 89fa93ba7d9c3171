"""The explorer's Python side: the projection, the model calls behind each picture,
the checkpoint door, the images, live training, and the command line."""

import base64
import configparser
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minae import Autoencoder, CheckpointError, evaluate, figures
from minae.explore import compute
from minae.explore.explorer import N_CODES, Explorer, Unknown
from minae.explore.results import Images, load_images, load_model, read_records
from minae.explore.server import ASSETS, STATIC
from minae.explore.training import LiveTraining
from minae.projection import Projection
from minae.tools.explore_bench import sample_results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The nine original configurations on MNIST's bundled sample, one short epoch each."""
    return sample_results(tmp_path_factory.mktemp("grid"))


@pytest.fixture
def model(rng):
    return Autoencoder(784, [16, 4, 16], seed=3)


def decoded(png_bytes):
    return np.asarray(Image.open(io.BytesIO(png_bytes)))


# --- the projection: down to the plane and back up -----------------------------

def test_a_point_lifted_to_a_code_projects_back_to_itself(rng):
    projection = Projection(rng.normal(size=(300, 16)) * np.arange(1, 17))
    points = rng.normal(size=(20, 2)) * 5
    np.testing.assert_allclose(projection.to_2d(projection.to_code(points)), points, atol=1e-10)


def test_codes_in_a_plane_come_back_whole_and_others_as_their_shadow(rng):
    mean, basis = rng.normal(size=6), np.linalg.qr(rng.normal(size=(6, 2)))[0].T   # an orthonormal (2, 6)
    flat = mean + rng.normal(size=(100, 2)) @ basis
    projection = Projection(flat)
    np.testing.assert_allclose(projection.to_code(projection.to_2d(flat)), flat, atol=1e-10)
    v = rng.normal(size=6)
    normal = v - (v @ basis.T) @ basis                      # a direction out of the plane
    off = flat[:5] + 3.0 * normal / np.linalg.norm(normal)
    residual = off - projection.to_code(projection.to_2d(off))
    np.testing.assert_allclose(residual @ projection.components.T, 0.0, atol=1e-10)   # orthogonal to it
    assert np.abs(residual).max() > 0.1


def test_the_plane_keeps_the_two_largest_variances_of_the_codes(rng):
    codes = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    points = Projection(codes).to_2d(codes)
    top_two = np.sort(np.linalg.eigvalsh(np.cov(codes.T)))[::-1][:2]   # the covariance's eigenvalues
    np.testing.assert_allclose(np.var(points, axis=0, ddof=1), top_two, rtol=1e-9)


def test_a_one_number_code_gets_a_zero_y():
    codes = np.arange(10.0)[:, None]
    projection = Projection(codes)
    points = projection.to_2d(codes)
    assert points.shape == (10, 2) and np.all(points[:, 1] == 0)
    np.testing.assert_allclose(projection.to_code(points), codes)


@pytest.mark.parametrize("codes, message", [(np.zeros(5), "shape"), (np.zeros((1, 4)), "N >= 2"),
                                            (np.array([[0.0, np.nan], [1.0, 2.0]]), "finite")])
def test_a_projection_refuses_codes_it_cannot_use(codes, message):
    with pytest.raises(ValueError, match=message):
        Projection(codes)


def test_lifting_refuses_points_that_are_not_pairs(rng):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        Projection(rng.normal(size=(10, 3))).to_code(np.zeros((4, 3)))


# --- what the model is asked ------------------------------------------------------

def test_a_png_holds_exactly_the_pixels_rounded_to_bytes(rng):
    grey, colour = rng.uniform(size=(28, 28)), rng.uniform(size=(5, 7, 3))
    np.testing.assert_array_equal(decoded(compute.png(grey)), np.round(grey * 255))
    np.testing.assert_array_equal(decoded(compute.png(colour)), np.round(colour * 255))
    assert compute.data_url(grey.ravel()).startswith("data:image/png;base64,")


def test_a_reconstruction_and_its_bce_are_the_models(model, rng):
    x = rng.uniform(size=(1, 784)).astype(np.float32)
    image, bce = compute.reconstruct(model, x)
    p = model.predict(x).astype(np.float64)
    np.testing.assert_array_equal(image, p[0].astype(np.float32))
    # The probability form in float64 (losses.bce_loss's formula), an independent oracle.
    oracle = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p))
    assert bce == pytest.approx(oracle, rel=1e-5)


def test_the_decoded_path_runs_from_one_reconstruction_to_the_other(model, rng):
    a, b = rng.uniform(size=(2, 784)).astype(np.float32)
    path, blend = compute.interpolate(model, a, b, steps=5)
    assert path.shape == blend.shape == (5, 784)
    # The same layers on the same numbers, but in batches of other sizes: equal up to rounding.
    np.testing.assert_allclose(path[[0, -1]], model.predict(np.stack([a, b])), atol=1e-6)
    np.testing.assert_allclose(blend[[0, 2, 4]], [a, (a + b) / 2, b], atol=1e-7)
    code = (compute.codes(model, a[None]) + compute.codes(model, b[None])) / 2
    np.testing.assert_allclose(path[2], compute.decode(model, code)[0], atol=1e-6)


def test_units_give_each_layers_activations_and_find_the_dead(model, rng):
    model.params[0][:, 0], model.params[1][0] = -1.0, -1.0   # unit 1 of layer 1: negative for any image
    model.params[0][:, 1], model.params[1][1] = 1.0, 1.0     # unit 2: positive for every image
    x, rows = rng.uniform(size=(1, 784)), rng.uniform(size=(50, 784))
    layers = compute.units(model, x, rows)
    assert [len(layer["activations"]) for layer in layers] == [16, 4, 16]
    for k, layer in enumerate(layers, start=1):
        np.testing.assert_array_equal(layer["activations"], model.encode(x.astype(np.float32), layer=k)[0])
        np.testing.assert_array_equal(layer["dead"],
                                      model.encode(rows.astype(np.float32), layer=k).max(axis=0) <= 0)
    assert layers[0]["dead"][0] and not layers[0]["dead"][1]


def test_the_filters_picture_is_the_figures_picture_with_the_dead_marked(model, rng):
    model.params[0][:, 0], model.params[1][0] = -1.0, -1.0   # unit 1: dead on any image
    rows = rng.uniform(size=(50, 784)).astype(np.float32)
    picture = compute.filters(model, rows)
    dead = model.encode(rows, layer=1).max(axis=0) <= 0
    assert dead[0] and picture.shape[-1] == 3 and 0 <= picture.min() and picture.max() <= 1
    np.testing.assert_array_equal(picture, figures.filters_image(model.params[0], dead))


# --- the checkpoint door ----------------------------------------------------------

def one_record(grid):
    return next(r for r in read_records(grid) if r["status"] == "ok")


def test_a_good_checkpoint_loads_as_its_records_model(grid):
    record = one_record(grid)
    model = load_model(grid, record)
    assert model.hidden == record["hidden"]
    assert evaluate(model, load_images("mnist", record).x_val) == pytest.approx(record["val_bce"], rel=1e-6)


@pytest.mark.parametrize("checkpoint", ["../outside.npz", "/etc/passwd", "runs/../../outside.npz"])
def test_a_checkpoint_path_outside_the_results_is_refused(grid, checkpoint):
    # The one checkpoint a record may name is its own, runs/<dataset>/<key>.npz.
    with pytest.raises(CheckpointError, match="names the checkpoint .*, not its own runs/mnist/"):
        load_model(grid, {**one_record(grid), "checkpoint": checkpoint})


def test_a_checkpoint_of_other_hidden_layers_is_refused(grid):
    record = one_record(grid)
    with pytest.raises(CheckpointError, match=r"has hidden layers .*, not the record's \[7, 7\]"):
        load_model(grid, {**record, "hidden": [7, 7]})


def test_a_damaged_checkpoint_is_refused_naming_the_file(grid, tmp_path):
    record = one_record(grid)
    shutil.copytree(grid, tmp_path / "copy")
    path = tmp_path / "copy" / record["checkpoint"]
    path.write_bytes(path.read_bytes()[:300])   # cut short, as by a full disk
    with pytest.raises(CheckpointError, match=Path(record["checkpoint"]).name):
        load_model(tmp_path / "copy", record)


def test_non_finite_weights_are_refused(grid, tmp_path):
    record = one_record(grid)
    model = Autoencoder.load(Path(grid) / record["checkpoint"])
    model.params[2][0, 0] = np.nan
    model.save(tmp_path / record["checkpoint"], extra=model.extra)   # the run's own file, but for a NaN
    with pytest.raises(CheckpointError, match="W2 holds NaN or infinite weights"):
        load_model(tmp_path, record)


def test_a_swapped_checkpoint_or_an_edited_record_is_refused_as_on_resume(grid, tmp_path):
    ok = [r for r in read_records(grid) if r["status"] == "ok"]
    a, b = next((a, b) for a in ok for b in ok if a["hidden"] == b["hidden"] and a is not b)
    shutil.copytree(grid, tmp_path / "copy")
    (tmp_path / "copy" / a["checkpoint"]).write_bytes((Path(grid) / b["checkpoint"]).read_bytes())
    with pytest.raises(CheckpointError, match=f"holds run '{b['key']}', not {a['key']}"):
        load_model(tmp_path / "copy", a)
    x_val = load_images("mnist", b).x_val
    with pytest.raises(CheckpointError, match="evaluates to validation BCE .* but its record says 0.5"):
        load_model(grid, {**b, "val_bce": 0.5}, x_val)
    assert load_model(grid, b, x_val).hidden == b["hidden"]


def test_a_failed_run_has_no_checkpoint_to_load(grid):
    record = {**one_record(grid), "status": "failed", "error": "worker died", "checkpoint": None}
    with pytest.raises(CheckpointError, match="has no checkpoint.*failed.*worker died"):
        load_model(grid, record)


def test_records_are_read_with_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/grid.py --quick"):
        read_records(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        read_records(tmp_path)
    (tmp_path / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="cannot be read as JSON .its JSON nests deeper"):
        read_records(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps([{"key": "k", "dataset": "mnist"}]))
    with pytest.raises(ValueError, match="run 0 lacks"):
        read_records(tmp_path)


def test_a_damaged_checkpoint_is_a_refused_model_not_a_crash(grid, tmp_path):
    shutil.copytree(grid, tmp_path / "copy")
    record = one_record(grid)
    (tmp_path / "copy" / record["checkpoint"]).write_bytes(b"not a checkpoint")
    explorer = Explorer(tmp_path / "copy")
    (described,) = [m for d in explorer.state()["datasets"] for m in d["models"] if m["id"] == record["key"]]
    assert "is not a minae checkpoint" in described["problem"]
    with pytest.raises(Unknown, match="was refused"):
        explorer.code_space(record["key"])
    answers = explorer.reconstruct("mnist", np.zeros((1, 784)))["models"]
    assert len(answers) == 8 and record["key"] not in [a["id"] for a in answers]


# --- the images ---------------------------------------------------------------------

def test_the_images_are_the_ones_the_grid_validated_on(grid):
    images = load_images("mnist", one_record(grid))
    assert images.note is None and images.x_val.shape == (500, 784) and images.x_train.shape == (1000, 784)


def test_other_images_are_shown_with_a_note_saying_so(grid):
    images = load_images("mnist", {**one_record(grid), "data_sha256": "0" * 64})
    assert "not the images the grid's models were trained and validated on" in images.note


# --- live training ----------------------------------------------------------------

def small_images(rng, rows=300):
    x = rng.uniform(size=(rows, 784)).astype(np.float32)
    return Images("mnist", tuple("0123456789"), x[:100], np.zeros(100, int), x)


def all_events(training, timeout=60):
    events = []
    while not events or events[-1]["type"] != "done":
        new = training.events_after(len(events), timeout)
        assert new, f"no event in {timeout} s"
        events += new
    return events


def test_live_training_reports_every_epoch_then_finishes(rng):
    events = all_events(LiveTraining(small_images(rng), [16, 4, 16], 0.01, 2).start())
    assert [e["type"] for e in events] == ["epoch", "epoch", "done"] and events[-1]["reason"] == "finished"
    first = events[0]
    assert first["epoch"] == 1 and first["epochs"] == 2 and first["val_bce"] > 0
    assert set(first["diagnostics"]) == {"grad_norm", "update_ratio", "dead_fraction", "output_spread"}
    assert decoded(base64.b64decode(first["images"].split(",")[1])).shape == (56, 224)


def test_the_stop_button_ends_training_after_the_epoch_in_progress(rng):
    training = LiveTraining(small_images(rng), [16, 4, 16], 0.01, 50)
    training.stop()   # asked before the first epoch ends
    events = all_events(training.start())
    assert [e["type"] for e in events] == ["epoch", "done"] and events[-1]["reason"] == "stopped"


def test_a_training_that_fails_says_why_in_its_last_event(rng):
    images = small_images(rng)
    images.x_train[0, 0] = np.nan
    events = all_events(LiveTraining(images, [8], 0.01, 2).start())
    assert events[-1]["type"] == "done" and events[-1]["reason"].startswith("failed: ValueError")
    assert "NaN" in events[-1]["reason"]


# --- the command line, the package, the notebook ----------------------------------

def test_the_command_says_what_to_do_without_results(tmp_path, capsys):
    from minae.explore.cli import main

    with pytest.raises(SystemExit, match="results.json does not exist.*scripts/grid.py --quick"):
        main([str(tmp_path / "nowhere"), "--no-browser"])


def test_the_command_names_an_address_it_cannot_serve_on(grid):
    from minae.explore.cli import main

    with pytest.raises(SystemExit, match=r"cannot serve on 256.1.1.1 port 0 \(.*\); choose another --host"):
        main([str(grid), "--no-browser", "--host", "256.1.1.1"])   # was "[Errno -2] Name or service ..."


def test_the_command_serves_and_warns_when_it_leaves_this_machine(grid):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen([sys.executable, "-m", "minae.explore", str(grid), "--no-browser",
                               "--host", "0.0.0.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        lines = [server.stdout.readline() for _ in range(2)]
        url = lines[1].split("The explorer is at ")[1].split()[0]
        assert lines[1].startswith("9 models loaded.")
        with urllib.request.urlopen(url) as response:
            assert b"minae explorer" in response.read()
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "WARNING: serving on 0.0.0.0: anyone who can reach this machine" in err


def test_the_package_declares_its_command_and_ships_its_page():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in config["options.entry_points"]["console_scripts"].split("\n")
                   if line.strip())
    module, function = scripts["minae-explore"].split(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))
    assert config["options.package_data"]["minae.explore"].strip() == "static/*"
    assert sorted(p.name for p in STATIC.iterdir()) == sorted(name for name, _ in ASSETS.values())


def test_show_displays_the_page_of_a_local_server(grid):
    pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[dev]')")
    from minae.explore import show

    frame = show(grid)
    assert frame.src.startswith("http://127.0.0.1:") and show(grid).src == frame.src   # one server per folder
    with urllib.request.urlopen(frame.src) as response:
        assert b"/static/app.js" in response.read()


def test_the_code_plot_shows_at_most_n_codes(grid):
    explorer = Explorer(grid)
    model_id = one_record(grid)["key"]
    answer = explorer.code_space(model_id)
    assert len(answer["points"]) == min(N_CODES, 500) == len(answer["labels"])


def test_with_no_folder_named_the_explorer_finds_the_grid_where_it_left_its_results(tmp_path, monkeypatch):
    from minae.explore.cli import default_results

    monkeypatch.chdir(tmp_path)
    assert default_results() == "results"                       # nothing yet: the full grid's folder
    (tmp_path / "results-quick").mkdir()
    (tmp_path / "results-quick" / "results.json").write_text("[]")
    assert default_results() == "results-quick"                 # after `grid.py --quick`
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.json").write_text("[]")
    assert default_results() == "results"                       # the full grid's, once it exists
