"""Finding, checking and preparing a dataset for the autoencoder.

``load(name)`` looks for the four IDX files in this order and records which
source it used:

    1. data_dir (``--data-dir``): the files in <dir>/<name>/ or directly in <dir>
    2. the MINAE_DATA environment variable, same layout
    3. the user cache, $XDG_CACHE_HOME/minae/<name> (default ~/.cache/minae)
    4. system copies, /usr/share/datasets/<name> (Debian's dataset-fashion-mnist)
    5. a download into the cache (every mirror, checksums verified)
    6. the bundled sample (5,000 + 1,000 real images) with a loud warning,
       unless require_full=True or a data folder was named (data_dir or
       MINAE_DATA), either of which makes the dataset's absence an error.
       A named folder holding some but not all four files is an error too.

Files whose uncompressed content is the canonical one count as verified,
however they were compressed; other files (a subset, a modified copy) are
checked structurally and used, and the Dataset says so. A file recognised as
another dataset's (or another role's) is refused. Broken files raise
DataError rather than being skipped silently; only a
broken file in the cache (which minae owns) is deleted and fetched again.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minae.data.fetching import download, file_digests
from minae.data.idx import parse_idx, read_bytes
from minae.data.registry import DATASETS, FILENAMES, ROLES, SIDE, get_info
from minae.errors import DataError, DownloadError

SYSTEM_ROOTS = (Path("/usr/share/datasets"),)
SAMPLE_ROOT = Path(__file__).parent / "sample"
SAMPLE = "bundled-sample"


class SampleDataWarning(UserWarning):
    """Training data fell back to the small bundled sample."""


def cache_root() -> Path:
    """$XDG_CACHE_HOME/minae, or ~/.cache/minae."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minae"


