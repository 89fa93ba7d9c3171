"""The explorer's server over real HTTP: good questions get the model's answers, bad
ones a clear 4xx, and none of them stops the server."""

import base64
import http.client
import io
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minae import Autoencoder, evaluate
from minae.explore.explorer import N_CODES, Explorer
from minae.explore.results import load_images
from minae.explore.server import MAX_BODY, ExplorerServer
from minae.projection import Projection
from minae.tools.explore_bench import sample_results

DAMAGED = "da3a9ed0da3a9ed0"   # a key as the grid writes them: 16 hex digits


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The nine original configurations on MNIST's sample, plus a tenth record whose
    checkpoint file is damaged."""
    out = sample_results(tmp_path_factory.mktemp("grid"))
    records = json.loads((out / "results.json").read_text())
    damaged = {**records[0], "key": DAMAGED, "repeat": 1, "checkpoint": f"runs/mnist/{DAMAGED}.npz"}
    (out / damaged["checkpoint"]).write_bytes(b"PK\x03\x04 half a zip file")
    (out / "results.json").write_text(json.dumps([*records, damaged]))
    return out


@pytest.fixture(scope="module")
def server(grid):
    server = ExplorerServer(Explorer(grid)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def models(grid):
    """Every intact model, loaded here independently of the explorer: {id: (record, model)}."""
    records = json.loads((grid / "results.json").read_text())
    return {r["key"]: (r, Autoencoder.load(grid / r["checkpoint"])) for r in records if r["key"] != DAMAGED}


def ask(server, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or the raw bytes) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload


def pixels_of(data_url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def drawing():
    x = np.zeros((28, 28))
    x[6:22, 12:16] = 1.0
    x[6:8, 8:20] = 0.6
    return x.ravel()


# --- good questions, the model's answers ---------------------------------------------

def test_the_state_lists_every_model_and_why_one_was_refused(server):
    status, state = ask(server, "GET", "/api/state")
    assert status == 200
    (mnist,) = state["datasets"]
    assert mnist["hidden"] == [[32, 16, 32], [64, 32, 16, 32, 64], [128, 64, 32, 64, 128]]
    assert mnist["lrs"] == [0.1, 0.01, 0.001] and len(mnist["models"]) == 10
    (refused,) = [m for m in mnist["models"] if m["problem"]]
    assert refused["id"] == DAMAGED and f"{DAMAGED}.npz" in refused["problem"]


def test_a_drawing_gets_every_models_picture_and_bce(server, models):
    x = drawing()
    status, answer = ask(server, "POST", "/api/reconstruct", {"dataset": "mnist", "pixels": x.tolist()})
    assert status == 200 and sorted(a["id"] for a in answer["models"]) == sorted(models)
    for a in answer["models"]:
        model = models[a["id"]][1]
        rows = x[None].astype(np.float32)
        assert a["bce"] == evaluate(model, rows)   # the very number minae computes, through JSON
        np.testing.assert_array_equal(pixels_of(a["image"]).ravel(), np.round(model.predict(rows)[0] * 255))


def test_a_random_image_of_a_class(server, grid, models):
    record = next(iter(models.values()))[0]
    images = load_images("mnist", record)
    status, answer = ask(server, "POST", "/api/example", {"dataset": "mnist", "label": 3})
    assert status == 200 and answer["label"] == 3 and images.y_val[answer["index"]] == 3
    np.testing.assert_array_equal(np.float32(answer["pixels"]), images.x_val[answer["index"]])


def test_empty_space_decodes_to_the_lifted_code(server, models):
    model_id, (record, model) = next(iter(models.items()))
    status, space = ask(server, "POST", "/api/codes", {"model": model_id})
    x_val = load_images("mnist", record).x_val[:N_CODES]
    codes = model.encode(x_val, layer=model.code_layer)
    projection = Projection(codes)
    np.testing.assert_allclose(space["points"], projection.to_2d(codes), atol=1e-4)   # sent rounded
    point = [float(np.max(projection.to_2d(codes)[:, 0])) + 5.0, 0.0]               # beyond every image
    status, lifted = ask(server, "POST", "/api/lift", {"model": model_id, "point": point})
    assert status == 200
    expected = model.decode(projection.to_code([point]).astype(np.float32))[0]
    np.testing.assert_array_equal(pixels_of(lifted["image"]).ravel(), np.round(expected * 255))


def test_the_path_between_two_images_and_their_blend(server, models):
    model_id = next(iter(models))
    status, answer = ask(server, "POST", "/api/interpolate", {"model": model_id, "a": 0, "b": 1})
    assert status == 200
    assert pixels_of(answer["path"]).shape == pixels_of(answer["blend"]).shape == (28, 8 * 28)


def test_units_answer_each_layers_activations(server, models):
    model_id, (_, model) = next(iter(models.items()))
    x = drawing()
    status, answer = ask(server, "POST", "/api/units", {"model": model_id, "pixels": x.tolist()})
    assert status == 200 and [len(layer["dead"]) for layer in answer["layers"]] == model.hidden
    np.testing.assert_allclose(answer["layers"][0]["activations"],
                               model.encode(x[None].astype(np.float32), layer=1)[0], atol=1e-5)


def stream(server):
    """The events of the current training, read from the server-sent event stream."""
    status, raw = ask(server, "GET", "/api/train/events")
    assert status == 200
    lines = raw.decode().splitlines()
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]


def test_a_live_training_streams_its_epochs_and_one_runs_at_a_time(server):
    body = {"dataset": "mnist", "hidden": [16, 8, 16], "lr": 0.01, "epochs": 60}
    assert ask(server, "POST", "/api/train", body)[0] == 200
    status, answer = ask(server, "POST", "/api/train", body)
    assert status == 409 and "already running" in answer["error"]
    assert ask(server, "POST", "/api/train/stop", {}) == (200, {"stopping": True})
    events = stream(server)
    assert events[-1] == {"type": "done", "reason": "stopped"} and len(events) < 60

    assert ask(server, "POST", "/api/train", {**body, "epochs": 2})[0] == 200
    events = stream(server)
    assert [e["type"] for e in events] == ["epoch", "epoch", "done"] and events[-1]["reason"] == "finished"


def test_before_any_training_the_event_stream_is_empty(grid):
    server = ExplorerServer(Explorer(grid)).start()
    try:
        assert ask(server, "GET", "/api/train/events")[0] == 204
    finally:
        server.stop()


# --- bad questions, clear refusals -------------------------------------------------

GOOD = {"dataset": "mnist", "pixels": [0.0] * 784}
TRAIN = {"dataset": "mnist", "hidden": [8], "lr": 0.01, "epochs": 1}

BAD = [
    ("short image", "/api/reconstruct", {**GOOD, "pixels": [0.0] * 783}, 400, "a list of 784"),
    ("image out of range", "/api/reconstruct", {**GOOD, "pixels": [1.5] + [0.0] * 783}, 400, r"in \[0, 1\]"),
    ("negative pixel", "/api/reconstruct", {**GOOD, "pixels": [-0.1] + [0.0] * 783}, 400, r"in \[0, 1\]"),
    ("pixels as text", "/api/reconstruct", {**GOOD, "pixels": ["0"] * 784}, 400, "must all be numbers"),
    ("pixels as booleans", "/api/reconstruct", {**GOOD, "pixels": [True] * 784}, 400, "must all be numbers"),
    ("unknown dataset", "/api/reconstruct", {**GOOD, "dataset": "cifar"}, 404, "unknown dataset 'cifar'"),
    ("dataset not a name", "/api/reconstruct", {**GOOD, "dataset": ["mnist"]}, 400, "dataset must be a name"),
    ("missing field", "/api/reconstruct", {"pixels": [0.0] * 784}, 400, "missing dataset"),
    ("extra field", "/api/reconstruct", {**GOOD, "model": "x"}, 400, "unexpected 'model'"),
    ("not an object", "/api/reconstruct", [0.0] * 784, 400, "must be a JSON object"),
    ("unknown model", "/api/codes", {"model": "0123456789abcdef"}, 404, "unknown model"),
    ("refused model", "/api/codes", {"model": DAMAGED}, 404, f"was refused.*{DAMAGED}.npz"),
    ("unknown model for units", "/api/units", {"model": "nope", "pixels": [0.0] * 784}, 404, "unknown model"),
    ("label out of range", "/api/example", {"dataset": "mnist", "label": 10}, 400, "from 0 to 9"),
    ("negative index", "/api/point", {"model": "MODEL", "index": -1}, 400, "index must be an integer >= 0"),
    ("index past the end", "/api/point", {"model": "MODEL", "index": 500}, 404, "no validation image 500"),
    ("point far out", "/api/lift", {"model": "MODEL", "point": [1e300, 0]}, 400, "finite number"),
    ("point of three", "/api/lift", {"model": "MODEL", "point": [1, 2, 3]}, 400, "two numbers"),
    ("zero epochs", "/api/train", {**TRAIN, "epochs": 0}, 400, "epochs"),
    ("too many epochs", "/api/train", {**TRAIN, "epochs": 10**6}, 400, "from 1 to 100"),
    ("zero width", "/api/train", {**TRAIN, "hidden": [0]}, 400, "width"),
    ("huge layer", "/api/train", {**TRAIN, "hidden": [10**6]}, 400, "1024"),
    ("no layers", "/api/train", {**TRAIN, "hidden": []}, 400, "1 to 9 layer widths"),
    ("zero learning rate", "/api/train", {**TRAIN, "lr": 0}, 400, "> 0"),
    ("learning rate as text", "/api/train", {**TRAIN, "lr": "0.1"}, 400, "lr must be a finite number"),
]


@pytest.mark.parametrize("path, body, status, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_value_gets_a_clear_4xx(server, models, path, body, status, message):
    if isinstance(body, dict) and body.get("model") == "MODEL":
        body = {**body, "model": next(iter(models))}
    got, answer = ask(server, "POST", path, body)
    assert got == status, answer
    assert re.search(message, answer["error"]), answer["error"]


@pytest.mark.parametrize("raw, message", [
    (b'{"dataset": "mnist", "pixels": [NaN' + b", 0" * 783 + b"]}", "NaN is not a number JSON allows"),
    (b'{"dataset": "mnist", "pixels": [Infinity' + b", 0" * 783 + b"]}", "Infinity is not"),
    (b'{"dataset": "mnist", ', "not valid JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "not valid JSON|must be a JSON object"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_a_body_that_is_not_good_json_gets_400(server, raw, message):
    status, answer = ask(server, "POST", "/api/reconstruct", raw=raw)
    assert status == 400 and re.search(message, answer["error"]), answer


def test_a_huge_body_gets_413_and_the_server_reads_no_more_than_it_must(server):
    status, answer = ask(server, "POST", "/api/reconstruct", raw=b" " * (10 * MAX_BODY))
    assert status == 413 and f"the limit is {MAX_BODY:,}" in answer["error"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:   # claims a terabyte
        s.sendall(f"POST /api/reconstruct HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{".encode())
        assert s.recv(200).startswith(b"HTTP/1.0 413")


def test_a_post_without_a_length_or_as_a_form_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"POST /api/reconstruct HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Content-Type: application/json\r\n\r\n".encode())
        assert s.recv(200).startswith(b"HTTP/1.0 411")
    # What a page of another site can send without asking first (text/plain) is refused.
    status, answer = ask(server, "POST", "/api/train", TRAIN, headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]


@pytest.mark.parametrize("path", ["/static/../setup.cfg", "/../../etc/passwd", "/static/%2e%2e/server.py",
                                  "/static/..%2fexplorer.py", "/results.json", f"/runs/mnist/{DAMAGED}.npz",
                                  "/static/", "//etc/passwd", "/static/app.js/../../__init__.py"])
def test_no_path_leads_outside_the_assets(server, path):
    status, answer = ask(server, "GET", path)
    assert status == 404 and "nothing at" in answer["error"]


def test_only_the_servers_own_name_is_answered(server):
    status, answer = ask(server, "GET", "/api/state", headers={"Host": "attacker.example:80"})
    assert status == 403 and "127.0.0.1" in answer["error"]
    assert ask(server, "GET", "/api/state", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_a_question_asked_the_wrong_way_gets_405(server):
    assert ask(server, "GET", "/api/reconstruct")[0] == 405
    assert ask(server, "POST", "/api/state", {})[0] == 405


def test_the_server_answers_after_every_bad_request(server):
    start = time.perf_counter()
    status, state = ask(server, "GET", "/api/state")
    assert status == 200 and state["datasets"][0]["name"] == "mnist"
    assert time.perf_counter() - start < 5


def test_the_page_and_its_assets_are_served_with_a_strict_policy(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assets = [("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")]
    for path, kind in assets:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and response.getheader("Content-Type").startswith(kind) and body
        assert response.getheader("Content-Security-Policy") == "default-src 'self'; img-src 'self' data:"
        connection.close()
    page = (Path(__file__).resolve().parents[1] / "minae/explore/static/index.html").read_text()
    assert "http" not in page.replace("http-equiv", "")   # nothing from the network: no CDN


def test_the_benchmark_times_the_server_and_says_when_it_has_no_browser(grid, monkeypatch):
    from minae.tools import explore_bench

    monkeypatch.setattr(explore_bench, "browser_problem", lambda: "no browser here")
    said = []
    result = explore_bench.run(grid, trips=3, log=said.append)
    assert result["models"] == 9 and result["python_round_trip_ms"]["n"] == 3
    assert 0 < result["server_ms"]["median"] <= result["python_round_trip_ms"]["median"]
    assert said[-1] == "browser: not measured: no browser here" and "stroke_to_screen_ms" not in result
