"""Checkpoints: a model's weights in an .npz file, its architecture in JSON beside them.

What it teaches: a checkpoint is data another program will trust, so it is
written atomically (a reader sees the old file or the new one, never half)
and read with suspicion: the stored arrays' headers are checked against the
metadata, and the metadata against what this machine can hold, before a
single weight is read or allocated. A file that claims a model of two
million units, or holds complex or NaN weights, is refused with the reason.

    save(model, path, extra=None)      # Autoencoder.save
    meta, weights, biases = read(path) # Autoencoder.load builds the model from them
    meta = read_metadata(path)         # what it claims to be, no weight read

The file: ``minae_meta`` (a JSON string: format, version, input_dim, hidden,
dtype, seed, init, optional extra) and ``W1, b1, W2, b2, ...`` as host
arrays of the model's dtype, W_i of shape (D_in, D_out).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from minae import checks
from minae._io import atomic_open
from minae.backend import DTYPES
from minae.checks import physical_memory, positive_int
from minae.errors import CheckpointError
from minae.layers import INITIALISERS

FORMAT = "minae-autoencoder"
VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
# The metadata is a JSON string of a few hundred characters (a grid's run settings
# included), stored as UTF-32: a header claiming more is not minae's.
MAX_META_BYTES = 1 << 20
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def metadata(model):
    """The JSON-ready description of ``model`` stored beside its weights."""
    return {"format": FORMAT, "version": VERSION, "input_dim": model.input_dim, "hidden": model.hidden,
            "dtype": model.dtype, "seed": model.seed, "init": model.init}


def save(model, path, extra=None):
    """Write ``model``'s weights and metadata to ``path`` (.npz), atomically.

    extra: an optional JSON-serialisable dict stored with the metadata.
    """
    if model.stack_size is not None:
        raise ValueError("save the models of a stack one by one (unstack_into each first)")
    path = _path(path)
    meta = metadata(model)
    if extra is not None:
        meta["extra"] = extra
    try:
        arrays = {"minae_meta": np.array(json.dumps(meta))}
    except (TypeError, ValueError) as exc:
        raise TypeError(f"extra must hold only what JSON can store (dicts, lists, strings, numbers): {exc}") \
            from None
    for i, layer in enumerate(model.dense, start=1):
        arrays[f"W{i}"] = model.backend.to_host(layer.W)
        arrays[f"b{i}"] = model.backend.to_host(layer.b)
    with atomic_open(path) as f:
        np.savez(f, **arrays)
    return path


def read(path, finite=True):
    """Read and check a checkpoint: returns (metadata dict, [W1, ...], [b1, ...]) as
    NumPy arrays, or raises CheckpointError naming the file and what is wrong.

    finite: refuse NaN or infinite weights (a run that diverged has them; pass
    False to load one anyway).
    """
    return _read(path, finite, arrays=True)


def read_metadata(path):
    """A checkpoint's metadata, checked as ``read`` checks it (the arrays' headers
    included), without reading a single weight: what the file claims to be, at the
    cost of its headers, for a caller that knows what it should be."""
    return _read(path, arrays=False)


def _read(path, finite=True, arrays=True):
    path = _path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    not_ours = f"{path} is not a minae checkpoint (an .npz written by Autoencoder.save)"
    with open(path, "rb") as f:
        start = f.read(4)
    if start != _ZIP_MAGIC:
        raise CheckpointError(f"{not_ours}: it is not a zip archive (it starts with {start!r})")
    try:
        with zipfile.ZipFile(path) as archive:
            headers = _array_headers(archive, not_ours)
            if "minae_meta" not in headers:
                raise CheckpointError(f"{path} is not a minae checkpoint: it has no minae_meta entry")
            meta = _read_meta(archive, headers["minae_meta"], path)
            shapes = _expected_shapes(meta, path)
            _check_headers(headers, shapes, meta["dtype"], path)
            if not arrays:
                return meta
            arrays = {name: _read_array(archive, name, path) for name in shapes}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{not_ours}: {exc}") from exc
    if finite:
        for name, a in arrays.items():
            if not np.isfinite(a).all():
                raise CheckpointError(f"{path}: {name} holds NaN or infinite weights (a run that diverged, "
                                      "or a damaged file); load it with finite=False to look at it anyway")
    layers = range(1, len(meta["hidden"]) + 2)
    return meta, [arrays[f"W{i}"] for i in layers], [arrays[f"b{i}"] for i in layers]


def _path(path):
    try:
        return Path(path)
    except TypeError:
        raise TypeError(f"path must be a file path (a str or pathlib.Path), got {path!r}") from None


def _array_headers(archive, not_ours):
    """{name: (shape, dtype)} of every .npy member, read from headers alone (no data)."""
    headers = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise CheckpointError(f"{not_ours}: it holds {info.filename!r}, which is not an array")
        with archive.open(info) as member:
            try:
                read_header = _HEADER_READERS.get(np.lib.format.read_magic(member))
                if read_header is None:
                    raise ValueError("an unsupported .npy format version")
                shape, _, dtype = read_header(member)
            except ValueError as exc:
                raise CheckpointError(f"{not_ours}: {info.filename} has no valid array header "
                                      f"({exc})") from exc
        headers[info.filename[:-4]] = (shape, dtype)
    return headers


def _read_meta(archive, header, path):
    shape, dtype = header
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_META_BYTES:
        raise CheckpointError(f"{path}: its minae metadata is {dtype} of shape {shape}, not one string of at "
                              f"most {MAX_META_BYTES:,} bytes; the file is damaged or was not written by "
                              "Autoencoder.save")
    try:
        with archive.open("minae_meta.npy") as member:
            text = np.lib.format.read_array(member, allow_pickle=False)
        meta = json.loads(str(text))
    except (ValueError, RecursionError) as exc:   # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: its minae metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its minae metadata is not a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')!r} is not supported "
                              f"(this minae reads version {VERSION})")
    return meta


def _expected_shapes(meta, path):
    """{array name: shape} the metadata implies; checks every field on the way."""
    damaged = "the file is damaged or was not written by Autoencoder.save"
    try:
        input_dim = positive_int(meta.get("input_dim"), "input_dim")
        hidden = meta.get("hidden")
        if not isinstance(hidden, list) or not hidden:
            raise ValueError(f"hidden must be a non-empty list of widths, got {hidden!r}")
        hidden = [positive_int(h, "a hidden width") for h in hidden]
        if meta.get("dtype") not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {meta.get('dtype')!r}")
        if meta.get("init") not in INITIALISERS:
            raise ValueError(f"unknown initialiser {meta.get('init')!r}")
        checks.seed(meta.get("seed"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: its minae metadata is wrong ({exc}); {damaged}") from None
    sizes = [input_dim, *hidden, input_dim]
    shapes = {}
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (d_in, d_out), (d_out,)
    return shapes


def _check_headers(headers, shapes, dtype, path):
    """The stored arrays must be exactly the ones the metadata implies, real and of
    its dtype, and fit in this machine's memory: checked before any is read."""
    stored = {name for name in headers if name != "minae_meta"}
    for name, shape in shapes.items():
        if name not in headers:
            raise CheckpointError(f"{path}: array {name} is missing; the file is damaged")
        have_shape, have_dtype = headers[name]
        if tuple(have_shape) != shape:
            raise CheckpointError(f"{path}: array {name} has shape {tuple(have_shape)} but the metadata "
                                  f"implies {shape}; the file is damaged")
        if have_dtype != np.dtype(dtype):
            raise CheckpointError(f"{path}: array {name} is {have_dtype} but the metadata says {dtype} "
                                  "(weights are real floating-point numbers); the file is damaged")
    if stored - set(shapes):
        raise CheckpointError(f"{path}: it holds arrays the metadata does not describe "
                              f"({', '.join(sorted(stored - set(shapes)))}); the file is damaged")
    need = sum(int(np.prod(s)) for s in shapes.values()) * np.dtype(dtype).itemsize
    have = physical_memory()
    if have is not None and need > have // 2:
        raise CheckpointError(f"{path}: it describes a model of {need / 2**30:,.1f} GiB of weights, more "
                              f"than half of this machine's {have / 2**30:,.0f} GiB; refusing to load it")


def _read_array(archive, name, path):
    with archive.open(f"{name}.npy") as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False)
        except ValueError as exc:
            raise CheckpointError(f"{path}: array {name} cannot be read ({exc}); the file is "
                                  "damaged") from exc