@dataclass
class Dataset:
    """A dataset ready for training: flattened float32 pixels in [0, 1].

    x_train: (N_train, 784) float32, y_train: (N_train,) uint8 labels
    x_val:   (N_val, 784) float32,   y_val:   (N_val,) uint8 labels
    source:   where the files came from: "data-dir", "MINAE_DATA", "cache",
              "system", "download" or "bundled-sample"
    location: the folder they were read from
    canonical: True when every file holds the canonical content (the digest of
              its uncompressed bytes, or of its .gz, matches the registry)
    notes:    sentences a report should carry (subsets, non-canonical files)
    digest:   identifies the content: two Datasets with the same digest train
              and validate on the same images, in the same order
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str
    location: str
    canonical: bool
    split: str
    notes: list = field(default_factory=list)
    digest: str = ""   # SHA-256 of the uint8 images and labels actually used (see content_digest)

    @property
    def classes(self):
        return get_info(self.name).classes

    def describe(self):
        kind = "verified: the canonical content" if self.canonical \
            else "not the canonical files, checked structurally"
        text = (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val images ({self.split}); "
                f"source {self.source} at {self.location} ({kind})")
        return text + "".join(f"; {n}" for n in self.notes)


# ---------------------------------------------------------------------------
# Finding and reading the four files
# ---------------------------------------------------------------------------

def _file_in(directory, filename):
    """The .gz file, or its uncompressed twin, in directory (or None)."""
    for candidate in (directory / filename, directory / filename[:-3]):
        if candidate.is_file():
            return candidate
    return None


def missing_files(directory, name, direct=True):
    """[(folder, [missing filenames])] for each candidate folder that holds some
    but not all of the four files: a partial copy, worth naming."""
    directory = Path(directory)
    partial = []
    for folder in (directory / name, directory) if direct else (directory / name,):
        missing = [FILENAMES[role] for role in ROLES if _file_in(folder, FILENAMES[role]) is None]
        if 0 < len(missing) < len(ROLES):
            partial.append((folder, missing))
    return partial


def find_files(directory, name, direct=True):
    """{role: path} if <directory>/<name>/ (or, with direct, <directory>) holds all four files."""
    directory = Path(directory)
    for folder in (directory / name, directory) if direct else (directory / name,):
        paths = {role: _file_in(folder, FILENAMES[role]) for role in ROLES}
        if all(paths.values()):
            return paths
    return None


ROLE_TEXT = {"train_images": "training images", "train_labels": "training labels",
             "test_images": "test images", "test_labels": "test labels"}


def identify(payload_sha256):
    """(dataset, role) whose canonical uncompressed file has this SHA-256, or None."""
    for other, info in DATASETS.items():
        for role, file in info.files.items():
            if file.payload_sha256 == payload_sha256:
                return other, role
    return None


def read_files(paths, name):
    """Read and check the four files; returns (arrays by role, canonical flag, notes).

    canonical: every file holds exactly the canonical content of its role,
    recognised by the digest of its uncompressed bytes (or, where that is not
    known, of its .gz). A file recognised as another dataset's, or as another
    role's (training images where the test images belong), is refused.
    """
    info = get_info(name)
    arrays, canonical, notes, foreign = {}, True, [], []
    for role in ROLES:
        path = paths[role]
        data = read_bytes(path)
        arr = parse_idx(data, str(path))
        want_ndim = 3 if role.endswith("images") else 1
        bad_side = want_ndim == 3 and arr.shape[1:] != (SIDE, SIDE)
        if arr.dtype != np.uint8 or arr.ndim != want_ndim or bad_side:
            raise DataError(f"{path}: expected uint8 {'images of 28x28' if want_ndim == 3 else 'labels'}, "
                            f"got {arr.dtype} of shape {arr.shape}; is this the right file?")
        found = identify(hashlib.sha256(data).hexdigest())
        if found is not None and found != (name, role):
            other, other_role = found
            foreign.append(f"{path} holds the {other} {ROLE_TEXT[other_role]}, not {name}'s "
                           f"{ROLE_TEXT[role]}")
        arrays[role] = arr
        file = info.files[role]
        if file.payload_sha256 is not None:
            canonical = canonical and found == (name, role)
        elif path.suffix != ".gz" or file_digests(path)[0] != file.sha256:
            canonical = False
    if foreign:
        raise DataError("; ".join(foreign) + f". Put each dataset's four files in its own folder "
                        f"<dir>/<name>/ under their canonical names ({', '.join(FILENAMES.values())})")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{paths[f'{split}_images']} holds {len(images)} images but "
                            f"{paths[f'{split}_labels']} holds {len(labels)} labels; the pair must match")
        if labels.size and labels.max() >= len(info.classes):
            raise DataError(f"{paths[f'{split}_labels']}: label {labels.max()} is out of range "
                            f"0..{len(info.classes) - 1}")
    if not canonical:
        notes.append(f"files are not the canonical {name} content "
                     f"({len(arrays['train_images'])} train / {len(arrays['test_images'])} test images)")
    return arrays, canonical, notes


def _candidates(name, data_dir):
    """(source kind, folder) in the order they are searched, before download."""
    found = []
    if data_dir is not None:
        found.append(("data-dir", Path(data_dir)))
    if os.environ.get("MINAE_DATA"):
        found.append(("MINAE_DATA", Path(os.environ["MINAE_DATA"])))
    found.append(("cache", cache_root()))
    found.extend(("system", root) for root in SYSTEM_ROOTS)
    return found


def _read_cache(paths, name):
    """Read cached files; a broken cache file is deleted so it cannot poison later runs."""
    try:
        return read_files(paths, name)
    except DataError as exc:
        for p in paths.values():
            p.unlink(missing_ok=True)
        warnings.warn(f"deleted a broken cached copy of {name} ({exc}); fetching it again", stacklevel=3)
        return None


def locate(name, data_dir=None, *, allow_download=True, mirrors=None, timeout=30.0, progress=None,
           require_full=False):
    """Find the files of ``name``: returns (source, folder, arrays, canonical, notes)."""
    get_info(name)
    tried = []
    for source, root in _candidates(name, data_dir)[:2]:
        if source in ("data-dir", "MINAE_DATA") and not root.is_dir():
            what = "--data-dir (data_dir)" if source == "data-dir" else "MINAE_DATA"
            raise DataError(f"{what} points to {root}, which is not a folder; fix the path, or leave "
                            "it out to use the cache, system copies or a download")
    named = [src for src, _ in _candidates(name, data_dir) if src in ("data-dir", "MINAE_DATA")]
    for source, root in _candidates(name, data_dir):
        # Files straight in a folder count only where the user named the folder.
        paths = find_files(root, name, direct=source in named)
        partial = missing_files(root, name) if paths is None and source in named else []
        if partial:
            folder, missing = partial[0]
            raise DataError(f"{folder} (from {'--data-dir' if source == 'data-dir' else source}) holds "
                            f"some of {name}'s files but not {', '.join(missing)}; add the missing "
                            "file(s), or point it at a folder with all four")
        if paths is None:
            tried.append(f"{source}: {root} (no files)")
            continue
        if source == "cache":
            result = _read_cache(paths, name)
            if result is None:
                continue
        else:
            result = read_files(paths, name)
        return (source, str(paths["train_images"].parent), *result)
    if allow_download:
        target = cache_root() / name
        try:
            download(name, target, mirrors=mirrors, timeout=timeout, progress=progress)
            paths = find_files(target, name)
            return ("download", str(target), *read_files(paths, name))
        except DownloadError as exc:
            tried.append(f"download: {exc}")
    if require_full or named:
        why = ("the bundled-sample fallback is switched off (require_full / --require-full)" if require_full
               else f"a data folder was named ({' and '.join(named)}), so minae will not fall back to "
                    "the bundled sample; put the four files in <folder>/" + name + "/")
        raise DataError(f"could not find the full {name} dataset and {why}. Looked in:\n  "
                        + "\n  ".join(tried))
    paths = find_files(SAMPLE_ROOT, name)
    if paths is None:
        raise DataError(f"could not find {name} anywhere and there is no bundled sample for it. "
                        "Looked in:\n  " + "\n  ".join(tried))
    warnings.warn(
        f"\n{'!' * 72}\nminae: the full {name} dataset was not found; using the BUNDLED SAMPLE "
        f"(a few thousand real images).\nResults are NOT comparable with the full experiment. "
        f"Looked in:\n  " + "\n  ".join(tried) + f"\n{'!' * 72}", SampleDataWarning, stacklevel=2)
    arrays, _, _ = read_files(paths, name)
    return (SAMPLE, str(paths["train_images"].parent), arrays, False,
            ["BUNDLED SAMPLE: a small real subset, not the full dataset"])


# ---------------------------------------------------------------------------
# Preparing: flatten, scale, split
# ---------------------------------------------------------------------------

def flatten(images):
    """(N, 28, 28) uint8 -> (N, 784) float32 in [0, 1], as the original (x / 255)."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255)   # in place: a full-size float copy less at peak
    return x


