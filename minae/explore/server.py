"""The explorer's web server: the page, its three assets, and a JSON door to the models.

What it teaches: how a page asks a Python model a question. The browser
sends a POST with a JSON body; the server checks every value, calls the
Explorer, and answers in JSON. A drawing's reconstructions, for example:

    POST /api/reconstruct   {"dataset": "mnist", "pixels": [784 numbers in [0, 1]]}
    200  {"models": [{"id": "2664bc2a2f512a04", "bce": 0.1342,
                      "image": "data:image/png;base64,..."}, ...], "server_ms": 1.9}

Every question the page can ask is one entry of ``POST_API``; the live
training streams its epochs as server-sent events (GET /api/train/events:
one ``data: {json}`` line per event, over a response that stays open).

What it refuses, each with a 4xx status and {"error": "<why>"}: a body that
is not a JSON object of exactly the expected fields (400), a value of the
wrong type, length or range, NaN or infinity included (400), a body over
MAX_BODY bytes (413) or without a length (411), a POST that is not
application/json (415; a web page of another site cannot send that without
asking first, so it cannot drive this server), a Host header other than
this server's local name (403; a DNS-rebinding page cannot reach it), an
unknown path, dataset or model (404; only the assets below are files it
serves, looked up by exact name, so no path leads anywhere else), a second
training while one runs (409). An error while answering is a 500 for that
request only; the server goes on.

About 350 lines, most of them the checks above: each refusal is a few
lines of its own, kept beside the request it guards.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from minae.explore.explorer import Busy, Unknown
from minae.optim import check_lr

STATIC = Path(__file__).parent / "static"
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
LOOPBACK = ("127.0.0.1", "localhost")
MAX_BODY = 100_000          # bytes: 784 pixels written out in full take about 20 kB
DRAIN_LIMIT = 8_000_000     # a body up to this size is read and dropped, so its sender sees the 413
MAX_LAYERS, MAX_WIDTH, MAX_EPOCHS = 9, 1024, 100   # bounds of a live training
MAX_COORDINATE = 1e6        # a code-plot point further out is no point of the plot
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Scripts and styles only from this server; images also as data: URLs (the model's pictures).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "Cache-Control": "no-store",
}


class BadRequest(Exception):
    """A request the server refuses, with its HTTP status and the reason."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------------
# Checking a request's values
# ---------------------------------------------------------------------------

def fields(body, *names):
    """The body must hold exactly these fields."""
    missing = [n for n in names if n not in body]
    extra = [n for n in body if n not in names]
    if missing or extra:
        raise BadRequest(400, f"expected the fields {', '.join(names) or '(none)'}"
                              + (f"; missing {', '.join(missing)}" if missing else "")
                              + (f"; unexpected {', '.join(map(repr, extra))}" if extra else ""))
    return [body[n] for n in names]


def text(value, name):
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise BadRequest(400, f"{name} must be a name (a string of 1 to 100 characters), got {value!r:.60}")
    return value


