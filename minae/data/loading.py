"""Finding, checking and preparing a dataset for the autoencoder.

``load(name)`` reads the four IDX files of a dataset and records which source
it used. A named folder is the user's data and the only place looked in:

    data_dir (``--data-dir``), else the MINAE_DATA environment variable: the
    files in <dir>/<name>/ or directly in <dir>. Nothing else is tried (no
    cache, system copy, download or bundled sample), so a dataset missing
    there, or only some of its four files, is a DataError naming the folder,
    the files looked for and what to do. data_dir wins over MINAE_DATA.

With no folder named, it looks in this order:

    1. the user cache, $XDG_CACHE_HOME/minae/<name> (default ~/.cache/minae)
    2. system copies, /usr/share/datasets/<name> (Debian's dataset-fashion-mnist)
    3. a download into the cache (every mirror, checksums verified)
    4. the bundled sample (5,000 + 1,000 real images) with a loud warning,
       unless require_full=True makes the dataset's absence an error.

Files whose uncompressed content is the canonical one count as verified,
however they were compressed; other files (a subset, a modified copy) are
checked structurally and used, and the Dataset says so. A file recognised as
another dataset's (or another role's) is refused. Broken files raise
DataError rather than being skipped silently; only a
broken file in the cache (which minae owns) is deleted and fetched again.

Longer than the other modules (about 450 lines) because finding a dataset
is one chain of decisions (named folder, cache, system copy, download,
sample) that must give one story to ``load`` and ``where`` alike; the file
format is minae.data.idx's and the downloads minae.data.fetching's.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minae import checks
from minae.data.fetching import download, file_digests
from minae.data.idx import idx_header, read_idx
from minae.data.registry import DATASETS, FILENAMES, ROLES, SIDE, get_info
from minae.errors import DataError, DownloadError

SYSTEM_ROOTS = (Path("/usr/share/datasets"),)
SAMPLE_ROOT = Path(__file__).parent / "sample"
SAMPLE = "bundled-sample"


class SampleDataWarning(UserWarning):
    """Training data fell back to the small bundled sample."""


def cache_root() -> Path:
    """$XDG_CACHE_HOME/minae, or ~/.cache/minae. A relative XDG_CACHE_HOME is ignored, as the
    XDG spec says: it would name a different cache in every working folder."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "minae"


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
    files:    the four files read, each with the SHA-256 of its content, so a
              changed file can be named
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
    files: tuple = ()  # ((path, SHA-256 of its header and values), ...): the four files read

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
    """The .gz file, or its uncompressed twin, in directory (or None).

    An entry of that name that is not a file (a folder, a broken link, a link
    loop) is an error naming it, not a missing file: it would otherwise be
    reported as absent while ``ls`` shows it.
    """
    for candidate in (directory / filename, directory / filename[:-3]):
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            kind = ("a folder" if candidate.is_dir() else
                    "a special file (a device, pipe or socket)" if candidate.exists() else
                    "a link that leads nowhere (missing target or a loop)")
            raise DataError(f"{candidate} is {kind}, not a regular file; replace it with the IDX file "
                            "itself, or remove it")
    return None


def missing_files(directory, name):
    """[(folder, [missing filenames])] for each candidate folder, <directory>/<name>/ and
    <directory>, that holds some but not all of the four files: a partial copy, worth naming."""
    directory = Path(directory)
    partial = []
    for folder in (directory / name, directory):
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


