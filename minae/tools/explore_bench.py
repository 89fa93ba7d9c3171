"""Benchmark of the explorer, and the headless browser its tests drive.

What it teaches: measure what the user waits for, where the user waits. A
drawn stroke is timed in the page itself, from the first change of the
drawing not yet sent to the moment every model's new picture is on screen
(the next frame after they were set): the server's work, the round trip and
the painting. Page load is timed from navigation to the first
reconstructions on screen. The server alone is timed too, from Python,
without a browser. Targets: a stroke to every reconstruction in
under 100 ms, a page load in under 1 s.

The browser is the system's Chromium driven by Selenium through the
system's chromedriver, named explicitly: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from minae.data import load_sample
from minae.grid import GridConfig, run_grid

TARGET_STROKE_MS, TARGET_LOAD_MS = 100, 1000
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
NO_BROWSER = ("Chromium and its driver are not installed (Debian: apt-get install chromium chromium-driver), "
              "or selenium is not (pip install -e '.[dev]')")


def sample_results(out, datasets=("mnist",), epochs=1, limit_train=1000, limit_val=500):
    """Train the original grid (3 depths x 3 learning rates per dataset) on the
    bundled sample into ``out``, as quickly as the arguments allow; returns out."""
    config = GridConfig(datasets=tuple(datasets), epochs=epochs, limit_train=limit_train, limit_val=limit_val,
                        out=str(out), plots=False, quiet=True)
    data = {name: load_sample(name, limit_train=limit_train, limit_val=limit_val, seed=config.seed)
            for name in datasets}
    run_grid(config, data, log=lambda message: None)
    return Path(out)


def chromium_paths():
    """(browser, driver) of the system's Chromium, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def browser_problem():
    """Why no headless browser can be started here, or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return NO_BROWSER
    return None if chromium_paths() else NO_BROWSER


@contextlib.contextmanager
def chromium(width=1400, height=1000):
    """A headless Chromium under Selenium, for a with block; its profile is a fresh
    temporary folder, removed with it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    with tempfile.TemporaryDirectory(prefix="minae-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        session = webdriver.Chrome(service=Service(driver), options=options)
        try:
            yield session
        finally:
            session.quit()


def draw_stroke(driver, element, offsets, pause_ms=15):
    """Press the mouse at the first offset from ``element``'s centre, move through the
    others, release: real pointer events, as a hand with a mouse makes them."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver, duration=pause_ms)
    x, y = offsets[0]
    actions.move_to_element_with_offset(element, x, y).click_and_hold()
    for nx, ny in offsets[1:]:
        actions.move_by_offset(nx - x, ny - y)
        x, y = nx, ny
    actions.release().perform()


def wait_until(driver, script, timeout=20.0, what="the page"):
    """Wait until the JavaScript expression ``script`` is true in the page."""
    end = time.monotonic() + timeout
    while not driver.execute_script(f"return Boolean({script});"):
        if time.monotonic() > end:
            error = driver.execute_script("return document.getElementById('error')?.textContent;")
            raise TimeoutError(f"{what} did not get there in {timeout:.0f} s ({script})"
                               + (f"; the page says: {error}" if error else ""))
        time.sleep(0.02)


def open_page(driver, url):
    """Load the page and wait until its first reconstructions are on screen."""
    driver.get(url)
    wait_until(driver, "window.explorer && explorer.readyAt !== null && explorer.idle()", what="the page")


def page_load(driver, url, reps):
    """Per load, (ms to the load event, ms to the first reconstructions on screen)."""
    loads = []
    for _ in range(reps):
        open_page(driver, url)
        load = driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd;")
        loads.append((load, driver.execute_script("return explorer.readyAt;")))
    return loads


def zigzag(n=12, size=100):
    """Offsets (px from the canvas centre) of a stroke across the canvas."""
    return [(-size + 2 * size * i // (n - 1), (-1) ** i * size // 3) for i in range(n)]


def stroke_timings(driver, url, strokes):
    """The page's timings of every reconstruction shown while drawing ``strokes`` strokes."""
    open_page(driver, url)
    canvas = driver.find_element("id", "canvas")
    driver.execute_script("explorer.timings = [];")
    for k in range(strokes):
        driver.find_element("id", "clear").click()
        draw_stroke(driver, canvas, [(x, y + 10 * (k % 5) - 20) for x, y in zigzag()])
        wait_until(driver, "explorer.idle()", what="the reconstructions")
    return driver.execute_script("return explorer.timings;")


def server_round_trips(url, dataset, reps):
    """ms of POST /api/reconstruct from Python, round trip included, and the server's own ms."""
    pixels = [0.0] * 784
    for k in range(200, 600):   # a thick bar, like a drawn stroke
        pixels[k] = 1.0 if k % 28 in range(10, 18) else 0.0
    body = json.dumps({"dataset": dataset, "pixels": pixels}).encode()
    trips, server = [], []
    for _ in range(reps):
        request = urllib.request.Request(url + "api/reconstruct", body, {"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
        trips.append(1000 * (time.perf_counter() - start))
        server.append(answer["server_ms"])
    return trips, server, len(answer["models"])


def verdict(ms, target):
    return f"target < {target} ms: {'met' if ms < target else 'MISSED'}"


def summary(values):
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "n": len(ordered)}


def run(results_dir, *, strokes=10, loads=5, trips=50, data_dir=None, log=print):
    """Every measurement on the grid in ``results_dir``; returns them as a dict."""
    from minae.explore.explorer import Explorer
    from minae.explore.server import ExplorerServer

    explorer = Explorer(results_dir, data_dir)
    dataset = next(iter(explorer.images))
    models = sum(1 for r in explorer.runs.values() if r.model is not None and r.record["dataset"] == dataset)
    server = ExplorerServer(explorer).start()
    result = {"dataset": dataset, "models": models}
    try:
        trip_ms, server_ms, answered = server_round_trips(server.url, dataset, trips)
        result["python_round_trip_ms"], result["server_ms"] = summary(trip_ms), summary(server_ms)
        log(f"server alone ({answered} models of {dataset}, from Python): round trip median "
            f"{result['python_round_trip_ms']['median']:.1f} ms, of which the models "
            f"{result['server_ms']['median']:.1f} ms")
        problem = browser_problem()
        if problem:
            log(f"browser: not measured: {problem}")
            return result
        with chromium() as driver:
            result["page_load"] = [{"load_event_ms": a, "first_pictures_ms": b}
                                   for a, b in page_load(driver, server.url, loads)]
            timings = stroke_timings(driver, server.url, strokes)
        result["first_pictures_ms"] = summary([p["first_pictures_ms"] for p in result["page_load"]])
        result["stroke_to_screen_ms"] = summary([t["ms"] for t in timings])
        result["request_to_screen_ms"] = summary([t["request_ms"] for t in timings])
        s, load = result["stroke_to_screen_ms"], result["first_pictures_ms"]
        log(f"page load to the first {models} reconstructions on screen: median {load['median']:.0f} ms "
            f"over {load['n']} loads ({verdict(load['median'], TARGET_LOAD_MS)})")
        log(f"drawn stroke to {models} reconstructions on screen: median {s['median']:.1f} ms, 90th "
            f"percentile {s['p90']:.1f} ms over {s['n']} updates in {strokes} strokes ("
            f"{verdict(s['median'], TARGET_STROKE_MS)}); the request and painting alone: median "
            f"{result['request_to_screen_ms']['median']:.1f} ms")
    finally:
        server.stop()
    return result


def screenshot(results_dir, path, width=980, height=680, data_dir=None):
    """A PNG of the Draw view with a digit drawn (the README's picture)."""
    from minae.explore.explorer import Explorer
    from minae.explore.server import ExplorerServer

    server = ExplorerServer(Explorer(results_dir, data_dir)).start()
    try:
        with chromium(width, height) as driver:
            open_page(driver, server.url)
            canvas = driver.find_element("id", "canvas")
            draw_stroke(driver, canvas, [(-40, -70), (0, -85), (40, -60), (30, -10), (-10, 30), (-50, 80),
                                         (0, 75), (60, 80)])
            wait_until(driver, "explorer.idle()", what="the reconstructions")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(path))
    finally:
        server.stop()
    return Path(path)