def integer(value, name, low, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise BadRequest(400, f"{name} must be an integer {bounds}, got {value!r:.60}")
    return value


def number(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not low <= value <= high:
        raise BadRequest(400, f"{name} must be a finite number from {low:g} to {high:g}, got {value!r:.60}")
    return float(value)


def pixels(value, count):
    """An image: a list of ``count`` finite numbers in [0, 1] -> (1, count) float64."""
    if not isinstance(value, list) or len(value) != count:
        got = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
        raise BadRequest(400, f"pixels must be a list of {count} numbers (an image, row by row), got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise BadRequest(400, "pixels must all be numbers")
    x = np.asarray(value, dtype=np.float64)[None]
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise BadRequest(400, f"pixels must be finite numbers in [0, 1]; these span "
                              f"[{x.min():g}, {x.max():g}]")
    return x


def _no_constants(name):
    raise ValueError(f"{name} is not a number JSON allows; send finite numbers")


# ---------------------------------------------------------------------------
# The questions the page may ask: path -> answer(explorer, body)
# ---------------------------------------------------------------------------

def _image_size(explorer, dataset):
    return explorer.dataset(dataset).x_val.shape[1]


def _reconstruct(explorer, body):
    dataset, values = fields(body, "dataset", "pixels")
    dataset = text(dataset, "dataset")
    return explorer.reconstruct(dataset, pixels(values, _image_size(explorer, dataset)))


def _example(explorer, body):
    dataset, label = fields(body, "dataset", "label")
    dataset = text(dataset, "dataset")
    classes = len(explorer.dataset(dataset).classes)
    return explorer.example(dataset, None if label is None else integer(label, "label", 0, classes - 1))


def _codes(explorer, body):
    (model,) = fields(body, "model")
    return explorer.code_space(text(model, "model"))


def _point(explorer, body):
    model, index = fields(body, "model", "index")
    return explorer.point(text(model, "model"), integer(index, "index", 0))


def _lift(explorer, body):
    model, point = fields(body, "model", "point")
    if not isinstance(point, list) or len(point) != 2:
        raise BadRequest(400, f"point must be a list of two numbers [x, y], got {point!r:.60}")
    xy = [number(v, "a point's coordinate", -MAX_COORDINATE, MAX_COORDINATE) for v in point]
    return explorer.lift(text(model, "model"), xy)


def _interpolate(explorer, body):
    model, a, b = fields(body, "model", "a", "b")
    return explorer.interpolate(text(model, "model"), integer(a, "a", 0), integer(b, "b", 0))


def _units(explorer, body):
    model, values = fields(body, "model", "pixels")
    run = explorer.run(text(model, "model"))
    return explorer.units(model, pixels(values, run.model.input_dim))


def _train(explorer, body):
    dataset, hidden, lr, epochs = fields(body, "dataset", "hidden", "lr", "epochs")
    if not isinstance(hidden, list) or not 1 <= len(hidden) <= MAX_LAYERS:
        raise BadRequest(400, f"hidden must be a list of 1 to {MAX_LAYERS} layer widths, got {hidden!r:.60}")
    hidden = [integer(h, "a hidden layer width", 1, MAX_WIDTH) for h in hidden]
    try:
        lr = check_lr(number(lr, "lr", 0.0, 1.0))
    except ValueError as exc:
        raise BadRequest(400, str(exc)) from None
    return explorer.train(text(dataset, "dataset"), hidden, lr, integer(epochs, "epochs", 1, MAX_EPOCHS))


def _stop(explorer, body):
    fields(body)
    return explorer.stop()


GET_API = {"/api/state": lambda explorer, body: explorer.state()}
POST_API = {"/api/reconstruct": _reconstruct, "/api/example": _example, "/api/codes": _codes,
            "/api/point": _point, "/api/lift": _lift, "/api/interpolate": _interpolate,
            "/api/units": _units, "/api/train": _train, "/api/train/stop": _stop}
EVENTS = "/api/train/events"


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """One request: find its answer, send it; every failure becomes a status and a reason."""

    server_version = "minae-explore"
    timeout = 30   # seconds a client may take to send its request

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _handle(self, method):
        try:
            self._respond(method)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the page went away mid-answer: nothing left to tell it

    def _respond(self, method):
        path = urlsplit(self.path).path
        try:
            self._check_host()
            if method == "GET" and path in self.server.assets:
                return self._send(200, *self.server.assets[path])
            if method == "GET" and path == EVENTS:
                return self._stream_events()
            routes, others = (GET_API, POST_API) if method == "GET" else (POST_API, GET_API)
            if path not in routes:
                if path in others or path == EVENTS:
                    raise BadRequest(405, f"{path} answers {'POST' if method == 'GET' else 'GET'} requests")
                raise BadRequest(404, f"nothing at {path[:100]}")
            body = self._json_body() if method == "POST" else None
            self._send_json(200, routes[path](self.server.explorer, body))
        except BadRequest as exc:
            self._send_json(exc.status, {"error": exc.message})
        except Unknown as exc:
            self._send_json(404, {"error": str(exc)})
        except Busy as exc:
            self._send_json(409, {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as exc:
            traceback.print_exc()
            self._send_json(500, {"error": f"the explorer failed on this request ({type(exc).__name__}: "
                                           f"{exc}); the server goes on"})

    def _check_host(self):
        allowed = self.server.allowed_hosts
        if allowed is not None and self.headers.get("Host") not in allowed:
            raise BadRequest(403, "this server answers requests addressed to it as "
                                  f"{' or '.join(sorted(allowed))} only")

    def _json_body(self):
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            raise BadRequest(415, "send the request body as JSON, with Content-Type: application/json")
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(411, "the request needs a Content-Length")
        try:
            length = int(length)
        except ValueError:
            raise BadRequest(400, f"Content-Length {length[:30]!r} is not a number") from None
        if length < 0:
            raise BadRequest(400, "Content-Length is negative")
        if length > MAX_BODY:
            if length <= DRAIN_LIMIT:
                self.rfile.read(length)
            self.close_connection = True
            raise BadRequest(413, f"the request body is {length:,} bytes; the limit is {MAX_BODY:,}")
        raw = self.rfile.read(length)
        if len(raw) < length:
            raise BadRequest(400, "the request body is shorter than its Content-Length")
        try:
            body = json.loads(raw, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(400, f"the request body is not valid JSON ({str(exc)[:200]})") from None
        if not isinstance(body, dict):
            raise BadRequest(400, "the request body must be a JSON object")
        return body

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, answer):
        self._send(status, json.dumps(answer, allow_nan=False, separators=(",", ":")).encode(),
                   "application/json")

    def _stream_events(self):
        """Server-sent events of the current training, from its first epoch, until it is done."""
        training = self.server.explorer.training
        if training is None:
            self.send_response(204)   # nothing to stream; an EventSource then stops asking
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        while not self.server.closing:
            events = training.events_after(sent, timeout=1.0)
            for event in events:
                self.wfile.write(f"data: {json.dumps(event, allow_nan=False)}\n\n".encode())
            sent += len(events)
            if events and events[-1]["type"] == "done":
                return

    def log_message(self, format, *args):
        pass   # one line per request would bury what matters; errors print their traceback


class ExplorerServer(ThreadingHTTPServer):
    """The HTTP server of one Explorer, each request on its own thread.

    host: "127.0.0.1" (the default everywhere) keeps it on this machine;
    any other host serves whoever can reach it. port 0: a free port.
    """

    daemon_threads = True

    def __init__(self, explorer, host="127.0.0.1", port=0):
        super().__init__((host, port), Handler)
        self.explorer = explorer
        self.closing = False
        self.port = self.server_address[1]
        self.allowed_hosts = ({f"{name}:{self.port}" for name in LOOPBACK} if host in LOOPBACK else None)
        self.assets = {path: ((STATIC / name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()}
        self.url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0', *LOOPBACK) else host}:{self.port}/"

    def start(self):
        """Serve in a background thread; returns self."""
        threading.Thread(target=self.serve_forever, name="minae-explore-server", daemon=True).start()
        return self

    def stop(self):
        self.closing = True
        self.shutdown()
        self.server_close()