def payload_sha256(array):
    """SHA-256 of the uncompressed IDX file that ``read_idx`` read ``array`` from.

    The reader has checked that the file is exactly its header and its values,
    so header + values rebuild its bytes without keeping a second copy.
    """
    h = hashlib.sha256(idx_header(array.dtype, array.shape))
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


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
        arr = read_idx(path)
        want_ndim = 3 if role.endswith("images") else 1
        bad_side = want_ndim == 3 and arr.shape[1:] != (SIDE, SIDE)
        if arr.dtype != np.uint8 or arr.ndim != want_ndim or bad_side:
            raise DataError(f"{path}: expected uint8 {'images of 28x28' if want_ndim == 3 else 'labels'}, "
                            f"got {arr.dtype} of shape {arr.shape}; is this the right file?")
        if len(arr) == 0:
            raise DataError(f"{path} holds no {ROLE_TEXT[role]} (its header says 0); replace it with "
                            "a copy that holds some")
        found = identify(payload_sha256(arr))
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
        if labels.max() >= len(info.classes):
            raise DataError(f"{paths[f'{split}_labels']}: label {labels.max()} is out of range "
                            f"0..{len(info.classes) - 1}")
    if not canonical:
        notes.append(f"files are not the canonical {name} content "
                     f"({len(arrays['train_images'])} train / {len(arrays['test_images'])} test images)")
    files = tuple((str(paths[role]), payload_sha256(arrays[role])) for role in ROLES)
    return arrays, canonical, notes, files


# How a named folder is called in messages, by source.
NAMED = {"data-dir": "--data-dir (data_dir)", "MINAE_DATA": "MINAE_DATA"}


def named_folder(data_dir):
    """(source, folder) the user named, or None: data_dir, else MINAE_DATA.

    data_dir wins: with data_dir given, MINAE_DATA is not consulted at all (a
    flag given for one run overrides a setting made for every run). An empty
    MINAE_DATA counts as unset; an empty data_dir is an error.
    """
    if data_dir is not None:
        try:
            text = os.fsdecode(data_dir)
        except TypeError:
            raise ValueError(f"data_dir must be a folder path (str or Path), got {data_dir!r}") from None
        if not text:
            raise DataError("--data-dir (data_dir) is empty; name the folder that holds the data, or "
                            "leave it out to use the cache, system copies or a download")
        return "data-dir", Path(text)
    if os.environ.get("MINAE_DATA"):
        return "MINAE_DATA", Path(os.environ["MINAE_DATA"])
    return None


def find_named(name, source, root):
    """{role: path} of ``name``'s files in a named folder, <root>/<name>/ or <root> itself.

    A named folder is the only place looked in, so anything short of the four
    files is a DataError naming the folder, the files and what to do.
    """
    what = NAMED[source]
    elsewhere = "or leave it out to use the cache, system copies or a download"
    if not root.is_dir():
        raise DataError(f"{what} points to {root}, which is not a folder; fix the path, {elsewhere}")
    paths = find_files(root, name)
    if paths is not None:
        return paths
    partial = missing_files(root, name)
    if partial:
        folder, missing = partial[0]
        raise DataError(f"{folder} (from {what}) holds some of {name}'s files but not {', '.join(missing)}; "
                        "add the missing file(s), or point it at a folder with all four")
    ignored = (f" (MINAE_DATA={os.environ['MINAE_DATA']} is not consulted when --data-dir is given)"
               if source == "data-dir" and os.environ.get("MINAE_DATA") else "")
    raise DataError(f"{what} names {root}, which holds no {name} files: looked for "
                    f"{', '.join(FILENAMES.values())} (or the same names without .gz) in {root / name} "
                    f"and in {root}{ignored}; a data folder was named ({what}), so minae looks only "
                    "there (no cache, system copy or download) and will not fall back to the bundled "
                    f"sample. Put {name}'s four files in {root / name}/, {elsewhere}")