def _subset(n, limit, rng):
    """Sorted indices of a seeded random subset of size min(limit, n)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _check_limit(value, what):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or value < 1):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def load(name, data_dir=None, *, val_fraction=None, limit_train=None, limit_val=None, seed=0,
         require_full=False, allow_download=True, mirrors=None, timeout=30.0, progress=None):
    """Load dataset ``name`` ("mnist", "fashion-mnist", "kmnist") as a Dataset.

    Validation is the official test split unless ``val_fraction`` (0 < f < 1)
    carves a seeded validation subset out of the training split instead.
    ``limit_train`` / ``limit_val`` keep seeded random subsets for quick runs.
    """
    get_info(name)
    _check_limit(limit_train, "limit_train")
    _check_limit(limit_val, "limit_val")
    if val_fraction is not None and not (0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    source, location, arrays, canonical, notes = locate(
        name, data_dir, allow_download=allow_download, mirrors=mirrors, timeout=timeout,
        progress=progress, require_full=require_full)
    images, labels = arrays["train_images"], arrays["train_labels"]
    if val_fraction is None:
        tr_x, tr_y = images, labels
        va_x, va_y = arrays["test_images"], arrays["test_labels"]
        split = "validation = the official test split"
    else:
        order = np.random.default_rng([seed, 1]).permutation(len(images))
        n_val = max(1, round(val_fraction * len(images)))
        va_idx, tr_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        tr_x, tr_y, va_x, va_y = images[tr_idx], labels[tr_idx], images[va_idx], labels[va_idx]
        split = f"validation = a seeded {val_fraction:g} of the training split"
    tr = _subset(len(tr_x), limit_train, np.random.default_rng([seed, 2]))
    va = _subset(len(va_x), limit_val, np.random.default_rng([seed, 3]))
    if len(tr) < len(tr_x) or len(va) < len(va_x):
        notes = [*notes, f"seeded subsets: {len(tr)} of {len(tr_x)} train, {len(va)} of {len(va_x)} val"]
    def pick(a, rows):   # no copy when the whole split is kept
        return a if len(rows) == len(a) else a[rows]

    tr_x, tr_y, va_x, va_y = pick(tr_x, tr), pick(tr_y, tr).copy(), pick(va_x, va), pick(va_y, va).copy()
    return Dataset(name, flatten(tr_x), tr_y, flatten(va_x), va_y, source, location, canonical, split,
                   notes, content_digest(tr_x, tr_y, va_x, va_y))


def content_digest(*arrays):
    """SHA-256 over the shapes and bytes of uint8 arrays: what a run's results depend on.

    Hashing the uint8 images (not the float32 copies) costs about a tenth of a
    second for a full dataset.
    """
    h = hashlib.sha256()
    for a in arrays:
        h.update(repr(a.shape).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def load_sample(name, **kwargs):
    """The bundled sample of ``name`` (mnist or fashion-mnist), asked for on purpose.

    Same preparation and options as ``load``; no fallback warning, because
    nothing fell back. Tutorials and quick experiments use it.
    """
    if find_files(SAMPLE_ROOT, name) is None:
        samples = sorted(p.name for p in SAMPLE_ROOT.iterdir() if p.is_dir())
        raise ValueError(f"there is no bundled sample of {name!r}; samples: {', '.join(samples)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleDataWarning)
        ds = load(name, SAMPLE_ROOT, allow_download=False, **kwargs)
    ds.source = SAMPLE
    # The sample is a subset, so load() noted "not the canonical content": say what it is instead.
    ds.notes = ["BUNDLED SAMPLE: a small real subset, not the full dataset",
                *(n for n in ds.notes if not n.startswith("files are not the canonical"))]
    return ds


def where(name, data_dir=None):
    """Say where ``load(name)`` would read from, without downloading anything."""
    get_info(name)
    for source, root in _candidates(name, data_dir):
        paths = find_files(root, name, direct=source in ("data-dir", "MINAE_DATA"))
        if paths is not None:
            return f"{name}: {source} at {paths['train_images'].parent}"
    if find_files(SAMPLE_ROOT, name):
        return (f"{name}: not on disk; load() would download it into {cache_root() / name}, "
                "or fall back to the bundled sample when offline")
    return f"{name}: not on disk; load() would download it into {cache_root() / name}"
