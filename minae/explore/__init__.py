"""See what a grid learned: an explorer in the browser, every model side by side.

    python -m minae.explore results          # or: minae-explore results
    minae.explore.show("results")            # in a notebook: the same page in the output cell

Four views of the grid in ``results/`` (its results.json and checkpoints):
Draw (every model's reconstruction and BCE of what you draw, updating as you
draw), Code space (the bottleneck codes of validation images on their PCA
plane; click empty space to decode a point no image maps to, click two
images for the path between their codes), Units (the first layer's filters,
each unit's activation, dead units marked) and Train live (``fit`` in the
background, each epoch streamed to the page).

What it teaches: the page computes nothing. Every number and picture is
minae's own model answering a question in Python (predict, evaluate,
encode, decode, and minae.projection's PCA with both directions); the
browser draws the answers. Read in this order:

    compute     the model calls behind each picture, and pictures as PNG
    results     the grid's records, their checkpoints (checked), their images
    training    live training: fit's callback turned into a stream of events
    explorer    every question the page may ask, answered
    server      HTTP: the page, its assets, the JSON questions, their checks
    cli         the command line; ``show`` below is the notebook's door
    static/     index.html, app.js, style.css: the page

Design. The server is the standard library's ThreadingHTTPServer: a tool for
one user on one machine asks a dozen small JSON questions and follows one
stream of server-sent events, which needs no framework, so the explorer
installs nothing and runs wherever minae runs. The page is one HTML file,
one script and one style sheet using only what browsers provide (fetch,
EventSource, canvas, SVG): no framework, no build step, nothing from the
network; the three files ship inside the package. Pictures are PNGs encoded
in Python from minae's arrays (minae.figures' tiles and filters), so what the
page shows is what the model computed.
"""

from __future__ import annotations

from minae.grid.config import GridConfig

_SERVERS = {}   # results folder -> the running server show() started for it


def show(results_dir=GridConfig.out, *, data_dir=None, height=760):
    """Display the explorer of ``results_dir`` in a notebook's output cell.

    Starts the server on a free port of 127.0.0.1 the first time (once per
    results folder, for the kernel's lifetime) and returns an IFrame of its
    page; the browser showing the notebook must run on the same machine.
    """
    from pathlib import Path

    from IPython.display import IFrame

    from minae.explore.explorer import Explorer
    from minae.explore.server import ExplorerServer

    key = (str(Path(results_dir).resolve()), data_dir)
    if key not in _SERVERS:
        _SERVERS[key] = ExplorerServer(Explorer(results_dir, data_dir)).start()
    return IFrame(_SERVERS[key].url, width="100%", height=height)


__all__ = ["show"]