def _unnamed_candidates():
    """(source, folder) searched, in order, before a download when no folder is named."""
    return [("cache", cache_root()), *(("system", root) for root in SYSTEM_ROOTS)]


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
    named = named_folder(data_dir)
    if named is not None:
        paths = find_named(name, *named)
        return (named[0], str(paths["train_images"].parent), *read_files(paths, name))
    tried = []
    for source, root in _unnamed_candidates():
        # Files straight in a folder count only where the user named the folder.
        paths = find_files(root, name, direct=False)
        if paths is None:
            tried.append(f"{source}: {root / name} (no files)")
            continue
        result = _read_cache(paths, name) if source == "cache" else read_files(paths, name)
        if result is not None:
            return (source, str(paths["train_images"].parent), *result)
    if allow_download:
        target = cache_root() / name
        try:
            download(name, target, mirrors=mirrors, timeout=timeout, progress=progress)
            paths = find_files(target, name)
            return ("download", str(target), *read_files(paths, name))
        except DownloadError as exc:
            tried.append(f"download: {exc}")
    if require_full:
        raise DataError(f"could not find the full {name} dataset and the bundled-sample fallback is "
                        "switched off (require_full / --require-full). Looked in:\n  " + "\n  ".join(tried))
    paths = find_files(SAMPLE_ROOT, name)
    if paths is None:
        raise DataError(f"could not find {name} anywhere and there is no bundled sample for it. "
                        "Looked in:\n  " + "\n  ".join(tried))
    warnings.warn(
        f"\n{'!' * 72}\nminae: the full {name} dataset was not found; using the BUNDLED SAMPLE "
        f"(a few thousand real images).\nResults are NOT comparable with the full experiment. "
        f"Looked in:\n  " + "\n  ".join(tried) + f"\n{'!' * 72}", SampleDataWarning, stacklevel=2)
    arrays, _, _, files = read_files(paths, name)
    return (SAMPLE, str(paths["train_images"].parent), arrays, False,
            ["BUNDLED SAMPLE: a small real subset, not the full dataset"], files)


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


def load(name, data_dir=None, *, val_fraction=None, limit_train=None, limit_val=None, seed=0,
         require_full=False, allow_download=True, mirrors=None, timeout=30.0, progress=None):
    """Load dataset ``name`` ("mnist", "fashion-mnist", "kmnist") as a Dataset.

    Validation is the official test split unless ``val_fraction`` (0 < f < 1)
    carves a seeded validation subset out of the training split instead.
    ``limit_train`` / ``limit_val`` keep seeded random subsets for quick runs.
    """
    get_info(name)
    limit_train = None if limit_train is None else checks.positive_int(limit_train, "limit_train")
    limit_val = None if limit_val is None else checks.positive_int(limit_val, "limit_val")
    seed = checks.seed(seed)
    if val_fraction is not None and not 0.0 < checks.finite_real(val_fraction, "val_fraction") < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    source, location, arrays, canonical, notes, files = locate(
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
        if n_val >= len(images):
            raise ValueError(f"val_fraction (--val-fraction) {val_fraction:g} of {len(images)} training "
                             "images leaves none to train on; choose a smaller fraction")
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
                   notes, content_digest(tr_x, tr_y, va_x, va_y), files)


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
    """Say where ``load(name, data_dir)`` would read from, without reading or downloading anything.

    It follows load()'s search: a named folder is the only place looked in, and
    a named folder that would make load() fail says so and why.
    """
    get_info(name)
    named = named_folder(data_dir)
    if named is not None:
        try:
            paths = find_named(name, *named)
        except DataError as exc:
            return f"{name}: load() would fail: {exc}"
        ignored = (" (MINAE_DATA is not consulted when --data-dir is given)"
                   if named[0] == "data-dir" and os.environ.get("MINAE_DATA") else "")
        return f"{name}: {named[0]} at {paths['train_images'].parent}{ignored}"
    for source, root in _unnamed_candidates():
        paths = find_files(root, name, direct=False)
        if paths is not None:
            return f"{name}: {source} at {paths['train_images'].parent}"
    if find_files(SAMPLE_ROOT, name):
        return (f"{name}: not on disk; load() would download it into {cache_root() / name}, "
                "or fall back to the bundled sample when offline")
    return f"{name}: not on disk; load() would download it into {cache_root() / name}"
