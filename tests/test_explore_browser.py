"""The explorer in a real browser: headless Chromium, driven with real mouse events,
against a server started here on the bundled sample. Each test saves a screenshot
of its view (to pytest's temporary folder, and to $MINAE_EXPLORE_SHOTS if set)."""

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minae import Autoencoder, evaluate
from minae.diagnostics import DIAG_ROWS
from minae.explore import compute
from minae.explore.explorer import N_CODES, Explorer
from minae.explore.results import load_images
from minae.explore.server import ExplorerServer
from minae.projection import Projection
from minae.tools import explore_bench
from minae.tools.explore_bench import chromium, draw_stroke, open_page, sample_results, wait_until

pytestmark = pytest.mark.skipif(explore_bench.browser_problem() is not None,
                                reason=explore_bench.browser_problem() or "")

DAMAGED = "da3a9ed0da3a9ed0"   # a key as the grid writes them: 16 hex digits


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The nine original configurations on MNIST's sample, and one record whose checkpoint is damaged."""
    out = sample_results(tmp_path_factory.mktemp("grid"))
    records = json.loads((out / "results.json").read_text())
    damaged = {**records[-1], "key": DAMAGED, "repeat": 1, "checkpoint": f"runs/mnist/{DAMAGED}.npz"}
    (out / damaged["checkpoint"]).write_bytes(b"\x93NUMPY not really")
    (out / "results.json").write_text(json.dumps([*records, damaged]))
    return out


@pytest.fixture(scope="module")
def models(grid):
    """{id: model} of every intact checkpoint, loaded here independently of the explorer."""
    records = json.loads((grid / "results.json").read_text())
    return {r["key"]: Autoencoder.load(grid / r["checkpoint"]) for r in records if r["key"] != DAMAGED}


