"""What the explorer asks of a model, answered by the model's own methods.

What it teaches: every number and picture in the explorer is one of a few
calls on a trained Autoencoder; the browser only shows the answers.

    a reconstruction and its BCE   model.predict(x) and minae.evaluate(model, x)
    the code of an image           model.encode(x, layer=model.code_layer)
    the image of a code            model.decode(code)
    each unit's activation         model.encode(x, layer=k), for every hidden layer k
    which units are dead           minae.diagnostics.dead_units, after a forward pass
    the first layer's filters      model.params[0], W1 (D, H1): one column per unit,
                                   drawn by minae.figures as every figure draws them

Images travel to the page as PNG files, written by ``png`` below: a PNG is
a few header bytes and the image's rows of bytes, compressed with zlib.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

from minae import figures
from minae.diagnostics import dead_units
from minae.train import evaluate


def host(model, a):
    """An array of ``model``'s device as a NumPy array (a no-op on the CPU)."""
    return np.asarray(model.backend.to_host(a))


def rows(model, x):
    """Images (N, D) as the model's input: its dtype, on its device."""
    return model.backend.asarray(np.asarray(x), model.dtype)


def reconstruct(model, x):
    """One image x: (1, D) in [0, 1] -> (its reconstruction (D,), the model's BCE on it)."""
    x = rows(model, x)
    return host(model, model.predict(x))[0], evaluate(model, x)


def codes(model, x):
    """Images (N, D) -> their bottleneck codes (N, Z)."""
    return host(model, model.encode(rows(model, x), layer=model.code_layer))


def decode(model, codes):
    """Codes (N, Z), any real numbers -> the decoder's images (N, D)."""
    return host(model, model.decode(rows(model, codes)))


def interpolate(model, a, b, steps=8):
    """Two images a, b: (D,) -> (decoded path (steps, D), pixel blend (steps, D)).

    The path decodes codes on the straight line from a's code to b's, so it
    starts at a's reconstruction and ends at b's; the blend mixes the pixels,
    (1 - t) a + t b, a double exposure half way.
    """
    t = np.linspace(0.0, 1.0, steps)[:, None]                         # (steps, 1)
    ca, cb = codes(model, np.stack([a, b]))
    path = decode(model, (1 - t) * ca + t * cb)
    return path, (1 - t) * np.asarray(a) + t * np.asarray(b)


def units(model, x, x_rows):
    """Per hidden layer: each unit's activation for one image x (1, D), and which
    units are dead: not positive for any row of x_rows (N, D) (minae.diagnostics)."""
    x, x_rows = rows(model, x), rows(model, x_rows)
    model.forward(x_rows)                         # each ReLU keeps its output on x_rows
    dead = [host(model, d) for d in dead_units(model)]
    return [{"activations": host(model, model.encode(x, layer=k))[0], "dead": dead[k - 1]}
            for k in range(1, len(model.hidden) + 1)]


def filters(model, x_rows):
    """The first layer's filters as one colour image (minae.figures: red where a pixel
    excites the unit, blue where it inhibits it; dead units on x_rows grey, framed)."""
    return figures.filters_image(host(model, model.params[0]), figures.dead_units(model, x_rows))


def png(image):
    """(H, W) grey or (H, W, 3) colour values in [0, 1] -> the bytes of a PNG file."""
    a = np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    height, width = a.shape[:2]
    # Each row of bytes starts with its filter type, 0: the bytes as they are.
    raw = np.concatenate([np.zeros((height, 1), np.uint8), a.reshape(height, -1)], axis=1).tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = 2 if a.ndim == 3 else 0   # 2: RGB, 0: grey; both 8 bits per value
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def data_url(image, side=28):
    """An image as a data: URL the page can show; a row of side*side values becomes side x side."""
    image = np.asarray(image)
    if image.ndim == 1:
        image = image.reshape(side, side)
    return "data:image/png;base64," + base64.b64encode(png(image)).decode("ascii")