@pytest.fixture(scope="module")
def page(grid):
    """A browser on the explorer's page (one for the module: Chromium takes a second to start)."""
    server = ExplorerServer(Explorer(grid)).start()
    try:
        with chromium(1300, 900) as driver:
            open_page(driver, server.url)
            yield driver
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go; the folder is named in the test output."""
    return tmp_path_factory.mktemp("explore-screenshots")


def screenshot(driver, shots, name):
    path = shots / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("MINAE_EXPLORE_SHOTS"):
        Path(os.environ["MINAE_EXPLORE_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, os.environ["MINAE_EXPLORE_SHOTS"])
    print(f"screenshot: {path}")
    return path


def validation(grid, model_id):
    record = next(r for r in json.loads((grid / "results.json").read_text()) if r["key"] == model_id)
    return load_images(record["dataset"], record).x_val


def pixels_of(data_url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def click_tab(driver, view):
    driver.find_element("css selector", f"#tabs [data-view={view}]").click()


def test_a_drawn_stroke_updates_every_model_with_minaes_picture_and_bce(page, models, shots):
    click_tab(page, "draw")
    page.find_element("id", "clear").click()
    wait_until(page, "explorer.idle()")
    before = page.execute_script("explorer.timings = []; return explorer.version;")
    canvas = page.find_element("id", "canvas")
    draw_stroke(page, canvas, [(-60, -80), (40, -80), (0, 0), (-20, 40), (-30, 90), (30, 60), (70, 90)])
    wait_until(page, "explorer.idle()", what="the reconstructions")
    assert page.execute_script("return explorer.version;") > before + 5   # every move changed the drawing
    assert len(page.execute_script("return explorer.timings;")) >= 2       # pictures updated while drawing

    x = np.asarray(page.execute_script("return explorer.shownPixels;"), dtype=np.float32)[None]
    assert x.shape == (1, 784) and x.sum() > 20                                # a stroke, in [0, 1]
    figures = page.find_elements("css selector", "#models figure:not(.refused)")
    assert sorted(f.get_attribute("data-model") for f in figures) == sorted(models)
    for figure in figures:
        model = models[figure.get_attribute("data-model")]
        bce = figure.find_element("css selector", ".bce")
        expected = evaluate(model, x)
        assert float(bce.get_attribute("data-bce")) == expected                # minae's number, exactly
        assert bce.text == f"BCE {expected:.4f}"
        shown = pixels_of(figure.find_element("tag name", "img").get_attribute("src"))
        np.testing.assert_array_equal(shown.ravel(), np.round(model.predict(x)[0] * 255))
    refused = page.find_element("css selector", f'#models [data-model="{DAMAGED}"]').text
    assert refused.startswith("refused: ") and f"{DAMAGED}.npz" in refused     # a message, not a crash
    screenshot(page, shots, "draw")


def test_a_touch_stroke_draws_too(page):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    click_tab(page, "draw")
    page.find_element("id", "clear").click()
    wait_until(page, "explorer.idle()")
    canvas = page.find_element("id", "canvas")
    box = canvas.rect
    finger = ActionBuilder(page, mouse=PointerInput("touch", "finger"), duration=15)
    finger.pointer_action.move_to_location(int(box["x"] + 100), int(box["y"] + 140)).pointer_down()
    for dx in range(10, 90, 10):
        finger.pointer_action.move_to_location(int(box["x"] + 100 + dx), int(box["y"] + 140))
    finger.pointer_action.pointer_up()
    finger.perform()
    wait_until(page, "explorer.idle()")
    assert sum(page.execute_script("return explorer.shownPixels;")) > 5


def test_a_click_in_empty_code_space_shows_the_decoded_point(page, grid, models, shots):
    click_tab(page, "codes")
    model_id = page.find_element("id", "code-model").get_attribute("value")
    wait_until(page, f"space.model === '{model_id}' && space.points.length > 0", what="the code plot")
    scatter = page.find_element("id", "scatter")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(page).move_to_element_with_offset(scatter, -250, -250).click().perform()   # a corner
    wait_until(page, "document.querySelector('#lifted img') !== null", what="the decoded point")
    point = page.execute_script("return space.lifted;")
    model = models[model_id]
    projection = Projection(model.encode(validation(grid, model_id)[:N_CODES], layer=model.code_layer))
    expected = model.decode(projection.to_code([point]).astype(np.float32))[0]
    shown = pixels_of(page.find_element("css selector", "#lifted img").get_attribute("src"))
    np.testing.assert_array_equal(shown.ravel(), np.round(expected * 255))

    for clicks, index in enumerate((0, 1), start=1):   # two images: the path between them, and the blend
        x, y = page.execute_script(f"return toScreen(space.points[{index}]);")
        at_point = ActionChains(page).move_to_element_with_offset(scatter, round(x) - 260, round(y) - 260)
        at_point.click().perform()
        wait_until(page, f"space.chosen.length === {clicks}", what="the clicked image")
    wait_until(page, "document.querySelectorAll('#path img').length === 2", what="the path")
    assert page.find_element("css selector", "#hovered img") is not None
    screenshot(page, shots, "codes")


def test_units_show_each_layer_and_mark_the_dead(page, grid, models, shots):
    click_tab(page, "units")
    model_id = page.find_element("id", "unit-model").get_attribute("value")
    wait_until(page, "document.querySelectorAll('#layers .layer').length > 0", what="the units")
    model = models[model_id]
    rows = validation(grid, model_id)[:DIAG_ROWS]
    dead = [model.encode(rows, layer=k).max(axis=0) <= 0 for k in range(1, len(model.hidden) + 1)]
    titles = [h.text for h in page.find_elements("css selector", "#layers .layer h3")]
    assert titles == [f"hidden layer {k}: {h} units, {d.sum()} dead"
                      for k, (h, d) in enumerate(zip(model.hidden, dead), start=1)]
    # The filters picture is minae.figures', dead units marked, computed for the same rows.
    shown = page.find_element("id", "filters").get_attribute("src")
    assert shown == compute.data_url(compute.filters(model, rows))
    screenshot(page, shots, "units")


def test_a_two_epoch_live_training_draws_two_points(page, shots):
    click_tab(page, "train")
    epochs = page.find_element("id", "train-epochs")
    epochs.clear()
    epochs.send_keys("2")
    page.find_element("id", "train-start").click()
    wait_until(page, "document.getElementById('train-status').textContent.includes('(finished)')",
               timeout=60, what="the training")
    for series in ("train", "val"):
        assert len(page.find_elements("css selector", f"#curve circle.{series}")) == 2
    assert page.find_element("id", "train-images").get_attribute("src").startswith("data:image/png")
    assert len(page.find_elements("css selector", "#diagnostics tr")) == 2 + 4   # header, 4 layers, spread
    screenshot(page, shots, "train")
